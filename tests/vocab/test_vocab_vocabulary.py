"""Vocabularies: builtin data against the official lists, parsing, merging and clear errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.vocab import BUILTIN_VOCABULARIES, Vocabulary, merge_vocabularies, split_synonyms

# COCO_SYNONYM_COUNTS of shared/fixtures/official/gen.py (the official fixtures' record of how many
# synonyms each of the 133 CocoPanopticOVDataset classes has). Kept here so the check runs where
# the fixtures are absent; test_counts_copy_matches_fixture_gen keeps the copy honest
# (official_gen is the tests/conftest.py fixture loading ../shared/fixtures/official/gen.py).
COCO_SYNONYM_COUNTS = [
    17,
    4,
    2,
    2,
    2,
    2,
    5,
    2,
    2,
    1,
    1,
    1,
    1,
    2,
    2,
    4,
    4,
    3,
    1,
    3,
    2,
    2,
    2,
    2,
    2,
    2,
    2,
    1,
    2,
    1,
    1,
    1,
    1,
    2,
    1,
    1,
    1,
    1,
    1,
    3,
    3,
    4,
    2,
    2,
    2,
    2,
    2,
    3,
    2,
    1,
    1,
    2,
    1,
    1,
    2,
    2,
    2,
    3,
    6,
    2,
    7,
    1,
    1,
    1,
    1,
    2,
    1,
    2,
    1,
    2,
    1,
    2,
    2,
    2,
    1,
    2,
    2,
    2,
    1,
    2,
    2,
    2,
    1,
    1,
    1,
    2,
    2,
    1,
    2,
    2,
    1,
    1,
    4,
    1,
    1,
    2,
    1,
    5,
    1,
    1,
    1,
    1,
    1,
    4,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    1,
    4,
    2,
    1,
    2,
    2,
    1,
    3,
    1,
    2,
    1,
    1,
    1,
    1,
    2,
    1,
    2,
    1,
]

# YouTube-VIS 2019 names exactly as the official YouTubeVISDatasetV2 lists them (ids 1..40).
YTVIS_2019_RAW = (
    "person",
    "giant_panda",
    "lizard",
    "parrot",
    "skateboard",
    "sedan",
    "ape",
    "dog",
    "snake",
    "monkey",
    "hand",
    "rabbit",
    "duck",
    "cat",
    "cow",
    "fish",
    "train",
    "horse",
    "turtle",
    "bear",
    "motorbike",
    "giraffe",
    "leopard",
    "fox",
    "deer",
    "owl",
    "surfboard",
    "airplane",
    "truck",
    "zebra",
    "tiger",
    "elephant",
    "snowboard",
    "boat",
    "shark",
    "mouse",
    "frog",
    "eagle",
    "earless_seal",
    "tennis_racket",
)


# ---------------------------------------------------------------------- builtin data
def test_coco_panoptic_matches_official_counts_and_ids():
    v = Vocabulary.load("coco_panoptic")
    assert len(v) == 133 and v.num_things == 80 and v.num_stuff == 53
    assert list(v.synonym_counts) == COCO_SYNONYM_COUNTS
    assert v.max_synonyms == 17
    assert v.synonyms[0][:3] == ("person", "child", "girl") and v.synonyms[0][-1] == "clothes"
    assert v.names[49] == "orange fruit" and v.names[65] == "tv remote"
    # COCO panoptic category ids: things 1..90 with gaps, stuff 92..200
    assert v.dataset_ids[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
    assert v.dataset_ids[79] == 90 and v.dataset_ids[80] == 92 and v.dataset_ids[-1] == 200
    assert v.id_to_index()[200] == 132 and v.names[v.id_to_index()[130]] == "lamp"


def test_counts_copy_matches_fixture_gen(official_gen):
    gen = official_gen
    assert list(gen.COCO_SYNONYM_COUNTS) == COCO_SYNONYM_COUNTS
    assert list(Vocabulary.load("coco_panoptic").synonym_counts) == list(gen.COCO_SYNONYM_COUNTS)


def test_ytvis_vocabularies():
    y19 = Vocabulary.load("ytvis_2019")
    assert y19.names == tuple(n.replace("_", " ") for n in YTVIS_2019_RAW)
    assert y19.dataset_ids == tuple(range(1, 41)) and y19.num_things == 40
    y21 = Vocabulary.load("ytvis_2021")
    assert len(y21) == 40 and y21.names[0] == "airplane" and y21.names[13] == "flying disc"
    assert y21.names[-1] == "zebra" and y21.max_synonyms == 1
    assert set(y21.names) - set(y19.names) == {"bird", "car", "flying disc", "squirrel", "whale"}


def _official_concat_merge(dataset_classes):
    """Transcription of the official ConcatOVDataset class merge over raw class strings."""
    things, stuff = [], []
    for th, su in dataset_classes:
        for out, names in ((things, th), (stuff, su)):
            for cls in names:
                cls = cls.replace("/", ",").replace("_", " ")
                if not any(set(cls.split(",")) & set(a.split(",")) for a in out):
                    out.append(cls)
    return things, stuff


def test_merged_vocabulary_is_the_official_concat_order():
    coco = Vocabulary.load("coco_panoptic")
    raw_coco_things = [",".join(s) for s in coco.synonyms[:80]]
    raw_coco_stuff = [",".join(s) for s in coco.synonyms[80:]]
    things, stuff = _official_concat_merge(
        [(raw_coco_things, raw_coco_stuff), (YTVIS_2019_RAW, [])]
    )
    merged = Vocabulary.load("coco_ytvis2019_merged")
    assert len(things) == 102 and len(stuff) == 53
    assert [",".join(s) for s in merged.synonyms] == things + stuff
    assert merged.num_things == 102 and merged.num_stuff == 53 and merged.max_synonyms == 17
    # and our merge function gives the same thing
    assert merge_vocabularies([coco, Vocabulary.load("ytvis_2019")], name=merged.name) == merged


def test_merged_sources_map_dataset_ids():
    merged = Vocabulary.load("coco_ytvis2019_merged")
    coco_map = merged.id_to_index("coco_panoptic")
    yt_map = merged.id_to_index("ytvis_2019")
    assert len(coco_map) == 133 and len(yt_map) == 40
    assert coco_map[1] == yt_map[1] == 0  # person
    assert merged.names[yt_map[2]] == "giant panda" and yt_map[2] == 80  # first new YT class
    assert merged.names[yt_map[21]] == "motorbike"  # no synonym overlap with 'motorcycle'
    assert yt_map[36] == coco_map[74]  # YT 'mouse' (animal) folds into COCO 'mouse' as officially
    assert coco_map[92] == 102  # first stuff class follows the 102 things
    with pytest.raises(ValueError, match="merged"):
        merged.id_to_index()


def test_vocabularies_are_immutable_and_hashable():
    merged = Vocabulary.load("coco_ytvis2019_merged")
    assert hash(merged) == hash(Vocabulary.load("coco_ytvis2019_merged"))
    assert len({merged, Vocabulary.load("coco_panoptic"), merged}) == 2
    with pytest.raises(TypeError):
        merged.sources["ytvis_2019"] = ()
    with pytest.raises(AttributeError):
        merged.name = "x"


def test_builtin_files_round_trip(tmp_path):
    for name in BUILTIN_VOCABULARIES:
        v = Vocabulary.builtin(name)
        v.save(tmp_path / f"{name}.json")
        assert Vocabulary.load(tmp_path / f"{name}.json") == v


# ---------------------------------------------------------------------- parsing
def test_split_synonyms_official_rule():
    assert split_synonyms("Cup_or_mug/glass, water_cup") == ["cup", "mug", "glass", "water cup"]
    assert split_synonyms("giant_panda") == ["giant panda"]


words = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.lists(words, min_size=1, max_size=5), st.data())
def test_split_synonyms_any_separator(parts, data):
    seps = [data.draw(st.sampled_from([",", "_or_", "/", " , "])) for _ in parts[1:]]
    text = parts[0] + "".join(s + p for s, p in zip(seps, parts[1:]))
    assert split_synonyms(text) == parts


def test_text_file_format(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("# my classes\nperson, child\n\ngiant_panda\nsky/clouds | stuff\nroad | STUFF\n")
    v = Vocabulary.load(f)
    assert v.name == "mine"
    assert v.synonyms == (("person", "child"), ("giant panda",), ("sky", "clouds"), ("road",))
    assert v.is_thing == (True, True, False, False) and v.num_things == 2
    assert v.dataset_ids is None


def test_inline_and_from_names():
    v = Vocabulary.from_string("cat, kitty; dog\nsky | stuff")
    assert v.names == ("cat", "dog", "sky") and v.is_thing == (True, True, False)
    w = Vocabulary.from_names(["cat, kitty", "dog", "sky"], is_thing=[True, True, False])
    assert w == v and len(w) == 3


def test_json_user_formats(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(["cat,kitty", "dog"]))
    assert Vocabulary.load(f).synonyms == (("cat", "kitty"), ("dog",))
    f.write_text(
        json.dumps(
            {
                "name": "pets",
                "classes": [
                    {"synonyms": ["cat", "kitty"], "id": 7},
                    {"name": "grass", "thing": False, "id": 3},
                ],
            }
        )
    )
    v = Vocabulary.load(f)
    assert v.name == "pets" and v.names == ("cat", "grass") and v.dataset_ids == (7, 3)
    assert v.is_thing == (True, False)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(words, min_size=1, max_size=3, unique=True), min_size=1, max_size=6),
    st.data(),
)
def test_save_load_round_trip(tmp_path_factory, syns, data):
    seen, clean = set(), []
    for s in syns:  # a synonym may belong to one class only
        s = [w for w in s if w not in seen]
        if s:
            clean.append(tuple(s))
            seen.update(s)
    n_things = data.draw(st.integers(0, len(clean)))
    v = Vocabulary(
        tuple(clean), tuple([True] * n_things + [False] * (len(clean) - n_things)), name="h"
    )
    path = tmp_path_factory.mktemp("rt") / "v.json"
    v.save(path)
    assert Vocabulary.load(path) == v


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "text, match",
    [
        ("cat\ndog\ncat\n", "synonym 'cat' belongs to class 0"),
        ("cat, kitty, cat\n", "lists synonym 'cat' twice"),
        ("cat\nmouse, kitty\nkitty\n", "belongs to class 1"),
        ("cat\n,dog\n", "line 2: empty class name"),
        ("cat,\n", "line 1: empty"),
        ("sky | stuf\n", "line 1: unknown flag 'stuf'"),
        ("sky | stuff\ncat\n", "thing class 1 .* comes after stuff class 0"),
        ("# only comments\n\n", "no classes found"),
    ],
)
def test_malformed_text_files(tmp_path, text, match):
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        Vocabulary.load(f)
    assert str(f) in str(e.value)


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"classes": [{"name": "cat", "thing": "yes"}]}, "'thing' is 'yes'; use true or false"),
        ({"classes": [{"name": "cat", "thing": 1}]}, "use true or false"),
        ({"classes": [{"name": "cat", "thign": True}]}, "unknown keys \\['thign'\\]"),
        ({"classes": [{"name": ""}]}, "empty"),
        ({"classes": [{"synonyms": []}]}, "no name"),
        ({"classes": [{"synonyms": ["cat", " "]}]}, "synonym 1 is empty"),
        ({"classes": [{"name": "cat", "synonyms": ["kitty", "cat"]}]}, "must be the first synonym"),
        ({"classes": [{"name": "cat", "id": 1}, {"name": "dog"}]}, "class 1 has no 'id'"),
        ({"classes": [{"name": "cat", "id": 1}, {"name": "dog", "id": 1}]}, "id 1 is used twice"),
        ({"classes": [{"name": "cat", "id": "1"}]}, "not an integer"),
        ({"classes": []}, "no classes"),
        ({"classes": "cat"}, "'classes' must be a list"),
        ({"format": "other", "classes": ["cat"]}, "format is 'other'"),
        ({"clases": ["cat"]}, "unknown keys"),
        ({"classes": [{"name": 3}]}, "'name' must be a string"),
        ({"classes": [{"name": "sky", "thing": False}, {"name": "cat"}]}, "list all things first"),
    ],
)
def test_malformed_json_files(tmp_path, obj, match):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=match):
        Vocabulary.load(f)


def test_invalid_json_and_unknown_names(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        Vocabulary.load(f)
    with pytest.raises(ValueError, match="neither a builtin vocabulary"):
        Vocabulary.load("coco_panoptc")
    with pytest.raises(ValueError, match="unknown builtin vocabulary"):
        Vocabulary.builtin("coco")
    with pytest.raises(ValueError, match="neither a builtin"):
        Vocabulary.load(tmp_path / "missing.txt")


def test_direct_construction_errors():
    with pytest.raises(ValueError, match="2 classes but 1 thing/stuff flags"):
        Vocabulary((("a",), ("b",)), (True,))
    with pytest.raises(ValueError, match="synonyms must be a list of strings"):
        Vocabulary(("cat",), (True,))
    with pytest.raises(ValueError, match="thing flag of class 0"):
        Vocabulary((("a",),), (1,))
    with pytest.raises(ValueError, match="1 classes but 2 dataset ids"):
        Vocabulary((("a",),), (True,), dataset_ids=(1, 2))
    with pytest.raises(ValueError, match="from_string"):
        Vocabulary.from_names("cat, dog")
    with pytest.raises(ValueError, match="distinct names"):
        v = Vocabulary.from_names(["cat"])
        merge_vocabularies([v, v])
