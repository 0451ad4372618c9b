"""YouTube-VIS video instance AP (AP, AP50, AP75, AR1, AR10, ...) equal to ``YTVOSeval``.

Reference: Yang et al., "Video Instance Segmentation", ICCV 2019; code youtubevos/cocoapi
(``PythonAPI/pycocotools/ytvoseval.py``, ``ytvos.py``), which mmdet 3.3.0's ``ytviseval.py`` ports
unchanged. It is COCOeval with "image" replaced by "video" (metrics.md section 3):

* a GT annotation is a track (one segmentation or ``None`` per frame); a result is
  ``{video_id, category_id, score, segmentations}``;
* spatio-temporal IoU = (sum over frames of intersections) / (sum over frames of unions); a frame
  where only one side is present adds that side's area to the union; frame lists are zipped, so
  the shorter list decides; IoU is 0 when the union is 0. Crowd GTs use the same IoU (no
  crowd formula), but can absorb any number of detections and are ignored;
* the area of a track is the mean of its truthy (non-null, non-zero) per-frame areas (GT: the JSON
  ``areas``; results: RLE areas), with area ranges ``[0, 1e10]``, ``[0, 128^2]``,
  ``[128^2, 256^2]``, ``[256^2, 1e10]``;
* matching per (video, category), COCO accumulation and the 12 summary numbers are unchanged.

The matching/accumulation engine (:func:`coco_style_evaluate`) is a numpy transcription of the
COCOeval rules (stable sorts, ``IoU >= t``, precision envelope, -1 for no GT, GT-id-0 quirk).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from .instance_ap import APResult, encode_mask, per_class_ap
from .io import (
    EvaluationInputError,
    JsonSource,
    load_json,
    read_ytvis_results,
    require_keys,
    source_name,
)

COCO_AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
"""COCO image area ranges (all, small, medium, large)."""

YTVIS_AREA_RANGES: tuple[tuple[float, float], ...] = (
    (0.0, 1e5**2), (0.0, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e5**2))
"""YouTube-VIS track area ranges (all, small, medium, large): breaks at 128^2 and 256^2."""


@dataclass(frozen=True)
class EvalParams:
    """COCOeval parameters (defaults are the segm/bbox defaults)."""

    iou_thrs: np.ndarray = field(default_factory=lambda: np.linspace(0.5, 0.95, 10))
    rec_thrs: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, 101))
    max_dets: tuple[int, int, int] = (1, 10, 100)
    area_ranges: tuple[tuple[float, float], ...] = YTVIS_AREA_RANGES


@dataclass
class GtItem:
    """One GT object: id, crowd flag and the area used for the area ranges."""

    id: Any
    iscrowd: int
    area: float


@dataclass
class DtItem:
    """One detection: id (1..N in file order), score and its area."""

    id: int
    score: float
    area: float


# --------------------------------------------------------------------------------------------
# COCOeval engine
# --------------------------------------------------------------------------------------------


def _evaluate_unit(gts: list[GtItem], dts: list[DtItem], ious: np.ndarray,
                   area_rng: tuple[float, float], max_det: int,
                   iou_thrs: np.ndarray) -> dict[str, Any] | None:
    """Match one (unit, category, area range); the COCOeval ``evaluateImg`` rules.

    ``ious`` is ``(D', G)`` with rows in score order (stable) capped at ``max_dets[-1]`` and
    columns in the original GT order.
    """
    if not gts and not dts:
        return None
    g_ignore = np.array([1 if (g.iscrowd or g.area < area_rng[0] or g.area > area_rng[1]) else 0
                         for g in gts], dtype=np.int64)
    gtind = np.argsort(g_ignore, kind="mergesort")
    gts = [gts[i] for i in gtind]
    g_ignore = g_ignore[gtind]
    dtind = np.argsort([-d.score for d in dts], kind="mergesort")
    dts = [dts[i] for i in dtind[:max_det]]
    iscrowd = [int(g.iscrowd) for g in gts]
    if len(ious) > 0:
        ious = ious[:, gtind]
    T, G, D = len(iou_thrs), len(gts), len(dts)
    gtm = np.zeros((T, G))
    dtm = np.zeros((T, D))
    dt_ig = np.zeros((T, D))
    if len(ious) != 0:
        for tind, t in enumerate(iou_thrs):
            for dind in range(D):
                best = min(t, 1 - 1e-10)
                m = -1
                for gind in range(G):
                    if gtm[tind, gind] > 0 and not iscrowd[gind]:
                        continue
                    if m > -1 and g_ignore[m] == 0 and g_ignore[gind] == 1:
                        break
                    if ious[dind, gind] < best:
                        continue
                    best = ious[dind, gind]
                    m = gind
                if m == -1:
                    continue
                dt_ig[tind, dind] = g_ignore[m]
                dtm[tind, dind] = gts[m].id
                gtm[tind, m] = dts[dind].id
    out_of_rng = np.array([d.area < area_rng[0] or d.area > area_rng[1] for d in dts],
                          dtype=bool).reshape((1, D))
    dt_ig = np.logical_or(dt_ig, np.logical_and(dtm == 0, np.repeat(out_of_rng, T, 0)))
    return {"dtMatches": dtm, "dtScores": np.array([d.score for d in dts], dtype=np.float64),
            "gtIgnore": g_ignore, "dtIgnore": dt_ig}


def coco_style_evaluate(unit_ids: Sequence[Any], cat_ids: Sequence[Any],
                        gts: Mapping[tuple[Any, Any], list[GtItem]],
                        dts: Mapping[tuple[Any, Any], list[DtItem]],
                        ious: Mapping[tuple[Any, Any], np.ndarray],
                        params: EvalParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval ``evaluate`` + ``accumulate`` + ``summarize`` over precomputed IoU matrices.

    Args:
        unit_ids: Image or video ids (sorted unique, as COCOeval orders them).
        cat_ids: Category ids (sorted unique).
        gts, dts: ``(unit, category) -> items`` (file order).
        ious: ``(unit, category) -> (D', G)`` IoUs, detections sorted by score (stable) and capped
            at ``params.max_dets[-1]``, GT in file order.
        params: Thresholds, detection caps and area ranges.

    Returns:
        ``(precision (T, R, K, A, M), recall (T, K, A, M), stats (12,))``.
    """
    T, R = len(params.iou_thrs), len(params.rec_thrs)
    K, A, M = len(cat_ids), len(params.area_ranges), len(params.max_dets)
    max_det = params.max_dets[-1]
    records: list[list[list[dict[str, Any] | None]]] = []
    for cat in cat_ids:
        per_area = []
        for rng in params.area_ranges:
            per_area.append([
                _evaluate_unit(gts.get((u, cat), []), dts.get((u, cat), []),
                               ious.get((u, cat), np.zeros((0, 0))), rng, max_det,
                               params.iou_thrs) for u in unit_ids])
        records.append(per_area)

    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    for k in range(K):
        for a in range(A):
            E = [e for e in records[k][a] if e is not None]
            if not E:
                continue
            for m, mdet in enumerate(params.max_dets):
                scores = np.concatenate([e["dtScores"][0:mdet] for e in E])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e["dtMatches"][:, 0:mdet] for e in E], axis=1)[:, inds]
                dt_ig = np.concatenate([e["dtIgnore"][:, 0:mdet] for e in E], axis=1)[:, inds]
                g_ig = np.concatenate([e["gtIgnore"] for e in E])
                npig = np.count_nonzero(g_ig == 0)
                if npig == 0:
                    continue
                tps = np.logical_and(dtm, np.logical_not(dt_ig))
                fps = np.logical_and(np.logical_not(dtm), np.logical_not(dt_ig))
                tp_sum = np.cumsum(tps, axis=1).astype(np.float64)
                fp_sum = np.cumsum(fps, axis=1).astype(np.float64)
                for t in range(T):
                    tp, fp = tp_sum[t], fp_sum[t]
                    nd = len(tp)
                    rc = tp / npig
                    pr = tp / (fp + tp + np.spacing(1))
                    recall[t, k, a, m] = rc[-1] if nd else 0
                    q = np.zeros((R,))
                    if nd:
                        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
                        pos = np.searchsorted(rc, params.rec_thrs, side="left")
                        ok = pos < nd
                        q[ok] = pr[pos[ok]]
                    precision[t, :, k, a, m] = q
    return precision, recall, summarize(precision, recall, params)


