"""COCO mask AP through pycocotools ``COCOeval`` (iouType ``segm``), as mmdet's ``CocoMetric`` runs it.

Reference: Lin et al., "Microsoft COCO", ECCV 2014; code cocodataset/cocoapi
(``PythonAPI/pycocotools/cocoeval.py``). The protocol itself is pycocotools'; this module converts
model outputs into its results format and checks every record first (see metrics.md section 2).

Conversion rules kept from mmdet 3.3.0 (which RAP-SAM's numbers come from):

* one result per predicted mask: ``{image_id, category_id, segmentation, score, bbox}`` with the
  mask as compressed RLE (``counts`` a ``str``) at the original image size;
* ``bbox`` is the tight mask box ``[x, y, w, h]`` (mmdet's ``mask2bbox`` then ``xyxy2xywh``, equal
  to pycocotools ``toBbox``). Because the first result carries a bbox, pycocotools takes each
  detection's *box* area ``w * h`` for the area ranges (``with_bbox=False`` uses the mask area).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .io import (
    EvaluationInputError,
    JsonSource,
    encode_mask,
    load_json,
    read_coco_instance_results,
    require_keys,
    source_name,
)

STAT_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100",
              "ar_small", "ar_medium", "ar_large")
"""Field names of the 12 COCO summary numbers, in ``COCOeval.stats`` order."""


@dataclass(frozen=True)
class APResult:
    """The 12 COCO summary numbers (0-1 scale; -1 where no GT exists) and per-class AP.

    Attributes:
        ap: AP averaged over IoU 0.50:0.95 (area all, 100 detections).
        ap50, ap75: AP at IoU 0.50 / 0.75.
        ap_small, ap_medium, ap_large: AP per area range.
        ar1, ar10, ar100: recall at 1 / 10 / 100 detections.
        ar_small, ar_medium, ar_large: recall per area range (100 detections).
        per_class: ``category_id -> AP@[.50:.95]``, NaN for a category without GT.
    """

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar1: float
    ar10: float
    ar100: float
    ar_small: float
    ar_medium: float
    ar_large: float
    per_class: dict[Any, float]

    @property
    def stats(self) -> tuple[float, ...]:
        """The 12 numbers in ``COCOeval.stats`` order."""
        return tuple(getattr(self, k) for k in STAT_NAMES)

    @classmethod
    def from_stats(cls, stats: Sequence[float], per_class: dict[Any, float]) -> APResult:
        return cls(*(float(s) for s in stats), per_class=per_class)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (category ids become strings, NaN becomes ``None``)."""
        d = asdict(self)
        d["per_class"] = {str(k): (None if math.isnan(v) else v)
                          for k, v in self.per_class.items()}
        return d


def per_class_ap(precision: np.ndarray, cat_ids: Sequence[Any]) -> dict[Any, float]:
    """AP@[.5:.95] per category from a ``(T, R, K, A, M)`` precision array (area all, last M)."""
    out = {}
    for k, cat in enumerate(cat_ids):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out[cat] = float(np.mean(p)) if p.size else math.nan
    return out


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def masks_to_coco_results(image_id: Any, masks: np.ndarray, scores: np.ndarray,
                          labels: np.ndarray, *, with_bbox: bool = True) -> list[dict[str, Any]]:
    """Convert one image's instance predictions to COCO segmentation results.

    Args:
        image_id: The dataset image id.
        masks: ``(N, H, W)`` bool masks at the original image size.
        scores: ``(N,)`` confidences.
        labels: ``(N,)`` dataset category ids (not contiguous indices).
        with_bbox: Add the tight mask box as ``bbox`` (mmdet does; it makes pycocotools use the
            box area for the area ranges).

    Returns:
        ``N`` dicts ``{image_id, category_id, segmentation, score[, bbox]}``; JSON-serialisable.
    """
    masks = np.asarray(masks)
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}; add a leading axis "
                         "for a single mask.")
    n = masks.shape[0]
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be ({n},), "
                         "one per mask.")
    if scores.size and not np.all(np.isfinite(scores)):
        raise ValueError("scores hold NaN or inf; fix the model output before evaluating.")
    out = []
    for i in range(n):
        rle = encode_mask(masks[i])
        det: dict[str, Any] = {"image_id": image_id, "category_id": labels[i].item(),
                               "segmentation": rle, "score": float(scores[i])}
        if with_bbox:
            det["bbox"] = [float(v) for v in mask_utils.toBbox(
                {"size": rle["size"], "counts": rle["counts"].encode("ascii")})]
        out.append(det)
    return out


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


