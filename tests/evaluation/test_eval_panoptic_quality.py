"""Panoptic quality equals panopticapi's pq_compute on many random GT/prediction pairs."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rapsam.evaluation.io import (
    EvaluationInputError,
    MissingPredictionError,
    SegmentMismatchError,
    id2rgb,
    rgb2id,
)
from rapsam.evaluation.panoptic_quality import EmptyGroupError, PQEvaluator, PQResult, pq_compute


def _run_ref(reference_pq, paths):
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            return reference_pq(paths["gt_json"], paths["pred_json"], paths["gt_folder"],
                                paths["pred_folder"]), None
    except Exception as e:  # noqa: BLE001 - we compare the exception type
        return None, e


def _assert_same(ours: PQResult, ref: dict) -> None:
    mine = ours.to_panopticapi()
    for group in ("All", "Things", "Stuff"):
        assert mine[group]["n"] == ref[group]["n"]
        for k in ("pq", "sq", "rq"):
            assert mine[group][k] == pytest.approx(ref[group][k], abs=1e-12), (group, k)
    assert set(mine["per_class"]) == set(ref["per_class"])
    for c, r in ref["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert mine["per_class"][c][k] == pytest.approx(r[k], abs=1e-12)


def test_matches_panopticapi_on_random_pairs(tmp_path, pangen, reference_pq):
    rng = np.random.default_rng(0)
    n_compared = n_raised = 0
    for trial in range(120):
        ds = pangen.random_dataset(rng)
        paths = pangen.write_dataset(ds, tmp_path / f"t{trial}")
        ref, ref_exc = _run_ref(reference_pq, paths)
        if ref_exc is not None:
            with pytest.raises(type(ref_exc)):
                pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"],
                           paths["pred_folder"])
            n_raised += 1
            continue
        ours = pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"],
                          paths["pred_folder"])
        _assert_same(ours, ref)
        # In-memory API gives the same numbers.
        ev = PQEvaluator(ds["categories"])
        for im in ds["images"]:
            ev.add(im["gt_ids"], im["gt_segs"], im["pred_ids"], im["pred_segs"],
                   image_id=im["image_id"])
        _assert_same(ev.compute(), ref)
        n_compared += 1
    # The generator must exercise both outcomes, mostly successful comparisons.
    assert n_compared >= 60 and n_raised >= 8


def test_matches_panopticapi_with_both_groups_nonempty(tmp_path, pangen, reference_pq):
    """Larger datasets where every group has segments: exact agreement incl. per class stats."""
    rng = np.random.default_rng(1)
    for trial in range(15):
        ds = pangen.random_dataset(rng, n_images=8, allow_empty_group=False)
        paths = pangen.write_dataset(ds, tmp_path / f"t{trial}")
        ref, ref_exc = _run_ref(reference_pq, paths)
        if ref_exc is not None:
            with pytest.raises(type(ref_exc)):
                pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"],
                           paths["pred_folder"])
            continue
        # Folders default to the JSON path without '.json', as in panopticapi.
        ours = pq_compute(paths["gt_json"], None, paths["pred_json"], None)
        _assert_same(ours, ref)


def test_num_workers_gives_identical_result(tmp_path, pangen):
    rng = np.random.default_rng(5)
    ds = pangen.random_dataset(rng, n_images=6, allow_empty_group=False)
    paths = pangen.write_dataset(ds, tmp_path)
    a = pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"], paths["pred_folder"],
                   empty_group="nan")
    b = pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"], paths["pred_folder"],
                   num_workers=2, empty_group="nan")
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


# --------------------------------------------------------------------------------------------
# Hand cases
# --------------------------------------------------------------------------------------------

CATS = [{"id": 1, "isthing": 1, "name": "a"}, {"id": 2, "isthing": 0, "name": "b"}]


def _seg(i, c, area, crowd=0):
    return {"id": i, "category_id": c, "iscrowd": crowd, "area": area}


def test_perfect_prediction_scores_one():
    gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 2, 2]])
    segs = [_seg(1, 1, 4), _seg(2, 2, 6)]
    ev = PQEvaluator(CATS)
    ev.add(gt, segs, gt * 300, [{"id": 300, "category_id": 1}, {"id": 600, "category_id": 2}])
    r = ev.compute()
    assert (r.all.pq, r.all.sq, r.all.rq, r.all.n) == (1.0, 1.0, 1.0, 2)
    assert r.things.pq == 1.0 and r.stuff.pq == 1.0
    assert r.per_class[1].tp == 1 and r.per_class[1].fp == 0 and r.per_class[1].fn == 0


def test_void_pixels_leave_the_union_but_crowd_pixels_do_not():
    # GT: segment 1 (4 px) + void (2 px). Prediction covers segment 1 and the void pixels.
    gt = np.array([[1, 1, 1, 1, 0, 0]])
    pred = np.array([[5, 5, 5, 5, 5, 5]])
    ev = PQEvaluator(CATS)
    ev.add(gt, [_seg(1, 1, 4)], pred, [{"id": 5, "category_id": 1}])
    assert ev.compute(empty_group="nan").per_class[1].iou == pytest.approx(1.0)
    # Same, but the two extra pixels are a crowd region of the class: they stay in the union.
    gt2 = np.array([[1, 1, 1, 1, 9, 9]])
    ev2 = PQEvaluator(CATS)
    ev2.add(gt2, [_seg(1, 1, 4), _seg(9, 1, 2, crowd=1)], pred, [{"id": 5, "category_id": 1}])
    assert ev2.compute(empty_group="nan").per_class[1].iou == pytest.approx(4 / 6)


def test_iou_exactly_half_is_not_a_match_and_fp_filter_is_strict():
    gt = np.array([[1, 1, 0, 0]])
    # Prediction 2 px on GT + 2 px of other GT segment -> IoU = 2 / 4 = 0.5: no match.
    gt_b = np.array([[1, 1, 3, 3]])
    ev = PQEvaluator(CATS)
    ev.add(gt_b, [_seg(1, 1, 2), _seg(3, 2, 2)], np.array([[7, 7, 7, 7]]),
           [{"id": 7, "category_id": 1}])
    r = ev.compute(empty_group="nan")
    assert r.per_class[1].tp == 0 and r.per_class[1].fn == 1 and r.per_class[1].fp == 1
    # Unmatched prediction exactly half on void: kept as FP (needs > 0.5 to drop).
    ev = PQEvaluator(CATS)
    ev.add(gt, [_seg(1, 1, 2)], np.array([[0, 7, 7, 0]]), [{"id": 7, "category_id": 2}])
    r = ev.compute(empty_group="nan")
    assert r.per_class[2].fp == 1
    # More than half on void: dropped.
    ev = PQEvaluator(CATS)
    ev.add(gt, [_seg(1, 1, 2)], np.array([[0, 7, 7, 7]]), [{"id": 7, "category_id": 2}])
    assert ev.compute(empty_group="nan").per_class[2].fp == 0


def test_gt_area_comes_from_json():
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[5, 5, 5, 5]])
    ev = PQEvaluator(CATS)
    ev.add(gt, [_seg(1, 1, 6)], pred, [{"id": 5, "category_id": 1}])  # JSON says 6 px
    assert ev.compute(empty_group="nan").per_class[1].iou == pytest.approx(4 / 6)


def test_empty_group_raises_like_reference_or_gives_nan():
    ev = PQEvaluator(CATS)
    gt = np.array([[1, 1]])
    ev.add(gt, [_seg(1, 1, 2)], gt, [{"id": 1, "category_id": 1}])
    with pytest.raises(ZeroDivisionError, match="Stuff"):
        ev.compute()
    with pytest.raises(EmptyGroupError):
        ev.compute()
    r = ev.compute(empty_group="nan")
    assert r.things.pq == 1.0 and math.isnan(r.stuff.pq) and r.stuff.n == 0


# --------------------------------------------------------------------------------------------
# Errors: same types as the reference, clear messages naming file and record
# --------------------------------------------------------------------------------------------


def _write(tmp_path, gt_ids, gt_segs, pred_ids, pred_segs, pred_ann_extra=None, image_id=42):
    (tmp_path / "gt").mkdir(exist_ok=True)
    (tmp_path / "pred").mkdir(exist_ok=True)
    Image.fromarray(id2rgb(gt_ids)).save(tmp_path / "gt" / "a.png")
    Image.fromarray(id2rgb(pred_ids)).save(tmp_path / "pred" / "a.png")
    (tmp_path / "gt.json").write_text(json.dumps({"annotations": [
        {"image_id": 42, "file_name": "a.png", "segments_info": gt_segs}], "categories": CATS}))
    ann = {"image_id": image_id, "file_name": "a.png", "segments_info": pred_segs}
    ann.update(pred_ann_extra or {})
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": [ann]}))
    return (str(tmp_path / "gt.json"), str(tmp_path / "gt"), str(tmp_path / "pred.json"),
            str(tmp_path / "pred"))


@pytest.mark.parametrize("pred_segs,match", [
    ([], "present in the PNG but not in segments_info"),
    ([{"id": 5, "category_id": 99}], "unknown category_id 99"),
    ([{"id": 5, "category_id": 1}, {"id": 6, "category_id": 1}],
     r"\[6\] are present in segments_info but not in the PNG"),
])
def test_segment_mismatch_errors(tmp_path, pred_segs, match):
    args = _write(tmp_path, np.array([[1, 1]]), [_seg(1, 1, 2)], np.array([[5, 5]]), pred_segs)
    with pytest.raises(SegmentMismatchError, match=match) as ei:
        pq_compute(*args)
    assert isinstance(ei.value, KeyError)  # same type as panopticapi
    assert "pred.json" in str(ei.value) and "image_id=42" in str(ei.value)


def test_missing_prediction_names_image(tmp_path):
    args = _write(tmp_path, np.array([[1]]), [_seg(1, 1, 1)], np.array([[5]]),
                  [{"id": 5, "category_id": 1}], image_id=43)
    with pytest.raises(MissingPredictionError, match="image with id 42"):
        pq_compute(*args)


def test_missing_folder_png_and_keys(tmp_path):
    args = _write(tmp_path, np.array([[1]]), [_seg(1, 1, 1)], np.array([[5]]),
                  [{"id": 5, "category_id": 1}])
    with pytest.raises(EvaluationInputError, match="folder"):
        pq_compute(args[0], str(tmp_path / "nope"), args[2], args[3])
    (tmp_path / "pred" / "a.png").unlink()
    with pytest.raises(EvaluationInputError, match="a.png.*does not exist"):
        pq_compute(*args)
    args = _write(tmp_path, np.array([[1]]), [{"id": 1, "category_id": 1, "area": 1}],
                  np.array([[5]]), [{"id": 5, "category_id": 1}])
    with pytest.raises(EvaluationInputError, match=r"gt.json.*segments_info\[0\].*iscrowd"):
        pq_compute(*args)


def test_size_mismatch_and_non_rgb_png(tmp_path):
    args = _write(tmp_path, np.array([[1, 1]]), [_seg(1, 1, 2)], np.array([[5]]),
                  [{"id": 5, "category_id": 1}])
    with pytest.raises(EvaluationInputError, match="differs from ground truth"):
        pq_compute(*args)
    Image.fromarray(np.zeros((1, 2), np.uint8)).save(tmp_path / "pred" / "a.png")
    with pytest.raises(EvaluationInputError, match="RGB"):
        pq_compute(*args)


def test_rgb_id_round_trip_multichannel():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 2**24, size=(5, 7))
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    with pytest.raises(ValueError, match="2\\^24|16777216|\\[0, 16777216\\)"):
        id2rgb(np.array([[2**24]]))


def test_malformed_prediction_json(tmp_path):
    args = _write(tmp_path, np.array([[1]]), [_seg(1, 1, 1)], np.array([[5]]),
                  [{"id": 5, "category_id": 1}])
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": [{"image_id": 42,
                                                                     "segments_info": []}]}))
    with pytest.raises(EvaluationInputError, match=r"pred.json: annotations\[0\].*file_name"):
        pq_compute(*args)
    (tmp_path / "pred.json").write_text('{"annotations": [')
    with pytest.raises(EvaluationInputError, match="not valid JSON"):
        pq_compute(*args)
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": [
        {"image_id": 42, "file_name": "a.png", "segments_info": [{"id": 5}]}]}))
    with pytest.raises(EvaluationInputError, match=r"segments_info\[0\].*category_id"):
        pq_compute(*args)


def test_in_memory_id_and_shape_checks():
    ev = PQEvaluator(CATS)
    with pytest.raises(EvaluationInputError, match="2\\^24"):
        ev.add(np.array([[2**24]]), [], np.array([[0]]), [], image_id=3)
    with pytest.raises(EvaluationInputError, match="image_id=3.*differs"):
        ev.add(np.zeros((2, 2), int), [], np.zeros((2, 3), int), [], image_id=3)
    with pytest.raises(EvaluationInputError, match="integer id map"):
        ev.add(np.zeros((2, 2)), [], np.zeros((2, 2), int), [])


def test_errors_cross_worker_processes_with_their_type(tmp_path):
    args = _write(tmp_path, np.array([[1, 1]]), [_seg(1, 1, 2)], np.array([[5, 5]]), [])
    # Two GT images so the pool is used; the second one is broken.
    gt = json.loads(Path(args[0]).read_text())
    gt["annotations"].append(dict(gt["annotations"][0], image_id=43))
    Path(args[0]).write_text(json.dumps(gt))
    pred = json.loads(Path(args[2]).read_text())
    pred["annotations"].append(dict(pred["annotations"][0], image_id=43))
    Path(args[2]).write_text(json.dumps(pred))
    with pytest.raises(SegmentMismatchError, match="image_id=42"):
        pq_compute(*args, num_workers=2)


def test_missing_key_is_also_a_key_error(tmp_path):
    args = _write(tmp_path, np.array([[1]]), [{"id": 1, "category_id": 1, "area": 1}],
                  np.array([[5]]), [{"id": 5, "category_id": 1}])
    with pytest.raises(KeyError):
        pq_compute(*args)


def test_prediction_writer_round_trip(tmp_path, pangen):
    from rapsam.evaluation.panoptic_quality import PanopticPredictionWriter
    rng = np.random.default_rng(9)
    ds = pangen.random_dataset(rng, n_images=3, allow_empty_group=False)
    for im in ds["images"]:  # the writer validates: keep consistent predictions only
        present = {int(i) for i in np.unique(im["pred_ids"])} - {0}
        im["pred_segs"] = [s for s in {s["id"]: s for s in im["pred_segs"]}.values()
                           if s["id"] in present]
    paths = pangen.write_dataset(ds, tmp_path / "ref")
    w = PanopticPredictionWriter(tmp_path / "mine")
    for im in ds["images"]:
        w.add(im["image_id"], f"{im['image_id']:012d}.png", im["pred_ids"], im["pred_segs"])
    w.write_json(tmp_path / "mine.json")
    a = pq_compute(paths["gt_json"], paths["gt_folder"], paths["pred_json"], paths["pred_folder"],
                   empty_group="nan")
    b = pq_compute(paths["gt_json"], paths["gt_folder"], str(tmp_path / "mine.json"),
                   tmp_path / "mine", empty_group="nan")
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    with pytest.raises(SegmentMismatchError, match="differ from segments_info"):
        w.add(1, "x.png", np.array([[1, 2]]), [{"id": 1, "category_id": 1}])
