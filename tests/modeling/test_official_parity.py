"""The official RAP-SAM outputs (../shared/fixtures/official) reproduced through the user's loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rapsam.modeling.rapsam import Prompts
from tests.conftest import bgr_to_input, load_case, rel_err

TOL = 1e-4


@pytest.fixture(scope="module")
def panoptic_case():
    return load_case("r18_panoptic_256x320")


def test_preprocessing_matches_official(panoptic_case):
    d, _ = panoptic_case
    assert rel_err(bgr_to_input(d["img_bgr"]), d["batch_inputs"]) < 1e-7


def test_backbone_and_neck(official_r18_model, panoptic_case):
    d, _ = panoptic_case
    x = torch.from_numpy(d["batch_inputs"])
    with torch.no_grad():
        feats = official_r18_model.backbone(x)
        for i, f in enumerate(feats):
            assert rel_err(f, d[f"backbone_feat_{i}"]) < 1e-6, i
        assert rel_err(official_r18_model.neck(feats), d["neck_feat"]) < 1e-6


def test_panoptic_mode_every_output(official_r18_model, panoptic_case):
    d, _ = panoptic_case
    with torch.no_grad():
        out = official_r18_model(torch.from_numpy(d["batch_inputs"]))
    assert out.prompt_outputs is None and len(out.object_outputs) == 4
    for i, o in enumerate(out.object_outputs):
        assert rel_err(o.cls_logits, d[f"cls_logits_{i}"]) < TOL, f"cls {i}"
        assert rel_err(o.mask_logits, d[f"mask_logits_{i}"]) < TOL, f"mask {i}"
        assert rel_err(o.iou, d[f"iou_{i}"]) < TOL, f"iou {i}"
    assert rel_err(out.object_embed, d["query_embed"]) < TOL
    # logit scales: stages 1000*cos, adapter 100*cos, background exactly 0
    assert out.object_outputs[0].cls_logits.abs().max() > 100
    assert out.object_outputs[3].cls_logits.abs().max() <= 100.01
    for o in out.object_outputs:
        assert torch.all(o.cls_logits[..., -1] == 0)


def _click_prompts(points_xy: np.ndarray, h: int, w: int) -> Prompts:
    pts = torch.from_numpy(points_xy).float()[None, :, None]  # (1, P, 1, 2)
    return Prompts(pts, torch.ones(pts.shape[:3], dtype=torch.long), None, torch.tensor([[h, w]]))


def test_interactive_mode_every_output(official_r18_model, panoptic_case):
    d, meta = load_case("r18_interactive_256x320")
    x = torch.from_numpy(panoptic_case[0]["batch_inputs"])
    prompts = _click_prompts(d["points_xy"], 256, 320)
    with torch.no_grad():
        feats = official_r18_model.extract_features(x)
        q = official_r18_model.prompt_encoder(prompts.points, prompts.labels, None, prompts.image_sizes)
        out = official_r18_model.decode(feats, prompts, with_objects=False)
    # the encoder's intermediate: query = label embed + pos embed
    assert rel_err(q, d["prompt_query_label_embed"] + d["prompt_pos_embed"]) < 1e-6
    assert out.object_outputs is None and len(out.prompt_outputs) == 4
    for i, o in enumerate(out.prompt_outputs):
        assert rel_err(o.cls_logits, d[f"cls_logits_{i}"]) < TOL, f"cls {i}"
        assert rel_err(o.mask_logits, d[f"mask_logits_{i}"]) < TOL, f"mask {i}"
        assert rel_err(o.iou, d[f"iou_{i}"]) < TOL, f"iou {i}"
    assert rel_err(out.prompt_embed, d["query_embed"]) < TOL
    # final masks: logits upsampled (bilinear) > 0
    import torch.nn.functional as F

    from tests.conftest import _gen

    g = _gen()
    ref = g.unpack_bool(d["pred_masks_bits"], d["pred_masks_shape"])
    amb = g.unpack_bool(d["pred_masks_ambiguous_bits"], d["pred_masks_shape"])
    up = F.interpolate(out.prompt_outputs[-1].mask_logits, size=(256, 320), mode="bilinear", align_corners=False)[0] > 0
    assert ((up.numpy() != ref) & ~amb).sum() == 0
    assert up.sum(dim=(1, 2)).tolist() == pytest.approx(meta["pred_masks_area"], abs=meta["n_ambiguous_pixels"])


def test_video_two_frames(official_r18_model):
    d, _ = load_case("r18_video_2x256x320")
    x = bgr_to_input(d["imgs_bgr"])  # (2, 3, H, W)
    with torch.no_grad():
        feats = official_r18_model.extract_features(x)
        assert rel_err(feats[1:], d["neck_feat"]) < 1e-6
        out = official_r18_model.decode(feats, num_frames=2)
    for i, o in enumerate(out.object_outputs):
        assert o.mask_logits.shape == (1, 100, 2, 64, 80)
        assert rel_err(o.cls_logits, d[f"cls_logits_{i}"]) < TOL, f"cls {i}"
        assert rel_err(o.mask_logits, d[f"mask_logits_{i}"]) < TOL, f"mask {i}"
        assert rel_err(o.iou, d[f"iou_{i}"]) < TOL, f"iou {i}"
    assert rel_err(out.object_embed, d["query_embed"]) < TOL


def test_joint_pass_identical_to_separate_passes(official_r18_model, panoptic_case):
    d, _ = panoptic_case
    di, _ = load_case("r18_interactive_256x320")
    x = torch.from_numpy(d["batch_inputs"])
    prompts = _click_prompts(di["points_xy"], 256, 320)
    with torch.no_grad():
        feats = official_r18_model.extract_features(x)
        joint = official_r18_model.decode(feats, prompts, with_objects=True)
        obj = official_r18_model.decode(feats)
        pr = official_r18_model.decode(feats, prompts, with_objects=False)
    for a, b in zip(joint.object_outputs, obj.object_outputs):
        assert torch.equal(a.mask_logits, b.mask_logits) and torch.equal(a.cls_logits, b.cls_logits)
    # prompt rows sit after the object rows in the joint matrices, so GEMM blocking may differ in the
    # last float bits; the isolation itself is exact (no information flows between the groups)
    for a, b in zip(joint.prompt_outputs, pr.prompt_outputs):
        torch.testing.assert_close(a.mask_logits, b.mask_logits, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(a.iou, b.iou, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.mask_logits > 0, b.mask_logits > 0) or ((a.mask_logits > 0) != (b.mask_logits > 0)).sum() < 5
    # and the joint pass still matches the official numbers
    assert rel_err(joint.object_outputs[-1].mask_logits, d["mask_logits_3"]) < TOL
    assert rel_err(joint.prompt_outputs[-1].mask_logits, di["mask_logits_3"]) < TOL


def test_prompt_order_does_not_matter(official_r18_model, panoptic_case):
    di, _ = load_case("r18_interactive_256x320")
    x = torch.from_numpy(panoptic_case[0]["batch_inputs"])
    perm = [3, 0, 4, 2, 1]
    with torch.no_grad():
        feats = official_r18_model.extract_features(x)
        a = official_r18_model.decode(feats, _click_prompts(di["points_xy"], 256, 320), with_objects=False)
        b = official_r18_model.decode(feats, _click_prompts(di["points_xy"][perm], 256, 320), with_objects=False)
    for x, y in zip(a.prompt_outputs, b.prompt_outputs):
        assert rel_err(x.mask_logits[:, perm], y.mask_logits.numpy()) < 1e-5
        assert rel_err(x.iou[:, perm], y.iou.numpy()) < 1e-5
