"""Run a model over a dataset and score it with the reference-equal metrics of this package.

* ``evaluate_panoptic``: ``PanopticPredictor`` on a COCO-panoptic split -> PQ (panopticapi rules);
* ``evaluate_interactive``: COCO-SAM protocol (one click per GT segment, things and stuff, at the
  interior point farthest from the boundary; IoU at the original resolution; pooled mIoU), plus
  box-prompt mIoU and, optionally, the multi-click NoC protocol;
* ``evaluate_vis``: ``VideoPredictor`` (official mode) on a YouTube-VIS split -> VIS AP.

Predicted classes are mapped to the dataset's categories by name (the model's vocabulary may be
larger or ordered differently).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _norm(n: str) -> str:
    return n.strip().lower().replace("_", " ")


def _class_to_category(model, categories: list[dict]) -> dict[int, int]:
    by_name = {_norm(c["name"]): c["id"] for c in categories}
    return {i: by_name[_norm(n)] for i, n in enumerate(model.class_names) if _norm(n) in by_name}


def evaluate_panoptic(model, ann_file: str, image_dir: str, panoptic_dir: str, *, image_scale: Any = "model",
                      limit: int | None = None, progress: bool = False) -> dict:
    """PQ / SQ / RQ (x100) of ``model`` on a COCO panoptic split."""
    import json

    from ..data.datasets import CocoPanopticDataset
    from ..predictor import PanopticPredictor
    from .panoptic_quality import PQEvaluator

    ds = CocoPanopticDataset(ann_file, image_dir, panoptic_dir)
    cats = json.loads(open(ann_file).read())["categories"]
    cmap = _class_to_category(model, cats)
    ev = PQEvaluator(cats)
    pred = PanopticPredictor(model, image_scale=image_scale)
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in _progress(range(n), progress, "panoptic"):
        s = ds[i]
        gt_ids = np.zeros(s.image.shape[:2], np.int64)
        gt_segs = []
        for j in range(len(s)):
            sid = int(s.instance_ids[j])
            gt_ids[s.masks[j]] = sid
            gt_segs.append({"id": sid, "category_id": ds.category_ids[int(s.labels[j])], "iscrowd": int(s.iscrowd[j]),
                            "area": int(s.masks[j].sum())})
        res = pred(s.image)
        p_ids = res.seg_ids.numpy().astype(np.int64)
        p_segs = []
        for seg in res.segments:
            if seg.label in cmap:
                p_segs.append({"id": seg.id, "category_id": cmap[seg.label]})
            else:
                p_ids[p_ids == seg.id] = 0
        ev.add(gt_ids, gt_segs, p_ids, p_segs, image_id=s.image_id)
    r = ev.compute(empty_group="nan")
    return {"PQ": 100 * r.all.pq, "SQ": 100 * r.all.sq, "RQ": 100 * r.all.rq,
            "PQ_th": 100 * r.things.pq, "PQ_st": 100 * r.stuff.pq, "images": n}


def evaluate_interactive(model, ann_file: str, image_dir: str, panoptic_dir: str, *, image_scale: Any = "model",
                         limit: int | None = None, boxes: bool = True, noc: bool = False, max_clicks: int = 20,
                         progress: bool = False) -> dict:
    """COCO-SAM 1-click mIoU (x100), box mIoU and (``noc=True``) NoC@85/90 + mIoU@1/3/5 clicks."""
    from ..data.datasets import CocoPanopticDataset
    from ..predictor import InteractivePredictor
    from .interactive import CocoSamEvaluator, NoCEvaluator, coco_sam_click

    ds = CocoPanopticDataset(ann_file, image_dir, panoptic_dir)
    pred = InteractivePredictor(model, image_scale=image_scale)
    ev, box_ious, noc_ev = CocoSamEvaluator(), [], (NoCEvaluator(max_clicks=max_clicks) if noc else None)
    n = len(ds) if limit is None else min(limit, len(ds))
    for i in _progress(range(n), progress, "interactive"):
        s = ds[i]
        gt = s.masks[~s.iscrowd]
        if len(gt) == 0:
            continue  # the official evaluator skips images without segments
        pred.set_image(s.image)
        clicks = np.array([coco_sam_click(m) for m in gt], dtype=np.float64)  # official (kornia) centre point
        ev.add(pred.predict(points=clicks).masks.numpy(), gt)
        if boxes:
            ys = [np.nonzero(m.any(1))[0] for m in gt]
            xs = [np.nonzero(m.any(0))[0] for m in gt]
            bxs = np.array([[x[0], y[0], x[-1] + 1, y[-1] + 1] for x, y in zip(xs, ys)], dtype=np.float64)
            pm = pred.predict(boxes=bxs).masks.numpy()
            inter = (pm & gt).sum((1, 2))
            union = (pm | gt).sum((1, 2))
            box_ious.extend((inter / np.maximum(union, 1)).tolist())
        if noc_ev is not None:
            for m in gt:
                noc_ev.add(m, lambda pts, labs: pred.predict(points=[pts], labels=[labs]).masks[0].numpy())
    r = ev.compute()
    out = {"mIoU_1click": 100 * r.miou, "prompts": r.num_prompts}
    if boxes:
        out["mIoU_box"] = 100 * float(np.mean(box_ious)) if box_ious else float("nan")
    if noc_ev is not None:
        nr = noc_ev.compute()
        for thr, v in nr.noc.items():
            out[f"NoC@{round(100 * thr)}"] = v
        for k, v in nr.miou_at.items():
            out[f"mIoU@{k}"] = 100 * v
    return out


def evaluate_vis(model, ann_file: str, video_dir: str, *, image_scale: Any = "model", limit: int | None = None,
                 progress: bool = False, mode: str = "official") -> dict:
    """YouTube-VIS AP / AP50 / AP75 / AR1 / AR10 (x100) with the video predictor."""
    import json

    from ..data.datasets import YouTubeVISDataset
    from ..predictor.video import VideoPredictor
    from .vis_ap import evaluate_vis_ap

    gt = json.loads(open(ann_file).read())
    ds = YouTubeVISDataset(ann_file, video_dir)
    cmap = _class_to_category(model, gt["categories"])
    vp = VideoPredictor(model, image_scale=image_scale)
    results = []
    n = len(ds) if limit is None else min(limit, len(ds))
    keep_ids = set()
    for i in _progress(range(n), progress, "video"):
        s = ds.load(i)
        keep_ids.add(s.video_id)
        results.extend(vp.ytvis_results(s.frames, video_id=s.video_id, category_map=cmap, mode=mode))
    if limit is not None:
        gt = {**gt, "videos": [v for v in gt["videos"] if v["id"] in keep_ids],
              "annotations": [a for a in gt["annotations"] if a["video_id"] in keep_ids]}
    r = evaluate_vis_ap(gt, results)
    return {"AP": 100 * r.ap, "AP50": 100 * r.ap50, "AP75": 100 * r.ap75, "AR1": 100 * r.ar1, "AR10": 100 * r.ar10,
            "videos": n}


def evaluate_synthetic_val(model, data) -> dict:
    """The numbers tracked during training (on the ``data.val_*`` splits that are set)."""
    out: dict[str, float] = {}
    if data.val_panoptic_ann:
        args = (data.val_panoptic_ann, data.val_panoptic_images, data.val_panoptic_masks)
        out.update(evaluate_panoptic(model, *args))
        out.update(evaluate_interactive(model, *args, boxes=False))
    if data.val_video_ann:
        try:
            out.update(evaluate_vis(model, data.val_video_ann, data.val_video_dir))
        except ImportError:  # video predictor not available in this installation
            pass
    return out


def _progress(it, show: bool, desc: str):
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, unit="img")
