"""Deploy-time rewrites (rapsam.modeling.fuse / factored / neck): same numbers, user model untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.ops import deform_conv2d

import rapsam
from rapsam.modeling.factored import FactoredFeatures, as_tensor
from rapsam.modeling.fuse import (
    FusedEncoder,
    check_inference_dtype,
    count_batchnorms,
    fold_conv_bn_,
    fuse_conv_bn,
    optimize_for_inference,
)
from rapsam.modeling.neck import coord_features, deform_conv3x3_sampled
from rapsam.modeling.rapsam import Prompts

VARIANTS = ["rapsam_r18", "rapsam_tiny", "rapsam_stdc1"]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so that folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.fixture(scope="module", params=VARIANTS)
def model(request):
    torch.manual_seed(0)
    m = rapsam.build_model(request.param)
    _randomise_bn(m)
    e = torch.nn.functional.normalize(torch.randn(4, 1, m.classifier.embed_dim), dim=-1)
    m.set_vocabulary(e, ["a", "b", "c", "d"], [True, True, False, False])
    return m.eval()


def _prompts(h: int, w: int) -> Prompts:
    pts = torch.tensor([[[10.0, 12.0], [0, 0]], [[30.0, 20.0], [5.0, 40.0]], [[0, 0], [0, 0]]])
    lab = torch.tensor([[1, -1], [1, 0], [-1, -1]])
    boxes = torch.tensor([[float("nan")] * 4, [float("nan")] * 4, [4.0, 6.0, 50.0, 40.0]])
    return Prompts(pts[None], lab[None], boxes[None], torch.tensor([[h, w]]))


# ---------------------------------------------------------------------------------- folding
def test_folded_encoder_equals_unfolded(model):
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model.neck(model.backbone(x))
        bb, nk = fuse_conv_bn(model.backbone), fuse_conv_bn(model.neck)
        out = nk(bb(x))
    assert count_batchnorms(bb) == 0 and count_batchnorms(nk) == 0
    assert count_batchnorms(model.backbone) > 0  # a copy: the user's model keeps its BatchNorms
    assert rel(out, ref) < 1e-4


def test_fold_is_exact_for_one_pair_and_copies_by_default():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(5).eval()
    _randomise_bn(bn, seed=3)
    seq = torch.nn.Sequential(conv, bn).eval()
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        ref = seq(x)
        fused = fuse_conv_bn(seq)
        assert isinstance(fused[1], torch.nn.Identity) and isinstance(seq[1], torch.nn.BatchNorm2d)
        assert rel(fused(x), ref) < 1e-6
        fuse_conv_bn(seq, inplace=True)
        assert isinstance(seq[1], torch.nn.Identity)
        assert rel(seq(x), ref) < 1e-6


def test_fold_transposed_conv():
    up = torch.nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(6).eval()
    _randomise_bn(bn, seed=1)
    x = torch.randn(1, 4, 5, 6)
    with torch.no_grad():
        ref = bn(up(x))
        fold_conv_bn_(up, bn)
        assert rel(up(x), ref) < 1e-6


def test_fold_needs_eval_mode_and_matching_channels(model):
    with pytest.raises(ValueError, match="eval"):
        fuse_conv_bn(copy.deepcopy(model.neck).train())  # (a norm_eval backbone keeps eval-mode BN)
    with pytest.raises(ValueError, match="channels|outputs"):
        fold_conv_bn_(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(5).eval())
    with pytest.raises(ValueError, match="nn.Module"):
        fuse_conv_bn("resnet")


def test_optimize_for_inference_same_outputs_and_inference_only(model):
    x = torch.randn(1, 3, 64, 96)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    with torch.no_grad():
        a = model(x, _prompts(64, 96))
        b = fast(x, _prompts(64, 96))
    for oa, ob in zip(a.object_outputs + a.prompt_outputs, b.object_outputs + b.prompt_outputs):
        assert rel(ob.mask_logits, oa.mask_logits) < 1e-4
        assert rel(ob.cls_logits, oa.cls_logits) < 1e-4
    assert count_batchnorms(fast.backbone) == 0 and fast.inference_only and not model.inference_only
    with pytest.raises(RuntimeError, match="optimised for inference"):
        fast.train()
    model.train()  # the original still trains
    model.eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="RapSam"):
        optimize_for_inference(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="eval"):
        optimize_for_inference(copy.deepcopy(model).train())


# ------------------------------------------------------------------------------ synced encoder
def test_fused_encoder_matches_and_follows_weight_changes():
    torch.manual_seed(0)
    m = rapsam.build_model("rapsam_tiny").eval()
    _randomise_bn(m)
    enc = FusedEncoder(m)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert rel(m.extract_features(x, encoder=enc), m.extract_features(x)) < 1e-4
        m.extract_features(x, encoder=enc)
    assert enc.builds == 1  # not rebuilt when nothing changed
    sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    with torch.inference_mode():
        new = m.extract_features(x, encoder=enc)
        assert rel(new, m.extract_features(x)) < 1e-4  # the new weights, not the stale copy
    assert enc.builds == 2


def test_fused_encoder_falls_back_with_grad_and_refuses_other_models():
    m = rapsam.build_model("rapsam_tiny").eval()
    enc = FusedEncoder(m)
    x = torch.randn(1, 3, 32, 32)
    f = m.extract_features(x, encoder=enc)  # grad enabled: the model's own modules
    assert f.requires_grad and enc.builds == 0
    other = rapsam.build_model("rapsam_tiny").eval()
    with pytest.raises(ValueError, match="another model"):
        other.extract_features(x, encoder=enc)


def test_train_mode_uses_the_training_kernels(monkeypatch):
    """Inference kernels are switched on only in copies: the model's own train forward is untouched."""
    import rapsam.modeling.neck as neck

    calls = []
    monkeypatch.setattr(neck, "deform_conv2d", lambda *a, **k: calls.append(1) or deform_conv2d(*a, **k))
    m = rapsam.build_model("rapsam_r18")
    FusedEncoder(m)  # creating encoders / fused copies must not change the model
    optimize_for_inference(m.eval())
    m.train()
    out = m(torch.randn(1, 3, 64, 64))
    assert len(calls) == 3 and isinstance(out.features, torch.Tensor)
    out.object_outputs[-1].mask_logits.sum().backward()
    assert m.neck.fpn.deform_conv1.dcn_weight.grad is not None
    assert not any(getattr(x, "sampled_dcn", False) for x in m.modules())