def summarize(precision: np.ndarray, recall: np.ndarray, params: EvalParams) -> np.ndarray:
    """The 12 COCO summary numbers (COCOeval ``_summarizeDets``)."""

    def one(ap: bool, iou_thr: float | None = None, area: int = 0, mdet: int = 100) -> float:
        mind = [i for i, m in enumerate(params.max_dets) if m == mdet]
        if ap:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == params.iou_thrs)[0]]
            s = s[:, :, :, [area], :][:, :, :, :, mind]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == params.iou_thrs)[0]]
            s = s[:, :, [area], :][:, :, :, mind]
        valid = s[s > -1]
        return -1.0 if valid.size == 0 else float(np.mean(valid))

    md = params.max_dets
    return np.array([one(True, mdet=md[2]), one(True, 0.5, mdet=md[2]),
                     one(True, 0.75, mdet=md[2]), one(True, area=1, mdet=md[2]),
                     one(True, area=2, mdet=md[2]), one(True, area=3, mdet=md[2]),
                     one(False, mdet=md[0]), one(False, mdet=md[1]), one(False, mdet=md[2]),
                     one(False, area=1, mdet=md[2]), one(False, area=2, mdet=md[2]),
                     one(False, area=3, mdet=md[2])])


# --------------------------------------------------------------------------------------------
# YouTube-VIS data
# --------------------------------------------------------------------------------------------


