"""Export-friendly replacements for the two neck operations the ONNX exporter cannot take as they are.

* ``coord_features``: ``rapsam.modeling.neck.coord_features`` builds the CoordConv grid with
  ``torch.linspace(-1, 1, w)``; ``torch.export`` specialises ``linspace``'s ``steps`` to the example
  size, which would freeze the graph's image size. ``coord_features`` here computes the same numbers
  from ``arange`` with torch's own two-sided ``linspace`` formula (equal to within 1e-7: torch's
  vectorised kernel rounds differently) and stays symbolic in H and W.
* ``deform_conv2d_decomposed``: ``torchvision.ops.deform_conv2d`` (modulated DCNv2, Dai et al. 2017 /
  Zhu et al. 2019) written with plain tensor ops (four-corner bilinear gather + one matmul), for
  runtimes that lack the ONNX ``DeformConv`` op (opset 19; onnxruntime's CPU kernel only arrived in
  2026, microsoft/onnxruntime#27393). Semantics are torchvision's: offsets laid out
  ``(B, offset_groups * kh * kw * 2, Ho, Wo)`` as (dy, dx) pairs per kernel tap, taps row-major,
  samples outside the image read zero (each bilinear corner separately), the optional mask
  ``(B, offset_groups * kh * kw, Ho, Wo)`` multiplies each sampled value, ``weight`` may be grouped.

* ``einsum_as_matmul`` / ``EinsumAsMatmul``: two-operand ``torch.einsum`` lowered to permute /
  reshape / ``matmul`` (the batch / contracted / free index grouping torch's own ``einsum`` uses). The
  exporter would keep ``einsum`` as the ONNX ``Einsum`` op, which onnxruntime's CPU kernel runs several
  times slower than ``MatMul`` (it was 90% of the panoptic decoder's time at 800x1333); the
  ``TorchFunctionMode`` applies the lowering to the model's own ``torch.einsum`` calls while
  ``torch.export`` traces, without touching the modules.

``swap_for_export(model, deform_conv)`` replaces, in a module tree the caller owns (a deep copy), every
``DeformLayer`` by ``ExportDeformLayer`` and every ``RapSamNeck`` by ``ExportNeck`` sharing the same
parameters; the eager model is never touched (STYLE.md convention 11: export wraps, never bends).
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..modeling.neck import DeformLayer, RapSamNeck

#: Ways the exported graph computes the neck's deformable convolutions.
DEFORM_CONV_IMPLS = ("onnx", "decomposed")


def coord_features(x: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) in [-1, 1], shape (B, 2, H, W), equal to ``torch.linspace``'s values.

    torch's CPU ``linspace`` fills the first half as ``start + step * i`` and the second half as
    ``end - step * (n - 1 - i)``; the same two-sided formula is used here.
    """
    b, _, h, w = x.shape
    xs = _linspace_m1_1(w, x)  # (W,)
    ys = _linspace_m1_1(h, x)  # (H,)
    grid_x = xs[None, :].expand(h, w)  # (H, W)
    grid_y = ys[:, None].expand(h, w)  # (H, W)
    return torch.stack([grid_x, grid_y], 0)[None].expand(b, -1, -1, -1)  # (B, 2, H, W)


