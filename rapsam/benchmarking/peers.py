"""Peer models for ``rapsam benchmark``, built from their public code with random weights.

RAP-SAM (Xu et al., arXiv 2401.10228, table 1) compares itself with Mask2Former (panoptic), SAM
(interactive) and real-time YOLO-style segmenters; issue #9 states rapsam's targets as ratios to them:

* ``mask2former`` -> Mask2Former-R50: transformers ``Mask2FormerForUniversalSegmentation`` from a
  ``Mask2FormerConfig`` with a ResNet-50 ``ResNetConfig`` backbone (100 queries, 133 COCO panoptic
  classes, the paper's R50 setting); timed: ``forward``.
* ``sam`` -> SAM ViT-B: transformers ``SamModel`` from a ``SamConfig`` with ViT-B sizes (768 wide,
  12 layers, 12 heads, global attention in blocks 2, 5, 8, 11, 1024x1024 input); timed: ``click``
  (image encoder + prompt encoder + mask decoder), ``prompt`` / ``prompt32`` (decoder on a cached
  image embedding).
* ``yolo`` -> YOLO11n-seg: ultralytics ``YOLO("yolo11n-seg.yaml")`` (built from the yaml, no
  weights file); timed: ``forward`` (fused eval network) and ``predict`` (ultralytics' own
  letterbox, NMS and mask pipeline).

Nothing is downloaded: ``offline()`` sets the libraries' offline switches and refuses every
non-local socket connection while the benchmark runs, recording the attempt (a library that tolerates
being offline carries on; one that does not fails with ``NetworkAccessError``). Each peer's library
is optional (``pip install transformers ultralytics``); a missing one raises ``PeerUnavailable`` and
the benchmark skips that peer.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .timing import Job, click_points

#: Short name (``--peers``) -> model name used in tables and JSON.
PEERS = {"mask2former": "mask2former_r50", "sam": "sam_vit_b", "yolo": "yolo11n_seg"}

_IMAGENET_MEAN = (123.675, 116.28, 103.53)
_IMAGENET_STD = (58.395, 57.12, 57.375)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")


class PeerUnavailable(RuntimeError):
    """The peer's library is not installed (the benchmark skips the peer)."""


class NetworkAccessError(OSError):
    """Code tried to reach the network during the benchmark (peers must build offline)."""


@dataclass
class Peer:
    """A built peer model and how to time it.

    Attributes:
        name: model name in tables (``PEERS`` values).
        title: human description.
        source: library and version, and how the model was built.
        params: parameter count.
        model: the module.
        make_jobs: image (H, W, 3) uint8 RGB -> {task: ``Job``}.
        size_independent: the network input does not depend on the image size (SAM: always
            1024x1024), so one measurement serves every size.
        notes: per task, what is and is not inside the timed call.
    """

    name: str
    title: str
    source: str
    params: int
    model: Any
    make_jobs: Callable[[np.ndarray], dict[str, Job]]
    size_independent: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    def jobs(self, image: np.ndarray) -> dict[str, Job]:
        return self.make_jobs(image)


# ---------------------------------------------------------------------------------------- offline
@dataclass
class _Guard:
    attempts: list[str] = field(default_factory=list)


def _is_local(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) and address else address
    return isinstance(host, str) and host in _LOCAL_HOSTS


@contextlib.contextmanager
def offline() -> Iterator[_Guard]:
    """Run the peers with no network: offline switches set, non-local sockets refused.

    Sets ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``YOLO_OFFLINE`` (and ``YOLO_CONFIG_DIR`` to a
    temporary folder when unset, so ultralytics writes no settings file in the home folder), and
    replaces ``socket.socket.connect``, ``socket.create_connection`` and ``socket.getaddrinfo`` so a
    non-local address raises ``NetworkAccessError``. Every attempt is recorded in ``guard.attempts``.
    Environment and socket functions are restored on exit.

    Yields:
        The guard (``attempts``: the refused addresses).
    """
    guard = _Guard()
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}
    tmp = None
    if "YOLO_CONFIG_DIR" not in os.environ:
        tmp = tempfile.TemporaryDirectory(prefix="rapsam_bench_yolo_")
        env["YOLO_CONFIG_DIR"] = tmp.name
    saved_env = {k: os.environ.get(k) for k in env}
    orig_connect, orig_create, orig_gai = socket.socket.connect, socket.create_connection, socket.getaddrinfo

    def refuse(what: str) -> None:
        guard.attempts.append(what)
        raise NetworkAccessError(
            f"a peer tried to reach the network ({what}) but the benchmark runs offline; "
            "peers must be built from their code with random weights (report this as a bug)"
        )

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            refuse(f"connect {address}")
        return orig_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(address):
            refuse(f"create_connection {address}")
        return orig_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        h = host.decode() if isinstance(host, bytes) else host
        if h is not None and not _is_local(h):
            refuse(f"getaddrinfo {h}")
        return orig_gai(host, *args, **kwargs)

    os.environ.update(env)
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.create_connection = create_connection  # type: ignore[assignment]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield guard
    finally:
        socket.socket.connect = orig_connect  # type: ignore[method-assign]
        socket.create_connection = orig_create  # type: ignore[assignment]
        socket.getaddrinfo = orig_gai  # type: ignore[assignment]
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tmp is not None:
            tmp.cleanup()


