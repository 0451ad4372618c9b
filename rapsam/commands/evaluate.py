"""``rapsam eval``: score a model (or saved predictions) on a dataset in its publisher's layout.

Usage::

    rapsam eval --task panoptic|instance|semantic|interactive|vis|vps --data ROOT|ANNOTATIONS
                [--weights PATH] [--predictions FILE|DIR] [--out DIR] [--limit N] ...

``--data`` is either a dataset root or an annotation file. A root is searched, for the task, in
these layouts (``--split val`` by default; the first that exists wins):

* the ``rapsam synth`` layout (``ROOT/coco``, ``ROOT/ytvis``, ``ROOT/vipseg``, ``ROOT/ade20k``);
* COCO: ``annotations/panoptic_val2017.json`` + ``val2017/`` + ``annotations/panoptic_val2017/``;
  ``annotations/instances_val2017.json``; semantic ``annotations/panoptic_semseg_val2017/``;
* YouTube-VIS: ``valid.json`` / ``train.json`` + ``valid/JPEGImages`` (2019) or
  ``valid/instances.json`` (2021);
* VIPSeg: ``panoptic_gt_VIPSeg_val.json`` + ``images/`` + ``panomasksRGB/``;
* ADE20K: ``images/validation`` + ``annotations/validation`` + ``objectInfo150.txt``.

An annotation file takes its images / masks / frames from ``--images``, ``--masks`` and
``--video-dir``, defaulting to the publisher's sibling folders.

Without ``--predictions`` the model runs (``--weights``; default the bundled demo model) and its
predictions are written to ``--out`` in the standard formats, so ``--predictions OUT`` scores them
again without the model:

* panoptic: ``panoptic.json`` + ``panoptic/`` (COCO panoptic); instance: ``instances.json`` (COCO
  results); semantic: ``semantic/<stem>.png`` (dataset class index, 255 = none); interactive:
  ``interactive.json``; vis: ``results.json`` (YouTube-VIS); vps: ``vps.json`` + ``vps/<video>/``.

Every run prints the per-class table and the headline numbers and writes ``OUT/metrics.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    add_model_args,
    add_video_postprocess_args,
    load_model,
    parse_floats,
    video_postprocess_kwargs,
)

TASKS = ("panoptic", "instance", "semantic", "interactive", "vis", "vps")
SPLITS = ("train", "val")


_EXAMPLES = """examples:
  rapsam eval --task panoptic --data coco --weights rapsam_r50_12e.pth --classifier coco.pth
  rapsam eval --task interactive --data coco --weights W --limit 500 --max-clicks 20
  rapsam eval --task panoptic --data coco/annotations/panoptic_val2017.json \\
              --predictions rapsam_eval/panoptic.json
  rapsam eval --task vis --data ytvis2019 --split train --weights W --classifier ytvis.pth
  rapsam eval --task semantic --data ADEChallengeData2016 --predictions my_pngs/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model or saved predictions (PQ, AP, mIoU, NoC, VIS AP, VPQ)",
        description="Score a model (or saved predictions) on a dataset in its publisher's "
        "layout. Prints the per-class table and the headline numbers; writes OUT/metrics.json "
        "and, when the model runs, its predictions in the standard formats (re-score them with "
        "--predictions OUT).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument(
        "--data",
        required=True,
        metavar="ROOT|ANNOTATIONS",
        help="dataset root, or its annotation file (JSON; objectInfo150.txt for ADE20K)",
    )
    p.add_argument(
        "--split", default="val", choices=SPLITS, help="split to find under a ROOT (default val)"
    )
    p.add_argument(
        "--images", metavar="DIR", help="image folder (default: found next to the annotations)"
    )
    p.add_argument(
        "--masks", metavar="DIR", help="GT panoptic PNG / semantic label folder (default: found)"
    )
    p.add_argument("--video-dir", metavar="DIR", help="frame folder of the videos (default: found)")
    p.add_argument(
        "--predictions",
        metavar="FILE|DIR",
        help="score saved predictions instead of running the model (a file, or an --out folder of "
        "an earlier run)",
    )
    p.add_argument(
        "--out", default="rapsam_eval", metavar="DIR", help="output folder (default rapsam_eval)"
    )
    p.add_argument(
        "--limit", type=int, default=None, metavar="N", help="evaluate the first N images / videos"
    )
    p.add_argument(
        "--image-scale",
        default=None,
        metavar="LONG,SHORT",
        help="test resize (default the model's, 1333,800; 'none' keeps the size)",
    )
    p.add_argument(
        "--mode",
        default="official",
        choices=("official", "online"),
        help="vis / vps: official clip protocol (default) or online tracking",
    )
    p.add_argument(
        "--max-clicks",
        type=int,
        default=20,
        metavar="N",
        help="interactive: clicks of the NoC protocol (default 20)",
    )
    p.add_argument(
        "--no-noc", action="store_true", help="interactive: skip the multi-click NoC protocol"
    )
    p.add_argument("--no-boxes", action="store_true", help="interactive: skip box prompts")
    p.add_argument(
        "--windows",
        default="1,2,4,6,8",
        metavar="N,N,...",
        help="vps: VPQ window lengths in frames (default VIPSeg's 1,2,4,6,8)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="panoptic --predictions: worker processes (default 0)",
    )
    p.add_argument("--no-per-class", action="store_true", help="print only the summary table")
    add_video_postprocess_args(p)
    add_model_args(p)
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ data
@dataclass
class DataSpec:
    """Where the ground truth of one task lies.

    Attributes:
        kind: "coco_panoptic", "coco_instances", "coco_semseg", "ade20k", "ytvis" or "vipseg".
        ann: annotation file (ADE20K: the class list ``objectInfo150.txt``).
        images: image / frame folder (None when not found; needed only to run the model).
        masks: GT panoptic PNG folder / semantic label folder (None when not needed or found).
        looked: the places searched, for error messages.
    """

    kind: str
    ann: Path
    images: Path | None = None
    masks: Path | None = None
    looked: list[str] = field(default_factory=list)


