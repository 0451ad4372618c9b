"""Video post-processing options a model can carry (``ModelConfig.video``): per-frame largest connected
region, same-class track NMS in official mode, and the video test scale; all off for official models."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from rapsam.config import ModelConfig, VideoConfig, from_dict, to_dict
from rapsam.predictor.postprocess import largest_component
from rapsam.predictor.video import VideoPredictor, _ClipStore
from tests.predictor.test_video import moving_squares

pytestmark = pytest.mark.usefixtures("one_thread")

EIGHT = ndimage.generate_binary_structure(2, 2)


def with_video(model, **video):
    m = copy.deepcopy(model)
    m.config = dataclasses.replace(m.config, video=VideoConfig(**video))
    return m


@pytest.fixture(scope="module")
def model(official_r18_model):
    """The official fixture network with a 5-class vocabulary (3 things, 2 stuff)."""
    m = copy.deepcopy(official_r18_model)
    emb = torch.nn.functional.normalize(torch.randn(5, 1, 768, generator=torch.Generator().manual_seed(0)), dim=-1)
    m.set_vocabulary(emb, [f"c{i}" for i in range(5)], [True, True, True, False, False])
    return m


# ------------------------------------------------------------------------------------------ largest component
def test_largest_component_keeps_the_most_confident_region():
    x = torch.full((4, 10, 10), -5.0)
    x[0, 1:3, 1:3] = 3.0  # 4 px, mass 3.81
    x[0, 6:9, 6:9] = 1.0  # 9 px, mass 6.58: kept
    x[1, 0:2, 0:2] = 8.0  # 4 px, mass 4.0: kept over the larger but fainter region
    x[1, 5:7, 5:8] = 0.01  # 6 px, mass 3.02
    x[2, 2, 2] = x[2, 3, 3] = 1.0  # diagonal neighbours: one 8-connected region, unchanged
    y = largest_component(x)
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[6:9, 6:9] = True
    assert torch.equal(y[0] > 0, expected)
    assert (y[0, 1:3, 1:3] <= -10).all()  # the dropped region leaves the mask at the fill value
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[0:2, 0:2] = True
    assert torch.equal(y[1] > 0, expected)
    assert torch.equal(y[2], x[2]) and torch.equal(y[3], x[3])  # one region / empty: untouched
    assert torch.equal(y[x <= 0], x[x <= 0])  # negative logits never change


def test_largest_component_single_regions_return_the_input():
    x = torch.full((2, 8, 8), -1.0)
    x[0, 2:5, 2:5] = 2.0
    assert largest_component(x) is x


def test_largest_component_shape_error():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        largest_component(torch.zeros(8, 8))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_largest_component_properties(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, w, generator=g) * 3
    y = largest_component(x)
    for i in range(n):
        before, after = (x[i] > 0).numpy(), (y[i] > 0).numpy()
        assert not (after & ~before).any()  # a subset of the mask
        assert after.any() == before.any()
        if not before.any():
            continue
        assert ndimage.label(after, EIGHT)[1] == 1  # one 8-connected region
        labels, k = ndimage.label(before, EIGHT)
        mass = ndimage.sum_labels(torch.sigmoid(x[i]).numpy(), labels, range(1, k + 1))
        kept = labels[after][0]
        assert np.array_equal(after, labels == kept)  # a whole region of the input
        assert mass[kept - 1] >= mass.max() - 1e-6  # the most confident one
        assert torch.equal(y[i][torch.from_numpy(after)], x[i][torch.from_numpy(after)])


# ------------------------------------------------------------------------------------------ config
def test_video_config_round_trip_and_errors():
    cfg = from_dict(ModelConfig, {"video": {"test_scale": [320, 320], "largest_component": True, "track_nms_iou": 0.7}})
    assert cfg.video == VideoConfig((320, 320), True, 0.7)
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg
    assert from_dict(ModelConfig, {}).video == VideoConfig()  # files written before the field: official protocol
    with pytest.raises(ValueError, match="unknown config key"):
        from_dict(ModelConfig, {"video": {"nms": 0.5}})
    with pytest.raises(ValueError, match="track_nms_iou"):
        VideoConfig(track_nms_iou=1.5)
    with pytest.raises(ValueError, match="test_scale"):
        VideoConfig(test_scale=(0, 320))


def test_official_models_keep_the_official_protocol(model):
    vp = VideoPredictor(model)
    assert vp.image_scale == tuple(model.config.test_scale) == vp.prompt_scale
    assert vp.largest_component is False and vp.track_nms_iou is None


def test_automatic_and_prompted_tracking_run_at_their_own_scales(model, monkeypatch):
    m = with_video(model, test_scale=(96, 64))
    m.config = dataclasses.replace(m.config, test_scale=(48, 48))
    vp = VideoPredictor(m, mode="online")
    scales = []
    real = vp._prepare_at
    monkeypatch.setattr(vp, "_prepare_at", lambda rgb, scale: (scales.append(scale), real(rgb, scale))[1])
    frames = moving_squares(2)
    for _, res in vp.track(frames):
        assert res.instances.image_size == (64, 64)
    assert scales == [(96, 64)] * 2
    scales.clear()
    state = vp.init_state(frames)
    vp.add_prompt(state, frame_idx=0, obj_id=1, points=[[12, 18]], labels=[1])
    for _, res in vp.propagate(state):
        assert res.instances.masks.shape[-2:] == (64, 64)
    assert scales == [(48, 48)] * 2


def test_predictor_reads_the_model_video_config(model):
    m = with_video(model, test_scale=(96, 64), largest_component=True, track_nms_iou=0.6)
    vp = VideoPredictor(m)
    assert vp.image_scale == (96, 64)  # automatic tracking: the video scale
    assert vp.prompt_scale == tuple(m.config.test_scale)  # prompted tracking: the prompts' image scale
    assert vp.largest_component is True and vp.track_nms_iou == 0.6
    vp = VideoPredictor(m, image_scale=(48, 48), largest_component=False, track_nms_iou=None)
    assert vp.image_scale == vp.prompt_scale == (48, 48)  # an explicit scale applies to both
    assert vp.largest_component is False and vp.track_nms_iou is None
    for bad in (1.2, -0.1, "yes", True):
        with pytest.raises(ValueError, match="track_nms_iou"):
            VideoPredictor(m, track_nms_iou=bad)
    with pytest.raises(ValueError, match="largest_component"):
        VideoPredictor(m, largest_component="yes")


# ------------------------------------------------------------------------------------------ official mode
@pytest.fixture(scope="module")
def official_runs(model):
    frames = moving_squares(7)
    plain = VideoPredictor(model, mode="official", image_scale=None)
    lcc = VideoPredictor(model, mode="official", image_scale=None, largest_component=True)
    return [list(vp.track(frames)) for vp in (plain, lcc)]


def test_official_largest_component_masks(official_runs):
    plain, lcc = official_runs
    several = 0
    for (i, a), (j, b) in zip(plain, lcc):
        assert i == j and set(a.instances.track_ids.tolist()) == set(b.instances.track_ids.tolist())
        raw = {int(t): m.numpy() for t, m in zip(a.instances.track_ids, a.instances.masks)}
        for t, m in zip(b.instances.track_ids, b.instances.masks):
            m, r = m.numpy(), raw[int(t)]
            assert not (m & ~r).any()  # a part of the official mask
            if r.any():
                assert ndimage.label(m, EIGHT)[1] == 1
            several += ndimage.label(r, EIGHT)[1] > 1
    assert several > 0  # the random network's official masks are fragmented: the option did something


def test_track_nms_drops_same_class_duplicates(model):
    vp = VideoPredictor(model, mode="official", image_scale=None, track_nms_iou=0.7)
    pr = vp.prepare(np.zeros((32, 32, 3), np.uint8))  # stride-4 logits 8 x 8
    logits = torch.full((3, 2, 8, 8), -5.0)  # queries x frames
    logits[0, :, 0:4, 0:4] = 1.0
    logits[1, :, 0:4, 0:4] = 1.0
    logits[1, 1, 0:4, 4] = 1.0  # IoU(0, 1) = 32 / 36 = 0.89
    logits[2, :, 4:8, 4:8] = 1.0  # disjoint
    store = _ClipStore(1 << 20)
    store.put(("logits", 0), logits.numpy())
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = torch.tensor([0, 0, 1, 0, 1])
    queries = torch.tensor([0, 1, 1, 2, 0])
    kept = vp._track_nms([torch.arange(3)], store, pr, scores, labels, queries)
    # (1, class 0) duplicates (0, class 0); (1, class 1) is the better track of its class, so (0, class 1) goes
    assert kept.tolist() == [0, 2, 3]
    vp.track_nms_iou = 0.95
    assert vp._track_nms([torch.arange(3)], store, pr, scores, labels, queries).tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(store.get(("logits", 0)), logits.numpy())  # the store is left for emitting


def test_official_track_nms_keeps_a_subset_of_tracks(model, official_runs):
    plain = official_runs[0]
    vp = VideoPredictor(model, mode="official", image_scale=None, track_nms_iou=0.3)
    out = list(vp.track(moving_squares(7)))

    def pairs(res):
        ins = res.instances
        return {(int(q), int(lab)): m for q, lab, m in zip(ins.query_indices, ins.labels, ins.masks)}

    for (_, a), (_, b) in zip(plain, out):
        pa, pb = pairs(a), pairs(b)
        assert set(pb) <= set(pa)
        for k, m in pb.items():
            assert torch.equal(m, pa[k])  # kept tracks are unchanged
    assert vp.num_tracks < len(plain[0][1].instances)  # the random network repeats masks: some go


def test_online_largest_component_masks(model):
    frames = moving_squares(4)
    plain = list(VideoPredictor(model, mode="online", image_scale=None, det_thr=0.0).track(frames))
    lcc = list(VideoPredictor(model, mode="online", image_scale=None, det_thr=0.0, largest_component=True).track(frames))
    several = 0
    for (_, a), (_, b) in zip(plain, lcc):
        assert set(a.instances.track_ids.tolist()) == set(b.instances.track_ids.tolist())  # same tracking
        raw = {int(t): m.numpy() for t, m in zip(a.instances.track_ids, a.instances.masks)}
        for t, m in zip(b.instances.track_ids, b.instances.masks):
            m, r = m.numpy(), raw[int(t)]
            assert not (m & ~r).any() and ndimage.label(m, EIGHT)[1] == 1
            several += ndimage.label(r, EIGHT)[1] > 1
    assert several > 0
