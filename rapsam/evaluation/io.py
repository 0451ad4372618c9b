"""Readers and encoders shared by the evaluation protocols, with one clear error per bad record.

The file formats are the public ones the reference evaluators read:

* COCO panoptic (``panopticapi``): a JSON with ``annotations[*].{image_id, file_name, segments_info}``
  plus one RGB PNG per image whose segment id is ``R + 256 G + 256**2 B`` (VOID = 0).
* COCO instance results (``pycocotools``): a list of ``{image_id, category_id, segmentation, score}``
  with compressed RLE masks.
* YouTube-VIS results (``youtubevos/cocoapi`` fork): a list of
  ``{video_id, category_id, score, segmentations}`` with one compressed RLE (or ``None``) per frame.

Every malformed input raises :class:`EvaluationInputError` (a ``ValueError``) whose message names the
file, the record and the fix; the reference tools instead fail with a bare ``KeyError`` or an
``AssertionError`` deep inside, or (for a corrupt RLE string) read past the end of a buffer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

VOID_ID = 0
"""Segment id of void pixels in panoptic PNGs (black)."""

ID_OFFSET = 256 * 256 * 256
"""Largest segment id + 1 that an RGB PNG can hold; also the key offset of the joint histogram."""

JsonSource = str | os.PathLike | Mapping[str, Any] | Sequence[Any]


class EvaluationInputError(ValueError):
    """A malformed annotation or prediction input. The message names the file, record and fix."""

    def __init__(self, problem: str, *, source: str | None = None, record: str | None = None,
                 fix: str | None = None) -> None:
        where = ": ".join(part for part in (source, record) if part)
        message = f"{where}: {problem}" if where else problem
        if fix:
            message = f"{message} Fix: {fix}"
        super().__init__(message)
        self.problem = problem
        self.source = source
        self.record = record
        self.fix = fix

    __str__ = Exception.__str__


class SegmentMismatchError(EvaluationInputError, KeyError):
    """Panoptic PNG and ``segments_info`` disagree (panopticapi raises a bare ``KeyError`` here)."""

    __str__ = Exception.__str__


class MissingKeyError(EvaluationInputError, KeyError):
    """A record lacks a required key (the reference tools raise a bare ``KeyError`` here)."""

    __str__ = Exception.__str__


class MissingPredictionError(EvaluationInputError):
    """A ground-truth image or video has no prediction (panopticapi raises ``Exception``)."""


def source_name(src: Any, default: str) -> str:
    """A short printable name for a JSON source: its path, or ``default`` for in-memory data."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return default


def load_json(src: JsonSource, *, what: str) -> Any:
    """Load JSON from a path, or pass an already-loaded object through.

    Args:
        src: A path to a ``.json`` file, or the decoded object itself.
        what: Human description used in errors ("panoptic ground truth", ...).

    Raises:
        EvaluationInputError: the file is missing or is not valid JSON.
    """
    if not isinstance(src, (str, os.PathLike)):
        return src
    path = Path(src)
    if not path.is_file():
        raise EvaluationInputError(f"{what} file does not exist.", source=str(path),
                                   fix="pass the path of an existing JSON file.")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EvaluationInputError(f"{what} file is not valid JSON ({e}).", source=str(path),
                                   fix="regenerate the file; it may be truncated.") from None


def require_keys(record: Any, keys: Iterable[str], *, source: str, where: str, fix: str) -> None:
    """Raise :class:`EvaluationInputError` if ``record`` is not a dict holding all ``keys``."""
    if not isinstance(record, Mapping):
        raise EvaluationInputError(f"expected a JSON object, got {type(record).__name__}.",
                                   source=source, record=where, fix=fix)
    missing = [k for k in keys if k not in record]
    if missing:
        raise MissingKeyError(f"missing key(s) {missing}.", source=source, record=where, fix=fix)


