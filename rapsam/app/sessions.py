"""Per-browser-session logic of ``rapsam serve`` (no gradio here, so it is unit-testable).

RAP-SAM (arXiv 2401.10228) answers prompts with a cached image feature map: the backbone and neck
run once per image (``InteractivePredictor.set_image``) and each click only runs the prompt encoder,
the three decoder stages and the prompt adapter. A :class:`ClickSession` keeps that cache plus the
clicks and box of the object being segmented, so the web page re-decodes on every click and never
re-encodes the image. :func:`run_panoptic` and :class:`VideoSession` serve the panoptic and video
tabs. Every user-facing problem (an image or video over the server's limits, a prompt that cannot
be decoded) raises ``ValueError`` with a message meant to be shown as it is.

Coordinates are pixels of the image as shown (x right, y down); a click at pixel (x, y) is the
point (x, y), as in segment-anything's demo.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Colour of the interactive mask (the azure of SAM's notebooks).
MASK_COLOR: tuple[int, int, int] = (30, 144, 255)
#: Click modes of the interactive and video tabs.
CLICK_MODES: tuple[str, ...] = ("positive", "negative", "box")

ProgressFn = Callable[[int, int | None], None]


class LimitError(ValueError):
    """An upload exceeds a limit of this server (the message says which and what to do)."""


@dataclass(frozen=True)
class Limits:
    """Upload limits of one server.

    Attributes:
        max_upload_mb: largest uploaded file (enforced by gradio before the file reaches Python).
        max_image_side: images whose longer side exceeds this are downscaled to it (with a notice).
        max_video_seconds: longest video accepted.
        max_video_frames: most frames accepted (whatever the frame rate).
        max_video_side: video frames are downscaled so their longer side is at most this.
    """

    max_upload_mb: float = 25.0
    max_image_side: int = 2048
    max_video_seconds: float = 20.0
    max_video_frames: int = 300
    max_video_side: int = 640

    def __post_init__(self) -> None:
        for name in (
            "max_upload_mb",
            "max_image_side",
            "max_video_seconds",
            "max_video_frames",
            "max_video_side",
        ):
            v = getattr(self, name)
            if (
                not isinstance(v, (int, float))
                or isinstance(v, bool)
                or not math.isfinite(v)
                or v <= 0
            ):
                raise ValueError(f"Limits.{name} must be a positive number, got {v!r}")


def safe_stem(name: str | None, default: str = "image") -> str:
    """A file-name stem made of ``[A-Za-z0-9_-]`` from an uploaded file's name."""
    stem = Path(str(name or "")).stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:48]
    return stem or default


def fit_image(image: Any, limits: Limits) -> tuple[np.ndarray, str | None]:
    """Validate an uploaded image and bring it within ``limits``.

    Args:
        image: anything ``rapsam.io.as_rgb_array`` reads ((H, W), (H, W, 3|4) arrays, PIL images).

    Returns:
        ((H', W', 3) uint8 RGB, a notice when the image was downscaled, else None).

    Raises:
        ValueError: the upload is not an image.
    """
    from ..io.image import as_rgb_array

    if image is None:
        raise ValueError("no image received: upload a PNG/JPEG file or pick a sample")
    try:
        rgb = as_rgb_array(image)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"could not read the upload as an image ({e}); upload a PNG or JPEG file"
        ) from None
    h, w = rgb.shape[:2]
    side = int(limits.max_image_side)
    if max(h, w) <= side:
        return rgb, None
    from PIL import Image

    s = side / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    return small, (
        f"The image is {w}x{h} pixels; this server works on images up to {side} pixels on the longer "
        f"side, so it was downscaled to {nw}x{nh} (masks are at that size; the server option "
        f"--max-image-side changes the limit)."
    )


def view_scale(size: tuple[int, int], view_side: int | None) -> float:
    """Display upscale factor: small images are shown with their longer side ``view_side`` (never shrunk)."""
    if not view_side:
        return 1.0
    return max(1.0, float(view_side) / max(size))


