"""COCO panoptic quality (PQ, SQ, RQ), equal to ``panopticapi.evaluation.pq_compute``.

Reference: Kirillov et al., "Panoptic Segmentation", CVPR 2019; code cocodataset/panopticapi
(``panopticapi/evaluation.py``), which mmdet 3.3.0 ports unchanged (the metric RAP-SAM reports).
The rules kept here, including the reference's quirks (see ``shared/design/metrics.md`` section 1):

* GT areas come from the GT JSON ``area`` field; predicted areas are PNG pixel counts.
* ``union = area_p + area_g - inter - inter(VOID, p)``; a match needs IoU > 0.5 (strict) and the
  same category, against a non-crowd GT. One-to-one matching is not enforced.
* An unmatched prediction is dropped when more than half of it lies on VOID or on a crowd region of
  its own category; otherwise it is a false positive.
* Per-category PQ/SQ/RQ; categories with TP + FP + FN = 0 are skipped; All/Things/Stuff are
  unweighted means over the counted categories (an empty group makes the reference divide by zero).

Two entry points: :func:`pq_compute` on COCO panoptic files, and :class:`PQEvaluator` fed in-memory
id maps. Both return a :class:`PQResult` on the 0-1 scale (the reference's scale; print x100).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from .io import (
    ID_OFFSET,
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

EmptyGroup = Literal["raise", "nan"]


@dataclass
class PQCategoryStats:
    """Summed statistics of one category: IoU sum over TPs and the TP / FP / FN counts."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: PQCategoryStats) -> Self:
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


@dataclass
class PQStats:
    """Per-category statistics, mergeable with ``+=`` (order only moves sums at the 1e-16 level)."""

    per_category: dict[Any, PQCategoryStats] = field(default_factory=dict)

    def __getitem__(self, category_id: Any) -> PQCategoryStats:
        if category_id not in self.per_category:
            self.per_category[category_id] = PQCategoryStats()
        return self.per_category[category_id]

    def __iadd__(self, other: PQStats) -> Self:
        for cat, st in other.per_category.items():
            mine = self[cat]
            mine += st
        return self


@dataclass(frozen=True)
class PQGroupResult:
    """PQ/SQ/RQ of a category group (0-1 scale) and ``n``, the number of categories counted."""

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class PQClassResult:
    """One category: PQ/SQ/RQ (0-1; all 0 when not counted) and its summed statistics."""

    pq: float
    sq: float
    rq: float
    iou: float
    tp: int
    fp: int
    fn: int
    isthing: bool
    counted: bool


