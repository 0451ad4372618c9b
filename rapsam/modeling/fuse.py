"""Deploy-time rewrites of a RapSam for fast inference: Conv-BN folding, channels-last, torch.compile.

Folding an eval-mode BatchNorm into the convolution before it is exact in real arithmetic::

    BN(conv(x)) = s * (W * x + b - mu) + beta,    s = gamma / sqrt(var + eps)
                = (s W) * x + (s (b - mu) + beta)

(timm's ``fuse()`` / torch.ao's ``fuse_conv_bn_eval``; the scale is applied in float64 and cast back,
so folded outputs match unfolded ones to ~1e-6 relative). The neck's DCNv2 (``DeformLayer``) folds the
same way: its output is linear in ``dcn_weight``, and the folded bias goes to ``deform_conv2d``'s
``bias``; the stride-2 ``ConvTranspose2d`` folds along its output-channel axis.

Three entry points:

* ``fuse_conv_bn(module)``: a copy of any module with every recognised Conv->BN pair folded (the BN is
  replaced by ``nn.Identity``). Eval mode only: folding uses the running statistics.
* ``optimize_for_inference(model)``: a copy of a ``RapSam`` with the encoder folded (and channels-last);
  the copy is inference-only (``train()`` refuses) — for export and deployment.
* ``FusedEncoder(model)``: what the predictors use. It keeps a folded (channels-last, optionally
  compiled) copy of the backbone + neck next to the user's model and rebuilds it when the model's
  encoder weights change (``load_state_dict``, an optimizer step, ``.to(device)``), so a predictor
  never runs stale weights and the user's model is never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .factored import FactoredFeatures

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .rapsam import RapSam


# ------------------------------------------------------------------------------------------ folding
def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an eval-mode BatchNorm, in float64."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it tracks no running statistics (track_running_stats=False)")
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


@torch.no_grad()
def fold_conv_bn_(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` into ``conv`` in place (``conv`` gains a bias); the caller removes ``bn``.

    Raises:
        ValueError: the channel counts disagree or a grouped transposed conv is given.
    """
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):
        if conv.groups != 1:
            raise ValueError("folding BatchNorm into a grouped ConvTranspose2d is not supported")
        out_axis = 1  # weight (C_in, C_out, kh, kw)
    else:
        out_axis = 0  # weight (C_out, C_in / groups, kh, kw)
    if w.shape[out_axis] != scale.numel():
        raise ValueError(f"cannot fold {bn} into {conv}: {scale.numel()} BN channels vs {w.shape[out_axis]} conv outputs")
    view = [1] * w.dim()
    view[out_axis] = -1
    new_w = (w.double() * scale.view(view)).to(w.dtype)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    new_b = (bias * scale + shift).to(w.dtype)
    conv.weight = nn.Parameter(new_w, requires_grad=False)
    conv.bias = nn.Parameter(new_b, requires_grad=False)


@torch.no_grad()
def _fold_deform_layer_(layer: nn.Module) -> None:
    """Fold a neck ``DeformLayer``'s two BatchNorms (DCN weight + bias buffer, transposed conv)."""
    if isinstance(layer.dcn_bn, nn.BatchNorm2d):
        scale, shift = _bn_scale_shift(layer.dcn_bn)
        w = layer.dcn_weight
        layer.dcn_weight = nn.Parameter((w.double() * scale.view(-1, 1, 1, 1)).to(w.dtype), requires_grad=False)
        layer.dcn_bias = shift.to(w.dtype)  # a non-persistent buffer of DeformLayer
        layer.dcn_bn = nn.Identity()
    if isinstance(layer.up_bn, nn.BatchNorm2d):
        fold_conv_bn_(layer.up_sample, layer.up_bn)
        layer.up_bn = nn.Identity()