def upscale(image: np.ndarray, scale: float, *, mask: bool = False) -> np.ndarray:
    """Resize (H, W, 3) uint8 (bilinear) or an (H, W) bool mask (bilinear, then > 0.5) by ``scale``."""
    if scale == 1.0:
        return image
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if mask:
        f = Image.fromarray(image.astype(np.float32))
        return np.asarray(f.resize(size, Image.BILINEAR)) > 0.5
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def to_view(xy: np.ndarray, scale: float) -> np.ndarray:
    """Image pixel coordinates (x, y) -> coordinates in the upscaled view (pixel centres kept)."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5


def from_view(x: float, y: float, scale: float, size: tuple[int, int]) -> tuple[float, float]:
    """A click at view pixel (x, y) -> image pixel coordinates, clipped to the (H, W) image."""
    h, w = size
    ix = min(max((float(x) + 0.5) / scale - 0.5, 0.0), w - 1.0)
    iy = min(max((float(y) + 0.5) / scale - 0.5, 0.0), h - 1.0)
    return ix, iy


# ------------------------------------------------------------------------------------------ interactive
class ClickSession:
    """One user's click-to-segment state: the image, its cached embedding, the prompts, the mask.

    Args:
        model: a ``RapSam`` (shared by all sessions; only read).
        image_scale: test resize of the ``InteractivePredictor`` ("model" = the model config's).
        view_side: ``render`` upscales images whose longer side is smaller than this (None: never);
            clicks on the rendered view map back with ``view_to_image``.

    Example::

        s = ClickSession(model)
        s.set_image(rgb)                # encoder runs here, once
        s.click(120, 80, "positive")    # decoder only
        s.click(300, 90, "negative")
        overlay = s.render()            # (H, W, 3) uint8
    """

    def __init__(
        self,
        model: Any,
        image_scale: tuple[int, int] | None | str = "model",
        view_side: int | None = None,
    ) -> None:
        from ..predictor.interactive import InteractivePredictor

        self.predictor = InteractivePredictor(model, image_scale=image_scale)
        self.view_side = view_side
        self.image: np.ndarray | None = None
        self._view: np.ndarray | None = None  # the upscaled image, cached per image
        self.name = "image"
        self.points: list[tuple[float, float]] = []
        self.labels: list[int] = []
        self.box: tuple[float, float, float, float] | None = None
        self.corner: tuple[float, float] | None = None
        self._undo: list[tuple[str, Any]] = []
        self.result: Any = None  # InstanceResult with one mask, or None
        self.encode_ms = 0.0
        self.decode_ms = 0.0
        self.encode_count = 0  # how many times the encoder ran (once per image)
        self.decode_count = 0

    # ---------------------------------------------------------------------------------- image
    def set_image(self, image: np.ndarray, name: str = "image") -> None:
        """Cache the embedding of ``image`` ((H, W, 3) uint8 RGB) and clear the prompts."""
        t0 = time.perf_counter()
        self.predictor.set_image(image)
        self.encode_ms = 1e3 * (time.perf_counter() - t0)
        self.encode_count += 1
        self.image = np.ascontiguousarray(image)
        self._view = None
        self.name = safe_stem(name)
        self.clear()

    def require_image(self) -> np.ndarray:
        if self.image is None:
            raise ValueError("no image yet: upload one or pick a sample first")
        return self.image

    @property
    def view_scale(self) -> float:
        """How much ``render`` upscales the image (1.0 without an image)."""
        return 1.0 if self.image is None else view_scale(self.image.shape[:2], self.view_side)

    def view_to_image(self, x: float, y: float) -> tuple[float, float]:
        """A click on the rendered view -> image pixel coordinates."""
        img = self.require_image()
        return from_view(x, y, self.view_scale, img.shape[:2])

    # ---------------------------------------------------------------------------------- prompts
    def click(self, x: float, y: float, mode: str) -> None:
        """Add a click at pixel (x, y): a positive / negative point, or a box corner (``mode="box"``).

        A box takes two clicks on opposite corners; the first is shown as a pending corner. The
        mask is re-decoded after every point and after every completed box.

        Raises:
            ValueError: no image, an unknown mode, a click outside the image, or a box under 2 px.
        """
        img = self.require_image()
        if mode not in CLICK_MODES:
            raise ValueError(f"unknown click mode {mode!r}; choose one of {CLICK_MODES}")
        h, w = img.shape[:2]
        x, y = float(x), float(y)
        if not (0 <= x <= w and 0 <= y <= h):
            raise ValueError(f"click ({x:g}, {y:g}) is outside the {w}x{h} image")
        if mode == "box":
            if self.corner is None:
                self.corner = (x, y)
                self._undo.append(("corner", None))
                return
            (x0, y0), self.corner = self.corner, None
            box = (min(x0, x), min(y0, y), min(max(x0, x) + 1, w), min(max(y0, y) + 1, h))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                self._undo.pop()  # the first corner goes too
                raise ValueError(
                    "the box is under 2 pixels wide or tall: click two opposite corners of the object"
                )
            self._undo[-1] = ("box", (self.box, (x0, y0)))
            self.box = box
        else:
            self.points.append((x, y))
            self.labels.append(1 if mode == "positive" else 0)
            self._undo.append(("point", None))
        self._decode()

    def undo(self) -> None:
        """Remove the last click (a point, a completed box or a pending corner)."""
        if not self._undo:
            return
        kind, data = self._undo.pop()
        if kind == "point":
            self.points.pop()
            self.labels.pop()
        elif kind == "corner":
            self.corner = None
            return
        else:  # a completed box: back to its first corner pending
            self.box, self.corner = data
            self._undo.append(("corner", None))
        self._decode()

    def clear(self) -> None:
        """Drop every prompt and the mask (the image embedding stays cached)."""
        self.points, self.labels, self.box, self.corner = [], [], None, None
        self._undo = []
        self.result = None
        self.decode_ms = 0.0

    def _decode(self) -> None:
        if not (1 in self.labels or self.box is not None):
            self.result = None  # negatives alone do not define an object
            return
        t0 = time.perf_counter()
        kw: dict[str, Any] = {}
        if self.points:
            kw["points"] = np.asarray([self.points], dtype=np.float32)  # (1, n, 2)
            kw["labels"] = np.asarray([self.labels], dtype=np.int64)  # (1, n)
        if self.box is not None:
            kw["boxes"] = np.asarray([self.box], dtype=np.float32)  # (1, 4)
        self.result = self.predictor.predict(**kw)
        self.decode_ms = 1e3 * (time.perf_counter() - t0)
        self.decode_count += 1

    # ---------------------------------------------------------------------------------- outputs
    @property
    def mask(self) -> np.ndarray | None:
        """(H, W) bool mask of the object, or None before a positive click / box."""
        if self.result is None:
            return None
        return self.result.masks[0].cpu().numpy().astype(bool)

    @property
    def iou(self) -> float | None:
        """Predicted IoU of the mask."""
        if self.result is None:
            return None
        return float(self.result.iou[0])

    def render(self) -> np.ndarray | None:
        """The image (upscaled to ``view_side``) with the mask (azure) and the prompts, or None."""
        from ..visualize import draw_masks, draw_prompts

        if self.image is None:
            return None
        sc = self.view_scale
        if self._view is None:
            self._view = upscale(self.image, sc)
        out = self._view
        m = self.mask
        if m is not None:
            out = draw_masks(
                out,
                upscale(m, sc, mask=True)[None],
                colors=[MASK_COLOR],
                alpha=0.5,
                show_tags=False,
            )
        pts = to_view(np.asarray(self.points, dtype=np.float64).reshape(-1, 2), sc)
        boxes = np.asarray([self.box], dtype=np.float64) * sc if self.box is not None else None
        if len(pts) or boxes is not None:
            out = draw_prompts(
                out, pts if len(pts) else None, np.asarray(self.labels) if len(pts) else None, boxes
            )
        if self.corner is not None:
            out = draw_prompts(
                out, to_view(np.asarray([self.corner]), sc), np.asarray([1]), marker="circle"
            )
        return out

    def status(self) -> str:
        """One-line markdown summary (what to do next, or mask size, IoU and timings)."""
        if self.image is None:
            return "Upload an image or pick a sample, then click on an object."
        h, w = self.image.shape[:2]
        enc = f"encoder {self.encode_ms:.0f} ms (once per image)"
        if self.corner is not None and self.box is None and not self.points:
            return f"Box: first corner set, click the opposite corner. · {enc}"
        if self.result is None:
            if self.points:
                return f"Only negative clicks so far: add a positive click or a box. · {enc}"
            return f"Image {w}x{h}: click on an object (positive), or switch to box mode. · {enc}"
        m = self.mask
        area = 100.0 * float(m.mean()) if m is not None else 0.0
        n_pos, n_neg = self.labels.count(1), self.labels.count(0)
        parts = [f"{n_pos} positive", f"{n_neg} negative"] + (
            ["box"] if self.box is not None else []
        )
        return (
            f"Mask: {area:.1f}% of the image, predicted IoU {self.iou:.2f} · prompts: {', '.join(parts)}"
            f" · decoder {self.decode_ms:.0f} ms · {enc}"
        )

    def to_json(self) -> dict:
        """Prompts, mask (COCO RLE, bbox xywh, area) and timings as a JSON-ready dict."""
        img = self.require_image()
        if self.result is None:
            raise ValueError("no mask yet: click on an object first")
        rec = self.result.to_coco(image_id=self.name)[0]
        return {
            "image": {
                "file_name": self.name,
                "height": int(img.shape[0]),
                "width": int(img.shape[1]),
            },
            "prompts": {
                "points": [[float(x), float(y)] for x, y in self.points],
                "labels": list(self.labels),
                "box": list(self.box) if self.box is not None else None,
            },
            "mask": {
                "segmentation": rec["segmentation"],
                "bbox": rec["bbox"],
                "area": int(self.mask.sum()),
                "predicted_iou": self.iou,
            },
            "timing_ms": {"encoder": round(self.encode_ms, 2), "decoder": round(self.decode_ms, 2)},
        }

    def export(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``<name>_mask.png`` (uint8 0/255) and ``<name>_mask.json`` into ``folder``."""
        from ..io.image import write_png

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rec = self.to_json()
        png = write_png(folder / f"{self.name}_mask.png", self.mask.astype(np.uint8) * 255)
        js = folder / f"{self.name}_mask.json"
        js.write_text(json.dumps(rec, indent=1))
        return png, js


# ------------------------------------------------------------------------------------------ panoptic
@dataclass
class PanopticView:
    """What the panoptic tab shows for one image.

    Attributes:
        overlay: (H, W, 3) uint8 drawing of the segments.
        legend_html: the legend (one row per segment: colour, class, thing/stuff, score, area).
        result: the ``PanopticResult``.
        png_path, json_path: COCO panoptic PNG and its annotation + categories JSON.
        ms: inference time.
    """

    overlay: np.ndarray
    legend_html: str
    result: Any
    png_path: Path
    json_path: Path
    ms: float


def _rgb_hex(c: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in c))