# ------------------------------------------------------------------------------ neck kernels
@pytest.mark.parametrize("shape", [(2, 16, 8, 4, 11), (1, 6, 5, 1, 1), (1, 3, 4, 2, 7)])
def test_sampled_deform_conv_equals_torchvision(shape):
    b, cin, cout, h, w = shape
    g = torch.Generator().manual_seed(h * w)
    x = torch.randn(b, cin, h, w, generator=g)
    offset = 3 * torch.randn(b, 18, h, w, generator=g)  # many samples fall outside the map
    mask = torch.rand(b, 9, h, w, generator=g)
    weight = torch.randn(cout, cin, 3, 3, generator=g)
    bias = torch.randn(cout, generator=g)
    ref = deform_conv2d(x, offset, weight, bias, padding=(1, 1), mask=mask)
    assert rel(deform_conv3x3_sampled(x, offset, weight, bias, mask), ref) < 1e-5
    ref0 = deform_conv2d(x, offset, weight, None, padding=(1, 1), mask=mask)
    assert rel(deform_conv3x3_sampled(x, offset, weight, None, mask), ref0) < 1e-5


@pytest.mark.parametrize("shape", [(2, 16, 8, 4, 11), (1, 3, 4, 2, 7)])
def test_sampled_deform_conv_gradients_equal_torchvision(shape):
    """Training with ``sampled_dcn`` (TrainConfig) relies on these: the same gradients for the input,
    the weights, the bias, the offsets and the modulation (offsets fractional, so no kinks)."""
    b, cin, cout, h, w = shape
    g = torch.Generator().manual_seed(7 * h + w)
    args = [
        torch.randn(b, cin, h, w, generator=g),
        3 * torch.randn(b, 18, h, w, generator=g),
        torch.randn(cout, cin, 3, 3, generator=g),
        torch.randn(cout, generator=g),
        torch.rand(b, 9, h, w, generator=g),
    ]
    up = torch.randn(b, cout, h, w, generator=g)

    def grads(fn):
        leaves = [a.clone().requires_grad_(True) for a in args]
        (fn(*leaves) * up).sum().backward()
        return [leaf.grad for leaf in leaves]

    ref = grads(lambda x, o, wt, bs, m: deform_conv2d(x, o, wt, bs, padding=(1, 1), mask=m))
    got = grads(deform_conv3x3_sampled)
    for name, a, r in zip(("x", "offset", "weight", "bias", "mask"), got, ref):
        assert rel(a, r) < 1e-4, name


