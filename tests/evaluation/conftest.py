"""Shared generators for the evaluation tests: random COCO-panoptic GT/prediction pairs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from rapsam.evaluation.io import id2rgb


def _random_shape_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random rectangle or ellipse (may be empty or cover the whole image)."""
    y0, y1 = sorted(rng.integers(0, h + 1, size=2))
    x0, x1 = sorted(rng.integers(0, w + 1, size=2))
    m = np.zeros((h, w), bool)
    if rng.random() < 0.5:
        m[y0:y1 + 1, x0:x1 + 1] = True
    else:
        yy, xx = np.mgrid[:h, :w]
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        ry, rx = max((y1 - y0) / 2, 0.5), max((x1 - x0) / 2, 0.5)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return m


def _new_id(rng: np.random.Generator, used: set[int]) -> int:
    while True:
        kind = rng.random()
        if kind < 0.3:
            i = int(rng.integers(1, 256))
        elif kind < 0.6:
            i = int(rng.integers(256, 65536))
        else:
            i = int(rng.integers(65536, 2**24))
        if i not in used:
            used.add(i)
            return i


def random_categories(rng: np.random.Generator, allow_empty_group: bool = True) -> list[dict]:
    empty = allow_empty_group and rng.random() < 0.15
    n_th = int(rng.integers(0 if empty else 1, 5))
    n_st = int(rng.integers(0 if empty else 1, 4))
    ids = rng.choice(np.arange(1, 200), size=n_th + n_st, replace=False)
    return [{"id": int(c), "name": f"c{c}", "isthing": int(k < n_th)} for k, c in enumerate(ids)]


def random_gt_image(rng: np.random.Generator, h: int, w: int, categories: list[dict],
                    empty: bool = False, wrong_area_prob: float = 0.08
                    ) -> tuple[np.ndarray, list[dict]]:
    """GT ids (H, W) and segments_info with crowd, void and occasionally wrong JSON areas."""
    ids = np.zeros((h, w), np.int64)
    segs: list[dict] = []
    if empty or not categories:
        return ids, segs
    used: set[int] = set()
    for _ in range(int(rng.integers(1, 7))):
        m = _random_shape_mask(rng, h, w)
        ids[m] = _new_id(rng, used)
    if rng.random() < 0.5:  # void holes
        ids[_random_shape_mask(rng, h, w) & (rng.random((h, w)) < 0.5)] = 0
    for sid in np.unique(ids):
        if sid == 0:
            continue
        cat = categories[int(rng.integers(len(categories)))]
        area = int((ids == sid).sum())
        if rng.random() < wrong_area_prob:
            area += int(rng.integers(-area + 1, 5))  # JSON area differs from the PNG count
        segs.append({"id": int(sid), "category_id": cat["id"],
                     "iscrowd": int(rng.random() < 0.15), "area": area,
                     "bbox": [0, 0, 1, 1]})
    if rng.random() < 0.1:  # a segment listed in JSON with no pixels
        segs.append({"id": _new_id(rng, used), "category_id": categories[0]["id"], "iscrowd": 0,
                     "area": int(rng.integers(0, 6)), "bbox": [0, 0, 0, 0]})
    rng.shuffle(segs)
    return ids, segs


