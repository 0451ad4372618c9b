"""The (K, P, D) classifier: gen_cls arithmetic by hand, files, official round trip, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.vocab import (
    VILD_TEMPLATES,
    ClassifierFile,
    HashingEncoder,
    Vocabulary,
    build_classifier,
    build_classifier_file,
    check_templates,
    convert_official,
    load_classifier,
    load_official,
    make_encoder,
)


class LookupEncoder:
    """Fake encoder returning hand-picked vectors; records what it was asked to encode."""

    def __init__(self, table: dict[str, tuple[float, ...]]) -> None:
        self.table = table
        self.dim = len(next(iter(table.values())))
        self.name = "lookup"
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return torch.tensor([self.table[t] for t in texts], dtype=torch.float32)


# ---------------------------------------------------------------------- arithmetic
def test_template_synonym_padding_arithmetic_by_hand():
    # class A: synonyms a1, a2; class B: b1 (padded to P = 2); templates "{}" and "x {}".
    vocab = Vocabulary((("a1", "a2"), ("b1",)), (True, False))
    enc = LookupEncoder(
        {
            "a1": (3.0, 4.0, 0.0),
            "x a1": (0.0, 0.0, 10.0),  # units (.6,.8,0), (0,0,1)
            "a2": (1.0, 0.0, 0.0),
            "x a2": (0.0, 2.0, 0.0),  # units (1,0,0), (0,1,0)
            "b1": (0.0, 0.0, -2.0),
            "x b1": (0.0, 0.0, -7.0),  # both (0,0,-1)
        }
    )
    emb = build_classifier(vocab, enc, templates=("{}", "x {}"))
    # a1: mean of units (.3,.4,.5), norm sqrt(.5) -> (.3,.4,.5)/sqrt(.5)
    # (averaging before normalising would give (3,4,10)/sqrt(125) instead)
    r = math.sqrt(0.5)
    expected = torch.tensor(
        [
            [[0.3 / r, 0.4 / r, 0.5 / r], [0.5 / r, 0.5 / r, 0.0]],
            [[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]],  # B padded by repeating its first synonym
        ]
    )
    assert emb.shape == (2, 2, 3) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, expected, rtol=0, atol=1e-6)
    assert enc.seen == ["a1", "x a1", "a2", "x a2", "b1", "x b1"]


def test_vild_templates_expand_every_synonym():
    assert len(VILD_TEMPLATES) == 14 and VILD_TEMPLATES[0] == "a photo of a {}."
    assert (
        VILD_TEMPLATES[1] == "This is a photo of a {}"
        and VILD_TEMPLATES[-1] == "There is a large {} in the scene."
    )
    enc = HashingEncoder(dim=8)
    vocab = Vocabulary.from_names(["person, child", "sky"], [True, False])
    build_classifier(vocab, enc, chunk_size=5)
    sent = [s for call in enc.calls for s in call]
    assert len(sent) == 3 * 14 and max(len(c) for c in enc.calls) == 5
    assert sent[0] == "a photo of a person." and sent[14] == "a photo of a child."
    assert sent[-1] == "There is a large sky in the scene."


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.integers(4, 8))
def test_shape_unit_rows_and_padding(counts, dim):
    syns = tuple(tuple(f"c{k}s{j}" for j in range(n)) for k, n in enumerate(counts))
    vocab = Vocabulary(syns, (True,) * len(counts))
    emb = build_classifier(vocab, HashingEncoder(dim), templates=("{}", "a {}."))
    assert emb.shape == (len(counts), max(counts), dim)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(emb.shape[:2]), rtol=0, atol=1e-5)
    for k, n in enumerate(counts):
        for j in range(n, max(counts)):
            assert torch.equal(emb[k, j], emb[k, 0])


def test_hashing_encoder_is_deterministic():
    a = HashingEncoder(16).encode(["a photo of a cat.", "dog"])
    b = HashingEncoder(16).encode(["dog", "a photo of a cat."])
    assert torch.equal(a[0], b[1]) and not torch.equal(a[0], a[1])
    # pinned values (SHAKE-256 of the UTF-8 text read as little-endian uint32, mapped to [-1, 1)):
    # independent of torch / numpy versions and of dim (a longer vector extends a shorter one)
    assert a[1, :3].tolist() == pytest.approx([0.9158972, 0.3109284, 0.4730872], abs=1e-6)
    assert HashingEncoder(3).encode(["dog"])[0].tolist() == a[1, :3].tolist()


def test_build_errors():
    vocab = Vocabulary.from_names(["cat"])
    with pytest.raises(ValueError, match="exactly one '\\{\\}'"):
        build_classifier(vocab, HashingEncoder(4), templates=("a photo",))
    with pytest.raises(ValueError, match="listed twice"):
        check_templates(["{}", "{}"])
    with pytest.raises(ValueError, match="not one string"):
        check_templates("a {}")

    class Bad(HashingEncoder):
        def encode(self, texts):
            return torch.zeros(len(texts), self.dim + 1)

    with pytest.raises(ValueError, match="expected a tensor \\(14, 4\\)"):
        build_classifier(vocab, Bad(4))

    class Zero(HashingEncoder):
        def encode(self, texts):
            return torch.zeros(len(texts), self.dim)

    with pytest.raises(ValueError, match="zero vector"):
        build_classifier(vocab, Zero(4))
    cancel = LookupEncoder({"a": (1.0, 0.0), "x a": (-2.0, 0.0)})
    with pytest.raises(ValueError, match="template average of synonym 0 is ~0"):
        build_classifier(Vocabulary.from_names(["a"]), cancel, templates=("{}", "x {}"))
    with pytest.raises(ValueError, match="must be a Vocabulary"):
        build_classifier(["cat"], HashingEncoder(4))


def test_unknown_encoder_and_missing_weights():
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        make_encoder("bert")
    with pytest.raises(ValueError, match="needs its weights"):
        make_encoder("clip")
    with pytest.raises(ValueError, match="needs --weights DIR"):
        make_encoder("sentence-transformer")


# ---------------------------------------------------------------------- files
@pytest.fixture
def small_file():
    vocab = Vocabulary.from_names(
        ["person, child, girl", "cat", "sky, clouds"], [True, True, False]
    )
    return build_classifier_file(vocab, HashingEncoder(12), templates=("{}", "a photo of a {}."))


def test_classifier_file_round_trip(tmp_path, small_file):
    path = tmp_path / "c.safetensors"
    small_file.save(path)
    emb, vocab, meta = load_classifier(path, expected_dim=12)
    assert torch.equal(emb, small_file.embeddings) and emb.shape == (3, 3, 12)
    assert vocab == small_file.vocabulary and vocab.names == ("person", "cat", "sky")
    assert vocab.is_thing == (True, True, False)
    assert meta["encoder"] == "hashing:12" and meta["dim"] == 12
    assert meta["templates"] == ["{}", "a photo of a {}."]
    assert meta["info"]["built_by"] == "rapsam.vocab.build_classifier"


def test_dim_mismatch_is_a_clear_error(tmp_path, small_file):
    path = tmp_path / "c.safetensors"
    small_file.save(path)
    with pytest.raises(
        ValueError, match="size 12 \\(encoder 'hashing:12'\\) but the model expects 768"
    ):
        load_classifier(path, expected_dim=768)


def _write_raw(path, emb, meta):
    from safetensors.torch import save_file

    save_file({"embeddings": emb.contiguous()}, str(path), metadata=meta)


def test_damaged_files_are_clear_errors(tmp_path, small_file):
    meta = small_file.metadata()
    bad = tmp_path / "bad.safetensors"
    emb = small_file.embeddings
    _write_raw(bad, emb * 2, meta)
    with pytest.raises(ValueError, match="row \\(0, 0\\) has norm 2.0000"):
        load_classifier(bad)
    _write_raw(bad, emb[:, 0, :], {**meta, "dim": "12"})
    with pytest.raises(
        ValueError, match="shape \\(3, 12\\); expected \\(K classes, P prototypes, D\\)"
    ):
        load_classifier(bad)
    _write_raw(bad, emb[:2], meta)
    with pytest.raises(ValueError, match="2 classes but vocabulary 'custom' has 3"):
        load_classifier(bad)
    _write_raw(bad, emb[:, :2], meta)
    with pytest.raises(ValueError, match="2 prototypes per class .* class with 3 synonyms"):
        load_classifier(bad)
    _write_raw(bad, emb, {k: v for k, v in meta.items() if k != "format"})
    with pytest.raises(ValueError, match="not a rapsam classifier file"):
        load_classifier(bad)
    _write_raw(bad, emb, {**meta, "vocabulary": "{"})
    with pytest.raises(ValueError, match="damaged metadata"):
        load_classifier(bad)
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_classifier(bad)
    with pytest.raises(ValueError, match="not found"):
        load_classifier(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="rapsam vocab convert"):
        load_classifier(tmp_path / "official.pth")
    with pytest.raises(ValueError, match="\\.safetensors"):
        small_file.save(tmp_path / "c.pth")


# ---------------------------------------------------------------------- official layout
def test_official_and_ours_round_trip(tmp_path, small_file):
    # ours -> official layout (a bare torch.save-d tensor) -> ours
    pth = tmp_path / "official.pth"
    torch.save(small_file.embeddings.clone(), pth)
    cf = convert_official(pth, small_file.vocabulary)
    out = tmp_path / "conv.safetensors"
    cf.save(out)
    emb, vocab, meta = load_classifier(out)
    assert torch.equal(emb, small_file.embeddings) and vocab == small_file.vocabulary
    assert meta["info"]["converted_from"] == "official.pth" and len(meta["info"]["sha256"]) == 64
    # and back: what we load is exactly the official layout
    torch.save(emb, tmp_path / "again.pth")
    assert torch.equal(load_official(tmp_path / "again.pth"), load_official(pth))


@pytest.fixture(scope="module")
def official_coco_pth(tmp_path_factory, official_gen):
    """An official-layout COCO classifier (133, 17, 768) made by the fixture generator."""
    path = tmp_path_factory.mktemp("off") / "convnext_large_d_320_CocoPanopticOVDataset.pth"
    torch.save(torch.from_numpy(official_gen.make_classifier(seed=1)), path)
    return path


def test_convert_official_coco_fixture(tmp_path, official_coco_pth):
    cf = convert_official(official_coco_pth, "coco_panoptic")
    assert cf.embeddings.shape == (133, 17, 768) and cf.vocabulary.name == "coco_panoptic"
    assert cf.encoder == "open_clip:convnext_large_d_320:laion2b_s29b_b131k_ft_soup"
    cf.save(tmp_path / "coco.safetensors")
    emb, vocab, _ = load_classifier(tmp_path / "coco.safetensors", expected_dim=768)
    assert torch.equal(emb, torch.load(official_coco_pth, weights_only=True))
    assert vocab.num_things == 80


def test_convert_official_rejects_wrong_vocabulary(official_coco_pth, tmp_path):
    with pytest.raises(
        ValueError, match="133 classes but vocabulary 'ytvis_2019' has 40.*\\['coco_panoptic'\\]"
    ):
        convert_official(official_coco_pth, "ytvis_2019")
    # same class count, different synonym counts: the padding fingerprint disagrees
    t = torch.load(official_coco_pth, weights_only=True)
    shuffled = Vocabulary.load("coco_panoptic")
    swapped = Vocabulary(
        (shuffled.synonyms[1], shuffled.synonyms[0]) + shuffled.synonyms[2:], shuffled.is_thing
    )
    with pytest.raises(
        ValueError, match="class 0 \\('bicycle'\\) has 17 distinct prototypes .* lists 4"
    ):
        convert_official(official_coco_pth, swapped)
    assert convert_official(official_coco_pth, swapped, check_padding=False).vocabulary == swapped
    # P not equal to the vocabulary's largest synonym count
    torch.save(torch.cat([t, t[:, :1]], dim=1), tmp_path / "p18.pth")
    with pytest.raises(ValueError, match="18 prototypes per class .* pads to 17"):
        convert_official(tmp_path / "p18.pth", "coco_panoptic")


def test_load_official_errors(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "dict.pth")
    with pytest.raises(ValueError, match="holds a dict, not a tensor"):
        load_official(tmp_path / "dict.pth")
    torch.save(torch.ones(2, 3), tmp_path / "flat.pth")
    with pytest.raises(ValueError, match="expected \\(K classes, P prototypes, D\\)"):
        load_official(tmp_path / "flat.pth")
    torch.save(torch.ones(2, 1, 4), tmp_path / "norm.pth")
    with pytest.raises(ValueError, match="unit norm"):
        load_official(tmp_path / "norm.pth")
    with pytest.raises(ValueError, match="not found"):
        load_official(tmp_path / "none.pth")


def test_classifier_file_validates_on_construction():
    vocab = Vocabulary.from_names(["cat", "dog"])
    with pytest.raises(ValueError, match="1 classes but vocabulary 'custom' has 2"):
        ClassifierFile(torch.ones(1, 1, 1), vocab, "x")
    with pytest.raises(ValueError, match="NaN"):
        ClassifierFile(torch.full((2, 1, 1), float("nan")), vocab, "x")