_KIND_OF_TASK = {
    "panoptic": ("coco_panoptic",),
    "interactive": ("coco_panoptic",),
    "instance": ("coco_instances",),
    "semantic": ("ade20k", "coco_semseg"),
    "vis": ("ytvis",),
    "vps": ("vipseg",),
}

_ADE_SPLIT = {"train": "training", "val": "validation"}
_YTVIS_SPLITS = {"train": ("train",), "val": ("valid", "val")}


def _first_dir(cands: list[Path]) -> Path | None:
    return next((c for c in cands if c.is_dir()), None)


def _coco_split_name(ann: Path, prefix: str) -> str:
    """``panoptic_val2017.json`` -> ``val2017``."""
    return ann.stem.removeprefix(prefix)


def _coco_image_dirs(ann: Path, split_name: str) -> list[Path]:
    base = ann.parent.parent
    return [
        base / split_name,
        base / "images" / split_name,
        ann.parent / split_name,
        ann.parent.parent / "images",
    ]


def _spec_from_file(
    kind: str, ann: Path, images: str | None, masks: str | None, video_dir: str | None, split: str
) -> DataSpec:
    """Fill in the folders next to an annotation file (the publishers' layouts)."""
    img = Path(images) if images else None
    msk = Path(masks) if masks else None
    vdir = Path(video_dir) if video_dir else None
    if kind == "coco_panoptic":
        name = _coco_split_name(ann, "panoptic_")
        img = img or _first_dir(_coco_image_dirs(ann, name))
        msk = msk or _first_dir([ann.with_suffix(""), ann.parent / f"panoptic_{name}"])
    elif kind == "coco_instances":
        name = _coco_split_name(ann, "instances_")
        img = img or _first_dir(_coco_image_dirs(ann, name))
    elif kind == "coco_semseg":
        name = _coco_split_name(ann, "panoptic_")
        img = img or _first_dir(_coco_image_dirs(ann, name))
        msk = msk or _first_dir([ann.parent / f"panoptic_semseg_{name}"])
    elif kind == "ade20k":
        sub = _ADE_SPLIT[split]
        img = img or _first_dir([ann.parent / "images" / sub])
        msk = msk or _first_dir([ann.parent / "annotations" / sub])
    elif kind == "ytvis":
        img = (
            vdir
            or img
            or _first_dir(
                [
                    ann.parent / ann.stem / "JPEGImages",
                    ann.parent / "JPEGImages",
                    ann.parent / ann.stem,
                ]
            )
        )
    elif kind == "vipseg":
        img = img or vdir or _first_dir([ann.parent / "images"])
        msk = msk or _first_dir([ann.parent / "panomasksRGB"])
    return DataSpec(kind, ann, img, msk)


