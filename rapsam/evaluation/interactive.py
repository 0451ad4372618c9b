"""Interactive segmentation protocols: RITM/SimpleClick NoC, COCO-SAM single click, box prompts.

References (metrics.md section 6):

* NoC: Sofiiuk et al., "Reviving Iterative Training with Mask Guidance for Interactive
  Segmentation" (RITM), code SamsungLabs/ritm_interactive_segmentation
  (``isegm/inference/{clicker,evaluation,utils}.py``), reused by uncbiag/SimpleClick. Each click
  goes to the point farthest from the boundary of the larger error region (exact Euclidean
  distance transform with a 1-pixel zero border; positive iff ``max DT(FN) > max DT(FP)``; first
  pixel in row-major order), at most 20 clicks, NoC@t counts 20 for samples that never reach t,
  and the thresholds are ``np.arange(0.8, min(0.95, target) + 0.001, 0.05)`` (so "0.85" is
  0.8500000000000001).
* COCO-SAM (RAP-SAM's own protocol, ``seg/evaluation/metrics/interactive_evaluation.py``): one
  positive click per GT segment at the argmax of a distance transform of the (resized) mask, fed
  to the model as the box ``(x-3, y-3, x+3, y+3)``; ``miou@iter1`` is the mean IoU pooled over all
  prompts of the dataset; the GT for the IoU is the resized mask bilinearly upsampled (> 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage

PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``predict(points (n, 2) int xy, labels (n,) int 1/0) -> (H, W) bool mask``; all clicks so far."""

BoxPredictFn = Callable[[np.ndarray], np.ndarray]
"""``predict_box(box (4,) float xyxy) -> (H, W) bool mask``."""


# --------------------------------------------------------------------------------------------
# Distance transforms and click placement
# --------------------------------------------------------------------------------------------


