"""Deterministic synthetic segmentation data, written in the standard formats.

Scenes are procedural: irregular "stuff" regions (sky, grass, water, wall, floor, each with its own
texture, plus an occasional unlabelled "clutter" region that every format marks VOID / ignore)
under overlapping, textured "thing" shapes (circle, square, triangle, star, ring) with colour
jitter. Videos keep the background and move the shapes with constant velocities and spins; they
occlude each other and enter or leave the frame. Everything is drawn from
``numpy.random.Generator`` streams keyed by ``(seed, kind, index)``, so the same seed gives
byte-identical files and adding items does not change earlier ones. Shapes are polygons rasterised
by ``pycocotools``, so an unoccluded shape's polygon annotation decodes to exactly its
ground-truth mask.

Layout under ``out_dir`` (each as its publisher lays it out; ``{split}`` is ``train`` / ``val``):

* ``coco/images/{split}/<12-digit id>.png`` with ``coco/annotations/panoptic_{split}.json``,
  ``coco/annotations/panoptic_{split}/`` (RGB id PNGs),
  ``coco/annotations/panoptic_semseg_{split}/`` (uint8 contiguous label in category order,
  255 = VOID; Mask2Former's ``prepare_coco_semantic_annos_from_panoptic_annos.py`` form) and
  ``coco/annotations/instances_{split}.json`` (things only; polygons for unoccluded non-ring shapes,
  RLE otherwise, alternating compressed and uncompressed; ``iscrowd`` 0).
* ``ytvis/{split}.json`` + ``ytvis/{split}/JPEGImages/<video>/<frame>.png`` (YouTube-VIS 2019;
  frames named every 5th like the 2019 release; RLE per frame, ``null`` where absent).
* ``vipseg/panoptic_gt_VIPSeg_{split}.json`` + ``vipseg/images/<video>/`` +
  ``vipseg/panomasksRGB/<video>/`` (VIPSeg COCO-format release; category ids from 0; a segment keeps
  its id across frames).
* ``ade20k/images/{training,validation}/ADE_{train,val}_<8 digits>.png`` +
  ``ade20k/annotations/...`` (uint8, 0 = other) + ``ade20k/objectInfo150.txt`` (lists the synthetic
  classes in ADE's column format).
* ``synth_meta.json``: the generation parameters.

Unlike the real releases, the ``val`` splits carry annotations (so evaluation code can be tested).

CLI: ``rapsam synth --out DIR [--images N] [--videos N] [--size S] [--seed S] [--frames F]
[--val-fraction X] [--jpeg] [--overwrite]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rapsam.data.formats import (
    MAX_PANOPTIC_ID,
    id_to_rgb,
    mask_to_bbox,
    polygons_to_mask,
    rle_encode,
)

__all__ = [
    "CATEGORIES",
    "SynthCategory",
    "SynthImage",
    "SynthPaths",
    "SynthSegment",
    "SynthTrack",
    "SynthTruth",
    "SynthVideo",
    "generate",
    "main",
    "register",
]

META_FILE = "synth_meta.json"
_SUBDIRS = ("coco", "ytvis", "vipseg", "ade20k")
SPLITS = ("train", "val")
_ADE_SPLIT = {"train": "training", "val": "validation"}
_ADE_PREFIX = {"train": "ADE_train", "val": "ADE_val"}
_INFO = {"info": {"description": "rapsam synthetic data", "version": "1"}, "licenses": []}


@dataclass(frozen=True)
class SynthCategory:
    """One synthetic class and its id/name in each format.

    Attributes:
        name: canonical name (used by COCO, YouTube-VIS, VIPSeg and the ground truth).
        is_thing: thing (shape) or stuff (background region).
        coco_id: id in the COCO panoptic / instances JSON (non-contiguous, like COCO).
        ytvis_id: id in the YouTube-VIS JSON (things only).
        vipseg_id: id in the VIPSeg JSON (0-based, like VIPSeg).
        ade_name: name in ``objectInfo150.txt`` (ADE style synonyms).
        color: category colour of the panoptic JSON.
    """

    name: str
    is_thing: bool
    coco_id: int
    ytvis_id: int | None
    vipseg_id: int
    ade_name: str
    color: tuple[int, int, int]


#: The synthetic taxonomy; COCO lists things then stuff, like ``panoptic_coco_categories.json``.
CATEGORIES: tuple[SynthCategory, ...] = (
    SynthCategory("circle", True, 1, 1, 5, "circle", (220, 20, 60)),
    SynthCategory("square", True, 2, 3, 6, "square", (0, 0, 142)),
    SynthCategory("triangle", True, 3, 5, 7, "triangle", (250, 170, 30)),
    SynthCategory("star", True, 5, 4, 8, "star", (255, 215, 0)),
    SynthCategory("ring", True, 8, 2, 9, "ring", (128, 0, 128)),
    SynthCategory("sky", False, 100, None, 2, "sky", (70, 130, 180)),
    SynthCategory("grass", False, 105, None, 3, "grass", (107, 142, 35)),
    SynthCategory("water", False, 110, None, 4, "water", (0, 105, 148)),
    SynthCategory("wall", False, 120, None, 0, "wall", (150, 70, 50)),
    SynthCategory("floor", False, 125, None, 1, "floor, flooring", (180, 150, 110)),
)
_THINGS = tuple(i for i, c in enumerate(CATEGORIES) if c.is_thing)
_STUFF = tuple(i for i, c in enumerate(CATEGORIES) if not c.is_thing)
_BY_NAME = {c.name: i for i, c in enumerate(CATEGORIES)}
#: ADE class order (pixel value = position + 1).
ADE_ORDER: tuple[str, ...] = (
    "wall",
    "floor",
    "sky",
    "grass",
    "water",
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
)
_VOID = -1


# ------------------------------------------------------------------------------- truth types


@dataclass
class SynthSegment:
    """Ground truth of one image segment.

    Attributes:
        segment_id: panoptic id (in the panoptic PNG).
        category: canonical class name (see :data:`CATEGORIES`).
        is_thing: thing or stuff.
        mask: ``(H, W)`` bool visible region.
        ann_id: COCO instances annotation id (things), else ``None``.
    """

    segment_id: int
    category: str
    is_thing: bool
    mask: np.ndarray
    ann_id: int | None = None


@dataclass
class SynthImage:
    """Ground truth of one image: ``image`` is ``(H, W, 3)`` uint8 as written (PNG is lossless)."""

    split: str
    image_id: int
    file_name: str
    ade_file_name: str
    image: np.ndarray
    segments: list[SynthSegment]


@dataclass
class SynthTrack:
    """Ground truth of one video track (a thing or a stuff class).

    Attributes:
        segment_id: VIPSeg panoptic id (constant across frames).
        category: canonical class name.
        is_thing: thing or stuff.
        masks: ``(T, H, W)`` bool visible region per frame.
        ann_id: YouTube-VIS annotation id (things visible in some frame), else ``None``.
    """

    segment_id: int
    category: str
    is_thing: bool
    masks: np.ndarray
    ann_id: int | None = None


@dataclass
class SynthVideo:
    """Ground truth of one video; ``frames`` are ``(H, W, 3)`` uint8."""

    split: str
    video_id: int
    name: str
    frames: list[np.ndarray]
    ytvis_file_names: list[str]
    vipseg_frame_ids: list[str]
    tracks: list[SynthTrack]


@dataclass
class SynthTruth:
    """Everything written, in memory (for tests)."""

    images: list[SynthImage] = field(default_factory=list)
    videos: list[SynthVideo] = field(default_factory=list)


@dataclass(frozen=True)
class SynthPaths:
    """Where :func:`generate` wrote each format (per split where the format has splits)."""

    root: Path
    coco_image_dir: dict[str, Path]
    coco_panoptic_json: dict[str, Path]
    coco_panoptic_dir: dict[str, Path]
    coco_semseg_dir: dict[str, Path]
    coco_instances_json: dict[str, Path]
    ytvis_json: dict[str, Path]
    ytvis_video_dir: dict[str, Path]
    vipseg_json: dict[str, Path]
    vipseg_image_dir: Path
    vipseg_panoptic_dir: Path
    ade_image_dir: dict[str, Path]
    ade_ann_dir: dict[str, Path]
    ade_object_info: Path
    ade_classes: tuple[str, ...]
    truth: SynthTruth | None


def _layout(root: Path) -> dict[str, Any]:
    coco, ann = root / "coco", root / "coco" / "annotations"
    yt, vip, ade = root / "ytvis", root / "vipseg", root / "ade20k"
    return {
        "root": root,
        "coco_image_dir": {s: coco / "images" / s for s in SPLITS},
        "coco_panoptic_json": {s: ann / f"panoptic_{s}.json" for s in SPLITS},
        "coco_panoptic_dir": {s: ann / f"panoptic_{s}" for s in SPLITS},
        "coco_semseg_dir": {s: ann / f"panoptic_semseg_{s}" for s in SPLITS},
        "coco_instances_json": {s: ann / f"instances_{s}.json" for s in SPLITS},
        "ytvis_json": {s: yt / f"{s}.json" for s in SPLITS},
        "ytvis_video_dir": {s: yt / s / "JPEGImages" for s in SPLITS},
        "vipseg_json": {s: vip / f"panoptic_gt_VIPSeg_{s}.json" for s in SPLITS},
        "vipseg_image_dir": vip / "images",
        "vipseg_panoptic_dir": vip / "panomasksRGB",
        "ade_image_dir": {s: ade / "images" / _ADE_SPLIT[s] for s in SPLITS},
        "ade_ann_dir": {s: ade / "annotations" / _ADE_SPLIT[s] for s in SPLITS},
        "ade_object_info": ade / "objectInfo150.txt",
        "ade_classes": tuple(CATEGORIES[_BY_NAME[n]].ade_name for n in ADE_ORDER),
    }


# ------------------------------------------------------------------------------- rendering


class _Grid:
    """Pixel-centre coordinate grids of an S x S canvas."""

    def __init__(self, size: int) -> None:
        self.size = size
        yi, xi = np.mgrid[0:size, 0:size]
        self.yi, self.xi = yi, xi  # (S, S) int64
        self.yy, self.xx = yi.astype(np.float32), xi.astype(np.float32)
        self.v = self.yy / size  # (S, S) in [0, 1)


def _upsample(low: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize a float32 2-D array to ``(size, size)`` (bilinear, or nearest)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(low, dtype=np.float32))
    res = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(im.resize((size, size), res), dtype=np.float32)


def _smooth(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Smooth noise: a ``cells x cells`` normal field upsampled to ``(size, size)``."""
    return _upsample(rng.standard_normal((cells, cells)), size)