def _root_candidates(kind: str, root: Path, split: str) -> list[Path]:
    """Annotation files a dataset root may hold for ``kind`` (most specific layout first)."""
    s = split
    if kind in ("coco_panoptic", "coco_semseg"):
        name = [f"panoptic_{s}.json", f"panoptic_{s}2017.json"]
        bases = [root / "coco" / "annotations", root / "annotations"]
        return [b / n for b in bases for n in name]
    if kind == "coco_instances":
        name = [f"instances_{s}.json", f"instances_{s}2017.json"]
        bases = [root / "coco" / "annotations", root / "annotations"]
        return [b / n for b in bases for n in name]
    if kind == "ade20k":
        return [
            root / "ade20k" / "objectInfo150.txt",
            root / "objectInfo150.txt",
            root / "ADEChallengeData2016" / "objectInfo150.txt",
        ]
    if kind == "ytvis":
        out = []
        for base in (root / "ytvis", root):
            for n in _YTVIS_SPLITS[s]:
                out += [base / f"{n}.json", base / n / "instances.json"]
        return out
    if kind == "vipseg":
        return [
            b / f"panoptic_gt_VIPSeg_{s}.json"
            for b in (root / "vipseg", root, root / "VIPSeg_720P")
        ]
    raise AssertionError(kind)


def resolve_data(
    task: str,
    data: str,
    *,
    split: str = "val",
    images: str | None = None,
    masks: str | None = None,
    video_dir: str | None = None,
) -> DataSpec:
    """Find the annotation file and folders of ``task`` from ``--data`` (a root or a file).

    Raises:
        FileNotFoundError: nothing found; the message lists every path that was looked for.
        ValueError: an annotation file of a kind the task cannot use.
    """
    path = Path(data)
    kinds = _KIND_OF_TASK[task]
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".txt", ".csv"):
            if "ade20k" not in kinds:
                raise ValueError(f"--task {task} needs a JSON annotation file, got {path}")
            return _spec_from_file("ade20k", path, images, masks, video_dir, split)
        kind = (
            kinds[-1] if task == "semantic" else kinds[0]
        )  # semantic + JSON = COCO panoptic_semseg
        return _spec_from_file(kind, path, images, masks, video_dir, split)
    if not path.exists():
        raise FileNotFoundError(
            f"--data {path} does not exist; give a dataset root or an annotation file"
        )
    looked: list[str] = []
    for kind in kinds:
        for cand in _root_candidates(kind, path, split):
            looked.append(str(cand))
            if cand.is_file():
                spec = _spec_from_file(kind, cand, images, masks, video_dir, split)
                if kind == "coco_semseg" and spec.masks is None:
                    looked.append(
                        str(cand.parent / f"panoptic_semseg_{_coco_split_name(cand, 'panoptic_')}")
                    )
                    continue
                spec.looked = looked
                return spec
    raise FileNotFoundError(
        f"no {task} annotations for split '{split}' under {path}; looked for:\n  "
        + "\n  ".join(looked)
        + "\nGive the annotation file itself with --data (and --images / --masks / "
        "--video-dir), or another --split."
    )


