"""``rapsam vocab`` commands: plumbing with a fake encoder, conversion, and one-line errors."""

from __future__ import annotations

import argparse
import re

import pytest
import torch

from rapsam.vocab import HashingEncoder, Vocabulary, build_classifier, load_classifier
from rapsam.vocab import encoders as enc_mod
from rapsam.vocab.cli import main, register


@pytest.fixture
def fake_encoder(monkeypatch):
    """Route --encoder to a HashingEncoder(8) and record the arguments it was built with."""
    seen = {}

    def fake_make_encoder(name, **kw):
        seen.update(name=name, **kw)
        return HashingEncoder(8)

    monkeypatch.setattr(enc_mod, "make_encoder", fake_make_encoder)
    return seen


def test_register_into_an_outer_parser():
    parser = argparse.ArgumentParser(prog="rapsam")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(
        ["vocab", "build", "coco_panoptic", "--encoder", "minilm", "--out", "x.safetensors"]
    )
    assert args.command == "vocab" and args.vocab_command == "build" and callable(args.func)
    assert args.names == "coco_panoptic" and args.encoder == "minilm"


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "coco_panoptic" in out and "133 classes (80 things, 53 stuff), P=17" in out
    assert "coco_ytvis2019_merged" in out and "155 classes (102 things, 53 stuff)" in out


def test_build_from_text_file(tmp_path, fake_encoder, capsys):
    names = tmp_path / "mine.txt"
    names.write_text("person, child\ncat\nsky | stuff\n")
    tpl = tmp_path / "templates.txt"
    tpl.write_text("a photo of a {}.\n\nthe {}\n")
    out = tmp_path / "mine.safetensors"
    rc = main(
        [
            "build",
            str(names),
            "--encoder",
            "clip",
            "--weights",
            "w.bin",
            "--templates",
            str(tpl),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert fake_encoder["name"] == "clip" and fake_encoder["weights"] == "w.bin"
    emb, vocab, meta = load_classifier(out, expected_dim=8)
    assert (
        emb.shape == (3, 2, 8) and vocab.names == ("person", "cat", "sky") and vocab.num_things == 2
    )
    assert meta["templates"] == ["a photo of a {}.", "the {}"]
    expected = build_classifier(vocab, HashingEncoder(8), templates=["a photo of a {}.", "the {}"])
    assert torch.equal(emb, expected)
    assert "3 classes (2 things, 1 stuff) x 2 prototypes x 8" in capsys.readouterr().out


def test_build_inline_classes(tmp_path, fake_encoder):
    out = tmp_path / "x.safetensors"
    assert (
        main(
            [
                "build",
                "--classes",
                "cat, kitty; dog; sky | stuff",
                "--encoder",
                "minilm",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    _, vocab, meta = load_classifier(out)
    assert vocab.synonyms == (("cat", "kitty"), ("dog",), ("sky",)) and len(meta["templates"]) == 14


@pytest.mark.parametrize(
    "argv, match",
    [
        (["build", "coco_panoptc", "--encoder", "minilm"], "neither a builtin vocabulary"),
        (["build", "--encoder", "minilm"], "give either NAMES"),
        (
            ["build", "coco_panoptic", "--classes", "cat", "--encoder", "minilm"],
            "give either NAMES",
        ),
        (
            ["build", "--classes", "cat;cat", "--encoder", "minilm"],
            "synonym 'cat' belongs to class 0",
        ),
        (["build", "--classes", "sky | stuf", "--encoder", "minilm"], "unknown flag 'stuf'"),
    ],
)
def test_build_errors_are_one_line(tmp_path, fake_encoder, capsys, argv, match):
    assert main([*argv, "--out", str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(match, err)


def test_build_real_factory_errors(tmp_path, capsys):
    out = str(tmp_path / "x.safetensors")
    assert main(["build", "--classes", "cat", "--encoder", "clip", "--out", out]) == 1
    assert "needs its weights" in capsys.readouterr().err
    assert (
        main(["build", "--classes", "cat", "--encoder", "minilm", "--out", str(tmp_path / "x.bin")])
        == 1
    )
    assert "must end in .safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["build", "--classes", "cat", "--encoder", "bert", "--out", out])
    assert e.value.code == 2 and "invalid choice: 'bert'" in capsys.readouterr().err


def test_optional_dependency_missing_is_clear():
    with pytest.raises(
        RuntimeError, match="pip install some-pkg \\(or pip install 'rapsam\\[clip\\]'\\)"
    ):
        enc_mod._import_optional("rapsam_no_such_module", "some-pkg", "clip")


def test_convert(tmp_path, capsys):
    vocab = Vocabulary.from_names(["cat, kitty", "dog"])
    vocab.save(tmp_path / "pets.json")
    emb = build_classifier(vocab, HashingEncoder(6))
    torch.save(emb, tmp_path / "pets.pth")
    out = tmp_path / "pets.safetensors"
    assert (
        main(
            [
                "convert",
                str(tmp_path / "pets.pth"),
                "--vocab",
                str(tmp_path / "pets.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    got, v, meta = load_classifier(out)
    assert (
        torch.equal(got, emb)
        and v.names == ("cat", "dog")
        and meta["info"]["converted_from"] == "pets.pth"
    )
    assert (
        main(["convert", str(tmp_path / "pets.pth"), "--vocab", "ytvis_2019", "--out", str(out)])
        == 1
    )
    assert "2 classes but vocabulary 'ytvis_2019' has 40" in capsys.readouterr().err
