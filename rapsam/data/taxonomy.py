"""Merge class taxonomies of several datasets into one label space.

Follows the official RAP-SAM ``seg/datasets/concat_dataset.py::ConcatOVDataset`` (which trains on
COCO panoptic + YouTube-VIS 2019 with one classifier of 155 classes):

* A class name lists synonyms separated by ``,`` (ADE style ``"floor, flooring"``); ``/`` also
  separates synonyms and ``_`` reads as a space (VIPSeg style ``"traffic_light"``).
* Things merge only with things and stuff only with stuff. Datasets are visited in order; a class
  joins the first merged entry whose synonym set (that of the class that created the entry)
  shares a synonym with it, otherwise it creates a new entry.
* The merged list is all things (in order of creation), then all stuff.

One deliberate difference: synonyms are compared after stripping spaces and lower-casing
(``"floor, flooring"`` and ``"Flooring"`` match), where the official code compares raw substrings
so ``" flooring"`` with its leading space never matched ``"flooring"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MergedTaxonomy", "display_name", "merge_taxonomies", "synonyms"]


def _parts(name: str) -> list[str]:
    return [p.strip() for p in name.replace("/", ",").replace("_", " ").split(",") if p.strip()]


def synonyms(name: str) -> frozenset[str]:
    """Normalised synonym set of a class name: ``"Floor, flooring"`` -> ``{floor, flooring}``."""
    return frozenset(p.lower() for p in _parts(name))


def display_name(name: str) -> str:
    """The merged-list spelling of a name: ``/`` -> ``", "``, ``_`` -> space, case kept."""
    return ", ".join(_parts(name))


@dataclass(frozen=True)
class MergedTaxonomy:
    """Result of :func:`merge_taxonomies`.

    Attributes:
        names: merged class names, things first then stuff (see :func:`display_name`).
        is_thing: thing flag per merged class.
        index_maps: one ``(K_d,)`` int64 array per input taxonomy mapping its contiguous label to
            the merged label.
        num_things: number of merged thing classes (they occupy ``0..num_things-1``).
    """

    names: tuple[str, ...]
    is_thing: tuple[bool, ...]
    index_maps: tuple[np.ndarray, ...]
    num_things: int

    def remap(self, dataset: int, labels: np.ndarray) -> np.ndarray:
        """Map labels of input taxonomy ``dataset`` to merged labels (same shape)."""
        return self.index_maps[dataset][np.asarray(labels, dtype=np.int64)]


def _as_pair(item: Any, d: int) -> tuple[list[str], list[bool]]:
    if hasattr(item, "classes") and hasattr(item, "thing_flags"):
        names, things = list(item.classes), list(item.thing_flags)
    else:
        try:
            names_raw, things_raw = item
        except (TypeError, ValueError):
            raise ValueError(
                f"taxonomy {d} must be a (names, is_thing) pair or a dataset with .classes and "
                f".thing_flags, got {type(item).__name__}"
            ) from None
        names, things = list(names_raw), list(things_raw)
    if len(names) != len(things):
        raise ValueError(
            f"taxonomy {d} has {len(names)} names but {len(things)} is_thing flags; give one flag "
            "per name"
        )
    for k, n in enumerate(names):
        if not isinstance(n, str) or not synonyms(n):
            raise ValueError(f"taxonomy {d} class {k} has an empty or non-string name {n!r}")
    return names, [bool(t) for t in things]


def merge_taxonomies(taxonomies: Sequence[Any]) -> MergedTaxonomy:
    """Merge class lists by name/synonym overlap, as ``ConcatOVDataset`` does.

    Args:
        taxonomies: per dataset, ``(names, is_thing)`` or a reader with ``.classes`` and
            ``.thing_flags``. An empty list (a class-agnostic dataset) gives an empty map.

    Returns:
        The merged names and per-dataset label maps.

    Raises:
        ValueError: if names and flags differ in length or a name is empty.

    Example:
        >>> m = merge_taxonomies([(["person", "sky"], [True, False]),
        ...                       (["person/human", "floor, flooring"], [True, False])])
        >>> m.names, [mp.tolist() for mp in m.index_maps]
        (('person', 'sky', 'floor, flooring'), [[0, 1], [0, 2]])
    """
    pairs = [_as_pair(item, d) for d, item in enumerate(taxonomies)]
    groups: dict[bool, list[tuple[str, frozenset[str]]]] = {True: [], False: []}
    local: list[list[tuple[bool, int]]] = []  # per dataset: (is_thing, index within its group)
    for names, things in pairs:
        entries: list[tuple[bool, int]] = []
        for name, thing in zip(names, things):
            syn = synonyms(name)
            group = groups[thing]
            for gi, (_, gsyn) in enumerate(group):
                if syn & gsyn:
                    entries.append((thing, gi))
                    break
            else:
                group.append((display_name(name), syn))
                entries.append((thing, len(group) - 1))
        local.append(entries)
    num_things = len(groups[True])
    names_out = tuple(n for n, _ in groups[True]) + tuple(n for n, _ in groups[False])
    flags = (True,) * num_things + (False,) * len(groups[False])
    maps = tuple(
        np.array([gi if thing else num_things + gi for thing, gi in entries], dtype=np.int64)
        for entries in local
    )
    return MergedTaxonomy(names_out, flags, maps, num_things)
