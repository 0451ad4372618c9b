"""Semantic segmentation metrics: mIoU, per-class IoU and pixel accuracy from a confusion matrix.

Follows mmsegmentation's ``IoUMetric`` (``mmseg/evaluation/metrics/iou_metric.py``), the usual
ADE20K / Cityscapes protocol: pixels whose GT equals ``ignore_index`` are dropped; per class
``IoU = TP / (TP + FP + FN)`` (NaN when the class never occurs in GT or prediction); mIoU and mAcc
are ``nanmean`` over classes; aAcc (pixel accuracy) = correct / labelled pixels. Everything is
accumulated over images in one integer confusion matrix, so image order does not matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SemanticResult:
    """Semantic metrics on the 0-1 scale.

    Attributes:
        miou: Mean IoU over classes with a non-zero union.
        per_class_iou: ``(C,)`` IoU per class, NaN where GT and prediction never hold the class.
        pixel_accuracy: Correct / labelled pixels (mmseg's aAcc).
        mean_accuracy: Mean per-class recall over classes present in GT (mmseg's mAcc).
        per_class_accuracy: ``(C,)`` recall per class, NaN where the class is absent from GT.
        confusion: ``(C, C)`` int64 matrix, rows = GT class, columns = predicted class.
        class_names: Optional names, one per class.
    """

    miou: float
    per_class_iou: np.ndarray
    pixel_accuracy: float
    mean_accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes ``None``)."""
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)
        names = self.class_names or tuple(str(i) for i in range(len(self.per_class_iou)))
        return {"miou": clean(self.miou), "pixel_accuracy": clean(self.pixel_accuracy),
                "mean_accuracy": clean(self.mean_accuracy),
                "per_class_iou": {n: clean(v) for n, v in zip(names, self.per_class_iou)},
                "per_class_accuracy": {n: clean(v) for n, v in
                                       zip(names, self.per_class_accuracy)}}


class SemanticEvaluator:
    """Accumulate a confusion matrix over images and compute mIoU / accuracy.

    Example:
        >>> ev = SemanticEvaluator(num_classes=150, ignore_index=255)
        >>> ev.add(pred, gt)              # (H, W) int class maps
        >>> ev.compute().miou
    """

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255,
                 class_names: Sequence[str] | None = None) -> None:
        """Args:
            num_classes: Number of classes C; labels are ``0 .. C-1``.
            ignore_index: GT value to ignore (``None``: ignore nothing).
            class_names: Optional names (length C) for reports.
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} entries for {num_classes} "
                             "classes; give one name per class.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else None
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, pred: np.ndarray, gt: np.ndarray, *, image_id: Any = None) -> None:
        """Add one image.

        Args:
            pred: ``(H, W)`` predicted class indices in ``[0, C)``.
            gt: ``(H, W)`` GT class indices in ``[0, C)`` or ``ignore_index``.
            image_id: Used in error messages only.

        Raises:
            ValueError: shape mismatch, non-integer maps, or labels outside ``[0, C)``.
        """
        where = "" if image_id is None else f" (image_id={image_id!r})"
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from GT {gt.shape}{where}; "
                             "resize the prediction to the label size.")
        for name, a in (("prediction", pred), ("GT", gt)):
            if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
                raise ValueError(f"{name} must hold integer class indices, got {a.dtype}{where}.")
        valid = np.ones(gt.shape, bool) if self.ignore_index is None else gt != self.ignore_index
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        C = self.num_classes
        if g.size and (g.min() < 0 or g.max() >= C):
            raise ValueError(f"GT holds labels outside [0, {C}) other than ignore_index "
                             f"{self.ignore_index}{where}; remap the dataset labels first.")
        if p.size and (p.min() < 0 or p.max() >= C):
            raise ValueError(f"prediction holds labels outside [0, {C}){where}; predict one of "
                             "the C classes at every pixel.")
        self.confusion += np.bincount(g * C + p, minlength=C * C).reshape(C, C)

    def compute(self) -> SemanticResult:
        """mIoU, per-class IoU and accuracies over everything added so far."""
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        gt_area = cm.sum(axis=1)
        pred_area = cm.sum(axis=0)
        union = gt_area + pred_area - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / union  # NaN where union == 0
            acc = tp / gt_area  # NaN where the class is absent from GT
        total = cm.sum()
        return SemanticResult(
            miou=float(np.nanmean(iou)) if np.any(union > 0) else math.nan,
            per_class_iou=iou,
            pixel_accuracy=float(tp.sum() / total) if total > 0 else math.nan,
            mean_accuracy=float(np.nanmean(acc)) if np.any(gt_area > 0) else math.nan,
            per_class_accuracy=acc,
            confusion=self.confusion.copy(),
            class_names=self.class_names)