def legend_html(
    result: Any,
    class_names: Sequence[str],
    thing_flags: Sequence[bool] | None = None,
    *,
    empty_text: str = "No segment passed the confidence threshold.",
    state: str = "done",
) -> str:
    """HTML legend of a ``PanopticResult``: segments (largest first) then the model's vocabulary.

    Each segment row carries ``data-class`` (its class name) and ``data-segment`` (its id), and the
    swatch has the segment's overlay colour (``rapsam.visualize.color_for_id(segment id)``, as
    ``draw_panoptic`` paints). The outer ``div`` carries ``data-state`` (``state``) and
    ``data-segments`` (the count), for scripts and tests.
    """
    from ..visualize import color_for_id

    total = max(1, int(np.prod(result.image_size))) if result.image_size != (0, 0) else 1
    rows = []
    for s in sorted(result.segments, key=lambda s: -s.area):
        kind = "thing" if s.is_thing else "stuff"
        rows.append(
            f'<li class="rapsam-legend-item" data-class="{html.escape(s.name)}" data-kind="{kind}" '
            f'data-segment="{int(s.id)}">'
            f'<span class="rapsam-swatch" style="background:{_rgb_hex(color_for_id(int(s.id)))}"></span>'
            f'<span class="rapsam-name">{html.escape(s.name)}</span>'
            f'<span class="rapsam-meta">{kind} · {s.score:.2f} · {100.0 * s.area / total:.1f}%</span></li>'
        )
    if rows:
        body = f'<ul class="rapsam-legend-list">{"".join(rows)}</ul>'
    else:
        body = f'<p class="rapsam-empty">{html.escape(empty_text)}</p>'
    flags = list(thing_flags) if thing_flags is not None else [True] * len(class_names)
    vocab = " · ".join(
        f'<span class="rapsam-vocab-item" data-class="{html.escape(n)}">{html.escape(n)}'
        f"{'' if flags[i] else ' (stuff)'}</span>"
        for i, n in enumerate(class_names)
    )
    counts = (
        f" · {len(result.segments)} segment{'s' if len(result.segments) != 1 else ''}"
        if state == "done"
        else ""
    )
    return (
        f'<div class="rapsam-legend" data-state="{html.escape(state)}" data-segments="{len(result.segments)}">'
        f'<div class="rapsam-legend-title">Legend{counts}</div>{body}'
        f'<details class="rapsam-vocab"><summary>Vocabulary: {len(class_names)} classes</summary>'
        f"<p>{vocab}</p></details></div>"
    )


