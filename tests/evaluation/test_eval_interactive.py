"""Interactive protocols: click placement, NoC quirks, COCO-SAM pooling and geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from rapsam.evaluation.interactive import (
    Click,
    CocoSamEvaluator,
    NoCEvaluator,
    box_prompt_miou,
    coco_sam_click,
    coco_sam_iou_gt,
    coco_sam_prompt_segments,
    coco_sam_test_size,
    deepest_point,
    kornia_distance_transform,
    next_click,
    noc_thresholds,
    point_to_box,
    resize_bilinear,
    resize_nearest,
    ritm_iou,
    run_clicks,
    tight_box,
)


def _brute_edt(mask):
    """Distance of each True pixel to the nearest False pixel of the zero-padded mask."""
    p = np.pad(mask, 1)
    bg = np.argwhere(~p)
    out = np.zeros(mask.shape, np.float32)
    for y, x in np.argwhere(mask):
        d2 = ((bg - (y + 1, x + 1)) ** 2).sum(1).min()
        out[y, x] = np.sqrt(np.float32(d2))
    return out


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9))))
def test_deepest_point_is_first_argmax_of_padded_exact_edt(mask):
    dt = _brute_edt(mask)
    x, y = deepest_point(mask)
    idx = int(np.argmax(dt))
    assert (x, y) == (idx % mask.shape[1], idx // mask.shape[1])
    if mask.any():
        assert mask[y, x]


def test_deepest_point_hand_cases():
    m = np.zeros((10, 10), bool)
    m[2:7, 1:8] = True  # rows 2-6, cols 1-7: depth 3 on row 4, cols 3..5 tie -> first
    assert deepest_point(m) == (3, 4)
    # kornia's approximate transform also weighs diagonals: it picks the true centre.
    assert deepest_point(m, method="kornia") == (4, 4) == coco_sam_click(m)
    # The image edge is a boundary (depth is limited by the 1-pixel pad).
    assert deepest_point(np.ones((5, 7), bool)) == (2, 2)  # cols 2-4 tie at depth 3
    assert deepest_point(np.zeros((3, 3), bool)) == (0, 0)
    assert point_to_box(10, 20).tolist() == [7, 17, 13, 23]


def _torch_kornia_dt(image: np.ndarray) -> np.ndarray:
    """The convolutional distance transform written with torch ops (float32, replicate pad)."""
    img = torch.from_numpy(image.astype(np.float32))[None, None]
    g = torch.arange(3, dtype=torch.float32) - 1
    kernel = torch.exp(torch.hypot(g[None, :], g[:, None]) / -0.35)[None, None]
    out = torch.zeros_like(img)
    boundary = img.clone()
    for i in range(max(image.shape)):
        cdt = F.conv2d(F.pad(boundary, (1, 1, 1, 1), mode="replicate"), kernel)
        cdt = torch.nan_to_num(-0.35 * torch.log(cdt), posinf=0.0)
        new = torch.where(cdt > 0, 1.0, 0.0)
        if new.sum() == 0:
            break
        out += (i * 3 // 2 + cdt) * new
        boundary = torch.where(new == 1, torch.ones_like(boundary), boundary)
    return out[0, 0].numpy()


def test_kornia_port_matches_torch_ops_and_places_same_click():
    rng = np.random.default_rng(0)
    for k in range(16):
        h, w = rng.integers(3, 30, size=2) if k else (60, 90)
        m = ndimage.binary_opening(rng.random((h, w)) < 0.7)
        if k == 0:  # a smooth blob: long wavefronts, many near-ties
            yy, xx = np.mgrid[:h, :w]
            m = (yy - 25) ** 2 / 20**2 + (xx - 40) ** 2 / 35**2 < 1
        inv = ~np.pad(m, 1)
        ours = kornia_distance_transform(inv)
        ref = _torch_kornia_dt(inv)
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
        if m.any():
            idx = int(np.argmax(ref[1:-1, 1:-1]))
            assert deepest_point(m, method="kornia") == (idx % w, idx // w)


def test_next_click_rules():
    gt = np.zeros((9, 9), bool)
    gt[1:6, 1:6] = True
    empty = np.zeros_like(gt)
    assert next_click(gt, empty) == Click(3, 3, True)  # deepest GT point, positive
    # FP region deeper than FN region -> negative click in the FP region.
    pred = gt.copy()
    pred[0:9, 6:9] = True  # FP band 9x3 (depth 2), FN empty
    c = next_click(gt, pred)
    assert not c.is_positive and c.x == 7 and pred[c.y, c.x] and not gt[c.y, c.x]
    # Equal depths -> negative (strict >).
    gt2 = np.zeros((3, 7), bool)
    gt2[1, 1] = True
    pred2 = np.zeros((3, 7), bool)
    pred2[1, 5] = True
    assert next_click(gt2, pred2) == Click(5, 1, False)
    # No error at all -> negative click at (0, 0), as the reference.
    assert next_click(gt, gt) == Click(0, 0, False)
    # Clicked pixels get distance 0: the next best pixel is chosen.
    nc = np.ones_like(gt)
    nc[3, 3] = False
    c = next_click(gt, empty, not_clicked=nc)
    assert c.is_positive and (c.x, c.y) != (3, 3) and gt[c.y, c.x]
    # Ignore pixels belong to neither error region.
    ign = np.zeros_like(gt)
    ign[1:6, 1:4] = True
    c = next_click(gt, empty, ignore=ign)
    assert c.x >= 4


def _component_predictor(gt):
    """Predict the GT components containing a positive click (deterministic toy model)."""
    lab, _ = ndimage.label(gt)

    def predict(points, labels):
        keep = {lab[y, x] for (x, y), l in zip(points, labels) if l == 1 and lab[y, x] > 0}
        return np.isin(lab, list(keep)) if keep else np.zeros_like(gt)
    return predict


def test_perfect_predictor_gives_noc_one_and_miou_one():
    rng = np.random.default_rng(0)
    ev = NoCEvaluator()
    for _ in range(5):
        gt = np.zeros((20, 24), bool)
        y, x = rng.integers(0, 15, size=2)
        gt[y:y + 5, x:x + 6] = True
        tr = ev.add(gt, lambda p, l, g=gt: g.copy())
        assert tr.ious == [1.0] and len(tr.ious_all) == 5
    r = ev.compute()
    assert r.noc == {0.8: 1.0, 0.85: 1.0, 0.9: 1.0}
    assert r.miou_at == {1: 1.0, 3: 1.0, 5: 1.0} and r.over_max == {0.8: 0, 0.85: 0, 0.9: 0}


def test_two_component_object_needs_two_clicks():
    gt = np.zeros((20, 30), bool)
    gt[2:10, 2:10] = True  # 64 px, clicked first
    gt[12:16, 20:24] = True  # 16 px
    tr = run_clicks(gt, _component_predictor(gt))
    assert [(c.x, c.y, c.is_positive) for c in tr.clicks] == [(5, 5, True), (21, 13, True)]
    assert tr.ious == [0.8, 1.0]
    r = NoCEvaluator()
    r.traces.append(tr)
    res = r.compute()
    assert res.noc == {0.8: 1.0, 0.85: 2.0, 0.9: 2.0}


def test_iou_exactly_090_stops_but_counts_20_at_noc90():
    gt = np.zeros((10, 10), bool)
    gt[:, :] = True
    ninety = gt.copy()
    ninety[9, :] = False  # 90 px: IoU exactly 0.9
    tr = run_clicks(gt, lambda p, l: ninety)
    assert tr.ious == [0.9]  # stopped: 0.9 >= 0.9
    assert noc_thresholds().tolist() == [0.8, 0.8500000000000001, 0.9000000000000001]
    ev = NoCEvaluator()
    ev.traces.append(tr)
    r = ev.compute()
    assert r.noc[0.9] == 20.0 and r.over_max[0.9] == 1 and r.noc[0.85] == 1.0


def test_never_reaching_counts_max_clicks_and_miou_uses_extra_clicks():
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    ev = NoCEvaluator(max_clicks=20)
    tr = ev.add(gt, lambda p, l: np.zeros_like(gt))
    assert len(tr.ious) == 20 and tr.ious_all == tr.ious
    r = ev.compute()
    assert r.noc == {0.8: 20.0, 0.85: 20.0, 0.9: 20.0} and r.miou_at[5] == 0.0
    # A sample that stops after 1 click still reports mIoU@3 from continued clicks.
    ev2 = NoCEvaluator()
    tr2 = ev2.add(gt, lambda p, l: gt)
    assert len(tr2.ious) == 1 and len(tr2.ious_all) == 5


def test_ignore_label_and_predict_validation():
    gt = np.zeros((6, 6), int)
    gt[1:4, 1:4] = 1
    gt[4:, :] = -1
    pred = np.zeros((6, 6), bool)
    pred[1:4, 1:4] = True
    pred[5, :] = True  # on ignore pixels: not counted
    assert ritm_iou(gt, pred) == 1.0
    assert math.isnan(ritm_iou(np.zeros((2, 2), int), np.zeros((2, 2), bool)))
    with pytest.raises(ValueError, match="expected the GT size"):
        run_clicks(gt, lambda p, l: np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="bool mask"):
        run_clicks(gt, lambda p, l: np.full((6, 6), 0.7))


def test_box_prompt_miou():
    gt = np.zeros((10, 12), bool)
    gt[2:5, 3:9] = True
    assert tight_box(gt).tolist() == [3, 2, 9, 5]
    boxes = []

    def perfect(box):
        boxes.append(box)
        m = np.zeros_like(gt)
        m[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = True
        return m
    r = box_prompt_miou([gt, gt], perfect)
    assert r.miou == 1.0 and len(boxes) == 2
    half = box_prompt_miou([gt], lambda b: np.where(np.arange(12) < 6, gt, False))
    assert half.miou == 0.5
    with pytest.raises(ValueError, match="empty mask"):
        box_prompt_miou([np.zeros((3, 3), bool)], perfect)


def test_coco_sam_pools_over_prompts():
    ev = CocoSamEvaluator()
    a = np.zeros((2, 4, 4), bool)
    a[:, :2, :2] = True
    p = a.copy()
    p[1, :2, 2:] = True  # IoU 0.5
    assert ev.add(p, a).tolist() == [1.0, 0.5]
    g = np.zeros((1, 4, 4), bool)
    g[0, 0, 0] = True
    ev.add(np.zeros((1, 4, 4), bool), g)  # IoU 0
    r = ev.compute()
    assert r.miou == pytest.approx(0.5)  # pooled: (1 + 0.5 + 0) / 3, not per-image 0.375
    assert r.noc[0.5] == pytest.approx((1 + 1 + 20) / 3) and r.noc[0.9] == pytest.approx(41 / 3)
    assert r.num_prompts == 3


def test_coco_sam_prompt_filter_and_sizes():
    segs = [{"id": 1, "area": 10, "bbox": [0, 0, 3, 4]}, {"id": 2, "area": 0, "bbox": [0, 0, 2, 2]},
            {"id": 3, "area": 5, "bbox": [0, 0, 0.5, 4]}, {"id": 4, "area": 5, "bbox": [1, 1, 1, 1]}]
    assert [s["id"] for s in coco_sam_prompt_segments(segs)] == [1, 4]
    assert coco_sam_test_size(480, 640) == (800, 1067)
    # keep ratio: the scale is min(1333 / long, 800 / short)
    assert coco_sam_test_size(640, 427) == (1199, 800)


def test_resize_nearest_and_bilinear_match_reference_ops():
    x = np.arange(6).reshape(2, 3)
    assert resize_nearest(x, (4, 6)).tolist() == [[0, 0, 1, 1, 2, 2]] * 2 + [[3, 3, 4, 4, 5, 5]] * 2
    assert resize_nearest(np.arange(5)[None], (1, 2)).tolist() == [[0, 2]]
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(1, 30, size=2)
        H, W = rng.integers(1, 70, size=2)
        m = (rng.random((h, w)) < 0.4).astype(np.float32)
        ref = F.interpolate(torch.from_numpy(m)[None, None], size=(int(H), int(W)),
                            mode="bilinear", align_corners=False)[0, 0].numpy()
        ours = resize_bilinear(m, (int(H), int(W)))
        np.testing.assert_allclose(ours, ref, atol=1e-6)
        assert np.array_equal(coco_sam_iou_gt(m, (int(H), int(W))), ref > 0)
