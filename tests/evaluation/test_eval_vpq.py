"""VPQ: windows, tube matching, reference quirks, agreement with image PQ at one frame."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rapsam.evaluation.io import SegmentMismatchError, id2rgb
from rapsam.evaluation.panoptic_quality import PQEvaluator
from rapsam.evaluation.vpq import InvalidIoUError, PanopticFrame, vpq_compute, vpq_compute_vipseg

CATS = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}]


def seg(i, c, area, crowd=0):
    return {"id": i, "category_id": c, "iscrowd": crowd, "area": area}


def frame(gt, gt_segs, pred, pred_cats):
    pred_segs = [{"id": int(i), "category_id": pred_cats[int(i)]} for i in np.unique(pred) if i]
    return PanopticFrame(np.asarray(gt), gt_segs, np.asarray(pred), pred_segs)


def _scene(obj_id=5, stuff_id=9):
    gt = np.full((4, 6), stuff_id)
    gt[1:3, 1:3] = obj_id
    return gt, [seg(obj_id, 1, 4), seg(stuff_id, 2, 20)]


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[prefix + k] = float(v)
    return out


def test_one_frame_windows_equal_image_pq_over_all_frames(pangen):
    rng = np.random.default_rng(0)
    for _ in range(20):
        cats = pangen.random_categories(rng, allow_empty_group=False)
        videos, ev = {}, PQEvaluator(cats)
        for v in range(3):
            frames = []
            for t in range(int(rng.integers(1, 4))):
                g, gs = pangen.random_gt_image(rng, 7, 9, cats, wrong_area_prob=0.0)
                p, ps = pangen.random_prediction(rng, g, gs, cats)
                ps = list({s["id"]: s for s in ps}.values())  # no duplicate entries
                frames.append(PanopticFrame(g, gs, p, ps))
                ev.add(g, gs, p, ps)
            videos[v] = frames
        r = vpq_compute(videos, cats, window_lengths=(1,), empty_group="nan")
        img = ev.compute(empty_group="nan")
        assert _flat(r.per_window[0].to_dict()) == pytest.approx(_flat(img.to_dict()),
                                                                 nan_ok=True, abs=1e-12)
        assert r.vpq == pytest.approx(img.all.pq, nan_ok=True)


def test_consistent_ids_score_one_and_id_switch_breaks_the_tube():
    gt, gs = _scene()
    good = [frame(gt, gs, gt, {5: 1, 9: 2}) for _ in range(2)]
    r = vpq_compute([good], CATS, window_lengths=(1, 2))
    assert r.per_window[0].all.pq == 1.0 and r.per_window[5].all.pq == 1.0 and r.vpq == 1.0
    # The object's predicted id changes between frames: at 2 frames each predicted tube covers
    # half the GT tube (IoU 4 / 8 = 0.5, not > 0.5): FN 1 + FP 2 for the thing class.
    p2 = np.where(gt == 5, 6, gt)
    switched = [frame(gt, gs, gt, {5: 1, 9: 2}), frame(gt, gs, p2, {6: 1, 9: 2})]
    r = vpq_compute([switched], CATS, window_lengths=(1, 2))
    assert r.per_window[0].all.pq == 1.0
    th = r.per_window[5].per_class[1]
    assert (th.tp, th.fp, th.fn) == (0, 2, 1)
    assert r.per_window[5].all.pq == pytest.approx(0.5)  # stuff 1, thing 0
    assert r.vpq == pytest.approx(0.75) and r.vpq_stuff == 1.0 and r.vpq_things == 0.5


def test_windows_slide_with_stride_one_and_short_videos_are_skipped():
    gt, gs = _scene()
    f = frame(gt, gs, gt, {5: 1, 9: 2})
    r = vpq_compute({"a": [f] * 4, "b": [f] * 2}, CATS, window_lengths=(1, 3))
    assert r.per_window[0].per_class[1].tp == 6  # 4 + 2 frames
    assert r.per_window[10].per_class[1].tp == 2  # video a: windows [0,3), [1,4); b too short
    assert r.window_lengths == (1, 3)


def test_tube_attributes_from_first_frame_in_window_and_duplicate_gt_areas_sum():
    gt, gs = _scene()
    # Frame 1 lists the object twice with split areas (1 + 3): areas sum to 4.
    gs_dup = [seg(5, 1, 1), seg(5, 1, 3), seg(9, 2, 20)]
    frames = [frame(gt, gs, gt, {5: 1, 9: 2}), frame(gt, gs_dup, gt, {5: 1, 9: 2})]
    r = vpq_compute([frames], CATS, window_lengths=(2,))
    assert r.per_window[5].all.pq == 1.0
    # A duplicated predicted id keeps the FIRST entry's category (panopticapi keeps the last).
    pred_segs = [{"id": 5, "category_id": 1}, {"id": 5, "category_id": 2}, {"id": 9,
                                                                          "category_id": 2}]
    r = vpq_compute([[PanopticFrame(gt, gs, gt, pred_segs)]], CATS, window_lengths=(1,))
    assert r.per_window[0].per_class[1].tp == 1


def test_mcahny_gt_area_aliasing_quirk():
    # The object is absent in frame 0 and present in frames 1-3 (4 px each); windows of 3.
    gt0 = np.full((4, 6), 9)
    gt, gs = _scene()
    frames = [frame(gt0, [seg(9, 2, 24)], gt0, {9: 2})] + [frame(gt, gs, gt, {5: 1, 9: 2})] * 3
    clean = vpq_compute([frames], CATS, window_lengths=(3,))
    assert clean.per_window[10].per_class[1].iou == pytest.approx(2.0)
    quirk = vpq_compute([frames], CATS, window_lengths=(3,), gt_area_aliasing=True)
    # Window [0,3) inflates frame 1's GT area to 8; window [1,4) then sums 8 + 4 + 4 = 16 for a
    # 12-pixel tube: IoU 12 / 16 = 0.75.
    assert quirk.per_window[10].per_class[1].iou == pytest.approx(1.75)


def test_errors_name_video_and_frame():
    gt, gs = _scene()
    bad = PanopticFrame(gt, gs, gt, [{"id": 5, "category_id": 1}])
    with pytest.raises(SegmentMismatchError, match="video 'v' frame 1") as ei:
        vpq_compute({"v": [frame(gt, gs, gt, {5: 1, 9: 2}), bad]}, CATS)
    assert isinstance(ei.value, KeyError)
    small = [seg(5, 1, 1), seg(9, 2, 20)]  # JSON area 1 for a 4-pixel segment -> IoU > 1
    with pytest.raises(InvalidIoUError, match="IoU") as ei:
        vpq_compute([[frame(gt, small, gt, {5: 1, 9: 2})]], CATS, window_lengths=(1,))
    assert isinstance(ei.value, AssertionError)
    with pytest.raises(ValueError, match="window lengths"):
        vpq_compute([[frame(gt, gs, gt, {5: 1, 9: 2})]], CATS, window_lengths=(0,))


def test_vipseg_file_layout(tmp_path):
    gt, gs = _scene()
    p2 = np.where(gt == 5, 6, gt)
    preds = [(gt, {5: 1, 9: 2}), (p2, {6: 1, 9: 2}), (p2, {6: 1, 9: 2})]
    gt_json = {"videos": [{"video_id": "v1", "images": [{"file_name": f"{t}.png"}
                                                        for t in range(3)]}],
               "annotations": [{"video_id": "v1", "annotations": [{"segments_info": gs}] * 3}],
               "categories": CATS}
    pred_json = {"annotations": [{"video_id": "v1", "annotations": [
        {"segments_info": [{"id": int(i), "category_id": c[int(i)]} for i in np.unique(p) if i]}
        for p, c in preds]}]}
    for t, (p, _) in enumerate(preds):
        for root, arr in (("gt", gt), ("pred", p)):
            (tmp_path / root / "v1").mkdir(parents=True, exist_ok=True)
            Image.fromarray(id2rgb(arr)).save(tmp_path / root / "v1" / f"{t}.png")
    (tmp_path / "gt.json").write_text(json.dumps(gt_json))
    (tmp_path / "pred.json").write_text(json.dumps(pred_json))
    r = vpq_compute_vipseg(str(tmp_path / "gt.json"), tmp_path / "gt",
                           str(tmp_path / "pred.json"), tmp_path / "pred", window_lengths=(1, 2))
    mem = vpq_compute([[frame(gt, gs, p, c) for p, c in preds]], CATS, window_lengths=(1, 2))
    assert json.dumps(r.to_dict()) == json.dumps(mem.to_dict())
    assert r.per_window[5].per_class[1].tp == 1  # window [1,3) keeps id 6; [0,2) switches
