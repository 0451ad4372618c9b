"""Clear errors at the export / runtime boundaries (missing files, missing packages, bad inputs)."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch

from rapsam.modeling.rapsam import Prompts
from rapsam.runtime import OnnxRapSam
from rapsam.runtime.onnx_spec import SIDECAR


@pytest.fixture
def export_copy(demo_export, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(demo_export.out_dir, d)
    return d


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="rapsam export onnx"):
        OnnxRapSam(tmp_path / "nope")


def test_directory_without_sidecar(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a rapsam ONNX export"):
        OnnxRapSam(tmp_path)


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="directory"):
        OnnxRapSam(f)


@pytest.mark.parametrize("graph", ["image_encoder", "prompt_decoder", "panoptic_decoder"])
def test_missing_graph_file(export_copy, graph):
    (export_copy / f"{graph}.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=f"{graph}.onnx is missing"):
        OnnxRapSam(export_copy)


def test_missing_vocabulary_file(export_copy):
    (export_copy / "class_embeddings.npy").unlink()
    with pytest.raises(FileNotFoundError, match="class_embeddings.npy"):
        OnnxRapSam(export_copy)


def test_corrupt_sidecar(export_copy):
    (export_copy / SIDECAR).write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        OnnxRapSam(export_copy)


def test_sidecar_from_newer_rapsam(export_copy):
    meta = json.loads((export_copy / SIDECAR).read_text())
    meta["format_version"] = 99
    (export_copy / SIDECAR).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="newer rapsam"):
        OnnxRapSam(export_copy)


def test_sidecar_with_other_io_names(export_copy):
    meta = json.loads((export_copy / SIDECAR).read_text())
    meta["graphs"]["prompt_decoder"]["inputs"] = ["features", "points"]
    (export_copy / SIDECAR).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="re-export"):
        OnnxRapSam(export_copy)


def test_onnxruntime_not_installed(demo_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(RuntimeError, match=r"pip install rapsam\[onnx\]"):
        OnnxRapSam(demo_export.out_dir)


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_exporter_packages_not_installed(demo_model, tmp_path, monkeypatch, missing):
    from rapsam.export import export_onnx

    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(RuntimeError, match=rf"{missing}.*pip install rapsam\[onnx\]"):
        export_onnx(demo_model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"opset": 18}, "opset >= 19"),
        ({"deform_conv": "fast"}, "deform_conv"),
        ({"graphs": ("decoder",)}, "unknown graph"),
    ],
)
def test_export_argument_errors(demo_model, tmp_path, kwargs, match):
    from rapsam.export import export_onnx

    with pytest.raises(ValueError, match=match):
        export_onnx(demo_model, tmp_path, **kwargs)


def test_export_needs_a_built_model(tmp_path):
    from rapsam.export import export_onnx

    with pytest.raises(ValueError, match="rapsam.build_model"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path)


def test_image_size_not_a_multiple_of_32(demo_ort):
    with pytest.raises(ValueError, match="multiple of 32"):
        demo_ort.extract_features(torch.zeros(1, 3, 100, 64))


@pytest.mark.parametrize(
    "images,match",
    [
        (torch.zeros(3, 64, 64), "shape"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "normalised float"),
        ("x", "torch.Tensor"),
    ],
)
def test_bad_images(demo_ort, images, match):
    with pytest.raises(ValueError, match=match):
        demo_ort.extract_features(images)


def test_video_paths_need_the_torch_model(demo_ort):
    f = torch.zeros(2, 128, 16, 16)
    with pytest.raises(ValueError, match="num_frames"):
        demo_ort.decode(f, num_frames=2)
    with pytest.raises(ValueError, match="torch model"):
        demo_ort.decode(f[:1], prompt_queries=torch.zeros(1, 1, 128))


def test_bad_features_and_prompts(demo_ort):
    f = torch.zeros(1, 128, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 128, h, w\)"):
        demo_ort.decode(torch.zeros(1, 64, 16, 16))
    with pytest.raises(ValueError, match="nothing to decode"):
        demo_ort.decode(f, with_objects=False)
    no_positive = Prompts(torch.zeros(1, 1, 1, 2), torch.zeros(1, 1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="positive click"):
        demo_ort.decode(f, no_positive, with_objects=False)
    with pytest.raises(ValueError, match="labels"):
        demo_ort.decode(f, Prompts(torch.zeros(1, 1, 1, 2)), with_objects=False)
    with pytest.raises(ValueError, match="2 images"):
        demo_ort.decode(f, Prompts(torch.zeros(2, 1, 1, 2), torch.ones(2, 1, 1, dtype=torch.long)))


def test_cpu_only_and_thread_count(demo_export, demo_ort):
    assert demo_ort.to("cpu") is demo_ort and demo_ort.eval() is demo_ort
    with pytest.raises(ValueError, match="providers"):
        demo_ort.to("cuda")
    with pytest.raises(ValueError, match="num_threads"):
        OnnxRapSam(demo_export.out_dir, num_threads=0)


def test_vocabulary_checks(demo_ort):
    with pytest.raises(ValueError, match="class names"):
        demo_ort.set_vocabulary(torch.nn.functional.normalize(torch.randn(3, 384), dim=-1), ["a"])
    with pytest.raises(ValueError, match="384"):
        demo_ort.set_vocabulary(torch.nn.functional.normalize(torch.randn(3, 1, 512), dim=-1))
    assert demo_ort.num_classes == 10  # unchanged by the failed swaps


def test_predictors_reject_other_models():
    from rapsam.predictor import PanopticPredictor

    with pytest.raises(ValueError, match="OnnxRapSam"):
        PanopticPredictor(object())


def test_failed_export_leaves_no_sidecar_and_the_model_untouched(
    demo_model, export_copy, monkeypatch
):
    import copy

    from rapsam.export import export_onnx

    model = copy.deepcopy(demo_model).train()

    def boom(*args, **kwargs):
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(torch.export, "export", boom)
    with pytest.raises(RuntimeError, match="tracing failed"):
        export_onnx(model, export_copy)
    assert not (export_copy / SIDECAR).exists()
    with pytest.raises(FileNotFoundError, match="not a rapsam ONNX export"):
        OnnxRapSam(export_copy)
    assert model.training and model.num_classes == 10  # mode and vocabulary kept