# --------------------------------------------------------------------------------------------
# Panoptic PNG ids
# --------------------------------------------------------------------------------------------


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Decode a panoptic RGB(A) image to segment ids, ``id = R + 256 G + 256**2 B``.

    Args:
        color: ``(H, W, 3)`` or ``(H, W, 4)`` integer array; the alpha channel is ignored.

    Returns:
        ``(H, W)`` int64 ids.
    """
    if color.ndim != 3 or color.shape[2] not in (3, 4):
        raise ValueError(f"rgb2id expects an (H, W, 3) image, got shape {color.shape}; "
                         "save panoptic maps as RGB PNGs.")
    c = color[..., :3].astype(np.int64)  # (H, W, 3)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Encode ``(H, W)`` segment ids (``0 <= id < 2**24``) as an ``(H, W, 3)`` uint8 RGB image."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= ID_OFFSET):
        raise ValueError(f"segment ids must lie in [0, {ID_OFFSET}) to fit an RGB PNG; got "
                         f"[{ids.min()}, {ids.max()}]. Renumber the segments.")
    ids = ids.astype(np.int64)
    out = np.empty(ids.shape + (3,), dtype=np.uint8)
    for ch in range(3):
        out[..., ch] = ids % 256
        ids = ids // 256
    return out


def read_panoptic_png(path: str | os.PathLike, *, source: str, record: str) -> np.ndarray:
    """Read a panoptic PNG into ``(H, W)`` int64 segment ids, naming ``record`` on failure."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"panoptic PNG {str(path)!r} does not exist.", source=source,
                                   record=record,
                                   fix="check file_name and the segmentation folder.")
    with Image.open(path) as im:
        arr = np.array(im)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise EvaluationInputError(
            f"panoptic PNG {str(path)!r} has shape {arr.shape} (mode {im.mode!r}); an RGB image "
            "is required.", source=source, record=record,
            fix="save ids with id2rgb(ids) as an RGB PNG (id = R + 256 G + 256^2 B).")
    return rgb2id(arr)


# --------------------------------------------------------------------------------------------
# RLE
# --------------------------------------------------------------------------------------------


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Encode one ``(H, W)`` binary mask as COCO compressed RLE with a JSON-ready ``str`` counts."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects an (H, W) mask, got shape {mask.shape}.")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def rle_string_to_counts(counts: str | bytes) -> np.ndarray:
    """Decode a compressed RLE ``counts`` string into run lengths (pycocotools' ``rleFrString``).

    The format: each run length is written as little-endian 5-bit groups offset by 48, with bit
    0x20 meaning "more groups follow" and bit 0x10 of the last group the sign; runs from the
    fourth on are stored as the difference to the run two before.

    Returns:
        ``(M,)`` int64 run lengths (may be negative for a corrupt string; callers validate).

    Raises:
        ValueError: a character outside ``'0'..'o'`` or a truncated last number.
    """
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48  # (L,)
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if c.min() < 0 or c.max() > 63:
        raise ValueError("RLE counts string holds characters outside '0'..'o'")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("RLE counts string is truncated (its last number is incomplete)")
    ends = np.flatnonzero(~more)  # index of the last char of each number
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError("RLE counts string holds a number longer than 12 characters")
    group = np.repeat(np.arange(len(starts)), lengths)  # (L,)
    k = np.arange(c.size) - starts[group]  # position inside the number
    vals = np.add.reduceat((c & 0x1F) << (5 * k), starts)  # (M,)
    negative = (c[ends] & 0x10) != 0
    vals = vals - np.where(negative, np.left_shift(1, 5 * lengths), 0)
    cnts = vals.copy()
    if cnts.size > 3:
        cnts[1::2] = np.cumsum(vals[1::2])  # odd runs: delta to the run two before (from m=3)
        cnts[2::2] = np.cumsum(vals[2::2])  # even runs: delta from m=4, m=2 is absolute
    return cnts


