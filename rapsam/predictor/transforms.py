"""Test-time pre-processing identical to the official pipeline, and its inverse for masks.

Official test pipeline (mmdet): keep-ratio resize so the image fits ``scale = (1333, 800)`` (long, short
side; mmcv ``rescale_size``: factor = min(1333 / long, 800 / short), new size = int(side * factor + 0.5)),
bilinear, uint8 result; normalise with the ImageNet mean/std (RGB); zero-pad bottom/right to a
multiple of 32. Predicted mask logits go back by bilinear upsampling to the padded size, cropping to
the resized image and bilinear resizing to the original size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def resized_shape(h: int, w: int, scale: tuple[int, int] | None) -> tuple[int, int]:
    """mmcv keep-ratio ``rescale_size``: (h, w) fitting (long, short) = ``scale``; None = unchanged."""
    if scale is None:
        return h, w
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


@dataclass
class PreparedImage:
    """A pre-processed image batch of one.

    Attributes:
        tensor: (1, 3, Hp, Wp) normalised and padded.
        ori_size: (H, W) of the input image.
        img_size: (h, w) after resizing (before padding).
        pad_size: (Hp, Wp).
    """

    tensor: torch.Tensor
    ori_size: tuple[int, int]
    img_size: tuple[int, int]
    pad_size: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """(w_scale, h_scale) from original to model-frame pixels."""
        return self.img_size[1] / self.ori_size[1], self.img_size[0] / self.ori_size[0]


def prepare_image(
    image: np.ndarray,
    scale: tuple[int, int] | None,
    mean: torch.Tensor,
    std: torch.Tensor,
    size_divisor: int = 32,
    device: torch.device | str = "cpu",
) -> PreparedImage:
    """(H, W, 3) uint8 RGB -> ``PreparedImage``."""
    h, w = image.shape[:2]
    nh, nw = resized_shape(h, w, scale)
    x = torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False).round_().clamp_(0, 255)
    x = (x - mean.view(1, 3, 1, 1).to(x)) / std.view(1, 3, 1, 1).to(x)
    ph, pw = -(-nh // size_divisor) * size_divisor, -(-nw // size_divisor) * size_divisor
    if (ph, pw) != (nh, nw):
        x = F.pad(x, (0, pw - nw, 0, ph - nh))
    return PreparedImage(x, (h, w), (nh, nw), (ph, pw))


def logits_to_original(
    logits: torch.Tensor, pad_size: tuple[int, int], img_size: tuple[int, int], ori_size: tuple[int, int]
) -> torch.Tensor:
    """(N, h4, w4) stride-4 logits -> (N, H, W) logits at the original size (official order)."""
    if logits.shape[0] == 0:
        return logits.new_zeros((0, *ori_size))
    x = F.interpolate(logits[None], size=pad_size, mode="bilinear", align_corners=False)
    x = x[..., : img_size[0], : img_size[1]]
    if tuple(img_size) != tuple(ori_size):
        x = F.interpolate(x, size=ori_size, mode="bilinear", align_corners=False)
    return x[0]
