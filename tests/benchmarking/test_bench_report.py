"""Ratios, issue-#9 targets, the text table, ``benchmark.json`` and the plot, on synthetic numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rapsam.benchmarking.report import (
    TARGETS,
    evaluate_targets,
    format_report,
    ratios,
    read_json,
    to_dict,
    write_json,
    write_plot,
)
from rapsam.benchmarking.runner import (
    SCHEMA,
    BenchmarkConfig,
    BenchmarkResult,
    Measurement,
    ModelInfo,
)

BIG, SMALL = (800, 1333), (512, 512)


def synthetic(ms: dict, sizes=(SMALL, BIG), peers=("mask2former_r50", "sam_vit_b", "yolo11n_seg"),
              variants=("rapsam_r18",), skipped=None) -> BenchmarkResult:
    """ms: {(model, task, size): median ms}; each measurement gets three times around that median."""
    cfg = BenchmarkConfig(sizes=list(sizes), variants=list(variants), peers=[], repeats=3, warmup=1)
    res = BenchmarkResult(cfg, {"date": "2026-01-01T00:00:00+00:00", "device": "cpu", "device_name": "test cpu",
                                "threads": 2, "loadavg_start": [1.0, 1.0, 1.0], "cpu_count": 2})
    params = {"rapsam_r18": 20.8e6, "rapsam_r50": 47.3e6, "mask2former_r50": 44.0e6, "sam_vit_b": 93.7e6,
              "yolo11n_seg": 2.9e6}
    for v in variants:
        res.models[v] = ModelInfo(v, "rapsam", int(params[v]), v, "rapsam")
    for p in peers:
        res.models[p] = ModelInfo(p, "peer", int(params[p]), p, "lib 1.0")
    for (model, task, size), v in ms.items():
        res.measurements.append(Measurement(model, task, size, [v * 1.1, v, v * 0.95]))
    res.skipped = dict(skipped or {})
    return res


def full_numbers(predict=100.0, m2f=900.0, click=50.0, sam=900.0, prompt=4.0, prompt32=14.0):
    ms = {}
    for s in (SMALL, BIG):
        ms.update({
            ("rapsam_r18", "forward", s): 0.8 * predict, ("rapsam_r18", "predict", s): predict,
            ("rapsam_r18", "click", s): click, ("rapsam_r18", "prompt", s): prompt,
            ("rapsam_r18", "prompt32", s): prompt32, ("rapsam_r18", "video", s): 125.0,
            ("mask2former_r50", "forward", s): m2f, ("sam_vit_b", "click", s): sam,
            ("sam_vit_b", "prompt", s): 10.0, ("yolo11n_seg", "forward", s): 40.0,
            ("yolo11n_seg", "predict", s): 50.0,
        })
    return ms


def by_name(results, name, size=None):
    return [r for r in results if r.target.name == name and (size is None or r.size == size)]


def test_ratio_is_peer_over_rapsam():
    res = synthetic(full_numbers())
    rs = {(r.peer, r.peer_task, r.task, r.size): r.ratio for r in ratios(res)}
    assert rs["mask2former_r50", "forward", "predict", BIG] == pytest.approx(9.0)
    assert rs["mask2former_r50", "forward", "forward", BIG] == pytest.approx(900 / 80)
    assert rs["sam_vit_b", "click", "click", SMALL] == pytest.approx(18.0)
    assert rs["yolo11n_seg", "predict", "predict", BIG] == pytest.approx(0.5)
    # prompt32 has no SAM number here: no ratio is invented
    assert not [k for k in rs if k[0] == "sam_vit_b" and k[2] == "prompt32"]


def test_targets_pass_and_miss():
    res = synthetic(full_numbers())  # m2f 9x (pass), SAM 18x (miss), prompt 4 ms (pass), 32/1 = 3.5 (miss)
    out = evaluate_targets(res)
    (pan,) = by_name(out, "panoptic_vs_mask2former")
    assert pan.size == BIG and pan.value == pytest.approx(9.0) and pan.passed is True and pan.verdict == "PASS"
    clicks = by_name(out, "click_vs_sam")
    assert {c.size for c in clicks} == {SMALL, BIG}  # the click target has no size: every size is checked
    assert all(c.value == pytest.approx(18.0) and c.passed is False and c.verdict == "MISS" for c in clicks)
    assert all(r.passed is True for r in by_name(out, "prompt_cached_ms"))
    assert all(r.value == pytest.approx(3.5) and r.passed is False for r in by_name(out, "prompts32_vs_1"))


@pytest.mark.parametrize("m2f,passed", [(800.0, True), (799.0, False)])
def test_ratio_target_bound_is_inclusive(m2f, passed):
    (pan,) = by_name(evaluate_targets(synthetic(full_numbers(m2f=m2f))), "panoptic_vs_mask2former")
    assert pan.passed is passed


@pytest.mark.parametrize("prompt,passed", [(5.0, True), (5.01, False)])
def test_latency_target_bound_is_inclusive(prompt, passed):
    rs = by_name(evaluate_targets(synthetic(full_numbers(prompt=prompt, prompt32=prompt))), "prompt_cached_ms")
    assert rs and all(r.passed is passed for r in rs)


def test_unmeasurable_targets_say_why():
    ms = {k: v for k, v in full_numbers().items() if k[2] == SMALL and k[0] != "sam_vit_b"}
    res = synthetic(ms, sizes=(SMALL,), peers=("mask2former_r50",), skipped={"sam_vit_b": "transformers is not installed"})
    out = evaluate_targets(res)
    (pan,) = by_name(out, "panoptic_vs_mask2former")
    assert pan.passed is None and "800x1333 not in --sizes" in pan.detail and pan.verdict == "n/a"
    (click,) = by_name(out, "click_vs_sam")
    assert click.passed is None and "transformers is not installed" in click.detail
    res2 = synthetic({("rapsam_r50", "prompt", SMALL): 3.0}, sizes=(SMALL,), variants=("rapsam_r50",), peers=())
    out2 = evaluate_targets(res2)
    assert "rapsam_r18 not in --variants" in by_name(out2, "panoptic_vs_mask2former")[0].detail
    (p,) = by_name(out2, "prompt_cached_ms")  # applies to every variant measured
    assert p.model == "rapsam_r50" and p.passed is True
    (s,) = by_name(out2, "prompts32_vs_1")
    assert s.passed is None and "not measured" in s.detail


def test_table_shows_latencies_ratios_and_verdicts():
    res = synthetic(full_numbers(), skipped={})
    text = format_report(res)
    assert "== 800x1333" in text and "== 512x512" in text
    assert "rapsam_r18" in text and "mask2former_r50" in text
    assert "9.00x" in text  # m2f forward / r18 predict
    assert "18.00x" in text  # sam click / r18 click
    assert "125.0 (8.0fps)" in text  # video: ms per frame and fps
    lines = [ln for ln in text.splitlines() if ln.startswith("r18 full panoptic predict")]
    assert len(lines) == 1 and lines[0].rstrip().endswith("PASS") and ">= 8x" in lines[0]
    assert any(ln.startswith("r18 image + 1 click") and "MISS" in ln for ln in text.splitlines())
    assert "load average" in text


def test_table_lists_skipped_peers():
    res = synthetic({("rapsam_r18", "prompt", SMALL): 3.0}, sizes=(SMALL,), peers=(),
                    skipped={"yolo11n_seg": "ultralytics is not installed"})
    assert "skipped yolo11n_seg: ultralytics is not installed" in format_report(res)


def test_json_schema(tmp_path):
    res = synthetic(full_numbers())
    path = write_json(res, tmp_path / "sub" / "benchmark.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA
    assert set(doc) == {"schema", "config", "environment", "models", "skipped", "results", "ratios", "targets"}
    assert doc["config"]["sizes"] == [[512, 512], [800, 1333]] and doc["config"]["repeats"] == 3
    assert doc["models"]["sam_vit_b"]["params"] == 93_700_000 and doc["models"]["sam_vit_b"]["kind"] == "peer"
    r = next(r for r in doc["results"] if r["model"] == "rapsam_r18" and r["task"] == "predict" and r["size"] == [800, 1333])
    assert set(r) == {"model", "task", "size", "median_ms", "times_ms", "note"}
    assert r["median_ms"] == pytest.approx(100.0) and len(r["times_ms"]) == 3
    assert len(doc["results"]) == len(res.measurements)
    t = next(t for t in doc["targets"] if t["name"] == "panoptic_vs_mask2former")
    assert t["passed"] is True and t["threshold"] == 8.0 and t["size"] == [800, 1333] and t["value"] == pytest.approx(9.0)
    assert {t["name"] for t in doc["targets"]} == {t.name for t in TARGETS}
    ratio = next(x for x in doc["ratios"] if x["peer"] == "sam_vit_b" and x["task"] == "click")
    assert ratio["ratio"] == pytest.approx(18.0)


def test_json_round_trips(tmp_path):
    res = synthetic(full_numbers(), skipped={"x": "why"})
    back = read_json(write_json(res, tmp_path / "b.json"))
    assert back.config.sizes == [SMALL, BIG] and back.skipped == {"x": "why"}
    assert back.models == res.models
    assert [(m.model, m.task, m.size, m.times_ms) for m in back.measurements] == [
        (m.model, m.task, m.size, m.times_ms) for m in res.measurements]
    assert format_report(back) == format_report(res)


def test_read_json_rejects_other_files(tmp_path):
    (tmp_path / "o.json").write_text('{"schema": "something/else"}')
    with pytest.raises(ValueError, match="not a rapsam.benchmark/1 document"):
        read_json(tmp_path / "o.json")


def test_json_is_strict_when_a_ratio_is_infinite(tmp_path):
    res = synthetic({("rapsam_r18", "click", SMALL): 0.0, ("sam_vit_b", "click", SMALL): 5.0}, sizes=(SMALL,))
    assert to_dict(res)["ratios"][0]["ratio"] == float("inf")
    text = write_json(res, tmp_path / "b.json").read_text()
    assert "Infinity" not in text
    doc = json.loads(text)
    assert doc["ratios"][0]["ratio"] is None


@pytest.mark.parametrize("backend", ["matplotlib", "pil"])
def test_plot_file_is_written(tmp_path, backend):
    if backend == "matplotlib":
        pytest.importorskip("matplotlib")
    res = synthetic(full_numbers())
    path = write_plot(res, tmp_path / f"plot_{backend}.png", backend=backend)
    with Image.open(path) as im:
        w, h = im.size
        assert im.format == "PNG" and w > h > 100  # two panels side by side
        assert len(np.unique(np.asarray(im.convert("L")))) > 2  # something was drawn


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="backend"):
        write_plot(synthetic(full_numbers()), tmp_path / "x.png", backend="svg")
    with pytest.raises(ValueError, match="nothing to plot"):
        write_plot(synthetic({}, peers=()), tmp_path / "y.png")
