"""``benchmarks/gpu_bench.py`` on CPU (``--device cpu --size 64x64 --quick``): every path that can run
without CUDA, the CUDA-graph modes skipped with a message, outputs checked against fp32 eager."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_bench.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_script(gpu_bench, tmp_path, *extra):
    out = tmp_path / "gpu.json"
    try:
        rc = gpu_bench.main(["--device", "cpu", "--size", "64x64", "--quick", "--variants", "rapsam_r18",
                             "--out", str(out), *extra])
    finally:
        torch._dynamo.reset()
    assert rc == 0
    doc = json.loads(out.read_text())
    return doc, {(r["model"], r["dtype"], r["mode"]): r for r in doc["rows"]}


def test_cpu_smoke_mode_fp32_eager_and_compile(gpu_bench, tmp_path, capsys):
    # --device cpu --size 64x64 --quick, fp32 only (bf16 below) to keep to one torch.compile trace
    doc, rows = run_script(gpu_bench, tmp_path, "--dtypes", "fp32")
    table = capsys.readouterr().out
    assert doc["schema"] == "rapsam.gpu_bench/1"
    assert doc["config"]["quick"] and doc["config"]["compile_backend"] == "eager"
    assert doc["config"]["repeats"] == 3 and doc["config"]["warmup"] == 1
    assert doc["environment"]["torch"] == torch.__version__ and doc["environment"]["date"]
    assert set(rows) == {("rapsam_r18", "fp32", m) for m in ("eager", "compile", "cudagraphs", "compile-cudagraphs")}
    for mode in ("cudagraphs", "compile-cudagraphs"):
        assert rows["rapsam_r18", "fp32", mode]["status"] == "skipped: CUDA graphs need a CUDA device"
    for mode in ("eager", "compile"):
        r = rows["rapsam_r18", "fp32", mode]
        assert r["status"] == "ok", r["status"]
        assert len(r["times_ms"]) == 3 and r["fps"] == pytest.approx(1e3 / r["median_ms"])
        assert r["max_abs_diff"] < 1e-3 and r["class_agreement"] == 1.0  # fp32 matches the reference
    assert doc["target"]["passed"] is None  # not a CUDA run
    assert doc["environment"]["device_name"] in table and "torch " + torch.__version__ in table
    assert "skipped: CUDA graphs need a CUDA device" in table and "n/a (needs CUDA at 800x1333)" in table


def test_cpu_smoke_mode_bf16(gpu_bench, tmp_path, capsys):
    doc, rows = run_script(gpu_bench, tmp_path, "--dtypes", "bf16", "--modes", "eager,cudagraphs")
    assert set(rows) == {("rapsam_r18", "bf16", "eager"), ("rapsam_r18", "bf16", "cudagraphs")}
    r = rows["rapsam_r18", "bf16", "eager"]
    # bf16 on CPU needs the deploy copy's neck kernel (torchvision's CPU deform_conv2d has no bf16):
    # a failure must be reported in its row, not crash the run
    assert r["status"] == "ok" or r["status"].startswith("failed: "), r["status"]
    if r["status"] == "ok":
        assert 0.0 < r["max_abs_diff"] < 10.0 and r["class_agreement"] > 0.5  # bf16: close, not identical
    assert doc["target"]["best_fps"] == (r["fps"] if r["status"] == "ok" else None)
    assert "bf16" in capsys.readouterr().out


def test_compare_reports_diff_and_agreement(gpu_bench):
    ref_m = torch.tensor([[[[1.0, -1.0], [2.0, -2.0]]]])  # (1, Q=1, 2, 2)
    ref_c = torch.tensor([[[0.1, 0.9, 0.0]]])  # (1, Q=1, K+1=3)
    m = ref_m.clone()
    m[0, 0, 0, 1] = 0.5  # one pixel flips sign, |diff| 1.5
    c = torch.tensor([[[0.9, 0.1, 0.0]]])  # class argmax differs
    got = gpu_bench.compare((m, c), (ref_m, ref_c))
    assert got["max_abs_diff"] == pytest.approx(1.5)
    assert got["mask_agreement"] == pytest.approx(0.75)
    assert got["class_agreement"] == 0.0


def test_bad_arguments(gpu_bench, capsys):
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--device", "cpu", "--modes", "eager,turbo"])
    assert "unknown mode(s) ['turbo']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--device", "cpu", "--size", "big"])
    assert "--size must look like 800x1333" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_bench.parse_args([])
        assert "CUDA is not available" in capsys.readouterr().err
