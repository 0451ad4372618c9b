"""The predictors' fast path against the official one: post-processing at stride 4, cached prompt K/V,
inference mode, options.

Stated tolerance of ``postprocess="fast"`` (module docstring of ``rapsam.predictor.postprocess``): the
same panoptic segments (label, query, thing/stuff) and >= 99.9% of pixels equal to the official map;
without a test-time resize the maps are equal. Measured on the demo model over generated scenes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rapsam
from rapsam.data import synth
from rapsam.predictor import InteractivePredictor, PanopticPredictor, VideoPredictor
from rapsam.predictor.postprocess import (
    UpsampleGrid,
    _assign_segments,
    argmax_fast,
    binary_masks_fast,
    panoptic_fast,
    panoptic_postprocess,
    segment_stats,
)
from rapsam.predictor.transforms import logits_to_original, resized_shape
from rapsam.structures import masks_to_boxes

PIXEL_AGREEMENT = 0.999


def _scene(seed: int, size: int) -> np.ndarray:
    return synth._image_scene(np.random.default_rng(seed), synth._Grid(size)).image


def _smooth(n: int, h: int, w: int, seed: int, scale: float = 6.0) -> torch.Tensor:
    """Smooth random logits (n, h, w), like mask logits: a coarse field upsampled, plus offsets."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 1, max(h // 3, 1), max(w // 3, 1), generator=g) * scale
    x = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)[:, 0]
    return x + torch.randn(n, 1, 1, generator=g)


