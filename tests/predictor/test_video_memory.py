"""Online mode keeps bounded memory: RSS after 300 frames stays within a small constant of RSS after 30.

A generated 300-frame video (32 px, read lazily from its frame folder) goes through the r18 fixture
network. To keep the test fast the copy used here decodes 20 of the 100 object queries and a
5-class vocabulary; the predictor's state (tracks, buffers) is what is measured, and it does not
depend on those sizes.
"""

from __future__ import annotations

import copy
import gc

import psutil
import pytest
import torch
import torch.nn.functional as F

from rapsam.predictor.tracking import TrackerConfig
from rapsam.predictor.video import VideoPredictor

N_FRAMES = 300
MAX_GROWTH_MB = 24.0


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def light_model(official_r18_model):
    m = copy.deepcopy(official_r18_model)
    emb = F.normalize(torch.randn(5, 1, 768, generator=torch.Generator().manual_seed(0)), dim=-1)
    m.set_vocabulary(emb, [f"c{i}" for i in range(5)], [True, True, True, False, False])
    w = m.decoder.query_embed.weight.data[:20].clone()
    m.decoder.query_embed = torch.nn.Embedding.from_pretrained(w, freeze=True)
    m.decoder.num_queries = 20
    return m


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    from rapsam.data.synth import generate

    paths = generate(tmp_path_factory.mktemp("long") / "d", images=0, videos=1, size=32, seed=0, frames=N_FRAMES,
                     val_fraction=0.0, keep_truth=False)
    folder = paths.ytvis_video_dir["train"]
    (video,) = [p for p in folder.iterdir() if p.is_dir()]
    return video


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def test_online_memory_does_not_grow_with_video_length(light_model, long_video):
    vp = VideoPredictor(light_model, image_scale=None, window=5, det_thr=0.05,
                        tracker=TrackerConfig(new_track_thr=0.1, sim_thr=0.8, max_gap=10))
    rss = {}
    live = []
    n = 0
    for idx, res in vp.track(long_video, tasks=("instance", "panoptic")):
        n += 1
        live.append(len(vp.tracker.tracks))
        if n in (30, N_FRAMES):
            rss[n] = _rss_mb()
        del res
    assert n == N_FRAMES
    growth = rss[N_FRAMES] - rss[30]
    print(f"RSS after 30 frames {rss[30]:.1f} MB, after {N_FRAMES} frames {rss[N_FRAMES]:.1f} MB "
          f"(growth {growth:+.1f} MB); tracks created {vp.num_tracks}, retired {vp.tracker.retired}, "
          f"live at most {max(live)}")
    assert growth < MAX_GROWTH_MB
    # the state is the live tracks only: retired ones are dropped, the count stays bounded
    assert max(live) <= vp.tracker_config.max_tracks
    assert vp.tracker.retired + len(vp.tracker.tracks) == vp.num_tracks