def _named_pairs() -> dict[type, tuple[tuple[str, str], ...]]:
    """Module types whose ``forward`` applies BN ``b`` right after conv ``a`` (by attribute name)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    from .backbones.resnet import ResNet
    from .backbones.stdc import ConvX

    return {
        BasicBlock: (("conv1", "bn1"), ("conv2", "bn2")),
        Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
        ResNet: (("conv1", "bn1"),),
        ConvX: (("conv", "bn"),),
    }


def _conv_bn_sites(module: nn.Module) -> Iterator[tuple[nn.Module, str, str]]:
    """(parent, conv name, bn name) of every Conv->BN pair whose call order is known."""
    named = _named_pairs()
    for parent in module.modules():
        if isinstance(parent, nn.Sequential):
            items = list(parent._modules.items())
            for (na, a), (nb, b) in zip(items, items[1:]):
                if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(b, nn.BatchNorm2d):
                    yield parent, na, nb
        for cls, pairs in named.items():
            if type(parent) is cls:
                for na, nb in pairs:
                    a, b = getattr(parent, na, None), getattr(parent, nb, None)
                    if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(b, nn.BatchNorm2d):
                        yield parent, na, nb


def count_batchnorms(module: nn.Module) -> int:
    """How many BatchNorm layers ``module`` still holds (0 after a full ``fuse_conv_bn``)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def fuse_conv_bn(module: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into that convolution.

    Recognised pairs: consecutive ``Conv2d``/``ConvTranspose2d`` -> ``BatchNorm2d`` in an
    ``nn.Sequential`` (SeaFormer ``Conv2dBN``, ResNet downsample, STDC ``avd_layer``), ResNet stems and
    blocks, STDC ``ConvX`` and the neck's ``DeformLayer``. Other BatchNorms are left as they are
    (``count_batchnorms`` tells).

    Args:
        module: a model or sub-module in eval mode.
        inplace: rewrite ``module`` itself instead of a deep copy.

    Returns:
        The folded module (a copy unless ``inplace``), in eval mode, with ``requires_grad=False`` on the
        folded parameters.

    Raises:
        ValueError: ``module`` holds a BatchNorm in training mode (folding uses running statistics:
            call ``.eval()`` first).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"fuse_conv_bn takes an nn.Module, got {type(module).__name__}")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules()):
        raise ValueError(
            "fuse_conv_bn needs eval-mode BatchNorm (it folds the running statistics): call model.eval() "
            "first, or fold a copy of a trained model"
        )
    from .neck import DeformLayer

    out = module if inplace else copy.deepcopy(module)
    for layer in [m for m in out.modules() if isinstance(m, DeformLayer)]:
        _fold_deform_layer_(layer)
    for parent, conv_name, bn_name in list(_conv_bn_sites(out)):
        fold_conv_bn_(getattr(parent, conv_name), getattr(parent, bn_name))
        setattr(parent, bn_name, nn.Identity())
    return out.eval()


def use_fast_neck_(neck: nn.Module) -> nn.Module:
    """Switch a (copied) neck to its inference kernels, in place: sampled DCNv2
    (``deform_conv3x3_sampled``) and the split CoordConv (no concatenation, NCHW output)."""
    from .neck import DeformLayer, RapSamNeck

    for m in neck.modules():
        if isinstance(m, DeformLayer):
            m.sampled_dcn = True
        if isinstance(m, RapSamNeck):
            m.split_coord_conv = True
    return neck


# ------------------------------------------------------------------------------- whole model copy
def default_channels_last(device: torch.device | str) -> bool:
    """Channels-last helps oneDNN convolutions on CPU and cuDNN on GPU tensor cores: on by default."""
    return torch.device(device).type in ("cpu", "cuda")


def optimize_for_inference(
    model: "RapSam", *, fuse: bool = True, channels_last: bool | None = None, inplace: bool = False
) -> "RapSam":
    """An inference-only copy of ``model``: encoder BatchNorms folded, encoder weights channels-last.

    The result runs ``model(images)`` / ``model.extract_features`` / ``model.decode`` like the original
    (outputs within ~1e-5 relative) but cannot be trained: ``train(True)`` raises. For predictors prefer
    the default ``PanopticPredictor(model)`` / ``InteractivePredictor(model)``, which keep such a copy of
    the encoder in sync with ``model`` themselves (``FusedEncoder``).

    Args:
        model: a ``RapSam``.
        fuse: fold Conv-BN pairs of the backbone and neck.
        channels_last: store 4-D encoder weights channels-last (None: on for CPU/CUDA).
        inplace: rewrite ``model`` itself instead of a copy.

    Raises:
        ValueError: ``model`` is not a ``RapSam`` or is in training mode.
    """
    from .rapsam import RapSam

    if not isinstance(model, RapSam):
        raise ValueError(f"optimize_for_inference takes a rapsam.RapSam, got {type(model).__name__}")
    if model.training:
        raise ValueError("optimize_for_inference needs an eval-mode model: call model.eval() first")
    out = model if inplace else copy.deepcopy(model)
    if fuse:
        fuse_conv_bn(out.backbone, inplace=True)
        fuse_conv_bn(out.neck, inplace=True)
    use_fast_neck_(out.neck)
    device = next(out.parameters()).device
    if channels_last if channels_last is not None else default_channels_last(device):
        out.backbone.to(memory_format=torch.channels_last)
        out.neck.to(memory_format=torch.channels_last)
    out.inference_only = True
    return out.eval()