def _edt_padded_float32(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of each ``True`` pixel to the nearest ``False`` pixel or the border.

    Equals OpenCV ``distanceTransform(pad(mask, 1), DIST_L2, DIST_MASK_PRECISE)[1:-1, 1:-1]``:
    squared distances are exact integers and the square root is taken in float32.
    """
    h, w = mask.shape
    out = np.zeros((h, w), np.float32)
    if not mask.any():
        return out
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.pad(mask[y0:y1, x0:x1], 1)  # the zero ring = outside the mask or the image border
    iy, ix = ndimage.distance_transform_edt(crop, return_distances=False, return_indices=True)
    gy, gx = np.mgrid[:crop.shape[0], :crop.shape[1]]
    d2 = (iy - gy) ** 2 + (ix - gx) ** 2  # exact integer squared distances
    out[y0:y1, x0:x1] = np.sqrt(d2.astype(np.float32))[1:-1, 1:-1]
    return out


_KORNIA_H = 0.35


def kornia_distance_transform(image: np.ndarray) -> np.ndarray:
    """Numpy port of ``kornia.contrib.distance_transform`` (kornia 0.6-0.7, kernel 3, h = 0.35).

    An approximate, convolutional distance of every pixel to the nearest non-zero pixel. kornia
    convolves the whole "boundary" map with ``exp(-|offset| / h)`` each iteration; pixels with a
    value in (0, 1) become ``i * 3 // 2 - h * log(conv)`` and join the boundary. Only the zero
    pixels next to the boundary can change, so this port evaluates the same float32 sums on that
    frontier alone (linear time). Float32 ``log`` and summation order may differ from torch by
    an ulp. The border is replicated (kornia 0.7; 0.6 used zero padding, which gives the same
    result whenever the image border is non-zero, as for COCO-SAM's padded, inverted mask).

    Args:
        image: ``(H, W)`` array; non-zero pixels are the sources.

    Returns:
        ``(H, W)`` float32 distances (0 at sources).
    """
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape
    grid = np.arange(3, dtype=np.float32) - np.float32(1)
    kernel = np.exp(np.hypot(grid[None, :], grid[:, None]) / np.float32(-_KORNIA_H)).astype(
        np.float32)  # (3, 3)
    neg_h = np.float32(-_KORNIA_H)
    P = np.pad(img, 1, mode="edge")  # (H + 2, W + 2) boundary map with a replicated border
    out = np.zeros((h, w), np.float32)
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)]

    def zero_neighbours(ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cand = []
        for dy, dx in offsets:
            yy, xx = ys + dy - 1, xs + dx - 1
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            yy, xx = yy[ok], xx[ok]
            z = P[yy + 1, xx + 1] == 0
            cand.append(yy[z] * w + xx[z])
        idx = np.unique(np.concatenate(cand))  # row-major order
        return idx // w, idx % w

    # First frontier: zero pixels whose 3x3 neighbourhood (replicated border) holds a source.
    near = np.zeros((h, w), bool)
    for dy, dx in offsets:
        near |= P[dy:dy + h, dx:dx + w] != 0
    fy, fx = np.nonzero(near & (img == 0))
    for i in range(math.ceil(max(h, w) / 1)):
        if fy.size == 0:
            break
        conv = np.zeros(fy.size, np.float32)
        for dy, dx in offsets:
            conv += kernel[dy, dx] * P[fy + dy, fx + dx]
        with np.errstate(divide="ignore"):
            cdt = np.nan_to_num(neg_h * np.log(conv), nan=0.0, posinf=0.0)
        new = cdt > 0
        if not new.any():
            break
        fy, fx, cdt = fy[new], fx[new], cdt[new]
        out[fy, fx] += np.float32(i * 3 // 2) + cdt
        P[fy + 1, fx + 1] = 1.0
        P[0, :], P[-1, :] = P[1, :], P[-2, :]  # keep the replicated border in sync
        P[:, 0], P[:, -1] = P[:, 1], P[:, -2]
        fy, fx = zero_neighbours(fy, fx)
    return out


def deepest_point(mask: np.ndarray, *, method: Literal["edt", "kornia"] = "edt") -> tuple[int, int]:
    """The interior point of ``mask`` farthest from its boundary (COCO-SAM's click).

    The mask gets a 1-pixel zero border (so the image edge is a boundary), a distance transform
    is taken and the first maximum in row-major order wins.

    Args:
        mask: ``(H, W)`` bool mask at the test resolution.
        method: ``"edt"`` exact Euclidean distance; ``"kornia"`` the approximate transform the
            official code calls (:func:`kornia_distance_transform` on the inverted padded mask).

    Returns:
        ``(x, y)`` pixel coordinates; ``(0, 0)`` for an empty mask (argmax of all zeros).
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}.")
    if not mask.any():
        return 0, 0
    if method == "edt":
        dt = _edt_padded_float32(mask)
    elif method == "kornia":
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        # Outside the mask everything is a source, so the bounding box plus a ring is exact.
        inv = ~np.pad(mask[y0:y1, x0:x1], 1)
        dt = np.zeros(mask.shape, np.float32)
        dt[y0:y1, x0:x1] = kornia_distance_transform(inv)[1:-1, 1:-1]
    else:
        raise ValueError(f"method must be 'edt' or 'kornia', got {method!r}.")
    idx = int(np.argmax(dt))
    return idx % mask.shape[1], idx // mask.shape[1]


def coco_sam_click(mask: np.ndarray) -> tuple[int, int]:
    """The official COCO-SAM click ``(x, y)``: :func:`deepest_point` with kornia's transform."""
    return deepest_point(mask, method="kornia")


def point_to_box(x: float, y: float, half: float = 3.0) -> np.ndarray:
    """COCO-SAM feeds a click as the small box ``(x - 3, y - 3, x + 3, y + 3)`` (xyxy)."""
    return np.array([x - half, y - half, x + half, y + half], dtype=np.float32)


@dataclass(frozen=True)
class Click:
    """One click: pixel column ``x``, row ``y`` and whether it marks the object (positive)."""

    x: int
    y: int
    is_positive: bool


def next_click(gt: np.ndarray, pred: np.ndarray, *, not_clicked: np.ndarray | None = None,
               ignore: np.ndarray | None = None) -> Click:
    """The RITM clicker's next click for ``pred`` against ``gt``.

    Args:
        gt: ``(H, W)`` bool object mask.
        pred: ``(H, W)`` bool current prediction.
        not_clicked: ``(H, W)`` bool, False at pixels already clicked (their distance is zeroed).
        ignore: ``(H, W)`` bool pixels excluded from both error regions.

    Returns:
        A positive click in the false-negative region if its deepest point is strictly deeper
        than the false-positive region's, else a negative click in the false-positive region;
        with no error at all, a negative click at ``(0, 0)``, as the reference does.
    """
    valid = np.ones(gt.shape, bool) if ignore is None else ~ignore
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    fn_dt = _edt_padded_float32(fn)
    fp_dt = _edt_padded_float32(fp)
    if not_clicked is not None:
        fn_dt = fn_dt * not_clicked
        fp_dt = fp_dt * not_clicked
    fn_max, fp_max = fn_dt.max(), fp_dt.max()
    positive = bool(fn_max > fp_max)
    dt, best = (fn_dt, fn_max) if positive else (fp_dt, fp_max)
    idx = int(np.argmax(dt == best))
    return Click(x=idx % gt.shape[1], y=idx // gt.shape[1], is_positive=positive)


def _split_gt(gt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(object, ignore)`` bool masks from a GT holding 1 = object, 0 = background, -1 = ignore."""
    g = np.asarray(gt_mask)
    if g.ndim != 2:
        raise ValueError(f"gt_mask must be (H, W), got shape {g.shape}.")
    if g.dtype == bool:
        return g, np.zeros(g.shape, bool)
    return g == 1, g == -1


def ritm_iou(gt_mask: np.ndarray, pred: np.ndarray) -> float:
    """RITM's ``get_iou``: IoU over non-ignored pixels (GT -1 = ignore); NaN for an empty union."""
    obj, ign = _split_gt(gt_mask)
    keep = ~ign
    inter = np.logical_and(np.logical_and(pred, obj), keep).sum()
    union = np.logical_and(np.logical_or(pred, obj), keep).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.true_divide(inter, union))


# --------------------------------------------------------------------------------------------
# NoC protocol
# --------------------------------------------------------------------------------------------


@dataclass
class ClickTrace:
    """The clicks and IoUs of one sample.

    Attributes:
        clicks: Every click made (the protocol's and any extra ones for mIoU@k).
        ious: IoU after each click up to the protocol's stop (the list NoC is computed from).
        ious_all: IoU after every click made; ``ious`` is a prefix of it.
    """

    clicks: list[Click] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    ious_all: list[float] = field(default_factory=list)


def run_clicks(gt_mask: np.ndarray, predict: PredictFn, *, max_clicks: int = 20,
               target_iou: float = 0.9, min_clicks: int = 1,
               extra_until: int = 0) -> ClickTrace:
    """Run the RITM click loop on one sample.

    Args:
        gt_mask: ``(H, W)``: bool, or int with 1 = object, 0 = background, -1 = ignore.
        predict: Called after each click with all clicks so far; returns the ``(H, W)`` bool
            mask (RITM thresholds probabilities at ``> 0.49``; do that inside ``predict``).
        max_clicks: At most this many clicks (20).
        target_iou: Stop once IoU >= this after at least ``min_clicks`` clicks.
        min_clicks: See ``target_iou``.
        extra_until: Keep clicking up to this many clicks after the stop (bounded by
            ``max_clicks``) so mIoU@k is available; the extra IoUs go to ``ious_all`` only. The
            sequence equals what the reference's ``target_iou = 1.01`` run would make.

    Raises:
        ValueError: ``predict`` returned a mask of the wrong shape or type.
    """
    obj, ign = _split_gt(gt_mask)
    h, w = obj.shape
    pred = np.zeros((h, w), bool)
    not_clicked = np.ones((h, w), bool)
    trace = ClickTrace()
    stopped = False
    for k in range(max_clicks):
        if stopped and k >= extra_until:
            break
        c = next_click(obj, pred, not_clicked=not_clicked, ignore=ign)
        not_clicked[c.y, c.x] = False
        trace.clicks.append(c)
        pts = np.array([[cl.x, cl.y] for cl in trace.clicks], dtype=np.int64)  # (n, 2) xy
        lbl = np.array([int(cl.is_positive) for cl in trace.clicks], dtype=np.int64)  # (n,)
        out = np.asarray(predict(pts, lbl))
        if out.shape != (h, w):
            raise ValueError(f"predict returned shape {out.shape}; expected the GT size {(h, w)}. "
                             "Return a (H, W) bool mask at the original resolution.")
        if out.dtype != bool:
            if not np.isin(out, (0, 1)).all():
                raise ValueError("predict must return a bool mask (threshold probabilities, "
                                 "e.g. prob > 0.49 as RITM does, inside predict).")
            out = out.astype(bool)
        pred = out
        iou = ritm_iou(gt_mask, pred)
        trace.ious_all.append(iou)
        if not stopped:
            trace.ious.append(iou)
            if iou >= target_iou and k + 1 >= min_clicks:
                stopped = True
    return trace


def noc_thresholds(target_iou: float = 0.9) -> np.ndarray:
    """The reference's NoC thresholds ``np.arange(0.8, min(0.95, target) + 0.001, 0.05)``."""
    return np.arange(0.8, min(0.95, target_iou) + 0.001, 0.05)


@dataclass(frozen=True)
class NoCResult:
    """NoC protocol summary.

    Attributes:
        noc: ``{0.8, 0.85, 0.9} -> mean number of clicks`` (keys rounded; the comparisons use the
            exact ``arange`` values, e.g. 0.9000000000000001).
        noc_std: Standard deviation of the per-sample NoC (SimpleClick reports it).
        over_max: Samples whose NoC equals ``max_clicks`` (">=20@85").
        miou_at: ``k -> mean IoU after k clicks`` for the requested k (NaN-free only if every
            sample has k clicks).
        num_samples: Number of samples.
    """

    noc: dict[float, float]
    noc_std: dict[float, float]
    over_max: dict[float, int]
    miou_at: dict[int, float]
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("noc", "noc_std", "over_max"):
            d[key] = {f"{k:.2f}": v for k, v in d[key].items()}
        d["miou_at"] = {str(k): v for k, v in d["miou_at"].items()}
        return d


def summarize_noc(traces: Sequence[ClickTrace], *, max_clicks: int = 20,
                  target_iou: float = 0.9, miou_clicks: Iterable[int] = (1, 3, 5)) -> NoCResult:
    """NoC@t, the over-max counts and mIoU@k from per-sample traces (RITM's ``compute_noc_metric``).

    mIoU@k uses ``ious_all`` and is reported only for ``k`` every sample reached (the reference
    takes k up to the shortest list).
    """
    thrs = noc_thresholds(target_iou)
    noc, std, over = {}, {}, {}
    for t in thrs:
        per = np.array([(int(np.argmax(np.asarray(tr.ious) >= t)) + 1)
                        if np.any(np.asarray(tr.ious) >= t) else max_clicks for tr in traces],
                       dtype=int)
        key = round(float(t), 2)
        noc[key] = float(per.mean()) if per.size else math.nan
        std[key] = float(per.std()) if per.size else math.nan
        over[key] = int((per == max_clicks).sum())
    shortest = min((len(tr.ious_all) for tr in traces), default=0)
    miou = {k: float(np.mean([tr.ious_all[k - 1] for tr in traces]))
            for k in miou_clicks if 1 <= k <= shortest}
    return NoCResult(noc=noc, noc_std=std, over_max=over, miou_at=miou, num_samples=len(traces))


class NoCEvaluator:
    """Run the RITM/SimpleClick NoC protocol sample by sample.

    Example:
        >>> ev = NoCEvaluator()
        >>> for image, gt in dataset:
        ...     ev.add(gt, lambda pts, lbl: model_predict(image, pts, lbl))
        >>> res = ev.compute(); res.noc[0.85], res.noc[0.9], res.miou_at[1]
    """

    def __init__(self, *, max_clicks: int = 20, target_iou: float = 0.9, min_clicks: int = 1,
                 miou_clicks: Iterable[int] = (1, 3, 5)) -> None:
        self.max_clicks = max_clicks
        self.target_iou = target_iou
        self.min_clicks = min_clicks
        self.miou_clicks = tuple(miou_clicks)
        self.traces: list[ClickTrace] = []

    def add(self, gt_mask: np.ndarray, predict: PredictFn) -> ClickTrace:
        """Evaluate one object (see :func:`run_clicks`); returns its trace."""
        tr = run_clicks(gt_mask, predict, max_clicks=self.max_clicks, target_iou=self.target_iou,
                        min_clicks=self.min_clicks,
                        extra_until=max(self.miou_clicks, default=0))
        self.traces.append(tr)
        return tr

    def compute(self) -> NoCResult:
        return summarize_noc(self.traces, max_clicks=self.max_clicks,
                             target_iou=self.target_iou, miou_clicks=self.miou_clicks)


# --------------------------------------------------------------------------------------------
# Box prompts
# --------------------------------------------------------------------------------------------


def tight_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of a mask as float xyxy in pixel-edge coordinates ``(x0, y0, x1 + 1, y1 + 1)``
    (the COCO ``[x, y, w, h]`` box converted to corners).

    Raises:
        ValueError: empty mask.
    """
    ys, xs = np.nonzero(np.asarray(mask))
    if ys.size == 0:
        raise ValueError("cannot build a box prompt from an empty mask; skip empty objects.")
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


@dataclass(frozen=True)
class MeanIoUResult:
    """Mean IoU over prompts (0-1) with the per-prompt values."""

    miou: float
    ious: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"miou": self.miou, "num_prompts": len(self.ious)}


def box_prompt_miou(gt_masks: Iterable[np.ndarray], predict_box: BoxPredictFn | Sequence[
        BoxPredictFn]) -> MeanIoUResult:
    """Box-prompt mIoU: each GT object is prompted with its tight box, IoU averaged over objects.

    Args:
        gt_masks: ``(H, W)`` masks (bool, or 1 / 0 / -1 = ignore).
        predict_box: One callable for all, or one per mask; gets the ``(4,)`` xyxy box.
    """
    ious = []
    masks = list(gt_masks)
    fns = list(predict_box) if isinstance(predict_box, Sequence) else [predict_box] * len(masks)
    if len(fns) != len(masks):
        raise ValueError(f"{len(fns)} predictors for {len(masks)} masks; pass one per mask.")
    for g, fn in zip(masks, fns):
        obj, _ = _split_gt(g)
        pred = np.asarray(fn(tight_box(obj)))
        if pred.shape != obj.shape:
            raise ValueError(f"predict_box returned shape {pred.shape}; expected {obj.shape}.")
        ious.append(ritm_iou(g, pred.astype(bool)))
    return MeanIoUResult(float(np.mean(ious)) if ious else math.nan, tuple(ious))


# --------------------------------------------------------------------------------------------
# COCO-SAM
# --------------------------------------------------------------------------------------------


def coco_sam_prompt_segments(segments_info: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Segments that get a COCO-SAM prompt: all (things, stuff, crowd) except those with
    ``area <= 0`` or a bbox narrower or shorter than 1 pixel (mmdet's ``parse_data_info``)."""
    out = []
    for s in segments_info:
        _, _, w, h = s["bbox"]
        if s["area"] <= 0 or w < 1 or h < 1:
            continue
        out.append(s)
    return out


def coco_sam_test_size(height: int, width: int, scale: tuple[int, int] = (1333, 800)
                       ) -> tuple[int, int]:
    """Test size ``(h, w)`` of mmcv's keep-ratio rescale to fit ``scale`` (long, short)."""
    long_edge, short_edge = max(scale), min(scale)
    f = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * float(f) + 0.5), int(width * float(f) + 0.5)


def resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV ``INTER_NEAREST`` resize (what mmcv uses for masks): ``src = floor(dst * (1 / (dst_n /
    src_n)))`` in double, clamped to the last row / column."""
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    H, W = size
    ify = 1.0 / (H / h)
    ifx = 1.0 / (W / w)
    sy = np.minimum(np.floor(np.arange(H) * ify).astype(np.int64), h - 1)
    sx = np.minimum(np.floor(np.arange(W) * ifx).astype(np.int64), w - 1)
    return mask[sy][:, sx]


def _linear_indices(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of torch's ``align_corners=False`` linear resize (float32, with
    the fused multiply-add torch's kernel compiles to)."""
    if n_in == n_out:
        i = np.arange(n_out)
        return i, i, np.zeros(n_out, np.float32)
    scale = np.float64(np.float32(n_in) / np.float32(n_out))
    src = (scale * (np.arange(n_out) + 0.5) - 0.5).astype(np.float32)  # one rounding, as an FMA
    src = np.maximum(src, np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, lam


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)`` of one ``(h, w)`` map, float32."""
    x = np.asarray(x, dtype=np.float32)
    y0, y1, ly = _linear_indices(x.shape[0], size[0])
    x0, x1, lx = _linear_indices(x.shape[1], size[1])
    one = np.float32(1)
    top = (one - lx)[None] * x[y0][:, x0] + lx[None] * x[y0][:, x1]  # (H, W)
    bot = (one - lx)[None] * x[y1][:, x0] + lx[None] * x[y1][:, x1]  # (H, W)
    return (one - ly)[:, None] * top + ly[:, None] * bot


def coco_sam_iou_gt(resized_gt: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """The GT COCO-SAM scores against: the resized mask bilinearly upsampled, any value > 0."""
    return resize_bilinear(np.asarray(resized_gt, dtype=np.float32), original_size) > 0


@dataclass(frozen=True)
class CocoSamResult:
    """COCO-SAM numbers: ``miou`` pooled over prompts, degenerate single-click ``noc`` per
    threshold (1 if the IoU reaches it, else 20) and the prompt count."""

    miou: float
    noc: dict[float, float]
    num_prompts: int

    def to_dict(self) -> dict[str, Any]:
        return {"miou": self.miou, "noc": {f"{k:.2f}": v for k, v in self.noc.items()},
                "num_prompts": self.num_prompts}


class CocoSamEvaluator:
    """Pool per-prompt IoUs over the dataset (``miou@iter1``) as RAP-SAM's InteractiveEvaluator.

    Example:
        >>> ev = CocoSamEvaluator()
        >>> ev.add(pred_masks, gt_masks)   # (N, H, W) bool each, one row per prompt
        >>> ev.compute().miou
    """

    NOC_THRESHOLDS = (0.5, 0.8, 0.85, 0.9)

    def __init__(self) -> None:
        self.ious: list[float] = []

    def add(self, pred_masks: np.ndarray, gt_masks: np.ndarray) -> np.ndarray:
        """Add the prompts of one image; returns their IoUs (NaN if both masks are empty).

        Args:
            pred_masks: ``(N, H, W)`` bool predictions at the original size.
            gt_masks: ``(N, H, W)`` bool GT (see :func:`coco_sam_iou_gt`).
        """
        p, g = np.asarray(pred_masks).astype(bool), np.asarray(gt_masks).astype(bool)
        if p.shape != g.shape or p.ndim != 3:
            raise ValueError(f"pred_masks {p.shape} and gt_masks {g.shape} must both be "
                             "(N, H, W), one row per prompt.")
        inter = (p & g).sum(axis=(1, 2))
        union = (p | g).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            ious = inter / union
        self.ious.extend(float(v) for v in ious)
        return ious

    def compute(self) -> CocoSamResult:
        ious = np.asarray(self.ious, dtype=np.float64)
        if ious.size == 0:
            return CocoSamResult(math.nan, {t: math.nan for t in self.NOC_THRESHOLDS}, 0)
        noc = {t: float(np.mean(np.where(ious >= t, 1.0, 20.0))) for t in self.NOC_THRESHOLDS}
        return CocoSamResult(float(ious.sum() / ious.size), noc, int(ious.size))