def _geometry(ori: tuple[int, int], scale: tuple[int, int] | None) -> tuple[tuple, tuple, tuple]:
    img = resized_shape(*ori, scale)
    pad = (-(-img[0] // 32) * 32, -(-img[1] // 32) * 32)
    return img, pad, (pad[0] // 4, pad[1] // 4)


@pytest.fixture(scope="module")
def demo():
    return rapsam.build_model(weights="demo")


# ------------------------------------------------------------------------------ the geometry
@settings(max_examples=25, deadline=None)
@given(
    oh=st.integers(9, 90), ow=st.integers(9, 90),
    scale=st.sampled_from([None, (64, 48), (40, 40), (160, 120), (33, 17)]),
)
def test_cell_values_are_the_official_upsampled_values(oh, ow, scale):
    img, pad, low = _geometry((oh, ow), scale)
    logits = _smooth(3, *low, seed=oh * 100 + ow)
    full = logits_to_original(logits, pad, img, (oh, ow))  # (3, oh, ow)
    grid = UpsampleGrid(low, pad, img, (oh, ow))
    cells = torch.nonzero(torch.ones(low, dtype=torch.bool))
    ch = torch.tensor([[0], [2]]).expand(2, len(cells))
    v, valid, ys, xs = grid.cell_values(logits, ch, cells[:, 0], cells[:, 1])
    m, a, b = torch.nonzero(valid, as_tuple=True)
    seen = torch.zeros(oh, ow, dtype=torch.int64)
    seen.index_put_((ys[m, a], xs[m, b]), torch.ones_like(m), accumulate=True)
    assert torch.all(seen == 1)  # every pixel belongs to exactly one cell
    torch.testing.assert_close(v[0, m, a, b], full[0, ys[m, a], xs[m, b]], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(v[1, m, a, b], full[2, ys[m, a], xs[m, b]], rtol=1e-5, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(oh=st.integers(12, 80), ow=st.integers(12, 80), scale=st.sampled_from([None, (64, 48), (100, 90)]),
       seed=st.integers(0, 10_000))
def test_binary_masks_and_argmax_equal_official(oh, ow, scale, seed):
    img, pad, low = _geometry((oh, ow), scale)
    logits = _smooth(4, *low, seed=seed)
    grid = UpsampleGrid(low, pad, img, (oh, ow))
    full = logits_to_original(logits, pad, img, (oh, ow))
    sure = full.abs() > 1e-4  # ignore exact ties of the sign decision
    masks, boxes = binary_masks_fast(logits, grid)
    assert torch.equal(masks[sure], (full > 0)[sure])
    assert torch.equal(boxes, masks_to_boxes(masks))  # boxes of the masks it returns
    top2 = full.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4
    assert torch.equal(argmax_fast(logits, grid)[clear], full.argmax(0)[clear])


def test_argmax_with_many_channels_uses_candidates():
    """More than 18 channels: only the neighbourhood's two best are compared per pixel."""
    img, pad, low = _geometry((70, 90), (64, 48))
    scores = _smooth(40, *low, seed=5, scale=3.0)
    full = logits_to_original(scores, pad, img, (70, 90))
    fast = argmax_fast(scores, UpsampleGrid(low, pad, img, (70, 90)))
    assert (fast == full.argmax(0)).float().mean() >= PIXEL_AGREEMENT


def test_noisy_masks_fall_back_to_the_dense_official_path():
    """White-noise logits (an untrained model) leave most cells uncertain: the official result."""
    img, pad, low = _geometry((40, 52), None)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, *low, generator=g)
    grid = UpsampleGrid(low, pad, img, (40, 52))
    scores, labels = torch.full((5,), 0.9), torch.tensor([0, 1, 2, 3, 0])
    fast = panoptic_fast(scores, labels, logits, grid, [True, True, False, False])
    ref = panoptic_postprocess(scores, labels, logits_to_original(logits, pad, img, (40, 52)), [True, True, False, False])
    assert fast.areas is None  # it fell back
    assert torch.equal(fast.seg_ids, ref.seg_ids) and fast.labels == ref.labels
    full = logits_to_original(logits, pad, img, (40, 52))
    masks, boxes = binary_masks_fast(logits, grid)
    assert torch.equal(masks, full > 0) and torch.equal(boxes, masks_to_boxes(masks))
    assert torch.equal(argmax_fast(logits, grid), full.argmax(0))


def test_empty_inputs_fast_path():
    grid = UpsampleGrid((4, 4), (16, 16), (16, 16), (16, 16))
    assert binary_masks_fast(torch.zeros(0, 4, 4), grid)[0].shape == (0, 16, 16)
    raw = panoptic_fast(torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0, 4, 4), grid, [True])
    assert raw.seg_ids.shape == (16, 16) and raw.seg_ids.sum() == 0 and raw.labels == []


# ------------------------------------------------------------------------------ panoptic rules
def _official_loop(scores, labels, masks_logits, flags, iou_thr):
    """The official per-query loop (mmdet MaskFormerFusionHead), as the reference."""
    masks = masks_logits.sigmoid()
    ids = (scores.view(-1, 1, 1) * masks).argmax(0)
    seg = torch.zeros(ids.shape, dtype=torch.int32)
    stuff, nxt, out = {}, 1, []
    for k in range(len(scores)):
        lab, thing = int(labels[k]), bool(flags[int(labels[k])])
        mask = ids == k
        area, orig = int(mask.sum()), int((masks[k] >= 0.5).sum())
        mask = mask & (masks[k] >= 0.5)
        if area > 0 and orig > 0:
            if area / orig < iou_thr:
                continue
            if not thing and lab in stuff:
                seg[mask] = stuff[lab]
                continue
            seg[mask] = nxt
            if not thing:
                stuff[lab] = nxt
            out.append((lab, k, thing))
            nxt += 1
    return seg, out


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000), thr=st.sampled_from([0.5, 0.8, 0.95]))
def test_vectorised_official_rules_equal_the_loop(n, seed, thr):
    g = torch.Generator().manual_seed(seed)
    logits = _smooth(n, 14, 17, seed=seed)
    scores = torch.rand(n, generator=g) * 0.2 + 0.8
    labels = torch.randint(0, 4, (n,), generator=g)
    flags = [True, True, False, False]
    seg, segs = _official_loop(scores, labels, logits, flags, thr)
    raw = panoptic_postprocess(scores, labels, logits, flags, thr, True, torch.arange(n))
    assert torch.equal(raw.seg_ids, seg)
    assert list(zip(raw.labels, raw.queries, raw.is_thing)) == segs


def test_segment_stats_equal_masks_to_boxes():
    seg = torch.zeros(20, 30, dtype=torch.int32)
    seg[2:5, 3:9] = 1
    seg[10:20, 0:1] = 2
    seg[0, 29] = 4  # segment 3 is empty
    area, boxes = segment_stats(seg, 4)
    masks = torch.stack([seg == i for i in range(1, 5)])
    assert area.tolist() == masks.flatten(1).sum(1).tolist()
    assert torch.equal(boxes, masks_to_boxes(masks))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000), scale=st.sampled_from([None, (64, 48), (120, 100)]))
