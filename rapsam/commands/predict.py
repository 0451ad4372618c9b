"""``rapsam predict``: image(s) -> overlays and machine-readable results.

Outputs in ``--out`` (default ``rapsam_out``):

* ``<stem>_<task>.png``: overlay;
* panoptic: ``panoptic/<stem>.png`` (COCO panoptic PNG) and ``panoptic.json`` (COCO panoptic
  predictions: ``annotations`` + ``categories``);
* instance: ``instances.json`` (COCO results, compressed RLE);
* semantic: ``semantic/<stem>.png`` (uint8 class index, 255 = none);
* interactive: ``masks/<stem>_<i>.png`` and ``interactive.json`` (per prompt: RLE, predicted IoU).

Prompts (``--task interactive``): by default all ``--point``s (and at most one ``--box``) describe
one object; with ``--each`` every point and every box is its own object; boxes alone give one object
per box.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .common import add_model_args, load_model, parse_floats, write_json

TASKS = ("panoptic", "instance", "semantic", "interactive")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment an image or a folder of images")
    p.add_argument("source", help="image file or folder of images")
    p.add_argument("--task", default="panoptic", choices=TASKS)
    p.add_argument("--point", action="append", default=[], metavar="X,Y[,LABEL]", help="click (label 1 positive, 0 negative)")
    p.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1", help="box prompt")
    p.add_argument("--each", action="store_true", help="each point / box is a separate object")
    p.add_argument("--out", default="rapsam_out", help="output folder (default rapsam_out)")
    p.add_argument("--image-scale", default=None, metavar="LONG,SHORT", help="test resize (default 1333,800; 'none' keeps the size)")
    add_model_args(p)
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"), help="run the torch model (default) or an ONNX export")
    p.add_argument("--onnx", metavar="DIR", help="directory written by `rapsam export onnx` (with --backend onnxruntime)")
    p.set_defaults(func=run)


def build_prompts(points: list[str], boxes: list[str], each: bool) -> dict:
    """CLI prompt strings -> keyword arguments of ``InteractivePredictor.predict``."""
    pts = [parse_floats(s, 2, 3, "--point") for s in points]
    bxs = [parse_floats(s, 4, 4, "--box") for s in boxes]
    if not pts and not bxs:
        raise ValueError("--task interactive needs at least one --point X,Y[,LABEL] or --box X0,Y0,X1,Y1")
    for p in pts:
        if len(p) == 3 and p[2] not in (0, 1):
            raise ValueError(f"point label must be 1 (positive) or 0 (negative), got {p[2]:g}")
    if each:
        if any(len(p) == 3 and p[2] == 0 for p in pts):
            raise ValueError("--each makes every point its own object, so negative points (label 0) are not allowed")
        out = []
        if pts:
            out.append(("points", [[p[0], p[1]] for p in pts]))
        if bxs:
            out.append(("boxes", bxs))
        return {"calls": out}
    if not pts:
        return {"calls": [("boxes", bxs)]}
    if len(bxs) > 1:
        raise ValueError("several --box with --point: one object takes at most one box (use --each for one object per prompt)")
    kw = {"points": [[[p[0], p[1]] for p in pts]], "labels": [[int(p[2]) if len(p) == 3 else 1 for p in pts]]}
    if bxs:
        kw["boxes"] = bxs
    return {"calls": [("grouped", kw)]}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..io.image import list_images, read_image, write_png
    from ..predictor import InteractivePredictor, PanopticPredictor

    src = Path(args.source)
    if not src.exists():
        raise FileNotFoundError(f"source not found: {src}")
    files = list_images(src) if src.is_dir() else [src]
    prompt_calls = build_prompts(args.point, args.box, args.each)["calls"] if args.task == "interactive" else None
    scale = _parse_scale(args.image_scale)
    model = _load_backend(args)
    kw = {} if scale == "model" else {"image_scale": scale}
    if args.task == "interactive":
        predictor = InteractivePredictor(model, **kw)
    else:
        predictor = PanopticPredictor(model, **kw)
    if args.classes:
        predictor.set_vocabulary(args.classes)
    out = Path(args.out)
    for sub in {"panoptic": ["panoptic"], "semantic": ["semantic"], "interactive": ["masks"]}.get(args.task, []) + [""]:
        (out / sub).mkdir(parents=True, exist_ok=True)
    pan_anns, inst_recs, inter_recs, failures = [], [], [], []
    t_start = time.perf_counter()
    n_items = 0
    for image_id, f in enumerate(tqdm(files, desc="predict", unit="img", disable=len(files) == 1 or not sys.stderr.isatty()), 1):
        try:
            img = read_image(f)
        except ValueError as e:
            if len(files) == 1:
                raise
            failures.append(f"{f}: {e}")
            continue
        stem = f.stem
        if args.task == "interactive":
            predictor.set_image(img)
            results = []
            for kind, value in prompt_calls:
                if kind == "points":
                    results.append(predictor.predict(points=value))
                elif kind == "boxes":
                    results.append(predictor.predict(boxes=value))
                else:
                    results.append(predictor.predict(**value))
            from ..visualize import draw_masks, draw_prompts

            masks = np.concatenate([r.masks.numpy() for r in results]) if results else np.zeros((0, *img.shape[:2]), bool)
            ious = np.concatenate([r.iou.numpy() for r in results])
            vis = draw_masks(img, masks, scores=ious)
            pts = [parse_floats(s, 2, 3, "--point") for s in args.point]
            if pts:
                vis = draw_prompts(vis, np.array([p[:2] for p in pts]), np.array([int(p[2]) if len(p) == 3 else 1 for p in pts]))
            if args.box:
                vis = draw_prompts(vis, boxes=np.array([parse_floats(s, 4, 4, "--box") for s in args.box]))
            write_png(out / f"{stem}_interactive.png", vis)
            for i, m in enumerate(masks):
                write_png(out / "masks" / f"{stem}_{i}.png", (m * 255).astype(np.uint8))
            for r in results:
                for rec in r.to_coco(image_id):
                    rec["file_name"] = f.name
                    rec["predicted_iou"] = rec.pop("score")
                    inter_recs.append(rec)
            n_items += len(masks)
            continue
        tasks = {"panoptic": ("panoptic",), "instance": ("instance",), "semantic": ("semantic",)}[args.task]
        pred = predictor.predict(img, tasks=tasks)
        if pred.panoptic is not None:
            ann = pred.panoptic.save(out / "panoptic" / f"{stem}.png", image_id=image_id)
            ann["file_name"] = f"{stem}.png"
            pan_anns.append(ann)
            write_png(out / f"{stem}_panoptic.png", pred.panoptic.plot(img))
            n_items += len(pred.panoptic)
        if pred.instances is not None:
            inst = pred.instances[pred.instances.scores > 0.3] if len(pred.instances) else pred.instances
            inst_recs.extend(pred.instances.to_coco(image_id))
            write_png(out / f"{stem}_instance.png", inst.plot(img))
            n_items += len(inst)
        if pred.semantic is not None:
            write_png(out / "semantic" / f"{stem}.png", pred.semantic.sem.numpy().astype(np.uint8))
            write_png(out / f"{stem}_semantic.png", pred.semantic.plot(img))
    names = model.class_names
    cats = [{"id": i, "name": n, "isthing": int(t)} for i, (n, t) in enumerate(zip(names, model.thing_flags))]
    if args.task == "panoptic":
        write_json(out / "panoptic.json", {"annotations": pan_anns, "categories": cats})
    elif args.task == "instance":
        write_json(out / "instances.json", inst_recs)
    elif args.task == "interactive":
        write_json(out / "interactive.json", inter_recs)
    dt = time.perf_counter() - t_start
    done = len(files) - len(failures)
    what = {"panoptic": "segments", "instance": "instances (score > 0.3 drawn)", "semantic": "maps", "interactive": "masks"}[args.task]
    print(f"{args.task}: {done} image(s), {n_items} {what}, {dt:.1f} s ({dt / max(done, 1):.2f} s/image) -> {out}/")
    if failures:
        print(f"{len(failures)} image(s) could not be read:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _load_backend(args: argparse.Namespace):
    """The torch model (``load_model``) or, with ``--backend onnxruntime``, an ``OnnxRapSam``."""
    if getattr(args, "backend", "torch") != "onnxruntime":
        if getattr(args, "onnx", None):
            raise ValueError("--onnx DIR runs an ONNX export: add --backend onnxruntime")
        return load_model(args)
    if not args.onnx:
        raise ValueError("--backend onnxruntime needs --onnx DIR (create it with `rapsam export onnx --weights ... --out DIR`)")
    if args.weights or args.model or args.classifier:
        raise ValueError("--weights / --model / --classifier are baked into the ONNX export; drop them (use --classes to swap the vocabulary)")
    if args.device != "cpu":
        raise ValueError("--backend onnxruntime runs on the CPU here; drop --device")
    from ..runtime import OnnxRapSam

    return OnnxRapSam(args.onnx)


def _parse_scale(text: str | None):
    if text is None:
        return "model"
    if text.lower() == "none":
        return None
    vals = parse_floats(text, 2, 2, "--image-scale")
    return (int(max(vals)), int(min(vals)))
