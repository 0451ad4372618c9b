"""Peer builders (random weights, nothing downloaded) and the offline guard of ``rapsam benchmark``."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from rapsam.benchmarking.peers import (
    PEERS,
    NetworkAccessError,
    PeerUnavailable,
    build_mask2former_r50,
    build_peer,
    build_sam_vit_b,
    build_yolo11n_seg,
    offline,
)

IMAGE = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------ offline guard
def test_offline_guard_refuses_and_records_network_access():
    before = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)
    had = os.environ.get("HF_HUB_OFFLINE")
    with offline() as guard:
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["YOLO_OFFLINE"] == "1"
        with pytest.raises(NetworkAccessError, match="runs offline"):
            socket.create_connection(("huggingface.co", 443), timeout=1)
        with pytest.raises(NetworkAccessError):
            socket.getaddrinfo("github.com", 443)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            with pytest.raises(NetworkAccessError):
                s.connect(("203.0.113.1", 80))
        finally:
            s.close()
        socket.getaddrinfo("localhost", 0)  # local look-ups stay allowed
        assert len(guard.attempts) == 3 and "huggingface.co" in guard.attempts[0]
    assert (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == before
    assert os.environ.get("HF_HUB_OFFLINE") == had


def test_network_error_is_an_oserror_libraries_can_treat_as_offline():
    assert issubclass(NetworkAccessError, OSError)


def test_unknown_peer_and_missing_library(monkeypatch):
    with pytest.raises(ValueError, match="unknown peer 'detr'; choose from mask2former, sam, yolo"):
        build_peer("detr")
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(PeerUnavailable, match="transformers is not installed.*pip install transformers"):
        build_peer("sam")


def test_sam_image_size_must_fit_the_patch():
    with pytest.raises(ValueError, match="multiple of 16"):
        build_sam_vit_b(image_size=100)


# ------------------------------------------------------------------------------------------ each peer once
def run_jobs(peer):
    outs = {}
    for task, job in peer.jobs(IMAGE).items():
        assert job.key == task and job.units == 1
        outs[task] = job.fn()
    return outs


def _need(module: str) -> None:
    """Skip when a peer library is absent, unless CI asks for every peer (RAPSAM_REQUIRE_EXTRAS=1)."""
    if os.environ.get("RAPSAM_REQUIRE_EXTRAS") == "1":
        __import__(module)  # CI installs the 'bench' extra: a failed import is a failure, not a skip
    else:
        pytest.importorskip(module)


def test_mask2former_r50_builds_offline_and_runs():
    _need("transformers")
    torch.manual_seed(0)
    with offline() as guard:
        peer = build_mask2former_r50("cpu")
        outs = run_jobs(peer)
    assert guard.attempts == []
    assert peer.name == PEERS["mask2former"] and "transformers" in peer.source
    assert 43e6 < peer.params < 45e6  # Mask2Former-R50: 44.0 M
    cfg = peer.model.config
    assert cfg.num_queries == 100 and cfg.num_labels == 133 and list(cfg.backbone_config.depths) == [3, 4, 6, 3]
    assert set(outs) == {"forward"}
    assert outs["forward"].class_queries_logits.shape == (1, 100, 134)
    assert outs["forward"].masks_queries_logits.shape == (1, 100, 16, 24)  # stride 4 of 64x96


def test_sam_vit_b_builds_offline_and_runs():
    _need("transformers")
    torch.manual_seed(0)
    with offline() as guard:
        peer = build_sam_vit_b("cpu", image_size=128)  # ViT-B sizes, a small input to keep the test fast
        outs = run_jobs(peer)
    assert guard.attempts == []
    v = peer.model.config.vision_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, list(v.global_attn_indexes)) == (
        768, 12, 12, [2, 5, 8, 11])
    assert 89e6 < peer.params < 95e6  # SAM ViT-B: 93.7 M at 1024 (positional embedding scales with the input)
    assert peer.size_independent
    assert set(outs) == {"click", "prompt", "prompt32"}
    assert outs["click"].pred_masks.shape[:3] == (1, 1, 1)
    assert outs["prompt32"].pred_masks.shape[:3] == (1, 32, 1)


def test_yolo11n_seg_builds_offline_and_runs():
    _need("ultralytics")
    torch.manual_seed(0)
    with offline() as guard:
        peer = build_yolo11n_seg("cpu")
        outs = run_jobs(peer)
    assert guard.attempts == []
    assert 2.5e6 < peer.params < 3.2e6  # YOLO11n-seg: 2.9 M
    from PIL import Image

    assert Image.open.__module__ == "PIL.Image"  # ultralytics' process-wide PIL patch was undone
    assert set(outs) == {"forward", "predict"}
    (res,) = outs["predict"]
    assert tuple(res.orig_shape) == IMAGE.shape[:2]
