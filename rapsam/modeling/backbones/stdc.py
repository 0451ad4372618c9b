"""STDC backbones (STDC1 = STDCNet813, STDC2 = STDCNet1446).

Paper: Fan et al., "Rethinking BiSeNet for Real-time Semantic Segmentation", CVPR 2021
(arXiv 2104.13188). Architecture facts, parameter counts and checkpoint layouts follow
the design notes ``design/backbones.md`` section 1, which was read from the official code
(``MichaelFan01/STDC-Seg``, ``nets/stdcnet.py``) and mmsegmentation's port; this file is our own
implementation.

Module names equal the official ones (``features.{i}.conv_list.{j}.{conv,bn}``, ``features.{i}.avd_layer.{0,1}``)
so the official ImageNet checkpoint loads one to one once its aliases and classification head are dropped.

For RAP-SAM the trunk returns four maps ``[x4, x8, x16, x32]`` = ``features.1/3/5/7`` for STDC1,
channels ``(64, 256, 512, 1024)`` at strides ``(4, 8, 16, 32)``. The stride-4 level is the second stem
conv (STDC has no stage at stride 4). ``conv_last`` and the classifier are not built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .base import Backbone

__all__ = ["STDCNet", "stdc1", "stdc2"]

# Official top-level names that are not trunk weights: the x2..x32 aliases (a second copy of the
# ``features`` tensors), the classification conv / head, and mmseg's name for ``conv_last``.
_STDC_DROPPED_PREFIXES = (
    "x2.",
    "x4.",
    "x8.",
    "x16.",
    "x32.",
    "conv_last.",
    "final_conv.",
    "fc.",
    "bn.",
    "linear.",
)
# Wrappers under which a trunk can sit inside a bigger checkpoint (official Cityscapes model,
# mmseg segmentor), tried in this order after a leading ``module.`` is stripped.
_STDC_NESTED_PREFIXES = ("cp.backbone.", "backbone.backbone.", "backbone.")


class ConvX(nn.Module):
    """Conv (no bias, padding k//2) -> BatchNorm -> ReLU, the basic STDC unit.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        stride: 1 or 2.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class CatBottleneck(nn.Module):
    """The "cat" STDC module (paper Fig. 3): a chain of ConvX blocks whose outputs are concatenated.

    With output width N and ``block_num = 4`` the blocks are 1x1 C_in->N/2, 3x3 N/2->N/4,
    3x3 N/4->N/8, 3x3 N/8->N/8; output = concat of the four, N channels. There is no residual add.
    With ``stride = 2`` the block-1 output is downsampled by a depthwise 3x3 stride-2 conv + BN (no ReLU,
    ``avd_layer``) before block 2, and a 3x3/s2 average pool of it takes block 1's place in the concat.

    Args:
        in_channels: input channels C_in.
        out_channels: output channels N (divisible by ``2 ** (block_num - 1)``).
        block_num: number of ConvX blocks (>= 2).
        stride: 1 or 2.
    """

    def __init__(
        self, in_channels: int, out_channels: int, block_num: int = 4, stride: int = 1
    ) -> None:
        super().__init__()
        if block_num < 2:
            raise ValueError(f"STDC block_num must be >= 2, got {block_num}")
        if stride not in (1, 2):
            raise ValueError(f"STDC module stride must be 1 or 2, got {stride}")
        if out_channels % (2 ** (block_num - 1)) != 0:
            raise ValueError(
                f"STDC out_channels={out_channels} must be divisible by 2**(block_num-1)={2 ** (block_num - 1)}"
            )
        self.stride = stride
        half = out_channels // 2
        if stride == 2:
            self.avd_layer = nn.Sequential(
                nn.Conv2d(half, half, 3, stride=2, padding=1, groups=half, bias=False),
                nn.BatchNorm2d(half),
            )
            self.skip = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        widths = [out_channels // 2 ** (i + 1) for i in range(block_num - 1)]
        widths.append(widths[-1])  # last block keeps the width: N/2, N/4, ..., N/2^(n-1), N/2^(n-1)
        self.conv_list = nn.ModuleList()
        prev = in_channels
        for i, w in enumerate(widths):
            self.conv_list.append(ConvX(prev, w, kernel_size=1 if i == 0 else 3))
            prev = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv_list[0](x)  # (B, N/2, H, W)
        out = self.avd_layer(out1) if self.stride == 2 else out1  # (B, N/2, H/s, W/s)
        outs = [self.skip(out1) if self.stride == 2 else out1]
        for conv in self.conv_list[1:]:
            out = conv(out)
            outs.append(out)
        return torch.cat(outs, dim=1)  # (B, N, H/s, W/s)


class STDCNet(Backbone):
    """STDC trunk (``features.0..``) returning the 4-level pyramid at strides 4, 8, 16, 32.

    Layout: ConvX 3x3/s2 3->base/2, ConvX 3x3/s2 base/2->base, then three stages of "cat" STDC modules
    (first module of each stage has stride 2) with widths 4*base, 8*base, 16*base.

    Args:
        base: stem width (64 for STDC1/STDC2).
        layers: modules per stage; ``(2, 2, 2)`` = STDC1 (STDCNet813), ``(4, 5, 3)`` = STDC2 (STDCNet1446).
        block_num: ConvX blocks per STDC module (4 in both papers' models).
        norm_eval: keep BatchNorm layers in eval mode under ``.train()``.

    Example:
        >>> net = stdc1()
        >>> feats = net(torch.zeros(1, 3, 64, 96))
        >>> [tuple(f.shape[1:]) for f in feats]
        [(64, 16, 24), (256, 8, 12), (512, 4, 6), (1024, 2, 3)]
    """

    def __init__(
        self,
        base: int = 64,
        layers: Sequence[int] = (2, 2, 2),
        block_num: int = 4,
        norm_eval: bool = False,
    ) -> None:
        super().__init__(norm_eval=norm_eval)
        layers = tuple(int(n) for n in layers)
        if len(layers) != 3 or min(layers) < 1:
            raise ValueError(
                f"STDC layers must be three positive module counts (e.g. (2, 2, 2)), got {layers}"
            )
        if base % 2 != 0 or base <= 0:
            raise ValueError(f"STDC base width must be a positive even number, got {base}")
        self.base = base
        self.layers = layers
        feats: list[nn.Module] = [ConvX(3, base // 2, 3, 2), ConvX(base // 2, base, 3, 2)]
        out_idx = [1]  # features index whose output is returned (stride 4 first)
        prev = base
        for i, n in enumerate(layers):
            width = base * 2 ** (i + 2)
            for j in range(n):
                feats.append(CatBottleneck(prev, width, block_num, stride=2 if j == 0 else 1))
                prev = width
            out_idx.append(len(feats) - 1)
        self.features = nn.Sequential(*feats)
        self._out_idx = tuple(out_idx)
        self.channels = (base, base * 4, base * 8, base * 16)
        self.strides = (4, 8, 16, 32)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal (fan_out) convs, BN weight 1 / bias 0, as the official ``init_params``."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the trunk.

        Args:
            x: normalised images (B, 3, H, W), H and W multiples of 32.

        Returns:
            Four maps fine to coarse: (B, base, H/4, W/4), (B, 4*base, H/8, W/8),
            (B, 8*base, H/16, W/16), (B, 16*base, H/32, W/32).
        """
        _check_image(x, 32, type(self).__name__)
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._out_idx:
                outs.append(x)
        return outs

    # ----------------------------------------------------------------------------------------------
    # Checkpoint loading
    # ----------------------------------------------------------------------------------------------
    def _mmseg_index(self) -> dict[str, int]:
        """mmseg ``stages`` path ("0", "1", "2.0", "2.1", ...) -> our ``features`` index."""
        table = {"0": 0, "1": 1}
        idx = 2
        for i, n in enumerate(self.layers):
            for j in range(n):
                table[f"{i + 2}.{j}"] = idx
                idx += 1
        return table

    def _rename(self, key: str, mmseg: Mapping[str, int]) -> str | None:
        """Map one checkpoint key to our name; None for keys that are not trunk weights."""
        if key.startswith(_STDC_DROPPED_PREFIXES):
            return None
        if key.startswith("features."):
            return key
        if key.startswith("stages."):
            parts = key.split(".")
            if len(parts) > 2 and parts[1] in ("0", "1"):
                idx, rest = mmseg[parts[1]], parts[2:]
            elif len(parts) > 3 and f"{parts[1]}.{parts[2]}" in mmseg:
                idx, rest = mmseg[f"{parts[1]}.{parts[2]}"], parts[3:]
            else:
                return None
            name = ".".join(rest)
            if name.startswith("layers."):
                name = "conv_list." + name[len("layers.") :]
            elif name.startswith("avg_pool.conv."):
                name = "avd_layer.0." + name[len("avg_pool.conv.") :]
            elif name.startswith("avg_pool.bn."):
                name = "avd_layer.1." + name[len("avg_pool.bn.") :]
            return f"features.{idx}.{name}"
        return None

    def load_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Load STDC ImageNet weights a user holds.

        Accepted layouts:
          * official ``STDCNet813M_73.91.tar`` / ``STDCNet1446_76.47.tar``: a dict whose ``"state_dict"``
            holds ``features.*`` (our names) plus ``x2..x32`` aliases, ``conv_last``, ``fc``, ``bn``,
            ``linear`` (dropped);
          * mmsegmentation's converted file (``stdc2mmseg.py``): flat ``stages.*`` keys (``layers.i``,
            ``avg_pool.{conv,bn}``), ``final_conv`` dropped;
          * either of these under ``module.``, ``cp.backbone.`` (official Cityscapes model),
            ``backbone.backbone.`` (mmseg segmentor) or ``backbone.``; a ``.safetensors`` file.

        Keys that are not trunk weights are reported as unused (logged at INFO level).

        Args:
            path: local checkpoint file.

        Raises:
            ValueError: the file does not exist, is unreadable (truncated, not a checkpoint) or does not hold every
                trunk tensor of this STDC variant with the right shape.
        """
        sd = _read_state_dict(path)
        sd, outer_unused = _select_nested(sd, _STDC_NESTED_PREFIXES, ("features.", "stages."))
        mmseg = self._mmseg_index()
        mapped: dict[str, torch.Tensor] = {}
        unused = list(outer_unused)
        for k, v in sd.items():
            new = self._rename(k, mmseg)
            if new is None:
                unused.append(k)
            else:
                mapped[new] = v
        expected = (
            "the official STDC ImageNet checkpoint (dict with 'state_dict' holding 'features.*', "
            "e.g. STDCNet813M_73.91.tar for STDC1) or mmsegmentation's converted 'stages.*' file"
        )
        what = {(2, 2, 2): "STDC1", (4, 5, 3): "STDC2"}.get(
            self.layers, f"STDCNet(layers={self.layers})"
        )
        _load_checked(self, mapped, unused, path, what, expected)


def stdc1(**kwargs) -> STDCNet:
    """STDC1 (STDCNet813): ``layers=(2, 2, 2)``, 5,318,304 trunk parameters."""
    return STDCNet(base=64, layers=(2, 2, 2), **kwargs)


def stdc2(**kwargs) -> STDCNet:
    """STDC2 (STDCNet1446): ``layers=(4, 5, 3)``, 9,348,768 trunk parameters."""
    return STDCNet(base=64, layers=(4, 5, 3), **kwargs)


# --------------------------------------------------------------------------------------------------
# Checkpoint / input helpers, private to the lightweight backbones (seaformer.py imports them).
# --------------------------------------------------------------------------------------------------
def _check_image(x: torch.Tensor, multiple: int, who: str) -> None:
    """Validate a (B, 3, H, W) input whose H, W are multiples of ``multiple`` (skipped when tracing)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{who} expects a normalised image batch of shape (B, 3, H, W), got {shape}"
        )
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(
            f"{who} needs H and W to be multiples of {multiple}, got {h}x{w}; pad the batch "
            f"(bottom/right) to a multiple of {multiple} before the backbone."
        )


def _read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a weights file without executing code; return its flat tensor dict, ``module.`` stripped.

    ``.safetensors`` files are read directly. PyTorch files go through
    :func:`rapsam.weights.read_torch_checkpoint` (``torch.load(weights_only=True)``, falling back to a
    restricted unpickler that turns unknown objects such as timm's stored ``argparse`` args into inert
    placeholders), which unwraps ``state_dict_ema`` / ``state_dict`` / ``model`` in that order.

    Raises:
        ValueError: missing, truncated or non-checkpoint file, or no tensors inside.
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        if not os.path.isfile(path):
            raise ValueError(f"weights file not found: {path} (pass a local checkpoint file)")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(path, device="cpu")
        except (SafetensorError, OSError) as e:
            raise ValueError(
                f"cannot read {path} as a .safetensors file ({e}): it is truncated or not a "
                "safetensors file; re-download it"
            ) from None
    else:
        from ...weights import read_torch_checkpoint

        sd = read_torch_checkpoint(path)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _select_nested(
    sd: dict[str, torch.Tensor], prefixes: Sequence[str], own_roots: Sequence[str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """If the trunk sits under one of ``prefixes`` (and not at top level), take it; others are unused."""
    if any(k.startswith(tuple(own_roots)) for k in sd):
        return sd, []
    for p in prefixes:
        inner = {k[len(p) :]: v for k, v in sd.items() if k.startswith(p)}
        if any(k.startswith(tuple(own_roots)) for k in inner):
            return inner, [k for k in sd if not k.startswith(p)]
    return sd, []


def _summarise(keys: Sequence[str], depth: int = 1) -> str:
    """'smb5.* (52), linear.* (2)'-style grouping of keys by their first ``depth`` components."""
    groups: dict[str, int] = {}
    for k in keys:
        g = ".".join(k.split(".")[:depth])
        groups[g] = groups.get(g, 0) + 1
    return ", ".join(f"{g}.* ({n})" for g, n in groups.items())


def _load_checked(
    model: nn.Module,
    mapped: dict[str, torch.Tensor],
    unused: list[str],
    path: str | os.PathLike[str],
    what: str,
    expected: str,
) -> None:
    """Load ``mapped`` into ``model`` after checking every tensor is present with the right shape.

    BatchNorm ``num_batches_tracked`` counters are optional (old checkpoints lack them).
    """
    own = model.state_dict()
    unused = unused + [k for k in mapped if k not in own]
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        found = len(own) - len(missing)
        raise ValueError(
            f"{os.fspath(path)!r} does not match {what}: {len(missing)} of {len(own)} trunk tensors are missing "
            f"(e.g. {missing[:5]}; {found} matched). Expected {expected}."
        )
    bad = [k for k in own if k in mapped and tuple(mapped[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(
            f"{os.fspath(path)!r} does not match {what}: {len(bad)} tensors have the wrong shape "
            f"(e.g. {k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}); the file is for "
            f"another variant. Expected {expected}."
        )
    model.load_state_dict({k: v for k, v in mapped.items() if k in own}, strict=False)
    if unused:
        logging.getLogger(type(model).__module__).info(
            "%s: loaded %d tensors from %s; %d keys unused: %s",
            type(model).__name__,
            len(own) - len(missing),
            os.fspath(path),
            len(unused),
            _summarise(unused),
        )
