"""Shared fixtures: the official parity fixtures in ../shared/fixtures/official and tiny models."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / "shared" / "fixtures" / "official"


def _gen():
    spec = importlib.util.spec_from_file_location("official_gen", OFFICIAL / "gen.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["official_gen"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def official_gen():
    if not (OFFICIAL / "gen.py").exists():
        pytest.fail(f"official fixtures not found at {OFFICIAL}; they ship in ../shared next to the repo")
    return _gen()


@pytest.fixture(scope="session")
def official_r18_files(tmp_path_factory, official_gen):
    """Write the fixture weights as a user would get them: an mmengine-style checkpoint (weights under
    'state_dict', plus a 'meta' holding arbitrary objects) and an official classifier .pth tensor."""
    g = official_gen
    d = tmp_path_factory.mktemp("official")
    sd_np = g.make_state_dict(str(OFFICIAL / "keys_r18.tsv"), seed=1)
    info = json.loads((OFFICIAL / "r18_panoptic_256x320.json").read_text())
    assert g.state_dict_digest(sd_np) == info["state_dict_sha256"]
    # 'meta' holds a non-tensor object, as mmengine checkpoints do (message hub, history buffers):
    # the loader must read the weights without unpickling it as code
    ckpt = {"meta": {"epoch": 12, "hub": argparse.Namespace(history=[1, 2, 3])}, "state_dict": g.to_torch(sd_np)}
    torch.save(ckpt, d / "rapsam_r18_fixture.pth")
    pl = np.load(OFFICIAL / "classifier_r18_s1.npz")
    cls = g.make_classifier(seed=1, plants=zip(pl["plant_classes"], pl["plant_vectors"]))
    torch.save(torch.from_numpy(cls), d / "classifier_coco.pth")
    return d / "rapsam_r18_fixture.pth", d / "classifier_coco.pth"


@pytest.fixture(scope="session")
def official_r18_model(official_r18_files):
    import rapsam

    w, c = official_r18_files
    return rapsam.build_model(
        "rapsam_r18", weights=w, classifier=c, class_names=COCO_NAMES, thing_flags=[i < 80 for i in range(133)]
    )


# stand-in names; the fixture classifier is random, only the thing/stuff split (80 + 53) matters
COCO_NAMES = [f"thing{i}" if i < 80 else f"stuff{i}" for i in range(133)]


def load_case(name: str) -> tuple[dict, dict]:
    data = np.load(OFFICIAL / f"{name}.npz")
    meta = json.loads((OFFICIAL / f"{name}.json").read_text())
    return {k: data[k] for k in data.files}, meta


def rel_err(a, b) -> float:
    a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def bgr_to_input(img_bgr: np.ndarray) -> torch.Tensor:
    """Official preprocessing of the fixture images: BGR->RGB, normalise (no padding needed)."""
    rgb = torch.from_numpy(img_bgr[..., ::-1, :, :].copy() if img_bgr.ndim == 4 else img_bgr[::-1].copy())
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    x = (rgb.float() - mean) / std
    return x if x.dim() == 4 else x[None]


DEMO_MODEL = ROOT / "rapsam" / "assets" / "demo_model.safetensors"


@pytest.fixture(scope="session")
def demo_model():
    """The bundled demo model, or the candidate weights file in ``RAPSAM_DEMO_CANDIDATE`` (a maintainer
    runs the demo-model tests, e.g. tests/predictor/test_video_quality.py, on a new model before bundling it)."""
    import rapsam

    candidate = os.environ.get("RAPSAM_DEMO_CANDIDATE")
    if candidate:
        return rapsam.build_model(weights=candidate)
    if not DEMO_MODEL.exists():
        pytest.fail(f"the bundled demo model is missing: {DEMO_MODEL}")
    return rapsam.build_model(weights="demo")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread while a module runs (restored after): on a shared 2-core machine, two torch
    threads competing with other processes run small models several times slower. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
