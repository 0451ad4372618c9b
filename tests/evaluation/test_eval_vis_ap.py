"""YouTube-VIS AP: hand-computed cases, spatio-temporal IoU, agreement with COCO AP per frame."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rapsam.evaluation.io import EvaluationInputError, encode_mask, rle_string_to_counts
from rapsam.evaluation.vis_ap import (
    COCO_AREA_RANGES,
    VISAPEvaluator,
    evaluate_vis_ap,
    spatio_temporal_ious,
    tracks_to_ytvis_results,
)

H, W = 40, 60


def sq(y, x, s=10, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y:y + s, x:x + s] = True
    return m


def gt_track(aid, vid, cat, frames, crowd=0):
    segs = [None if f is None else encode_mask(f) for f in frames]
    return {"id": aid, "video_id": vid, "category_id": cat, "iscrowd": crowd,
            "segmentations": segs, "areas": [None if f is None else int(f.sum()) for f in frames],
            "bboxes": [None] * len(frames)}


def ytvis(videos, anns, cats=(1, 2)):
    return {"videos": [{"id": v, "height": h, "width": w, "length": n}
                       for v, (n, h, w) in videos.items()],
            "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}


def det(vid, cat, score, frames):
    return {"video_id": vid, "category_id": cat, "score": score,
            "segmentations": [None if f is None else encode_mask(f) for f in frames]}


A = [sq(5, 5)] * 4
B = [sq(5, 40)] * 4


def approx(v):
    return pytest.approx(v, abs=1e-12)


def test_perfect_tracks_give_ap_one():
    gt = ytvis({1: (4, H, W), 2: (4, H, W)},
               [gt_track(1, 1, 1, A), gt_track(2, 1, 2, [None, None] + B[2:]),
                gt_track(3, 2, 1, B)])
    res = [det(1, 1, 0.9, A), det(1, 2, 0.8, [None, None] + B[2:]), det(2, 1, 0.7, B)]
    r = evaluate_vis_ap(gt, res)
    assert (r.ap, r.ap50, r.ap75, r.ar1, r.ar10) == approx((1.0, 1.0, 1.0, 1.0, 1.0))
    assert r.ap_small == approx(1.0) and r.ap_medium == -1.0 and r.ap_large == -1.0


def test_shifted_track():
    # Shift by 2 columns: per frame I = 80, U = 120 -> IoU 2/3: thresholds .50-.65 match (4/10).
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A)])
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, [np.roll(m, 2, axis=1) for m in A])])
    assert (r.ap, r.ap50, r.ap75) == approx((0.4, 1.0, 0.0))


def test_swapped_identities_do_not_match():
    # Track 1 follows A then jumps to B; track 2 the opposite: IoU = 200 / 600 = 1/3 each.
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A), gt_track(2, 1, 1, B)])
    res = [det(1, 1, 0.9, A[:2] + B[2:]), det(1, 1, 0.8, B[:2] + A[2:])]
    ious = spatio_temporal_ious(
        [[encode_mask(m) for m in A[:2] + B[2:]]], [[encode_mask(m) for m in A],
                                                    [encode_mask(m) for m in B]])
    assert ious.tolist() == [[1 / 3, 1 / 3]]
    r = evaluate_vis_ap(gt, res)
    assert (r.ap, r.ar10) == approx((0.0, 0.0))


def test_missing_frame_and_false_track():
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A)])
    # A frame missing: IoU = 300 / 400 = 0.75 -> thresholds .50-.75 match (6/10), 0.75 included.
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, A[:3] + [None])])
    assert (r.ap, r.ap75) == approx((0.6, 1.0))
    # GT frame missing instead: same IoU.
    gt2 = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A[:3] + [None])])
    assert evaluate_vis_ap(gt2, [det(1, 1, 0.9, A)]).ap == approx(0.6)
    # A higher-scored false track: precision 1/2 at full recall.
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, B), det(1, 1, 0.5, A)])
    assert (r.ap, r.ar1, r.ar10) == approx((0.5, 0.0, 1.0))
    # A false track of another category in another video does not hurt category 1.
    gt3 = ytvis({1: (4, H, W), 2: (4, H, W)}, [gt_track(1, 1, 1, A)])
    r = evaluate_vis_ap(gt3, [det(1, 1, 0.5, A), det(2, 2, 0.9, B)])
    assert r.ap == approx(1.0) and r.per_class[1] == approx(1.0) and np.isnan(r.per_class[2])


def test_crowd_gt_is_ignored_and_absorbs_detections():
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A), gt_track(2, 1, 1, B, crowd=1)])
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, B), det(1, 1, 0.8, B), det(1, 1, 0.5, A)])
    assert r.ap == approx(1.0)  # both detections on the crowd track are ignored


def test_track_area_is_mean_of_nonzero_frames_with_ytvis_ranges():
    big = np.ones((150, 150), bool)  # 22500 px: medium under YouTube-VIS, large under COCO
    empty = np.zeros((150, 150), bool)
    gt = ytvis({1: (3, 150, 150)}, [gt_track(1, 1, 1, [big, None, big])])
    # The detection has an empty frame: its mean area ignores it (stays 22500).
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, [big, empty, big])])
    assert r.ap_medium == approx(1.0) and r.ap_small == -1.0 and r.ap_large == -1.0
    r = evaluate_vis_ap(gt, [det(1, 1, 0.9, [big, empty, big])], area_ranges=COCO_AREA_RANGES)
    assert r.ap_large == approx(1.0) and r.ap_medium == -1.0


def test_zero_union_gives_zero_iou():
    e = encode_mask(np.zeros((4, 4), bool))
    assert spatio_temporal_ious([[e, None]], [[None, e]]).tolist() == [[0.0]]
    assert spatio_temporal_ious([], [[e]]).shape == (0, 1)


def _iou_seq_by_merge(d_seq, g_seq):
    """Straight per-pair merge/area version of the spatio-temporal IoU (metrics.md 3.6)."""
    i = u = 0
    for d, g in zip(d_seq, g_seq):
        if d and g:
            i += int(mask_utils.area(mask_utils.merge([d, g], intersect=True)))
            u += int(mask_utils.area(mask_utils.merge([d, g], intersect=False)))
        elif g:
            u += int(mask_utils.area(g))
        elif d:
            u += int(mask_utils.area(d))
    return i / u if u > 0 else 0.0


def test_spatio_temporal_iou_equals_per_pair_merge_on_random_tracks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        def track(n):
            return [None if rng.random() < 0.25 else encode_mask(rng.random((9, 11)) < 0.3)
                    for _ in range(n)]
        ds = [track(int(rng.integers(1, 6))) for _ in range(int(rng.integers(1, 5)))]
        gs = [track(int(rng.integers(1, 6))) for _ in range(int(rng.integers(1, 4)))]
        got = spatio_temporal_ious(ds, gs)
        for a, d in enumerate(ds):
            for b, g in enumerate(gs):
                assert got[a, b] == _iou_seq_by_merge(d, g)


def test_single_frame_videos_agree_with_coco_ap():
    """On one-frame videos (no crowd), YouTube-VIS AP with COCO ranges equals pycocotools."""
    rng = np.random.default_rng(1)
    for trial in range(12):
        videos, anns, res, images, coco_anns, coco_res = {}, [], [], [], [], []
        aid = 1
        for v in range(1, 5):
            h, w = int(rng.integers(20, 120)), int(rng.integers(20, 120))
            videos[v] = (1, h, w)
            images.append({"id": v, "height": h, "width": w})
            for _ in range(int(rng.integers(0, 4))):
                y0, x0 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
                m = np.zeros((h, w), bool)
                m[y0:int(rng.integers(y0 + 1, h + 1)), x0:int(rng.integers(x0 + 1, w + 1))] = True
                cat = int(rng.integers(1, 3))
                anns.append(gt_track(aid, v, cat, [m]))
                coco_anns.append({"id": aid, "image_id": v, "category_id": cat, "iscrowd": 0,
                                  "segmentation": encode_mask(m), "area": float(m.sum())})
                aid += 1
                for _ in range(int(rng.integers(0, 3))):
                    dm = np.roll(m, tuple(int(x) for x in rng.integers(-3, 4, size=2)), (0, 1))
                    score = float(np.round(rng.random(), 1))
                    res.append(det(v, cat, score, [dm]))
                    coco_res.append({"image_id": v, "category_id": cat, "score": score,
                                     "segmentation": encode_mask(dm)})
            for _ in range(int(rng.integers(0, 3))):
                dm = rng.random((h, w)) < 0.1
                cat, score = int(rng.integers(1, 3)), float(np.round(rng.random(), 1))
                res.append(det(v, cat, score, [dm]))
                coco_res.append({"image_id": v, "category_id": cat, "score": score,
                                 "segmentation": encode_mask(dm)})
        if not res:
            continue
        ours = evaluate_vis_ap(ytvis(videos, anns), res, area_ranges=COCO_AREA_RANGES)
        with contextlib.redirect_stdout(io.StringIO()):
            cg = COCO()
            cg.dataset = {"images": images, "annotations": coco_anns,
                          "categories": [{"id": 1}, {"id": 2}]}
            cg.createIndex()
            ev = COCOeval(cg, cg.loadRes(copy.deepcopy(coco_res)), "segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert list(ours.stats) == ev.stats.tolist()


def test_evaluator_and_results_file(tmp_path):
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A), gt_track(2, 1, 2, B)])
    ev = VISAPEvaluator(gt)
    ev.add(1, np.stack([np.stack(A), np.stack(B)]), np.array([0.9, 0.8]), np.array([1, 2]))
    assert ev.evaluate().ap == approx(1.0)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(ev.results))
    assert evaluate_vis_ap(gt, str(path)).ap == approx(1.0)
    with pytest.raises(EvaluationInputError, match="3 frames but the video has 4"):
        ev.add(1, np.stack([np.stack(A[:3])]), np.ones(1), np.ones(1, int))
    with pytest.raises(EvaluationInputError, match="frame size"):
        ev.add(1, np.zeros((1, 4, 5, 5), bool), np.ones(1), np.ones(1, int))
    with pytest.raises(EvaluationInputError, match="video_id 9"):
        ev.add(9, np.zeros((1, 4, H, W), bool), np.ones(1), np.ones(1, int))
    r = tracks_to_ytvis_results(3, np.zeros((2, 1, 2, 2), bool), np.ones(2), np.array([1, 2]))
    assert [x["category_id"] for x in r] == [1, 2] and len(r[0]["segmentations"]) == 1


@pytest.mark.parametrize("mutate,match", [
    (lambda r: r.update(video_id=5), r"results\[0\] \(video_id=5\).*not in the ground truth"),
    (lambda r: r.update(category_id=9), "unknown category_id 9"),
    (lambda r: r.update(segmentations=r["segmentations"][:2]), "2 frames but the video has 4"),
    (lambda r: r["segmentations"][1].update(size=[2, 2]), r"frame 1.*RLE size \[2, 2\]"),
    (lambda r: r["segmentations"][1].update(counts=[0, 4]), "uncompressed RLE"),
    (lambda r: r["segmentations"][1].update(counts="0"), "corrupt RLE"),
    (lambda r: r.pop("segmentations"), "missing key"),
])
def test_malformed_results(tmp_path, mutate, match):
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A)])
    r = det(1, 1, 0.9, A)
    mutate(r)
    path = tmp_path / "vis.json"
    path.write_text(json.dumps([r]))
    with pytest.raises(EvaluationInputError, match=match) as ei:
        evaluate_vis_ap(gt, str(path))
    assert "vis.json" in str(ei.value)


def test_malformed_gt():
    gt = ytvis({1: (4, H, W)}, [gt_track(1, 1, 1, A)])
    bad = copy.deepcopy(gt)
    del bad["annotations"][0]["areas"]
    with pytest.raises(EvaluationInputError, match=r"annotations\[0\].*areas"):
        evaluate_vis_ap(bad, [])
    bad = copy.deepcopy(gt)
    bad["annotations"][0]["video_id"] = 3
    with pytest.raises(EvaluationInputError, match="video_id 3 is not in 'videos'"):
        evaluate_vis_ap(bad, [])


def test_gt_in_uncompressed_rle_and_polygons_equals_compressed():
    m = sq(5, 5)
    comp = gt_track(1, 1, 1, [m, m, None, m])
    runs = rle_string_to_counts(encode_mask(m)["counts"]).tolist()
    unc = copy.deepcopy(comp)
    unc["segmentations"] = [None if s is None else {"size": [H, W], "counts": runs}
                            for s in comp["segmentations"]]
    poly = copy.deepcopy(comp)
    square = [[5, 5, 15, 5, 15, 15, 5, 15]]  # polygon rasterised by pycocotools
    poly["segmentations"] = [square, square, None, square]
    res = [det(1, 1, 0.9, [m, m, None, m])]
    a = evaluate_vis_ap(ytvis({1: (4, H, W)}, [comp]), res)
    b = evaluate_vis_ap(ytvis({1: (4, H, W)}, [unc]), res)
    assert a.stats == b.stats and a.ap == approx(1.0)
    c = evaluate_vis_ap(ytvis({1: (4, H, W)}, [poly]), res)
    pm = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(square, H, W))).astype(bool)
    iou = (pm & m).sum() / (pm | m).sum()
    assert c.ap50 == approx(1.0 if iou >= 0.5 else 0.0)


def test_gt_rle_of_wrong_size_is_reported():
    bad = gt_track(1, 1, 1, [sq(5, 5, h=20, w=20)] * 4)
    with pytest.raises(EvaluationInputError, match=r"annotations\[0\] frame 0.*video size"):
        evaluate_vis_ap(ytvis({1: (4, H, W)}, [bad]), [])
