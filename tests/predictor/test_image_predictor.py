"""PanopticPredictor: official parity on the fixture image, formats, real photos, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rapsam.predictor import PanopticPredictor
from rapsam.predictor.transforms import resized_shape
from tests.conftest import _gen, load_case


@pytest.fixture(scope="module")
def fixture_image():
    d, _ = load_case("r18_panoptic_256x320")
    return d, d["img_bgr"][::-1].transpose(1, 2, 0).copy()  # BGR (3,H,W) -> RGB (H,W,3)


@pytest.fixture(scope="module")
def prediction(official_r18_model, fixture_image):
    # The official fixture ran without resizing (img_shape = ori_shape = 256x320).
    pp = PanopticPredictor(official_r18_model, image_scale=None)
    return pp.predict(fixture_image[1])


def test_panoptic_equals_official(prediction, fixture_image):
    d, _ = fixture_image
    g = _gen()
    ours = prediction.panoptic.official_map(133).numpy()
    amb = g.unpack_bool(d["pan_seg_ambiguous_bits"], ours.shape)
    assert ((ours != d["pan_seg"]) & ~amb).sum() == 0
    # segment list: ids 1002, 2044, 3002, 4000, 5044 -> classes 2, 44, 2, 0, 44 (things) in that order
    assert [s.label for s in prediction.panoptic.segments] == [2, 44, 2, 0, 44]
    assert all(s.is_thing for s in prediction.panoptic.segments)
    for s in prediction.panoptic.segments:
        assert s.area == int((prediction.panoptic.seg_ids == s.id).sum())
        assert s.score > 0.8


def test_instances_equal_official(prediction, fixture_image):
    d, _ = fixture_image
    g = _gen()
    ins = prediction.instances
    ref = {(int(q), int(l)): j for j, (q, l) in enumerate(zip(d["ins_query"], d["ins_labels"]))}
    ours = {(int(q), int(l)): i for i, (q, l) in enumerate(zip(ins.query_indices, ins.labels))}
    assert set(ours) == set(ref) and len(ins) == 67
    ref_masks = g.unpack_bool(d["ins_masks_bits"], d["ins_masks_shape"])
    amb = g.unpack_bool(d["ins_masks_ambiguous_bits"], d["ins_masks_shape"])
    for key, j in ref.items():
        i = ours[key]
        assert ins.scores[i].item() == pytest.approx(float(d["ins_scores"][j]), rel=1e-4)
        assert ((ins.masks[i].numpy() != ref_masks[j]) & ~amb[j]).sum() == 0
        np.testing.assert_allclose(ins.boxes[i].numpy(), d["ins_bboxes"][j], atol=1)
    assert torch.all(ins.scores[:-1] >= ins.scores[1:])  # sorted for users


def test_semantic_map(prediction):
    sem = prediction.semantic.sem
    assert sem.shape == (256, 320) and sem.dtype == torch.int64
    assert 0 <= sem.min() and sem.max() < 133


def test_coco_panoptic_png_round_trip(prediction, tmp_path):
    pan = prediction.panoptic
    ann = pan.save(tmp_path / "0001.png", image_id=1, category_ids=list(range(1, 134)))
    rgb = np.asarray(Image.open(tmp_path / "0001.png")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids).tolist()) - {0})
    for s in ann["segments_info"]:
        assert s["area"] == int((ids == s["id"]).sum())
        x, y, w, h = s["bbox"]
        ys, xs = np.nonzero(ids == s["id"])
        assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    json.dumps(ann)


def test_instances_to_coco_rle(prediction):
    from pycocotools import mask as mask_utils

    ins = prediction.instances[:5]
    recs = ins.to_coco(image_id=7, category_ids=list(range(1, 134)))
    assert len(recs) == 5
    for r, m, lab in zip(recs, ins.masks, ins.labels):
        dec = mask_utils.decode(r["segmentation"])
        np.testing.assert_array_equal(dec.astype(bool), m.numpy())
        assert r["category_id"] == int(lab) + 1 and r["image_id"] == 7
    json.dumps(recs)


def test_real_photo_with_resize(official_r18_model):
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.coffee()[:301, :433]  # odd, non-square size
    pp = PanopticPredictor(official_r18_model, image_scale=(320, 224))
    res = pp.predict(img)
    assert res.panoptic.seg_ids.shape == img.shape[:2]
    assert res.instances.masks.shape[1:] == img.shape[:2]
    assert res.semantic.sem.shape == img.shape[:2]
    overlay = res.panoptic.plot(img)
    assert overlay.shape == img.shape and overlay.dtype == np.uint8
    assert set(res.speed) == {"preprocess", "inference", "postprocess"}


@pytest.mark.parametrize("hw,scale,expect", [((480, 640), (1333, 800), (800, 1067)), ((256, 320), (1333, 800), (800, 1000)),
                                             ((1000, 3000), (1333, 800), (444, 1333)), ((5, 7), None, (5, 7))])
def test_resize_rule(hw, scale, expect):
    assert resized_shape(*hw, scale) == expect


def test_bad_inputs(official_r18_model, tmp_path):
    pp = PanopticPredictor(official_r18_model, image_scale=(64, 64))
    with pytest.raises(ValueError, match="task"):
        pp.predict(np.zeros((32, 32, 3), np.uint8), tasks=("depth",))
    with pytest.raises(ValueError):
        pp.predict(np.zeros((32, 32, 3, 2), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        pp.predict(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="RapSam"):
        PanopticPredictor(torch.nn.Linear(2, 2))



def test_keep_threshold_comes_from_the_model_config(demo_model):
    """The panoptic keep threshold defaults to the model's own (the demo model stores 0.4; official 0.8)."""
    import rapsam
    from rapsam.data import synth
    from rapsam.predictor import VideoPredictor

    assert demo_model.config.object_mask_thr == 0.4
    assert PanopticPredictor(demo_model).object_mask_thr == 0.4
    assert VideoPredictor(demo_model).object_mask_thr == 0.4
    assert PanopticPredictor(demo_model, object_mask_thr=0.8).object_mask_thr == 0.8
    assert PanopticPredictor(rapsam.build_model("rapsam_tiny")).object_mask_thr == 0.8
    with pytest.raises(ValueError, match="object_mask_thr must be in"):
        PanopticPredictor(demo_model, object_mask_thr=1.5)
    img = synth._image_scene(np.random.default_rng(3), synth._Grid(128)).image
    lo = PanopticPredictor(demo_model)(img)
    hi = PanopticPredictor(demo_model, object_mask_thr=0.8)(img)
    assert len(lo.segments) > len(hi.segments) and min(s.score for s in lo.segments) > demo_model.config.object_mask_thr
