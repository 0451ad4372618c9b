"""DAVIS video object segmentation: region J, boundary F and J&F (davis2017-evaluation).

Reference: Pont-Tuset et al., "The 2017 DAVIS Challenge on Video Object Segmentation"; code
davisvideochallenge/davis2017-evaluation (``davis2017/{metrics,utils,evaluation}.py``). Rules
(metrics.md section 5):

* J = |M ∩ G| / |M ∪ G| (void pixels removed when given); J = 1 when the union is empty;
* F: boundary maps by the "differs from right / lower / lower-right neighbour" rule, each
  dilated by a disk of radius ``ceil(0.008 * diagonal)`` (or ``bound_th`` pixels if >= 1);
  precision / recall of matched boundary pixels with the reference's empty-boundary cases;
* semi-supervised task: objects 1..N with N = max label of the first GT frame, void (255) set to
  background, the first and last frames dropped, missing result objects scored as empty;
* per object: mean, recall (fraction > 0.5) and decay over 4 bins; global numbers are means
  over (sequence, object) entries, J&F-Mean = (J-Mean + F-Mean) / 2.

The disk dilation is computed exactly through a Euclidean distance transform (a pixel lies in
the dilation iff its squared distance to a boundary pixel is <= r^2), equal to ``cv2.dilate`` with
``skimage.morphology.disk(r)``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from .io import EvaluationInputError

Task = Literal["semi-supervised", "unsupervised"]


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray,
                void_pixels: np.ndarray | None = None) -> np.ndarray | float:
    """Region similarity J over the last two axes.

    Args:
        annotation, segmentation: ``(..., H, W)`` binary masks.
        void_pixels: Optional ``(..., H, W)`` mask of pixels to ignore.

    Returns:
        J per leading index (a float for 2-D input); 1 where the union is empty.
    """
    a = np.asarray(annotation).astype(bool)
    s = np.asarray(segmentation).astype(bool)
    if a.shape != s.shape:
        raise ValueError(f"annotation {a.shape} and segmentation {s.shape} differ in shape.")
    keep = ~np.asarray(void_pixels).astype(bool) if void_pixels is not None else np.ones_like(a)
    inter = np.sum((s & a) & keep, axis=(-2, -1))
    union = np.sum((s | a) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    if np.ndim(j) == 0:
        return 1.0 if np.isclose(union, 0) else float(j)
    j[np.isclose(union, 0)] = 1
    return j


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map of a binary mask (DAVIS ``_seg2bmap`` at the mask's own size).

    A pixel is a boundary pixel if it differs from its right, lower or lower-right neighbour
    (outside the image counts as 0); the last row compares only rightwards, the last column only
    downwards, and the bottom-right pixel is 0.
    """
    seg = np.asarray(seg).astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """Dilation radius in pixels: ``bound_th`` if >= 1, else ``ceil(bound_th * diagonal)``."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th={bound_th} >= 1 must be a whole number of pixels.")
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape)))


def _within(boundary: np.ndarray, r: int) -> np.ndarray:
    """Pixels within Euclidean distance ``r`` of a True pixel (dilation by ``disk(r)``)."""
    if not boundary.any():
        return np.zeros_like(boundary)
    iy, ix = ndimage.distance_transform_edt(~boundary, return_distances=False,
                                            return_indices=True)
    gy, gx = np.indices(boundary.shape)
    return (iy - gy) ** 2 + (ix - gx) ** 2 <= r * r


def f_measure(foreground_mask: np.ndarray, gt_mask: np.ndarray,
              void_pixels: np.ndarray | None = None, bound_th: float = 0.008) -> float:
    """Boundary F-measure of one frame (DAVIS ``f_measure``).

    Args:
        foreground_mask: ``(H, W)`` predicted mask.
        gt_mask: ``(H, W)`` GT mask.
        void_pixels: Optional ``(H, W)`` void mask (both masks are multiplied by its negation).
        bound_th: Tolerance as a fraction of the diagonal (< 1) or in pixels (>= 1).
    """
    fg = np.asarray(foreground_mask).astype(bool)
    gt = np.asarray(gt_mask).astype(bool)
    if fg.shape != gt.shape:
        raise ValueError(f"prediction {fg.shape} and GT {gt.shape} differ in shape.")
    if void_pixels is not None:
        keep = ~np.asarray(void_pixels).astype(bool)
        fg, gt = fg & keep, gt & keep
    r = boundary_radius(fg.shape, bound_th)
    fg_b = seg2bmap(fg)
    gt_b = seg2bmap(gt)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = float((fg_b & _within(gt_b, r)).sum()) / float(n_fg)
        recall = float((gt_b & _within(fg_b, r)).sum()) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray,
                     void_pixels: np.ndarray | None = None, bound_th: float = 0.008
                     ) -> np.ndarray:
    """F per frame of ``(T, H, W)`` GT and predicted masks."""
    a, s = np.asarray(annotation), np.asarray(segmentation)
    return np.array([f_measure(s[t], a[t], None if void_pixels is None else void_pixels[t],
                               bound_th) for t in range(a.shape[0])], dtype=np.float64)


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (fraction > 0.5) and decay (first minus last of 4 overlapping bins)."""
    v = np.asarray(per_frame_values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(v)
        recall = np.nanmean(v > 0.5)
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64) % 256  # uint8
        bins = [v[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def one_hot(labels: np.ndarray, num_objects: int) -> np.ndarray:
    """``(T, H, W)`` labels -> ``(N, T, H, W)`` bool masks for objects ``1..N``."""
    return labels[None] == np.arange(1, num_objects + 1).reshape(-1, 1, 1, 1)


@dataclass(frozen=True)
class DavisObjectResult:
    """Per-object J and F: per-frame values and (mean, recall, decay) statistics."""

    sequence: str
    object_id: int
    j: np.ndarray
    f: np.ndarray
    j_stats: tuple[float, float, float]
    f_stats: tuple[float, float, float]


@dataclass(frozen=True)
class DavisResult:
    """Global DAVIS numbers (0-1 scale) and the per-object entries they average."""

    jf_mean: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    per_object: tuple[DavisObjectResult, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"J&F-Mean": self.jf_mean, "J-Mean": self.j_mean, "J-Recall": self.j_recall,
                "J-Decay": self.j_decay, "F-Mean": self.f_mean, "F-Recall": self.f_recall,
                "F-Decay": self.f_decay,
                "per_object": {f"{o.sequence}_{o.object_id}": {"J-Mean": o.j_stats[0],
                                                               "F-Mean": o.f_stats[0]}
                               for o in self.per_object}}


def evaluate_davis_sequence(gt_labels: np.ndarray, pred_labels: np.ndarray, *,
                            sequence: str = "seq", task: Task = "semi-supervised",
                            bound_th: float = 0.008, max_proposals: int = 20
                            ) -> list[DavisObjectResult]:
    """J and F of every object of one sequence.

    Args:
        gt_labels: ``(T, H, W)`` GT label maps (0 background, 1..N objects, 255 void).
        pred_labels: ``(T, H, W)`` predicted label maps for the same frames.
        sequence: Name used in results and errors.
        task: ``"semi-supervised"`` (first / last frames dropped, no void) or ``"unsupervised"``
            (all frames, void used, proposals assigned to objects by Hungarian matching on the
            mean (J + F) / 2).
        bound_th: Boundary tolerance (see :func:`f_measure`).
        max_proposals: Unsupervised only: at most this many predicted objects.

    Raises:
        ValueError: shapes differ, more predicted objects than allowed (the reference aborts).
    """
    gt = np.asarray(gt_labels)
    pred = np.asarray(pred_labels)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise ValueError(f"sequence {sequence!r}: GT {gt.shape} and prediction {pred.shape} must "
                         "both be (T, H, W) label maps of the same frames.")
    void = gt == 255
    gt = np.where(void, 0, gt)
    n_gt = int(gt[0].max()) if gt.size else 0
    scored = pred[1:-1] if task == "semi-supervised" else pred  # the reference reads only these
    n_pred = int(scored.max()) if scored.size else 0
    gt_masks = one_hot(gt, n_gt)  # (N, T, H, W)
    pred_masks = one_hot(pred, n_pred)
    if task == "semi-supervised":
        if n_pred > n_gt:
            raise ValueError(f"sequence {sequence!r}: the results hold object id {n_pred} but "
                             f"the first GT frame has only {n_gt} objects; the reference "
                             "aborts here. Remove extra ids from the result PNGs.")
        gt_masks = gt_masks[:, 1:-1]
        pred_masks = pred_masks[:, 1:-1]
        pad = np.zeros((n_gt - n_pred,) + pred_masks.shape[1:], bool)
        pred_masks = np.concatenate([pred_masks, pad], axis=0)
        js = [np.atleast_1d(db_eval_iou(gt_masks[i], pred_masks[i])).astype(np.float64)
              for i in range(n_gt)]
        fs = [db_eval_boundary(gt_masks[i], pred_masks[i], None, bound_th) for i in range(n_gt)]
    elif task == "unsupervised":
        if n_pred > max_proposals:
            raise ValueError(f"sequence {sequence!r}: {n_pred} proposals exceed the maximum "
                             f"{max_proposals}; the reference aborts here.")
        if n_pred < n_gt:
            pad = np.zeros((n_gt - n_pred,) + pred_masks.shape[1:], bool)
            pred_masks = np.concatenate([pred_masks, pad], axis=0)
        P, T = pred_masks.shape[0], gt.shape[0]
        jm = np.zeros((P, n_gt, T))
        fm = np.zeros((P, n_gt, T))
        for i in range(n_gt):
            for p in range(P):
                jm[p, i] = db_eval_iou(gt_masks[i], pred_masks[p], void)
                fm[p, i] = db_eval_boundary(gt_masks[i], pred_masks[p], void, bound_th)
        rows, cols = linear_sum_assignment(-(jm.mean(axis=2) + fm.mean(axis=2)) / 2)
        js = [jm[r, c] for r, c in zip(rows, cols)]
        fs = [fm[r, c] for r, c in zip(rows, cols)]
    else:
        raise ValueError(f"task must be 'semi-supervised' or 'unsupervised', got {task!r}.")
    return [DavisObjectResult(sequence, i + 1, js[i], fs[i], db_statistics(js[i]),
                              db_statistics(fs[i])) for i in range(len(js))]


class DavisEvaluator:
    """Accumulate DAVIS J / F over sequences.

    Example:
        >>> ev = DavisEvaluator()
        >>> ev.add("bike-packing", gt_labels, pred_labels)   # (T, H, W) each
        >>> ev.compute().jf_mean
    """

    def __init__(self, *, task: Task = "semi-supervised", bound_th: float = 0.008) -> None:
        self.task = task
        self.bound_th = bound_th
        self.objects: list[DavisObjectResult] = []

    def add(self, sequence: str, gt_labels: np.ndarray, pred_labels: np.ndarray
            ) -> list[DavisObjectResult]:
        res = evaluate_davis_sequence(gt_labels, pred_labels, sequence=sequence, task=self.task,
                                      bound_th=self.bound_th)
        self.objects.extend(res)
        return res

    def compute(self) -> DavisResult:
        if not self.objects:
            nan = math.nan
            return DavisResult(nan, nan, nan, nan, nan, nan, nan, ())
        J = np.array([o.j_stats for o in self.objects])  # (E, 3)
        F = np.array([o.f_stats for o in self.objects])  # (E, 3)
        jm, jr, jd = (float(np.mean(J[:, k])) for k in range(3))
        fm, fr, fd = (float(np.mean(F[:, k])) for k in range(3))
        return DavisResult((jm + fm) / 2, jm, jr, jd, fm, fr, fd, tuple(self.objects))


def read_label_png(path: str | os.PathLike, *, record: str) -> np.ndarray:
    """An indexed (palette or grayscale) PNG as ``(H, W)`` labels, naming ``record`` on failure."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"mask {str(path)!r} does not exist.", record=record,
                                   fix="write one PNG per annotated frame, named like the GT.")
    with Image.open(path) as im:
        arr = np.array(im)
    if arr.ndim != 2:
        raise EvaluationInputError(f"mask {str(path)!r} is not an indexed PNG (shape "
                                   f"{arr.shape}).", record=record,
                                   fix="save object ids as a palette ('P') or 'L' PNG.")
    return arr


def davis_evaluate_folders(gt_dir: str | os.PathLike, results_dir: str | os.PathLike,
                           sequences: Sequence[str] | None = None, *,
                           task: Task = "semi-supervised", bound_th: float = 0.008
                           ) -> DavisResult:
    """DAVIS from folders: ``<gt_dir>/<seq>/<frame>.png`` and ``<results_dir>/<seq>/<frame>.png``.

    Args:
        gt_dir: Folder of GT sequences (DAVIS ``Annotations/480p``).
        results_dir: Folder of result sequences with the same file names.
        sequences: Sequence names (default: every sub-folder of ``gt_dir``, sorted).

    Raises:
        EvaluationInputError: a missing folder or result frame, or a non-indexed PNG.
    """
    gt_dir, results_dir = Path(gt_dir), Path(results_dir)
    if not gt_dir.is_dir():
        raise EvaluationInputError(f"GT folder {str(gt_dir)!r} does not exist.",
                                   fix="pass DAVIS Annotations/480p.")
    if sequences is None:
        sequences = sorted(p.name for p in gt_dir.iterdir() if p.is_dir())
    ev = DavisEvaluator(task=task, bound_th=bound_th)
    for seq in sequences:
        names = sorted(p.name for p in (gt_dir / seq).glob("*.png"))
        if not names:
            raise EvaluationInputError(f"no GT PNGs in {str(gt_dir / seq)!r}.", record=seq,
                                       fix="check the sequence list.")
        gt = np.stack([read_label_png(gt_dir / seq / n, record=f"{seq}/{n}") for n in names])
        keep = names[1:-1] if task == "semi-supervised" else names
        res = np.zeros(gt.shape, np.int64)
        for n in keep:
            r = read_label_png(results_dir / seq / n, record=f"{seq}/{n}")
            if r.shape != gt.shape[1:]:
                raise EvaluationInputError(f"result size {r.shape} differs from the GT "
                                           f"{gt.shape[1:]}.", record=f"{seq}/{n}",
                                           fix="save results at the annotation resolution.")
            res[names.index(n)] = r
        ev.add(seq, gt, res)
    return ev.compute()