def check_rle(segm: Any, *, height: int | None, width: int | None, source: str, record: str,
              allow_uncompressed: bool = True) -> dict[str, Any]:
    """Validate one RLE mask and return it in compressed form (``counts`` as ``str``).

    Args:
        segm: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: Expected size, or ``None`` to accept any.
        source, record: Names used in the error message.
        allow_uncompressed: Accept ``counts`` given as a list of run lengths (converted).

    Raises:
        EvaluationInputError: missing keys, a size that differs from the image, or counts that are
            corrupt or do not add up to ``h * w``.
    """
    fix = ("encode masks with rapsam.evaluation.encode_mask (pycocotools mask.encode) and "
           "decode the counts bytes to str before writing JSON.")
    if not isinstance(segm, Mapping) or "size" not in segm or "counts" not in segm:
        raise EvaluationInputError("segmentation is not an RLE dict with 'size' and 'counts'.",
                                   source=source, record=record, fix=fix)
    size = segm["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in size)):
        raise EvaluationInputError(f"RLE size {size!r} is not [height, width].", source=source,
                                   record=record, fix=fix)
    h, w = int(size[0]), int(size[1])
    if height is not None and (h, w) != (height, width):
        raise EvaluationInputError(
            f"RLE size [{h}, {w}] differs from the image size [{height}, {width}].",
            source=source, record=record,
            fix="encode the mask at the original image resolution (resize predictions back first).")
    counts = segm["counts"]
    if isinstance(counts, list):
        if not allow_uncompressed:
            raise EvaluationInputError("uncompressed RLE (counts is a list) is not accepted here.",
                                       source=source, record=record, fix=fix)
        arr = np.asarray(counts)
        if arr.ndim != 1 or (arr.size and (not np.issubdtype(arr.dtype, np.integer)
                                           or arr.min() < 0)) or int(arr.sum()) != h * w:
            raise EvaluationInputError(
                f"uncompressed RLE counts must be non-negative integers adding up to {h * w}.",
                source=source, record=record, fix=fix)
        rle = mask_utils.frPyObjects({"size": [h, w], "counts": [int(x) for x in counts]}, h, w)
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    if not isinstance(counts, (str, bytes)):
        raise EvaluationInputError(f"RLE counts has type {type(counts).__name__}.",
                                   source=source, record=record, fix=fix)
    try:
        runs = rle_string_to_counts(counts)
    except ValueError as e:
        raise EvaluationInputError(f"corrupt RLE counts: {e}.", source=source, record=record,
                                   fix=fix) from None
    if runs.size and (runs.min() < 0 or runs.max() >= 2**32):
        raise EvaluationInputError("corrupt RLE counts: a run length is negative.",
                                   source=source, record=record, fix=fix)
    if int(runs.sum()) != h * w:
        raise EvaluationInputError(
            f"corrupt RLE counts: runs add up to {int(runs.sum())} pixels, not {h} x {w}.",
            source=source, record=record, fix=fix)
    text = counts.decode("ascii") if isinstance(counts, bytes) else counts
    return {"size": [h, w], "counts": text}


# --------------------------------------------------------------------------------------------
# COCO-style instance results
# --------------------------------------------------------------------------------------------


def _check_score(score: Any, *, source: str, record: str) -> float:
    if isinstance(score, bool) or not isinstance(score, (int, float, np.integer, np.floating)) \
            or not np.isfinite(score):
        raise EvaluationInputError(f"score {score!r} is not a finite number.", source=source,
                                   record=record, fix="write each score as a float.")
    return float(score)


def read_coco_instance_results(results: JsonSource, *, image_sizes: Mapping[Any, tuple[int, int]],
                               category_ids: Iterable[Any]) -> list[dict[str, Any]]:
    """Load and validate COCO segmentation results against the ground truth.

    Args:
        results: Path to a results JSON, or the list itself.
        image_sizes: GT ``image_id -> (height, width)``.
        category_ids: The GT category ids.

    Returns:
        A new list of ``{image_id, category_id, segmentation, score[, bbox]}`` dicts with
        compressed-RLE ``str`` counts, in file order.

    Raises:
        EvaluationInputError: not a list, a missing key, an image id that is not in the GT, an
            unknown category, a non-finite score, or a bad or wrongly sized RLE.
    """
    src = source_name(results, "<instance results>")
    data = load_json(results, what="instance results")
    if not isinstance(data, list):
        raise EvaluationInputError("results must be a JSON list of detections.", source=src,
                                   fix="write a list of {image_id, category_id, segmentation, "
                                       "score} records.")
    cats = set(category_ids)
    out = []
    for i, det in enumerate(data):
        where = f"results[{i}]"
        require_keys(det, ("image_id", "category_id", "segmentation", "score"), source=src,
                     where=where, fix="each detection needs image_id, category_id, "
                                      "segmentation (RLE) and score.")
        where = f"results[{i}] (image_id={det['image_id']!r})"
        if det["image_id"] not in image_sizes:
            raise EvaluationInputError(f"image_id {det['image_id']!r} is not in the ground truth.",
                                       source=src, record=where,
                                       fix="use the image ids of the annotation file.")
        if det["category_id"] not in cats:
            raise EvaluationInputError(
                f"unknown category_id {det['category_id']!r}.", source=src, record=where,
                fix="map contiguous class indices to the dataset's category ids before writing.")
        h, w = image_sizes[det["image_id"]]
        rec = {"image_id": det["image_id"], "category_id": det["category_id"],
               "segmentation": check_rle(det["segmentation"], height=h, width=w, source=src,
                                         record=where),
               "score": _check_score(det["score"], source=src, record=where)}
        if i > 0 and out[0].get("bbox") and "bbox" not in det:
            raise EvaluationInputError(
                "this result has no bbox but results[0] has one; pycocotools then reads the box "
                "area of every result and fails.", source=src, record=where,
                fix="give every result a bbox (masks_to_coco_results(with_bbox=True)) or none.")
        if "bbox" in det:
            bbox = det["bbox"]
            if not isinstance(bbox, (list, tuple)) or len(bbox) not in (0, 4):
                raise EvaluationInputError(f"bbox {bbox!r} is not [x, y, w, h].", source=src,
                                           record=where, fix="write bbox as [x, y, w, h].")
            rec["bbox"] = [float(v) for v in bbox]
        out.append(rec)
    return out


def read_ytvis_results(results: JsonSource, *, videos: Mapping[Any, Mapping[str, Any]],
                       category_ids: Iterable[Any]) -> list[dict[str, Any]]:
    """Load and validate YouTube-VIS results against the ground-truth videos.

    Args:
        results: Path to a results JSON, or the list itself.
        videos: GT ``video_id -> {"height", "width", "length"}`` (``length`` optional).
        category_ids: The GT category ids.

    Returns:
        A new list of ``{video_id, category_id, score, segmentations}`` with each frame a
        compressed RLE (``str`` counts) or ``None``.

    Raises:
        EvaluationInputError: a missing key, an unknown video or category, a bad score, a
            ``segmentations`` list whose length differs from the video, or a bad RLE.
    """
    src = source_name(results, "<video results>")
    data = load_json(results, what="video instance results")
    if not isinstance(data, list):
        raise EvaluationInputError("results must be a JSON list of tracks.", source=src,
                                   fix="write a list of {video_id, category_id, score, "
                                       "segmentations} records.")
    cats = set(category_ids)
    out = []
    for i, trk in enumerate(data):
        where = f"results[{i}]"
        require_keys(trk, ("video_id", "category_id", "score", "segmentations"), source=src,
                     where=where, fix="each track needs video_id, category_id, score and "
                                      "segmentations (one RLE or null per frame).")
        where = f"results[{i}] (video_id={trk['video_id']!r})"
        vid = videos.get(trk["video_id"])
        if vid is None:
            raise EvaluationInputError(f"video_id {trk['video_id']!r} is not in the ground truth.",
                                       source=src, record=where,
                                       fix="use the video ids of the annotation file.")
        if trk["category_id"] not in cats:
            raise EvaluationInputError(f"unknown category_id {trk['category_id']!r}.", source=src,
                                       record=where,
                                       fix="map class indices to the dataset's category ids.")
        segs = trk["segmentations"]
        if not isinstance(segs, list):
            raise EvaluationInputError("segmentations must be a list (one entry per frame).",
                                       source=src, record=where,
                                       fix="write one RLE or null per video frame.")
        length = vid.get("length")
        if length is not None and len(segs) != length:
            raise EvaluationInputError(
                f"segmentations has {len(segs)} frames but the video has {length}.", source=src,
                record=where, fix="write one RLE or null per video frame.")
        frames = []
        for f, seg in enumerate(segs):
            if seg is None:
                frames.append(None)
                continue
            frames.append(check_rle(seg, height=vid["height"], width=vid["width"], source=src,
                                    record=f"{where} frame {f}", allow_uncompressed=False))
        out.append({"video_id": trk["video_id"], "category_id": trk["category_id"],
                    "score": _check_score(trk["score"], source=src, record=where),
                    "segmentations": frames})
    return out
