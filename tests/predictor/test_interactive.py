"""InteractivePredictor: official parity, batching, prompt order, coordinate mapping, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.predictor import InteractivePredictor
from rapsam.predictor.interactive import parse_prompts
from rapsam.predictor.transforms import resized_shape
from tests.conftest import _gen, load_case


@pytest.fixture(scope="module")
def predictor(official_r18_model):
    d, _ = load_case("r18_panoptic_256x320")
    p = InteractivePredictor(official_r18_model, image_scale=None)
    p.set_image(d["img_bgr"][::-1].transpose(1, 2, 0).copy())
    return p


def test_masks_equal_official(predictor):
    d, meta = load_case("r18_interactive_256x320")
    g = _gen()
    res = predictor.predict(points=d["points_xy"])
    ref = g.unpack_bool(d["pred_masks_bits"], d["pred_masks_shape"])
    amb = g.unpack_bool(d["pred_masks_ambiguous_bits"], d["pred_masks_shape"])
    assert res.masks.shape == (5, 256, 320)
    assert ((res.masks.numpy() != ref) & ~amb).sum() == 0
    np.testing.assert_allclose(res.iou.numpy(), d["iou_3"][0, :, 0], rtol=1e-4)
    assert res.labels is not None and len(res.names) == 5


def test_batch_equals_single_calls_and_order_free(predictor):
    pts = np.array([[40, 30], [160, 128], [250, 200], [300, 60]], np.float32)
    batch = predictor.predict(points=pts, return_logits=True)
    for i in range(len(pts)):
        one = predictor.predict(points=pts[i : i + 1], return_logits=True)
        torch.testing.assert_close(one.logits[0], batch.logits[i], rtol=1e-4, atol=2e-3)
        assert (one.masks[0] != batch.masks[i]).sum() <= 5
    rev = predictor.predict(points=pts[::-1].copy(), return_logits=True)
    torch.testing.assert_close(rev.logits.flip(0), batch.logits, rtol=1e-4, atol=2e-3)


def test_multi_click_and_box_prompts(predictor):
    res = predictor.predict(
        points=[[[100, 100], [120, 110], [10, 10]], [[200, 50], [0, 0], [0, 0]]],
        labels=[[1, 1, 0], [1, -1, -1]],
        boxes=[[80, 80, 150, 140], [180, 30, 240, 90]],
    )
    assert res.masks.shape == (2, 256, 320) and res.iou.shape == (2,)
    box_only = predictor.predict(boxes=[[80, 80, 150, 140]])
    assert box_only.masks.shape == (1, 256, 320)
    # padding (-1) clicks do not change the prompt
    a = predictor.predict(points=[[[200, 50], [0, 0]]], labels=[[1, -1]], return_logits=True)
    b = predictor.predict(points=[[200, 50]], return_logits=True)
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=2e-3)


def test_cached_features_not_recomputed(predictor, monkeypatch):
    calls = []
    orig = predictor.model.extract_features
    monkeypatch.setattr(predictor.model, "extract_features", lambda *a, **k: calls.append(1) or orig(*a, **k))
    predictor.predict(points=[[10, 10]])
    predictor.predict(points=[[20, 10]])
    assert calls == []


def test_coordinates_map_with_resize(official_r18_model):
    img = np.random.default_rng(0).integers(0, 255, (301, 433, 3), dtype=np.uint8)
    p = InteractivePredictor(official_r18_model, image_scale=(200, 120))
    p.set_image(img)
    nh, nw = resized_shape(301, 433, (200, 120))
    pr = p.to_model_frame(points=[[433, 301], [0, 0], [216.5, 150.5]])
    np.testing.assert_allclose(pr.points[0, :, 0].numpy(), [[nw, nh], [0, 0], [nw / 2, nh / 2]], rtol=1e-6)
    assert pr.image_sizes.tolist() == [[nh, nw]]
    res = p.predict(points=[[216, 150]])
    assert res.masks.shape == (1, 301, 433)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 2000), w=st.integers(1, 2000), fx=st.floats(0, 1), fy=st.floats(0, 1))
def test_parse_prompts_property(h, w, fx, fy):
    pts, lab, boxes = parse_prompts([[fx * w, fy * h]], None, None, (h, w))
    assert pts.shape == (1, 1, 2) and lab.tolist() == [[1]] and boxes is None
    assert 0 <= pts[0, 0, 0] <= w and 0 <= pts[0, 0, 1] <= h


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(points=[[400, 10]]), "outside"),
        (dict(points=[[-1, 10]]), "outside"),
        (dict(points=[[float("nan"), 10]]), "NaN"),
        (dict(boxes=[[50, 50, 40, 60]]), "x1 > x0"),
        (dict(boxes=[[0, 0, 400, 60]]), "outside"),
        (dict(points=[[10, 10]], labels=[2]), "labels"),
        (dict(points=[[10, 10]], labels=[0]), "positive"),
        (dict(points=[[10, 10, 3]]), "shape"),
        (dict(points=[[10, 10], [20, 20]], boxes=[[0, 0, 5, 5]]), "one box per prompt"),
        (dict(), "no prompt"),
    ],
)
def test_bad_prompts(predictor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict(**kwargs)


def test_predict_before_set_image(official_r18_model):
    p = InteractivePredictor(official_r18_model)
    with pytest.raises(RuntimeError, match="set_image"):
        p.predict(points=[[1, 1]])
