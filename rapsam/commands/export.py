"""``rapsam export onnx``: write the ONNX graphs + sidecar that ``--backend onnxruntime`` runs.

Example::

    rapsam export onnx --weights demo --out demo_onnx
    rapsam export onnx --weights rapsam_r50_12e.pth --classifier coco.safetensors --out r50_onnx
    rapsam predict street.jpg --backend onnxruntime --onnx r50_onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the model for other runtimes (ONNX)")
    fmt = p.add_subparsers(dest="format", metavar="FORMAT")
    o = fmt.add_parser(
        "onnx",
        help="three ONNX graphs (image encoder, prompt decoder, panoptic decoder) + rapsam_onnx.json",
        description="Export image_encoder.onnx, prompt_decoder.onnx, panoptic_decoder.onnx and rapsam_onnx.json "
        "(torch.onnx dynamo exporter, dynamic image size / prompt count / vocabulary). Run them with "
        "`rapsam predict --backend onnxruntime --onnx DIR` or rapsam.runtime.OnnxRapSam(DIR).",
    )
    o.add_argument(
        "--weights",
        required=True,
        help="rapsam .safetensors, official .pth, 'demo' (bundled model) or "
        "'none' (random weights of --variant, for benchmarking)",
    )
    o.add_argument("--out", required=True, help="output directory")
    o.add_argument(
        "--variant", help="model variant for an official .pth or --weights none (see `rapsam info`)"
    )
    o.add_argument(
        "--classifier", help="vocabulary to install before export (classifier file or builtin name)"
    )
    o.add_argument("--opset", type=int, default=19, help="ONNX opset, >= 19 (default 19)")
    o.add_argument(
        "--deform-conv",
        default="onnx",
        choices=("onnx", "decomposed"),
        help="'onnx': the DeformConv op (onnxruntime >= 1.25); 'decomposed': gather + matmul, any runtime",
    )
    o.add_argument(
        "--no-check", action="store_true", help="skip the onnxruntime-vs-torch parity check"
    )
    o.set_defaults(func=_export_onnx)
    p.set_defaults(func=lambda args: _no_format(p))


def _no_format(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _load(args: argparse.Namespace):
    from ..models import build_model, list_models

    w = args.weights
    if w == "none":
        if not args.variant:
            raise ValueError(
                f"--weights none exports random weights of a --variant; choose one of {list_models()}"
            )
        import torch

        print(
            f"note: random weights (seed 0) for {args.variant}: for benchmarking, outputs are meaningless"
        )
        torch.manual_seed(0)
        return build_model(args.variant, classifier=args.classifier), f"random:{args.variant}:seed0"
    if w == "demo":
        return build_model(args.variant, weights="demo", classifier=args.classifier), "demo"
    if not Path(w).exists():
        raise FileNotFoundError(f"weights file not found: {w}")
    name = args.variant
    if str(w).endswith((".pth", ".pt")) and name is None:
        name = "rapsam_r50"
    return build_model(name, weights=w, classifier=args.classifier), str(w)


def _export_onnx(args: argparse.Namespace) -> int:
    from ..export.onnx import MIN_OPSET, _require_exporter, export_onnx

    if args.opset < MIN_OPSET:
        raise ValueError(
            f"--opset {args.opset} is too old: the neck's DeformConv needs opset >= {MIN_OPSET}"
        )
    _require_exporter()
    check = not args.no_check
    if check:
        from ..runtime.ort import import_onnxruntime

        import_onnxruntime()
    model, source = _load(args)
    result = export_onnx(
        model, args.out, opset=args.opset, deform_conv=args.deform_conv, check=check, source=source
    )
    for name, path in result.files.items():
        err = result.max_abs_error.get(name)
        parity = f", max |ort - torch| = {err:.2e}" if err is not None else ""
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {result.seconds[name]:.0f} s{parity}")
    vocab = (
        f"{model.num_classes} classes"
        if model.classifier.is_set
        else "no vocabulary (set one at run time)"
    )
    print(
        f"exported {model.config.name} ({vocab}), opset {args.opset}, deform conv '{args.deform_conv}' -> {args.out}/"
    )
    print(f"run it: rapsam predict IMAGE --backend onnxruntime --onnx {args.out}")
    return 0
