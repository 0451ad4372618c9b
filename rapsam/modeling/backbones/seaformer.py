"""SeaFormer backbones (Tiny / Small / Base / Large).

Paper: Wan et al., "SeaFormer: Squeeze-enhanced Axial Transformer for Mobile Semantic Segmentation",
ICLR 2023 (arXiv 2301.13156); the same backbone is used by SeaFormer++ (IJCV 2025). Architecture facts,
variant tables, parameter counts and checkpoint key names follow the design notes ``design/backbones.md``
sections 2-4, read from the official code (``fudan-zvg/SeaFormer``, ``seaformer-cls/seaformer.py``); this
file is our own implementation.

Structure: a stem + five MobileNetV2 stages ``smb1..smb5`` (strides 4, 8, 16, 32, 64), with SeaFormer
layers ``trans*`` appended to the last two (T/S/B) or three (L) stages. Module names equal the official
ones (``smb1.stem_block.0.c.weight``, ``smb2.layer1.conv.0.bn.weight``,
``trans1.transformer_blocks.0.attn.to_q.c.weight`` ...), so a timm classification checkpoint loads one to one.

RAP-SAM uses ``full=False`` ("Option A" of design/backbones.md section 3): smb5 and the last SeaFormer
layer are not built and the backbone returns the outputs of smb1, smb2, smb3 (+trans1 for L) and smb4
(+trans) at strides 4, 8, 16, 32 -- for Large, channels ``(64, 128, 192, 256)``. ``full=True`` builds the
whole official network (without the classifier) and returns its last four stage outputs at strides 8, 16,
32, 64 ("Option B"; for Large exactly the official segmentation outputs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone
from .stdc import _check_image, _load_checked, _read_state_dict, _select_nested

__all__ = [
    "SEAFORMER_VARIANTS",
    "SeaFormer",
    "seaformer_base",
    "seaformer_large",
    "seaformer_small",
    "seaformer_tiny",
]

# Length of the learned squeeze-axial positional tables (resampled to the actual H or W).
_POS_EMBED_LEN = 16

# (kernel, expansion, out channels, stride) rows per MV2 stage smb1..smb5, design/backbones.md 2.2.
_Rows = tuple[tuple[int, int, int, int], ...]

SEAFORMER_VARIANTS: dict[str, dict] = {
    "tiny": {
        "stem_channels": 16,
        "stage_cfgs": (
            ((3, 1, 16, 1), (3, 4, 16, 2), (3, 3, 16, 1)),
            ((5, 3, 32, 2), (5, 3, 32, 1)),
            ((3, 3, 64, 2), (3, 3, 64, 1)),
            ((5, 3, 128, 2),),
            ((3, 6, 160, 2),),
        ),
        "emb_dims": (128, 160),
        "depths": (2, 2),
        "num_heads": 4,
        "key_dims": (16, 24),
        "mlp_ratios": (2, 4),
    },
    "small": {
        "stem_channels": 16,
        "stage_cfgs": (
            ((3, 1, 16, 1), (3, 4, 24, 2), (3, 3, 24, 1)),
            ((5, 3, 48, 2), (5, 3, 48, 1)),
            ((3, 3, 96, 2), (3, 3, 96, 1)),
            ((5, 4, 160, 2),),
            ((3, 6, 192, 2),),
        ),
        "emb_dims": (160, 192),
        "depths": (3, 3),
        "num_heads": 6,
        "key_dims": (16, 24),
        "mlp_ratios": (2, 4),
    },
    "base": {
        "stem_channels": 16,
        "stage_cfgs": (
            ((3, 1, 16, 1), (3, 4, 32, 2), (3, 3, 32, 1)),
            ((5, 3, 64, 2), (5, 3, 64, 1)),
            ((3, 3, 128, 2), (3, 3, 128, 1)),
            ((5, 4, 192, 2),),
            ((3, 6, 256, 2),),
        ),
        "emb_dims": (192, 256),
        "depths": (4, 4),
        "num_heads": 8,
        "key_dims": (16, 24),
        "mlp_ratios": (2, 4),
    },
    "large": {
        "stem_channels": 32,
        "stage_cfgs": (
            ((3, 3, 32, 1), (3, 4, 64, 2), (3, 4, 64, 1)),
            ((5, 4, 128, 2), (5, 4, 128, 1)),
            ((3, 4, 192, 2), (3, 4, 192, 1)),
            ((5, 4, 256, 2),),
            ((3, 6, 320, 2),),
        ),
        "emb_dims": (192, 256, 320),
        "depths": (3, 3, 3),
        "num_heads": 8,
        "key_dims": (16, 20, 24),
        "mlp_ratios": (2, 4, 6),
    },
}


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------
class Conv2dBN(nn.Sequential):
    """Conv2d (no bias) followed by BatchNorm2d; children named ``c`` and ``bn`` as upstream.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size; padding is ``kernel_size // 2``.
        stride: conv stride.
        groups: conv groups (``in_channels`` for depthwise).
        bn_weight_init: initial BN scale (0 makes the unit output its BN bias at initialisation).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module(
            "c",
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                kernel_size // 2,
                groups=groups,
                bias=False,
            ),
        )
        bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)