def random_prediction(rng: np.random.Generator, gt_ids: np.ndarray, gt_segs: list[dict],
                      categories: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """A perturbed copy of the GT: relabelled, merged, shifted, extra and missing segments."""
    h, w = gt_ids.shape
    pred = np.zeros((h, w), np.int64)
    used: set[int] = set()
    cat_of = {s["id"]: s["category_id"] for s in gt_segs}
    pred_cat: dict[int, int] = {}
    mapping: dict[int, int] = {}
    for gid in np.unique(gt_ids):
        if gid == 0:
            continue
        r = rng.random()
        if r < 0.65 or not mapping:
            pid = _new_id(rng, used)
            c = cat_of.get(int(gid), categories[0]["id"])
            if rng.random() < 0.15:
                c = categories[int(rng.integers(len(categories)))]["id"]
            pred_cat[pid] = c
        elif r < 0.85:
            pid = list(mapping.values())[int(rng.integers(len(mapping)))]  # merge
        else:
            pid = 0
        mapping[int(gid)] = pid
        pred[gt_ids == gid] = pid
    if rng.random() < 0.3:  # shift by a pixel or two
        dy, dx = rng.integers(-2, 3, size=2)
        pred = np.roll(pred, (int(dy), int(dx)), axis=(0, 1))
    for _ in range(int(rng.integers(0, 3))):  # extra segments
        pid = _new_id(rng, used)
        pred[_random_shape_mask(rng, h, w)] = pid
        pred_cat[pid] = categories[int(rng.integers(len(categories)))]["id"]
    if rng.random() < 0.3:  # random void / noise
        pred[rng.random((h, w)) < 0.1] = 0
    present = [int(i) for i in np.unique(pred) if i != 0]
    segs = [{"id": pid, "category_id": pred_cat[pid], "area": 12345} for pid in present]
    if rng.random() < 0.05 and segs:  # duplicate entry: last one wins
        segs.append(dict(segs[0], category_id=categories[int(rng.integers(len(categories)))]["id"]))
    if rng.random() < 0.03 and (pred == 0).any():  # id 0 listed: it becomes a real segment
        segs.append({"id": 0, "category_id": categories[0]["id"]})
    rng.shuffle(segs)
    return pred, segs


def random_dataset(rng: np.random.Generator, n_images: int | None = None,
                   allow_empty_group: bool = True) -> dict[str, Any]:
    categories = random_categories(rng, allow_empty_group)
    if not categories:
        categories = [{"id": 1, "name": "c1", "isthing": 1}]
    h, w = int(rng.integers(1, 21)), int(rng.integers(1, 25))
    images = []
    for k in range(n_images if n_images is not None else int(rng.integers(1, 5))):
        gt_ids, gt_segs = random_gt_image(rng, h, w, categories, empty=rng.random() < 0.1)
        if rng.random() < 0.1:
            pred_ids, pred_segs = np.zeros_like(gt_ids), []
        else:
            pred_ids, pred_segs = random_prediction(rng, gt_ids, gt_segs, categories)
        r = rng.random()  # occasional malformed predictions (the reference raises)
        if r < 0.02 and pred_segs:
            pred_segs = pred_segs[1:]  # an id in the PNG is missing from JSON
        elif r < 0.04:
            pred_segs = pred_segs + [{"id": 2**24 - 1, "category_id": categories[0]["id"]}]
        elif r < 0.06 and pred_segs:
            pred_segs = [dict(pred_segs[0], category_id=999)] + pred_segs[1:]
        images.append({"image_id": 1000 + 7 * k, "gt_ids": gt_ids, "gt_segs": gt_segs,
                       "pred_ids": pred_ids, "pred_segs": pred_segs})
    return {"categories": categories, "images": images}


def write_dataset(ds: dict[str, Any], root: Path) -> dict[str, str]:
    """Write COCO panoptic GT and prediction JSON + PNG folders; returns the paths."""
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    gt_anns, pred_anns, imgs = [], [], []
    for im in ds["images"]:
        name = f"{im['image_id']:012d}.png"
        Image.fromarray(id2rgb(im["gt_ids"])).save(gt_dir / name)
        Image.fromarray(id2rgb(im["pred_ids"])).save(pred_dir / name)
        h, w = im["gt_ids"].shape
        imgs.append({"id": im["image_id"], "file_name": name.replace(".png", ".jpg"),
                     "height": h, "width": w})
        gt_anns.append({"image_id": im["image_id"], "file_name": name,
                        "segments_info": im["gt_segs"]})
        pred_anns.append({"image_id": im["image_id"], "file_name": name,
                          "segments_info": im["pred_segs"]})
    gt_json, pred_json = root / "gt.json", root / "pred.json"
    gt_json.write_text(json.dumps({"images": imgs, "annotations": gt_anns,
                                   "categories": ds["categories"]}))
    pred_json.write_text(json.dumps({"annotations": pred_anns}))
    return {"gt_json": str(gt_json), "pred_json": str(pred_json), "gt_folder": str(gt_dir),
            "pred_folder": str(pred_dir)}


@pytest.fixture
def pangen() -> SimpleNamespace:
    """The random panoptic generators as a namespace."""
    return SimpleNamespace(random_dataset=random_dataset, write_dataset=write_dataset,
                           random_gt_image=random_gt_image, random_prediction=random_prediction,
                           random_categories=random_categories)


@pytest.fixture
def reference_pq(monkeypatch: pytest.MonkeyPatch):
    """panopticapi's pq_compute, run in-process (its multiprocessing pool replaced)."""
    from panopticapi import evaluation as ref

    def single(matched, gt_folder, pred_folder, categories):
        return ref.pq_compute_single_core(0, matched, gt_folder, pred_folder, categories)

    monkeypatch.setattr(ref, "pq_compute_multi_core", single)
    return ref.pq_compute
