"""Helpers shared by the CLI commands: loading the model, parsing coordinates, writing JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEMO_NOTICE = (
    "note: no --weights given, using the small demo model bundled with rapsam (trained on synthetic "
    "shapes). For real photos load the official RAP-SAM weights: --weights rapsam_r50_12e.pth "
    "--classifier <coco classifier> (see README, 'Official weights')."
)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="rapsam .safetensors or official .pth (default: the bundled demo model)")
    p.add_argument("--model", help="variant for an official .pth (default rapsam_r50)")
    p.add_argument("--classifier", help="classifier file (.safetensors from `rapsam vocab build`, or official .pth)")
    p.add_argument("--classes", help="run-time vocabulary: class list (.json/.txt), builtin name or classifier file")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def load_model(args: argparse.Namespace):
    """Build the model the CLI arguments describe (demo model by default, announced once)."""
    from ..models import build_model

    weights = getattr(args, "weights", None)
    device = getattr(args, "device", "cpu")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but CUDA is not available here; use --device cpu")
    if weights is None or str(weights) == "demo":  # "demo" names the bundled model, as in build_model
        if weights is None:
            print(DEMO_NOTICE, file=sys.stderr)
        model = build_model(weights="demo", device=device)
    else:
        if not Path(weights).exists():
            raise FileNotFoundError(f"weights file not found: {weights}")
        name = getattr(args, "model", None)
        if str(weights).endswith((".pth", ".pt")) and name is None:
            name = "rapsam_r50"
        model = build_model(name, weights=weights, classifier=getattr(args, "classifier", None), device=device)
    return model


def parse_floats(text: str, n_min: int, n_max: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} '{text}' must be comma-separated numbers") from None
    if not n_min <= len(vals) <= n_max:
        raise ValueError(f"{what} '{text}' needs {n_min}{'' if n_min == n_max else f'-{n_max}'} numbers")
    return vals


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON write (temporary file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