def _need(path: Path | None, what: str, option: str, spec: DataSpec) -> Path:
    if path is None or not path.exists():
        where = f" ({path} does not exist)" if path is not None else ""
        raise FileNotFoundError(
            f"{what} folder for {spec.ann} not found{where}; pass it with {option} DIR"
        )
    return path


def _prediction_paths(task: str, pred: Path) -> tuple[Path, Path | None]:
    """(file or folder holding the predictions, PNG folder where the format has one)."""
    if task == "semantic":
        if not pred.is_dir():
            raise FileNotFoundError(
                f"--predictions {pred}: semantic predictions are a folder of <stem>.png"
            )
        return (pred / "semantic" if (pred / "semantic").is_dir() else pred), None
    names = {
        "panoptic": ("panoptic.json", "panoptic"),
        "vps": ("vps.json", "vps"),
        "instance": ("instances.json", None),
        "interactive": ("interactive.json", None),
        "vis": ("results.json", None),
    }
    json_name, png_name = names[task]
    if pred.is_dir():
        files = [pred / json_name] + ([pred / "panoptic.json"] if task == "vps" else [])
        js = next((f for f in files if f.is_file()), None)
        if js is None:
            raise FileNotFoundError(
                f"--predictions {pred}: no {' or '.join(f.name for f in files)} in the folder"
            )
    elif pred.is_file():
        js = pred
    else:
        raise FileNotFoundError(f"--predictions {pred} does not exist")
    if png_name is None:
        return js, None
    cands = [js.with_suffix(""), js.parent / png_name, js.parent / "panoptic"]
    png = next((c for c in cands if c.is_dir()), None)
    if png is None:
        raise FileNotFoundError(
            f"no PNG folder for {js}; looked for " + ", ".join(str(c) for c in cands)
        )
    return js, png


# ------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from ..evaluation import runner
    from ..evaluation.report import write_json as write_metrics
    from .predict import _parse_scale

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.max_clicks < 1:
        raise ValueError(f"--max-clicks must be >= 1, got {args.max_clicks}")
    windows = [int(v) for v in parse_floats(args.windows, 1, 64, "--windows")]
    if any(w < 1 for w in windows):
        raise ValueError(f"--windows must be positive frame counts, got {args.windows}")
    spec = resolve_data(
        args.task,
        args.data,
        split=args.split,
        images=args.images,
        masks=args.masks,
        video_dir=args.video_dir,
    )
    out = Path(args.out)
    t0 = time.perf_counter()
    show = sys.stderr.isatty()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runner.ClassMappingWarning)  # reported as a note below
        if args.predictions:
            ev = _score(args, spec, Path(args.predictions), windows)
            source = f"predictions {args.predictions}"
        else:
            scale = _parse_scale(args.image_scale)
            model = load_model(args)
            if args.classes:
                from ..vocab_bridge import vocabulary_for_model

                emb, names, flags = vocabulary_for_model(model, args.classes)
                model.set_vocabulary(emb.to(next(model.parameters()).device), names, flags)
            ev = _run_model(args, spec, model, scale, windows, out, show)
            source = f"model {getattr(model.config, 'name', 'rapsam')}" + (
                f" ({args.weights})" if args.weights else ""
            )
    dt = time.perf_counter() - t0
    unit = "video(s)" if args.task in ("vis", "vps") else "image(s)"
    if ev.result is not None:
        print(ev.table(per_class=not args.no_per_class))
        print()
    headline = ", ".join(f"{k} {_fmt(k, v)}" for k, v in ev.metrics.items() if isinstance(v, float))
    print(f"{args.task} ({source}, {ev.count} {unit}, {dt:.1f} s): {headline}")
    for note in ev.notes:
        print(f"note: {note}", file=sys.stderr)
    record = {
        **ev.to_dict(),
        "data": {
            "kind": spec.kind,
            "annotations": str(spec.ann),
            "images": str(spec.images) if spec.images else None,
            "masks": str(spec.masks) if spec.masks else None,
            "split": args.split,
        },
        "source": source,
        "limit": args.limit,
        "seconds": dt,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out / "metrics.json", record)
    print(f"metrics -> {out / 'metrics.json'}" + (f", predictions -> {out}/" if ev.outputs else ""))
    return 0