class HardSigmoid(nn.Module):
    """hard-sigmoid(z) = ReLU6(z + 3) / 6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class DropPath(nn.Module):
    """Stochastic depth: zero a whole residual branch per sample with probability ``p`` (training only).

    Args:
        p: drop probability in [0, 1).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped when t = 1) -> kxk depthwise -> 1x1 linear projection.

    Every conv is Conv+BN; activations (ReLU) sit at the odd indices of ``conv`` so the weight indices
    are 0, 2, 4 (or 0, 2 when t = 1) as upstream. Residual when stride 1 and in == out.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride (1 or 2).
        expand_ratio: hidden width = round(in_channels * expand_ratio).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: float,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MV2 stride must be 1 or 2, got {stride}")
        hidden = round(in_channels * expand_ratio)
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [Conv2dBN(in_channels, hidden, 1), nn.ReLU(inplace=True)]
        layers += [
            Conv2dBN(hidden, hidden, kernel_size, stride=stride, groups=hidden),
            nn.ReLU(inplace=True),
            Conv2dBN(hidden, out_channels, 1),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class StackedMV2Block(nn.Module):
    """One MV2 stage ``smb{i}``: optional stem (3x3/s2 Conv+BN+ReLU) then blocks ``layer1..layerN``.

    Args:
        rows: (kernel, expansion, out channels, stride) per block.
        in_channels: stage input channels (the stem's output width when ``stem``).
        stem: build the image stem (only for smb1).
    """

    def __init__(self, rows: _Rows, in_channels: int, stem: bool = False) -> None:
        super().__init__()
        self.stem = stem
        if stem:
            self.stem_block = nn.Sequential(
                Conv2dBN(3, in_channels, 3, stride=2), nn.ReLU(inplace=True)
            )
        self.num_layers = len(rows)
        c = in_channels
        for i, (k, t, out, s) in enumerate(rows):
            self.add_module(f"layer{i + 1}", InvertedResidual(c, out, k, s, t))
            c = out
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem:
            x = self.stem_block(x)
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class SqueezeAxialPositionalEmbedding(nn.Module):
    """Learned 1-D positional table (1, C, 16) linearly resampled to the sequence length and added.

    Args:
        dim: channels C.
        length: table length (16 upstream).
    """

    def __init__(self, dim: int, length: int = _POS_EMBED_LEN) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, dim, length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, N) -> (B, C, N)."""
        pe = F.interpolate(
            self.pos_embed, size=x.shape[-1], mode="linear", align_corners=False
        )  # (1, C, N)
        return x + pe


class SeaAttention(nn.Module):
    """Squeeze-enhanced axial attention (paper Sec. 3, Fig. 3).

    q, k (C -> h*d_k) and v (C -> h*2*d_k) by 1x1 Conv+BN. A detail-enhancement branch runs
    concat(q, k, v) through a depthwise 3x3 Conv+BN, ReLU6 and a 1x1 Conv+BN back to C. The axial branch
    averages q, k, v over W (row squeeze, length H) and over H (column squeeze, length W), adds learned
    positional embeddings to q and k, runs h-head softmax attention on each axis, projects each result
    (ReLU6 -> 1x1 Conv+BN), broadcasts both back and adds them to v, then ReLU6 -> 1x1 Conv+BN to C.
    Output = hard-sigmoid(axial) * detail. Cost is linear in H*W. The BNs of the three output projections
    start at weight 0.

    Args:
        dim: channels C.
        key_dim: per-head query/key width d_k.
        num_heads: heads h.
        attn_ratio: value width per head / d_k (2 in all variants).
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float = 2) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.scale = key_dim**-0.5
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = dh = self.d * num_heads
        self.to_q = Conv2dBN(dim, nh_kd)
        self.to_k = Conv2dBN(dim, nh_kd)
        self.to_v = Conv2dBN(dim, dh)
        self.proj = nn.Sequential(nn.ReLU6(), Conv2dBN(dh, dim, bn_weight_init=0))
        self.proj_encode_row = nn.Sequential(nn.ReLU6(), Conv2dBN(dh, dh, bn_weight_init=0))
        self.pos_emb_rowq = SqueezeAxialPositionalEmbedding(nh_kd)
        self.pos_emb_rowk = SqueezeAxialPositionalEmbedding(nh_kd)
        self.proj_encode_column = nn.Sequential(nn.ReLU6(), Conv2dBN(dh, dh, bn_weight_init=0))
        self.pos_emb_columnq = SqueezeAxialPositionalEmbedding(nh_kd)
        self.pos_emb_columnk = SqueezeAxialPositionalEmbedding(nh_kd)
        cat = 2 * nh_kd + dh
        self.dwconv = Conv2dBN(cat, cat, 3, groups=cat)
        self.act = nn.ReLU6()
        self.pwconv = Conv2dBN(cat, dim, 1)
        self.sigmoid = HardSigmoid()

    def _axial(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos_q: nn.Module, pos_k: nn.Module
    ) -> torch.Tensor:
        """Multi-head attention over one squeezed axis: q, k (B, h*d_k, N), v (B, dh, N) -> (B, dh, N)."""
        b, _, n = q.shape
        q = pos_q(q).reshape(b, self.num_heads, self.key_dim, n).transpose(2, 3)  # (B, h, N, d_k)
        k = pos_k(k).reshape(b, self.num_heads, self.key_dim, n)  # (B, h, d_k, N)
        v = v.reshape(b, self.num_heads, self.d, n).transpose(2, 3)  # (B, h, N, d)
        attn = (q @ k * self.scale).softmax(dim=-1)  # (B, h, N, N)
        out = attn @ v  # (B, h, N, d)
        return out.transpose(2, 3).reshape(b, self.dh, n)  # (B, dh, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, _, h, w = x.shape
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)  # (B, h*d_k, H, W) x2, (B, dh, H, W)
        detail = self.pwconv(self.act(self.dwconv(torch.cat([q, k, v], dim=1))))  # (B, C, H, W)

        row = self._axial(q.mean(-1), k.mean(-1), v.mean(-1), self.pos_emb_rowq, self.pos_emb_rowk)
        row = self.proj_encode_row(row.reshape(b, self.dh, h, 1))  # (B, dh, H, 1)
        col = self._axial(
            q.mean(-2), k.mean(-2), v.mean(-2), self.pos_emb_columnq, self.pos_emb_columnk
        )
        col = self.proj_encode_column(col.reshape(b, self.dh, 1, w))  # (B, dh, 1, W)

        axial = self.proj(v + (row + col))  # (B, C, H, W); row/col broadcast along W/H
        return self.sigmoid(axial) * detail