# ---------------------------------------------------------------------------------------- helpers
def _require(module: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = isinstance(e, ModuleNotFoundError) and e.name == module
        what = "is not installed" if missing else f"does not import ({e.msg})"
        raise PeerUnavailable(f"{pip_name} {what}; pip install {pip_name} (or rapsam's 'bench' extra)") from None


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "?"))


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _pad_to(x: torch.Tensor, divisor: int, value: float = 0.0) -> torch.Tensor:
    """(B, C, H, W) -> bottom/right padded to multiples of ``divisor``."""
    h, w = x.shape[-2:]
    ph, pw = -h % divisor, -w % divisor
    return torch.nn.functional.pad(x, (0, pw, 0, ph), value=value) if ph or pw else x


def _normalised(image: np.ndarray, device: str) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float, ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).to(device)


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """Silence transformers' warnings while building (e.g. "Backbone resnet is not a supported model":
    Mask2Former's R50 setting is the paper's own; the library only lists Swin as tested)."""
    log = transformers.utils.logging
    old = log.get_verbosity()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(old)


# ---------------------------------------------------------------------------------------- Mask2Former
def build_mask2former_r50(device: str = "cpu") -> Peer:
    """Mask2Former with a ResNet-50 backbone, 100 queries, 133 classes, random weights.

    Raises:
        PeerUnavailable: transformers is not installed.
    """
    transformers = _require("transformers", "transformers")
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig

    backbone = ResNetConfig(
        embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3], layer_type="bottleneck",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    kwargs: dict[str, Any] = {}
    accepted = inspect.signature(Mask2FormerConfig.__init__).parameters
    for k in ("use_pretrained_backbone", "use_timm_backbone"):  # older transformers: never load weights
        if k in accepted:
            kwargs[k] = False
    with _quiet_transformers(transformers):
        cfg = Mask2FormerConfig(
            backbone_config=backbone, num_queries=100, id2label={i: f"class_{i}" for i in range(133)}, **kwargs
        )
        model = Mask2FormerForUniversalSegmentation(cfg).to(device).eval()

    def make_jobs(image: np.ndarray) -> dict[str, Job]:
        x = _pad_to(_normalised(image, device), 32)  # (1, 3, Hp, Wp)

        def forward() -> Any:
            with torch.inference_mode():
                return model(pixel_values=x)

        return {"forward": Job("forward", forward)}

    return Peer(
        name=PEERS["mask2former"],
        title="Mask2Former-R50 (100 queries, 133 classes)",
        source=f"transformers {_version(transformers)}: Mask2FormerForUniversalSegmentation(Mask2FormerConfig("
        "backbone_config=ResNetConfig R50)), random weights",
        params=_params(model),
        model=model,
        make_jobs=make_jobs,
        notes={"forward": "network only: input padded to 32, no post-processing"},
    )


