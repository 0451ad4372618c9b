"""Class vocabularies as data: names, synonyms, thing/stuff flags and dataset ids.

RAP-SAM (arXiv 2401.10228) classifies each query by cosine similarity to text embeddings of the
class names, so a vocabulary is just data. The builtin vocabularies reproduce the class lists of
the official code (xushilin1/RAP-SAM, which imports them from OMG-Seg, lxtGH/OMG-Seg):

* ``coco_panoptic``: ``CocoPanopticOVDataset`` (``seg/datasets/coco_ov.py``), 80 things + 53 stuff,
  each class a comma-separated synonym list (``'person,child,girl,...'``), with the COCO panoptic
  category ids (1..90 things, 92..200 stuff).
* ``ytvis_2019`` / ``ytvis_2021``: ``YouTubeVISDatasetV2`` (``seg/datasets/youtube_vis_dataset.py``),
  40 things each, one name per class, with the YouTube-VIS category ids (1..40).
* ``coco_ytvis2019_merged``: the co-training vocabulary of the released model (102 things + 53
  stuff), merged by ``ConcatOVDataset`` (``seg/datasets/concat_dataset.py``); see
  :func:`merge_vocabularies`.

Synonyms are split the way the official ``tools/gen_cls.py::split_label`` does it: ``"_or_"`` and
``"/"`` become commas, ``"_"`` a space, the text is lower-cased, split on commas and stripped.

User vocabularies are JSON (the format :meth:`Vocabulary.save` writes, or a plain list of class
strings) or plain text, one class per line::

    # comments and blank lines are ignored
    person, child, girl          <- synonyms, the first one is the display name
    giant_panda                  <- "_" becomes a space
    sky, clouds | stuff          <- "| stuff" marks a stuff class ("| thing" is the default)

Things must come before stuff (label ids ``< num_things`` are things in the panoptic merge).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "BUILTIN_VOCABULARIES",
    "Vocabulary",
    "merge_vocabularies",
    "split_synonyms",
]

BUILTIN_VOCABULARIES: tuple[str, ...] = (
    "coco_panoptic",
    "ytvis_2019",
    "ytvis_2021",
    "coco_ytvis2019_merged",
)

_FORMAT = "rapsam.vocabulary"
_TOP_KEYS = {"format", "version", "name", "description", "classes"}
_CLASS_KEYS = {"name", "synonyms", "thing", "id", "sources"}


def split_synonyms(text: str) -> list[str]:
    """Split one class string into its synonyms (the official ``split_label`` rule).

    ``"_or_"`` and ``"/"`` separate synonyms like ``","``; ``"_"`` becomes a space; the result is
    lower-cased and each synonym stripped. Empty synonyms are kept (validation rejects them with the
    position), so a stray comma is reported rather than silently dropped.

    Example:
        >>> split_synonyms("Cup_or_mug/glass, water_cup")
        ['cup', 'mug', 'glass', 'water cup']
    """
    x = text.replace("_or_", ",").replace("/", ",").replace("_", " ").lower()
    return [s.strip() for s in x.split(",")]


@dataclass(frozen=True, eq=True)
class Vocabulary:
    """An ordered list of classes; index ``k`` is label ``k`` of the classifier (K, P, D).

    Attributes:
        synonyms: per class, its synonyms; the first one is the display name. The classifier pads
            every class to the largest synonym count by repeating synonym 0.
        is_thing: per class, True for a thing (countable instance), False for stuff. Things come
            first.
        dataset_ids: per class, its category id in the source dataset (COCO panoptic ids, YT-VIS
            ids), or None.
        name: a short name (the builtin name, or the file stem).
        sources: for merged vocabularies: per source vocabulary name, per class, the source
            dataset ids folded into this class (empty tuple when the class is not in that source).
        description: free text (provenance); not compared.
    """

    synonyms: tuple[tuple[str, ...], ...]
    is_thing: tuple[bool, ...]
    dataset_ids: tuple[int, ...] | None = None
    name: str = "custom"
    sources: Mapping[str, tuple[tuple[int, ...], ...]] | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.synonyms, str) or not isinstance(self.synonyms, Iterable):
            raise ValueError(
                "synonyms must be a list of lists of strings (one list per class); "
                "use Vocabulary.from_names([...]) to parse plain class names"
            )
        syn = tuple(_as_synonym_tuple(s, k) for k, s in enumerate(self.synonyms))
        object.__setattr__(self, "synonyms", syn)
        flags = tuple(self.is_thing) if isinstance(self.is_thing, Iterable) else self.is_thing
        object.__setattr__(self, "is_thing", flags)
        if self.dataset_ids is not None:
            object.__setattr__(self, "dataset_ids", tuple(self.dataset_ids))
        if self.sources is not None:
            if not isinstance(self.sources, Mapping):
                raise ValueError("sources must be a mapping {source name: per-class id lists}")
            srcs = {str(k): tuple(tuple(ids) for ids in v) for k, v in self.sources.items()}
            object.__setattr__(self, "sources", MappingProxyType(srcs))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        k = len(self.synonyms)
        if k == 0:
            raise ValueError(
                f"vocabulary '{self.name}' has no classes: give at least one class name"
            )
        if not isinstance(self.is_thing, tuple) or len(self.is_thing) != k:
            n = len(self.is_thing) if isinstance(self.is_thing, tuple) else "no"
            raise ValueError(
                f"vocabulary '{self.name}': {k} classes but {n} thing/stuff flags; give one flag per class"
            )
        for i, f in enumerate(self.is_thing):
            if not isinstance(f, bool):
                raise ValueError(
                    f"vocabulary '{self.name}': thing flag of class {i} ('{self.synonyms[i][0]}') is "
                    f"{f!r}; use true (thing) or false (stuff)"
                )
        first_stuff = next((i for i, f in enumerate(self.is_thing) if not f), k)
        late_thing = next((i for i in range(first_stuff, k) if self.is_thing[i]), None)
        if late_thing is not None:
            raise ValueError(
                f"vocabulary '{self.name}': thing class {late_thing} ('{self.synonyms[late_thing][0]}') "
                f"comes after stuff class {first_stuff} ('{self.synonyms[first_stuff][0]}'); list all "
                "things first, then all stuff (labels < num_things are things)"
            )
        owner: dict[str, int] = {}
        for i, syns in enumerate(self.synonyms):
            for s in syns:
                key = s.lower()
                if key in owner:
                    j = owner[key]
                    if j == i:
                        raise ValueError(
                            f"vocabulary '{self.name}': class {i} ('{syns[0]}') lists synonym '{s}' "
                            "twice; remove the duplicate"
                        )
                    raise ValueError(
                        f"vocabulary '{self.name}': synonym '{s}' belongs to class {j} "
                        f"('{self.synonyms[j][0]}') and class {i} ('{syns[0]}'); a name may belong to "
                        "one class only: merge the two classes or drop it from one"
                    )
                owner[key] = i
        if self.dataset_ids is not None:
            if len(self.dataset_ids) != k:
                raise ValueError(
                    f"vocabulary '{self.name}': {k} classes but {len(self.dataset_ids)} dataset ids; "
                    "give one id per class or none at all"
                )
            _check_ids(self.dataset_ids, f"vocabulary '{self.name}' dataset ids")
        if self.sources is not None:
            for src, per_class in self.sources.items():
                if len(per_class) != k:
                    raise ValueError(
                        f"vocabulary '{self.name}': source '{src}' lists {len(per_class)} classes, "
                        f"expected {k}"
                    )
                _check_ids(
                    [i for ids in per_class for i in ids],
                    f"vocabulary '{self.name}' source '{src}'",
                )

    def __hash__(self) -> int:
        srcs = tuple(sorted(self.sources.items())) if self.sources else None
        return hash((self.synonyms, self.is_thing, self.dataset_ids, self.name, srcs))

    # ------------------------------------------------------------------ properties
    @property
    def names(self) -> tuple[str, ...]:
        """Display names: the first synonym of each class."""
        return tuple(s[0] for s in self.synonyms)

    @property
    def num_things(self) -> int:
        return sum(self.is_thing)

    @property
    def num_stuff(self) -> int:
        return len(self) - self.num_things

    @property
    def synonym_counts(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.synonyms)

    @property
    def max_synonyms(self) -> int:
        """P, the prototype count of the classifier built from this vocabulary."""
        return max(self.synonym_counts)

    def __len__(self) -> int:
        return len(self.synonyms)

    def id_to_index(self, source: str | None = None) -> dict[int, int]:
        """Map dataset category ids to class indices.

        Args:
            source: None for this vocabulary's own ``dataset_ids``; a source name (e.g.
                ``'ytvis_2019'``) for a merged vocabulary's ``sources``.

        Raises:
            ValueError: the vocabulary has no such ids.
        """
        if source is None:
            if self.dataset_ids is None:
                raise ValueError(
                    f"vocabulary '{self.name}' has no dataset ids"
                    + (
                        f"; it is merged: pass one of {sorted(self.sources)} as source"
                        if self.sources
                        else ""
                    )
                )
            return {int(d): i for i, d in enumerate(self.dataset_ids)}
        if not self.sources or source not in self.sources:
            have = sorted(self.sources) if self.sources else []
            raise ValueError(f"vocabulary '{self.name}' has no source '{source}' (it has {have})")
        return {int(d): i for i, ids in enumerate(self.sources[source]) for d in ids}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        is_thing: Sequence[bool] | None = None,
        name: str = "custom",
    ) -> Vocabulary:
        """Build from class strings, each parsed with :func:`split_synonyms`.

        Args:
            names: one string per class, e.g. ``["person, child", "giant_panda", "sky/clouds"]``.
            is_thing: one flag per class; default all things.
            name: vocabulary name.
        """
        if isinstance(names, str):
            raise ValueError(
                "names must be a list of class strings; for one string with several classes use "
                "Vocabulary.from_string('cat; dog, puppy; sky | stuff')"
            )
        names = list(names)
        for i, n in enumerate(names):
            if not isinstance(n, str):
                raise ValueError(f"class {i} is a {type(n).__name__}, not a string")
        flags = [True] * len(names) if is_thing is None else list(is_thing)
        return cls(tuple(tuple(split_synonyms(n)) for n in names), tuple(flags), name=name)

    @classmethod
    def from_string(cls, text: str, name: str = "custom") -> Vocabulary:
        """Parse an inline list: classes separated by ``;`` or newlines, each ``syn, syn [| stuff]``.

        Example:
            >>> Vocabulary.from_string("cat, kitty; dog; sky | stuff").names
            ('cat', 'dog', 'sky')
        """
        lines = text.replace(";", "\n").splitlines()
        return _parse_lines(lines, name=name, where="class list")

    @classmethod
    def builtin(cls, name: str) -> Vocabulary:
        """One of :data:`BUILTIN_VOCABULARIES`, read from the package data."""
        if name not in BUILTIN_VOCABULARIES:
            raise ValueError(
                f"unknown builtin vocabulary '{name}'; choose one of {list(BUILTIN_VOCABULARIES)} or "
                "give a .json / .txt file"
            )
        text = resources.files("rapsam.vocab").joinpath("data", f"{name}.json").read_text("utf-8")
        return cls.from_dict(json.loads(text), where=f"builtin vocabulary '{name}'")

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str] | Vocabulary) -> Vocabulary:
        """A builtin name, or a user file: ``.json`` or plain text (any other suffix).

        Raises:
            ValueError: unknown name / missing file / malformed content (the message names the
                file, line or class and the fix).
        """
        if isinstance(name_or_path, Vocabulary):
            return name_or_path
        spec = os.fspath(name_or_path)
        if spec in BUILTIN_VOCABULARIES:
            return cls.builtin(spec)
        path = Path(spec)
        if not path.is_file():
            raise ValueError(
                f"'{spec}' is neither a builtin vocabulary ({', '.join(BUILTIN_VOCABULARIES)}) nor an "
                "existing .json / .txt file"
            )
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; save the vocabulary as UTF-8") from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
            return cls.from_dict(data, where=str(path), default_name=path.stem)
        return _parse_lines(text.splitlines(), name=path.stem, where=str(path), numbered=True)

    @classmethod
    def from_dict(
        cls, data: Any, where: str = "vocabulary", default_name: str = "custom"
    ) -> Vocabulary:
        """Parse the JSON form (see :meth:`to_dict`), or a plain list of class strings/objects."""
        if isinstance(data, list):
            data = {"classes": data}
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object with 'classes' or a list of classes")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
            )
        if "format" in data and data["format"] != _FORMAT:
            raise ValueError(f"{where}: format is {data['format']!r}, expected {_FORMAT!r}")
        classes = data.get("classes")
        if not isinstance(classes, list):
            raise ValueError(f"{where}: 'classes' must be a list")
        name = data.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: 'name' must be a non-empty string")
        synonyms: list[tuple[str, ...]] = []
        flags: list[Any] = []
        ids: list[Any] = []
        sources: dict[str, list[tuple[int, ...]]] = {}
        for i, c in enumerate(classes):
            ctx = f"{where}: class {i}"
            if isinstance(c, str):
                c = {"name": c}
            if not isinstance(c, dict):
                raise ValueError(f"{ctx}: expected a string or an object, got {type(c).__name__}")
            bad = set(c) - _CLASS_KEYS
            if bad:
                raise ValueError(
                    f"{ctx}: unknown keys {sorted(bad)}; allowed: {sorted(_CLASS_KEYS)}"
                )
            if "name" in c and not isinstance(c["name"], str):
                raise ValueError(f"{ctx}: 'name' must be a string, got {c['name']!r}")
            syn = c.get("synonyms")
            if syn is None:
                if not isinstance(c.get("name"), str):
                    raise ValueError(
                        f"{ctx}: give 'name' (a string) or 'synonyms' (a list of strings)"
                    )
                syn = split_synonyms(c["name"])
            elif isinstance(syn, str):
                syn = split_synonyms(syn)
            elif not isinstance(syn, list) or not all(isinstance(s, str) for s in syn):
                raise ValueError(f"{ctx}: 'synonyms' must be a list of strings")
            syn = tuple(s.strip() for s in syn)
            if "name" in c and "synonyms" in c and syn and c["name"].strip() != syn[0]:
                raise ValueError(
                    f"{ctx}: 'name' ({c['name']!r}) must be the first synonym ({syn[0]!r}); drop "
                    "'name' or reorder the synonyms"
                )
            synonyms.append(syn)
            flag = c.get("thing", True)
            if not isinstance(flag, bool):
                raise ValueError(
                    f"{ctx} ('{syn[0] if syn else ''}'): 'thing' is {flag!r}; use true or false"
                )
            flags.append(flag)
            ids.append(c.get("id"))
            src = c.get("sources", {})
            if not isinstance(src, dict):
                raise ValueError(f"{ctx}: 'sources' must be an object {{source: [ids]}}")
            for s_name, s_ids in src.items():
                if not isinstance(s_ids, list):
                    raise ValueError(f"{ctx}: sources['{s_name}'] must be a list of ids")
                sources.setdefault(s_name, [()] * len(classes))[i] = tuple(s_ids)
        have_ids = [x is not None for x in ids]
        if any(have_ids) and not all(have_ids):
            missing = have_ids.index(False)
            raise ValueError(
                f"{where}: class {missing} has no 'id' but others do; give every class an id or none"
            )
        try:
            return cls(
                tuple(synonyms),
                tuple(flags),
                dataset_ids=tuple(ids) if all(have_ids) and ids else None,
                name=name,
                sources=sources or None,
                description=str(data.get("description", "")),
            )
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form read by :meth:`from_dict`."""
        classes = []
        for i, syn in enumerate(self.synonyms):
            c: dict[str, Any] = {"name": syn[0], "synonyms": list(syn), "thing": self.is_thing[i]}
            if self.dataset_ids is not None:
                c["id"] = self.dataset_ids[i]
            if self.sources:
                c["sources"] = {k: list(v[i]) for k, v in self.sources.items()}
            classes.append(c)
        out: dict[str, Any] = {"format": _FORMAT, "version": 1, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["classes"] = classes
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON form (one class per line, readable in diffs)."""
        d = self.to_dict()
        classes = d.pop("classes")
        head = json.dumps(d, ensure_ascii=False)[:-1]
        body = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in classes)
        Path(path).write_text(f'{head}, "classes": [\n{body}\n]}}\n', encoding="utf-8")


# ---------------------------------------------------------------------- helpers
def _as_synonym_tuple(s: Any, k: int) -> tuple[str, ...]:
    if isinstance(s, str) or not isinstance(s, Iterable):
        raise ValueError(
            f"class {k}: synonyms must be a list of strings, got {s!r}; "
            "use Vocabulary.from_names to parse 'a, b, c' strings"
        )
    out = []
    for j, x in enumerate(s):
        if not isinstance(x, str):
            raise ValueError(f"class {k}: synonym {j} is a {type(x).__name__}, not a string")
        x = " ".join(x.split())
        if not x:
            raise ValueError(
                f"class {k}: synonym {j} is empty (a stray comma or blank name?); remove it"
            )
        out.append(x)
    if not out:
        raise ValueError(f"class {k} has no name: give at least one synonym")
    return tuple(out)


def _check_ids(ids: Sequence[Any], what: str) -> None:
    seen: set[int] = set()
    for d in ids:
        if isinstance(d, bool) or not isinstance(d, int):
            raise ValueError(f"{what}: id {d!r} is not an integer")
        if d in seen:
            raise ValueError(f"{what}: id {d} is used twice; each id may name one class only")
        seen.add(d)


def _parse_lines(lines: Sequence[str], name: str, where: str, numbered: bool = False) -> Vocabulary:
    synonyms: list[tuple[str, ...]] = []
    flags: list[bool] = []
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ctx = f"{where}, line {n}" if numbered else f"{where}, entry {line!r}"
        body, sep, flag = line.partition("|")
        flag = flag.strip().lower()
        if sep and flag not in ("thing", "stuff"):
            raise ValueError(f"{ctx}: unknown flag {flag!r} after '|'; use '| thing' or '| stuff'")
        syn = split_synonyms(body)
        if any(not s for s in syn):
            raise ValueError(f"{ctx}: empty class name or synonym (stray comma?); remove it")
        synonyms.append(tuple(syn))
        flags.append(flag != "stuff")
    if not synonyms:
        raise ValueError(f"{where}: no classes found; write one class per line")
    try:
        return Vocabulary(tuple(synonyms), tuple(flags), name=name)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def merge_vocabularies(vocabs: Sequence[Vocabulary], name: str = "merged") -> Vocabulary:
    """Merge vocabularies the way the official ``ConcatOVDataset`` does.

    Things are merged with things and stuff with stuff. Walking the vocabularies in order, a class
    joins the first already-merged class of its kind that shares any synonym with it (keeping that
    class's synonyms); otherwise it is appended. The result lists all things, then all stuff, in
    first-seen order. ``sources[v.name]`` records, per merged class, the ids of ``v`` folded into
    it: ``v.dataset_ids`` when present, else ``v``'s class indices.

    The official code compares raw class strings after ``'/' -> ','`` and ``'_' -> ' '`` (no
    lower-casing, no stripping); the builtin lists contain neither capitals nor spaces around commas,
    so comparing parsed synonyms gives the same result for them.

    Raises:
        ValueError: fewer than one vocabulary, or two with the same name.
    """
    vocabs = list(vocabs)
    if not vocabs:
        raise ValueError("merge_vocabularies needs at least one vocabulary")
    names = [v.name for v in vocabs]
    if len(set(names)) != len(names):
        raise ValueError(f"vocabularies to merge must have distinct names, got {names}")
    merged: dict[bool, list[list[Any]]] = {
        True: [],
        False: [],
    }  # kind -> [[synonyms, {src: [ids]}]]
    for v in vocabs:
        ids = v.dataset_ids if v.dataset_ids is not None else tuple(range(len(v)))
        for syn, thing, d in zip(v.synonyms, v.is_thing, ids):
            pool = merged[thing]
            key = set(syn)
            hit = next((m for m in pool if key & set(m[0])), None)
            if hit is None:
                hit = [syn, {}]
                pool.append(hit)
            hit[1].setdefault(v.name, []).append(d)
    rows = merged[True] + merged[False]
    return Vocabulary(
        tuple(r[0] for r in rows),
        tuple([True] * len(merged[True]) + [False] * len(merged[False])),
        dataset_ids=None,
        name=name,
        sources={n: tuple(tuple(r[1].get(n, ())) for r in rows) for n in names},
    )
