"""`rapsam predict` end to end with the official fixture weights (CLI as a user runs it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rapsam.cli import main


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(97, 131), (120, 90)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    return d


def _args(files, out, *extra):
    w, c = files
    return ["--weights", str(w), "--model", "rapsam_r18", "--classifier", str(c), "--out", str(out), "--image-scale", "128,96", *extra]


def test_panoptic_folder(official_r18_files, images, tmp_path, capsys):
    assert main(["predict", str(images), "--task", "panoptic", *_args(official_r18_files, tmp_path)]) == 0
    data = json.loads((tmp_path / "panoptic.json").read_text())
    assert len(data["annotations"]) == 2 and len(data["categories"]) == 133
    assert data["categories"][0]["name"] == "person"  # official 133-class classifier -> COCO names
    for ann in data["annotations"]:
        png = np.asarray(Image.open(tmp_path / "panoptic" / ann["file_name"])).astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids).tolist()) - {0})
    assert (tmp_path / "img0_panoptic.png").exists()
    assert "panoptic: 2 image(s)" in capsys.readouterr().out


def test_instance_and_semantic(official_r18_files, images, tmp_path):
    from pycocotools import mask as mask_utils

    assert main(["predict", str(images / "img0.png"), "--task", "instance", *_args(official_r18_files, tmp_path)]) == 0
    recs = json.loads((tmp_path / "instances.json").read_text())
    assert recs and all(mask_utils.decode(r["segmentation"]).shape == (97, 131) for r in recs)
    assert main(["predict", str(images / "img1.png"), "--task", "semantic", *_args(official_r18_files, tmp_path)]) == 0
    sem = np.asarray(Image.open(tmp_path / "semantic" / "img1.png"))
    assert sem.shape == (120, 90) and sem.max() < 133


def test_interactive(official_r18_files, images, tmp_path):
    args = ["predict", str(images / "img0.png"), "--task", "interactive", "--point", "30,40", "--point", "60,50,0",
            *_args(official_r18_files, tmp_path)]
    assert main(args) == 0
    recs = json.loads((tmp_path / "interactive.json").read_text())
    from pycocotools import mask as mask_utils

    # a positive and a negative click on one object: one mask, at the image size, with a finite IoU
    assert len(recs) == 1 and np.isfinite(recs[0]["predicted_iou"])
    assert mask_utils.decode(recs[0]["segmentation"]).shape == (97, 131) and recs[0]["file_name"] == "img0.png"
    assert (tmp_path / "masks" / "img0_0.png").exists()
    assert main(["predict", str(images / "img0.png"), "--task", "interactive", "--point", "30,40", "--point", "60,50",
                 "--box", "1,1,50,50", "--each", *_args(official_r18_files, tmp_path)]) == 0
    assert len(json.loads((tmp_path / "interactive.json").read_text())) == 3


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--task", "interactive"], "needs at least one --point"),
        (["--task", "interactive", "--point", "500,5"], "outside"),
        (["--task", "interactive", "--box", "20,20,10,30"], "x1 > x0"),
        (["--task", "interactive", "--point", "nan,3"], "NaN"),
    ],
)
def test_bad_prompts_exit_nonzero(official_r18_files, images, tmp_path, capsys, extra, msg):
    assert main(["predict", str(images / "img0.png"), *extra, *_args(official_r18_files, tmp_path)]) == 1
    assert msg in capsys.readouterr().err


def test_bad_sources(official_r18_files, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), *_args(official_r18_files, tmp_path)]) == 1
    assert "no image files" in capsys.readouterr().err.lower()
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    assert main(["predict", str(tmp_path / "broken.jpg"), *_args(official_r18_files, tmp_path)]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.png"), *_args(official_r18_files, tmp_path)]) == 1
    w, c = official_r18_files
    assert main(["predict", str(empty), "--weights", str(tmp_path / "nope.pth")]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["predict", str(empty), "--task", "depth"])
    assert e.value.code == 2


def test_weights_demo_names_the_bundled_model(images, tmp_path, capsys):
    """``--weights demo`` is the bundled model (as in ``build_model`` and ``rapsam export onnx``), without the
    notice printed when no weights are given at all."""
    out = tmp_path / "out"
    assert main(["predict", str(images / "img0.png"), "--task", "panoptic", "--weights", "demo", "--out", str(out)]) == 0
    assert "using the small demo model" not in capsys.readouterr().err
    assert any(out.rglob("*.png"))
