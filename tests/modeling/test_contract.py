"""Contract tests over every registered variant (timm's test_model_forward_features idea)."""

from __future__ import annotations

import pytest
import torch

import rapsam
from rapsam.modeling.rapsam import Prompts

VARIANTS = rapsam.list_models()


def _random_vocab(k: int = 5, p: int = 2, d: int = 768, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(k, p, d, generator=g)
    return e / e.norm(dim=-1, keepdim=True)


def _prompts(b: int, h: int, w: int) -> Prompts:
    # prompt 0: one positive click; prompt 1: two positives + one negative; prompt 2: a box only
    pts = torch.tensor([[[10.0, 12.0], [0, 0], [0, 0]], [[30.0, 20.0], [40.0, 25.0], [5.0, 50.0]], [[0, 0], [0, 0], [0, 0]]])
    lab = torch.tensor([[1, -1, -1], [1, 1, 0], [-1, -1, -1]])
    boxes = torch.tensor([[float("nan")] * 4, [float("nan")] * 4, [4.0, 6.0, 50.0, 40.0]])
    return Prompts(pts[None].expand(b, -1, -1, -1), lab[None].expand(b, -1, -1), boxes[None].expand(b, -1, -1),
                   torch.tensor([[h, w]] * b))


@pytest.fixture(scope="module", params=VARIANTS)
def model(request):
    torch.manual_seed(0)
    m = rapsam.build_model(request.param)
    m.set_vocabulary(_random_vocab(d=m.classifier.embed_dim), ["a", "b", "c", "d", "e"], [True, True, True, False, False])
    return m


def test_backbone_contract(model):
    bb = model.backbone
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = bb.eval()(x)
    assert len(feats) == len(bb.channels) == len(bb.strides) == 4
    for f, c, s in zip(feats, bb.channels, bb.strides):
        assert f.shape == (2, c, 64 // s, 96 // s)


def test_forward_shapes_no_nan(model):
    model.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = model(x, _prompts(2, 64, 96))
    k = model.num_classes + 1
    q, c = model.decoder.num_queries, model.config.neck.hidden_dim
    assert len(out.object_outputs) == len(out.prompt_outputs) == model.config.decoder.num_stages + 1
    for o in out.object_outputs:
        assert o.cls_logits.shape == (2, q, k)
        assert o.mask_logits.shape == (2, q, 16, 24)
        assert o.iou.shape == (2, q, 1)
        assert torch.isfinite(o.mask_logits).all() and torch.isfinite(o.cls_logits).all()
    for o in out.prompt_outputs:
        assert o.mask_logits.shape == (2, 3, 16, 24) and o.iou.shape == (2, 3, 1)
        assert torch.isfinite(o.mask_logits).all()
    assert out.object_embed.shape == (2, q, c) and out.prompt_embed.shape == (2, 3, c)
    assert out.features.shape == (2, c, 16, 24)


def test_video_clip_shapes(model):
    model.eval()
    x = torch.randn(2 * 3, 3, 64, 64)  # 2 clips of 3 frames
    with torch.no_grad():
        out = model(x, num_frames=3)
    assert out.object_outputs[-1].mask_logits.shape == (2, model.decoder.num_queries, 3, 16, 16)


def test_gradients_reach_every_parameter(model):
    # From-scratch training regime: backbone BN statistics train too (with frozen random-init
    # statistics a deep random ResNet-50 makes features so large that the deformable offsets
    # sample outside the map; ImageNet weights or training BN avoid that).
    norm_eval = model.backbone.norm_eval
    model.backbone.norm_eval = False
    # SeaFormer zero-initialises the BN scale of its attention output projections (as its paper's
    # code does), which blocks gradients at step 0 only; give every zero BN scale a value.
    saved = {}
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d) and bool((m.weight == 0).all()):
            saved[n] = m.weight.detach().clone()
            with torch.no_grad():
                m.weight.fill_(0.5)
    model.train()
    x = torch.randn(1, 3, 64, 64)
    out = model(x, _prompts(1, 64, 64))
    loss = sum(
        (o.mask_logits.sigmoid().mean() + o.iou.mean() + (o.cls_logits.softmax(-1).mean() if o.cls_logits is not None else 0))
        for o in out.object_outputs + out.prompt_outputs
    )
    model.zero_grad()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not no_grad, no_grad[:10]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not zero, zero[:10]
    model.backbone.norm_eval = norm_eval
    for n, m in model.named_modules():
        if n in saved:
            with torch.no_grad():
                m.weight.copy_(saved[n])
    model.eval()


def test_deterministic_and_batch_independent(model):
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = model(x).object_outputs[-1].mask_logits
        b = model(x).object_outputs[-1].mask_logits
        single = model(x[1:]).object_outputs[-1].mask_logits
    assert torch.equal(a, b)
    # batch size changes GEMM blocking: equal up to float noise relative to the logits' scale
    assert (a[1:] - single).norm() / single.norm() < 1e-4


def test_safetensors_round_trip(model, tmp_path):
    from rapsam.weights import save_rapsam

    model.eval()
    path = tmp_path / "m.safetensors"
    save_rapsam(model, path)
    again = rapsam.build_model(weights=path)
    assert again.config == model.config
    assert again.class_names == model.class_names and again.thing_flags == model.thing_flags
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x, _prompts(1, 64, 64)), again(x, _prompts(1, 64, 64))
    assert torch.equal(a.object_outputs[-1].mask_logits, b.object_outputs[-1].mask_logits)
    assert torch.equal(a.object_outputs[-1].cls_logits, b.object_outputs[-1].cls_logits)
    assert torch.equal(a.prompt_outputs[-1].mask_logits, b.prompt_outputs[-1].mask_logits)
