"""The backbone contract the neck reads (timm's ``features_only`` idea).

A backbone maps a normalised image batch ``(B, 3, H, W)`` to a list of feature maps ordered fine to
coarse. It exposes ``channels`` and ``strides`` (one entry per returned map) so the neck never
hard-codes widths; inputs are expected padded to a multiple of ``max(strides)``.
"""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Base class: subclasses set ``channels`` / ``strides`` and implement ``forward``.

    ``norm_eval``: keep every BatchNorm in eval mode while training (frozen running statistics, as the
    official recipe does for the ResNet backbone); the affine parameters still learn.
    """

    channels: tuple[int, ...]
    strides: tuple[int, ...]

    def __init__(self, norm_eval: bool = False) -> None:
        super().__init__()
        self.norm_eval = norm_eval

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def load_pretrained(self, path: str) -> None:
        """Load ImageNet weights a user holds (a local file); implemented per backbone."""
        raise NotImplementedError(f"{type(self).__name__} has no pretrained-weights loader")
