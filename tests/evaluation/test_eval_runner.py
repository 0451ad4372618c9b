"""The evaluation runner: class mapping, prediction conversion, the batched NoC loop, the COCO-SAM
click geometry, the video tasks in model mode and the trainer's ``evaluate_synthetic_val``."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.data.synth import CATEGORIES, generate
from rapsam.evaluation import NoCEvaluator, runner
from rapsam.evaluation.interactive import coco_sam_click, coco_sam_iou_gt, resize_nearest
from rapsam.structures import PanopticResult, Segment

# ------------------------------------------------------------------------------- class mapping


def test_match_by_builtin_ids_covers_coco_names_that_differ():
    from rapsam.vocab import Vocabulary

    vocab = Vocabulary.builtin("coco_panoptic")
    # COCO's own names differ for some classes ("light" vs "lamp", "net" vs "tennis net")
    cats = [{"id": i, "name": f"coco-{i}"} for i in reversed(vocab.dataset_ids)]
    cmap = runner.match_categories(list(vocab.names), cats)
    assert cmap == dict(enumerate(vocab.dataset_ids))
    # a dataset with other ids falls back to names
    assert runner.match_categories(list(vocab.names), [{"id": 1000, "name": "person"}]) == {0: 1000}


def test_match_by_name_rules():
    names = ["wood floor", "wall", "Sky", "traffic_light", "cup, mug", "floor", "dragon"]
    cats = [{"id": 1, "name": "floor-wood"}, {"id": 2, "name": "wall-other-merged"},
            {"id": 3, "name": "sky-other-merged"}, {"id": 4, "name": "traffic light"},
            {"id": 5, "name": "mug"}, {"id": 6, "name": "floor, flooring"}]
    assert runner.match_categories(names, cats) == {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
    assert runner.match_categories(["dragon"], cats) == {}


def test_no_matching_class_warns_once_with_the_fix():
    model = SimpleNamespace(class_names=["a", "b"])
    with pytest.warns(runner.ClassMappingWarning, match="--classes"):
        notes = runner._mapping_notes(model, {}, [{"id": 1, "name": "cat"}])
    assert len(notes) == 1


# ------------------------------------------------------------------------------- conversion


def _pan(seg_ids, segs):
    return PanopticResult(torch.as_tensor(seg_ids, dtype=torch.int32),
                          [Segment(i, lab, f"c{lab}", 0.9, th, 0, (0, 0, 0, 0)) for i, lab, th in segs])


def test_panoptic_to_dataset_drops_unmapped_and_merges_stuff():
    ids = np.array([[1, 1, 2, 2], [3, 3, 4, 4], [5, 5, 0, 0]])
    # labels: 0 thing (cat 10), 1 unmapped thing, 2 and 3 stuff of one dataset category 20
    res = _pan(ids, [(1, 0, True), (2, 1, True), (3, 2, False), (4, 3, False), (5, 0, True)])
    out, segs = runner._panoptic_to_dataset(res, {0: 10, 2: 20, 3: 20}, {10: True, 20: False})
    assert [s["category_id"] for s in segs] == [10, 20, 10]
    assert out[0, 2] == 0 and out[0, 3] == 0  # unmapped -> void
    assert out[1, 0] == out[1, 3] == segs[1]["id"]  # one segment per stuff category
    assert sorted(set(np.unique(out)) - {0}) == [s["id"] for s in segs] == [1, 2, 3]
    assert [s["area"] for s in segs] == [2, 4, 2]
    assert segs[1]["bbox"] == [0, 1, 4, 1]


def test_video_panoptic_ids_stay_stable():
    ids = np.array([[3, 3, 4, 150]])
    res = _pan(ids, [(3, 2, False), (4, 3, False), (150, 0, True)])
    out, segs = runner._panoptic_to_dataset_stable(res, {0: 10, 2: 20, 3: 20},
                                                   {10: True, 20: False})
    assert out.tolist() == [[3, 3, 3, 150]]  # stuff of category 20 takes its lowest class id + 1
    assert {s["id"]: s["category_id"] for s in segs} == {3: 20, 150: 10}


def test_semantic_no_class_counts_as_a_miss():
    acc = runner._SemanticAccumulator(["a", "b"])
    gt = np.array([[0, 0], [1, 255]])
    pred = np.array([[0, 255], [1, 1]])
    acc.add(pred, gt, source="s", record="r")
    r = acc.compute()
    np.testing.assert_allclose(r.per_class_iou, [0.5, 1.0])
    assert r.miou == pytest.approx(0.75) and r.pixel_accuracy == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="not a class index"):
        acc.add(np.array([[7]]), np.array([[0]]), source="s", record="r")


# ------------------------------------------------------------------------------- interactive


class DiskPredictor:
    """Fake interactive predictor: a disk of radius 5 around each positive click minus a disk of
    radius 2 around each negative one (logits +-1), like ``InteractivePredictor.predict``."""

    def __init__(self, h: int, w: int) -> None:
        self.yy, self.xx = np.mgrid[:h, :w]
        self.calls = 0

    def mask(self, pts, lab) -> np.ndarray:
        m = np.zeros(self.yy.shape, bool)
        for (x, y), lb in zip(pts, lab):
            if lb == 1:
                m |= (self.xx - x) ** 2 + (self.yy - y) ** 2 <= 25
        for (x, y), lb in zip(pts, lab):
            if lb == 0:
                m &= (self.xx - x) ** 2 + (self.yy - y) ** 2 > 4
        return m

    def predict(self, points, labels, return_logits=False):
        self.calls += 1
        masks = np.stack([self.mask(p, lb) for p, lb in zip(points, labels)])
        return SimpleNamespace(logits=torch.from_numpy(np.where(masks, 1.0, -1.0)))


@st.composite
def object_masks(draw):
    h, w = 20, 24
    n = draw(st.integers(1, 3))
    out = []
    for _ in range(n):
        m = np.zeros((h, w), bool)
        for _ in range(draw(st.integers(1, 3))):
            y0, x0 = draw(st.integers(0, h - 2)), draw(st.integers(0, w - 2))
            y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
            m[y0:y1, x0:x1] = True
        out.append(m)
    return np.stack(out)


@settings(max_examples=20, deadline=None)
@given(object_masks(), st.integers(1, 8))
def test_batched_noc_loop_equals_reference_loop(gts, max_clicks):
    fake = DiskPredictor(*gts.shape[1:])
    traces = runner._noc_traces(fake, gts, max_clicks=max_clicks, target_iou=0.9, extra_until=5)
    assert fake.calls <= max_clicks  # one decoder pass per round for all objects
    ev = NoCEvaluator(max_clicks=max_clicks, miou_clicks=(1, 3, 5))
    for g, tr in zip(gts, traces):
        ref = ev.add(g, lambda p, lb: fake.mask(p, lb))
        assert [(c.x, c.y, c.is_positive) for c in tr.clicks] == [
            (c.x, c.y, c.is_positive) for c in ref.clicks]
        assert tr.ious == ref.ious and tr.ious_all == ref.ious_all


def test_coco_sam_click_uses_the_test_size():
    m = np.zeros((40, 60), bool)
    m[5:30, 10:50] = True
    (x, y), g = runner._click_gt(m, (40, 60))
    assert (x, y) == coco_sam_click(m) and g is m
    (x, y), g = runner._click_gt(m, (20, 30))
    small = resize_nearest(m, (20, 30))
    assert (x, y) == coco_sam_click(small)
    np.testing.assert_array_equal(g, coco_sam_iou_gt(small, (40, 60)))


# ------------------------------------------------------------------------------- model mode


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner_synth")
    return generate(root, images=2, videos=2, size=48, seed=3, frames=3, val_fraction=0.5)


@pytest.fixture(scope="module")
def synth_model(official_r18_files, tmp_path_factory):
    """The fixture weights with a vocabulary of the synthetic class names (hashing encoder)."""
    import rapsam
    from rapsam.models import get_config
    from rapsam.vocab import Vocabulary
    from rapsam.vocab.classifier import build_classifier_file
    from rapsam.vocab.encoders import HashingEncoder

    dim = get_config("rapsam_r18").decoder.embed_dim
    vocab = Vocabulary.from_names([c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES])
    path = tmp_path_factory.mktemp("vocab") / "synth.safetensors"
    build_classifier_file(vocab, HashingEncoder(dim)).save(path)
    return rapsam.build_model("rapsam_r18", weights=official_r18_files[0], classifier=path)


def test_interactive_clicks_follow_the_official_geometry(synth_model, tiny, tmp_path):
    ev = runner.run_interactive(synth_model, tiny.coco_panoptic_json["val"],
                                tiny.coco_image_dir["val"], tiny.coco_panoptic_dir["val"],
                                image_scale=(96, 96), noc=False, boxes=False, out_dir=tmp_path)
    recs = json.loads((tmp_path / "interactive.json").read_text())
    im = next(i for i in tiny.truth.images if i.split == "val")
    assert len(recs) == len(im.segments) == ev.metrics["prompts"]
    for r, s in zip(recs, im.segments):
        assert r["segment_id"] == s.segment_id and r["test_size"] == [96, 96]
        x, y = coco_sam_click(resize_nearest(s.mask, (96, 96)))  # clicked on the resized mask
        assert r["point"] == pytest.approx([x / 2, y / 2])
    assert ev.result["box"] is None and ev.result["noc"] is None
    assert set(ev.metrics) == {"mIoU_1click", "prompts", "images"}


def test_vis_and_vps_model_mode_rescore_equal(synth_model, tiny, tmp_path):
    vis = runner.run_vis(synth_model, tiny.ytvis_json["val"], tiny.ytvis_video_dir["val"],
                         image_scale=None, out_dir=tmp_path)
    assert set(vis.metrics) == {"AP", "AP50", "AP75", "AR1", "AR10", "videos"}
    results = json.loads((tmp_path / "results.json").read_text())
    ytvis_ids = {c.ytvis_id for c in CATEGORIES if c.is_thing}
    assert results and {r["category_id"] for r in results} <= ytvis_ids
    assert all(len(r["segmentations"]) == 3 for r in results)
    again = runner.score_vis(tiny.ytvis_json["val"], tmp_path / "results.json")
    assert again.metrics == pytest.approx(vis.metrics)

    vps = runner.run_vps(synth_model, tiny.vipseg_json["val"], tiny.vipseg_image_dir,
                         tiny.vipseg_panoptic_dir, image_scale=None, window_lengths=(1, 2),
                         out_dir=tmp_path)
    assert set(vps.metrics) == {"VPQ", "VPQ_th", "VPQ_st", "VPQ@1", "VPQ@2", "videos"}
    again = runner.score_vps(tiny.vipseg_json["val"], tiny.vipseg_panoptic_dir,
                             tmp_path / "vps.json", tmp_path / "vps", window_lengths=(1, 2))
    assert again.metrics == pytest.approx(vps.metrics, nan_ok=True)
    assert "VPQ" in vps.table() and "category" in vps.table()


def test_vis_without_annotations_only_writes_results(synth_model, tiny, tmp_path):
    gt = json.loads(tiny.ytvis_json["val"].read_text())
    del gt["annotations"]  # as the YouTube-VIS valid release ships
    ann = tmp_path / "valid.json"
    ann.write_text(json.dumps(gt))
    ev = runner.run_vis(synth_model, ann, tiny.ytvis_video_dir["val"], image_scale=None,
                        out_dir=tmp_path / "o")
    assert ev.result is None and ev.metrics == {"videos": 1}
    assert (tmp_path / "o" / "results.json").is_file() and "evaluation server" in ev.notes[-1]
    with pytest.raises(ValueError, match="no 'annotations'"):
        runner.score_vis(ann, tmp_path / "o" / "results.json")


def test_evaluate_synthetic_val_keys(synth_model, tiny):
    data = SimpleNamespace(
        val_panoptic_ann=str(tiny.coco_panoptic_json["val"]),
        val_panoptic_images=str(tiny.coco_image_dir["val"]),
        val_panoptic_masks=str(tiny.coco_panoptic_dir["val"]),
        val_video_ann=str(tiny.ytvis_json["val"]), val_video_dir=str(tiny.ytvis_video_dir["val"]))
    cfg = synth_model.config
    synth_model.config = dataclasses.replace(cfg, test_scale=(48, 48))  # the images' own size
    try:
        res = runner.evaluate_synthetic_val(synth_model, data)
    finally:
        synth_model.config = cfg
    assert {"PQ", "PQ_th", "PQ_st", "mIoU_1click", "prompts", "AP", "AR10"} <= set(res)
    assert all(isinstance(v, (int, float)) for v in res.values())