def test_panoptic_fast_equals_official_on_random_logits(n, seed, scale):
    ori = (50, 70)
    img, pad, low = _geometry(ori, scale)
    g = torch.Generator().manual_seed(seed)
    logits = _smooth(n, *low, seed=seed)
    scores = torch.rand(n, generator=g) * 0.2 + 0.8
    labels = torch.randint(0, 4, (n,), generator=g)
    flags = [True, True, False, False]
    q = torch.arange(n) * 3
    ref = panoptic_postprocess(scores, labels, logits_to_original(logits, pad, img, ori), flags, 0.8, True, q)
    fast = panoptic_fast(scores, labels, logits, UpsampleGrid(low, pad, img, ori), flags, 0.8, q)
    assert list(zip(fast.labels, fast.queries, fast.is_thing)) == list(zip(ref.labels, ref.queries, ref.is_thing))
    assert (fast.seg_ids == ref.seg_ids).float().mean() >= PIXEL_AGREEMENT
    if fast.areas is not None:  # (None: too noisy for the band, it ran the dense official path)
        area, boxes = segment_stats(fast.seg_ids, len(fast.labels))
        assert torch.equal(fast.areas, area) and torch.equal(fast.boxes, boxes)  # stats of the map it returns


@pytest.mark.parametrize("scale", [None, (64, 48)])
def test_panoptic_fast_without_boundary_cells(scale):
    """One kept query covering the whole image: no uncertain cell at all (used to crash on an empty gather)."""
    ori = (50, 70)
    img, pad, low = _geometry(ori, scale)
    grid = UpsampleGrid(low, pad, img, ori)
    v, valid, ys, xs = grid.cell_values(torch.ones(2, *low), None, torch.zeros(0, dtype=torch.long),
                                        torch.zeros(0, dtype=torch.long))
    assert v.shape[:2] == (2, 0) and valid.shape[0] == 0
    logits = torch.full((1, *low), 5.0)
    scores, labels, flags, q = torch.tensor([0.9]), torch.tensor([2]), [True, True, False, False], torch.tensor([7])
    ref = panoptic_postprocess(scores, labels, logits_to_original(logits, pad, img, ori), flags, 0.8, True, q)
    fast = panoptic_fast(scores, labels, logits, grid, flags, 0.8, q)
    assert fast.labels == ref.labels == [2] and fast.queries == ref.queries
    assert torch.equal(fast.seg_ids, ref.seg_ids) and bool((fast.seg_ids == 1).all())


@pytest.mark.parametrize("scale", [None, (200, 160)])
def test_panoptic_fast_band_path_on_smooth_masks(scale):
    ori = (120, 150)
    img, pad, low = _geometry(ori, scale)
    # object-like masks: discs with logits +8 inside falling to -8 outside (a trained model's look)
    g = torch.Generator().manual_seed(11)
    yy, xx = torch.meshgrid(torch.arange(low[0]).float(), torch.arange(low[1]).float(), indexing="ij")
    centres = torch.rand(6, 2, generator=g) * torch.tensor(low).float()
    radii = torch.rand(6, generator=g) * 6 + 4
    dist = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2).sqrt()
    logits = (2.0 * (radii[:, None, None] - dist)).clamp(-8, 8)
    scores = torch.linspace(0.95, 0.85, 6)
    labels = torch.tensor([0, 1, 2, 3, 2, 0])
    flags = [True, True, False, False]
    ref = panoptic_postprocess(scores, labels, logits_to_original(logits, pad, img, ori), flags, 0.8, True)
    fast = panoptic_fast(scores, labels, logits, UpsampleGrid(low, pad, img, ori), flags, 0.8)
    assert fast.areas is not None  # the band path, not the dense fallback
    assert fast.labels == ref.labels and len(fast.labels) >= 2
    assert (fast.seg_ids == ref.seg_ids).float().mean() >= PIXEL_AGREEMENT
    area, boxes = segment_stats(fast.seg_ids, len(fast.labels))
    assert torch.equal(fast.areas, area) and torch.equal(fast.boxes, boxes)


