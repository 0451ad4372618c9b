"""The trainer: dry run of the committed paper configs, exact resume after SIGKILL, DDP equivalence,
and proof that a short run learns."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rapsam.commands.train import list_configs, load_train_config
from rapsam.config import DataConfig, DecoderConfig, NeckConfig, OptimConfig, TrainConfig, to_dict
from rapsam.models import rapsam_tiny
from rapsam.training.trainer import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from rapsam.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, images=16, videos=4, size=64, seed=3, frames=4, keep_truth=False)
    return out


def data_cfg(root: Path, **kw) -> DataConfig:
    c = root / "coco"
    base = dict(
        panoptic_ann=str(c / "annotations/panoptic_train.json"), panoptic_images=str(c / "images/train"),
        panoptic_masks=str(c / "annotations/panoptic_train"), video_ann=str(root / "ytvis/train.json"),
        video_dir=str(root / "ytvis/train/JPEGImages"), crop=(64, 64), ratio_range=(0.8, 1.2),
        prompt_ratio_range=(0.8, 1.2), num_prompts=4, max_clicks=2, box_prob=0.3, neg_prob=0.3, workers=0,
    )
    base.update(kw)
    return DataConfig(**base)


def tiny_cfg(root: Path, **kw) -> TrainConfig:
    model = rapsam_tiny(
        neck=NeckConfig(agg_dim=32, hidden_dim=32),
        decoder=DecoderConfig(num_queries=10, num_stages=3, num_heads=4, ffn_dim=64, embed_dim=32),
    )
    base = dict(
        name="t", model=model, data=data_cfg(root), optim=OptimConfig(lr=1e-3, warmup_iters=2, grad_clip=1.0, backbone_lr_mult=1.0),
        iterations=6, batch_size=2, text_encoder="hashing:32", dense_loss=True, checkpoint_every=1, log_every=1, seed=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_committed_configs_load_strictly():
    names = list_configs()
    for required in ("synthetic_tiny", "rapsam_r50_coco_ytvis_sam", "rapsam_r18_coco_ytvis_sam",
                     "rapsam_stdc1_coco_ytvis_sam", "rapsam_seaformer_coco_ytvis_sam"):
        assert required in names
    for n in names:
        cfg = load_train_config(n)
        assert cfg.iterations > 0
    with pytest.raises(ValueError, match="unknown config key"):
        load_train_config("synthetic_tiny", ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="unknown config"):
        load_train_config("no_such_config")


@pytest.mark.parametrize("name", ["rapsam_r50_coco_ytvis_sam", "rapsam_stdc1_coco_ytvis_sam"])
def test_dry_run_of_paper_config_on_synthetic_data(name, synth, tmp_path, capsys):
    """The paper recipe builds and runs 2 iterations on data in the COCO / YouTube-VIS layouts."""
    from rapsam.cli import main

    d = data_cfg(synth)
    sets = [f"data.{k}={v}" for k, v in dataclasses.asdict(d).items() if k.startswith(("panoptic_", "video_"))]
    sets += ["data.crop=[64,64]", "vocabulary=dataset", "classifier=", "backbone_weights=", "text_encoder=hashing:768", "num_points=256"]
    args = ["train", "--config", name, "--dry-run", "--out", str(tmp_path), "--no-progress", "--device", "cpu"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert "dry run OK" in capsys.readouterr().out
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(np.isfinite(json.loads(l)["loss"]) for l in lines)


def test_resume_after_sigkill_is_exact(synth, tmp_path):
    cfg = tiny_cfg(synth, iterations=8)
    full = train(cfg, tmp_path / "full", progress=False)

    run = tmp_path / "killed"
    run.mkdir()
    (run / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rapsam", "train", "--config", str(run / "cfg.json"), "--out", str(run), "--no-progress",
         "--device", "cpu"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        m = run / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at = len(m.read_text().splitlines())
            break
        time.sleep(0.05)
    assert killed_at is not None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    assert killed_at < 8 and not (run / "model.safetensors").exists()
    resumed = train(cfg, run, resume=True, progress=False)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # `rapsam train --export` rebuilds the same model file from last.pt
    from rapsam.training.trainer import export_model

    c = _weights(export_model(run, tmp_path / "exported.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_cli(cfg: TrainConfig, out: Path, env_extra: dict) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cfg.json").write_text(json.dumps(to_dict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "rapsam", "train", "--config", str(out / "cfg.json"), "--out", str(out), "--no-progress",
         "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def test_ddp_two_gloo_processes_equal_one_process(synth, tmp_path):
    """2 processes x batch 1 give the weights of 1 process x batch 2 (frozen BN, dense losses).

    Every process runs with one thread: float summation order then matches, and the remaining
    difference is the all-reduce's rounding (the dynamics are chaotic at random init, so different
    thread counts alone already move the weights by more than that).
    """
    steps = 3
    opt = OptimConfig(lr=1e-3, warmup_iters=0, grad_clip=1.0, backbone_lr_mult=1.0, eps=1e-6)
    single = _run_cli(tiny_cfg(synth, iterations=steps, freeze_bn=True, optim=opt), tmp_path / "single", {})
    assert single.wait(timeout=300) == 0, single.stderr.read().decode()[-3000:]
    cfg1 = tiny_cfg(synth, iterations=steps, freeze_bn=True, batch_size=1, optim=opt)
    port = _free_port()
    procs = [
        _run_cli(cfg1, tmp_path / "ddp", {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
                                          "RANK": str(r), "LOCAL_RANK": str(r)})
        for r in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-3000:]
    a, b = _weights(tmp_path / "single" / "model.safetensors"), _weights(tmp_path / "ddp" / "model.safetensors")
    init = tiny_cfg(synth)  # same seed -> same initial weights
    from rapsam.training.trainer import build_training_model

    w0 = build_training_model(init).state_dict()
    moved = 0
    for k in w0:
        if not w0[k].is_floating_point():
            continue
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5, msg=k)
        moved += int(not torch.equal(a[k], w0[k]))
    assert moved > 100  # the runs really trained


@pytest.fixture(scope="module")
def synth_small(tmp_path_factory):
    from rapsam.data.synth import generate

    out = tmp_path_factory.mktemp("synth_small")
    generate(out, images=4, videos=1, size=64, seed=4, frames=2, val_fraction=0.25, keep_truth=False)
    return out


def test_short_run_learns(synth_small, tmp_path):
    """The loss on a fixed batch falls well below its start and the model beats a trivial baseline on
    its training images (prompt batches on 3 images)."""
    from rapsam.data.datasets import CocoPanopticDataset
    from rapsam.evaluation.runner import evaluate_interactive
    from rapsam.models import build_model
    from rapsam.training.criterion import RapSamCriterion, total_loss
    from rapsam.training.data import collate
    from rapsam.training.sources import TrainStream, build_vocabulary
    from rapsam.training.trainer import build_training_model, compute_losses

    model = rapsam_tiny(decoder=DecoderConfig(num_queries=10, num_stages=3, num_heads=8, ffn_dim=256, embed_dim=32,
                                              temperature=1.0, prompt_features=True))
    cfg = tiny_cfg(synth_small, model=model, iterations=500, dense_loss=False, num_points=1024, batch_size=4,
                   data=data_cfg(synth_small, mix=(0.4, 0.2, 0.4), num_prompts=8, max_clicks=1, box_prob=0.0, neg_prob=0.0),
                   optim=OptimConfig(lr=1e-3, warmup_iters=20, grad_clip=1.0, backbone_lr_mult=1.0),
                   checkpoint_every=0, log_every=10)

    def fixed_batch_loss(m) -> float:  # dense loss (every pixel) on 4 fixed training items
        names, flags, emb, _ = build_vocabulary(cfg)
        m.set_vocabulary(emb, names, flags)
        stream = TrainStream(cfg, names)
        batch = collate([stream[(10_000, i)] for i in range(4)], cfg.data.crop, m.pixel_mean.flatten(), m.pixel_std.flatten())
        with torch.no_grad():
            return float(total_loss(compute_losses(m.eval(), RapSamCriterion(dense=True), batch, torch.device("cpu"), None)))

    before = fixed_batch_loss(build_training_model(cfg))
    final = train(cfg, tmp_path / "run", progress=False)
    trained = build_model(weights=final)
    after = fixed_batch_loss(trained)
    assert after < 0.5 * before, (before, after)
    d = cfg.data
    res = evaluate_interactive(trained, d.panoptic_ann, d.panoptic_images, d.panoptic_masks, image_scale=None, boxes=False)
    # trivial baseline: the whole image as the mask of every click
    ds = CocoPanopticDataset(d.panoptic_ann, d.panoptic_images, d.panoptic_masks)
    base = np.mean([m.mean() for i in range(len(ds)) for m in ds[i].masks])
    assert res["mIoU_1click"] > 100 * base + 20, (res, base)


def test_sampled_dcn_trains_through_the_sampled_kernel(synth, tmp_path, monkeypatch):
    """``sampled_dcn`` routes the neck's DCNv2 through ``deform_conv3x3_sampled`` in training (and
    only there): torchvision's kernel is never called, and the saved model loads with the default."""
    import rapsam.modeling.neck as neck
    from rapsam.models import build_model
    from rapsam.training.trainer import build_training_model

    def forbidden(*a, **k):
        raise AssertionError("torchvision's deform_conv2d was called")

    cfg = tiny_cfg(synth, sampled_dcn=True, iterations=2)
    layers = [m for m in build_training_model(cfg).modules() if isinstance(m, neck.DeformLayer)]
    assert len(layers) == 3 and all(m.sampled_dcn for m in layers)
    assert not any(m.sampled_dcn for m in build_training_model(tiny_cfg(synth)).modules() if isinstance(m, neck.DeformLayer))
    monkeypatch.setattr(neck, "deform_conv2d", forbidden)
    final = train(cfg, tmp_path / "run", progress=False)
    loaded = build_model(weights=final)
    assert not any(getattr(m, "sampled_dcn", False) for m in loaded.modules())