class Mlp(nn.Module):
    """Conv1x1+BN (C -> rC) -> depthwise 3x3 conv (bias, no BN) -> ReLU6 -> Conv1x1+BN (rC -> C).

    Args:
        dim: channels C.
        hidden: hidden width rC.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Conv2dBN(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=True)
        self.act = nn.ReLU6()
        self.fc2 = Conv2dBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class SeaBlock(nn.Module):
    """x + DropPath(SeaAttention(x)), then x + DropPath(Mlp(x)); no LayerNorm (BN inside each unit).

    Args:
        dim: channels C.
        key_dim: per-head key width.
        num_heads: heads.
        mlp_ratio: MLP hidden width / C.
        attn_ratio: value width / key width.
        drop_path: stochastic-depth probability of both branches.
    """

    def __init__(
        self,
        dim: int,
        key_dim: int,
        num_heads: int,
        mlp_ratio: float,
        attn_ratio: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.attn = SeaAttention(dim, key_dim, num_heads, attn_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.mlp(x))


class SeaLayer(nn.Module):
    """A SeaFormer layer ``trans{i}``: ``transformer_blocks.{j}`` applied in sequence.

    Args:
        depth: number of blocks.
        dim, key_dim, num_heads, mlp_ratio, attn_ratio: see ``SeaBlock``.
        drop_path: per-block probabilities (length ``depth``).
    """

    def __init__(
        self,
        depth: int,
        dim: int,
        key_dim: int,
        num_heads: int,
        mlp_ratio: float,
        attn_ratio: float,
        drop_path: Sequence[float],
    ) -> None:
        super().__init__()
        self.transformer_blocks = nn.ModuleList(
            SeaBlock(dim, key_dim, num_heads, mlp_ratio, attn_ratio, drop_path[j])
            for j in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.transformer_blocks:
            x = blk(x)
        return x


# --------------------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------------------
class SeaFormer(Backbone):
    """SeaFormer trunk: stem + MV2 stages ``smb1..`` with SeaFormer layers ``trans*`` on the last stages.

    The official network has five MV2 stages; the SeaFormer layers (``len(depths)`` of them) follow its
    last ``len(depths)`` stages. ``full=False`` (default, "Option A") builds smb1-smb4 and the SeaFormer
    layers that follow them, and returns the four stage outputs at strides (4, 8, 16, 32).
    ``full=True`` builds all five stages and all layers (the official backbone without classifier) and
    returns the outputs of smb2-smb5 at strides (8, 16, 32, 64) ("Option B"; inputs then must be
    multiples of 64).

    Args:
        stage_cfgs: five tuples of (kernel, expansion, out channels, stride) rows, one per MV2 stage.
        stem_channels: stem output width.
        emb_dims: SeaFormer layer widths; each must equal the output width of the stage it follows.
        key_dims: per-head key width of each SeaFormer layer.
        depths: blocks per SeaFormer layer.
        num_heads: heads in every SeaFormer layer.
        mlp_ratios: MLP expansion per SeaFormer layer.
        attn_ratio: value width / key width (2 upstream).
        drop_path_rate: stochastic depth, linear 0 -> rate within each layer (0.1 in the official
            ImageNet training; 0 by default here).
        full: build smb5 and the last SeaFormer layer (see above).
        norm_eval: keep BatchNorm layers in eval mode under ``.train()``.

    Example:
        >>> net = seaformer_large()
        >>> net.channels, net.strides
        ((64, 128, 192, 256), (4, 8, 16, 32))
    """

    def __init__(
        self,
        stage_cfgs: Sequence[_Rows],
        stem_channels: int,
        emb_dims: Sequence[int],
        key_dims: Sequence[int],
        depths: Sequence[int],
        num_heads: int,
        mlp_ratios: Sequence[float],
        attn_ratio: float = 2,
        drop_path_rate: float = 0.0,
        full: bool = False,
        norm_eval: bool = False,
    ) -> None:
        super().__init__(norm_eval=norm_eval)
        n_stages = len(stage_cfgs)
        if n_stages != 5:
            raise ValueError(f"SeaFormer needs five MV2 stage configs (smb1..smb5), got {n_stages}")
        n_trans = len(depths)
        if (
            not (len(emb_dims) == len(key_dims) == len(mlp_ratios) == n_trans)
            or not 1 <= n_trans <= n_stages
        ):
            raise ValueError(
                "SeaFormer emb_dims, key_dims, depths and mlp_ratios must have the same length (1..5), got "
                f"{len(emb_dims)}, {len(key_dims)}, {n_trans}, {len(mlp_ratios)}"
            )
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if any(len(rows) == 0 for rows in stage_cfgs):
            raise ValueError("every SeaFormer MV2 stage needs at least one (k, t, c, s) row")
        widths = [int(rows[-1][2]) for rows in stage_cfgs]
        for t in range(n_trans):
            host = n_stages - n_trans + t
            if emb_dims[t] != widths[host]:
                raise ValueError(
                    f"SeaFormer emb_dims[{t}]={emb_dims[t]} must equal the width of smb{host + 1} "
                    f"({widths[host]}), the stage it follows"
                )
        self.full = full
        built = n_stages if full else n_stages - 1

        stage_out: list[int] = []
        stage_stride: list[int] = []
        c, stride = stem_channels, 2
        for i in range(built):
            rows: _Rows = tuple((int(k), int(t), int(o), int(s)) for k, t, o, s in stage_cfgs[i])
            smb = StackedMV2Block(rows, c, stem=i == 0)
            setattr(self, f"smb{i + 1}", smb)
            c = smb.out_channels
            for r in rows:
                stride *= r[3]
            stage_out.append(c)
            stage_stride.append(stride)

        # trans{t+1} follows stage index n_stages - n_trans + t (0-based); build those that exist.
        self._trans_after: dict[int, str] = {}
        for t in range(n_trans):
            host = n_stages - n_trans + t
            if host >= built:
                continue
            dpr = torch.linspace(
                0, drop_path_rate, depths[t]
            ).tolist()  # stochastic-depth decay rule
            setattr(
                self,
                f"trans{t + 1}",
                SeaLayer(
                    depths[t], emb_dims[t], key_dims[t], num_heads, mlp_ratios[t], attn_ratio, dpr
                ),
            )
            self._trans_after[host] = f"trans{t + 1}"

        self._num_built = built
        self._out_from = built - 4  # return the last four built stages
        self.channels = tuple(stage_out[self._out_from :])
        self.strides = tuple(stage_stride[self._out_from :])
        self._init_weights()

    def _init_weights(self) -> None:
        """Conv N(0, sqrt(2/n)), n = k*k*out/groups, bias 0; BN 1/0 except the zero-init projections."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, SeaAttention):
                for proj in (m.proj, m.proj_encode_row, m.proj_encode_column):
                    nn.init.zeros_(proj[1].bn.weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the trunk.

        Args:
            x: normalised images (B, 3, H, W), H and W multiples of ``max(strides)`` (32, or 64 if full).

        Returns:
            Four maps fine to coarse, map i of shape (B, channels[i], H / strides[i], W / strides[i]).
        """
        _check_image(x, self.strides[-1], type(self).__name__)
        outs: list[torch.Tensor] = []
        for i in range(self._num_built):
            x = getattr(self, f"smb{i + 1}")(x)
            if i in self._trans_after:
                x = getattr(self, self._trans_after[i])(x)
            if i >= self._out_from:
                outs.append(x)
        return outs

    def load_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Load official SeaFormer ImageNet weights (``SeaFormer_{T,S,B,L}.pth``, a timm checkpoint).

        The weights are taken from ``state_dict_ema``, else ``state_dict``, else ``model``, else the object
        itself; a leading ``module.`` is stripped, and an mmseg segmentation checkpoint's ``backbone.*``
        is accepted too. Keys are the official names (= ours). Keys this model does not build -- the
        classifier ``linear.*``, and with ``full=False`` ``smb5.*`` and the last ``trans*`` -- are
        reported as unused (logged at INFO level), not missing.

        Args:
            path: local checkpoint file (``.pth``/``.pth.tar``, or ``.safetensors``).

        Raises:
            ValueError: the file does not exist, is unreadable (truncated, not a checkpoint) or lacks / mis-shapes
                a tensor this variant needs (e.g. a SeaFormer-T file given to SeaFormer-L).
        """
        sd = _read_state_dict(path)
        sd, unused = _select_nested(sd, ("backbone.",), ("smb1.",))
        _load_checked(
            self,
            sd,
            unused,
            path,
            f"this SeaFormer (stage widths {self.channels})",
            "an official SeaFormer classification checkpoint (SeaFormer_T/S/B/L.pth: timm dict with "
            "'state_dict_ema'/'state_dict' holding 'smb1.stem_block.0.c.weight', 'trans1.*' ...) "
            "of the same size",
        )


def _build(variant: str, **kwargs) -> SeaFormer:
    cfg = dict(SEAFORMER_VARIANTS[variant])
    cfg.update(kwargs)
    return SeaFormer(**cfg)


def seaformer_tiny(**kwargs) -> SeaFormer:
    """SeaFormer-T; Option A channels (16, 32, 64, 128). Full backbone 1,620,096 params."""
    return _build("tiny", **kwargs)


def seaformer_small(**kwargs) -> SeaFormer:
    """SeaFormer-S; Option A channels (24, 48, 96, 160). Full backbone 3,912,656 params."""
    return _build("small", **kwargs)


def seaformer_base(**kwargs) -> SeaFormer:
    """SeaFormer-B; Option A channels (32, 64, 128, 192). Full backbone 8,485,664 params."""
    return _build("base", **kwargs)


def seaformer_large(**kwargs) -> SeaFormer:
    """SeaFormer-L (RAP-SAM's choice); Option A channels (64, 128, 192, 256). Full backbone 13,725,504 params."""
    return _build("large", **kwargs)