def run_panoptic(
    predictor: Any, image: np.ndarray, name: str, folder: str | Path, view_side: int | None = None
) -> PanopticView:
    """Panoptic segmentation of ``image`` with its overlay, legend and downloadable files.

    Args:
        predictor: a ``PanopticPredictor``.
        image: (H, W, 3) uint8 RGB.
        name: file-name stem of the downloads.
        folder: where ``<name>_panoptic.png`` and ``<name>_panoptic.json`` are written.
        view_side: the overlay of a smaller image is drawn upscaled to this longer side.

    Raises:
        RuntimeError: the model has no vocabulary.
    """
    t0 = time.perf_counter()
    result = predictor(image)
    ms = 1e3 * (time.perf_counter() - t0)
    model = predictor.model
    names = list(model.class_names)
    flags = (
        [bool(f) for f in model.thing_flags]
        if getattr(model, "thing_flags", None) is not None
        else None
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(name)
    png = folder / f"{stem}_panoptic.png"
    ann = result.save(png, image_id=stem)
    cats = [
        {"id": i, "name": n, "isthing": int(flags[i]) if flags else 1} for i, n in enumerate(names)
    ]
    js = folder / f"{stem}_panoptic.json"
    js.write_text(
        json.dumps(
            {
                "annotations": [ann],
                "categories": cats,
                "segments": [s.to_dict() for s in result.segments],
                "timing_ms": {"inference": round(ms, 2)},
            },
            indent=1,
        )
    )
    sc = view_scale(image.shape[:2], view_side)
    view = upscale(image, sc)
    if len(result):
        from PIL import Image

        from ..visualize import draw_panoptic

        ids = result.seg_ids.cpu().numpy().astype(np.int32)
        if sc != 1.0:
            ids = np.asarray(Image.fromarray(ids).resize(view.shape[1::-1], Image.NEAREST))
        segs = [
            {"id": g.id, "label_name": g.name, "is_thing": g.is_thing, "score": g.score}
            for g in result.segments
        ]
        overlay = draw_panoptic(view, ids, segs)
    else:
        overlay = view.copy()
    return PanopticView(overlay, legend_html(result, names, flags), result, png, js, ms)


# ------------------------------------------------------------------------------------------ video
@dataclass
class _VideoObject:
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def read_video(path: str | Path, limits: Limits) -> tuple[list[np.ndarray], float]:
    """Decode an uploaded video within ``limits`` -> (frames (H, W, 3) uint8, fps).

    Raises:
        LimitError: longer than ``max_video_seconds`` or ``max_video_frames``.
        ValueError: not a readable video.
    """
    from ..io.video import open_frames

    frames_cap, sec_cap = int(limits.max_video_frames), float(limits.max_video_seconds)
    src = open_frames(str(path), max_side=int(limits.max_video_side), on_size_change="resize")
    with src:
        fps = float(src.fps) if src.fps else 10.0
        fix = (
            f"Trim it (for example: ffmpeg -i in.mp4 -t {sec_cap:g} out.mp4) or restart the server with "
            "rapsam serve --max-video-seconds S --max-video-frames N."
        )
        if src.num_frames is not None:
            n = int(src.num_frames)
            if n / fps > sec_cap + 1e-6:
                raise LimitError(
                    f"This video is {n / fps:.1f} s long ({n} frames at {fps:g} fps); this server accepts "
                    f"videos up to {sec_cap:g} s. {fix}"
                )
            if n > frames_cap:
                raise LimitError(
                    f"This video has {n} frames; this server accepts up to {frames_cap}. {fix}"
                )
        frames = []
        for _, frame in src:
            frames.append(frame)
            if len(frames) > frames_cap or len(frames) / fps > sec_cap + 1e-6:
                raise LimitError(
                    f"This video is longer than this server accepts ({sec_cap:g} s, {frames_cap} frames). {fix}"
                )
    return frames, fps


class VideoSession:
    """One user's video tab: the frames, clicks on the first frame per object, tracking runs.

    Objects are prompted on the first frame (frame 0), where a preview mask is decoded from the
    cached embedding of that frame after each click, as on the image tab; ``track_prompted`` then
    follows them through the video (``VideoPredictor.propagate``) and ``track_all`` runs
    unprompted tracking of every object (``VideoPredictor.track``).

    Args:
        model: a ``RapSam``.
        image_scale: test resize.
        limits: upload limits.
    """

    def __init__(
        self,
        model: Any,
        image_scale: tuple[int, int] | None | str = "model",
        limits: Limits | None = None,
        view_side: int | None = None,
    ) -> None:
        self.model = model
        self.image_scale = image_scale
        self.limits = limits or Limits()
        self.frames: list[np.ndarray] = []
        self.fps = 10.0
        self.name = "video"
        self.objects: dict[int, _VideoObject] = {}
        self.current = 1
        self._preview = ClickSession(model, image_scale, view_side)
        self._preview_masks: dict[int, np.ndarray] = {}

    def load(self, path: str | Path, name: str | None = None) -> None:
        """Read a video (checking the limits) and reset the prompts."""
        self.frames, self.fps = read_video(path, self.limits)
        self.name = safe_stem(name or Path(path).name, "video")
        self._preview.set_image(self.frames[0], self.name)
        self.objects, self.current, self._preview_masks = {}, 1, {}

    def require_video(self) -> None:
        if not self.frames:
            raise ValueError("no video yet: upload one or load the sample video first")

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps if self.frames else 0.0

    def view_to_image(self, x: float, y: float) -> tuple[float, float]:
        """A click on ``render_first_frame``'s view -> frame pixel coordinates."""
        self.require_video()
        return self._preview.view_to_image(x, y)

    def click(self, x: float, y: float, positive: bool = True) -> None:
        """Add a click for the current object on the first frame and refresh its preview mask."""
        self.require_video()
        h, w = self.frames[0].shape[:2]
        if not (0 <= x <= w and 0 <= y <= h):
            raise ValueError(f"click ({x:g}, {y:g}) is outside the {w}x{h} frame")
        obj = self.objects.setdefault(self.current, _VideoObject())
        obj.points.append((float(x), float(y)))
        obj.labels.append(1 if positive else 0)
        self._refresh_preview(self.current)

    def _refresh_preview(self, obj_id: int) -> None:
        obj = self.objects.get(obj_id)
        if obj is None or 1 not in obj.labels:
            self._preview_masks.pop(obj_id, None)
            return
        res = self._preview.predictor.predict(
            points=np.asarray([obj.points], np.float32), labels=np.asarray([obj.labels], np.int64)
        )
        self._preview_masks[obj_id] = res.masks[0].cpu().numpy().astype(bool)

    def new_object(self) -> int:
        """Start prompting another object (its clicks get the next id)."""
        self.require_video()
        if self.current in self.objects and self.objects[self.current].points:
            self.current = max(self.objects) + 1
        return self.current

    def undo(self) -> None:
        obj = self.objects.get(self.current)
        if obj and obj.points:
            obj.points.pop()
            obj.labels.pop()
            self._refresh_preview(self.current)

    def clear(self) -> None:
        self.objects, self.current, self._preview_masks = {}, 1, {}

    @property
    def prompted_ids(self) -> list[int]:
        return [i for i, o in sorted(self.objects.items()) if 1 in o.labels]

    def render_first_frame(self) -> np.ndarray | None:
        """Frame 0 (upscaled to ``view_side``) with each object's preview mask (its track colour) and clicks."""
        from ..visualize import draw_masks, draw_prompts

        if not self.frames:
            return None
        sc = self._preview.view_scale
        out = upscale(self.frames[0], sc)
        ids = sorted(self._preview_masks)
        if ids:
            masks = np.stack([upscale(self._preview_masks[i], sc, mask=True) for i in ids])
            out = draw_masks(out, masks, ids=ids, alpha=0.5)
        for o in self.objects.values():
            if o.points:
                out = draw_prompts(out, to_view(np.asarray(o.points), sc), np.asarray(o.labels))
        return out

    def status(self) -> str:
        if not self.frames:
            return "Upload a video (or load the sample), click an object on its first frame, then track."
        h, w = self.frames[0].shape[:2]
        head = f"{len(self.frames)} frames, {w}x{h}, {self.fps:g} fps ({self.seconds:.1f} s)"
        ids = self.prompted_ids
        who = (
            f"objects prompted: {', '.join(f'#{i}' for i in ids)}"
            if ids
            else "no object prompted yet"
        )
        return f"{head} · {who} · clicks go to object #{self.current}"

    def _predictor(self) -> Any:
        try:
            from ..predictor.video import VideoPredictor
        except ImportError as e:  # pragma: no cover - the video predictor ships with rapsam
            raise RuntimeError(
                f"video tracking is not available in this installation ({e})"
            ) from None
        return VideoPredictor(self.model, image_scale=self.image_scale)

    def track_prompted(
        self, folder: str | Path, progress: ProgressFn | None = None
    ) -> tuple[Path, Path, str]:
        """Track the prompted objects through the video -> (overlay .mp4, results .json, summary)."""
        self.require_video()
        ids = self.prompted_ids
        if not ids:
            raise ValueError(
                "click on an object in the first frame first (a positive click), or use 'Track all objects'"
            )
        vp = self._predictor()
        state = vp.init_state(self.frames)
        for i in ids:
            o = self.objects[i]
            vp.add_prompt(state, 0, i, points=np.asarray(o.points), labels=np.asarray(o.labels))
        return self._write(folder, "tracked", vp.propagate(state), progress, score_thr=None)

    def track_all(
        self, folder: str | Path, progress: ProgressFn | None = None, score_thr: float = 0.3
    ) -> tuple[Path, Path, str]:
        """Unprompted tracking of every object -> (overlay .mp4, results .json, summary)."""
        self.require_video()
        vp = self._predictor()
        return self._write(
            folder, "all", vp.track(self.frames, tasks=("instance",)), progress, score_thr=score_thr
        )

    def _write(
        self,
        folder: str | Path,
        tag: str,
        results: Any,
        progress: ProgressFn | None,
        score_thr: float | None,
    ) -> tuple[Path, Path, str]:
        from ..io.video import VideoWriter
        from ..predictor.video import YouTubeVISWriter
        from ..visualize import draw_masks

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out_video = folder / f"{self.name}_{tag}.mp4"
        out_json = folder / f"{self.name}_{tag}.json"
        names = list(getattr(self.model, "class_names", []) or [])
        vis = YouTubeVISWriter(video_id=self.name)
        seen: set[int] = set()
        t0 = time.perf_counter()
        n = len(self.frames)
        with VideoWriter(out_video, fps=self.fps) as writer:
            for k, (idx, res) in enumerate(results):
                inst = getattr(res, "instances", res)
                if score_thr is not None and len(inst):
                    inst = inst[inst.scores >= score_thr]
                if score_thr is None and len(
                    inst
                ):  # prompted: drop frames where an object is absent
                    inst = inst[inst.masks.flatten(1).any(1)]
                vis.add(idx, inst)
                seen.update(
                    int(t) for t in (inst.track_ids.tolist() if inst.track_ids is not None else [])
                )
                frame = self.frames[idx]
                labels = inst.names if (score_thr is not None and inst.labels is not None) else None
                if len(inst):
                    drawn = inst.numpy()
                    frame = draw_masks(
                        frame, drawn.masks, ids=drawn.track_ids, labels=labels, alpha=0.5
                    )
                writer.write(frame)
                if progress is not None:
                    progress(k + 1, n)
        vis.save(out_json, num_frames=n)
        dt = time.perf_counter() - t0
        what = f"{len(seen)} track{'s' if len(seen) != 1 else ''}" + (
            f" ({', '.join(f'#{i}' for i in sorted(seen))})" if seen else ""
        )
        summary = f"Tracked {n} frames in {dt:.1f} s ({1e3 * dt / max(n, 1):.0f} ms/frame): {what}."
        if names and score_thr is not None:
            summary += f" Instances scoring under {score_thr:g} are not drawn."
        return out_video, out_json, summary