# ------------------------------------------------------------------------------ demo model
@pytest.mark.parametrize("scale,size", [("model", 192), (None, 160), ((320, 256), 200)])
def test_demo_fast_vs_official_panoptic_and_semantic(demo, scale, size):
    fast = PanopticPredictor(demo, image_scale=scale)
    official = PanopticPredictor(demo, image_scale=scale, postprocess="official", fuse=False)
    assert fast.postprocess == "fast" and fast.encoder is not None  # the defaults
    for seed in range(3):
        img = _scene(seed, size)
        a = fast.predict(img, tasks=("panoptic", "semantic"))
        b = official.predict(img, tasks=("panoptic", "semantic"))
        pa, pb = a.panoptic, b.panoptic
        assert [(s.label, s.query, s.is_thing) for s in pa.segments] == [(s.label, s.query, s.is_thing) for s in pb.segments]
        assert (pa.seg_ids == pb.seg_ids).float().mean() >= PIXEL_AGREEMENT
        assert (a.semantic.sem == b.semantic.sem).float().mean() >= PIXEL_AGREEMENT
        for s in pa.segments:  # areas / boxes describe the returned map exactly
            m = pa.seg_ids == s.id
            assert s.area == int(m.sum()) and s.bbox == tuple(masks_to_boxes(m[None])[0].tolist())


def test_demo_instances_unchanged_by_the_fast_path(demo):
    img = _scene(4, 160)
    a = PanopticPredictor(demo, image_scale=None).predict(img, tasks=("instance",)).instances
    b = PanopticPredictor(demo, image_scale=None, postprocess="official", fuse=False).predict(img, tasks=("instance",)).instances
    assert a.query_indices.tolist() == b.query_indices.tolist()
    assert (a.masks == b.masks).float().mean() >= PIXEL_AGREEMENT
    torch.testing.assert_close(a.scores, b.scores, rtol=1e-3, atol=1e-4)


def test_demo_interactive_fast_masks_and_cached_kv(demo, monkeypatch):
    img = _scene(1, 192)
    fast = InteractivePredictor(demo)
    official = InteractivePredictor(demo, postprocess="official", fuse=False)
    calls = []
    orig = demo.prompt_adapter.project_features
    monkeypatch.setattr(demo.prompt_adapter, "project_features", lambda f: calls.append(1) or orig(f))
    fast.set_image(img)
    official.set_image(img)
    pts = [[30, 40], [100, 120], [150, 60]]
    a = fast.predict(points=pts)
    fast.predict(boxes=[[10, 10, 90, 80]])
    assert len(calls) == 1  # projected once per image, by the first predict
    b = official.predict(points=pts)
    assert (a.masks == b.masks).float().mean() >= PIXEL_AGREEMENT
    torch.testing.assert_close(a.iou, b.iou, rtol=1e-3, atol=1e-4)
    # with the cache and without it (the model's own nn.MultiheadAttention)
    prompts = fast.to_model_frame(points=pts)
    logits, iou, _ = fast.predict_torch(prompts)
    with torch.inference_mode():
        out = demo.decode(fast.features, prompts, with_objects=False)
    torch.testing.assert_close(logits, out.prompt_outputs[-1].mask_logits[0], rtol=1e-4, atol=1e-3)
    fast.set_image(_scene(2, 192))  # a new image drops the cache
    fast.predict(points=pts)
    assert len(calls) == 3  # (the official predictor's image once, this new image once)


def test_fast_masks_match_official_logits_exactly_without_resize(demo):
    p = InteractivePredictor(demo, image_scale=None)
    p.set_image(_scene(3, 128))
    res = p.predict(points=[[20, 30], [90, 70]])
    full = p.predict(points=[[20, 30], [90, 70]], return_logits=True).logits  # official upsampling
    sure = full.abs() > 1e-4
    assert torch.equal(res.masks[sure], (full > 0)[sure])