def _mean_truthy_area(areas: Sequence[Any]) -> float:
    vals = [a for a in areas if a]
    return float(np.array(vals).mean()) if vals else 0.0


def _gt_frame_to_rle(seg: Any, h: int, w: int, *, source: str, record: str) -> Any:
    """A GT frame as compressed RLE (polygons / uncompressed RLE converted); falsy stays falsy."""
    if not seg:
        return seg
    if isinstance(seg, Mapping) and list(seg.get("size", [])) != [h, w]:
        raise EvaluationInputError(f"RLE size {seg.get('size')!r} differs from the video size "
                                   f"[{h}, {w}].", source=source, record=record,
                                   fix="encode GT masks at the video resolution.")
    try:
        if isinstance(seg, list):
            return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        if isinstance(seg.get("counts"), list):
            return mask_utils.frPyObjects(seg, h, w)
        if isinstance(seg.get("counts"), str):
            return {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        return seg
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise EvaluationInputError(f"segmentation cannot be converted to RLE ({e}).",
                                   source=source, record=record,
                                   fix="use polygons, uncompressed or compressed RLE.") from None


@dataclass
class _Track:
    id: Any
    video_id: Any
    category_id: Any
    iscrowd: int
    area: float
    frames: list[Any]  # RLE (bytes counts) or falsy per frame
    score: float = 0.0


def load_ytvis_gt(gt: JsonSource) -> tuple[dict[Any, dict[str, Any]], list[Any], list[_Track]]:
    """Read and check a YouTube-VIS GT JSON.

    Returns:
        ``(videos, category_ids, tracks)``: ``video_id -> {height, width, length}``, category
        ids in file order, and the GT tracks with frames as compressed RLE.

    Raises:
        EvaluationInputError: missing keys or an annotation pointing to an unknown video.
    """
    src = source_name(gt, "<video ground truth>")
    data = load_json(gt, what="YouTube-VIS ground truth")
    fix = ("a YouTube-VIS JSON has videos [{id, height, width, length}], annotations "
           "[{id, video_id, category_id, segmentations, areas, iscrowd}] and categories [{id}].")
    require_keys(data, ("videos", "annotations", "categories"), source=src, where="top level",
                 fix=fix)
    videos: dict[Any, dict[str, Any]] = {}
    for i, v in enumerate(data["videos"]):
        require_keys(v, ("id", "height", "width"), source=src, where=f"videos[{i}]", fix=fix)
        length = v.get("length", len(v["file_names"]) if "file_names" in v else None)
        videos[v["id"]] = {"height": int(v["height"]), "width": int(v["width"]),
                           "length": length}
    cat_ids = []
    for i, c in enumerate(data["categories"]):
        require_keys(c, ("id",), source=src, where=f"categories[{i}]", fix=fix)
        cat_ids.append(c["id"])
    tracks = []
    for i, a in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        require_keys(a, ("id", "video_id", "category_id", "segmentations", "areas", "iscrowd"),
                     source=src, where=where, fix=fix)
        v = videos.get(a["video_id"])
        if v is None:
            raise EvaluationInputError(f"video_id {a['video_id']!r} is not in 'videos'.",
                                       source=src, record=where, fix=fix)
        frames = [_gt_frame_to_rle(s, v["height"], v["width"], source=src,
                                   record=f"{where} frame {f}")
                  for f, s in enumerate(a["segmentations"])]
        tracks.append(_Track(a["id"], a["video_id"], a["category_id"], int(a["iscrowd"]),
                             _mean_truthy_area(a["areas"]), frames))
    return videos, cat_ids, tracks


def spatio_temporal_ious(dt_frames: Sequence[Sequence[Any]],
                         gt_frames: Sequence[Sequence[Any]]) -> np.ndarray:
    """``(D, G)`` spatio-temporal mask IoU of detection and GT tracks (the fork's ``iou_seq``).

    Args:
        dt_frames, gt_frames: Per track, per frame a compressed RLE or a falsy value (absent).

    Returns:
        ``I / U`` with ``I``, ``U`` summed over the zipped frames; 0 where ``U`` is 0.
    """
    D, G = len(dt_frames), len(gt_frames)
    inter = np.zeros((D, G), dtype=np.float64)
    union = np.zeros((D, G), dtype=np.float64)
    if D == 0 or G == 0:
        return np.zeros((D, G))
    d_len = np.array([len(s) for s in dt_frames])
    g_len = np.array([len(s) for s in gt_frames])
    for f in range(int(min(d_len.max(), g_len.max()))):
        d_on = np.array([f < d_len[i] and bool(dt_frames[i][f]) for i in range(D)])
        g_on = np.array([f < g_len[j] and bool(gt_frames[j][f]) for j in range(G)])
        in_range = (f < d_len)[:, None] & (f < g_len)[None, :]  # (D, G) zip truncation
        d_area = np.zeros(D)
        g_area = np.zeros(G)
        di, gj = np.flatnonzero(d_on), np.flatnonzero(g_on)
        if di.size:
            d_area[di] = mask_utils.area([dt_frames[i][f] for i in di])
        if gj.size:
            g_area[gj] = mask_utils.area([gt_frames[j][f] for j in gj])
        both = np.zeros((D, G))
        if di.size and gj.size:
            crowd_iou = np.asarray(mask_utils.iou([dt_frames[i][f] for i in di],
                                                  [gt_frames[j][f] for j in gj],
                                                  [1] * gj.size)).reshape(di.size, gj.size)
            both[np.ix_(di, gj)] = np.rint(crowd_iou * d_area[di][:, None])  # exact |d ∩ g|
        pair_both = d_on[:, None] & g_on[None, :] & in_range
        only_g = ~d_on[:, None] & g_on[None, :] & in_range
        only_d = d_on[:, None] & ~g_on[None, :] & in_range
        inter += np.where(pair_both, both, 0.0)
        union += np.where(pair_both, d_area[:, None] + g_area[None, :] - both, 0.0)
        union += np.where(only_g, np.broadcast_to(g_area[None, :], (D, G)), 0.0)
        union += np.where(only_d, np.broadcast_to(d_area[:, None], (D, G)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def tracks_to_ytvis_results(video_id: Any, masks: np.ndarray, scores: np.ndarray,
                            labels: np.ndarray) -> list[dict[str, Any]]:
    """Convert one video's tracks to YouTube-VIS results.

    Args:
        video_id: The dataset video id.
        masks: ``(N, T, H, W)`` bool, one mask per track and frame (original size).
        scores: ``(N,)`` track scores.
        labels: ``(N,)`` dataset category ids.

    Returns:
        ``N`` dicts ``{video_id, category_id, score, segmentations}``; every frame is encoded
        (an empty frame and ``None`` score identically).
    """
    masks = np.asarray(masks)
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if masks.ndim != 4:
        raise ValueError(f"masks must be (N, T, H, W), got shape {masks.shape}.")
    n = masks.shape[0]
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be ({n},).")
    return [{"video_id": video_id, "category_id": labels[i].item(), "score": float(scores[i]),
             "segmentations": [encode_mask(masks[i, t]) for t in range(masks.shape[1])]}
            for i in range(n)]


def evaluate_vis_ap(gt: JsonSource, results: JsonSource, *,
                    area_ranges: tuple[tuple[float, float], ...] = YTVIS_AREA_RANGES
                    ) -> APResult:
    """YouTube-VIS AP of ``results`` against ``gt`` (YTVOSeval rules).

    Args:
        gt: YouTube-VIS GT JSON (path or dict).
        results: Results JSON (path or list), e.g. from :func:`tracks_to_ytvis_results`.
        area_ranges: all/small/medium/large ranges (default: YouTube-VIS's).

    Returns:
        :class:`APResult` (0-1 scale; papers quote AP, AP50, AP75, AR1, AR10).

    Raises:
        EvaluationInputError: malformed GT or results (unknown video or category, frame count or
            mask size that differs from the video, bad RLE, bad score).
    """
    videos, cat_ids, gt_tracks = load_ytvis_gt(gt)
    dets = read_ytvis_results(results, videos=videos, category_ids=cat_ids)
    params = EvalParams(area_ranges=tuple(area_ranges))
    cats = sorted(set(cat_ids))
    vids = sorted(set(videos))
    cat_set = set(cats)

    g_by: dict[tuple[Any, Any], list[_Track]] = defaultdict(list)
    for t in gt_tracks:
        if t.category_id in cat_set:
            g_by[t.video_id, t.category_id].append(t)
    d_by: dict[tuple[Any, Any], list[_Track]] = defaultdict(list)
    for i, d in enumerate(dets):
        frames = [None if s is None else {"size": s["size"], "counts": s["counts"].encode("ascii")}
                  for s in d["segmentations"]]
        areas = [None if s is None else int(mask_utils.area(s)) for s in frames]
        d_by[d["video_id"], d["category_id"]].append(
            _Track(i + 1, d["video_id"], d["category_id"], 0, _mean_truthy_area(areas), frames,
                   d["score"]))

    gts: dict[tuple[Any, Any], list[GtItem]] = {}
    dts: dict[tuple[Any, Any], list[DtItem]] = {}
    ious: dict[tuple[Any, Any], np.ndarray] = {}
    for key in set(g_by) | set(d_by):
        g, d = g_by.get(key, []), d_by.get(key, [])
        gts[key] = [GtItem(t.id, t.iscrowd, t.area) for t in g]
        dts[key] = [DtItem(t.id, t.score, t.area) for t in d]
        order = np.argsort([-t.score for t in d], kind="mergesort")[:params.max_dets[-1]]
        ious[key] = spatio_temporal_ious([d[i].frames for i in order], [t.frames for t in g])
    precision, _, stats = coco_style_evaluate(vids, cats, gts, dts, ious, params)
    return APResult.from_stats(stats, per_class_ap(precision, cats))


class VISAPEvaluator:
    """Collect video tracks, then run YouTube-VIS AP.

    Example:
        >>> ev = VISAPEvaluator("valid.json")
        >>> ev.add(video_id, masks, scores, labels)   # masks (N, T, H, W) bool
        >>> res = ev.evaluate(); res.ap, res.ar10
    """

    def __init__(self, gt: JsonSource) -> None:
        self.gt = load_json(gt, what="YouTube-VIS ground truth")
        self.videos, self.cat_ids, _ = load_ytvis_gt(self.gt)
        self.results: list[dict[str, Any]] = []

    def add(self, video_id: Any, masks: np.ndarray, scores: np.ndarray,
            labels: np.ndarray) -> None:
        """Add one video's tracks (see :func:`tracks_to_ytvis_results`).

        Raises:
            EvaluationInputError: unknown video, wrong frame count or frame size.
        """
        v = self.videos.get(video_id)
        where = f"video_id={video_id!r}"
        if v is None:
            raise EvaluationInputError(f"video_id {video_id!r} is not in the ground truth.",
                                       record=where, fix="use the annotation file's video ids.")
        masks = np.asarray(masks)
        if masks.ndim == 4 and masks.shape[2:] != (v["height"], v["width"]):
            raise EvaluationInputError(
                f"masks have frame size {masks.shape[2:]} but the video is "
                f"{(v['height'], v['width'])}.", record=where,
                fix="resize masks to the original video size first.")
        if masks.ndim == 4 and v["length"] is not None and masks.shape[1] != v["length"]:
            raise EvaluationInputError(
                f"masks have {masks.shape[1]} frames but the video has {v['length']}.",
                record=where, fix="predict one mask per frame.")
        self.results.extend(tracks_to_ytvis_results(video_id, masks, scores, labels))

    def evaluate(self, *, area_ranges: tuple[tuple[float, float], ...] = YTVIS_AREA_RANGES
                 ) -> APResult:
        """YouTube-VIS AP of everything added so far."""
        return evaluate_vis_ap(self.gt, self.results, area_ranges=area_ranges)