@dataclass(frozen=True)
class PQResult:
    """Panoptic quality on the 0-1 scale, grouped like panopticapi's return value.

    Attributes:
        all, things, stuff: Unweighted means over the counted categories of each group.
        per_class: ``category_id -> PQClassResult`` for every GT category, in GT order.
    """

    all: PQGroupResult
    things: PQGroupResult
    stuff: PQGroupResult
    per_class: dict[Any, PQClassResult]

    def to_panopticapi(self) -> dict[str, Any]:
        """The exact structure ``panopticapi.evaluation.pq_compute`` returns."""
        out: dict[str, Any] = {}
        for name, g in (("All", self.all), ("Things", self.things), ("Stuff", self.stuff)):
            out[name] = {"pq": g.pq, "sq": g.sq, "rq": g.rq, "n": g.n}
        out["per_class"] = {c: {"pq": r.pq, "sq": r.sq, "rq": r.rq}
                            for c, r in self.per_class.items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (category ids become strings)."""
        return {"all": asdict(self.all), "things": asdict(self.things),
                "stuff": asdict(self.stuff),
                "per_class": {str(c): asdict(r) for c, r in self.per_class.items()}}


# --------------------------------------------------------------------------------------------
# Per-image counting
# --------------------------------------------------------------------------------------------


def _category_map(categories: Iterable[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]],
                  source: str = "<categories>") -> dict[Any, Mapping[str, Any]]:
    """``id -> category`` in GT order from a list of category dicts (or such a dict itself)."""
    if isinstance(categories, Mapping):
        items = list(categories.values())
    else:
        items = list(categories)
    out: dict[Any, Mapping[str, Any]] = {}
    for i, cat in enumerate(items):
        require_keys(cat, ("id", "isthing"), source=source, where=f"categories[{i}]",
                     fix="each category needs 'id' and 'isthing' (1 for things, 0 for stuff).")
        out[cat["id"]] = cat
    return out


def _check_segments(segments: Sequence[Mapping[str, Any]], keys: tuple[str, ...], *, source: str,
                    record: str) -> None:
    if not isinstance(segments, (list, tuple)):
        raise EvaluationInputError("segments_info must be a list.", source=source, record=record,
                                   fix="write segments_info as a list of segment dicts.")
    for j, seg in enumerate(segments):
        require_keys(seg, keys, source=source, where=f"{record} segments_info[{j}]",
                     fix=f"every segment needs {list(keys)}.")


def _check_id_map(ids: np.ndarray, name: str, *, source: str, record: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not (np.issubdtype(ids.dtype, np.integer) or ids.dtype == bool):
        raise EvaluationInputError(f"{name} must be an (H, W) integer id map, got "
                                   f"{ids.dtype} {ids.shape}.", source=source, record=record,
                                   fix="decode RGB PNGs with rgb2id first.")
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= ID_OFFSET):
        raise EvaluationInputError(f"{name} holds ids outside [0, 2^24).", source=source,
                                   record=record,
                                   fix="segment ids must be RGB-encodable (id < 16777216).")
    return ids


def joint_histogram(gt_ids: np.ndarray, pred_ids: np.ndarray) -> dict[tuple[int, int], int]:
    """``(gt_id, pred_id) -> pixel count`` over all pixels (VOID included), in ascending key order.

    Args:
        gt_ids, pred_ids: Same-shape int id maps (any number of dims, e.g. ``(T, H, W)`` tubes).
    """
    key = gt_ids.astype(np.uint64) * np.uint64(ID_OFFSET) + pred_ids.astype(np.uint64)
    labels, counts = np.unique(key, return_counts=True)
    g = (labels // np.uint64(ID_OFFSET)).astype(np.int64)
    p = (labels % np.uint64(ID_OFFSET)).astype(np.int64)
    return {(int(a), int(b)): c for a, b, c in zip(g, p, counts)}


def match_segments(gt_segms: Mapping[int, Mapping[str, Any]], gt_areas: Mapping[int, Any],
                   pred_segms: Mapping[int, Mapping[str, Any]], pred_areas: Mapping[int, Any],
                   gt_pred_map: Mapping[tuple[int, int], Any], stats: PQStats) -> None:
    """Count TP/FP/FN of one image (or one video window) into ``stats`` (metrics.md 1.3).

    Args:
        gt_segms: ``id -> {category_id, iscrowd}`` (dict order matters for the crowd map).
        gt_areas: ``id -> area`` as the reference uses it (GT JSON ``area``).
        pred_segms: ``id -> {category_id}``.
        pred_areas: ``id -> area`` (pixel counts).
        gt_pred_map: Output of :func:`joint_histogram`.
        stats: Accumulator updated in place.
    """
    gt_matched: set[int] = set()
    pred_matched: set[int] = set()
    for (gt_label, pred_label), inter in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        g = gt_segms[gt_label]
        if g["iscrowd"] == 1:
            continue
        if g["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        # Same operand types and order as the reference (numpy int64 counts, JSON GT area).
        union = (pred_areas[pred_label] + gt_areas[gt_label] - inter
                 - gt_pred_map.get((VOID_ID, pred_label), 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.true_divide(inter, union)
        if iou > 0.5:
            st = stats[g["category_id"]]
            st.tp += 1
            st.iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    crowd_by_cat: dict[Any, int] = {}
    for gt_label, g in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if g["iscrowd"] == 1:
            crowd_by_cat[g["category_id"]] = gt_label  # last crowd segment of a category wins
            continue
        stats[g["category_id"]].fn += 1

    for pred_label, p in pred_segms.items():
        if pred_label in pred_matched:
            continue
        ignored = gt_pred_map.get((VOID_ID, pred_label), 0)
        if p["category_id"] in crowd_by_cat:
            ignored += gt_pred_map.get((crowd_by_cat[p["category_id"]], pred_label), 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if np.true_divide(ignored, pred_areas[pred_label]) > 0.5:
                continue
        stats[p["category_id"]].fp += 1


def check_prediction_segments(pred_ids: np.ndarray, pred_segments: Sequence[Mapping[str, Any]],
                              categories: Mapping[Any, Any], *, source: str,
                              record: str) -> tuple[dict[int, Mapping[str, Any]], dict[int, Any]]:
    """Validate a predicted id map against its ``segments_info`` (metrics.md 1.2 rules 2-4).

    Returns:
        ``(pred_segms, pred_areas)``: ``id -> segment`` (last duplicate wins) and
        ``id -> pixel count`` (numpy int64, as the reference holds it).

    Raises:
        SegmentMismatchError: an id in the PNG but not in JSON, an unknown category, or an id in
            JSON but not in the PNG (checked in that order, like the reference).
    """
    pred_segms = {el["id"]: el for el in pred_segments}
    remaining = set(pred_segms)
    pred_areas: dict[int, Any] = {}
    labels, counts = np.unique(pred_ids, return_counts=True)
    for label, cnt in zip(labels.tolist(), counts):
        if label not in pred_segms:
            if label == VOID_ID:
                continue
            raise SegmentMismatchError(
                f"segment id {label} is present in the PNG but not in segments_info.",
                source=source, record=record,
                fix="list every non-zero PNG id in segments_info (0 is void).")
        pred_areas[label] = cnt
        remaining.discard(label)
        cat = pred_segms[label]["category_id"]
        if cat not in categories:
            raise SegmentMismatchError(
                f"segment id {label} has unknown category_id {cat!r}.", source=source,
                record=record, fix="use the category ids of the ground-truth JSON.")
    if remaining:
        raise SegmentMismatchError(
            f"segment ids {sorted(remaining)} are present in segments_info but not in the PNG.",
            source=source, record=record,
            fix="drop segments that lost all their pixels from segments_info.")
    return pred_segms, pred_areas


def pq_image_stats(gt_ids: np.ndarray, gt_segments: Sequence[Mapping[str, Any]],
                   pred_ids: np.ndarray, pred_segments: Sequence[Mapping[str, Any]],
                   categories: Mapping[Any, Any], *, source: str = "<in-memory>",
                   record: str = "image") -> PQStats:
    """PQ statistics of one image.

    Args:
        gt_ids: ``(H, W)`` GT segment ids (0 = void).
        gt_segments: GT ``segments_info`` (``id``, ``category_id``, ``iscrowd``, ``area``).
        pred_ids: ``(H, W)`` predicted segment ids (0 = void).
        pred_segments: Predicted ``segments_info`` (``id``, ``category_id``; ``area`` ignored).
        categories: GT category ids (a set or ``id -> category`` dict).
        source, record: Names used in error messages.

    Raises:
        EvaluationInputError: bad shapes or missing keys; :class:`SegmentMismatchError` when the
            predicted PNG and its ``segments_info`` disagree.
    """
    gt_ids = _check_id_map(gt_ids, "gt_ids", source=source, record=record)
    pred_ids = _check_id_map(pred_ids, "pred_ids", source=source, record=record)
    if gt_ids.shape != pred_ids.shape:
        raise EvaluationInputError(
            f"prediction size {pred_ids.shape} differs from ground truth {gt_ids.shape}.",
            source=source, record=record,
            fix="resize the panoptic prediction to the original image size.")
    _check_segments(gt_segments, ("id", "category_id", "iscrowd", "area"), source=source,
                    record=f"{record} (ground truth)")
    _check_segments(pred_segments, ("id", "category_id"), source=source, record=record)
    pred_segms, pred_areas = check_prediction_segments(pred_ids, pred_segments, categories,
                                                       source=source, record=record)
    gt_segms = {el["id"]: el for el in gt_segments}
    gt_areas = {k: v["area"] for k, v in gt_segms.items()}
    stats = PQStats()
    match_segments(gt_segms, gt_areas, pred_segms, pred_areas,
                   joint_histogram(gt_ids, pred_ids), stats)
    return stats


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def pq_from_stats(stats: PQStats, categories: Iterable[Mapping[str, Any]]
                  | Mapping[Any, Mapping[str, Any]], *,
                  empty_group: EmptyGroup = "raise") -> PQResult:
    """Turn summed statistics into per-category and All/Things/Stuff PQ (metrics.md 1.4).

    Args:
        stats: Summed per-category statistics.
        categories: GT categories (``id``, ``isthing``), in GT order.
        empty_group: ``"raise"`` (reference behaviour: it divides by zero) or ``"nan"`` when a
            group has no counted category.

    Raises:
        ZeroDivisionError: (an :class:`EmptyGroupError`) a group with no counted category and
            ``empty_group="raise"``.
    """
    cats = _category_map(categories)
    per_class: dict[Any, PQClassResult] = {}
    for cat_id, info in cats.items():
        st = stats.per_category.get(cat_id, PQCategoryStats())
        isthing = info["isthing"] == 1
        if st.tp + st.fp + st.fn == 0:
            per_class[cat_id] = PQClassResult(0.0, 0.0, 0.0, float(st.iou), 0, 0, 0, isthing,
                                              False)
            continue
        denom = st.tp + 0.5 * st.fp + 0.5 * st.fn
        pq = st.iou / denom
        sq = st.iou / st.tp if st.tp != 0 else 0
        rq = st.tp / denom
        per_class[cat_id] = PQClassResult(float(pq), float(sq), float(rq), float(st.iou),
                                          int(st.tp), int(st.fp), int(st.fn), isthing, True)

    def group(name: str, isthing: bool | None) -> PQGroupResult:
        pq = sq = rq = 0.0
        n = 0
        for r in per_class.values():
            if isthing is not None and r.isthing != isthing:
                continue
            if not r.counted:
                continue
            n += 1
            pq += r.pq
            sq += r.sq
            rq += r.rq
        if n == 0:
            if empty_group == "raise":
                raise EmptyGroupError(
                    f"panoptic group {name!r} has no category with any TP, FP or FN, so its mean "
                    "is 0/0 (panopticapi raises ZeroDivisionError here). Fix: evaluate on data "
                    "holding such segments, or pass empty_group='nan'.")
            return PQGroupResult(math.nan, math.nan, math.nan, 0)
        return PQGroupResult(pq / n, sq / n, rq / n, n)

    return PQResult(all=group("All", None), things=group("Things", True),
                    stuff=group("Stuff", False), per_class=per_class)


class EmptyGroupError(ZeroDivisionError, ValueError):
    """A PQ group (All/Things/Stuff) has no counted category; the reference divides by zero."""


class PQEvaluator:
    """Accumulate panoptic quality over images held in memory.

    Example:
        >>> ev = PQEvaluator(categories)              # GT categories: id, isthing
        >>> ev.add(gt_ids, gt_segments, pred_ids, pred_segments, image_id=139)
        >>> res = ev.compute()                        # PQResult; res.all.pq * 100
    """

    def __init__(self, categories: Iterable[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]]
                 ) -> None:
        """Args: categories: GT categories with ``id`` and ``isthing``, in GT order."""
        self.categories = _category_map(categories)
        self.stats = PQStats()
        self.num_images = 0

    def add(self, gt_ids: np.ndarray, gt_segments: Sequence[Mapping[str, Any]],
            pred_ids: np.ndarray, pred_segments: Sequence[Mapping[str, Any]], *,
            image_id: Any = None) -> PQStats:
        """Add one image; see :func:`pq_image_stats` for the arguments. Returns its statistics."""
        record = "image" if image_id is None else f"image_id={image_id!r}"
        st = pq_image_stats(gt_ids, gt_segments, pred_ids, pred_segments, self.categories,
                            record=record)
        self.stats += st
        self.num_images += 1
        return st

    def compute(self, *, empty_group: EmptyGroup = "raise") -> PQResult:
        """PQ over everything added so far (see :func:`pq_from_stats`)."""
        return pq_from_stats(self.stats, self.categories, empty_group=empty_group)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _file_image_stats(args: tuple) -> PQStats:
    gt_ann, pred_ann, gt_folder, pred_folder, categories, gt_src, pred_src = args
    rec = f"annotations (image_id={gt_ann['image_id']!r})"
    gt_ids = read_panoptic_png(os.path.join(gt_folder, gt_ann["file_name"]), source=gt_src,
                               record=rec)
    pred_ids = read_panoptic_png(os.path.join(pred_folder, pred_ann["file_name"]),
                                 source=pred_src, record=rec)
    return pq_image_stats(gt_ids, gt_ann["segments_info"], pred_ids, pred_ann["segments_info"],
                          categories, source=pred_src, record=rec)


def _check_panoptic_json(data: Any, src: str, *, is_gt: bool) -> None:
    fix = ("a COCO panoptic JSON has 'annotations': [{image_id, file_name, segments_info}]"
           + (" and 'categories'." if is_gt else "."))
    keys = ("annotations", "categories") if is_gt else ("annotations",)
    require_keys(data, keys, source=src, where="top level", fix=fix)
    if not isinstance(data["annotations"], list):
        raise EvaluationInputError("'annotations' must be a list.", source=src, fix=fix)
    for i, ann in enumerate(data["annotations"]):
        require_keys(ann, ("image_id", "file_name", "segments_info"), source=src,
                     where=f"annotations[{i}]", fix=fix)
        seg_keys = ("id", "category_id", "iscrowd", "area") if is_gt else ("id", "category_id")
        _check_segments(ann["segments_info"], seg_keys, source=src,
                        record=f"annotations[{i}] (image_id={ann['image_id']!r})")


def pq_compute(gt_json: JsonSource, gt_folder: str | os.PathLike | None, pred_json: JsonSource,
               pred_folder: str | os.PathLike | None, *, num_workers: int = 0,
               empty_group: EmptyGroup = "raise") -> PQResult:
    """COCO panoptic quality from files; equals ``panopticapi.evaluation.pq_compute``.

    Note the argument order (GT json, GT folder, prediction json, prediction folder) differs from
    panopticapi's ``pq_compute(gt_json_file, pred_json_file, gt_folder, pred_folder)``.

    Args:
        gt_json: Path to the GT panoptic JSON (or the loaded dict).
        gt_folder: Folder of GT PNGs; ``None`` means the JSON path without ``.json``.
        pred_json: Path to the prediction JSON (or the loaded dict).
        pred_folder: Folder of predicted PNGs; ``None`` means the JSON path without ``.json``.
        num_workers: Worker processes (0 = this process). The result does not depend on it.
        empty_group: See :func:`pq_from_stats`.

    Raises:
        EvaluationInputError: a missing folder or file, a malformed JSON record, or a GT image
            without prediction (:class:`MissingPredictionError`); :class:`SegmentMismatchError`
            where panopticapi raises ``KeyError``. Predictions for images absent from the GT are
            ignored, as in the reference.
    """
    gt_src = source_name(gt_json, "<panoptic ground truth>")
    pred_src = source_name(pred_json, "<panoptic predictions>")
    gt_data = load_json(gt_json, what="panoptic ground truth")
    pred_data = load_json(pred_json, what="panoptic predictions")
    _check_panoptic_json(gt_data, gt_src, is_gt=True)
    _check_panoptic_json(pred_data, pred_src, is_gt=False)
    categories = _category_map(gt_data["categories"], gt_src)

    def folder(f: Any, js: Any, what: str) -> str:
        if f is None:
            if not isinstance(js, (str, os.PathLike)):
                raise EvaluationInputError(f"no {what} folder given for in-memory JSON.",
                                           fix=f"pass {what}_folder explicitly.")
            f = str(js).replace(".json", "")
        if not Path(f).is_dir():
            raise EvaluationInputError(f"{what} segmentation folder {str(f)!r} does not exist.",
                                       fix="pass the folder that holds the panoptic PNGs.")
        return str(f)

    gt_dir = folder(gt_folder, gt_json, "gt")
    pred_dir = folder(pred_folder, pred_json, "pred")

    pred_by_image = {ann["image_id"]: ann for ann in pred_data["annotations"]}
    jobs = []
    for gt_ann in gt_data["annotations"]:
        pred_ann = pred_by_image.get(gt_ann["image_id"])
        if pred_ann is None:
            raise MissingPredictionError(
                f"no prediction for the image with id {gt_ann['image_id']!r}.", source=pred_src,
                record="annotations",
                fix="write one annotation per ground-truth image (an empty segments_info and an "
                    "all-zero PNG for an image with nothing predicted).")
        jobs.append((gt_ann, pred_ann, gt_dir, pred_dir, set(categories), gt_src, pred_src))

    stats = PQStats()
    if num_workers > 0 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=num_workers) as pool:
            for st in pool.map(_file_image_stats, jobs, chunksize=max(1, len(jobs) // (
                    4 * num_workers))):
                stats += st
    else:
        for job in jobs:
            stats += _file_image_stats(job)
    return pq_from_stats(stats, categories, empty_group=empty_group)


class PanopticPredictionWriter:
    """Save panoptic predictions in the COCO panoptic format that :func:`pq_compute` reads.

    Example:
        >>> w = PanopticPredictionWriter("out/panoptic_pred")       # PNG folder
        >>> w.add(image_id, "000000000139.png", ids, segments_info)  # ids (H, W), 0 = void
        >>> w.write_json("out/panoptic_pred.json")
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.annotations: list[dict[str, Any]] = []

    def add(self, image_id: Any, file_name: str, ids: np.ndarray,
            segments_info: Sequence[Mapping[str, Any]]) -> None:
        """Write ``ids`` as an RGB PNG and record its ``segments_info`` (``id``, ``category_id``).

        Raises:
            EvaluationInputError: ids outside ``[0, 2^24)`` or ``segments_info`` that does not
                match the non-zero ids of the map.
        """
        from PIL import Image

        from .io import id2rgb

        rec = f"image_id={image_id!r}"
        ids = _check_id_map(ids, "ids", source=str(self.folder), record=rec)
        _check_segments(segments_info, ("id", "category_id"), source=str(self.folder),
                        record=rec)
        present = {int(i) for i in np.unique(ids)} - {VOID_ID}
        listed = {int(s["id"]) for s in segments_info}
        if present != listed:
            raise SegmentMismatchError(
                f"ids in the map {sorted(present)} differ from segments_info {sorted(listed)}.",
                source=str(self.folder), record=rec,
                fix="list exactly the non-zero ids of the map (drop segments with no pixels).")
        Image.fromarray(id2rgb(ids)).save(self.folder / file_name)
        self.annotations.append({"image_id": image_id, "file_name": file_name,
                                 "segments_info": [{"id": int(s["id"]),
                                                    "category_id": s["category_id"],
                                                    **{k: v for k, v in s.items()
                                                       if k not in ("id", "category_id")}}
                                                   for s in segments_info]})

    def write_json(self, path: str | os.PathLike) -> None:
        """Write the prediction JSON (``{"annotations": [...]}``)."""
        import json

        with open(path, "w", encoding="utf-8") as f:
            json.dump({"annotations": self.annotations}, f)