def _fmt(key: str, value: float) -> str:
    """Headline number: NoC in clicks with 2 decimals, percentages with 1, NaN as '-'."""
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if key.startswith("NoC") else f"{value:.1f}"


def _semantic_gt(spec: DataSpec, need_images: bool):
    from ..evaluation.runner import SemanticGT

    masks = _need(spec.masks, "label PNG", "--masks", spec)
    images = _need(spec.images, "image", "--images", spec) if need_images else spec.images
    if spec.kind == "ade20k":
        return SemanticGT.ade(images, masks, spec.ann)
    return SemanticGT.coco(spec.ann, masks, images)


def _score(args: argparse.Namespace, spec: DataSpec, pred: Path, windows: list[int]) -> Any:
    from ..evaluation import runner

    task, limit = args.task, args.limit
    if task == "semantic":
        pdir, _ = _prediction_paths(task, pred)
        return runner.score_semantic(_semantic_gt(spec, False), pdir, limit=limit)
    js, png = _prediction_paths(task, pred)
    if task == "panoptic":
        return runner.score_panoptic(
            spec.ann,
            _need(spec.masks, "panoptic PNG", "--masks", spec),
            js,
            png,
            limit=limit,
            num_workers=args.workers,
        )
    if task == "instance":
        return runner.score_instance(spec.ann, js, limit=limit)
    if task == "interactive":
        return runner.score_interactive(
            spec.ann, _need(spec.masks, "panoptic PNG", "--masks", spec), js, limit=limit
        )
    if task == "vis":
        return runner.score_vis(spec.ann, js, limit=limit)
    return runner.score_vps(
        spec.ann,
        _need(spec.masks, "panoptic PNG", "--masks", spec),
        js,
        png,
        limit=limit,
        window_lengths=windows,
    )


def _run_model(
    args: argparse.Namespace,
    spec: DataSpec,
    model: Any,
    scale: Any,
    windows: list[int],
    out: Path,
    show: bool,
) -> Any:
    from ..evaluation import runner

    task = args.task
    kw = {"image_scale": scale, "limit": args.limit, "progress": show, "out_dir": out}
    if task == "semantic":
        return runner.run_semantic(model, _semantic_gt(spec, True), **kw)
    if task == "vis":
        return runner.run_vis(
            model, spec.ann, _need(spec.images, "frame", "--video-dir", spec), mode=args.mode,
            video_options=video_postprocess_kwargs(args), **kw
        )
    images = _need(spec.images, "image" if task != "vps" else "frame", "--images", spec)
    if task == "instance":
        return runner.run_instance(model, spec.ann, images, **kw)
    masks = _need(spec.masks, "panoptic PNG", "--masks", spec)
    if task == "panoptic":
        return runner.run_panoptic(model, spec.ann, images, masks, **kw)
    if task == "interactive":
        return runner.run_interactive(
            model,
            spec.ann,
            images,
            masks,
            boxes=not args.no_boxes,
            noc=not args.no_noc,
            max_clicks=args.max_clicks,
            **kw,
        )
    return runner.run_vps(
        model, spec.ann, images, masks, mode=args.mode, window_lengths=windows, **kw
    )


__all__ = ["TASKS", "DataSpec", "register", "resolve_data", "run"]
