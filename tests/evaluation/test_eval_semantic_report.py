"""Semantic metrics (confusion matrix) and the report helpers."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rapsam.evaluation import (
    PQEvaluator,
    SemanticEvaluator,
    evaluate_instance_ap,
    format_result,
    masks_to_coco_results,
    write_json,
)
from rapsam.evaluation.report import format_pq_table, format_table, to_jsonable


def test_semantic_hand_case_with_ignore():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]])
    ev = SemanticEvaluator(num_classes=4, ignore_index=255, class_names=["a", "b", "c", "d"])
    ev.add(pred, gt)
    r = ev.compute()
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    np.testing.assert_allclose(r.per_class_iou[:3], [1 / 3, 2 / 3, 1 / 2])
    assert math.isnan(r.per_class_iou[3])  # never in GT nor prediction
    assert r.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert r.pixel_accuracy == pytest.approx(4 / 6)  # ignored pixels do not count
    assert r.mean_accuracy == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert r.confusion.sum() == 6
    d = r.to_dict()
    assert d["per_class_iou"]["d"] is None and d["miou"] == pytest.approx(r.miou)


def test_semantic_accumulates_over_images_in_any_order():
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(0, 5, (6, 7)), np.where(rng.random((6, 7)) < 0.1, 255,
                                                   rng.integers(0, 5, (6, 7)))) for _ in range(5)]
    a, b = SemanticEvaluator(5), SemanticEvaluator(5)
    for p, g in pairs:
        a.add(p, g)
    for p, g in reversed(pairs):
        b.add(p, g)
    whole = SemanticEvaluator(5)
    whole.add(np.concatenate([p for p, _ in pairs]), np.concatenate([g for _, g in pairs]))
    assert np.array_equal(a.compute().confusion, b.compute().confusion)
    assert a.compute().miou == whole.compute().miou


def test_semantic_errors():
    ev = SemanticEvaluator(3)
    with pytest.raises(ValueError, match="differs from GT"):
        ev.add(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"GT holds labels outside \[0, 3\)"):
        ev.add(np.zeros((1, 2), int), np.array([[0, 7]]))
    with pytest.raises(ValueError, match="prediction holds labels"):
        ev.add(np.array([[0, 3]]), np.zeros((1, 2), int))
    with pytest.raises(ValueError, match="integer class indices"):
        ev.add(np.zeros((1, 2)), np.zeros((1, 2), int))
    assert math.isnan(SemanticEvaluator(2).compute().miou)


def test_tables_and_json(tmp_path):
    cats = [{"id": 1, "isthing": 1}, {"id": 2, "isthing": 0}]
    ev = PQEvaluator(cats)
    gt = np.array([[1, 1, 2, 2]])
    ev.add(gt, [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 2},
                {"id": 2, "category_id": 2, "iscrowd": 0, "area": 2}],
           gt, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}])
    pq = ev.compute()
    text = format_pq_table(pq, {1: "person", 2: "sky"})
    assert "All" in text and "100.0" in text and "person (1)" in text and "sky (2)" in text
    sem = SemanticEvaluator(2)
    sem.add(np.array([[0, 1]]), np.array([[0, 0]]))
    assert "mIoU" in format_result(sem.compute())
    with pytest.raises(TypeError, match="no table format"):
        format_result(object())
    assert format_table(["a", "b"], [["x", float("nan")], ["yy", 1.25]]).splitlines()[2:] == [
        "x  |   -", "yy | 1.2"]
    m = np.zeros((1, 4, 4), bool)
    m[0, :2, :2] = True
    ap = evaluate_instance_ap({"images": [{"id": 1, "height": 4, "width": 4}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                "segmentation": masks_to_coco_results(
                                                    1, m, np.ones(1), np.ones(1, int))[0][
                                                    "segmentation"], "area": 4.0,
                                                "iscrowd": 0}],
                               "categories": [{"id": 1}, {"id": 3}]},
                              masks_to_coco_results(1, m, np.ones(1), np.ones(1, int)))
    assert "ap50" in format_result(ap)
    path = tmp_path / "out" / "metrics.json"
    write_json(path, {"panoptic": pq, "semantic": sem.compute(), "instance": ap})
    data = json.loads(path.read_text())
    assert data["panoptic"]["all"]["pq"] == 1.0
    assert data["instance"]["per_class"]["3"] is None  # NaN -> null
    assert to_jsonable({"x": np.float32(0.5), "y": np.arange(2)}) == {"x": 0.5, "y": [0, 1]}


def test_evaluation_modules_import_no_torch():
    """The metric layer is numpy / scipy / pycocotools only (usable without the model stack)."""
    root = Path(__file__).parents[2] / "rapsam" / "evaluation"
    allowed = {"numpy", "scipy", "pycocotools", "PIL", "__future__", "collections", "contextlib",
               "concurrent", "copy", "dataclasses", "io", "json", "math", "os", "pathlib",
               "typing", "warnings"}
    mine = ("__init__", "io", "panoptic_quality", "instance_ap", "semantic", "interactive",
            "vis_ap", "vpq", "davis", "report")
    for path in (root / f"{m}.py" for m in mine):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] in allowed, f"{path.name} imports {m}"
