"""Low-level codecs of the standard segmentation annotation formats.

Everything here is pure numpy (plus ``pycocotools.mask`` for polygon rasterisation, so polygons
rasterise exactly as the COCO tools do) and is shared by the synthetic-data writer
(:mod:`rapsam.data.synth`) and the dataset readers (:mod:`rapsam.data.datasets`).

Formats, as their publishers define them:

* **COCO RLE** (``cocodataset/cocoapi`` ``maskApi.c``): a binary ``(H, W)`` mask is flattened in
  column-major (Fortran) order and stored as alternating run lengths, starting with a run of zeros
  (which may be empty). ``{"size": [H, W], "counts": [int, ...]}`` is the *uncompressed* form (used
  for ``iscrowd`` annotations and by YouTube-VIS); ``{"size": [H, W], "counts": "<str>"}`` is the
  *compressed* form: each count (after the third, minus the count two places before it) is written
  as little-endian groups of 5 bits, one printable character (``chr(48 + c)``) per group, bit
  ``0x20`` meaning "more groups follow" and bit ``0x10`` of the last group the sign.
* **COCO polygons**: a list of flat ``[x0, y0, x1, y1, ...]`` lists in pixel coordinates; the mask
  is the union of the rasterised polygons.
* **Panoptic PNG id encoding** (COCO panoptic, ``panopticapi.utils.rgb2id``; also VIPSeg's
  ``panomasksRGB``): ``id = R + 256 * G + 256**2 * B``, ``0`` = unlabelled (VOID).
* **COCO boxes**: ``[x, y, w, h]`` of the tight pixel box, ``w = x_max - x_min + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MAX_PANOPTIC_ID",
    "id_to_rgb",
    "mask_to_bbox",
    "polygons_to_mask",
    "rgb_to_id",
    "rle_counts",
    "rle_counts_from_string",
    "rle_counts_to_string",
    "rle_decode",
    "rle_encode",
    "segmentation_to_mask",
    "validate_polygons",
]

#: Largest id a 3-channel 8-bit panoptic PNG can hold (``2**24 - 1``).
MAX_PANOPTIC_ID = (1 << 24) - 1


# --------------------------------------------------------------------------------------------
# Panoptic id <-> RGB
# --------------------------------------------------------------------------------------------


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Decode a panoptic PNG: ``id = R + 256 G + 65536 B``.

    Args:
        rgb: ``(H, W, 3)`` integer array (a loaded panoptic PNG).

    Returns:
        ``(H, W)`` int64 segment ids; ``0`` is VOID.

    Raises:
        ValueError: if ``rgb`` is not ``(H, W, 3)``.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"a panoptic PNG must decode to (H, W, 3) RGB, got shape {rgb.shape}; "
            "save panoptic maps as 3-channel 8-bit RGB PNGs (id = R + 256*G + 65536*B)"
        )
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)  # (H, W)


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encode segment ids as a panoptic PNG image (inverse of :func:`rgb_to_id`).

    Args:
        ids: ``(H, W)`` integer ids in ``[0, 2**24)``.

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: if an id is negative or does not fit in 24 bits.
    """
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > MAX_PANOPTIC_ID):
        raise ValueError(
            f"panoptic ids must lie in [0, {MAX_PANOPTIC_ID}] to fit an RGB PNG, got range "
            f"[{ids.min()}, {ids.max()}]; renumber the segments"
        )
    ids = ids.astype(np.int64)
    rgb = np.stack([ids & 0xFF, (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1)  # (H, W, 3)
    return rgb.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# COCO RLE
# --------------------------------------------------------------------------------------------


def rle_counts_to_string(counts: Sequence[int]) -> str:
    """Compress run lengths into the COCO RLE string (``maskApi.c: rleToString``).

    Args:
        counts: non-negative run lengths, zeros-run first.

    Returns:
        The printable compressed string.
    """
    out: list[str] = []
    for i, value in enumerate(counts):
        x = int(value)
        if i > 2:
            x -= int(counts[i - 2])  # differential coding from the 4th count on
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift keeps the sign
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_counts_from_string(s: str | bytes) -> list[int]:
    """Parse a compressed COCO RLE string into run lengths (``maskApi.c: rleFrString``).

    Unlike the C code this validates the input instead of reading past it.

    Args:
        s: the ``counts`` string (``str`` or ``bytes``).

    Returns:
        The run lengths.

    Raises:
        ValueError: on a character outside the RLE alphabet, a truncated value, or a negative
            run length.
    """
    if isinstance(s, bytes):
        try:
            s = s.decode("ascii")
        except UnicodeDecodeError as e:
            raise ValueError(f"RLE counts string is not ASCII ({e})") from None
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError(
                    "RLE counts string is truncated (its last value has the 'more' bit set)"
                )
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(
                    f"RLE counts string has character {s[p]!r} at position {p}, outside the "
                    "COCO alphabet chr(48)..chr(111)"
                )
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)  # sign extension
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise ValueError(f"RLE run {len(counts)} has negative length {x}")
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Encode a binary mask as COCO RLE.

    Args:
        mask: ``(H, W)`` mask (any dtype; non-zero is foreground).
        compressed: ``True`` for the string form (as ``pycocotools.mask.encode`` produces, but as
            ``str`` so it is JSON-ready), ``False`` for the uncompressed list-of-ints form.

    Returns:
        ``{"size": [H, W], "counts": str | list[int]}``.

    Raises:
        ValueError: if ``mask`` is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode expects one (H, W) mask, got shape {mask.shape}")
    h, w = mask.shape
    flat = mask.astype(bool).ravel(order="F")  # column-major, as COCO
    if flat.size == 0:
        counts: list[int] = [0]
    else:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate([[0], change, [flat.size]])
        runs = np.diff(bounds).tolist()
        counts = ([0] + runs) if flat[0] else runs
    return {
        "size": [int(h), int(w)],
        "counts": rle_counts_to_string(counts) if compressed else [int(c) for c in counts],
    }


def rle_counts(rle: Any) -> tuple[int, int, list[int]]:
    """Validate an RLE object and return ``(height, width, run_lengths)``.

    Args:
        rle: ``{"size": [H, W], "counts": str | bytes | list[int]}``.

    Returns:
        The mask height, width and the run lengths.

    Raises:
        ValueError: if the object is not a well-formed RLE or its runs do not sum to ``H * W``.
    """
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError("an RLE must be a dict with 'size' [H, W] and 'counts'")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise ValueError(f"RLE 'size' must be [H, W] non-negative ints, got {size!r}")
    h, w = int(size[0]), int(size[1])
    raw = rle["counts"]
    if isinstance(raw, (str, bytes)):
        counts = rle_counts_from_string(raw)
    elif isinstance(raw, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in raw):
            raise ValueError("uncompressed RLE 'counts' must be a list of non-negative ints")
        counts = [int(c) for c in raw]
    else:
        raise ValueError(  # noqa: TRY004 (malformed file content)
            f"RLE 'counts' must be a string (compressed) or a list of ints, got "
            f"{type(raw).__name__}"
        )
    total = sum(counts)
    if total != h * w:
        raise ValueError(
            f"RLE runs sum to {total} pixels but 'size' {h}x{w} needs {h * w}; the RLE is corrupt "
            "or belongs to an image of another size"
        )
    return h, w, counts


def rle_decode(rle: Any) -> np.ndarray:
    """Decode a COCO RLE (compressed or uncompressed) into a boolean mask.

    Args:
        rle: ``{"size": [H, W], "counts": str | bytes | list[int]}``.

    Returns:
        ``(H, W)`` bool mask.

    Raises:
        ValueError: if the RLE is malformed (see :func:`rle_counts`).
    """
    h, w, counts = rle_counts(rle)
    values = (np.arange(len(counts)) % 2).astype(bool)  # runs alternate 0, 1, 0, ...
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64))  # (H*W,)
    return np.ascontiguousarray(flat.reshape(w, h).T)  # column-major -> (H, W)


