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


def add_video_postprocess_args(p: argparse.ArgumentParser) -> None:
    """``--largest-component`` / ``--track-nms-iou``: the video post-processing options (default: the model's)."""
    p.add_argument("--largest-component", action=argparse.BooleanOptionalAction, default=None,
                   help="tracked instances keep their most confident connected region per frame "
                        "(default: the model's setting; on for the demo model, off for official weights)")
    p.add_argument("--track-nms-iou", default="model", metavar="IOU|off",
                   help="official mode: drop a track whose video mask IoU with a better one of the same class "
                        "exceeds IOU (default: the model's setting; 0.7 for the demo model, off for official weights)")


def video_postprocess_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``VideoPredictor`` keyword arguments of :func:`add_video_postprocess_args`'s flags."""
    kw: dict[str, Any] = {}
    if getattr(args, "largest_component", None) is not None:
        kw["largest_component"] = args.largest_component
    nms = str(getattr(args, "track_nms_iou", "model"))
    if nms.lower() in ("off", "none"):
        kw["track_nms_iou"] = None
    elif nms != "model":
        try:
            val = float(nms)
        except ValueError:
            raise ValueError(f"--track-nms-iou must be a number in [0, 1] or 'off', got '{nms}'") from None
        if not 0.0 <= val <= 1.0:
            raise ValueError(f"--track-nms-iou must be a number in [0, 1] or 'off', got '{nms}'")
        kw["track_nms_iou"] = val
    return kw


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
