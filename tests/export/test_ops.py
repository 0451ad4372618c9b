"""The export-only replacements equal what they replace (``rapsam.export.ops``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import deform_conv2d

from rapsam.export.ops import (
    EinsumAsMatmul,
    ExportDeformLayer,
    ExportNeck,
    coord_features,
    deform_conv2d_decomposed,
    einsum_as_matmul,
    swap_for_export,
)
from rapsam.modeling.neck import DeformLayer, RapSamNeck
from rapsam.modeling.neck import coord_features as eager_coord_features


def _dcn_case(seed, b, c_in, h, w, c_out, k, stride, pad, dil, g_off, g_w, modulated, bias, scale):
    g = torch.Generator().manual_seed(seed)
    kh, kw = k
    ho = (h + 2 * pad[0] - (dil[0] * (kh - 1) + 1)) // stride[0] + 1
    wo = (w + 2 * pad[1] - (dil[1] * (kw - 1) + 1)) // stride[1] + 1
    x = torch.randn(b, c_in, h, w, generator=g)
    off = torch.randn(b, 2 * g_off * kh * kw, ho, wo, generator=g) * scale
    weight = torch.randn(c_out, c_in // g_w, kh, kw, generator=g)
    bvec = torch.randn(c_out, generator=g) if bias else None
    mask = torch.rand(b, g_off * kh * kw, ho, wo, generator=g) if modulated else None
    return x, off, weight, bvec, stride, pad, dil, mask


@pytest.mark.parametrize(
    "case",
    [
        # the neck's layer: 3x3, padding 1, modulated, one offset group
        {
            "b": 2,
            "c_in": 6,
            "h": 7,
            "w": 9,
            "c_out": 5,
            "k": (3, 3),
            "stride": (1, 1),
            "pad": (1, 1),
            "dil": (1, 1),
            "g_off": 1,
            "g_w": 1,
            "modulated": True,
            "bias": False,
            "scale": 2.0,
        },
        # offsets far outside the map (zero padding), bias, DCNv1 (no mask)
        {
            "b": 1,
            "c_in": 4,
            "h": 5,
            "w": 6,
            "c_out": 3,
            "k": (3, 3),
            "stride": (1, 1),
            "pad": (1, 1),
            "dil": (1, 1),
            "g_off": 1,
            "g_w": 1,
            "modulated": False,
            "bias": True,
            "scale": 8.0,
        },
        # stride, dilation, rectangular kernel, offset groups and weight groups
        {
            "b": 2,
            "c_in": 8,
            "h": 9,
            "w": 8,
            "c_out": 4,
            "k": (3, 2),
            "stride": (2, 1),
            "pad": (0, 1),
            "dil": (1, 2),
            "g_off": 2,
            "g_w": 2,
            "modulated": True,
            "bias": True,
            "scale": 1.5,
        },
    ],
)
def test_decomposed_deform_conv_equals_torchvision(case):
    args = _dcn_case(0, **case)
    ref = deform_conv2d(*args)
    got = deform_conv2d_decomposed(*args)
    assert got.shape == ref.shape and ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    b=st.integers(1, 2),
    cg=st.integers(1, 3),
    g_off=st.sampled_from([1, 2]),
    g_w=st.sampled_from([1, 2]),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    modulated=st.booleans(),
    bias=st.booleans(),
    scale=st.floats(0.0, 6.0),
)
def test_decomposed_deform_conv_property(
    seed, b, cg, g_off, g_w, h, w, kh, kw, stride, pad, dil, modulated, bias, scale
):
    c_in = cg * g_off * g_w
    if h + 2 * pad[0] < dil[0] * (kh - 1) + 1 or w + 2 * pad[1] < dil[1] * (kw - 1) + 1:
        return  # empty output
    args = _dcn_case(
        seed, b, c_in, h, w, 2 * g_w, (kh, kw), stride, pad, dil, g_off, g_w, modulated, bias, scale
    )
    torch.testing.assert_close(
        deform_conv2d_decomposed(*args), deform_conv2d(*args), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (3, 8), (32, 24), (100, 167)])
def test_coord_features_equal_linspace(h, w):
    x = torch.zeros(2, 4, h, w)
    got = coord_features(x)
    assert got.shape == (2, 2, h, w)
    torch.testing.assert_close(got, eager_coord_features(x), rtol=0, atol=1e-7)


EQUATIONS = [
    ("bnhw,bchw->bnc", (2, 5, 3, 4), (2, 6, 3, 4)),  # mask pooling
    ("bqc,bchw->bqhw", (2, 5, 6), (2, 6, 3, 4)),  # masks = kernels . F
    ("bnc,bchw->bnhw", (1, 3, 6), (1, 6, 2, 5)),
    ("bnc,ckp->bnkp", (2, 5, 6), (6, 7, 3)),  # classifier
    ("bnd,kpd->bnkp", (2, 5, 6), (7, 3, 6)),
    ("ij,jk->ik", (3, 4), (4, 5)),
    ("ijk,jl->li", (3, 4, 2), (4, 5)),  # k summed out before the product
    ("bi,bj->bij", (2, 3), (2, 4)),  # no contraction
    ("ab,cd->", (2, 3), (4, 5)),  # scalar result
]


@pytest.mark.parametrize("eq,sa,sb", EQUATIONS)
def test_einsum_as_matmul(eq, sa, sb):
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(*sa, generator=g, dtype=torch.float64),
        torch.randn(*sb, generator=g, dtype=torch.float64),
    )
    ref = torch.einsum(eq, a, b)
    torch.testing.assert_close(einsum_as_matmul(eq, a, b), ref, rtol=1e-12, atol=1e-12)
    with EinsumAsMatmul():
        torch.testing.assert_close(torch.einsum(eq, [a, b]), ref, rtol=1e-12, atol=1e-12)


def test_einsum_mode_passes_other_calls_through():
    a = torch.randn(3, 3)
    with EinsumAsMatmul():
        torch.testing.assert_close(torch.einsum("ii->i", a), torch.diagonal(a))  # one operand
        torch.testing.assert_close(
            torch.einsum("ij,jk,kl->il", a, a, a), a @ a @ a
        )  # three operands
        torch.testing.assert_close(torch.einsum("...j,jk->...k", a, a), a @ a)  # ellipsis


@pytest.mark.parametrize("eq", ["...i,ij->...j", "ii,ij->j", "ij->j", "ij,jk,kl->il"])
def test_einsum_as_matmul_rejects_unsupported(eq):
    with pytest.raises(ValueError, match="einsum_as_matmul"):
        einsum_as_matmul(eq, torch.zeros(2, 2), torch.zeros(2, 2))


@pytest.mark.parametrize("impl", ["onnx", "decomposed"])
def test_swap_for_export_keeps_the_neck_output(impl):
    import rapsam

    torch.manual_seed(0)
    model = rapsam.build_model("rapsam_r18").eval()
    feats = [
        torch.randn(1, c, 64 // s, 96 // s)
        for c, s in zip(model.backbone.channels, model.backbone.strides)
    ]
    with torch.no_grad():
        ref = model.neck(feats)
        work = swap_for_export(copy.deepcopy(model), impl)
        got = work.neck(feats)
    assert isinstance(work.neck, ExportNeck) and isinstance(model.neck, RapSamNeck)
    layers = [m for m in work.modules() if isinstance(m, ExportDeformLayer)]
    assert len(layers) == 3 and all(m.impl == impl for m in layers)
    assert not any(isinstance(m, DeformLayer) for m in work.modules())
    assert any(isinstance(m, DeformLayer) for m in model.modules())  # the original is untouched
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)


def test_swap_for_export_rejects_unknown_impl():
    with pytest.raises(ValueError, match="decomposed"):
        swap_for_export(torch.nn.Linear(2, 2), "cuda")


def test_decomposed_deform_layer_exports_and_runs_in_onnxruntime(tmp_path):
    """The fallback for runtimes without DeformConv: exported with dynamic H, W, no DeformConv op,
    equal to torchvision's layer at two sizes."""
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    layer = DeformLayer(8, 4).eval()
    torch.nn.init.normal_(layer.dcn_offset.weight, std=0.3)  # real offsets, not the zero-init ones
    wrapped = ExportDeformLayer(layer, "decomposed").eval()
    dims = {"x": {2: torch.export.Dim("h", min=2, max=64), 3: torch.export.Dim("w", min=2, max=64)}}
    with torch.no_grad():
        ep = torch.export.export(
            wrapped, (torch.randn(1, 8, 6, 5),), dynamic_shapes=dims, strict=False
        )
        prog = torch.onnx.export(
            ep, dynamo=True, opset_version=19, input_names=["x"], verbose=False
        )
    path = tmp_path / "dcn.onnx"
    prog.save(str(path))
    assert "DeformConv" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in [(6, 5), (11, 9)]:
        x = torch.randn(1, 8, *hw)
        with torch.no_grad():
            ref = layer(x).numpy()
        got = sess.run(None, {"x": x.numpy()})[0]
        assert got.shape == ref.shape == (1, 4, 2 * hw[0], 2 * hw[1])
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