# --------------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------------


def validate_polygons(polygons: Any) -> tuple[list[list[float]], int]:
    """Check COCO polygons and drop degenerate ones.

    A polygon with fewer than 3 points (< 6 numbers) cannot enclose area; real COCO files contain a
    few, and like detectron2 we drop them rather than fail. Anything else that is not a flat list of
    an even number of finite numbers is malformed.

    Args:
        polygons: the ``segmentation`` value, a list of ``[x0, y0, x1, y1, ...]`` lists.

    Returns:
        ``(kept_polygons, num_dropped_degenerate)``.

    Raises:
        ValueError: if the value is malformed (not a list of lists, odd length, non-numbers,
            non-finite values).
    """
    if not isinstance(polygons, list):
        raise ValueError(  # noqa: TRY004 (malformed file content)
            f"polygon segmentation must be a list of [x0, y0, x1, y1, ...] lists, got "
            f"{type(polygons).__name__}"
        )
    kept: list[list[float]] = []
    dropped = 0
    for j, poly in enumerate(polygons):
        if not isinstance(poly, list):
            raise ValueError(  # noqa: TRY004 (malformed file content)
                f"polygon {j} must be a flat list of numbers, got {type(poly).__name__}"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly):
            raise ValueError(f"polygon {j} holds a value that is not a number")
        if len(poly) % 2:
            raise ValueError(f"polygon {j} has an odd number of coordinates ({len(poly)})")
        if not all(math.isfinite(v) for v in poly):
            raise ValueError(f"polygon {j} holds a non-finite coordinate")
        if len(poly) < 6:
            dropped += 1
            continue
        kept.append([float(v) for v in poly])
    return kept, dropped


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons exactly as ``pycocotools`` does (union of all polygons).

    Args:
        polygons: flat ``[x0, y0, x1, y1, ...]`` lists of at least 3 points each (use
            :func:`validate_polygons` first on untrusted input); coordinates may lie outside the
            image (they are clipped).
        height: mask height H.
        width: mask width W.

    Returns:
        ``(H, W)`` bool mask.

    Raises:
        ValueError: if a polygon has fewer than 6 numbers or an odd count.
    """
    from pycocotools import mask as mask_utils  # deferred: keeps import of this module light

    polys = [[float(v) for v in p] for p in polygons]
    for j, p in enumerate(polys):
        if len(p) < 6 or len(p) % 2:
            raise ValueError(
                f"polygon {j} must have an even number (>= 6) of coordinates, got {len(p)}; "
                "filter polygons with validate_polygons() first"
            )
    if not polys:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(polys, int(height), int(width))
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode any COCO ``segmentation`` value (polygons, compressed or uncompressed RLE).

    Args:
        segmentation: list of polygons, or an RLE dict.
        height: expected mask height H (an RLE's ``size`` must match).
        width: expected mask width W.

    Returns:
        ``(H, W)`` bool mask.

    Raises:
        ValueError: if the value is malformed or an RLE's size differs from ``(height, width)``.
    """
    if isinstance(segmentation, dict):
        h, w, _ = rle_counts(segmentation)
        if (h, w) != (height, width):
            raise ValueError(f"RLE size {h}x{w} does not match the image size {height}x{width}")
        return rle_decode(segmentation)
    polys, _ = validate_polygons(segmentation)
    return polygons_to_mask(polys, height, width)


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def mask_to_bbox(mask: np.ndarray) -> list[int]:
    """Tight COCO box ``[x, y, w, h]`` of a mask (``[0, 0, 0, 0]`` for an empty mask).

    Args:
        mask: ``(H, W)`` mask.

    Returns:
        ``[x_min, y_min, x_max - x_min + 1, y_max - y_min + 1]`` as ints.
    """
    mask = np.asarray(mask, dtype=bool)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return [0, 0, 0, 0]
    rows = np.flatnonzero(mask.any(axis=1))
    return [
        int(cols[0]),
        int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    ]