def _stuff_texture(name: str, rng: np.random.Generator, g: _Grid) -> np.ndarray:
    """``(S, S, 3)`` float32 texture of a stuff class (or ``"clutter"`` for VOID)."""
    s = g.size
    jit = rng.normal(0.0, 10.0, 3).astype(np.float32)
    if name == "sky":
        top = np.array([70, 130, 220], np.float32) + jit
        bottom = np.array([175, 210, 245], np.float32) + jit
        tex = top * (1 - g.v[..., None]) + bottom * g.v[..., None]
        clouds = np.clip(_smooth(rng, 5, s), 0.0, None)[..., None] * 55.0
        return tex + clouds
    if name == "grass":
        noise = 14.0 * rng.standard_normal((s, s), dtype=np.float32)
        blades = np.sin(g.xx * 2.1 + 3.0 * _smooth(rng, 6, s)) * 14.0
        base = np.array([60, 140, 50], np.float32) + jit
        return base + np.stack([0.5 * noise, noise + blades, 0.5 * noise], axis=-1)
    if name == "water":
        fx, fy = rng.uniform(2.0, 5.0, 2)
        phase = 2 * np.pi * (fx * g.xx + fy * g.yy) / s + 2.0 * _smooth(rng, 4, s)
        waves = np.sin(phase)[..., None] * np.array([6, 18, 24], np.float32)
        return np.array([35, 95, 175], np.float32) + jit + waves
    if name == "wall":
        bh = max(3, s // 12)
        bw = 2 * bh
        row = g.yi // bh
        shifted = g.xi + (row % 2) * (bw // 2)
        col = shifted // bw
        brick_jit = 14.0 * rng.standard_normal((row.max() + 1, col.max() + 1), np.float32)
        mortar = ((g.yi % bh) == 0) | ((shifted % bw) == 0)
        brick = np.array([150, 65, 45], np.float32) + jit + brick_jit[row, col][..., None]
        return np.where(mortar[..., None], np.float32(200.0), brick)
    if name == "floor":
        tile = max(3, s // 8)
        checker = (((g.xi // tile) + (g.yi // tile)) % 2).astype(np.float32)[..., None]
        a = np.array([205, 175, 125], np.float32) + jit
        b = np.array([135, 105, 70], np.float32) + jit
        return a * checker + b * (1 - checker) + 4.0 * rng.standard_normal((s, s, 1), np.float32)
    if name == "clutter":
        chans = [_upsample(rng.uniform(0, 255, (8, 8)), s, nearest=True) for _ in range(3)]
        return np.stack(chans, axis=-1)
    raise ValueError(f"no texture for {name!r}")  # pragma: no cover - internal


@dataclass
class _Background:
    image: np.ndarray  # (S, S, 3) float32
    region: np.ndarray  # (S, S) int64: category index into CATEGORIES, or _VOID


def _make_background(rng: np.random.Generator, g: _Grid) -> _Background:
    """Irregular stuff regions (argmax of smooth random fields) with per-class textures."""
    s = g.size
    n = int(rng.integers(2, 5))
    cats = [int(c) for c in rng.choice(np.array(_STUFF), size=n, replace=False)]
    with_void = bool(rng.random() < 0.3)
    names = [CATEGORIES[c].name for c in cats] + (["clutter"] if with_void else [])
    fields = []
    for name in names:
        f = _smooth(rng, 3, s) + 0.35 * _smooth(rng, 9, s)
        if name == "sky":
            f = f + 3.0 * (0.5 - g.v)
        elif name in ("floor", "grass"):
            f = f + 2.0 * (g.v - 0.5)
        elif name == "clutter":
            f = f - 0.6  # keep VOID regions small
        fields.append(f)
    owner = np.argmax(np.stack(fields), axis=0)  # (S, S)
    image = np.zeros((s, s, 3), np.float32)
    region = np.full((s, s), _VOID, np.int64)
    for k, name in enumerate(names):
        sel = owner == k
        if not sel.any():
            continue
        image[sel] = _stuff_texture(name, rng, g)[sel]
        if name != "clutter":
            region[sel] = cats[k]
    return _Background(image, region)


@dataclass
class _Shape:
    """A thing's class, size and appearance (pose comes separately)."""

    cat: int  # index into CATEGORIES
    radius: float
    color: np.ndarray  # (3,) float32
    pattern: int  # 0 stripes, 1 dots, 2 gradient, 3 plain
    freq: float
    amp: float


def _random_shape(rng: np.random.Generator, size: int) -> _Shape:
    cat = int(rng.choice(np.array(_THINGS)))
    base = np.array(CATEGORIES[cat].color, np.float32)
    return _Shape(
        cat=cat,
        radius=float(rng.uniform(0.06, 0.2) * size),
        color=np.clip(base + rng.normal(0.0, 22.0, 3), 0, 255).astype(np.float32),
        pattern=int(rng.integers(0, 4)),
        freq=float(rng.uniform(0.5, 1.5)),
        amp=float(rng.uniform(15.0, 40.0)),
    )


def _ngon(cx: float, cy: float, radii: np.ndarray, theta: float) -> list[float]:
    """Flat ``[x0, y0, ...]`` polygon, coordinates rounded to 1/100 px (exact through JSON)."""
    ang = theta + 2 * np.pi * np.arange(len(radii)) / len(radii)
    xs = np.round(cx + radii * np.cos(ang), 2)
    ys = np.round(cy + radii * np.sin(ang), 2)
    return [float(v) for xy in zip(xs, ys) for v in xy]


def _shape_geometry(
    shape: _Shape, cx: float, cy: float, theta: float, size: int
) -> tuple[np.ndarray, list[float] | None]:
    """Full (unoccluded) mask of a shape, and its single polygon when it has one.

    Returns:
        ``((S, S) bool mask, polygon or None)``; rings have a hole so they have no polygon.
    """
    name, r = CATEGORIES[shape.cat].name, shape.radius
    if name == "ring":
        outer = _ngon(cx, cy, np.full(24, r), theta)
        inner = _ngon(cx, cy, np.full(24, 0.55 * r), theta)
        mask = polygons_to_mask([outer], size, size) & ~polygons_to_mask([inner], size, size)
        return mask, None
    radii = {
        "circle": np.full(24, r),
        "square": np.full(4, r),
        "triangle": np.full(3, r),
        "star": np.tile([r, 0.45 * r], 5),
    }[name]
    poly = _ngon(cx, cy, radii, theta)
    return polygons_to_mask([poly], size, size), poly


def _shape_texture(
    shape: _Shape, g: _Grid, cx: float, cy: float, theta: float, box: tuple[slice, slice]
) -> np.ndarray:
    """``(h, w, 3)`` texture over ``box`` in the shape's own frame (it moves and turns with it)."""
    c, s = np.cos(theta), np.sin(theta)
    xx, yy = g.xx[box], g.yy[box]
    lx = ((xx - cx) * c + (yy - cy) * s) / shape.radius  # (h, w) object-frame coordinates
    ly = (-(xx - cx) * s + (yy - cy) * c) / shape.radius
    if shape.pattern == 0:
        mod = np.sin(2 * np.pi * shape.freq * 2 * lx)
    elif shape.pattern == 1:
        mod = (
            np.sin(2 * np.pi * shape.freq * 2 * lx) * np.sin(2 * np.pi * shape.freq * 2 * ly) > 0.3
        ).astype(np.float32) * 2 - 1
    elif shape.pattern == 2:
        mod = np.clip(lx, -1.0, 1.0)
    else:
        mod = np.zeros_like(lx)
    return shape.color + (shape.amp * mod)[..., None]


def _compose(
    bg: _Background,
    g: _Grid,
    shapes: list[_Shape],
    poses: list[tuple[float, float, float]],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[list[float] | None]]:
    """Paint shapes back to front over the background.

    Returns:
        ``(image uint8 (S, S, 3), owner (S, S) int64 (-1 = background), full masks, polygons)``.
    """
    s = g.size
    image = bg.image.copy()
    owner = np.full((s, s), -1, np.int64)
    fulls: list[np.ndarray] = []
    polys: list[list[float] | None] = []
    for k, (shape, (cx, cy, th)) in enumerate(zip(shapes, poses)):
        full, poly = _shape_geometry(shape, cx, cy, th, s)
        x, y, w, h = mask_to_bbox(full)
        if w:
            box = (slice(y, y + h), slice(x, x + w))
            sub = full[box]  # (h, w)
            image[box][sub] = _shape_texture(shape, g, cx, cy, th, box)[sub]
            owner[box][sub] = k
        fulls.append(full)
        polys.append(poly)
    image += 3.0 * rng.standard_normal(image.shape, dtype=np.float32)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), owner, fulls, polys


def _distinct_ids(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` distinct random panoptic ids in ``[1, 2**24)`` (they exercise all three channels)."""
    return [int(v) + 1 for v in rng.choice(MAX_PANOPTIC_ID, size=n, replace=False)]


# ------------------------------------------------------------------------------- scenes


@dataclass
class _ImageScene:
    image: np.ndarray
    segments: list[SynthSegment]
    polygons: dict[int, list[float]]  # segment_id -> polygon, for unoccluded polygon shapes


def _image_scene(rng: np.random.Generator, g: _Grid) -> _ImageScene:
    s = g.size
    bg = _make_background(rng, g)
    n = int(rng.integers(2, 7))
    shapes = [_random_shape(rng, s) for _ in range(n)]
    poses = [
        (
            float(rng.uniform(0.05, 0.95) * s),
            float(rng.uniform(0.05, 0.95) * s),
            float(rng.uniform(0, 2 * np.pi)),
        )
        for _ in range(n)
    ]
    image, owner, fulls, polys = _compose(bg, g, shapes, poses, rng)
    stuff_present = [c for c in _STUFF if ((bg.region == c) & (owner < 0)).any()]
    ids = _distinct_ids(rng, len(stuff_present) + n)
    segments: list[SynthSegment] = []
    polygons: dict[int, list[float]] = {}
    for k, shape in enumerate(shapes):
        vis = owner == k
        if not vis.any():
            continue  # fully occluded
        cat = CATEGORIES[shape.cat]
        segments.append(SynthSegment(ids[k], cat.name, True, vis))
        poly = polys[k]
        inside = poly is not None and min(poly) >= 0 and max(poly) <= s
        if inside and np.array_equal(vis, fulls[k]):
            polygons[ids[k]] = poly  # type: ignore[assignment]
    for j, c in enumerate(stuff_present):
        segments.append(
            SynthSegment(ids[n + j], CATEGORIES[c].name, False, (bg.region == c) & (owner < 0))
        )
    return _ImageScene(image, segments, polygons)


@dataclass
class _VideoScene:
    frames: list[np.ndarray]
    tracks: list[SynthTrack]


def _video_scene(rng: np.random.Generator, g: _Grid, num_frames: int) -> _VideoScene:
    s = g.size
    bg = _make_background(rng, g)
    n = int(rng.integers(2, 6))
    shapes = [_random_shape(rng, s) for _ in range(n)]
    p0 = rng.uniform(-0.15 * s, 1.15 * s, (n, 2))  # start / end centres, some outside the frame
    p1 = rng.uniform(-0.15 * s, 1.15 * s, (n, 2))
    th0 = rng.uniform(0, 2 * np.pi, n)
    omega = rng.uniform(-0.3, 0.3, n)
    frames: list[np.ndarray] = []
    thing_masks = np.zeros((n, num_frames, s, s), bool)  # (N, T, S, S)
    stuff_masks = {c: np.zeros((num_frames, s, s), bool) for c in _STUFF}
    for t in range(num_frames):
        a = t / (num_frames - 1)
        poses = [
            (
                float(p0[k, 0] + a * (p1[k, 0] - p0[k, 0])),
                float(p0[k, 1] + a * (p1[k, 1] - p0[k, 1])),
                float(th0[k] + omega[k] * t),
            )
            for k in range(n)
        ]
        image, owner, _, _ = _compose(bg, g, shapes, poses, rng)
        frames.append(image)
        for k in range(n):
            thing_masks[k, t] = owner == k
        for c in _STUFF:
            stuff_masks[c][t] = (bg.region == c) & (owner < 0)
    tracks: list[SynthTrack] = []
    for k, shape in enumerate(shapes):
        if thing_masks[k].any():
            cat = CATEGORIES[shape.cat]
            tracks.append(SynthTrack(0, cat.name, True, thing_masks[k]))
    for c in _STUFF:
        if stuff_masks[c].any():
            tracks.append(SynthTrack(0, CATEGORIES[c].name, False, stuff_masks[c]))
    for tr, sid in zip(tracks, _distinct_ids(rng, len(tracks))):
        tr.segment_id = sid
    return _VideoScene(frames, tracks)


# ------------------------------------------------------------------------------- writing


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _image_bytes(array: np.ndarray, fmt: str) -> bytes:
    if fmt == "png":
        return _png_bytes(array)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"))


def _coco_categories(panoptic: bool) -> list[dict[str, Any]]:
    cats = []
    for c in CATEGORIES:
        if not panoptic and not c.is_thing:
            continue
        entry: dict[str, Any] = {
            "supercategory": "shape" if c.is_thing else "scene",
            "id": c.coco_id,
            "name": c.name,
        }
        if panoptic:
            entry["isthing"] = int(c.is_thing)
            entry["color"] = list(c.color)
        cats.append(entry)
    return cats


def _split_of(index: int, total: int, val_fraction: float) -> str:
    n_val = round(total * val_fraction)
    return "train" if index < total - n_val else "val"


def _validate_args(
    images: int, videos: int, size: int, frames: int, val_fraction: float, image_format: str
) -> None:
    for name, v in (("images", images), ("videos", videos)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    if not isinstance(size, int) or not 32 <= size <= 4096:
        raise ValueError(f"size must be an int in [32, 4096] pixels, got {size!r}")
    if not isinstance(frames, int) or not 2 <= frames <= 1000:
        raise ValueError(f"frames must be an int in [2, 1000], got {frames!r}")
    if not 0.0 <= float(val_fraction) <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction!r}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")


def _prepare_out_dir(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder; choose another --out")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{root} is not empty; choose an empty folder or pass overwrite=True (--overwrite) "
                "to replace an earlier synthetic dataset there"
            )
        if not (root / META_FILE).is_file():
            raise FileExistsError(
                f"{root} has no {META_FILE}, so it was not written by rapsam synth; refusing to "
                "delete anything there. Choose an empty folder"
            )
        for sub in _SUBDIRS:
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / META_FILE).unlink()
    root.mkdir(parents=True, exist_ok=True)


def _write_images(
    lay: dict[str, Any],
    g: _Grid,
    images: int,
    seed: int,
    val_fraction: float,
    image_format: str,
    truth: SynthTruth | None,
) -> None:
    """Render the still images; write COCO panoptic / semantic / instances and ADE20K."""
    size = g.size
    ext = "png" if image_format == "png" else "jpg"
    coco_index = {c.coco_id: k for k, c in enumerate(CATEGORIES)}  # contiguous = CATEGORIES order
    ade_value = {name: k + 1 for k, name in enumerate(ADE_ORDER)}
    pan_json = {s: {"images": [], "annotations": []} for s in SPLITS}
    inst_json = {s: {"images": [], "annotations": []} for s in SPLITS}
    ade_stats = {
        s: {"pixels": np.zeros(len(ADE_ORDER) + 1), "images": np.zeros(len(ADE_ORDER) + 1)}
        for s in SPLITS
    }
    ann_id = 0
    ade_counter = {s: 0 for s in SPLITS}
    for i in range(images):
        split = _split_of(i, images, val_fraction)
        rng = np.random.default_rng([seed, 0, i])
        scene = _image_scene(rng, g)
        image_id = i + 1
        stem = f"{image_id:012d}"
        file_name = f"{stem}.{ext}"
        ade_counter[split] += 1
        ade_name = f"{_ADE_PREFIX[split]}_{ade_counter[split]:08d}.{ext}"
        img_bytes = _image_bytes(scene.image, image_format)
        _write(lay["coco_image_dir"][split] / file_name, img_bytes)
        _write(lay["ade_image_dir"][split] / ade_name, img_bytes)

        ids = np.zeros((size, size), np.int64)
        sem = np.full((size, size), 255, np.uint8)
        ade = np.zeros((size, size), np.uint8)
        seg_infos = []
        for seg in scene.segments:
            cat = CATEGORIES[_BY_NAME[seg.category]]
            ids[seg.mask] = seg.segment_id
            sem[seg.mask] = coco_index[cat.coco_id]
            ade[seg.mask] = ade_value[seg.category]
            seg_infos.append(
                {
                    "id": seg.segment_id,
                    "category_id": cat.coco_id,
                    "area": int(seg.mask.sum()),
                    "bbox": mask_to_bbox(seg.mask),
                    "iscrowd": 0,
                }
            )
            if seg.is_thing:
                ann_id += 1
                seg.ann_id = ann_id
                if seg.segment_id in scene.polygons:
                    segmentation: Any = [scene.polygons[seg.segment_id]]
                else:
                    segmentation = rle_encode(seg.mask, compressed=bool(ann_id % 2))
                inst_json[split]["annotations"].append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": cat.coco_id,
                        "segmentation": segmentation,
                        "area": int(seg.mask.sum()),
                        "bbox": [float(v) for v in mask_to_bbox(seg.mask)],
                        "iscrowd": 0,
                    }
                )
        _write(lay["coco_panoptic_dir"][split] / f"{stem}.png", _png_bytes(id_to_rgb(ids)))
        _write(lay["coco_semseg_dir"][split] / f"{stem}.png", _png_bytes(sem))
        _write(lay["ade_ann_dir"][split] / f"{Path(ade_name).stem}.png", _png_bytes(ade))
        counts = np.bincount(ade.ravel(), minlength=len(ADE_ORDER) + 1)
        ade_stats[split]["pixels"] += counts
        ade_stats[split]["images"] += counts > 0
        info = {"id": image_id, "file_name": file_name, "width": size, "height": size}
        pan_json[split]["images"].append(info)
        inst_json[split]["images"].append(dict(info))
        pan_json[split]["annotations"].append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": seg_infos}
        )
        if truth is not None:
            truth.images.append(
                SynthImage(split, image_id, file_name, ade_name, scene.image, scene.segments)
            )
    if images:
        for s in SPLITS:
            pan_json[s]["categories"] = _coco_categories(panoptic=True)
            inst_json[s]["categories"] = _coco_categories(panoptic=False)
            _write_json(lay["coco_panoptic_json"][s], {**_INFO, **pan_json[s]})
            _write_json(lay["coco_instances_json"][s], {**_INFO, **inst_json[s]})
            lay["coco_image_dir"][s].mkdir(parents=True, exist_ok=True)
            lay["coco_panoptic_dir"][s].mkdir(parents=True, exist_ok=True)
            lay["ade_image_dir"][s].mkdir(parents=True, exist_ok=True)
            lay["ade_ann_dir"][s].mkdir(parents=True, exist_ok=True)
        _write_ade_object_info(lay["ade_object_info"], ade_stats)


def _write_videos(
    lay: dict[str, Any],
    g: _Grid,
    videos: int,
    frames: int,
    seed: int,
    val_fraction: float,
    image_format: str,
    truth: SynthTruth | None,
) -> None:
    """Render the videos; write YouTube-VIS and VIPSeg."""
    size = g.size
    ext = "png" if image_format == "png" else "jpg"
    yt_json = {s: {"videos": [], "annotations": []} for s in SPLITS}
    vip_json = {s: {"videos": [], "annotations": []} for s in SPLITS}
    yt_ann_id = 0
    for v in range(videos):
        split = _split_of(v, videos, val_fraction)
        rng = np.random.default_rng([seed, 1, v])
        scene = _video_scene(rng, g, frames)
        video_id = v + 1
        name = f"{video_id:04x}{rng.bytes(3).hex()}"
        yt_names = [f"{name}/{5 * t:05d}.{ext}" for t in range(frames)]
        vip_ids = [f"{t:08d}" for t in range(frames)]
        vip_frames = []
        for t, frame in enumerate(scene.frames):
            fb = _image_bytes(frame, image_format)
            _write(lay["ytvis_video_dir"][split] / yt_names[t], fb)
            _write(lay["vipseg_image_dir"] / name / f"{vip_ids[t]}.{ext}", fb)
            ids = np.zeros((size, size), np.int64)
            infos = []
            for tr in scene.tracks:
                m = tr.masks[t]
                if not m.any():
                    continue
                ids[m] = tr.segment_id
                cat = CATEGORIES[_BY_NAME[tr.category]]
                infos.append(
                    {
                        "id": tr.segment_id,
                        "category_id": cat.vipseg_id,
                        "iscrowd": 0,
                        "area": int(m.sum()),
                        "bbox": mask_to_bbox(m),
                    }
                )
            _write(
                lay["vipseg_panoptic_dir"] / name / f"{vip_ids[t]}.png", _png_bytes(id_to_rgb(ids))
            )
            vip_frames.append(
                {"image_id": vip_ids[t], "file_name": f"{vip_ids[t]}.png", "segments_info": infos}
            )
        vip_json[split]["videos"].append(
            {
                "video_id": name,
                "images": [
                    {"id": fid, "width": size, "height": size, "file_name": f"{fid}.png"}
                    for fid in vip_ids
                ],
            }
        )
        vip_json[split]["annotations"].append({"video_id": name, "annotations": vip_frames})
        yt_json[split]["videos"].append(
            {
                "id": video_id,
                "width": size,
                "height": size,
                "length": frames,
                "file_names": yt_names,
            }
        )
        for tr in scene.tracks:
            if not tr.is_thing:
                continue
            yt_ann_id += 1
            tr.ann_id = yt_ann_id
            present = tr.masks.any(axis=(1, 2))  # (T,)
            compressed = bool(yt_ann_id % 2)
            yt_json[split]["annotations"].append(
                {
                    "id": yt_ann_id,
                    "video_id": video_id,
                    "category_id": CATEGORIES[_BY_NAME[tr.category]].ytvis_id,
                    "iscrowd": 0,
                    "width": size,
                    "height": size,
                    "length": frames,
                    "segmentations": [
                        rle_encode(m, compressed) if p else None for m, p in zip(tr.masks, present)
                    ],
                    "areas": [int(m.sum()) if p else None for m, p in zip(tr.masks, present)],
                    "bboxes": [
                        [float(b) for b in mask_to_bbox(m)] if p else None
                        for m, p in zip(tr.masks, present)
                    ],
                }
            )
        if truth is not None:
            truth.videos.append(
                SynthVideo(split, video_id, name, scene.frames, yt_names, vip_ids, scene.tracks)
            )
    if videos:
        yt_cats = sorted(
            (
                {"supercategory": "shape", "id": c.ytvis_id, "name": c.name}
                for c in CATEGORIES
                if c.is_thing
            ),
            key=lambda d: d["id"],
        )
        vip_cats = sorted(
            (
                {
                    "id": c.vipseg_id,
                    "name": c.name,
                    "isthing": int(c.is_thing),
                    "color": list(c.color),
                }
                for c in CATEGORIES
            ),
            key=lambda d: d["id"],
        )
        for s in SPLITS:
            yt_json[s]["categories"] = yt_cats
            vip_json[s]["categories"] = vip_cats
            _write_json(lay["ytvis_json"][s], {**_INFO, **yt_json[s]})
            _write_json(lay["vipseg_json"][s], vip_json[s])
            lay["ytvis_video_dir"][s].mkdir(parents=True, exist_ok=True)


def generate(
    out_dir: str | os.PathLike[str],
    images: int = 200,
    videos: int = 20,
    size: int = 128,
    seed: int = 0,
    frames: int = 10,
    val_fraction: float = 0.2,
    *,
    image_format: str = "png",
    keep_truth: bool = True,
    overwrite: bool = False,
) -> SynthPaths:
    """Write a synthetic dataset in every supported format.

    Args:
        out_dir: output folder (created; must be empty unless ``overwrite``).
        images: number of still images (shared by COCO panoptic / instances and ADE20K).
        videos: number of videos (shared by YouTube-VIS and VIPSeg).
        size: side S of the square images / frames, in pixels.
        seed: master seed; the same seed gives byte-identical files.
        frames: frames per video.
        val_fraction: fraction of images and of videos put in ``val`` (the last ones).
        image_format: ``"png"`` (lossless, the default, keeps pixel tests exact) or ``"jpg"``
            (images and frames only; label maps stay PNG).
        keep_truth: keep the ground truth in memory (``SynthPaths.truth``); turn off for large
            runs.
        overwrite: replace an earlier synthetic dataset in ``out_dir`` (only a folder holding
            ``synth_meta.json`` is cleared).

    Returns:
        The paths written, and the ground truth when ``keep_truth``.

    Raises:
        ValueError: for out-of-range arguments.
        FileExistsError: if ``out_dir`` is not empty and ``overwrite`` is off, or it is not a
            synthetic dataset.

    Example:
        >>> paths = generate("/tmp/synth", images=8, videos=2, size=64)  # doctest: +SKIP
        >>> CocoPanopticDataset(paths.coco_panoptic_json["train"], paths.coco_image_dir["train"],
        ...                     paths.coco_panoptic_dir["train"])  # doctest: +SKIP
    """
    _validate_args(images, videos, size, frames, val_fraction, image_format)
    root = Path(out_dir)
    _prepare_out_dir(root, overwrite)
    lay = _layout(root)
    truth = SynthTruth() if keep_truth else None
    g = _Grid(size)
    _write_images(lay, g, images, seed, val_fraction, image_format, truth)
    _write_videos(lay, g, videos, frames, seed, val_fraction, image_format, truth)

    params = {
        "images": images,
        "videos": videos,
        "size": size,
        "seed": seed,
        "frames": frames,
        "val_fraction": val_fraction,
        "image_format": image_format,
    }
    _write_json(
        root / META_FILE, {"generator": "rapsam.data.synth", "format_version": 1, "params": params}
    )
    return SynthPaths(**lay, truth=truth)


def _write_ade_object_info(path: Path, stats: dict[str, dict[str, np.ndarray]]) -> None:
    """``objectInfo150.txt`` columns: Idx, Ratio (pixel share), Train / Val (image counts), Name."""
    total = stats["train"]["pixels"].sum() + stats["val"]["pixels"].sum()
    lines = ["Idx\tRatio\tTrain\tVal\tName"]
    for k, name in enumerate(ADE_ORDER, start=1):
        pix = stats["train"]["pixels"][k] + stats["val"]["pixels"][k]
        ratio = pix / total if total else 0.0
        lines.append(
            f"{k}\t{ratio:.4f}\t{int(stats['train']['images'][k])}\t"
            f"{int(stats['val']['images'][k])}\t{CATEGORIES[_BY_NAME[name]].ade_name}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------- CLI


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder (empty or new)")
    p.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--videos", type=int, default=20, help="number of videos (default 20)")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--frames", type=int, default=10, help="frames per video (default 10)")
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of items in val (default 0.2)"
    )
    p.add_argument("--jpeg", action="store_true", help="write images as JPEG instead of PNG")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier synthetic dataset in --out"
    )


def _run(args: argparse.Namespace) -> int:
    """Entry point of the ``synth`` subcommand; returns the exit status."""
    try:
        paths = generate(
            args.out,
            images=args.images,
            videos=args.videos,
            size=args.size,
            seed=args.seed,
            frames=args.frames,
            val_fraction=args.val_fraction,
            image_format="jpg" if args.jpeg else "png",
            keep_truth=False,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        print(f"rapsam synth: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.images} images and {args.videos} videos under {paths.root}")
    for label, sub in (
        ("COCO panoptic + instances", "coco"),
        ("YouTube-VIS 2019", "ytvis"),
        ("VIPSeg", "vipseg"),
        ("ADE20K", "ade20k"),
    ):
        print(f"  {label:<26} {paths.root / sub}")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand to an ``argparse`` sub-parser set.

    The parser's ``func`` default is the handler: ``args.func(args)`` returns the exit status.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The new sub-parser.
    """
    p = subparsers.add_parser(
        "synth",
        help="write a small synthetic dataset in COCO / YouTube-VIS / VIPSeg / ADE20K formats",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(p)
    p.set_defaults(func=_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m rapsam.data.synth ...``)."""
    parser = argparse.ArgumentParser(prog="rapsam-synth")
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
