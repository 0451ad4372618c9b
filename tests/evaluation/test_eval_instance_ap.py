"""COCO mask AP: result conversion, pycocotools parity of our COCOeval engine, clear errors."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rapsam.evaluation.instance_ap import (
    InstanceAPEvaluator,
    evaluate_instance_ap,
    masks_to_coco_results,
)
from rapsam.evaluation.io import EvaluationInputError, encode_mask, rle_string_to_counts
from rapsam.evaluation.vis_ap import (
    COCO_AREA_RANGES,
    DtItem,
    EvalParams,
    GtItem,
    coco_style_evaluate,
)


def _rect(h, w, y0, x0, y1, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _gt_json(images, anns, cats=(1, 2)):
    return {"images": [{"id": i, "height": h, "width": w} for i, (h, w) in images.items()],
            "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}


def _ann(aid, image_id, cat, mask, crowd=0, area=None):
    rle = encode_mask(mask)
    return {"id": aid, "image_id": image_id, "category_id": cat, "segmentation": rle,
            "area": float(mask.sum()) if area is None else area, "iscrowd": crowd,
            "bbox": [float(v) for v in mask_utils.toBbox(rle)]}


def _pycoco_stats(gt, results):
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        cd = cg.loadRes(copy.deepcopy(results))
        ev = COCOeval(cg, cd, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def test_conversion_equals_pycocotools_encode():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 17, 23)) < 0.4
    masks[2] = False
    res = masks_to_coco_results(7, masks, np.array([0.9, 0.5, 0.1]), np.array([3, 1, 3]))
    assert [r["category_id"] for r in res] == [3, 1, 3]
    assert all(isinstance(r["category_id"], int) for r in res)
    json.dumps(res)  # JSON-serialisable
    for i, r in enumerate(res):
        ref = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
        assert r["segmentation"]["counts"] == ref["counts"].decode()
        assert r["segmentation"]["size"] == [17, 23]
        assert r["bbox"] == list(mask_utils.toBbox(ref))
        assert np.array_equal(mask_utils.decode({"size": [17, 23],
                                                 "counts": r["segmentation"]["counts"]}),
                              masks[i])
    assert res[2]["bbox"] == [0.0, 0.0, 0.0, 0.0]
    # Tight mask box, as mmdet's mask2bbox + xyxy2xywh.
    one = masks_to_coco_results(1, _rect(10, 12, 2, 3, 5, 9)[None], np.ones(1), np.ones(1, int))
    assert one[0]["bbox"] == [3.0, 2.0, 6.0, 3.0]


def test_conversion_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        masks_to_coco_results(1, np.zeros((4, 4), bool), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="one per mask"):
        masks_to_coco_results(1, np.zeros((2, 4, 4), bool), np.ones(1), np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        masks_to_coco_results(1, np.zeros((1, 4, 4), bool), np.array([np.nan]), np.ones(1))


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_string_decoder_matches_mask(mask):
    runs = rle_string_to_counts(encode_mask(mask)["counts"])
    flat = mask.T.ravel()  # column-major, starting with a run of zeros
    expect, cur, n = [], False, 0
    for v in flat:
        if v == cur:
            n += 1
        else:
            expect.append(n)
            cur, n = v, 1
    expect.append(n)
    assert runs.tolist() == expect


# --------------------------------------------------------------------------------------------
# Protocol numbers
# --------------------------------------------------------------------------------------------


def _toy():
    h, w = 120, 130
    masks = {1: _rect(h, w, 0, 0, 20, 20),   # 400 px: small
             2: _rect(h, w, 30, 30, 80, 80),  # 2500 px: medium
             3: _rect(h, w, 0, 30, 110, 130)}  # 11000 px: large
    anns = [_ann(1, 1, 1, masks[1]), _ann(2, 1, 2, masks[2]), _ann(3, 2, 1, masks[3])]
    return _gt_json({1: (h, w), 2: (h, w)}, anns), masks


def test_perfect_predictions_give_ap_one():
    gt, masks = _toy()
    ev = InstanceAPEvaluator(gt)
    ev.add(1, np.stack([masks[1], masks[2]]), np.array([0.9, 0.8]), np.array([1, 2]))
    ev.add(2, masks[3][None], np.array([0.7]), np.array([1]))
    r = ev.evaluate()
    # pycocotools' precision is tp / (tp + fp + eps): 1 - 2.2e-16 for a single detection.
    for v in (r.ap, r.ap50, r.ap75, r.ap_small, r.ap_medium, r.ap_large, r.ar1, r.ar10, r.ar100):
        assert v == pytest.approx(1.0, abs=1e-12)
    assert r.per_class == pytest.approx({1: 1.0, 2: 1.0}, abs=1e-12)


def test_known_iou_gives_fraction_of_thresholds():
    # One GT (100 px); the prediction covers 72 of them and nothing else: IoU 0.72 matches at
    # thresholds 0.50 ... 0.70 (5 of 10), so AP = 0.5, AP50 = 1, AP75 = 0.
    h, w = 20, 20
    g = _rect(h, w, 0, 0, 10, 10)
    p = g.copy()
    p[8:10, :] = False  # 80 px left
    p[7, :8] = False  # 72 px left
    assert (p & g).sum() / (p | g).sum() == 0.72
    gt = _gt_json({5: (h, w)}, [_ann(1, 5, 1, g)], cats=(1,))
    r = evaluate_instance_ap(gt, masks_to_coco_results(5, p[None], np.ones(1), np.ones(1, int)))
    assert (r.ap, r.ap50, r.ap75) == pytest.approx((0.5, 1.0, 0.0), abs=1e-12)


def test_false_positive_ranked_first_halves_precision():
    h, w = 20, 20
    g = _rect(h, w, 0, 0, 10, 10)
    gt = _gt_json({1: (h, w)}, [_ann(1, 1, 1, g)], cats=(1,))
    res = masks_to_coco_results(1, np.stack([_rect(h, w, 12, 12, 20, 20), g]),
                                np.array([0.9, 0.5]), np.array([1, 1]))
    r = evaluate_instance_ap(gt, res)
    assert (r.ap, r.ar1, r.ar10) == pytest.approx((0.5, 0.0, 1.0), abs=1e-12)


def test_no_detections_scores_zero_and_category_without_gt_is_nan():
    gt, _ = _toy()
    gt["categories"].append({"id": 9, "name": "nine"})
    r = evaluate_instance_ap(gt, [])
    assert r.ap == 0.0 and r.ar100 == 0.0
    assert r.per_class[1] == 0.0 and np.isnan(r.per_class[9])


def test_results_file_round_trip_and_ours_equals_pycocotools(tmp_path):
    rng = np.random.default_rng(1)
    gt, masks = _toy()
    ev = InstanceAPEvaluator(gt)
    for image_id in (1, 2):
        m = rng.random((4, 120, 130)) < 0.02
        m[0] = np.roll(masks[1 if image_id == 1 else 3], 3, axis=1)
        ev.add(image_id, m, rng.random(4), np.array([1, 2, 1, 2]))
    path = tmp_path / "res.json"
    ev.write_results(path)
    ours = evaluate_instance_ap(gt, str(path))
    ref = _pycoco_stats(gt, json.loads(path.read_text()))
    assert ours.stats == pytest.approx(tuple(ref.stats), abs=1e-12)
    # A prediction converted through our path equals one built directly with pycocotools.
    direct = []
    for r in json.loads(path.read_text()):
        m = mask_utils.decode(r["segmentation"])
        enc = mask_utils.encode(np.asfortranarray(m))
        enc["counts"] = enc["counts"].decode()
        direct.append({"image_id": r["image_id"], "category_id": r["category_id"],
                       "segmentation": enc, "score": r["score"],
                       "bbox": list(mask_utils.toBbox(enc))})
    assert _pycoco_stats(gt, direct).stats.tolist() == list(ours.stats)


def test_with_bbox_switches_detection_area_like_pycocotools():
    # An L-shaped unmatched detection: mask area 300 (small) but box area 20*20=400... both
    # small; use a sparse diagonal: mask area 40, box 40x40 = 1600 (medium).
    h, w = 50, 50
    gt = _gt_json({1: (h, w)}, [_ann(1, 1, 1, _rect(h, w, 0, 0, 5, 5))], cats=(1,))
    diag = np.zeros((h, w), bool)
    diag[np.arange(40) + 10, np.arange(40) + 10] = True
    det = np.stack([_rect(h, w, 0, 0, 5, 5), diag])
    scores = np.array([0.5, 0.9])
    with_box = evaluate_instance_ap(gt, masks_to_coco_results(1, det, scores, np.ones(2, int)))
    no_box = evaluate_instance_ap(gt, masks_to_coco_results(1, det, scores, np.ones(2, int),
                                                            with_bbox=False))
    # For 'small', the diagonal is an FP only when its area (mask area 40) is in range.
    assert with_box.ap_small == pytest.approx(1.0, abs=1e-12)
    assert no_box.ap_small == pytest.approx(0.5, abs=1e-12)


def _random_coco(rng, n_images=4):
    images, anns, aid = {}, [], int(rng.integers(0, 2))  # sometimes a GT with id 0 (quirk)
    results = []
    for i in range(n_images):
        h, w = int(rng.integers(20, 140)), int(rng.integers(20, 140))
        images[i + 1] = (h, w)
        for _ in range(int(rng.integers(0, 6))):
            y0, x0 = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
            m = _rect(h, w, y0, x0, int(rng.integers(y0 + 1, h + 1)),
                      int(rng.integers(x0 + 1, w + 1)))
            crowd = int(rng.random() < 0.15)
            area = float(m.sum()) if rng.random() < 0.9 else float(rng.integers(1, 20000))
            anns.append(_ann(aid, i + 1, int(rng.integers(1, 4)), m, crowd, area))
            aid += 1
            for _ in range(int(rng.integers(0, 3))):  # jittered copies
                dy, dx = rng.integers(-4, 5, size=2)
                results.append((i + 1, int(rng.integers(1, 4)) if rng.random() < 0.2
                                else anns[-1]["category_id"],
                                np.roll(m, (int(dy), int(dx)), axis=(0, 1))))
        for _ in range(int(rng.integers(0, 4))):  # random false positives
            results.append((i + 1, int(rng.integers(1, 4)), rng.random((h, w)) < 0.05))
    res = []
    with_bbox = rng.random() < 0.5
    for image_id, cat, m in results:
        score = float(np.round(rng.random(), 1))  # ties exercise the stable sorts
        res.extend(masks_to_coco_results(image_id, m[None], np.array([score]),
                                         np.array([cat]), with_bbox=with_bbox))
    return _gt_json(images, anns, cats=(1, 2, 3)), res


def test_engine_equals_pycocotools_cocoeval_on_random_data():
    """Our numpy COCOeval engine (used for YouTube-VIS) reproduces pycocotools exactly."""
    rng = np.random.default_rng(2)
    for trial in range(30):
        gt, res = _random_coco(rng)
        if not res:
            continue
        ev = _pycoco_stats(gt, res)
        gts, dts, ious = {}, {}, {}
        for key in ev._gts.keys() | ev._dts.keys():
            g, d = ev._gts[key], ev._dts[key]
            gts[key] = [GtItem(a["id"], a["iscrowd"], a["area"]) for a in g]
            dts[key] = [DtItem(a["id"], a["score"], a["area"]) for a in d]
            ious[key] = ev.ious[key] if len(ev.ious[key]) else np.zeros((len(d), len(g)))
        params = EvalParams(area_ranges=COCO_AREA_RANGES)
        prec, rec, stats = coco_style_evaluate(ev.params.imgIds, ev.params.catIds, gts, dts,
                                               ious, params)
        np.testing.assert_array_equal(prec, ev.eval["precision"])
        np.testing.assert_array_equal(rec, ev.eval["recall"])
        np.testing.assert_array_equal(stats, ev.stats)
        ours = evaluate_instance_ap(gt, res)
        assert list(ours.stats) == ev.stats.tolist()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutate,match", [
    (lambda r: r.pop("score"), r"results\[1\].*missing key.*score"),
    (lambda r: r.update(image_id=99), r"results\[1\] \(image_id=99\).*not in the ground truth"),
    (lambda r: r.update(category_id=7), "unknown category_id 7"),
    (lambda r: r["segmentation"].update(size=[3, 3]), r"RLE size \[3, 3\] differs"),
    (lambda r: r["segmentation"].update(counts="0000"), "corrupt RLE counts"),
    (lambda r: r["segmentation"].update(counts="~~"), "outside '0'..'o'"),
    (lambda r: r["segmentation"].update(counts=r["segmentation"]["counts"] + "h"), "truncated"),
    (lambda r: r.update(score=float("nan")), "not a finite number"),
    (lambda r: r.update(segmentation=[[0, 0, 1, 1, 2, 2]]), "not an RLE dict"),
    (lambda r: r.pop("bbox"), "no bbox but results"),
])
def test_malformed_results_name_file_and_record(tmp_path, mutate, match):
    gt, masks = _toy()
    res = masks_to_coco_results(1, np.stack([masks[1], masks[2]]), np.ones(2), np.ones(2, int))
    mutate(res[1])
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(res))
    with pytest.raises(EvaluationInputError, match=match) as ei:
        evaluate_instance_ap(gt, str(path))
    assert "dets.json" in str(ei.value) and "Fix:" in str(ei.value)


def test_uncompressed_rle_results_are_accepted():
    gt, masks = _toy()
    res = masks_to_coco_results(1, masks[1][None], np.ones(1), np.ones(1, int),
                                with_bbox=False)
    runs = rle_string_to_counts(res[0]["segmentation"]["counts"]).tolist()
    res[0]["segmentation"]["counts"] = runs
    assert evaluate_instance_ap(gt, res).per_class[1] == pytest.approx(
        evaluate_instance_ap(gt, masks_to_coco_results(1, masks[1][None], np.ones(1),
                                                       np.ones(1, int), with_bbox=False)
                             ).per_class[1])


def test_evaluator_and_gt_errors():
    gt, masks = _toy()
    ev = InstanceAPEvaluator(gt)
    with pytest.raises(EvaluationInputError, match="image_id 5 is not in the ground truth"):
        ev.add(5, masks[1][None], np.ones(1), np.ones(1, int))
    with pytest.raises(EvaluationInputError, match=r"size \(10, 10\)"):
        ev.add(1, np.zeros((1, 10, 10), bool), np.ones(1), np.ones(1, int))
    with pytest.raises(EvaluationInputError, match=r"unknown category ids \[5\]"):
        ev.add(1, masks[1][None], np.ones(1), np.array([5]))
    bad = copy.deepcopy(gt)
    del bad["annotations"][0]["iscrowd"]
    with pytest.raises(EvaluationInputError, match=r"annotations\[0\].*iscrowd"):
        InstanceAPEvaluator(bad)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=40, max_codepoint=115), max_size=12),
       st.integers(1, 6), st.integers(1, 6))
def test_rle_validation_never_passes_a_corrupt_string(counts, h, w):
    """Anything check_rle accepts decodes to exactly h*w pixels (pycocotools would otherwise
    read or write past its buffers)."""
    from rapsam.evaluation.io import check_rle
    try:
        rle = check_rle({"size": [h, w], "counts": counts}, height=h, width=w, source="s",
                        record="r")
    except EvaluationInputError:
        return
    m = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert m.shape == (h, w)
    assert encode_mask(m)["counts"] == rle["counts"] or mask_utils.area(
        {"size": [h, w], "counts": rle["counts"].encode()}) == m.sum()