# ------------------------------------------------------------------------------- synced encoder
class _Encoder(nn.Module):
    """Backbone + the neck's FPN: normalised images -> the aggregated map (B, agg_dim, H/4, W/4).

    The neck's last step (CoordConv) stays outside so that ``torch.compile`` sees plain tensors and
    the output can be factored (``RapSamNeck.factored_features``)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck.fpn(self.backbone(x))


def _state_key(modules: tuple[nn.Module, ...]) -> tuple:
    """Identity + version of every parameter/buffer: changes on load_state_dict, optimizer steps, .to()."""
    key: list[Any] = []
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            key.append((t.data_ptr(), t._version, t.dtype, t.device))
    return tuple(key)


class FusedEncoder:
    """A folded, channels-last (optionally ``torch.compile``-d) copy of a model's backbone + neck.

    Used by the predictors through ``model.extract_features(images, encoder=fused)``. The copy is rebuilt
    whenever the source encoder's parameters or buffers change (checked per call from their storage
    pointers and version counters: a few microseconds), so it never runs stale weights. With grad
    enabled or a model in training mode it simply runs the model's own modules.

    Args:
        model: the ``RapSam`` whose encoder to mirror (not modified).
        channels_last: run the copy channels-last (None: ``default_channels_last`` of the device).
        compile: wrap the copy in ``torch.compile`` (first call per input size compiles: slow): True for
            the default backend (inductor), or a backend name (e.g. "eager", "aot_eager", "inductor").
        factored: return F as ``FactoredFeatures`` (``W . [x; xs; ys; 1]``, 131 instead of 256 channels
            for the decoder's matmuls; ``rapsam.modeling.factored``) instead of a tensor.

    Example::

        enc = FusedEncoder(model)
        with torch.inference_mode():
            feats = model.extract_features(x, encoder=enc)
    """

    def __init__(
        self, model: "RapSam", *, channels_last: bool | None = None, compile: bool | str = False,
        factored: bool = False
    ) -> None:
        from .neck import RapSamNeck

        if factored and not isinstance(model.neck, RapSamNeck):
            raise ValueError(f"factored features need a RapSamNeck, the model has a {type(model.neck).__name__}")
        self.model = model
        self.channels_last = channels_last
        if not isinstance(compile, (bool, str)):
            raise ValueError(f"compile must be True/False or a torch.compile backend name, got {compile!r}")
        self.compile = compile
        self.factored = bool(factored)
        self._key: tuple | None = None
        self._fn: Any = None
        self.builds = 0  # how many times the copy was (re)built

    def _sources(self) -> tuple[nn.Module, nn.Module]:
        return self.model.backbone, self.model.neck

    def _current(self) -> Any:
        key = _state_key(self._sources())
        if key != self._key or self._fn is None:
            backbone, neck = self._sources()
            with torch.inference_mode(False), torch.no_grad():
                enc = _Encoder(fuse_conv_bn(backbone), use_fast_neck_(fuse_conv_bn(neck))).eval()
                device = next(self.model.parameters()).device
                self._cl = self.channels_last if self.channels_last is not None else default_channels_last(device)
                if self._cl:
                    enc.to(memory_format=torch.channels_last)
                for p in enc.parameters():
                    p.requires_grad_(False)
            self._neck = enc.neck
            if self.compile:
                backend = self.compile if isinstance(self.compile, str) else "inductor"
                self._fn = torch.compile(enc, backend=backend)
            else:
                self._fn = enc
            self._key = key
            self.builds += 1
        return self._fn

    def __call__(self, images: torch.Tensor) -> "torch.Tensor | FactoredFeatures":
        """Normalised, padded images (B, 3, H, W) -> F (B, C, H/4, W/4): a contiguous tensor, or
        ``FactoredFeatures`` with ``factored=True``."""
        if self.model.training or torch.is_grad_enabled():
            return self.model.neck(self.model.backbone(images))
        fn = self._current()
        x = images.contiguous(memory_format=torch.channels_last) if self._cl else images
        agg = fn(x)  # (B, agg_dim, H/4, W/4)
        if self.factored:
            return self._neck.factored_features(agg)
        return self._neck._split_coord_conv(agg)


# ------------------------------------------------------------------------------- half precision
#: Reduced-precision dtypes the predictors accept (CUDA only).
HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_inference_dtype(dtype: torch.dtype | str | None, device: torch.device | str) -> torch.dtype | None:
    """Validate a predictor's ``dtype`` option: None (float32), float16 or bfloat16 on CUDA.

    Raises:
        ValueError: an unknown dtype, or a half dtype on a non-CUDA device (CPU autocast to bf16/fp16 is
            emulated on most CPUs and slower than float32).
    """
    if dtype is None or dtype == torch.float32 or dtype == "float32":
        return None
    if isinstance(dtype, str):
        dtype = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(dtype, dtype)
    if dtype not in HALF_DTYPES:
        raise ValueError(f"dtype must be None/float32, float16 or bfloat16, got {dtype!r}")
    if torch.device(device).type != "cuda":
        raise ValueError(
            f"dtype={dtype} needs a CUDA device (the model is on {device}); on CPU leave dtype=None "
            "(float32): half precision is not faster there"
        )
    return dtype


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` for the model forward when ``dtype`` is set, else a no-op context.

    Under autocast convolutions, matmuls and einsums run in ``dtype``; LayerNorm, softmax and
    torchvision's ``deform_conv2d`` stay in float32 (autocast's own lists). Outputs are cast back to
    float32 by the predictors before post-processing.
    """
    import contextlib

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
