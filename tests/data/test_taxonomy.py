"""Taxonomy merging (the official ConcatOVDataset rule): examples and properties."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.data.taxonomy import display_name, merge_taxonomies, synonyms


def test_coco_plus_ytvis_style_merge():
    coco = (["person", "car", "sky-other-merged", "wall"], [True, True, False, False])
    ytvis = (["person", "ape", "car", "sedan/car"], [True, True, True, True])
    m = merge_taxonomies([coco, ytvis])
    assert m.names == ("person", "car", "ape", "sky-other-merged", "wall")
    assert m.is_thing == (True, True, True, False, False) and m.num_things == 3
    assert m.index_maps[0].tolist() == [0, 1, 3, 4]  # stuff moves behind all things
    assert m.index_maps[1].tolist() == [0, 2, 1, 1]  # "sedan/car" shares "car"
    assert m.index_maps[1].dtype == np.int64


def test_name_normalisation():
    assert synonyms("traffic_light") == synonyms("Traffic Light") == {"traffic light"}
    assert synonyms("floor, flooring") == {"floor", "flooring"}
    assert synonyms("a/b") == {"a", "b"}
    assert display_name("handrail_or_fence") == "handrail or fence"
    assert display_name("bag/package") == "bag, package"
    m = merge_taxonomies([(["floor, flooring"], [False]), (["Flooring"], [False])])
    assert m.names == ("floor, flooring",) and m.index_maps[1].tolist() == [0]


def test_things_and_stuff_never_merge():
    m = merge_taxonomies([(["tree"], [True]), (["tree"], [False])])
    assert m.names == ("tree", "tree") and m.is_thing == (True, False)
    assert [mp.tolist() for mp in m.index_maps] == [[0], [1]]


def test_matching_uses_the_creating_name_only():
    # "y, z" joins "x, y"; "z" does not see the "z" synonym added later (official behaviour)
    m = merge_taxonomies([(["x, y"], [True]), (["y, z"], [True]), (["z"], [True])])
    assert m.names == ("x, y", "z")
    assert [mp.tolist() for mp in m.index_maps] == [[0], [0], [1]]


def test_first_matching_entry_wins_and_duplicates_inside_one_dataset():
    m = merge_taxonomies([(["cup", "mug"], [True, True]), (["mug, cup", "cup"], [True, True])])
    assert [mp.tolist() for mp in m.index_maps] == [[0, 1], [0, 0]]


def test_class_agnostic_dataset_and_dataset_objects():
    ds = SimpleNamespace(classes=("cat", "grass"), thing_flags=(True, False))
    m = merge_taxonomies([([], []), ds])
    assert m.index_maps[0].shape == (0,) and m.index_maps[1].tolist() == [0, 1]
    assert m.remap(1, np.array([[1, 0]])).tolist() == [[1, 0]]


@pytest.mark.parametrize(
    "bad, message",
    [
        ((["a", "b"], [True]), "2 names but 1"),
        (([" , "], [True]), "empty or non-string"),
        (([3], [True]), "empty or non-string"),
        (("ab",), "pair"),
    ],
)
def test_invalid_taxonomies(bad, message):
    with pytest.raises(ValueError, match=message):
        merge_taxonomies([bad])


WORDS = st.sampled_from(["cat", "dog", "Dog", "car", "sky", "floor", "flooring", "big_car", "tv"])
NAMES = st.lists(WORDS, min_size=1, max_size=3).map(", ".join)
TAXO = st.lists(st.tuples(NAMES, st.booleans()), max_size=6).map(
    lambda items: ([n for n, _ in items], [t for _, t in items])
)


@settings(max_examples=80, deadline=None)
@given(st.lists(TAXO, min_size=1, max_size=4))
def test_merge_properties(taxonomies):
    m = merge_taxonomies(taxonomies)
    k = len(m.names)
    assert m.is_thing == (True,) * m.num_things + (False,) * (k - m.num_things)
    for (names, things), mp in zip(taxonomies, m.index_maps, strict=True):
        assert mp.shape == (len(names),)
        for name, thing, idx in zip(names, things, mp, strict=True):
            assert 0 <= idx < k and m.is_thing[idx] == thing
            # a class shares a synonym with the merged entry it maps to
            assert synonyms(name) & synonyms(m.names[idx])
    # two classes with the same synonyms and kind always end up together
    seen: dict[tuple[frozenset[str], bool], int] = {}
    for (names, things), mp in zip(taxonomies, m.index_maps, strict=True):
        for name, thing, idx in zip(names, things, mp, strict=True):
            assert seen.setdefault((synonyms(name), thing), int(idx)) == idx
    # every merged entry is used by someone
    used = set(np.concatenate([mp for mp in m.index_maps] + [np.zeros(0, np.int64)]).tolist())
    assert used == set(range(k))