def _linspace_m1_1(n: int | torch.SymInt, like: torch.Tensor) -> torch.Tensor:
    i = torch.arange(n, device=like.device, dtype=like.dtype)  # (n,)
    step = 2.0 / torch.clamp(torch.full((), n - 1, device=like.device, dtype=like.dtype), min=1.0)
    front = -1.0 + step * i
    back = 1.0 - step * (n - 1 - i)
    return torch.where((i < n // 2) | (i == 0), front, back)  # n = 1 gives [-1], as torch does


def deform_conv2d_decomposed(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` with plain tensor ops (exportable to any ONNX runtime).

    Args:
        input: (B, C_in, H, W).
        offset: (B, 2 * G_off * kh * kw, Ho, Wo), (dy, dx) per tap, taps row-major.
        weight: (C_out, C_in / G_w, kh, kw).
        bias: (C_out,) or None.
        stride, padding, dilation: (y, x) pairs.
        mask: (B, G_off * kh * kw, Ho, Wo) modulation (DCNv2) or None (DCNv1).

    Returns:
        (B, C_out, Ho, Wo).
    """
    b, c_in, h, w = input.shape
    c_out, c_in_g, kh, kw = weight.shape
    k = kh * kw
    g_off = offset.shape[1] // (2 * k)
    g_w = c_in // c_in_g
    ho, wo = offset.shape[-2:]
    cg = c_in // g_off
    dt = input.dtype
    dev = input.device
    tap_y = (
        (torch.arange(kh, device=dev, dtype=dt) * dilation[0])[:, None].expand(kh, kw).reshape(k)
    )  # (K,)
    tap_x = (
        (torch.arange(kw, device=dev, dtype=dt) * dilation[1])[None, :].expand(kh, kw).reshape(k)
    )  # (K,)
    base_y = torch.arange(ho, device=dev, dtype=dt) * stride[0] - padding[0]  # (Ho,)
    base_x = torch.arange(wo, device=dev, dtype=dt) * stride[1] - padding[1]  # (Wo,)
    off = offset.reshape(b, g_off, k, 2, ho, wo)  # (B, G, K, 2, Ho, Wo)
    py = base_y[:, None] + tap_y[:, None, None] + off[:, :, :, 0]  # (B, G, K, Ho, Wo)
    px = base_x[None, :] + tap_x[:, None, None] + off[:, :, :, 1]  # (B, G, K, Ho, Wo)
    y0 = torch.floor(py)
    x0 = torch.floor(px)
    ly, lx = py - y0, px - x0
    hy, hx = 1 - ly, 1 - lx
    # Image rows of every (batch, offset group) stacked: gather rows by flat index.
    table = (
        input.reshape(b, g_off, cg, h * w).permute(0, 1, 3, 2).reshape(b * g_off * h * w, cg)
    )  # (B*G*H*W, Cg)
    start = (torch.arange(b * g_off, device=dev) * (h * w)).reshape(
        b, g_off, 1, 1, 1
    )  # (B, G, 1, 1, 1)
    val = None
    for dy, dx, wgt in ((0, 0, hy * hx), (0, 1, hy * lx), (1, 0, ly * hx), (1, 1, ly * lx)):
        yc, xc = y0 + dy, x0 + dx
        inside = (yc >= 0) & (yc <= h - 1) & (xc >= 0) & (xc <= w - 1)
        idx = (
            yc.clamp(0, h - 1).to(torch.int64) * w + xc.clamp(0, w - 1).to(torch.int64) + start
        )  # (B, G, K, Ho, Wo)
        corner = table[idx.reshape(-1)].reshape(b, g_off, k, ho, wo, cg)  # (B, G, K, Ho, Wo, Cg)
        term = (wgt * inside.to(dt))[..., None] * corner
        val = term if val is None else val + term
    if mask is not None:
        val = val * mask.reshape(b, g_off, k, ho, wo)[..., None]
    cols = val.permute(0, 1, 5, 2, 3, 4).reshape(
        b, g_w, c_in_g * k, ho * wo
    )  # (B, Gw, Cin/Gw * K, L)
    wmat = weight.reshape(g_w, c_out // g_w, c_in_g * k)  # (Gw, Cout/Gw, Cin/Gw * K)
    out = torch.matmul(wmat[None], cols).reshape(b, c_out, ho, wo)  # (B, C_out, Ho, Wo)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out


class ExportDeformLayer(nn.Module):
    """``DeformLayer`` with a choice of deformable-conv implementation; shares the original's parameters.

    Args:
        layer: the eager ``DeformLayer``.
        impl: "onnx" (``torchvision.ops.deform_conv2d``, exported as the ONNX ``DeformConv`` op) or
            "decomposed" (``deform_conv2d_decomposed``).
    """

    def __init__(self, layer: DeformLayer, impl: str) -> None:
        super().__init__()
        if impl not in DEFORM_CONV_IMPLS:
            raise ValueError(
                f"unknown deformable-conv implementation '{impl}'; choose one of {DEFORM_CONV_IMPLS}"
            )
        self.impl = impl
        self.dcn_offset = layer.dcn_offset
        self.dcn_weight = layer.dcn_weight
        # Set when BatchNorm was folded into the layer (``rapsam.modeling.fuse``); usually None.
        self.register_buffer("dcn_bias", getattr(layer, "dcn_bias", None), persistent=False)
        self.dcn_bn = layer.dcn_bn
        self.up_sample = layer.up_sample
        self.up_bn = layer.up_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_mask = self.dcn_offset(x)  # (B, 27, H, W)
        o1, o2, mask = torch.chunk(offset_mask, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)  # (B, 18, H, W)
        if self.impl == "onnx":
            from torchvision.ops import deform_conv2d

            x = deform_conv2d(
                x, offset, self.dcn_weight, self.dcn_bias, padding=(1, 1), mask=mask.sigmoid()
            )
        else:
            x = deform_conv2d_decomposed(
                x, offset, self.dcn_weight, self.dcn_bias, padding=(1, 1), mask=mask.sigmoid()
            )
        x = F.relu(self.dcn_bn(x))
        return F.relu(self.up_bn(self.up_sample(x)))  # (B, C_out, 2H, 2W)


class ExportNeck(nn.Module):
    """``RapSamNeck`` with the export-friendly CoordConv grid; shares the original's parameters."""

    def __init__(self, neck: RapSamNeck) -> None:
        super().__init__()
        self.fpn = neck.fpn
        self.loc_conv = neck.loc_conv
        self.out_channels = neck.out_channels

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.fpn(feats)  # (B, agg_dim, H/4, W/4)
        x = torch.cat([x, coord_features(x)], 1)  # (B, agg_dim + 2, H/4, W/4)
        return self.loc_conv(x)  # (B, hidden_dim, H/4, W/4)


def swap_for_export(root: nn.Module, deform_conv: str = "onnx") -> nn.Module:
    """Replace, in place, the neck and its deformable layers of ``root`` (pass a deep copy).

    Returns:
        ``root`` (or its replacement when ``root`` itself is a neck / deformable layer).
    """
    if deform_conv not in DEFORM_CONV_IMPLS:
        raise ValueError(
            f"unknown deformable-conv implementation '{deform_conv}'; choose one of {DEFORM_CONV_IMPLS}"
        )
    if isinstance(root, DeformLayer):
        return ExportDeformLayer(root, deform_conv)
    if isinstance(root, RapSamNeck):
        root = ExportNeck(root)
    for name, child in list(root.named_children()):
        new = swap_for_export(child, deform_conv)
        if new is not child:
            setattr(root, name, new)
    return root


def _prod(sizes: list) -> Any:
    return functools.reduce(operator.mul, sizes, 1)


def einsum_as_matmul(equation: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.einsum(equation, a, b)`` for two operands, computed with one (batched) ``matmul``.

    Indices are grouped as torch's einsum groups them: batch (in both operands and the output),
    contracted (in both, not in the output), and free indices of each operand; an index found in one
    operand only and not in the output is summed out first. Equations with an ellipsis or a repeated
    index within one operand are not supported (``ValueError``).
    """
    eq = equation.replace(" ", "")
    if "->" not in eq or "." in eq:
        raise ValueError(
            f"einsum_as_matmul needs an explicit two-operand equation without '...', got {equation!r}"
        )
    lhs, out = eq.split("->")
    ins = lhs.split(",")
    if len(ins) != 2 or any(len(set(t)) != len(t) for t in (*ins, out)):
        raise ValueError(
            f"einsum_as_matmul takes two operands without repeated indices, got {equation!r}"
        )
    ia, ib = ins
    if a.dim() != len(ia) or b.dim() != len(ib):
        raise ValueError(f"einsum {equation!r}: operands of rank {a.dim()} and {b.dim()}")
    # indices in one operand only and not in the output: sum them out first
    sa = [i for i in ia if i not in ib and i not in out]
    if sa:
        a = a.sum([ia.index(i) for i in sa])
        ia = "".join(i for i in ia if i not in sa)
    sb = [i for i in ib if i not in ia and i not in out]
    if sb:
        b = b.sum([ib.index(i) for i in sb])
        ib = "".join(i for i in ib if i not in sb)
    batch = [i for i in out if i in ia and i in ib]
    contract = [i for i in ia if i in ib and i not in out]
    left = [i for i in ia if i not in ib]
    right = [i for i in ib if i not in ia]
    size = {i: a.shape[ia.index(i)] for i in ia}
    size.update({i: b.shape[ib.index(i)] for i in ib if i not in size})
    a3 = a.permute([ia.index(i) for i in batch + left + contract])
    a3 = a3.reshape(
        *[size[i] for i in batch],
        _prod([size[i] for i in left]),
        _prod([size[i] for i in contract]),
    )
    b3 = b.permute([ib.index(i) for i in batch + contract + right])
    b3 = b3.reshape(
        *[size[i] for i in batch],
        _prod([size[i] for i in contract]),
        _prod([size[i] for i in right]),
    )
    res = torch.matmul(a3, b3)  # (*batch, L, R)
    order = batch + left + right
    res = res.reshape([size[i] for i in order])
    return res.permute([order.index(i) for i in out])


class EinsumAsMatmul(TorchFunctionMode):
    """While active, two-operand ``torch.einsum`` calls run as ``einsum_as_matmul`` (others unchanged)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.einsum and not kwargs:
            operands = args[1:]
            if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
                operands = tuple(operands[0])
            eq = args[0]
            if isinstance(eq, str) and len(operands) == 2 and "." not in eq and "->" in eq:
                return einsum_as_matmul(eq, *operands)
        return func(*args, **kwargs)
