"""Bad weights, classifiers and inputs: one clear error each (never a raw torch traceback)."""

from __future__ import annotations

import pytest
import torch

import rapsam
from rapsam.weights import CheckpointError


def test_checkpoint_for_another_variant(official_r18_files):
    w, _ = official_r18_files
    with pytest.raises(CheckpointError, match=r"does not match this model \(rapsam_r50\).*shape mismatches"):
        rapsam.build_model("rapsam_r50", weights=w)


def test_truncated_checkpoint(official_r18_files, tmp_path):
    w, _ = official_r18_files
    cut = tmp_path / "cut.pth"
    cut.write_bytes(w.read_bytes()[: 1 << 20])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch.save file"):
        rapsam.build_model("rapsam_r18", weights=cut)


def test_empty_missing_and_directory(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        rapsam.build_model("rapsam_r18", weights=tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="not found"):
        rapsam.build_model("rapsam_r18", weights=tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="directory"):
        rapsam.build_model("rapsam_r18", weights=tmp_path)


def test_foreign_checkpoints(tmp_path):
    import torchvision

    tv = tmp_path / "resnet18.pth"
    ref = torchvision.models.resnet18().state_dict()
    torch.save(ref, tv)
    with pytest.raises(CheckpointError, match="not a RAP-SAM checkpoint.*backbone_weights"):
        rapsam.build_model("rapsam_r18", weights=tv)
    txt = tmp_path / "notes.pth"
    txt.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read"):
        rapsam.build_model("rapsam_r18", weights=txt)
    st = tmp_path / "x.safetensors"
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(st))
    with pytest.raises(CheckpointError, match="not a rapsam checkpoint"):
        rapsam.build_model(weights=st)
    # ImageNet weights go to the backbone: missing keys named, the fix spelled out
    m = rapsam.build_model("rapsam_r18", backbone_weights=tv)
    assert torch.equal(m.backbone.conv1.weight, ref["conv1.weight"])
    assert torch.equal(m.backbone.layer4[1].bn2.running_var, ref["layer4.1.bn2.running_var"])
    with pytest.raises(ValueError, match="not a ResNet-50 checkpoint"):
        rapsam.build_model("rapsam_r50", backbone_weights=tv)


def test_checkpoint_never_executes_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    p = tmp_path / "evil.pth"
    torch.save({"state_dict": {"panoptic_head.kernels.weight": torch.zeros(1)}, "meta": Evil()}, p)
    with pytest.raises(CheckpointError):  # read safely, then rejected as a wrong model; never executed
        rapsam.build_model("rapsam_r18", weights=p)


def test_classifier_errors(tmp_path, official_r18_files):
    m = rapsam.build_model("rapsam_r18")
    with pytest.raises(ValueError, match="dimension 512 but this model expects 768"):
        m.set_vocabulary(torch.nn.functional.normalize(torch.randn(3, 2, 512), dim=-1))
    with pytest.raises(ValueError, match="unit-norm"):
        m.set_vocabulary(torch.randn(3, 2, 768))
    with pytest.raises(ValueError, match=r"shape \(K, P, D\)"):
        m.set_vocabulary(torch.randn(768))
    with pytest.raises(ValueError, match="2 class names given for a classifier with 3 classes"):
        m.set_vocabulary(torch.nn.functional.normalize(torch.randn(3, 1, 768), dim=-1), ["a", "b"])
    bad = tmp_path / "cls.pth"
    torch.save(torch.randn(5, 768), bad)
    with pytest.raises(CheckpointError, match=r"expected a tensor \(K, P, D\)"):
        rapsam.build_model("rapsam_r18", classifier=bad)
    with pytest.raises(RuntimeError, match="no vocabulary"):
        rapsam.build_model("rapsam_r18").classifier(torch.randn(1, 2, 768))


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.zeros(3, 64, 64), r"shape \(B, 3, H, W\)"),
        (torch.zeros(1, 1, 64, 64), r"shape \(B, 3, H, W\)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "normalised float"),
        (torch.zeros(1, 3, 60, 64), "not a multiple of 32"),
        (torch.zeros(64, 64, 3).numpy(), "torch.Tensor"),
    ],
)
def test_bad_image_tensors(x, match):
    m = rapsam.build_model("rapsam_r18")
    with pytest.raises(ValueError, match=match):
        m(x)


def test_unknown_variant_and_config_keys():
    with pytest.raises(ValueError, match="unknown model"):
        rapsam.build_model("rapsam_r1000")
    from rapsam.config import ModelConfig, from_dict

    with pytest.raises(ValueError, match="unknown config key"):
        from_dict(ModelConfig, {"backbone": {"nmae": "resnet18"}})
