"""The RAP-SAM neck: YOSO's lite deformable FPN, CFA fusion and CoordConv (one stride-4 map F).

Follows YOSO ("You Only Segment Once", Hu et al., CVPR 2023) as used by the official RAP-SAM
``YOSONeck(agg_dim=128, hidden_dim=256)``; see ``design/official-rapsam.md`` section 2.3.

1. Top-down path: 1x1 lateral convs (c -> c/2) and ``DeformLayer`` blocks (DCNv2 3x3 -> BN -> ReLU ->
   stride-2 transposed conv -> BN -> ReLU) that upsample the coarser level and add it to the lateral.
2. CFA: 1x1 convs take every level to ``agg_dim``, bilinear upsampling to the finest level, sum, a
   learnable bias, and a 3x3 output conv.
3. CoordConv: concatenate normalised (x, y) in [-1, 1] and a 1x1 conv to ``hidden_dim``.

DCNv2 runs through ``torchvision.ops.deform_conv2d`` (same offset layout as mmcv's
``ModulatedDeformConv2d``: the offset conv emits [dy/dx interleaved (18), mask logits (9)]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d


class DeformLayer(nn.Module):
    """Modulated deformable 3x3 conv + BN + ReLU, then x2 transposed-conv upsampling + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.dcn_offset = nn.Conv2d(in_channels, 27, kernel_size=3, padding=1)
        self.dcn_weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.dcn_bn = nn.BatchNorm2d(out_channels)
        self.up_sample = nn.ConvTranspose2d(
            out_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False
        )
        self.up_bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_uniform_(self.dcn_weight, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_mask = self.dcn_offset(x)  # (B, 27, H, W)
        o1, o2, mask = torch.chunk(offset_mask, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)  # (B, 18, H, W)
        x = deform_conv2d(x, offset, self.dcn_weight, padding=(1, 1), mask=mask.sigmoid())
        x = F.relu(self.dcn_bn(x))
        return F.relu(self.up_bn(self.up_sample(x)))  # (B, C_out, 2H, 2W)


class LiteDeformFPN(nn.Module):
    """Top-down deformable FPN over four levels plus CFA fusion into one map of ``agg_dim`` channels.

    Args:
        in_channels: backbone widths, fine to coarse (four levels, each 2x apart).
        agg_dim: width of the fused map (128 in the official config).
    """

    def __init__(self, in_channels: tuple[int, ...], agg_dim: int = 128) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"the neck takes 4 backbone levels, got {len(in_channels)}")
        c2, c3, c4, c5 = in_channels
        h2, h3, h4, h5 = c2 // 2, c3 // 2, c4 // 2, c5 // 2
        self.lateral_conv0 = nn.Conv2d(c5, h5, 1)
        self.deform_conv1 = DeformLayer(h5, h4)
        self.lateral_conv1 = nn.Conv2d(c4, h4, 1)
        self.deform_conv2 = DeformLayer(h4, h3)
        self.lateral_conv2 = nn.Conv2d(c3, h3, 1)
        self.deform_conv3 = DeformLayer(h3, h2)
        self.lateral_conv3 = nn.Conv2d(c2, h2, 1)
        self.output_conv = nn.Conv2d(agg_dim, agg_dim, 3, padding=1)
        self.bias = nn.Parameter(torch.zeros(1, agg_dim, 1, 1))
        self.conv_a5 = nn.Conv2d(h5, agg_dim, 1, bias=False)
        self.conv_a4 = nn.Conv2d(h4, agg_dim, 1, bias=False)
        self.conv_a3 = nn.Conv2d(h3, agg_dim, 1, bias=False)
        self.conv_a2 = nn.Conv2d(h2, agg_dim, 1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        c2, c3, c4, c5 = feats
        x5 = self.lateral_conv0(c5)
        x4 = self.lateral_conv1(c4) + self.deform_conv1(x5)
        x3 = self.lateral_conv2(c3) + self.deform_conv2(x4)
        x2 = self.lateral_conv3(c2) + self.deform_conv3(x3)
        size = x2.shape[-2:]
        y5 = _upsample(self.conv_a5(x5), 8, size)
        y4 = _upsample(self.conv_a4(x4), 4, size)
        y3 = _upsample(self.conv_a3(x3), 2, size)
        x = y5 + y4 + y3 + self.conv_a2(x2) + self.bias  # (B, agg_dim, H/4, W/4)
        return self.output_conv(x)


def _upsample(x: torch.Tensor, factor: int, size: torch.Size) -> torch.Tensor:
    # Same numbers as the official scale_factor call when sizes are exact multiples.
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def coord_features(x: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) coordinates in [-1, 1] of shape (B, 2, H, W) matching ``x``."""
    b, _, h, w = x.shape
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    y, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, y], 0)[None].expand(b, -1, -1, -1)


class RapSamNeck(nn.Module):
    """Backbone levels -> F (B, hidden_dim, H/4, W/4): deformable FPN, CFA fusion, CoordConv."""

    def __init__(self, in_channels: tuple[int, ...], agg_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__()
        self.fpn = LiteDeformFPN(in_channels, agg_dim)
        self.loc_conv = nn.Conv2d(agg_dim + 2, hidden_dim, 1)
        self.out_channels = hidden_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The official YOSONeck.init_weights: xavier_uniform on every parameter with dim > 1.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.fpn(feats)  # (B, agg_dim, H/4, W/4)
        x = torch.cat([x, coord_features(x)], 1)  # (B, agg_dim + 2, H/4, W/4)
        return self.loc_conv(x)  # (B, hidden_dim, H/4, W/4)
