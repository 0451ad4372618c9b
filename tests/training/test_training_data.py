"""Training samples: augmentation keeps images, masks and prompts aligned; prompt sampling; determinism."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.training.data import (
    Aug,
    PromptSampling,
    augment,
    choose_source,
    collate,
    resize_for_ratio,
    sample_prompts,
    sample_rng,
)


def _scene(h: int, w: int, seed: int):
    """Image whose red channel encodes which of 3 rectangles a pixel is in (0 = none)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, h, w), bool)
    img = np.zeros((h, w, 3), np.uint8)
    for k in range(3):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        y1, x1 = y0 + rng.integers(h // 4, h // 2 + 1), x0 + rng.integers(w // 4, w // 2 + 1)
        masks[k, y0:y1, x0:x1] = True
    for k in range(3):  # later masks on top, masks made disjoint
        for j in range(k):
            masks[j] &= ~masks[k]
        img[masks[k], 0] = 80 * (k + 1)
    return img, masks


@settings(max_examples=25, deadline=None)
@given(h=st.integers(20, 90), w=st.integers(20, 90), seed=st.integers(0, 10_000), crop=st.sampled_from([(32, 32), (48, 40), (64, 64)]),
       independent=st.booleans())
def test_augment_keeps_masks_aligned(h, w, seed, crop, independent):
    img, masks = _scene(h, w, seed)
    frames = np.stack([img, img])
    m = np.repeat(masks[:, None], 2, 1)
    out_img, out_m = augment(np.random.default_rng(seed), frames, m, Aug(crop, (0.5, 1.5)), independent_crops=independent)
    assert out_img.shape[0] == 2 and out_m.shape[:2] == (3, 2)
    assert out_img.shape[-2] <= crop[0] and out_img.shape[-1] <= crop[1]
    # away from every mask boundary (bilinear blur spans up to the upscale factor, < 5 px here),
    # a pixel's colour says which mask holds it
    red = out_img[:, 0]
    label = torch.zeros(red.shape, dtype=torch.long)
    for k in range(3):
        label[out_m[k]] = k + 1
    lab = label.float()[:, None]
    k_sz = 11
    hi = torch.nn.functional.max_pool2d(lab, k_sz, 1, k_sz // 2)
    lo = -torch.nn.functional.max_pool2d(-lab, k_sz, 1, k_sz // 2)
    stable = (hi == lo)[:, 0]
    stable[..., :5, :] = stable[..., -5:, :] = False  # pixels beyond the crop blur into its border
    stable[..., :, :5] = stable[..., :, -5:] = False
    assert torch.equal((red[stable] / 80).round().long(), label[stable])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), box_p=st.floats(0, 1), neg_p=st.floats(0, 1), extra_p=st.floats(0, 1))
def test_prompts_lie_in_their_segments(seed, box_p, neg_p, extra_p):
    _, masks = _scene(60, 70, seed)
    masks = masks[masks.reshape(3, -1).any(1)]
    cfg = PromptSampling(num_prompts=30, max_clicks=3, box_prob=box_p, extra_pos_prob=extra_p, neg_prob=neg_p)
    pts, lab, boxes, order = sample_prompts(np.random.default_rng(seed), masks, cfg)
    assert pts.shape == (30, 3, 2) and lab.shape == (30, 3) and boxes.shape == (30, 4)
    assert sorted(set(order.tolist())) == list(range(len(masks)))  # every segment used (30 >= N)
    for i, s in enumerate(order):
        m = masks[s]
        has_box = not np.isnan(boxes[i]).any()
        assert has_box or (lab[i] == 1).any()
        if has_box:
            ys, xs = np.nonzero(m)
            assert boxes[i].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        for (x, y), l in zip(pts[i], lab[i]):
            if l == 1:
                assert m[int(y), int(x)]
            elif l == 0:
                assert not m[int(y), int(x)]


def test_official_sampling_is_one_positive_click():
    _, masks = _scene(50, 50, 3)
    pts, lab, boxes, _ = sample_prompts(np.random.default_rng(0), masks, PromptSampling())
    assert (lab == 1).all() and np.isnan(boxes).all() and pts.shape == (30, 1, 2)


def test_keyed_randomness_and_source_mix():
    a = sample_rng(1, 5, 3).random(4)
    assert np.array_equal(a, sample_rng(1, 5, 3).random(4))
    assert not np.array_equal(a, sample_rng(1, 5, 4).random(4))
    srcs = [choose_source(0, i, {"panoptic": 0.4, "video": 0.2, "prompt": 0.4}) for i in range(2000)]
    frac = {s: srcs.count(s) / 2000 for s in set(srcs)}
    assert abs(frac["panoptic"] - 0.4) < 0.04 and abs(frac["video"] - 0.2) < 0.04
    assert choose_source(0, 7, {"panoptic": 0, "video": 1, "prompt": 0}) == "video"


def test_resize_rule_and_collate_padding():
    assert resize_for_ratio(100, 200, (64, 64), 1.0) == (32, 64)
    from rapsam.training.data import TrainItem

    it = TrainItem("panoptic", torch.full((2, 3, 20, 30), 100.0), torch.tensor([1]), torch.ones(1, 2, 20, 30, dtype=torch.bool))
    b = collate([it, it], (32, 32), torch.tensor([100.0] * 3), torch.tensor([1.0] * 3))
    assert b.images.shape == (4, 3, 32, 32) and b.num_frames == 2
    assert b.masks[0].shape == (1, 2, 32, 32) and not b.masks[0][..., 20:, :].any()
    assert (b.images[..., 20:, :] == 0).all()
