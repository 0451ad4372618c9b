"""The bundled demo model and `rapsam demo` (the README's main command)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from rapsam.cli import main
from tests.conftest import DEMO_MODEL


def test_demo_model_is_small_and_self_describing(demo_model):
    assert DEMO_MODEL.stat().st_size <= 25 * 2**20
    assert demo_model.config.name == "rapsam_tiny"
    assert demo_model.class_names and len(demo_model.class_names) == len(demo_model.thing_flags)
    assert demo_model.text_encoder == "minilm"


def test_bundled_model_config_is_the_committed_training_config():
    from rapsam.commands.train import load_train_config
    from rapsam.config import to_dict
    from rapsam.weights import read_rapsam

    header, _ = read_rapsam(DEMO_MODEL)
    cfg = load_train_config("synthetic_tiny_hires_30min_prior")
    # `rapsam train --config synthetic_tiny_hires_30min_prior` writes exactly this model config, video
    # post-processing included (README, "The bundled demo model")
    assert header["config"] == to_dict(cfg.model) and header["train_config"] == to_dict(cfg)
    assert cfg.model.video.largest_component and cfg.model.video.track_nms_iou == 0.7


def test_demo_command_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "bundled with rapsam" in captured.err and captured.err.count("note: no --weights") == 1
    for f in ["index.html", "scene0.png", "scene0_panoptic.png", "interactive.png", "tracking.mp4", "prompted.mp4",
              "panoptic.json", "ytvis_results.json", "summary.json", "interactive.json", "video_first_last.png"]:
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_s"] < 120
    html = (out / "index.html").read_text()
    assert "tracking.mp4" in html and "interactive.png" in html
    # the demo model segments its own kind of scenes: clicks hit the clicked objects
    inter = json.loads((out / "interactive.json").read_text())
    clicks = [r["iou_with_truth"] for r in inter if not isinstance(r["prompt"], dict)]
    assert np.mean(clicks) > 0.4, inter  # held-out 1-click mIoU of the demo model is ~0.70 (README)


def test_vocabulary_swap_renames_reorders_and_synonyms(demo_model):
    """Run-time vocabulary changes: renamed / reordered classes relabel, a synonym finds the same objects."""
    from rapsam.data.synth import generate
    from rapsam.predictor import PanopticPredictor

    model = copy.deepcopy(demo_model)
    pred = PanopticPredictor(model)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        img = generate(d, images=1, videos=0, size=128, seed=11, val_fraction=0.0).truth.images[0].image
    base = pred(img)
    names = list(model.class_names)
    assert base.segments, "the demo model finds nothing on its own kind of scene"
    found = {s.name for s in base.segments}
    # reorder: same objects, labels follow the new order
    order = names[::-1]
    pred.set_vocabulary(order)
    rev = pred(img)
    assert {s.name for s in rev.segments} == found
    # rename one found class to a synonym-free new name list including a synonym of it
    target = next(iter(found))
    from rapsam.vocab import Vocabulary

    syn = Vocabulary.from_string("; ".join(f"{n}, shape {n}" if n == target else n for n in names))
    pred.set_vocabulary(syn)
    with_syn = pred(img)
    assert {s.name for s in with_syn.segments} == found
    # the same objects: a synonym changes the class's score (the paste order and overlap filter may move a
    # few boundary pixels), not what is found
    covered, covered_syn = base.seg_ids.numpy() > 0, with_syn.seg_ids.numpy() > 0
    assert (covered != covered_syn).mean() < 0.02

    def region(res, name):
        ids = [s.id for s in res.segments if s.name == name]
        return np.isin(res.seg_ids.numpy(), ids)

    a, b = region(base, target), region(with_syn, target)
    assert (a & b).sum() / (a | b).sum() >= 0.9
    # dropping a class removes its segments
    pred.set_vocabulary([n for n in names if n != target])
    assert target not in {s.name for s in pred(img).segments}