# ---------------------------------------------------------------------------------------- SAM
def build_sam_vit_b(device: str = "cpu", image_size: int = 1024) -> Peer:
    """SAM with the ViT-B image encoder, random weights.

    Args:
        device: where to put the model.
        image_size: the encoder's input side (SAM: 1024; smaller only for quick tests).

    Raises:
        PeerUnavailable: transformers is not installed.
        ValueError: ``image_size`` is not a positive multiple of the 16-pixel patch.
    """
    if image_size < 16 or image_size % 16:
        raise ValueError(f"SAM image_size must be a positive multiple of 16 (SAM uses 1024), got {image_size}")
    transformers = _require("transformers", "transformers")
    from transformers import SamConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

    vision = SamVisionConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11],
        image_size=image_size, patch_size=16, window_size=14, output_channels=256,
    )
    prompt_cfg = SamPromptEncoderConfig(hidden_size=256, image_size=image_size, patch_size=16)
    with _quiet_transformers(transformers):
        model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt_cfg)).to(device).eval()
    side = image_size

    def make_jobs(image: np.ndarray) -> dict[str, Job]:
        h, w = image.shape[:2]
        s = side / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        x = torch.nn.functional.interpolate(_normalised(image, device), size=(nh, nw), mode="bilinear",
                                            align_corners=False)
        x = torch.nn.functional.pad(x, (0, side - nw, 0, side - nh))  # (1, 3, 1024, 1024)
        one = torch.from_numpy(click_points((h, w), 1) * s).to(device)[None, :, None]  # (1, 1, 1, 2)
        many = torch.from_numpy(click_points((h, w), 32) * s).to(device)[None, :, None]  # (1, 32, 1, 2)
        lab1 = torch.ones(1, 1, 1, dtype=torch.long, device=device)
        lab32 = torch.ones(1, 32, 1, dtype=torch.long, device=device)
        with torch.inference_mode():
            emb = model.get_image_embeddings(x)  # (1, 256, 64, 64), for the cached-prompt jobs

        def click() -> Any:
            with torch.inference_mode():
                return model(pixel_values=x, input_points=one, input_labels=lab1, multimask_output=False)

        def prompt(pts: torch.Tensor, lab: torch.Tensor) -> Callable[[], Any]:
            def run() -> Any:
                with torch.inference_mode():
                    return model(image_embeddings=emb, input_points=pts, input_labels=lab, multimask_output=False)

            return run

        return {
            "click": Job("click", click),
            "prompt": Job("prompt", prompt(one, lab1)),
            "prompt32": Job("prompt32", prompt(many, lab32)),
        }

    net = f"network only: {side}x{side} input (long side resized to {side}, padded) for any image size"
    return Peer(
        name=PEERS["sam"],
        title=f"SAM ViT-B ({side}x{side} input)",
        source=f"transformers {_version(transformers)}: SamModel(SamConfig(vision_config=ViT-B)), random weights",
        params=_params(model),
        model=model,
        make_jobs=make_jobs,
        size_independent=True,
        notes={
            "click": net + "; resize/normalisation and mask upsampling not timed",
            "prompt": "prompt encoder + mask decoder on the cached image embedding, low-res masks",
            "prompt32": "32 one-click prompts in one call on the cached image embedding, low-res masks",
        },
    )


# ---------------------------------------------------------------------------------------- YOLO
def _undo_pil_patch() -> None:
    """Importing ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that, on an unreadable
    file, tries to pip-install a HEIF plugin (a network call); put Pillow's own function back."""
    from PIL import Image

    patches = importlib.import_module("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    if getattr(Image.open, "__module__", "") == patches.__name__ and callable(original):
        Image.open = original


def build_yolo11n_seg(device: str = "cpu") -> Peer:
    """YOLO11n-seg built from ultralytics' model yaml (80 classes), random weights.

    Raises:
        PeerUnavailable: ultralytics is not installed.
    """
    ultralytics = _require("ultralytics", "ultralytics")
    _undo_pil_patch()
    yolo = ultralytics.YOLO("yolo11n-seg.yaml", task="segment")
    params = _params(yolo.model)
    net = yolo.model.to(device).eval()
    net.fuse(verbose=False)  # what ultralytics' predictor runs (conv + BN folded)
    dev = "cpu" if device == "cpu" else (device if ":" in device else "cuda:0")

    def make_jobs(image: np.ndarray) -> dict[str, Job]:
        h, w = image.shape[:2]
        hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255.0)  # (1, 3, H, W)
        x = _pad_to(x, 32, value=114 / 255.0).to(device)  # (1, 3, Hp, Wp), ultralytics' grey padding
        bgr = np.ascontiguousarray(image[..., ::-1])  # ultralytics takes OpenCV-order arrays

        def forward() -> Any:
            with torch.inference_mode():
                return net(x)

        def predict() -> Any:
            return yolo.predict(bgr, imgsz=(hp, wp), device=dev, verbose=False)

        return {"forward": Job("forward", forward), "predict": Job("predict", predict)}

    return Peer(
        name=PEERS["yolo"],
        title="YOLO11n-seg (80 classes)",
        source=f"ultralytics {_version(ultralytics)}: YOLO('yolo11n-seg.yaml'), random weights",
        params=params,
        model=yolo,
        make_jobs=make_jobs,
        notes={
            "forward": "fused network on the image padded to 32",
            "predict": "YOLO.predict: letterbox, network, NMS, masks (random weights: no detections)",
        },
    )


_BUILDERS: dict[str, Callable[[str], Peer]] = {
    "mask2former": build_mask2former_r50,
    "sam": build_sam_vit_b,
    "yolo": build_yolo11n_seg,
}


def build_peer(short: str, device: str = "cpu") -> Peer:
    """Build a peer by short name (``PEERS`` keys).

    Raises:
        ValueError: unknown name.
        PeerUnavailable: its library is not installed.
    """
    if short not in _BUILDERS:
        raise ValueError(f"unknown peer {short!r}; choose from {', '.join(PEERS)}")
    return _BUILDERS[short](device)


def available_peers() -> dict[str, str | None]:
    """Short name -> None if its library imports, else why not (no model is built)."""
    out: dict[str, str | None] = {}
    for short, mod in (("mask2former", "transformers"), ("sam", "transformers"), ("yolo", "ultralytics")):
        out[short] = None if importlib.util.find_spec(mod) is not None else f"{mod} is not installed"
    return out
