"""Training samples for the three sources of the official co-training recipe.

* ``panoptic``: a COCO-panoptic image as a 2-frame pseudo-video (official ``ImageCopy``): flip and
  resize shared, an **independent random crop** per copy; things and stuff are targets; instance ids
  are kept so a segment is one tube across the two copies.
* ``video``: a 2-frame clip of a YouTube-VIS video (``VideoClipSample(num_selected=2, interval=2)``),
  flip / resize / crop shared by the frames.
* ``prompt``: a COCO-panoptic image, class-agnostic (all segments, things and stuff; masks smaller
  than 32 px dropped after augmentation), ``num_prompts`` clicks, each uniform inside a random
  segment (official ``GeneratePoint``), the target being that segment. Our extensions, each with a
  probability: a box prompt (the segment's tight box) instead of the click, extra positive clicks,
  and negative clicks (in the segment's box but outside the segment).

Every random choice is a pure function of ``(seed, iteration, global item index)``
(``sample_rng``), so the data a run sees does not depend on worker count, world size or restarts:
a resumed run continues with exactly the items the uninterrupted run would have used, and two DDP
ranks with batch 1 see the same items as one process with batch 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SOURCES = ("panoptic", "video", "prompt")


def sample_rng(seed: int, iteration: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one item (or of an iteration when ``index`` = -1)."""
    return np.random.default_rng([seed, iteration, index + 1, stream])


def choose_source(seed: int, iteration: int, mix: dict[str, float]) -> str:
    """Source of an iteration (every item of an iteration comes from one source, as in the official recipe)."""
    names = [s for s in SOURCES if mix.get(s, 0) > 0]
    p = np.array([mix[s] for s in names], dtype=np.float64)
    return names[int(sample_rng(seed, iteration, -1).choice(len(names), p=p / p.sum()))]


# ------------------------------------------------------------------------------------ geometry
@dataclass
class Aug:
    """Augmentation parameters: flip, resize ratio and crop size (h, w)."""

    crop: tuple[int, int]
    ratio_range: tuple[float, float]
    flip_prob: float = 0.5


def resize_for_ratio(h: int, w: int, crop: tuple[int, int], ratio: float) -> tuple[int, int]:
    """mmdet ``RandomResize(scale=crop, ratio_range, keep_ratio=True)``: fit (ratio*crop) keeping aspect."""
    th, tw = crop[0] * ratio, crop[1] * ratio
    f = min(max(th, tw) / max(h, w), min(th, tw) / min(h, w))
    return max(1, int(h * f + 0.5)), max(1, int(w * f + 0.5))


def _resize_image(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H, W) float 0-255 -> resized (bilinear)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False).round_().clamp_(0, 255)


def _resize_masks(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, T, H, W) bool -> nearest-resized bool."""
    if tuple(m.shape[-2:]) == tuple(size) or m.numel() == 0:
        return m.reshape(*m.shape[:-2], *size) if m.numel() == 0 else m
    n, t = m.shape[:2]
    out = F.interpolate(m.reshape(n * t, 1, *m.shape[-2:]).float(), size=size, mode="nearest-exact")  # half-pixel centres, as the bilinear image
    return out.reshape(n, t, *size) > 0.5


def random_crop_box(rng: np.random.Generator, h: int, w: int, crop: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, x0, ch, cw) of a random crop of at most ``crop`` inside an h x w image."""
    ch, cw = min(crop[0], h), min(crop[1], w)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    return y0, x0, ch, cw


