"""``rapsam export onnx`` and ``rapsam predict --backend onnxruntime`` as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rapsam.cli import main
from rapsam.runtime.onnx_spec import GRAPHS, SIDECAR


def test_export_command_writes_the_graphs(demo_export):
    assert demo_export.rc == 0, demo_export.stdout
    out = demo_export.out_dir
    for name in GRAPHS:
        assert (out / f"{name}.onnx").stat().st_size > 100_000
        line = next(
            line
            for line in demo_export.stdout.splitlines()
            if line.startswith(str(out / f"{name}.onnx"))
        )
        err = float(line.rsplit("=", 1)[1])
        assert err <= 1e-3, line  # the export's own parity check
    meta = json.loads((out / SIDECAR).read_text())
    assert meta["source"] == "demo" and meta["config"]["name"] == "rapsam_tiny"
    assert meta["class_names"][:2] == ["circle", "square"] and len(meta["class_names"]) == 10
    assert "exported rapsam_tiny (10 classes), opset 19" in demo_export.stdout
    assert f"--backend onnxruntime --onnx {out}" in demo_export.stdout


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    from rapsam.data.synth import generate

    paths = generate(tmp_path_factory.mktemp("synth") / "s", images=1, videos=0, size=128, seed=2)
    f = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(paths.truth.images[0].image[:120, :100]).save(f)
    return f


def test_predict_with_onnxruntime_matches_torch(demo_export, scene_file, tmp_path, capsys):
    assert main(["predict", str(scene_file), "--out", str(tmp_path / "torch")]) == 0
    assert (
        main(
            [
                "predict",
                str(scene_file),
                "--out",
                str(tmp_path / "ort"),
                "--backend",
                "onnxruntime",
                "--onnx",
                str(demo_export.out_dir),
            ]
        )
        == 0
    )
    ref = json.loads((tmp_path / "torch" / "panoptic.json").read_text())
    got = json.loads((tmp_path / "ort" / "panoptic.json").read_text())
    assert got["categories"] == ref["categories"]
    assert got["annotations"][0]["segments_info"] == ref["annotations"][0]["segments_info"]
    assert ref["annotations"][0]["segments_info"]  # not trivially empty
    png = [
        np.asarray(Image.open(tmp_path / d / "panoptic" / "scene.png")) for d in ("torch", "ort")
    ]
    np.testing.assert_array_equal(png[0], png[1])


def test_predict_interactive_with_onnxruntime(demo_export, scene_file, tmp_path):
    assert (
        main(
            [
                "predict",
                str(scene_file),
                "--task",
                "interactive",
                "--point",
                "40,50",
                "--out",
                str(tmp_path),
                "--backend",
                "onnxruntime",
                "--onnx",
                str(demo_export.out_dir),
            ]
        )
        == 0
    )
    recs = json.loads((tmp_path / "interactive.json").read_text())
    assert len(recs) == 1 and 0 <= recs[0]["predicted_iou"] <= 1.5


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--backend", "onnxruntime"], "needs --onnx DIR"),
        (["--onnx", "somewhere"], "add --backend onnxruntime"),
        (
            ["--backend", "onnxruntime", "--onnx", "DIR", "--weights", "w.safetensors"],
            "baked into the ONNX export",
        ),
        (["--backend", "onnxruntime", "--onnx", "DIR", "--device", "cuda"], "CPU"),
        (["--backend", "onnxruntime", "--onnx", "/no/such/dir"], "rapsam export onnx"),
    ],
)
def test_predict_backend_errors(demo_export, scene_file, tmp_path, capsys, argv, match):
    argv = [str(demo_export.out_dir) if a == "DIR" else a for a in argv]
    assert main(["predict", str(scene_file), "--out", str(tmp_path), *argv]) == 1
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--weights", "demo", "--opset", "17"], "opset >= 19"),
        (["--weights", "none"], "--variant"),
        (["--weights", "/no/such/file.safetensors"], "weights file not found"),
    ],
)
def test_export_command_errors(tmp_path, capsys, argv, match):
    assert main(["export", "onnx", "--out", str(tmp_path / "o"), *argv]) == 1
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o" / SIDECAR).exists()


def test_export_without_format_prints_help(capsys):
    assert main(["export"]) == 2
    assert "onnx" in capsys.readouterr().out
