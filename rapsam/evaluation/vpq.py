"""Video panoptic quality (VPQ) over sliding windows, as VPSNet / VIPSeg score it.

References: Kim et al., "Video Panoptic Segmentation", CVPR 2020 (code mcahny/vps
``tools/eval_vpq.py``, Cityscapes-VPS) and Miao et al., "Large-scale Video Panoptic Segmentation in
the Wild", CVPR 2022 (code VIPSeg-Dataset ``ClipPanoFCN/eval_vpq_vspw.py``). Rules
(metrics.md section 4):

* a segment id is one tube across the frames of a video (GT and prediction alike);
* for each window length ``n`` and each start ``s = 0 .. T - n`` (stride 1), the frames
  ``[s, s + n)`` are matched as tubes exactly like image PQ (section 1.3): tube category and crowd
  flag from the first frame of the window holding the id; tube area = summed per-frame areas (GT
  from the JSON, prediction from pixel counts); one joint histogram over the stacked window;
* TP/FP/FN/IoU pool over all windows of all videos per window length; PQ per category and the
  All/Things/Stuff means as in image PQ; ``VPQ_k`` is PQ_All for ``n`` frames, labelled
  ``k = 5 (n - 1)``; the final VPQ is the mean over window lengths (Cityscapes-VPS: 1, 2, 3, 4;
  VIPSeg: 1, 2, 4, 6, 8).

Within one frame a duplicated id sums the JSON areas and keeps the first entry's fields (unlike
image PQ, where the last entry wins). ``gt_area_aliasing=True`` reproduces a quirk of mcahny/vps
``eval_vpq.py``: it accumulates tube areas into the first frame's shared GT dicts, so a GT area
grows across overlapping windows when an id first appears after a window's first frame (the
VIPSeg script deep-copies and does not have it).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    VOID_ID,
    EvaluationInputError,
    JsonSource,
    MissingPredictionError,
    SegmentMismatchError,
    load_json,
    read_panoptic_png,
    require_keys,
    source_name,
)
from .panoptic_quality import (
    EmptyGroup,
    PQResult,
    PQStats,
    _category_map,
    _check_id_map,
    _check_segments,
    joint_histogram,
    match_segments,
    pq_from_stats,
)

CITYSCAPES_VPS_WINDOWS = (1, 2, 3, 4)
VIPSEG_WINDOWS = (1, 2, 4, 6, 8)


class InvalidIoUError(EvaluationInputError, AssertionError):
    """A tube IoU above 1 (the reference asserts ``iou <= 1``): a GT JSON area is too small."""

    __str__ = Exception.__str__


@dataclass(frozen=True)
class PanopticFrame:
    """One frame: GT and predicted ``(H, W)`` id maps (0 = void) and their ``segments_info``.

    GT segments need ``id``, ``category_id``, ``iscrowd``, ``area``; predicted segments ``id`` and
    ``category_id`` (their area is recounted from the map).
    """

    gt_ids: np.ndarray
    gt_segments: Sequence[Mapping[str, Any]]
    pred_ids: np.ndarray
    pred_segments: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class VPQResult:
    """VPQ per window length and their mean (0-1 scale).

    Attributes:
        per_window: ``k -> PQResult`` with ``k = 5 (n - 1)`` for ``n`` frames per window.
        window_lengths: The ``n`` used, in order.
        vpq, vpq_things, vpq_stuff: Means over window lengths of PQ All / Things / Stuff.
    """

    per_window: dict[int, PQResult]
    window_lengths: tuple[int, ...]
    vpq: float
    vpq_things: float
    vpq_stuff: float

    def to_dict(self) -> dict[str, Any]:
        return {"vpq": self.vpq, "vpq_things": self.vpq_things, "vpq_stuff": self.vpq_stuff,
                "window_lengths": list(self.window_lengths),
                "per_window": {str(k): r.to_dict() for k, r in self.per_window.items()}}


@dataclass
class _Frame:
    gt_order: list[int]  # ids in first-appearance order
    gt_first: dict[int, Mapping[str, Any]]  # id -> first entry (category, iscrowd)
    gt_dups: dict[int, list[Any]]  # id -> JSON areas of all entries, in order
    pred_order: list[int]
    pred_first: dict[int, Mapping[str, Any]]
    pred_area: dict[int, Any]  # pixel counts (numpy int64)
    hist: dict[tuple[int, int], Any]


def _prepare_frame(frame: PanopticFrame, categories: Mapping[Any, Any], *, source: str,
                   record: str) -> _Frame:
    gt_ids = _check_id_map(frame.gt_ids, "gt_ids", source=source, record=record)
    pred_ids = _check_id_map(frame.pred_ids, "pred_ids", source=source, record=record)
    if gt_ids.shape != pred_ids.shape:
        raise EvaluationInputError(
            f"prediction size {pred_ids.shape} differs from ground truth {gt_ids.shape}.",
            source=source, record=record, fix="resize the prediction to the frame size.")
    _check_segments(frame.gt_segments, ("id", "category_id", "iscrowd", "area"), source=source,
                    record=f"{record} (ground truth)")
    _check_segments(frame.pred_segments, ("id", "category_id"), source=source, record=record)
    gt_first: dict[int, Mapping[str, Any]] = {}
    gt_dups: dict[int, list[Any]] = {}
    for el in frame.gt_segments:
        if el["id"] in gt_first:
            gt_dups[el["id"]].append(el["area"])
        else:
            gt_first[el["id"]] = el
            gt_dups[el["id"]] = [el["area"]]
    pred_first: dict[int, Mapping[str, Any]] = {}
    for el in frame.pred_segments:
        pred_first.setdefault(el["id"], el)
    remaining = set(pred_first)
    pred_area: dict[int, Any] = {}
    labels, counts = np.unique(pred_ids, return_counts=True)
    for label, cnt in zip(labels.tolist(), counts):
        if label not in pred_first:
            if label == VOID_ID:
                continue
            raise SegmentMismatchError(
                f"segment id {label} is present in the PNG but not in segments_info.",
                source=source, record=record,
                fix="list every non-zero PNG id in segments_info (0 is void).")
        pred_area[label] = cnt
        remaining.discard(label)
        if pred_first[label]["category_id"] not in categories:
            raise SegmentMismatchError(
                f"segment id {label} has unknown category_id "
                f"{pred_first[label]['category_id']!r}.", source=source, record=record,
                fix="use the category ids of the ground-truth JSON.")
    if remaining:
        raise SegmentMismatchError(
            f"segment ids {sorted(remaining)} are present in segments_info but not in the PNG.",
            source=source, record=record,
            fix="drop segments that lost all their pixels from segments_info.")
    return _Frame(list(gt_first), gt_first, gt_dups, list(pred_first), pred_first, pred_area,
                  joint_histogram(gt_ids, pred_ids))


def _video_window_stats(frames: list[_Frame], nframes: int, stats: PQStats, *,
                        gt_area_aliasing: bool, source: str, record: str) -> None:
    """Add the statistics of every ``nframes`` window of one video to ``stats``."""
    # Aliasing mode: the mutable area of each frame's first GT entry persists across windows.
    state = [{i: f.gt_dups[i][0] for i in f.gt_order} for f in frames]
    for s in range(len(frames) - nframes + 1):
        window = range(s, s + nframes)
        frame_area: dict[int, dict[int, Any]] = {}
        for f in window:
            fr = frames[f]
            if gt_area_aliasing:
                for i in fr.gt_order:  # duplicates are re-added every time the frame is read
                    for extra in fr.gt_dups[i][1:]:
                        state[f][i] += extra
                frame_area[f] = state[f]
            else:
                areas = {}
                for i in fr.gt_order:
                    a = fr.gt_dups[i][0]
                    for extra in fr.gt_dups[i][1:]:
                        a += extra
                    areas[i] = a
                frame_area[f] = areas
        gt_segms: dict[int, Mapping[str, Any]] = {}
        gt_areas: dict[int, Any] = {}
        owner: dict[int, int] = {}
        pred_segms: dict[int, Mapping[str, Any]] = {}
        pred_areas: dict[int, Any] = {}
        hist: dict[tuple[int, int], Any] = defaultdict(int)
        for f in window:
            fr = frames[f]
            for i in fr.gt_order:
                if i not in gt_segms:
                    gt_segms[i] = fr.gt_first[i]
                    owner[i] = f
                    if not gt_area_aliasing:
                        gt_areas[i] = frame_area[f][i]
                elif gt_area_aliasing:
                    state[owner[i]][i] += frame_area[f][i]
                else:
                    gt_areas[i] += frame_area[f][i]
            for i in fr.pred_order:
                if i not in pred_segms:
                    pred_segms[i] = fr.pred_first[i]
                    pred_areas[i] = fr.pred_area[i]
                else:
                    pred_areas[i] += fr.pred_area[i]
            for key, c in fr.hist.items():
                hist[key] += c
        if gt_area_aliasing:
            gt_areas = {i: state[owner[i]][i] for i in gt_segms}
        merged = {k: hist[k] for k in sorted(hist)}
        _check_ious(gt_segms, gt_areas, pred_segms, pred_areas, merged, source=source,
                    record=f"{record} window [{s}, {s + nframes})")
        match_segments(gt_segms, gt_areas, pred_segms, pred_areas, merged, stats)


def _check_ious(gt_segms, gt_areas, pred_segms, pred_areas, hist, *, source, record) -> None:
    """The reference asserts ``iou <= 1`` for every same-category, non-crowd candidate pair."""
    for (g, p), inter in hist.items():
        if g not in gt_segms or p not in pred_segms:
            continue
        gs = gt_segms[g]
        if gs["iscrowd"] == 1 or gs["category_id"] != pred_segms[p]["category_id"]:
            continue
        union = pred_areas[p] + gt_areas[g] - inter - hist.get((VOID_ID, p), 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.true_divide(inter, union)
        if not iou <= 1.0:
            raise InvalidIoUError(
                f"tube IoU of GT id {g} and predicted id {p} is {iou} > 1: the GT JSON area is "
                "smaller than the segment's pixel count.", source=source, record=record,
                fix="set each GT segment's 'area' to its pixel count.")


def vpq_compute(videos: Mapping[Any, Sequence[PanopticFrame]] | Sequence[Sequence[PanopticFrame]],
                categories: Iterable[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]], *,
                window_lengths: Sequence[int] = CITYSCAPES_VPS_WINDOWS,
                label_step: int = 5, gt_area_aliasing: bool = False,
                empty_group: EmptyGroup = "raise", source: str = "<in-memory>") -> VPQResult:
    """VPQ of in-memory videos.

    Args:
        videos: ``video_id -> frames`` (or a list of frame lists), frames in temporal order.
        categories: GT categories with ``id`` and ``isthing``, in GT order.
        window_lengths: Frames per window (Cityscapes-VPS ``(1, 2, 3, 4)``, VIPSeg
            ``(1, 2, 4, 6, 8)``).
        label_step: Result keys are ``label_step * (n - 1)`` (k = 0, 5, 10, 15).
        gt_area_aliasing: Reproduce mcahny/vps's shared-dict GT area quirk (see module doc).
        empty_group: See :func:`~rapsam.evaluation.panoptic_quality.pq_from_stats`.
        source: Name used in error messages.

    Raises:
        EvaluationInputError: malformed frames; :class:`SegmentMismatchError` where the
            reference raises ``KeyError``; :class:`InvalidIoUError` where it asserts.
    """
    cats = _category_map(categories)
    items = list(videos.items()) if isinstance(videos, Mapping) else list(enumerate(videos))
    prepared = []
    for vid, frames in items:
        prepared.append((vid, [_prepare_frame(fr, cats, source=source,
                                              record=f"video {vid!r} frame {t}")
                               for t, fr in enumerate(frames)]))
    per_window: dict[int, PQResult] = {}
    for n in window_lengths:
        if n < 1:
            raise ValueError(f"window lengths must be >= 1, got {n}.")
        stats = PQStats()
        for vid, frames in prepared:
            _video_window_stats(frames, n, stats, gt_area_aliasing=gt_area_aliasing,
                                source=source, record=f"video {vid!r}")
        per_window[label_step * (n - 1)] = pq_from_stats(stats, cats, empty_group=empty_group)

    def mean(vals: list[float]) -> float:
        return float(sum(vals) / len(vals)) if vals else math.nan

    res = list(per_window.values())
    return VPQResult(per_window=per_window, window_lengths=tuple(window_lengths),
                     vpq=mean([r.all.pq for r in res]), vpq_things=mean([r.things.pq for r in res]),
                     vpq_stuff=mean([r.stuff.pq for r in res]))


def vpq_compute_vipseg(gt_json: JsonSource, gt_folder: str | os.PathLike, pred_json: JsonSource,
                       pred_folder: str | os.PathLike, *,
                       window_lengths: Sequence[int] = VIPSEG_WINDOWS,
                       empty_group: EmptyGroup = "raise") -> VPQResult:
    """VPQ from VIPSeg-layout files (``eval_vpq_vspw.py``).

    Layout: GT JSON ``{"videos": [{"video_id", "images": [{"file_name"}]}], "annotations":
    [{"video_id", "annotations": [{"segments_info"}, ...]}], "categories"}``; prediction JSON
    ``{"annotations": [{"video_id", "annotations": [...]}]}``; PNGs at
    ``<gt_folder>/<video_id>/<file_name>`` and ``<pred_folder>/<video_id>/<file_name>`` (the
    reference's ``pan_pred`` folder). Frames are zipped in JSON order.

    Raises:
        EvaluationInputError: missing keys or files, a video without prediction, or frame counts
            that differ (the reference asserts equal counts).
    """
    gt_src = source_name(gt_json, "<VIPSeg ground truth>")
    pred_src = source_name(pred_json, "<VIPSeg predictions>")
    gt = load_json(gt_json, what="VIPSeg ground truth")
    pred = load_json(pred_json, what="VIPSeg predictions")
    fix = "follow the VIPSeg panoptic JSON layout (videos / annotations per video)."
    require_keys(gt, ("videos", "annotations", "categories"), source=gt_src, where="top level",
                 fix=fix)
    require_keys(pred, ("annotations",), source=pred_src, where="top level", fix=fix)
    gt_by_vid, pred_by_vid = {}, {}
    for src, data, out in ((gt_src, gt, gt_by_vid), (pred_src, pred, pred_by_vid)):
        for i, a in enumerate(data["annotations"]):
            require_keys(a, ("video_id", "annotations"), source=src, where=f"annotations[{i}]",
                         fix=fix)
            out[a["video_id"]] = a["annotations"]
    videos: dict[Any, list[PanopticFrame]] = {}
    for i, v in enumerate(gt["videos"]):
        require_keys(v, ("video_id", "images"), source=gt_src, where=f"videos[{i}]", fix=fix)
        vid = v["video_id"]
        if vid not in gt_by_vid:
            raise EvaluationInputError(f"video {vid!r} has no GT annotations.", source=gt_src,
                                       record=f"videos[{i}]", fix=fix)
        if vid not in pred_by_vid:
            raise MissingPredictionError(f"no prediction for video {vid!r}.", source=pred_src,
                                         fix="write one annotations entry per GT video.")
        g_anns, p_anns = gt_by_vid[vid], pred_by_vid[vid]
        if len(g_anns) != len(p_anns):
            raise EvaluationInputError(
                f"video {vid!r} has {len(p_anns)} predicted frames but {len(g_anns)} GT frames.",
                source=pred_src, record=f"video {vid!r}", fix="predict every annotated frame.")
        frames = []
        for t, (ga, pa, im) in enumerate(zip(g_anns, p_anns, v["images"])):
            rec = f"video {vid!r} frame {t}"
            require_keys(ga, ("segments_info",), source=gt_src, where=rec, fix=fix)
            require_keys(pa, ("segments_info",), source=pred_src, where=rec, fix=fix)
            require_keys(im, ("file_name",), source=gt_src, where=rec, fix=fix)
            name = im["file_name"]
            frames.append(PanopticFrame(
                read_panoptic_png(Path(gt_folder) / str(vid) / name, source=gt_src, record=rec),
                ga["segments_info"],
                read_panoptic_png(Path(pred_folder) / str(vid) / name, source=pred_src,
                                  record=rec),
                pa["segments_info"]))
        videos[vid] = frames
    return vpq_compute(videos, gt["categories"], window_lengths=window_lengths,
                       empty_group=empty_group, source=pred_src)
