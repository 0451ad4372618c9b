"""``rapsam benchmark`` end to end at a tiny size, its clear errors, and a missing peer being skipped."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from rapsam.benchmarking.runner import TASKS
from rapsam.cli import main


def test_benchmark_is_a_cli_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "benchmark" in capsys.readouterr().out


def test_tiny_run_writes_table_json_and_plot_and_skips_a_missing_peer(tmp_path, capsys, monkeypatch):
    # ultralytics hidden: the yolo peer must be skipped with one clear line, the rest must run.
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    threads = torch.get_num_threads()
    out = tmp_path / "bench"
    rc = main(["benchmark", "--sizes", "64x64", "--variants", "rapsam_tiny", "--peers", "yolo", "--repeats", "1",
               "--warmup", "0", "--threads", "1", "--video-frames", "2", "--out", str(out), "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert torch.get_num_threads() == threads  # the thread count is restored
    skip = [ln for ln in cap.err.splitlines() if ln.startswith("skipping peer yolo")]
    assert len(skip) == 1 and "ultralytics is not installed" in skip[0] and "pip install ultralytics" in skip[0]
    assert "== 64x64" in cap.out and "rapsam_tiny" in cap.out and "== targets (issue #9) ==" in cap.out
    assert "skipped yolo11n_seg" in cap.out
    doc = json.loads((out / "benchmark.json").read_text())
    assert doc["environment"]["threads"] == 1
    assert doc["environment"]["network_attempts"] == []
    tasks = {r["task"] for r in doc["results"] if r["model"] == "rapsam_tiny"}
    assert tasks == set(TASKS)
    assert all(r["median_ms"] > 0 and len(r["times_ms"]) == 1 for r in doc["results"])
    assert "yolo11n_seg" in doc["skipped"] and "yolo11n_seg" not in doc["models"]
    assert doc["models"]["rapsam_tiny"]["params"] > 1_000_000
    assert (out / "benchmark.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sizes", "512by512"], "--sizes item '512by512' is not HxW"),
        (["--sizes", "8x8"], "both sides must be >= 32"),
        (["--variants", "rapsam_r1000"], "unknown rapsam variant(s) ['rapsam_r1000']; choose from rapsam_r18"),
        (["--peers", "mask2former,detr"], "unknown peer(s) ['detr']; choose from mask2former, sam, yolo"),
        (["--repeats", "0"], "repeats must be >= 1"),
    ],
)
def test_bad_arguments_are_one_clear_line(args, message, capsys, tmp_path):
    rc = main(["benchmark", "--out", str(tmp_path / "x"), "--peers", "none", "--variants", "rapsam_tiny", *args])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()  # nothing built or written
