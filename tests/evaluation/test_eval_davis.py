"""DAVIS J / F / J&F: hand cases, boundary rule, disk dilation, statistics, folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.morphology import disk

from rapsam.evaluation.davis import (
    DavisEvaluator,
    _within,
    boundary_radius,
    davis_evaluate_folders,
    db_eval_iou,
    db_statistics,
    evaluate_davis_sequence,
    f_measure,
    seg2bmap,
)
from rapsam.evaluation.io import EvaluationInputError


def _video(T=5, h=48, w=64, shift=0):
    labels = np.zeros((T, h, w), np.uint8)
    for t in range(T):
        labels[t, 10:30, 10 + shift:30 + shift] = 1
        labels[t, 5:15, 40:60] = 2
    return labels


def test_seg2bmap_rule():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:3] = True
    b = seg2bmap(m)
    expect = np.array([[1, 1, 1, 0, 0],
                       [1, 0, 1, 0, 0],
                       [1, 1, 1, 0, 0],
                       [0, 0, 0, 0, 0]], bool)
    assert np.array_equal(b, expect)
    # The last column compares only downwards and the last row only rightwards, so a mask
    # filling the image has no boundary at all.
    assert not seg2bmap(np.ones((3, 3), bool)).any()
    col = np.zeros((3, 3), bool)
    col[0, 2] = True  # last column: differs from the pixel below -> boundary
    assert np.array_equal(seg2bmap(col), np.array([[0, 1, 1], [0, 0, 0], [0, 0, 0]], bool))


def test_disk_dilation_equals_skimage_disk_dilation():
    rng = np.random.default_rng(0)
    for r in (1, 2, 5, 8):
        b = rng.random((40, 50)) < 0.01
        ref = ndimage.binary_dilation(b, structure=disk(float(r)).astype(bool))
        assert np.array_equal(_within(b, r), ref)


def test_boundary_radius():
    assert boundary_radius((480, 854)) == 8
    assert boundary_radius((720, 1280)) == 12
    assert boundary_radius((1080, 1920)) == 18
    assert boundary_radius((10, 10), 3) == 3
    with pytest.raises(ValueError, match="whole number"):
        boundary_radius((10, 10), 2.5)


def test_j_and_f_edge_cases():
    e = np.zeros((6, 6), bool)
    m = e.copy()
    m[1:4, 1:4] = True
    assert db_eval_iou(e, e) == 1.0  # empty union -> 1
    assert db_eval_iou(m, e) == 0.0
    assert f_measure(e, e) == 1.0
    assert f_measure(e, m) == 0.0  # P = 1, R = 0
    assert f_measure(m, e) == 0.0  # P = 0, R = 1
    assert f_measure(m, m) == 1.0
    void = np.zeros_like(m)
    void[1:4, 1:2] = True
    half = m & ~void
    assert db_eval_iou(m, half, void) == 1.0
    # Boundary within tolerance: a one-pixel shift is free at radius 1.
    s = np.roll(m, 1, axis=1)
    assert f_measure(s, m, bound_th=1) == 1.0
    assert f_measure(np.roll(m, 2, axis=1), m, bound_th=1) < 1.0


def test_statistics():
    v = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    m, o, d = db_statistics(v)
    assert m == 0.4 and o == 0.4
    # ids = round(linspace(1, 5, 5)) - 1 = [0, 1, 2, 3, 4]: bins [0:2], [1:3], [2:4], [3:5]
    assert d == pytest.approx(1.0 - 0.0)
    assert db_statistics(np.array([0.5, 0.6]))[1] == 0.5  # recall uses strict > 0.5


def test_perfect_empty_and_shifted_sequences():
    gt = _video()
    perfect = evaluate_davis_sequence(gt, gt)
    assert len(perfect) == 2
    assert all(o.j_stats[0] == 1.0 and o.f_stats[0] == 1.0 for o in perfect)
    assert all(len(o.j) == 3 for o in perfect)  # first and last frames dropped
    empty = evaluate_davis_sequence(gt, np.zeros_like(gt))
    assert all(o.j_stats == (0.0, 0.0, 0.0) and o.f_stats[0] == 0.0 for o in empty)
    shifted = evaluate_davis_sequence(gt, _video(shift=4))
    j = shifted[0].j_stats[0]
    assert j == pytest.approx(16 * 20 / (24 * 20))  # 20x20 square shifted by 4 columns
    assert 0 < shifted[0].f_stats[0] < 1 and shifted[1].j_stats[0] == 1.0
    # Object 2 missing from the results: scored as empty masks.
    only1 = np.where(gt == 2, 0, gt)
    r = evaluate_davis_sequence(gt, only1)
    assert r[1].j_stats[0] == 0.0 and r[0].j_stats[0] == 1.0
    # Void (255) in the GT becomes background in the semi-supervised task.
    gv = gt.copy()
    gv[:, 0, :] = 255
    assert evaluate_davis_sequence(gv, gt)[0].j_stats[0] == 1.0


def test_too_many_result_objects_abort_like_reference():
    gt = _video()
    pred = gt.copy()
    pred[2, 40:44, 0:4] = 3
    with pytest.raises(ValueError, match="object id 3"):
        evaluate_davis_sequence(gt, pred)
    # An extra id only in the first frame is never read by the reference: allowed.
    pred = gt.copy()
    pred[0, 40:44, 0:4] = 3
    assert len(evaluate_davis_sequence(gt, pred)) == 2


def test_unsupervised_matches_proposals_to_objects():
    gt = _video()
    swapped = np.select([gt == 1, gt == 2], [2, 1], 0).astype(np.uint8)
    r = evaluate_davis_sequence(gt, swapped, task="unsupervised")
    assert [o.j_stats[0] for o in r] == [1.0, 1.0] and len(r[0].j) == 5


def test_global_numbers_average_objects():
    ev = DavisEvaluator()
    gt = _video()
    ev.add("a", gt, gt)
    ev.add("b", gt, np.where(gt == 2, 0, gt))
    r = ev.compute()
    assert r.j_mean == pytest.approx(0.75) and r.f_mean == pytest.approx(0.75)
    assert r.jf_mean == pytest.approx(0.75) and r.j_recall == pytest.approx(0.75)
    assert set(r.to_dict()["per_object"]) == {"a_1", "a_2", "b_1", "b_2"}


def test_folders(tmp_path):
    gt = _video(T=4)
    for root, arr in (("gt", gt), ("res", gt)):
        (tmp_path / root / "s1").mkdir(parents=True)
        for t in range(4):
            if root == "res" and t in (0, 3):
                continue  # the reference never reads the first and last result frames
            Image.fromarray(arr[t], mode="L").save(tmp_path / root / "s1" / f"{t:05d}.png")
    r = davis_evaluate_folders(tmp_path / "gt", tmp_path / "res")
    assert r.jf_mean == 1.0
    (tmp_path / "res" / "s1" / "00001.png").unlink()
    with pytest.raises(EvaluationInputError, match="s1/00001.png"):
        davis_evaluate_folders(tmp_path / "gt", tmp_path / "res")