def augment(
    rng: np.random.Generator,
    frames: np.ndarray,
    masks: np.ndarray,
    aug: Aug,
    independent_crops: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip, keep-ratio resize and crop, applied consistently to frames and masks.

    Args:
        frames: (T, H, W, 3) uint8.
        masks: (N, T, H, W) bool.
        independent_crops: a separate random crop per frame (pseudo-videos), else one shared crop.

    Returns:
        frames (T, 3, h, w) float 0-255 and masks (N, T, h, w) bool with h <= crop_h, w <= crop_w
        (not yet padded).
    """
    img = torch.from_numpy(np.array(frames, copy=True)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    m = torch.from_numpy(np.ascontiguousarray(masks))
    if rng.random() < aug.flip_prob:
        img = img.flip(-1)
        m = m.flip(-1)
    ratio = float(rng.uniform(*aug.ratio_range))
    size = resize_for_ratio(img.shape[-2], img.shape[-1], aug.crop, ratio)
    img = _resize_image(img, size)
    m = _resize_masks(m, size)
    t = img.shape[0]
    boxes = [random_crop_box(rng, *size, aug.crop) for _ in range(t if independent_crops else 1)]
    if not independent_crops:
        y0, x0, ch, cw = boxes[0]
        return img[..., y0 : y0 + ch, x0 : x0 + cw], m[..., y0 : y0 + ch, x0 : x0 + cw]
    ch, cw = boxes[0][2], boxes[0][3]  # same crop size for every frame (same resized image)
    img_out = torch.stack([img[i, :, y : y + ch, x : x + cw] for i, (y, x, _, _) in enumerate(boxes)])
    m_out = torch.stack([m[:, i, y : y + ch, x : x + cw] for i, (y, x, _, _) in enumerate(boxes)], 1)
    return img_out, m_out


# ------------------------------------------------------------------------------------ prompts
@dataclass
class PromptSampling:
    """How prompts are drawn from segments.

    Attributes:
        num_prompts: prompts per image (official 30; segments repeat when fewer).
        max_clicks: clicks per prompt tensor (padding with label -1).
        box_prob: probability that a prompt is the segment's box instead of a click.
        extra_pos_prob: probability of adding 1..max_clicks-1 extra positive clicks.
        neg_prob: probability of adding one negative click (in the box, outside the segment).
    """

    num_prompts: int = 30
    max_clicks: int = 1
    box_prob: float = 0.0
    extra_pos_prob: float = 0.0
    neg_prob: float = 0.0


def sample_prompts(
    rng: np.random.Generator, masks: np.ndarray, cfg: PromptSampling
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw prompts from segment masks (official ``GeneratePoint`` + extensions).

    Args:
        masks: (N, H, W) bool, N >= 1, every mask non-empty.

    Returns:
        points (P, n, 2) float32 (x, y) pixel centres, labels (P, n) int64 (1/0/-1), boxes (P, 4)
        float32 xyxy with NaN rows for click prompts, and the index of each prompt's segment (P,).
    """
    n_seg = masks.shape[0]
    reps = -(-cfg.num_prompts // n_seg)
    order = np.concatenate([rng.permutation(n_seg) for _ in range(reps)])[: cfg.num_prompts]
    p, k = cfg.num_prompts, max(1, cfg.max_clicks)
    points = np.zeros((p, k, 2), np.float32)
    labels = np.full((p, k), -1, np.int64)
    boxes = np.full((p, 4), np.nan, np.float32)
    for i, s in enumerate(order):
        ys, xs = np.nonzero(masks[s])
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        if cfg.box_prob > 0 and rng.random() < cfg.box_prob:
            boxes[i] = (x0, y0, x1, y1)
            continue
        j = int(rng.integers(len(xs)))
        points[i, 0] = (xs[j] + 0.5, ys[j] + 0.5)
        labels[i, 0] = 1
        used = 1
        if k > 1 and cfg.extra_pos_prob > 0 and rng.random() < cfg.extra_pos_prob:
            extra = int(rng.integers(1, k))
            for _ in range(min(extra, k - used)):
                j = int(rng.integers(len(xs)))
                points[i, used] = (xs[j] + 0.5, ys[j] + 0.5)
                labels[i, used] = 1
                used += 1
        if used < k and cfg.neg_prob > 0 and rng.random() < cfg.neg_prob:
            region = np.zeros_like(masks[s])
            region[y0:y1, x0:x1] = True
            region &= ~masks[s]
            ny, nx = np.nonzero(region)
            if len(nx):
                j = int(rng.integers(len(nx)))
                points[i, used] = (nx[j] + 0.5, ny[j] + 0.5)
                labels[i, used] = 0
    return points, labels, boxes, order


# ------------------------------------------------------------------------------------ items
@dataclass
class TrainItem:
    """One training item before batching.

    Attributes:
        source: "panoptic", "video" or "prompt".
        frames: (T, 3, h, w) float 0-255 (T = 2 for panoptic/video, 1 for prompt).
        labels: (N,) long training-vocabulary indices (object sources).
        masks: (N, T, h, w) bool (object sources) or (P, h, w) prompt targets.
        points, point_labels, boxes: prompt tensors (prompt source).
    """

    source: str
    frames: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None


def object_item(source: str, frames: torch.Tensor, masks: torch.Tensor, labels: np.ndarray) -> TrainItem:
    keep = masks.flatten(1).any(1) if masks.numel() else torch.zeros(0, dtype=torch.bool)
    return TrainItem(source, frames, torch.as_tensor(labels, dtype=torch.long)[keep], masks[keep])


def prompt_item(rng: np.random.Generator, frames: torch.Tensor, masks: torch.Tensor, cfg: PromptSampling,
                min_area: int = 32) -> TrainItem | None:
    m = masks[:, 0]  # (N, h, w)
    keep = m.flatten(1).sum(1) >= min_area
    m = m[keep]
    if m.shape[0] == 0:
        return None
    pts, lab, boxes, order = sample_prompts(rng, m.numpy(), cfg)
    return TrainItem(
        "prompt", frames, torch.zeros(0, dtype=torch.long), m[torch.from_numpy(order)],
        torch.from_numpy(pts), torch.from_numpy(lab), torch.from_numpy(boxes),
    )


@dataclass
class Batch:
    """A padded batch from one source.

    Attributes:
        images: (B*T, 3, H, W) normalised and zero-padded to the crop size.
        num_frames: T.
        object_labels / object_masks: per item (object sources).
        prompts: model ``Prompts`` (prompt source) and prompt_masks per item (P, H, W).
    """

    source: str
    images: torch.Tensor
    num_frames: int
    labels: list[torch.Tensor]
    masks: list[torch.Tensor]
    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    image_sizes: torch.Tensor | None = None


def collate(items: list[TrainItem], crop: tuple[int, int], mean: torch.Tensor, std: torch.Tensor) -> Batch:
    """Normalise, zero-pad every item to ``crop`` (official ``BatchFixedSizePad``) and stack."""
    src = items[0].source
    if any(it.source != src for it in items):
        raise ValueError("a batch must come from one source")
    h, w = crop
    imgs, masks, sizes = [], [], []
    for it in items:
        x = (it.frames - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)  # (T, 3, h, w)
        ph, pw = h - x.shape[-2], w - x.shape[-1]
        imgs.append(F.pad(x, (0, pw, 0, ph)))
        masks.append(F.pad(it.masks, (0, pw, 0, ph)))
        sizes.append((x.shape[-2], x.shape[-1]))
    t = items[0].frames.shape[0]
    batch = Batch(src, torch.cat(imgs), t, [it.labels for it in items], masks)
    if src == "prompt":
        batch.points = torch.stack([it.points for it in items])
        batch.point_labels = torch.stack([it.point_labels for it in items])
        batch.boxes = torch.stack([it.boxes for it in items])
        batch.image_sizes = torch.tensor(sizes)
    return batch
