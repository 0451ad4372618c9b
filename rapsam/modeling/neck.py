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

Inference copies made by ``rapsam.modeling.fuse`` switch on faster kernels with the same numbers
(to ~1e-6): ``deform_conv3x3_sampled`` for DCNv2, the CoordConv without its concatenation
(``_split_coord_conv``) or kept factored (``factored_features``). The module's own forward, used in
training, is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from .factored import FactoredFeatures


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
        # Set only by Conv-BN folding (``rapsam.modeling.fuse``): the folded BN shift, passed to
        # deform_conv2d as its bias. Non-persistent, so checkpoints never hold it.
        self.register_buffer("dcn_bias", None, persistent=False)
        # Inference copies (``rapsam.modeling.fuse``) set this: DCNv2 through ``deform_conv3x3_sampled``
        # (same numbers to ~1e-6, several times faster on CPU) instead of torchvision's kernel.
        self.sampled_dcn = False
        nn.init.kaiming_uniform_(self.dcn_weight, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_mask = self.dcn_offset(x)  # (B, 27, H, W)
        o1, o2, mask = torch.chunk(offset_mask, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)  # (B, 18, H, W)
        if self.sampled_dcn:
            x = deform_conv3x3_sampled(x, offset, self.dcn_weight, self.dcn_bias, mask.sigmoid())
        else:
            x = deform_conv2d(x, offset, self.dcn_weight, self.dcn_bias, padding=(1, 1), mask=mask.sigmoid())
        x = F.relu(self.dcn_bn(x))
        return F.relu(self.up_bn(self.up_sample(x)))  # (B, C_out, 2H, 2W)


def deform_conv3x3_sampled(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """Modulated deformable 3x3 convolution (stride 1, padding 1, one offset group) by sampling.

    Equals ``torchvision.ops.deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)`` in real
    arithmetic. Bilinear sampling with zeros outside the map is linear and commutes with the channel
    mixing, so each kernel tap's weights are applied first (one 1x1 convolution giving 9 x C_out maps)
    and the C_out-channel results are sampled at the tap's offset positions (``grid_sample``), then
    modulated and summed over taps. This samples C_out instead of C_in channels and avoids
    torchvision's per-element CPU im2col; it is meant for inference (training keeps torchvision's op).

    Args:
        x: (B, C_in, H, W) input.
        offset: (B, 18, H, W), channel 2k = dy and 2k + 1 = dx of tap k = 3 * row + col.
        weight: (C_out, C_in, 3, 3).
        bias: (C_out,) or None.
        mask: (B, 9, H, W) modulation (already sigmoid-ed).

    Returns:
        (B, C_out, H, W).
    """
    b, _, h, w = x.shape
    cout = weight.shape[0]
    taps = weight.permute(2, 3, 0, 1).reshape(9 * cout, -1, 1, 1)  # (9*C_out, C_in, 1, 1), tap-major
    z = F.conv2d(x, taps).contiguous()  # (B, 9*C_out, H, W)
    k = torch.arange(9, device=x.device)
    ky = (k // 3 - 1).to(x.dtype).view(1, 9, 1, 1)
    kx = (k % 3 - 1).to(x.dtype).view(1, 9, 1, 1)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1) + ky + offset[:, 0::2]  # (B, 9, H, W)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w) + kx + offset[:, 1::2]
    # pixel -> normalised coordinate for align_corners=False (valid for maps of any size, even 1x1)
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), -1).reshape(b * 9, h, w, 2)
    s = F.grid_sample(z.view(b * 9, cout, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = (s.view(b, 9, cout, h, w) * mask.reshape(b, 9, 1, h, w)).sum(1)  # (B, C_out, H, W)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


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
        if self.split_coord_conv:
            return self._split_coord_conv(x)
        x = torch.cat([x, coord_features(x)], 1)  # (B, agg_dim + 2, H/4, W/4)
        return self.loc_conv(x)  # (B, hidden_dim, H/4, W/4)

    #: Inference copies (``rapsam.modeling.fuse``) set this: CoordConv as W_x . x + (W_c . coords + b).
    split_coord_conv = False

    def _split_coord_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The CoordConv 1x1 without the concatenation: the coordinate part is a constant map per
        size (cached), and the GEMM writes F in contiguous NCHW whatever the layout of ``x``."""
        b, c, h, w = x.shape
        weight = self.loc_conv.weight[:, :, 0, 0]  # (C, agg_dim + 2)
        key = (h, w, x.dtype, x.device, weight.data_ptr(), weight._version)
        cache = self.__dict__.setdefault("_coord_cache", {})
        if cache.get("key") != key:
            coords = coord_features(x[:1]).reshape(2, h * w)  # (2, h*w)
            bias = self.loc_conv.bias if self.loc_conv.bias is not None else weight.new_zeros(weight.shape[0])
            cache.clear()
            cache.update(key=key, map=torch.addmm(bias[:, None], weight[:, c:], coords))  # (C, h*w)
        out = torch.matmul(weight[:, :c], x.flatten(2))  # (B, C, h*w)
        out += cache["map"]
        return out.view(b, -1, h, w)

    def factored_features(self, x: torch.Tensor) -> FactoredFeatures:
        """The CoordConv output kept factored (``rapsam.modeling.factored``): x (B, agg_dim, h, w) from
        ``fpn`` -> F = W . [x; xs; ys; 1] without computing the 256-channel map."""
        b, c, h, w = x.shape
        cache = self.__dict__.setdefault("_basis_cache", {})
        key = (h, w, x.dtype, x.device)
        if cache.get("key") != key:
            coords = coord_features(x[:1])[0].permute(1, 2, 0)  # (h, w, 2) as (x, y)
            cache.clear()
            cache.update(key=key, extra=torch.cat([coords, coords.new_ones(h, w, 1)], -1))  # (h, w, 3)
        basis = torch.cat([x.permute(0, 2, 3, 1), cache["extra"].expand(b, h, w, 3)], -1)  # (B, h, w, agg+3)
        weight = self.loc_conv.weight[:, :, 0, 0]  # (C, agg+2)
        bias = self.loc_conv.bias if self.loc_conv.bias is not None else weight.new_zeros(weight.shape[0])
        return FactoredFeatures(basis, torch.cat([weight, bias[:, None]], 1))  # weight (C, agg+3)
