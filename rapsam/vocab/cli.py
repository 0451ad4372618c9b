"""``rapsam vocab``: build, convert and list open-vocabulary classifiers.

Commands (registered into the main ``rapsam`` parser by :func:`register`)::

    rapsam vocab build NAMES --encoder {clip,minilm,sentence-transformer} [--weights PATH] --out FILE
    rapsam vocab build --classes "cat, kitty; dog; sky | stuff" --encoder minilm --out FILE
    rapsam vocab convert PTH --vocab NAME --out FILE
    rapsam vocab list

``NAMES`` is a builtin vocabulary (``coco_panoptic``, ``ytvis_2019``, ``ytvis_2021``,
``coco_ytvis2019_merged``) or a ``.json`` / ``.txt`` file. Each command handler returns an exit
code and reports bad input as one ``error:`` line (exit code 1, as ``rapsam.cli``) instead of a traceback.
Also runnable alone: ``python -m rapsam.vocab.cli ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``vocab`` command to an ``argparse`` sub-parser set; returns its parser.

    Each leaf sets ``func`` (``args.func(args) -> int``).
    """
    from .encoders import ENCODERS
    from .vocabulary import BUILTIN_VOCABULARIES

    vocab = subparsers.add_parser(
        "vocab",
        help="build / convert open-vocabulary text classifiers",
        description="Build, convert and list the text classifiers RAP-SAM classifies with.",
    )
    sub = vocab.add_subparsers(dest="vocab_command", metavar="{build,convert,list}")
    sub.required = True

    b = sub.add_parser(
        "build",
        help="encode a vocabulary into a classifier file",
        description=(
            "Encode every synonym with the 14 ViLD templates, normalise, average, re-normalise and "
            "pad (as the official tools/gen_cls.py), and save a (K, P, D) .safetensors classifier."
        ),
    )
    b.add_argument(
        "names",
        nargs="?",
        help=f"builtin vocabulary ({', '.join(BUILTIN_VOCABULARIES)}) or a .json / .txt file",
    )
    b.add_argument(
        "--classes", help="inline class list instead of NAMES: 'cat, kitty; dog; sky | stuff'"
    )
    b.add_argument("--encoder", required=True, choices=ENCODERS, help="text encoder")
    b.add_argument(
        "--weights",
        help="clip: CLIP checkpoint file; minilm / sentence-transformer: model directory",
    )
    b.add_argument(
        "--clip-model", default="convnext_large_d_320", help="open_clip model name (clip)"
    )
    b.add_argument(
        "--random-init",
        action="store_true",
        help="clip without --weights: random text tower (tests only, meaningless classifier)",
    )
    b.add_argument("--templates", help="text file with one template per line (each with one '{}')")
    b.add_argument("--device", default="cpu", help="torch device for the encoder (default cpu)")
    b.add_argument("--batch-size", type=int, default=256, help="sentences per forward pass")
    b.add_argument("--out", required=True, help="output .safetensors file")
    b.add_argument("--quiet", action="store_true", help="no progress output")
    b.set_defaults(func=_cmd_build)

    c = sub.add_parser(
        "convert",
        help="attach a class list to an official classifier .pth",
        description="Convert an official gen_cls.py tensor (K, P, 768) into a rapsam classifier file.",
    )
    c.add_argument("pth", help="official classifier file (.pth)")
    c.add_argument(
        "--vocab", required=True, help="vocabulary the file was built from (builtin or file)"
    )
    c.add_argument("--out", required=True, help="output .safetensors file")
    c.add_argument(
        "--no-check-padding",
        action="store_true",
        help="skip the check of the file's padding pattern against the vocabulary",
    )
    c.set_defaults(func=_cmd_convert)

    lst = sub.add_parser("list", help="list the builtin vocabularies")
    lst.set_defaults(func=_cmd_list)
    return vocab


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 1


def _cmd_build(args: argparse.Namespace) -> int:
    from .classifier import build_classifier_file
    from .encoders import make_encoder
    from .templates import VILD_TEMPLATES
    from .vocabulary import Vocabulary

    try:
        if (args.names is None) == (args.classes is None):
            return _fail(
                "give either NAMES (builtin vocabulary or file) or --classes, not both / neither"
            )
        vocab = Vocabulary.load(args.names) if args.names else Vocabulary.from_string(args.classes)
        templates: Sequence[str] = VILD_TEMPLATES
        if args.templates:
            tpath = Path(args.templates)
            if not tpath.is_file():
                return _fail(f"templates file not found: {tpath}")
            templates = [t for t in tpath.read_text("utf-8").splitlines() if t.strip()]
        out = Path(args.out)
        if out.suffix != ".safetensors":
            return _fail(f"--out must end in .safetensors, got '{out.name}'")
        encoder = make_encoder(
            args.encoder,
            weights=args.weights,
            device=args.device,
            batch_size=args.batch_size,
            random_init=args.random_init,
            clip_model=args.clip_model,
        )
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if not args.quiet:
                print(f"\rencoded {done}/{total} sentences", end="", file=sys.stderr, flush=True)

        cf = build_classifier_file(vocab, encoder, templates, progress=progress)
        if not args.quiet:
            print(file=sys.stderr)
        cf.save(out)
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))
    k, p, d = cf.embeddings.shape
    print(
        f"wrote {out}: {k} classes ({vocab.num_things} things, {vocab.num_stuff} stuff) x {p} "
        f"prototypes x {d}, encoder {cf.encoder}, {time.perf_counter() - t0:.1f}s"
    )
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .classifier import convert_official

    try:
        out = Path(args.out)
        if out.suffix != ".safetensors":
            return _fail(f"--out must end in .safetensors, got '{out.name}'")
        cf = convert_official(args.pth, args.vocab, check_padding=not args.no_check_padding)
        cf.save(out)
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))
    k, p, d = cf.embeddings.shape
    print(f"wrote {out}: {k} classes x {p} prototypes x {d}, vocabulary {cf.vocabulary.name}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .vocabulary import BUILTIN_VOCABULARIES, Vocabulary

    for name in BUILTIN_VOCABULARIES:
        v = Vocabulary.builtin(name)
        print(
            f"{name:24s} {len(v):4d} classes ({v.num_things} things, {v.num_stuff} stuff), P={v.max_synonyms}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m rapsam.vocab.cli vocab build ...`` or without ``vocab``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["vocab"]:
        argv = ["vocab", *argv]
    parser = argparse.ArgumentParser(prog="rapsam")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