# ------------------------------------------------------------------------------ inference mode
def test_every_predictor_path_runs_in_inference_mode(demo, monkeypatch):
    modes = []
    decode = demo.decode
    monkeypatch.setattr(demo, "decode", lambda *a, **k: modes.append(torch.is_inference_mode_enabled()) or decode(*a, **k))
    img = _scene(0, 96)
    pan = PanopticPredictor(demo).predict(img)
    ip = InteractivePredictor(demo)
    ip.set_image(img)
    res = ip.predict(points=[[20, 20]])
    vp = VideoPredictor(demo, image_scale=None)
    frames = list(vp.track([img, img], tasks=("instance", "panoptic")))
    assert modes and all(modes)
    outs = [pan.panoptic.seg_ids, pan.instances.masks, pan.instances.scores, res.masks, res.iou,
            frames[-1][1].instances.masks, ip.features]
    assert not any(t.requires_grad for t in outs)


# ------------------------------------------------------------------------------ options
def test_predictor_options_are_validated(demo):
    for cls in (PanopticPredictor, InteractivePredictor):
        with pytest.raises(ValueError, match="postprocess"):
            cls(demo, postprocess="approximate")
        with pytest.raises(ValueError, match="fuse=True"):
            cls(demo, fuse=False, compile=True)
        with pytest.raises(ValueError, match="CUDA"):
            cls(demo, dtype=torch.float16)


def test_fused_predictor_leaves_the_model_alone_and_follows_new_weights(demo):
    import copy

    model = copy.deepcopy(demo)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = PanopticPredictor(model, image_scale=None)
    img = _scene(5, 96)
    p.predict(img)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():  # new weights after the predictor was built
        for prm in model.backbone.parameters():
            prm.mul_(1.1)
    a = p.predict(img).panoptic
    b = PanopticPredictor(model, image_scale=None, fuse=False, postprocess="official").predict(img).panoptic
    assert (a.seg_ids == b.seg_ids).float().mean() >= PIXEL_AGREEMENT


def test_half_precision_code_path_via_cpu_autocast(demo):
    """The dtype option's autocast path (guarded to CUDA in the constructor) run with CPU bfloat16."""
    img = _scene(6, 128)
    ref = PanopticPredictor(demo).predict(img, tasks=("panoptic",)).panoptic
    p = PanopticPredictor(demo)
    p.dtype = torch.bfloat16  # bypass the CUDA guard to exercise the code path here
    out = p.predict_torch(p.prepare(img))
    assert out.object_outputs[-1].mask_logits.dtype == torch.bfloat16
    pan = p.predict(img, tasks=("panoptic",)).panoptic
    assert (pan.seg_ids == ref.seg_ids).float().mean() > 0.98
    ip = InteractivePredictor(demo)
    ip.dtype = torch.bfloat16
    ip.set_image(img)
    res = ip.predict(points=[[40, 40]])
    assert res.iou.dtype == torch.float32 and res.masks.dtype == torch.bool


def test_compiled_encoder_wiring_with_the_eager_backend(demo):
    """compile= reaches torch.compile through the predictor (dynamo traces the fused encoder; seconds, not minutes)."""
    p = PanopticPredictor(demo, image_scale=None, compile="eager")
    ref = PanopticPredictor(demo, image_scale=None)
    img = _scene(7, 64)
    with torch.inference_mode():
        a = demo.extract_features(p.prepare(img).tensor, encoder=p.encoder).materialize()
        b = demo.extract_features(ref.prepare(img).tensor, encoder=ref.encoder).materialize()
    assert p.encoder._fn is not p.encoder._neck and type(p.encoder._fn).__name__ == "OptimizedModule"
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="backend name"):
        PanopticPredictor(demo, compile=3)


@pytest.mark.skipif(os.environ.get("RAPSAM_TEST_COMPILE") != "1",
                    reason="torch.compile takes minutes on 2 CPUs (~210 s cold for rapsam_tiny); set RAPSAM_TEST_COMPILE=1")
def test_compiled_encoder_matches(demo):
    p = PanopticPredictor(demo, image_scale=None, compile=True)
    ref = PanopticPredictor(demo, image_scale=None)
    img = _scene(7, 64)
    with torch.inference_mode():
        a = demo.extract_features(p.prepare(img).tensor, encoder=p.encoder).materialize()
        b = demo.extract_features(ref.prepare(img).tensor, encoder=ref.encoder).materialize()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
