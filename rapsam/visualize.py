"""Overlays for RAP-SAM results that stay readable on real photos.

RAP-SAM (Xu et al., "RAP-SAM: Towards Real-Time All-Purpose Segment Anything", arXiv 2401.10228)
produces three kinds of output from one model: prompt-driven masks (interactive segmentation),
panoptic maps and tracked instance masks (video instance segmentation). This module draws all of
them with numpy + Pillow only (no matplotlib / OpenCV), numpy arrays in and out:

* :func:`draw_masks` - alpha-blended fills, contours, optional boxes and ``"#id name 0.93"`` tags
  (the layout of SAM's notebooks and detectron2's ``Visualizer.overlay_instances``).
* :func:`draw_panoptic` / :func:`draw_semantic` - segment-id maps and class-id maps.
* :func:`draw_prompts` - SAM-style click markers (green star = positive, red star = negative)
  and box prompts, as in segment-anything's ``notebooks/predictor_example.ipynb``.
* :func:`legend` and :func:`hstack_images` - small helpers for demo panels.

Colour is a function of an integer id (:func:`color_for_id`), with hues stepped by the golden
ratio, so a tracked object keeps its colour across video frames and ``palette(n)[i]`` equals
``color_for_id(i)``.

Conventions: images are ``(H, W, 3)`` uint8 RGB; masks are ``(N, H, W)`` bool; points are ``(x, y)``
pixels; boxes are ``(x0, y0, x1, y1)`` pixels (XYXY; the rectangle is drawn through both corners).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = [
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "color_for_id",
    "draw_masks",
    "draw_panoptic",
    "draw_prompts",
    "draw_semantic",
    "hstack_images",
    "legend",
    "palette",
]

#: Colour of positive (foreground, label 1) click markers and box prompts.
POSITIVE_COLOR: tuple[int, int, int] = (0, 200, 0)
#: Colour of negative (background, label 0) click markers.
NEGATIVE_COLOR: tuple[int, int, int] = (230, 25, 25)

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618..., the hue step
_HUE0 = 0.58  # first hue (azure, the colour of SAM's notebook masks)
_SEED_STEP = 0.2817  # hue offset per seed (any irrational-looking step works)
# Saturation/value cycle. Golden-ratio hue stepping alone brings ids a Fibonacci distance apart
# (13, 21, 34) close in hue; cycling 4 (s, v) tiers separates them. Chosen by a search that
# maximises the minimum pairwise RGB distance of the first 8/16/50 colours (123/50/36).
_SV_TIERS = np.array([(0.85, 0.95), (0.70, 0.95), (1.00, 0.95), (1.00, 0.80)])

_TAG_BG_ALPHA = 0.65  # opacity of the dark box behind a tag
_TAG_BG_ALPHA_LIGHT = 0.35  # lighter tags (stuff / semantic regions)
_TAG_POSITIONS = ("top_left", "center")


# --------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB.

    Args:
        h: Hues in [0, 1), shape (N,).
        s: Saturations in [0, 1], shape (N,).
        v: Values in [0, 1], shape (N,).

    Returns:
        RGB uint8 array of shape (N, 3).
    """
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    choices = [
        np.stack([v, t, p], -1),
        np.stack([q, v, p], -1),
        np.stack([p, v, t], -1),
        np.stack([p, q, v], -1),
        np.stack([t, p, v], -1),
        np.stack([v, p, q], -1),
    ]  # 6 x (N, 3)
    rgb = np.choose(i[:, None], choices)  # (N, 3)
    return np.round(rgb * 255.0).astype(np.uint8)