def load_coco_gt(gt: JsonSource | COCO) -> COCO:
    """A pycocotools ``COCO`` object from a path, dict or ``COCO``, checked and built quietly.

    Raises:
        EvaluationInputError: missing top-level keys, or an image / annotation / category record
            without the fields ``COCOeval`` reads.
    """
    if isinstance(gt, COCO):
        return gt
    src = source_name(gt, "<instance ground truth>")
    data = load_json(gt, what="instance ground truth")
    fix = "a COCO instances JSON has images, annotations and categories."
    require_keys(data, ("images", "annotations", "categories"), source=src, where="top level",
                 fix=fix)
    for i, im in enumerate(data["images"]):
        require_keys(im, ("id", "height", "width"), source=src, where=f"images[{i}]", fix=fix)
    for i, c in enumerate(data["categories"]):
        require_keys(c, ("id",), source=src, where=f"categories[{i}]", fix=fix)
    image_ids = {im["id"] for im in data["images"]}
    for i, a in enumerate(data["annotations"]):
        require_keys(a, ("id", "image_id", "category_id", "segmentation", "area", "iscrowd"),
                     source=src, where=f"annotations[{i}]", fix=fix)
        if a["image_id"] not in image_ids:
            raise EvaluationInputError(f"image_id {a['image_id']!r} is not in 'images'.",
                                       source=src, record=f"annotations[{i}]", fix=fix)
    coco = COCO()
    coco.dataset = copy.deepcopy(data) if not isinstance(gt, (str, os.PathLike)) else data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _image_sizes(coco: COCO) -> dict[Any, tuple[int, int]]:
    return {i: (int(im["height"]), int(im["width"])) for i, im in coco.imgs.items()}


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate_instance_ap(gt: JsonSource | COCO, results: JsonSource, *,
                         validate: bool = True) -> APResult:
    """COCO mask AP of ``results`` against ``gt`` with pycocotools ``COCOeval``.

    Args:
        gt: COCO instances GT (path, dict or ``COCO``).
        results: COCO segmentation results (path or list), e.g. from
            :func:`masks_to_coco_results`.
        validate: Check every result record first (image id in GT, known category, finite score,
            RLE of the right size). Turn off only for trusted, very large inputs.

    Returns:
        :class:`APResult`. With no detections at all every category with GT scores 0 (pycocotools
        itself fails with an ``IndexError`` on an empty result list).

    Raises:
        EvaluationInputError: malformed GT or results (see :func:`read_coco_instance_results`).
    """
    coco_gt = load_coco_gt(gt)
    if validate:
        dets = read_coco_instance_results(results, image_sizes=_image_sizes(coco_gt),
                                          category_ids=coco_gt.getCatIds())
    else:
        dets = [dict(d) for d in load_json(results, what="instance results")]
    with contextlib.redirect_stdout(io.StringIO()):
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(coco_gt.dataset["images"]),
                               "categories": copy.deepcopy(coco_gt.dataset["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return APResult.from_stats(ev.stats, per_class_ap(ev.eval["precision"], ev.params.catIds))


class InstanceAPEvaluator:
    """Collect instance predictions image by image, then run COCO mask AP.

    Example:
        >>> ev = InstanceAPEvaluator("instances_val2017.json")
        >>> ev.add(image_id, masks, scores, labels)   # masks (N, H, W) bool, labels = category ids
        >>> res = ev.evaluate(); res.ap * 100
    """

    def __init__(self, gt: JsonSource | COCO, *, with_bbox: bool = True) -> None:
        self.coco_gt = load_coco_gt(gt)
        self.with_bbox = with_bbox
        self.results: list[dict[str, Any]] = []
        self._sizes = _image_sizes(self.coco_gt)
        self._cats = set(self.coco_gt.getCatIds())

    def add(self, image_id: Any, masks: np.ndarray, scores: np.ndarray,
            labels: np.ndarray) -> None:
        """Add one image's predictions (see :func:`masks_to_coco_results`).

        Raises:
            EvaluationInputError: unknown image id, unknown category or masks of the wrong size.
        """
        where = f"image_id={image_id!r}"
        if image_id not in self._sizes:
            raise EvaluationInputError(f"image_id {image_id!r} is not in the ground truth.",
                                       record=where, fix="use the annotation file's image ids.")
        masks = np.asarray(masks)
        if masks.ndim == 3 and masks.shape[1:] != self._sizes[image_id]:
            raise EvaluationInputError(
                f"masks have size {masks.shape[1:]} but the image is {self._sizes[image_id]}.",
                record=where, fix="resize masks to the original image size first.")
        unknown = sorted({int(v) for v in np.asarray(labels).ravel()} - self._cats)
        if unknown:
            raise EvaluationInputError(f"unknown category ids {unknown}.", record=where,
                                       fix="map class indices to the dataset's category ids.")
        self.results.extend(masks_to_coco_results(image_id, masks, scores, labels,
                                                  with_bbox=self.with_bbox))

    def write_results(self, path: str | os.PathLike) -> None:
        """Write the collected results as a COCO results JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.results, f)

    def evaluate(self) -> APResult:
        """COCO mask AP of everything added so far."""
        return evaluate_instance_ap(self.coco_gt, self.results, validate=False)