def test_split_and_factored_coord_conv(model):
    x = torch.randn(2, model.neck.fpn.output_conv.out_channels, 6, 10)
    nk = copy.deepcopy(model.neck)
    with torch.no_grad():
        ref = nk.loc_conv(torch.cat([x, coord_features(x)], 1))
        assert rel(nk._split_coord_conv(x), ref) < 1e-5
        ff = nk.factored_features(x)
        assert ff.shape == ref.shape
        assert rel(ff.materialize(), ref) < 1e-5


# ------------------------------------------------------------------------------ factored F
def test_factored_features_ops_equal_tensor_ops():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(2, 5, 7, 6, generator=g)
    basis[..., -1] = 1
    ff = FactoredFeatures(basis, torch.randn(8, 6, generator=g))
    f = ff.materialize()  # (2, 8, 5, 7)
    k = torch.randn(2, 3, 8, generator=g)
    m = torch.randn(2, 3, 5, 7, generator=g)
    assert rel(ff.dot(k), torch.einsum("bnc,bchw->bnhw", k, f)) < 1e-5
    assert rel(ff.pool(m), torch.einsum("bnhw,bchw->bnc", m, f)) < 1e-5
    w, bias = torch.randn(4, 8, generator=g), torch.randn(4, generator=g)
    assert rel(ff.project(w, bias), torch.matmul(w, f.flatten(2)) + bias[:, None]) < 1e-5
    grid = torch.rand(2, 3, 1, 2, generator=g) * 2.4 - 1.2  # some outside: zero padding
    assert rel(ff.sample(grid), torch.nn.functional.grid_sample(f, grid, align_corners=False)) < 1e-5
    clip = ff.stack_frames(1, 2)
    assert rel(clip.materialize(), f.unflatten(0, (1, 2)).transpose(1, 2).flatten(2, 3)) < 1e-6
    assert as_tensor(f) is f and as_tensor(ff).shape == f.shape
    with pytest.raises(ValueError, match="disagree"):
        FactoredFeatures(basis, torch.randn(8, 5))


@pytest.mark.parametrize("frames", [1, 2])
def test_decode_on_factored_features_equals_tensor(model, frames):
    enc = FusedEncoder(model, factored=True)
    x = torch.randn(frames, 3, 64, 96)
    with torch.inference_mode():
        ff = model.extract_features(x, encoder=enc)
        assert isinstance(ff, FactoredFeatures)
        f = ff.materialize()  # the same F as a tensor: isolates the factored decode
        prompts = _prompts(64, 96) if frames == 1 else None
        a = model.decode(f, prompts, num_frames=frames)
        b = model.decode(ff, prompts, num_frames=frames)
    outs = list(zip(a.object_outputs, b.object_outputs))
    if prompts is not None:
        outs += list(zip(a.prompt_outputs, b.prompt_outputs))
    for oa, ob in outs:
        assert rel(ob.mask_logits, oa.mask_logits) < 1e-4
        assert rel(ob.cls_logits, oa.cls_logits) < 1e-4
        assert rel(ob.iou, oa.iou) < 1e-4


# ------------------------------------------------------------------------------ prompt K/V cache
def test_cached_prompt_kv_equals_uncached(model):
    enc = FusedEncoder(model, factored=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        for f in (model.extract_features(x), model.extract_features(x, encoder=enc)):
            kv = model.prompt_adapter.project_features(f)
            heads, c = model.prompt_adapter.cross_attn.num_heads, f.shape[1]
            assert kv[0].shape == kv[1].shape == (1, heads, c // heads, 16 * 24)
            a = model.decode(as_tensor(f), _prompts(64, 96), with_objects=False)  # nn.MultiheadAttention
            b = model.decode(f, _prompts(64, 96), with_objects=False, prompt_kv=kv)
            assert rel(b.prompt_outputs[-1].mask_logits, a.prompt_outputs[-1].mask_logits) < 1e-4
            assert rel(b.prompt_outputs[-1].iou, a.prompt_outputs[-1].iou) < 1e-4
            assert rel(b.prompt_embed, a.prompt_embed) < 1e-4


# ------------------------------------------------------------------------------ dtype option
def test_half_dtype_needs_cuda():
    assert check_inference_dtype(None, "cpu") is None and check_inference_dtype("float32", "cpu") is None
    with pytest.raises(ValueError, match="CUDA"):
        check_inference_dtype(torch.float16, "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        check_inference_dtype("bf16", "cpu")
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        check_inference_dtype(torch.int8, "cuda")
    assert check_inference_dtype("fp16", "cuda") is torch.float16
