"""``rapsam track``: video -> tracked instances, panoptic maps and an overlay video.

Without prompts it runs video instance segmentation (``--mode online``, the default, or
``official``, the YouTube-VIS protocol of RAP-SAM); with ``--prompt`` / ``--box`` it tracks the
prompted objects (see ``rapsam.predictor.video``).

Outputs in ``--out`` (default ``rapsam_track``):

* ``results.json``: YouTube-VIS results, one record per track (``category_id`` = class index + 1,
  ``score``, one RLE or null per frame, plus ``track_id``);
* ``panoptic/<video>/<frame>.png`` + ``panoptic.json``: per-frame panoptic PNGs whose segment ids
  are stable over the video (VIPSeg layout, for VPQ), unless ``--no-panoptic`` or prompts;
* ``overlay.mp4``: the frames with masks and ids drawn (H.264), unless ``--no-video``.

Prompts (frame indices from 0, pixels of the original frames): ``--prompt FRAME,X,Y[,LABEL[,OBJ]]``
and ``--box FRAME,X0,Y0,X1,Y1[,OBJ]``. Without OBJ, a positive click or a box starts a new object
(ids 1, 2, ... in command-line order) and a negative click (LABEL 0) refines the latest object; give
OBJ to add a click or box to a given object, e.g. a correction on a later frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    add_model_args,
    add_video_postprocess_args,
    load_model,
    parse_floats,
    video_postprocess_kwargs,
)

ON_SIZE_CHANGE = ("error", "resize", "skip")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="segment and track a video (instances, panoptic, prompted objects)")
    p.add_argument("source", help="video file, folder of frames, or camera index (0, 1, ...)")
    p.add_argument("--mode", default="online", choices=("online", "official"),
                   help="online (bounded memory, live) or official (clips + video-level scores, YouTube-VIS)")
    p.add_argument("--prompt", dest="prompt_items", action="append", default=[], type=_tagged("point"),
                   metavar="FRAME,X,Y[,LABEL[,OBJ]]", help="click prompt (label 1 positive, 0 negative)")
    p.add_argument("--box", dest="prompt_items", action="append", type=_tagged("box"),
                   metavar="FRAME,X0,Y0,X1,Y1[,OBJ]", help="box prompt")
    p.add_argument("--out", default="rapsam_track", help="output folder (default rapsam_track)")
    p.add_argument("--image-scale", default=None, metavar="LONG,SHORT",
                   help="test resize (default the model's; 'none' keeps the frame size)")
    p.add_argument("--window", type=int, default=1, help="online mode: frames decoded together (default 1)")
    p.add_argument("--score-thr", type=float, default=0.3, help="instances drawn in the overlay (default 0.3)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--fps", type=float, default=None, help="overlay frame rate (default: the source's, else 10)")
    p.add_argument("--on-size-change", default="error", choices=ON_SIZE_CHANGE,
                   help="a frame of another size: error (default), resize it, or skip it")
    p.add_argument("--video-id", default="1", help="video_id written in results.json (default 1)")
    p.add_argument("--no-video", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--no-panoptic", action="store_true", help="do not write the panoptic PNGs")
    add_video_postprocess_args(p)
    add_model_args(p)
    p.set_defaults(func=run)


def _tagged(kind: str):
    def parse(text: str) -> tuple[str, str]:
        return kind, text

    parse.__name__ = f"{kind} prompt"
    return parse


def parse_prompt_items(items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """CLI prompt strings -> ``add_prompt`` keyword arguments (frame_idx, obj_id, points/labels/box)."""
    out: list[dict[str, Any]] = []
    next_obj = 1
    latest: int | None = None
    for kind, text in items:
        if kind == "point":
            v = parse_floats(text, 3, 5, "--prompt FRAME,X,Y[,LABEL[,OBJ]]")
            label = int(v[3]) if len(v) >= 4 else 1
            if len(v) >= 4 and v[3] not in (0, 1):
                raise ValueError(f"--prompt '{text}': LABEL must be 1 (positive) or 0 (negative)")
            obj = _obj(v[4], text) if len(v) == 5 else None
            if obj is None:
                if label == 1:
                    obj = next_obj
                elif latest is None:
                    raise ValueError(f"--prompt '{text}': a negative click needs an object: give OBJ or a positive "
                                     "click first")
                else:
                    obj = latest
            rec = {"frame_idx": _frame(v[0], text), "obj_id": obj, "points": [[v[1], v[2]]], "labels": [label]}
        else:
            v = parse_floats(text, 5, 6, "--box FRAME,X0,Y0,X1,Y1[,OBJ]")
            obj = _obj(v[5], text) if len(v) == 6 else next_obj
            rec = {"frame_idx": _frame(v[0], text), "obj_id": obj, "box": v[1:5]}
        next_obj = max(next_obj, obj + 1)
        latest = obj
        out.append(rec)
    return out


def _frame(v: float, text: str) -> int:
    if v != int(v) or v < 0:
        raise ValueError(f"prompt '{text}': FRAME must be a frame index >= 0, got {v:g}")
    return int(v)


def _obj(v: float, text: str) -> int:
    if v != int(v):
        raise ValueError(f"prompt '{text}': OBJ must be an integer object id, got {v:g}")
    return int(v)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..io.video import VideoWriter, open_frames
    from ..predictor.video import PanopticVideoWriter, VideoPredictor, YouTubeVISWriter
    from .predict import _parse_scale

    prompts = parse_prompt_items(args.prompt_items or [])
    if args.window < 1:
        raise ValueError(f"--window must be >= 1, got {args.window}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    source: Any = args.source
    if source.isdigit() and not Path(source).exists():
        source = int(source)  # camera index
    elif not Path(source).exists():
        raise FileNotFoundError(f"source not found: {source}")
    scale = _parse_scale(args.image_scale)
    src = open_frames(source, on_size_change=args.on_size_change)  # a bad source fails before the model loads
    try:
        model = load_model(args)
        kw = {} if scale == "model" else {"image_scale": scale}
        vp = VideoPredictor(model, mode=args.mode, window=args.window, **kw, **video_postprocess_kwargs(args))
        if args.classes:
            vp.set_vocabulary(args.classes)
    except BaseException:
        src.close()
        raise
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    total = src.num_frames if args.max_frames is None else min(src.num_frames or args.max_frames, args.max_frames)
    name = Path(str(args.source)).stem or "video"
    bar = tqdm(total=total, desc=f"track ({'prompted' if prompts else args.mode})", unit="frame",
               disable=not sys.stderr.isatty())

    def on_frame(_idx: int) -> None:
        bar.update(1)

    video_id: Any = int(args.video_id) if args.video_id.isdigit() else args.video_id
    ytvis = YouTubeVISWriter(video_id)
    pan_writer = None
    writer = None
    n_frames = 0
    interrupted = False
    t0 = time.perf_counter()
    try:
        if prompts:
            state = vp.init_state(src)
            for rec in prompts:
                vp.add_prompt(state, **rec)
            results = vp.propagate(state, keep_images=not args.no_video, max_frames=args.max_frames,
                                   on_frame=on_frame, save_states=False)
            score_thr = float("-inf")
        else:
            tasks = ("instance",) if args.no_panoptic else ("instance", "panoptic")
            if not args.no_panoptic:
                pan_writer = PanopticVideoWriter(out / "panoptic", name, model.class_names, model.thing_flags)
            results = vp.track(src, tasks=tasks, keep_images=not args.no_video, max_frames=args.max_frames,
                               on_frame=on_frame)
            score_thr = args.score_thr
        try:
            for idx, res in results:
                n_frames += 1
                ytvis.add(idx, res.instances)
                if pan_writer is not None and res.panoptic is not None:
                    pan_writer.add(idx, res.panoptic)
                if not args.no_video:
                    if writer is None:
                        writer = VideoWriter(out / "overlay.mp4", fps=args.fps or src.fps or 10.0)
                    writer.write(res.plot(score_thr=score_thr))
        except KeyboardInterrupt:  # a live camera stops with Ctrl-C: keep what was tracked so far
            interrupted = True
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
        src.close()
    if writer is not None:
        writer.close()
    dt = time.perf_counter() - t0
    ytvis.save(out / "results.json")
    if pan_writer is not None:
        pan_writer.save_json(out / "panoptic.json")
    n_tracks = len(ytvis.track_ids)
    what = "objects" if prompts else "tracks"
    print(f"track ({'prompted' if prompts else args.mode}): {n_frames} frames in {dt:.1f} s "
          f"({n_frames / max(dt, 1e-9):.1f} fps), {n_tracks} {what} -> {out}/"
          + (" (interrupted)" if interrupted else ""))
    return 130 if interrupted else 0

