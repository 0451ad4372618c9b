"""The timing loop and the benchmark driver behind ``rapsam benchmark``.

RAP-SAM (Xu et al., arXiv 2401.10228) claims real-time speed for its three tasks with one model; this
module measures each task through rapsam's public predictors, next to peer models (``peers.py``), in
one process, on the same input image and thread count:

* ``forward``: the raw network on the prepared tensor (object queries, what panoptic uses);
* ``predict``: ``PanopticPredictor.predict`` (pre-processing, forward, panoptic post-processing);
* ``click``: ``InteractivePredictor.set_image`` + ``predict`` of one click (encoder + prompt decode);
* ``prompt``: one more ``predict`` of one click on the cached features;
* ``prompt32``: 32 clicks in one ``predict`` call on the cached features;
* ``video``: ``VideoPredictor.track`` in online mode, milliseconds per frame.

Timing protocol: ``warmup`` untimed rounds, then ``repeats`` timed rounds; the median is reported.
Jobs are **interleaved** (round r times every job once before round r + 1 starts), so a change in the
load of a shared machine hits every model alike instead of whichever model was running at the time.
Weights are random (speed does not depend on their values); all predictors keep the input size
(``image_scale=None``), so every model sees the same pixels.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .timing import Job, click_points, make_frames, make_image, median, time_interleaved

TASKS = ("forward", "predict", "click", "prompt", "prompt32", "video")
TASK_TITLES = {
    "forward": "panoptic forward (raw network)",
    "predict": "full panoptic predict (pre + forward + post)",
    "click": "image + 1 click (encoder + prompt decode)",
    "prompt": "1 prompt on cached features",
    "prompt32": "32 prompts in one call, cached features",
    "video": "video online, ms per frame",
}
DEFAULT_SIZES = ((512, 512), (800, 1333))
SCHEMA = "rapsam.benchmark/1"


# ---------------------------------------------------------------------------------------- results
@dataclass
class Measurement:
    """Timed milliseconds of one (model, task, input size).

    Attributes:
        model: rapsam variant or peer name.
        task: one of ``TASKS``.
        size: (H, W) of the input image.
        times_ms: one value per timed repeat (per frame for ``video``).
        note: how the number was obtained when it differs from the default protocol.
    """

    model: str
    task: str
    size: tuple[int, int]
    times_ms: list[float]
    note: str = ""

    @property
    def median_ms(self) -> float:
        return median(self.times_ms)


@dataclass
class ModelInfo:
    """A benchmarked model: ``kind`` is "rapsam" or "peer"; ``source`` says where its code came from."""

    name: str
    kind: str
    params: int
    title: str
    source: str


@dataclass
class BenchmarkConfig:
    """What ``run_benchmark`` measures (see ``rapsam benchmark --help``).

    Attributes:
        sizes: input sizes (H, W).
        variants: rapsam variants (``rapsam.list_models()``).
        peers: peer short names (``peers.PEERS`` keys).
        repeats: timed rounds; the median is reported.
        warmup: untimed rounds first.
        threads: torch CPU threads (None: leave as is).
        device: "cpu" or "cuda".
        video_frames: frames of the online video pass.
        num_prompts: prompts of the batched call (32 in issue #9).
        seed: weights, vocabulary and image seed.
    """

    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES
    variants: Sequence[str] = ("rapsam_r18",)
    peers: Sequence[str] = ()
    repeats: int = 3
    warmup: int = 1
    threads: int | None = None
    device: str = "cpu"
    video_frames: int = 3
    num_prompts: int = 32
    seed: int = 0

    def validate(self) -> None:
        """Check every field before anything is built.

        Raises:
            ValueError: a bad size, unknown variant or peer, counts out of range, or a CUDA device
                asked for where there is none.
        """
        from ..models import list_models
        from .peers import PEERS

        if not self.sizes:
            raise ValueError("no input size: give --sizes like 512x512,800x1333")
        for s in self.sizes:
            if len(s) != 2 or min(s) < 32:
                raise ValueError(f"input size {s} must be (H, W) with both sides >= 32, e.g. 512x512")
        known = list_models()
        bad = [v for v in self.variants if v not in known]
        if bad or not self.variants:
            raise ValueError(f"unknown rapsam variant(s) {bad or '(none given)'}; choose from {', '.join(known)}")
        badp = [p for p in self.peers if p not in PEERS]
        if badp:
            raise ValueError(f"unknown peer(s) {badp}; choose from {', '.join(PEERS)}, 'all' or 'none'")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.video_frames < 1 or self.num_prompts < 1:
            raise ValueError("video_frames and num_prompts must be >= 1")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but CUDA is not available here; use --device cpu")


@dataclass
class BenchmarkResult:
    """Everything one run measured; ``report.py`` turns it into tables, JSON and a plot."""

    config: BenchmarkConfig
    environment: dict[str, Any]
    models: dict[str, ModelInfo] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def get(self, model: str, task: str, size: tuple[int, int]) -> Measurement | None:
        """The measurement of ``model`` / ``task`` at ``size``, or None."""
        for m in self.measurements:
            if m.model == model and m.task == task and tuple(m.size) == tuple(size):
                return m
        return None

    @property
    def variants(self) -> list[str]:
        return [n for n, i in self.models.items() if i.kind == "rapsam"]

    @property
    def peer_names(self) -> list[str]:
        return [n for n, i in self.models.items() if i.kind == "peer"]


# ---------------------------------------------------------------------------------------- parsing
_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"512x512,800x1333" -> [(512, 512), (800, 1333)] (H x W; duplicates dropped, order kept).

    Raises:
        ValueError: an item that is not HxW with positive integers of at least 32.
    """
    sizes: list[tuple[int, int]] = []
    items = [t for t in str(text).split(",")]
    if not any(t.strip() for t in items):
        raise ValueError("--sizes is empty: give HxW sizes like 512x512,800x1333")
    for item in items:
        m = _SIZE.match(item)
        if not m:
            raise ValueError(f"--sizes item {item.strip()!r} is not HxW (height x width), e.g. 512x512,800x1333")
        hw = (int(m.group(1)), int(m.group(2)))
        if min(hw) < 32:
            raise ValueError(f"--sizes item {item.strip()!r}: both sides must be >= 32 pixels")
        if hw not in sizes:
            sizes.append(hw)
    return sizes


def parse_names(text: str, known: Sequence[str], what: str, *, allow_none: bool = False) -> list[str]:
    """Comma-separated names checked against ``known`` ('all' = every one, 'none' = no one if allowed).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if items == ["all"]:
        return list(known)
    if items == ["none"] and allow_none:
        return []
    bad = [t for t in items if t not in known]
    if bad or not items:
        extra = ", 'all'" + (" or 'none'" if allow_none else "")
        raise ValueError(f"unknown {what} {bad or '(none given)'}; choose from {', '.join(known)}{extra}")
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------- rapsam
def build_rapsam(name: str, device: str, seed: int = 0) -> torch.nn.Module:
    """A rapsam variant with random weights and a random COCO-sized vocabulary (80 things + 53 stuff)."""
    from ..models import build_model

    torch.manual_seed(seed)
    model = build_model(name, device=device)
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.functional.normalize(torch.randn(133, 1, model.classifier.embed_dim, generator=g), dim=-1)
    model.set_vocabulary(emb.to(device), [f"class_{i}" for i in range(133)], [i < 80 for i in range(133)])
    return model.eval()


def rapsam_jobs(
    model: torch.nn.Module, image: np.ndarray, frames: Sequence[np.ndarray], num_prompts: int
) -> dict[str, Job]:
    """The six rapsam tasks on ``image`` as jobs (keys = task names), through the public predictors.

    The ``prompt`` / ``prompt32`` jobs use a predictor whose ``set_image`` ran here, untimed.
    """
    from ..predictor.image import PanopticPredictor
    from ..predictor.interactive import InteractivePredictor
    from ..predictor.video import VideoPredictor

    h, w = image.shape[:2]
    pan = PanopticPredictor(model, image_scale=None)
    x = pan.prepare(image).tensor  # (1, 3, Hp, Wp) normalised, padded

    def forward() -> Any:
        with torch.inference_mode():
            return model(x, with_objects=True)

    click = InteractivePredictor(model, image_scale=None)
    one = click_points((h, w), 1)  # (1, 2): the centre
    many = click_points((h, w), num_prompts)  # (P, 2)

    def image_click() -> Any:
        click.set_image(image)
        return click.predict(points=one)

    cached = InteractivePredictor(model, image_scale=None)
    cached.set_image(image)
    video = VideoPredictor(model, image_scale=None, mode="online")

    def track() -> int:
        return sum(1 for _ in video.track(list(frames)))

    return {
        "forward": Job("forward", forward),
        "predict": Job("predict", lambda: pan.predict(image, tasks=("panoptic",))),
        "click": Job("click", image_click),
        "prompt": Job("prompt", lambda: cached.predict(points=one)),
        "prompt32": Job("prompt32", lambda: cached.predict(points=many)),
        "video": Job("video", track, units=len(frames)),
    }


# ---------------------------------------------------------------------------------------- driver
def environment(device: str) -> dict[str, Any]:
    """Versions, device name, threads, date and machine load (recorded with every run)."""
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu
    env = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device,
        "device_name": dev_name,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            "rapsam": version("rapsam"),
            "torch": torch.__version__,
            "torchvision": version("torchvision"),
            "cuda": torch.version.cuda,
            "transformers": version("transformers"),
            "ultralytics": version("ultralytics"),
            "numpy": np.__version__,
        },
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_start"] = [round(v, 2) for v in os.getloadavg()]
    return env


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def run_benchmark(config: BenchmarkConfig, *, verbose: bool = True) -> BenchmarkResult:
    """Build every model once, then time every task of every model per input size.

    Peers whose library is missing are skipped (one line each, reason in ``result.skipped``).
    Everything runs inside ``peers.offline()``: a peer that tries to reach the network fails loudly
    instead of downloading. The torch thread count is restored afterwards.

    Raises:
        ValueError: an invalid ``config`` (checked before anything is built).
    """
    from .peers import PEERS, PeerUnavailable, build_peer, offline

    config.validate()
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    dev = config.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else None
    try:
        result = BenchmarkResult(config=dataclasses.replace(config), environment=environment(dev))
        with offline() as guard:
            rapsam_models = {}
            for name in config.variants:
                m = build_rapsam(name, dev, config.seed)
                rapsam_models[name] = m
                result.models[name] = ModelInfo(
                    name, "rapsam", sum(p.numel() for p in m.parameters()), name, "rapsam (random weights)"
                )
            peers = {}
            for short in config.peers:
                torch.manual_seed(config.seed)
                try:
                    peer = build_peer(short, dev)
                except PeerUnavailable as e:
                    result.skipped[PEERS[short]] = str(e)
                    print(f"skipping peer {short}: {e}", file=sys.stderr)
                    continue
                peers[peer.name] = peer
                result.models[peer.name] = ModelInfo(peer.name, "peer", peer.params, peer.title, peer.source)
            once: dict[tuple[str, str], Measurement] = {}  # size-independent peers: measured once
            for size in config.sizes:
                image = make_image(size, config.seed)
                frames = make_frames(image, config.video_frames)
                jobs: list[Job] = []
                for name, m in rapsam_models.items():
                    for task, j in rapsam_jobs(m, image, frames, config.num_prompts).items():
                        jobs.append(Job((name, task), j.fn, j.units))
                reused = []
                for name, peer in peers.items():
                    for task, j in peer.jobs(image).items():
                        if peer.size_independent and (name, task) in once:
                            first = once[name, task]
                            reused.append(Measurement(name, task, size, list(first.times_ms), first.note))
                            continue
                        jobs.append(Job((name, task), j.fn, j.units))
                tag = f"{size[0]}x{size[1]}"
                _log(f"[{tag}] timing {len(jobs)} jobs: {config.warmup} warm-up + {config.repeats} rounds", verbose)
                times = time_interleaved(
                    jobs, warmup=config.warmup, repeats=config.repeats, sync=sync,
                    on_round=lambda r, n, tag=tag: _log(f"[{tag}] round {r}/{n} done", verbose),
                )
                for (name, task), ts in times.items():
                    note = ""
                    if name in peers:
                        note = peers[name].notes.get(task, "")
                        if peers[name].size_independent:
                            note = (note + "; " if note else "") + f"measured once at {tag}"
                    meas = Measurement(name, task, size, ts, note)
                    if name in peers and peers[name].size_independent:
                        once[name, task] = meas
                    result.measurements.append(meas)
                result.measurements.extend(reused)
            result.environment["network_attempts"] = list(guard.attempts)
        if hasattr(os, "getloadavg"):
            result.environment["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        return result
    finally:
        torch.set_num_threads(old_threads)
