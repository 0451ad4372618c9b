"""The predictors on ``OnnxRapSam`` give the torch model's results (demo model, synthetic scenes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rapsam.predictor import InteractivePredictor, PanopticPredictor


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from rapsam.data.synth import generate

    paths = generate(tmp_path_factory.mktemp("synth") / "s", images=2, videos=0, size=128, seed=1)
    return [t.image for t in paths.truth.images]


def _same_panoptic(a, b):
    assert torch.equal(a.seg_ids, b.seg_ids)
    assert [(s.id, s.label, s.name, s.is_thing, s.area, s.query) for s in a.segments] == [
        (s.id, s.label, s.name, s.is_thing, s.area, s.query) for s in b.segments
    ]
    for s, t in zip(a.segments, b.segments):
        assert abs(s.score - t.score) <= 1e-4


@pytest.mark.parametrize("idx", [0, 1])
def test_panoptic_predictor_matches_torch(demo_model, demo_ort, scenes, idx):
    img = scenes[idx]
    ref = PanopticPredictor(demo_model).predict(img)
    got = PanopticPredictor(demo_ort).predict(img)
    assert len(ref.panoptic.segments) >= 1  # a real scene, not an empty result
    _same_panoptic(got.panoptic, ref.panoptic)
    assert torch.equal(got.semantic.sem, ref.semantic.sem)
    assert torch.equal(got.instances.labels, ref.instances.labels)
    assert torch.equal(got.instances.masks, ref.instances.masks)
    torch.testing.assert_close(got.instances.scores, ref.instances.scores, rtol=0, atol=1e-4)


def test_padding_of_sizes_not_a_multiple_of_32(demo_model, demo_ort, scenes):
    """A 100x75 image without resizing: the predictor pads it to 128x96 for both backends."""
    img = np.ascontiguousarray(scenes[0][20:120, 30:105])
    ref = PanopticPredictor(demo_model, image_scale=None)(img)
    p = PanopticPredictor(demo_ort, image_scale=None)
    assert p.prepare(img).tensor.shape[-2:] == (128, 96)
    got = p(img)
    assert got.seg_ids.shape == (100, 75) and len(ref.segments) >= 2
    _same_panoptic(got, ref)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"points": [[40, 50]]},  # 1 prompt
        {"points": [[30, 40], [90, 100], [64, 64], [10, 120], [120, 8]]},  # 5 prompts
        {"points": [[[30, 40], [35, 45], [90, 100]]], "labels": [[1, 1, 0]]},  # clicks + a negative
        {"boxes": [[10, 10, 60, 70], [50, 40, 127, 127]]},  # boxes only
    ],
)
def test_interactive_predictor_matches_torch(demo_model, demo_ort, scenes, kwargs):
    ref_p, got_p = InteractivePredictor(demo_model), InteractivePredictor(demo_ort)
    ref_p.set_image(scenes[0])
    got_p.set_image(scenes[0])
    ref = ref_p.predict(**kwargs, return_logits=True)
    got = got_p.predict(**kwargs, return_logits=True)
    assert torch.equal(got.masks, ref.masks) and got.masks.any()
    assert got.names == ref.names
    torch.testing.assert_close(got.iou, ref.iou, rtol=0, atol=1e-4)
    torch.testing.assert_close(got.logits, ref.logits, rtol=0, atol=1e-3)


def test_vocabulary_swap_through_the_predictor(demo_model, demo_export, scenes):
    from rapsam.runtime import OnnxRapSam

    emb = demo_model.classifier.embeddings()[[2, 0, 7]]  # 3 of the 10 classes, reordered
    ort_model = OnnxRapSam(demo_export.out_dir, num_threads=1)
    p = PanopticPredictor(ort_model)
    p.set_vocabulary(emb)
    assert ort_model.num_classes == 3 and ort_model.class_names == ["class_0", "class_1", "class_2"]
    res = p(scenes[0])
    assert all(0 <= s.label < 3 for s in res.segments)
