"""``rapsam info`` (parameters and GFLOPs per variant) and ``rapsam convert`` (official -> safetensors)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="parameters per module and GFLOPs of the variants")
    p.add_argument("name", nargs="?", help="variant name (default: all)")
    p.add_argument("--size", default="800x1333", help="HxW for the FLOP count (default 800x1333)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_info)

    p = sub.add_parser("convert", help="convert an official RAP-SAM .pth to a rapsam .safetensors file")
    p.add_argument("path", help="official checkpoint (e.g. rapsam_r50_12e.pth)")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--model", default="rapsam_r50", help="variant the checkpoint is for (default rapsam_r50)")
    p.add_argument("--classifier", help="classifier file to embed (official .pth or rapsam .safetensors)")
    p.set_defaults(func=_convert)


def _info(args: argparse.Namespace) -> int:
    import torch

    from ..models import build_model, list_models
    from ..profiling import count_flops, count_parameters

    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must look like 800x1333, got {args.size!r}", file=sys.stderr)
        return 2
    names = [args.name] if args.name else list_models()
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = build_model(name)
        params = count_parameters(model)
        flops = count_flops(model, h, w)
        rows.append({"model": name, "params": params, "gflops": flops})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"GFLOPs at {h}x{w} (padded to multiples of 32; 2 FLOPs per multiply-add)")
    hdr = f"{'model':<18}{'backbone':>10}{'neck':>9}{'decoder':>9}{'adapters':>9}{'total M':>9}{'enc GF':>9}{'dec GF':>9}{'total GF':>10}"
    print(hdr)
    for r in rows:
        p = r["params"]
        ad = p["object_adapter"] + p["prompt_adapter"] + p["prompt_encoder"]
        print(
            f"{r['model']:<18}{p['backbone'] / 1e6:>10.2f}{p['neck'] / 1e6:>9.2f}{p['decoder'] / 1e6:>9.2f}"
            f"{ad / 1e6:>9.2f}{p['total'] / 1e6:>9.2f}{r['gflops']['encoder']:>9.1f}{r['gflops']['decoder']:>9.1f}"
            f"{r['gflops']['total']:>10.1f}"
        )
    print("(adapters column = object + prompt adapters + prompt encoder; M = millions of parameters)")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from ..models import build_model
    from ..weights import save_rapsam

    model = build_model(args.model, weights=args.path, classifier=args.classifier)
    save_rapsam(model, args.out, extra={"source": str(args.path)})
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {model.config.name}, {n / 1e6:.2f} M parameters, {model.num_classes} classes")
    return 0
