"""``rapsam serve``: the RAP-SAM web app (click-to-segment, panoptic, video tracking) on localhost.

RAP-SAM (arXiv 2401.10228) answers clicks with a cached image embedding; this command loads the
model once and serves the gradio page of :mod:`rapsam.app.web` to any number of browser sessions,
each with its own cached embedding and prompts. It needs the ``serve`` extra
(``pip install 'rapsam[serve]'``, i.e. gradio).

The page never contacts another host: no share link, analytics off
(``GRADIO_ANALYTICS_ENABLED=False``), Hugging Face Hub offline, fonts served by gradio itself.
Session files (downloads, sample scenes) live in a temporary work folder removed at exit unless
``--work-dir`` is given.

Example::

    rapsam serve                                    # bundled demo model, http://127.0.0.1:7860
    rapsam serve --weights rapsam_r50_12e.pth --classifier coco_panoptic.safetensors --port 8080
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .common import add_model_args, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="web app: click-to-segment, panoptic and video tabs (needs gradio)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--image-scale",
        default=None,
        metavar="LONG,SHORT",
        help="test resize (default the model's; 'none' keeps the image size)",
    )
    p.add_argument(
        "--samples",
        default=None,
        metavar="DIR",
        help="folder of sample images (and a video) to offer (default: bundled or synthetic scenes)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=25.0, help="largest upload in MB (default 25)"
    )
    p.add_argument(
        "--max-image-side",
        type=int,
        default=2048,
        help="larger images are downscaled to this longer side (default 2048)",
    )
    p.add_argument(
        "--max-video-seconds",
        type=float,
        default=20.0,
        help="longest video accepted (default 20 s)",
    )
    p.add_argument(
        "--max-video-frames", type=int, default=300, help="most video frames accepted (default 300)"
    )
    p.add_argument(
        "--max-video-side",
        type=int,
        default=640,
        help="video frames are downscaled to this longer side (default 640)",
    )
    p.add_argument(
        "--work-dir",
        default=None,
        help="folder for session files and samples (default: a temporary folder removed at exit)",
    )
    add_model_args(p)
    p.set_defaults(func=run)


def _offline_env() -> None:
    """Keep gradio and the Hub from contacting other hosts (set before gradio is imported)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _stop_on_sigterm() -> None:
    """Make SIGTERM stop the server like Ctrl-C (gradio closes, the work folder is removed)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    from ..app.sessions import Limits
    from .predict import _parse_scale

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    limits = Limits(
        max_upload_mb=args.max_upload_mb,
        max_image_side=args.max_image_side,
        max_video_seconds=args.max_video_seconds,
        max_video_frames=args.max_video_frames,
        max_video_side=args.max_video_side,
    )
    scale = _parse_scale(args.image_scale)
    if args.samples is not None and not Path(args.samples).is_dir():
        raise FileNotFoundError(f"--samples folder not found: {args.samples}")
    own_dir = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="rapsam_serve_")) if own_dir else Path(args.work_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        _offline_env()
        os.environ.setdefault("GRADIO_TEMP_DIR", str(work / "gradio"))
        try:
            import gradio  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                f"rapsam serve needs gradio ({e}): pip install 'rapsam[serve]' (or pip install gradio)"
            ) from None
        from ..app.samples import find_samples
        from ..app.web import ServerContext, build_app, check_gradio_version, launch

        check_gradio_version()

        model = load_model(args)
        if args.classes:
            from ..predictor.base import BasePredictor

            BasePredictor(model).set_vocabulary(args.classes)  # swaps the model's classes in place
        samples = find_samples(work, args.samples)
        name = Path(args.weights).name if args.weights else "demo"
        ctx = ServerContext(
            model, limits, samples, work.resolve(), image_scale=scale, model_name=name
        )
        demo = build_app(ctx)
        print(
            f"rapsam serve: http://{args.host}:{args.port}  (Ctrl-C stops; samples: {samples.source})",
            file=sys.stderr,
            flush=True,
        )
        _stop_on_sigterm()
        launch(demo, ctx, args.host, args.port, block=True)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0