def _colors_for_ids(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Colours for an integer array of ids, shape (N,) -> (N, 3) uint8."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    # Multiply in float64 after reducing the id: exact for |id| < 2**53, and the fractional part
    # keeps ~7 significant digits even for ids around 1e9.
    hue = np.mod(_HUE0 + seed * _SEED_STEP + ids.astype(np.float64) * _GOLDEN, 1.0)
    tier = _SV_TIERS[np.mod(ids, len(_SV_TIERS))]  # (N, 2)
    return _hsv_to_rgb(hue, tier[:, 0], tier[:, 1])


def palette(n: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` distinct, well-separated colours.

    Hues step by the golden ratio (so any prefix is spread around the colour wheel) and saturation
    and value cycle through four tiers; no colour is darker than value 0.8, so fills stay visible
    on dark photos. Deterministic: ``palette(n, seed)[i] == color_for_id(i, seed)``.

    Args:
        n: Number of colours, ``>= 0``.
        seed: Rotates the hue wheel; different seeds give different palettes.

    Returns:
        Array of shape (n, 3), dtype uint8, RGB.

    Raises:
        ValueError: If ``n`` is negative or not an integer.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"palette(n): n must be a non-negative int, got {n!r}.")
    return _colors_for_ids(np.arange(int(n)), seed=int(seed))


def color_for_id(obj_id: int, seed: int = 0) -> tuple[int, int, int]:
    """Stable colour of a track / segment / class id.

    The same id always gets the same colour (across frames, calls and processes), so a tracked
    object keeps its colour through a video. Any integer works, including negative and large ids.

    Args:
        obj_id: Integer id (track id, panoptic segment id or class id).
        seed: Same meaning as in :func:`palette`.

    Returns:
        ``(r, g, b)`` tuple of ints in [0, 255].

    Raises:
        ValueError: If ``obj_id`` is not an integer.
    """
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
        raise ValueError(
            f"color_for_id: id must be an int, got {type(obj_id).__name__} {obj_id!r}; "
            "pass int(track_id)."
        )
    r, g, b = _colors_for_ids(np.array([int(obj_id)]), seed=int(seed))[0]
    return int(r), int(g), int(b)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    """Convert numpy-likes (lists, PIL images, torch tensors on any device) to numpy."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate an RGB uint8 image of shape (H, W, 3) and return it as a numpy array."""
    arr = _to_numpy(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"{name} must be an RGB array of shape (H, W, 3), got shape {arr.shape}. "
            "Expand grayscale with np.stack([img] * 3, axis=-1) or drop alpha with img[..., :3]."
        )
    if arr.dtype != np.uint8:
        raise ValueError(
            f"{name} must have dtype uint8 (values 0-255), got {arr.dtype}. If it holds floats "
            "in [0, 1], convert with (img * 255).round().clip(0, 255).astype(np.uint8)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass an image with H, W >= 1.")
    return arr


def _check_masks(masks: Any, hw: tuple[int, int]) -> np.ndarray:
    """Validate masks against the image size and return a bool array of shape (N, H, W)."""
    arr = _to_numpy(masks)
    if arr.size == 0 and arr.ndim <= 1:  # [] or np.zeros(0): no masks
        return np.zeros((0, *hw), dtype=bool)
    if arr.ndim == 2:
        arr = arr[None]  # (1, H, W)
    if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(hw):
        raise ValueError(
            f"masks must have shape (N, H, W) = (N, {hw[0]}, {hw[1]}) to match the image of size "
            f"(H, W) = {tuple(hw)}, got shape {arr.shape}. Resize the masks to the image size "
            "(e.g. the predictor's original_size) before drawing."
        )
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        return arr > 0
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(
                f"masks have dtype {arr.dtype} with values other than 0 and 1 (probabilities or "
                "logits?); threshold them first, e.g. masks > 0.5 or logits > 0."
            )
        return arr > 0
    raise ValueError(f"masks must be bool (or 0/1 integers), got dtype {arr.dtype}.")


def _check_per_item(value: Any, n: int, what: str) -> list[Any] | None:
    """Check that an optional per-mask sequence has exactly ``n`` entries."""
    if value is None:
        return None
    items = list(_to_numpy(value).reshape(-1)) if not isinstance(value, (list, tuple)) else value
    if len(items) != n:
        raise ValueError(
            f"{what} has {len(items)} entries but there are {n} masks; pass one per mask."
        )
    return list(items)


def _check_boxes(boxes: Any, n: int | None, what: str = "boxes") -> np.ndarray:
    """Validate XYXY boxes of shape (n, 4) (any n if ``n`` is None)."""
    arr = _to_numpy(boxes).astype(np.float64)
    if arr.size == 0 and (n is None or n == 0):
        return np.zeros((0, 4))
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]  # (1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4 or (n is not None and arr.shape[0] != n):
        want = f"({n}, 4)" if n is not None else "(M, 4)"
        raise ValueError(f"{what} must have shape {want} in XYXY pixels, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain NaN or inf; drop or fix those boxes before drawing.")
    return arr


def _check_colors(colors: Any, n: int) -> np.ndarray:
    """Validate user colours, (n, 3) ints in [0, 255] -> uint8."""
    arr = _to_numpy(colors)
    if arr.ndim == 1 and arr.shape[0] == 3 and n != 3:
        arr = np.broadcast_to(arr, (n, 3))  # one colour for all masks
    if arr.shape != (n, 3):
        raise ValueError(
            f"colors must have shape ({n}, 3) (one RGB triple per mask), got {arr.shape}."
        )
    if arr.size and (np.any(arr < 0) or np.any(arr > 255)):
        raise ValueError("colors must be RGB values in [0, 255] (not floats in [0, 1]).")
    return np.round(arr).astype(np.uint8)


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {alpha}.")
    return float(alpha)


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` px; the fixed-size bitmap font on old Pillow."""
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()


def _auto_font_size(h: int, w: int) -> int:
    """Tag font size in px: ~1/35 of the image's geometric-mean side, clamped to [10, 32]."""
    return int(np.clip(round(math.sqrt(h * w) / 35.0), 10, 32))


def _auto_marker_radius(h: int, w: int) -> int:
    """Prompt marker radius in px, clamped to [4, 24]."""
    return int(np.clip(round(math.sqrt(h * w) / 50.0), 4, 24))


def _text_size(font: Any, text: str) -> tuple[int, int, int, int]:
    """Return ``(width, height, x_offset, y_offset)`` of the ink of ``text``.

    The height is the height of "Ag" so tags on one image share one height.
    """
    left, _, right, _ = font.getbbox(text)
    _, top, _, bottom = font.getbbox("Ag")
    return int(right - left), int(bottom - top), int(-left), int(-top)


def _place_tag(
    anchor: tuple[float, float], size: tuple[int, int], image_wh: tuple[int, int]
) -> tuple[int, int]:
    """Clamp a tag's top-left corner so the tag lies inside the image.

    Args:
        anchor: Desired top-left ``(x, y)``.
        size: Tag ``(width, height)``.
        image_wh: Image ``(W, H)``.

    Returns:
        Top-left ``(x, y)``; the tag fits inside the image whenever it is no larger than it, and
        starts at the image's top-left corner otherwise.
    """
    (x, y), (tw, th), (w, h) = anchor, size, image_wh
    x = int(round(min(max(x, 0), max(w - tw, 0))))
    y = int(round(min(max(y, 0), max(h - th, 0))))
    return x, y


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _interior_point(mask: np.ndarray) -> tuple[float, float] | None:
    """Point ``(x, y)`` deepest inside ``mask`` (max of the distance transform), or None if empty.

    Unlike the centroid it always lies on the mask, also for rings and L shapes. The image edge
    counts as boundary, so tags of regions like sky do not hug the frame.
    """
    ys, xs = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    if ys.size == 0:
        return None
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    crop = mask[y0:y1, x0:x1]
    step = max(1, max(crop.shape) // 256)  # the EDT on <= 256 px per side is plenty for a tag
    small = np.pad(crop[::step, ::step], 1)  # zero border: the frame is boundary too
    dist = ndimage.distance_transform_edt(small)
    iy, ix = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x0 + (ix - 1) * step + step / 2), float(y0 + (iy - 1) * step + step / 2)


# --------------------------------------------------------------------------------------------
# Core renderer
# --------------------------------------------------------------------------------------------


def _boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Inner boundary of ``mask`` that is ``width`` px thick: ``mask & ~erode(mask, width)``.

    Pixels on the image edge count as boundary (erosion uses border value 0), so contours are
    closed. Works on the mask's bounding box only, which keeps 300 masks cheap.
    """
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    if ys.size == 0 or width <= 0:
        return out
    sl = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    crop = mask[sl]
    out[sl] = crop & ~ndimage.binary_erosion(crop, iterations=width, border_value=0)
    return out


def _render(
    image: np.ndarray,
    masks: np.ndarray,
    colors: np.ndarray,
    alphas: np.ndarray,
    contour_widths: np.ndarray,
    boxes: np.ndarray | None,
    box_width: int,
    tags: Sequence[str | None],
    tag_position: str,
    tag_bg_alphas: np.ndarray,
    font_size: int | None,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Draw fills, contours, boxes and tags; later masks on top.

    Args:
        image: (H, W, 3) uint8.
        masks: (N, H, W) bool.
        colors: (N, 3) uint8.
        alphas: (N,) fill opacity per mask.
        contour_widths: (N,) contour thickness per mask (0 = none).
        boxes: (N, 4) XYXY or None.
        box_width: Box outline width in px.
        tags: N strings (None or "" = no tag).
        tag_position: "top_left" (box / mask bounding-box corner) or "center" (interior point).
        tag_bg_alphas: (N,) opacity of each tag's dark background.
        font_size: Tag font size in px, None for automatic.

    Returns:
        The rendered (H, W, 3) uint8 image and the tag rectangles ``(x0, y0, x1, y1)`` (exclusive
        x1/y1) in drawing order.
    """
    h, w = image.shape[:2]
    n = masks.shape[0]
    out = image.copy()
    if n == 0:
        return out, []

    # Fill: each pixel takes the colour of the last mask covering it, blended once.
    top = np.full((h, w), -1, dtype=np.int64)  # (H, W) index of the top-most mask
    for i in range(n):
        top[masks[i]] = i
    covered = top >= 0
    if covered.any():
        idx = top[covered]  # (P,)
        a = alphas[idx][:, None]  # (P, 1)
        blended = image[covered].astype(np.float32) * (1.0 - a) + colors[idx].astype(np.float32) * a
        out[covered] = np.round(blended).clip(0, 255).astype(np.uint8)

    # Contours: opaque, in mask order, drawn after all fills so every outline stays visible.
    for i in range(n):
        if contour_widths[i] > 0:
            out[_boundary(masks[i], int(contour_widths[i]))] = colors[i]

    has_tags = any(t for t in tags)
    if boxes is None and not has_tags:
        return out, []

    canvas = Image.fromarray(out).convert("RGBA")
    if boxes is not None:
        draw = ImageDraw.Draw(canvas)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            rect = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
            draw.rectangle(rect, outline=tuple(int(c) for c in colors[i]) + (255,), width=box_width)
    if not has_tags:
        return np.asarray(canvas.convert("RGB")), []

    size = font_size if font_size is not None else _auto_font_size(h, w)
    font = _font(int(size))
    pad = max(1, size // 5)
    strip = max(2, size // 4)  # colour bar tying the tag to its mask
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    odraw = ImageDraw.Draw(overlay)
    placed: list[tuple[int, int, int, int]] = []
    texts: list[tuple[tuple[int, int], str]] = []
    for i, text in enumerate(tags):
        if not text:
            continue
        m = masks[i]
        if boxes is None and not m.any():
            continue  # nothing to label
        tw, th, ox, oy = _text_size(font, text)
        tag_w, tag_h = strip + tw + 2 * pad, th + 2 * pad
        if tag_position == "center":
            pt = _interior_point(m)
            if pt is None:
                if boxes is None:
                    continue
                bx0, by0, bx1, by1 = boxes[i]
                pt = ((bx0 + bx1) / 2, (by0 + by1) / 2)
            anchor = (pt[0] - tag_w / 2, pt[1] - tag_h / 2)
        else:
            if boxes is not None:
                ax, ay = min(boxes[i][0], boxes[i][2]), min(boxes[i][1], boxes[i][3])
            else:
                ys, xs = np.nonzero(np.any(m, axis=1))[0], np.nonzero(np.any(m, axis=0))[0]
                ax, ay = float(xs[0]), float(ys[0])
            # Sit on top of the object's edge if there is room, else just inside it.
            anchor = (ax, ay - tag_h if ay - tag_h >= 0 else ay)
        x, y = _place_tag(anchor, (tag_w, tag_h), (w, h))
        # Greedy de-overlap: slide down (then up) by one tag height a few times.
        for k in (0, 1, -1, 2, -2, 3):
            cx, cy = _place_tag((x, y + k * tag_h), (tag_w, tag_h), (w, h))
            if not any(_overlaps((cx, cy, cx + tag_w, cy + tag_h), r) for r in placed):
                x, y = cx, cy
                break
        rect = (x, y, min(x + tag_w, w), min(y + tag_h, h))
        placed.append(rect)
        bg = int(round(255 * float(tag_bg_alphas[i])))
        odraw.rectangle([x, y, x + tag_w - 1, y + tag_h - 1], fill=(0, 0, 0, bg))
        odraw.rectangle(
            [x, y, x + strip - 1, y + tag_h - 1], fill=tuple(int(c) for c in colors[i]) + (255,)
        )
        texts.append(((x + strip + pad + ox, y + pad + oy), text))
    canvas = Image.alpha_composite(canvas, overlay)
    draw = ImageDraw.Draw(canvas)
    for xy, text in texts:
        draw.text(xy, text, fill=(255, 255, 255, 255), font=font)
    return np.asarray(canvas.convert("RGB")), placed


def _format_tag(obj_id: Any, name: Any, score: Any) -> str:
    """Build ``"#id name 0.93"`` from the parts that are present."""
    parts = []
    if obj_id is not None:
        parts.append(f"#{int(obj_id)}")
    if name is not None and str(name) != "":
        parts.append(str(name))
    if score is not None:
        parts.append(f"{float(score):.2f}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Public drawing functions
# --------------------------------------------------------------------------------------------


def draw_masks(
    image: np.ndarray,
    masks: np.ndarray,
    *,
    colors: np.ndarray | Sequence[Sequence[int]] | None = None,
    alpha: float = 0.5,
    contours: bool = True,
    contour_width: int = 2,
    labels: Sequence[str] | None = None,
    scores: np.ndarray | Sequence[float] | None = None,
    boxes: np.ndarray | None = None,
    ids: np.ndarray | Sequence[int] | None = None,
    tag_position: str = "top_left",
    show_tags: bool = True,
    font_size: int | None = None,
) -> np.ndarray:
    """Overlay instance / prompt masks on an image.

    Each mask is filled with its colour blended at ``alpha`` (where masks overlap, the later mask
    is on top), outlined by an opaque inner contour ``contour_width`` px thick (the pixels of
    ``mask & ~binary_erosion(mask, iterations=contour_width)``, so nothing outside the mask
    changes), optionally boxed, and tagged with ``"#id name 0.93"`` on a dark semi-transparent
    box that reads on any photo. Pixels outside every mask, box and tag are unchanged.

    Args:
        image: RGB image, shape (H, W, 3), uint8.
        masks: Binary masks, shape (N, H, W) (a single (H, W) mask is accepted); bool or 0/1.
            N = 0 returns a copy of ``image``.
        colors: Per-mask RGB, shape (N, 3) in [0, 255]. Default: ``color_for_id(ids[i])`` when
            ``ids`` is given (stable across video frames), else ``palette(N)``.
        alpha: Fill opacity in [0, 1].
        contours: Draw each mask's contour.
        contour_width: Contour thickness in px (drawn inside the mask); also the box line width.
        labels: Optional class name per mask, length N.
        scores: Optional score per mask, shape (N,), printed with two decimals.
        boxes: Optional boxes, shape (N, 4), XYXY pixels, drawn in the mask colours.
        ids: Optional track / object ids, shape (N,), shown as ``#id`` and used for colours.
        tag_position: ``"top_left"`` (above the box, or the mask's bounding box, like detection
            tags) or ``"center"`` (centred on the point deepest inside the mask).
        show_tags: Draw the text tags (False: fills, contours and boxes only).
        font_size: Tag font size in px; default scales with the image size.

    Returns:
        The overlay, shape (H, W, 3), uint8 (a new array; ``image`` is not modified).

    Raises:
        ValueError: On a non-uint8 or non-RGB image, masks whose size differs from the image,
            per-mask arguments of the wrong length, or ``alpha`` outside [0, 1].

    Example:
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> m = np.zeros((1, 64, 64), bool); m[0, 10:30, 10:40] = True
        >>> draw_masks(img, m, labels=["cat"], scores=[0.93]).shape
        (64, 64, 3)
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    m = _check_masks(masks, (h, w))
    n = m.shape[0]
    alpha = _check_alpha(alpha)
    if tag_position not in _TAG_POSITIONS:
        raise ValueError(f"tag_position must be one of {_TAG_POSITIONS}, got {tag_position!r}.")
    if contour_width < 0:
        raise ValueError(f"contour_width must be >= 0, got {contour_width}.")
    ids_l = _check_per_item(ids, n, "ids")
    labels_l = _check_per_item(labels, n, "labels")
    scores_l = _check_per_item(scores, n, "scores")
    bx = _check_boxes(boxes, n) if boxes is not None else None
    if n == 0:
        return img.copy()
    if colors is not None:
        cols = _check_colors(colors, n)
    elif ids_l is not None:
        cols = _colors_for_ids(np.array([int(i) for i in ids_l]))
    else:
        cols = palette(n)
    tags = [
        _format_tag(
            ids_l[i] if ids_l is not None else None,
            labels_l[i] if labels_l is not None else None,
            scores_l[i] if scores_l is not None else None,
        )
        for i in range(n)
    ]
    if not show_tags:
        tags = [""] * n
    out, _ = _render(
        img,
        m,
        cols,
        np.full(n, alpha),
        np.full(n, contour_width if contours else 0),
        bx,
        max(1, contour_width),
        tags,
        tag_position,
        np.full(n, _TAG_BG_ALPHA),
        font_size,
    )
    return out


def _field(seg: Any, keys: Sequence[str], default: Any = None) -> Any:
    """Read the first present key / attribute of a segment dict or object."""
    for k in keys:
        if isinstance(seg, Mapping):
            if k in seg and seg[k] is not None:
                return seg[k]
        elif getattr(seg, k, None) is not None:
            return getattr(seg, k)
    return default


def _check_label_map(arr: Any, hw: tuple[int, int], name: str) -> np.ndarray:
    m = _to_numpy(arr)
    if m.shape != tuple(hw):
        raise ValueError(
            f"{name} must have shape (H, W) = {tuple(hw)} to match the image, got {m.shape}."
        )
    if not np.issubdtype(m.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer ids, got dtype {m.dtype}; cast with .astype(np.int64)."
        )
    return m


def draw_panoptic(
    image: np.ndarray,
    seg_map: np.ndarray,
    segments: Sequence[Mapping[str, Any] | Any],
    *,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.55,
    stuff_alpha: float = 0.4,
    contour_width: int = 2,
    show_scores: bool = True,
    show_tags: bool = True,
    font_size: int | None = None,
) -> np.ndarray:
    """Overlay a panoptic segmentation.

    Every segment is filled with ``color_for_id(segment id)``. Things (countable objects) get an
    opaque contour and a ``"name 0.93"`` tag on a dark box; stuff (amorphous regions) gets a
    fainter fill, no contour and a lighter name-only tag. Tags sit on the point deepest inside each
    segment. Pixels whose id matches no segment (e.g. 0 = void) are unchanged.

    Args:
        image: RGB image, shape (H, W, 3), uint8.
        seg_map: Segment id per pixel, shape (H, W), integer.
        segments: One dict or object per segment with ``id`` (required) and optionally a name
            (``label_name`` / ``name`` / ``category_name``, or an int ``category_id`` / ``label``
            looked up in ``class_names``), ``is_thing`` (or ``isthing``; default True) and
            ``score``.
        class_names: Names indexed by category id, used when a segment has no name.
        alpha: Fill opacity of things.
        stuff_alpha: Fill opacity of stuff.
        contour_width: Contour thickness of things in px (0 = none).
        show_scores: Append the score to thing tags when present.
        show_tags: Draw the text tags at all.
        font_size: Tag font size in px; default scales with the image size.

    Returns:
        The overlay, shape (H, W, 3), uint8.

    Raises:
        ValueError: On bad image / map shapes or dtypes, a segment without ``id`` or duplicate ids.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    seg = _check_label_map(seg_map, (h, w), "seg_map")
    alpha, stuff_alpha = _check_alpha(alpha), _check_alpha(stuff_alpha, "stuff_alpha")
    parsed = []
    seen: set[int] = set()
    for k, s in enumerate(segments):
        sid = _field(s, ("id", "segment_id"))
        if sid is None:
            raise ValueError(
                f"segments[{k}] has no 'id'; each segment needs the id used in seg_map."
            )
        sid = int(sid)
        if sid in seen:
            raise ValueError(f"segment id {sid} appears twice in segments; ids must be unique.")
        seen.add(sid)
        name = _field(s, ("label_name", "name", "category_name"))
        if name is None:
            cat = _field(s, ("category_id", "label"))
            if isinstance(cat, str):
                name = cat
            elif cat is not None and class_names is not None:
                cat = int(cat)
                if not 0 <= cat < len(class_names):
                    raise ValueError(
                        f"segment {sid} has category {cat} but class_names has {len(class_names)} "
                        "entries; pass the dataset's full class list."
                    )
                name = class_names[cat]
            elif cat is not None:
                name = str(int(cat))
        is_thing = bool(_field(s, ("is_thing", "isthing"), True))
        score = _field(s, ("score",)) if (show_scores and is_thing) else None
        parsed.append((sid, name, is_thing, score))
    if not parsed:
        return img.copy()
    parsed.sort(key=lambda p: p[2])  # stuff first, things drawn on top (stable within groups)
    masks = np.stack([seg == p[0] for p in parsed])  # (N, H, W)
    out, _ = _render(
        img,
        masks,
        _colors_for_ids(np.array([p[0] for p in parsed])),
        np.array([alpha if p[2] else stuff_alpha for p in parsed]),
        np.array([contour_width if p[2] else 0 for p in parsed]),
        None,
        1,
        [_format_tag(None, p[1], p[3]) if show_tags else "" for p in parsed],
        "center",
        np.array([_TAG_BG_ALPHA if p[2] else _TAG_BG_ALPHA_LIGHT for p in parsed]),
        font_size,
    )
    return out


def draw_semantic(
    image: np.ndarray,
    sem: np.ndarray,
    class_names: Sequence[str],
    ignore_index: int = 255,
    *,
    alpha: float = 0.5,
    contours: bool = True,
    contour_width: int = 1,
    show_tags: bool = True,
    font_size: int | None = None,
) -> np.ndarray:
    """Overlay a semantic segmentation (one colour per class: ``color_for_id(class_id)``).

    Args:
        image: RGB image, shape (H, W, 3), uint8.
        sem: Class id per pixel, shape (H, W), integer; ``ignore_index`` pixels are unchanged.
        class_names: Name of each class id.
        ignore_index: Id of unlabelled pixels.
        alpha: Fill opacity.
        contours: Outline each class region.
        contour_width: Contour thickness in px.
        show_tags: Put a light name tag inside each class region.
        font_size: Tag font size in px; default scales with the image size.

    Returns:
        The overlay, shape (H, W, 3), uint8.

    Raises:
        ValueError: On bad image / map shapes or dtypes, or a class id outside ``class_names``.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    s = _check_label_map(sem, (h, w), "sem")
    alpha = _check_alpha(alpha)
    present = [int(c) for c in np.unique(s) if int(c) != ignore_index]
    bad = [c for c in present if not 0 <= c < len(class_names)]
    if bad:
        raise ValueError(
            f"sem contains class ids {bad[:5]} outside [0, {len(class_names)}) and not equal to "
            f"ignore_index={ignore_index}; pass the full class_names list or the right "
            "ignore_index."
        )
    if not present:
        return img.copy()
    masks = np.stack([s == c for c in present])  # (C', H, W)
    n = len(present)
    out, _ = _render(
        img,
        masks,
        _colors_for_ids(np.array(present)),
        np.full(n, alpha),
        np.full(n, contour_width if contours else 0),
        None,
        1,
        [class_names[c] if show_tags else None for c in present],
        "center",
        np.full(n, _TAG_BG_ALPHA_LIGHT),
        font_size,
    )
    return out


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a five-pointed star (outer radius ``r``), first point up."""
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * 0.45
        ang = -math.pi / 2 + k * math.pi / 5
        pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
    return pts


def draw_prompts(
    image: np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    *,
    marker: str = "star",
    marker_size: int | None = None,
    box_color: tuple[int, int, int] = POSITIVE_COLOR,
) -> np.ndarray:
    """Draw SAM-style prompt markers.

    Positive clicks (label 1) are green (:data:`POSITIVE_COLOR`), negative clicks (label 0) red
    (:data:`NEGATIVE_COLOR`), each a filled star (or circle) with a white outline so it reads on
    any background; label -1 (SAM's padding point) is skipped. Boxes are drawn as a coloured
    rectangle over a white one.

    Args:
        image: RGB image, shape (H, W, 3), uint8.
        points: Click coordinates, shape (n, 2), ``(x, y)`` pixels.
        labels: Click labels, shape (n,): 1 positive, 0 negative, -1 ignored. Default: all 1.
        boxes: Box prompts, shape (m, 4) (or (4,)), XYXY pixels.
        marker: ``"star"`` or ``"circle"``.
        marker_size: Marker radius in px; default scales with the image size.
        box_color: RGB colour of box prompts.

    Returns:
        The image with markers, shape (H, W, 3), uint8.

    Raises:
        ValueError: On bad shapes, non-finite coordinates or labels other than 1 / 0 / -1.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    if marker not in ("star", "circle"):
        raise ValueError(f"marker must be 'star' or 'circle', got {marker!r}.")
    pts = np.zeros((0, 2))
    if points is not None:
        pts = _to_numpy(points).astype(np.float64)
        if pts.size == 0:
            pts = np.zeros((0, 2))
        if pts.ndim == 1 and pts.shape[0] == 2:
            pts = pts[None]  # (1, 2)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must have shape (n, 2) as (x, y) pixels, got {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise ValueError("points contain NaN or inf.")
    if labels is None:
        lab = np.ones(len(pts), dtype=np.int64)
    else:
        lab = _to_numpy(labels).reshape(-1)
        if lab.shape[0] != pts.shape[0]:
            raise ValueError(
                f"labels has {lab.shape[0]} entries but points has {pts.shape[0]}; "
                "pass one label (1 positive / 0 negative) per point."
            )
        bad = sorted({int(v) for v in lab} - {1, 0, -1})
        if bad:
            raise ValueError(
                f"labels must be 1 (positive), 0 (negative) or -1 (ignored), got {bad}."
            )
    bx = _check_boxes(boxes, None) if boxes is not None else np.zeros((0, 4))
    if len(pts) == 0 and len(bx) == 0:
        return img.copy()

    r = marker_size if marker_size is not None else _auto_marker_radius(h, w)
    outline = max(1, round(r / 5))
    canvas = Image.fromarray(img)
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(r / 4))
    for x0, y0, x1, y1 in bx:
        rect = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        draw.rectangle(rect, outline=(255, 255, 255), width=line + 2)
        draw.rectangle(rect, outline=tuple(box_color), width=line)
    for (x, y), lb in zip(pts, lab):
        if lb == -1:
            continue
        color = POSITIVE_COLOR if lb == 1 else NEGATIVE_COLOR
        if marker == "star":
            draw.polygon(_star(x, y, r + outline), fill=(255, 255, 255))
            draw.polygon(_star(x, y, r), fill=color)
        else:
            ro = r + outline
            draw.ellipse([x - ro, y - ro, x + ro, y + ro], fill=(255, 255, 255))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
    return np.asarray(canvas)


def legend(
    names: Sequence[str],
    colors: np.ndarray | Sequence[Sequence[int]],
    *,
    font_size: int = 14,
    max_rows: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    text_color: tuple[int, int, int] = (20, 20, 20),
) -> np.ndarray:
    """Render a legend: one colour swatch and name per row.

    Args:
        names: Entry names, length K.
        colors: RGB per entry, shape (K, 3) in [0, 255].
        font_size: Text size in px.
        max_rows: Wrap into several columns after this many rows (None = one column).
        background: Background RGB.
        text_color: Text RGB.

    Returns:
        The legend image, shape (h, w, 3), uint8. With K = 0, a small blank image.

    Raises:
        ValueError: If ``names`` and ``colors`` differ in length, or ``max_rows < 1``.
    """
    names = [str(s) for s in names]
    k = len(names)
    cols = _check_colors(colors, k) if k else np.zeros((0, 3), np.uint8)
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}.")
    font = _font(int(font_size))
    pad = max(2, font_size // 3)
    _, th, _, oy = _text_size(font, "Ag")
    row_h = max(th, font_size) + pad
    sw = row_h - pad  # square swatch
    if k == 0:
        return np.full((row_h + pad, 2 * pad + sw, 3), background, np.uint8)
    rows = k if max_rows is None else min(max_rows, k)
    ncols = math.ceil(k / rows)
    widths = [_text_size(font, s)[0] for s in names]
    col_w = [
        pad + sw + pad + max(widths[c * rows : (c + 1) * rows]) + pad for c in range(ncols)
    ]
    canvas = Image.new("RGB", (sum(col_w) + pad, rows * row_h + pad), background)
    draw = ImageDraw.Draw(canvas)
    for j, (name, col) in enumerate(zip(names, cols)):
        c, r = divmod(j, rows)
        x = pad + sum(col_w[:c])
        y = pad + r * row_h
        fill = tuple(int(v) for v in col)
        draw.rectangle([x, y, x + sw - 1, y + sw - 1], fill=fill, outline=(60, 60, 60))
        lx = x + sw + pad - font.getbbox(name)[0]
        draw.text((lx, y + (sw - th) // 2 + oy), name, fill=text_color, font=font)
    return np.asarray(canvas)


def hstack_images(
    images: Sequence[np.ndarray],
    pad: int = 8,
    pad_value: int = 255,
    *,
    titles: Sequence[str] | None = None,
    font_size: int = 16,
) -> np.ndarray:
    """Place images side by side (top-aligned) with ``pad`` px gaps, e.g. input | masks | panoptic.

    Args:
        images: RGB (H_i, W_i, 3) or grayscale (H_i, W_i) uint8 images.
        pad: Gap between panels (and outer margin) in px.
        pad_value: Grey level of the gaps and of the fill under shorter images.
        titles: Optional caption drawn above each panel.
        font_size: Caption size in px.

    Returns:
        Array of shape (max H_i [+ caption band] + 2 pad, sum W_i + (k + 1) pad, 3), uint8.

    Raises:
        ValueError: On an empty list, a non-uint8 or wrongly shaped image, or a ``titles``
            length that differs from ``images``.
    """
    if len(images) == 0:
        raise ValueError("hstack_images needs at least one image.")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}.")
    ims = []
    for k, im in enumerate(images):
        a = _to_numpy(im)
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)  # (H, W, 3)
        ims.append(_check_image(a, name=f"images[{k}]"))
    if titles is not None and len(titles) != len(ims):
        raise ValueError(f"titles has {len(titles)} entries for {len(ims)} images.")
    font = _font(int(font_size))
    band = 0
    if titles is not None:
        _, th, _, _ = _text_size(font, "Ag")
        band = th + pad + max(2, font_size // 4)
    H = max(a.shape[0] for a in ims) + band + 2 * pad
    W = sum(a.shape[1] for a in ims) + (len(ims) + 1) * pad
    out = np.full((H, W, 3), pad_value, dtype=np.uint8)
    x = pad
    for a in ims:
        out[pad + band : pad + band + a.shape[0], x : x + a.shape[1]] = a
        x += a.shape[1] + pad
    if titles is not None:
        canvas = Image.fromarray(out)
        draw = ImageDraw.Draw(canvas)
        x = pad
        _, _, _, oy = _text_size(font, "Ag")
        ink = (20, 20, 20) if pad_value >= 128 else (235, 235, 235)
        for a, t in zip(ims, titles):
            draw.text((x - font.getbbox(str(t))[0], pad + oy), str(t), fill=ink, font=font)
            x += a.shape[1] + pad
        out = np.asarray(canvas)
    return out
