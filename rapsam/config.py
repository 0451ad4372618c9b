"""Model configuration: nested frozen dataclasses, the single schema (STYLE.md "Configs").

Named variants are functions in ``rapsam.models`` returning a filled ``ModelConfig``. Configs serialise
to plain dicts (saved inside every checkpoint rapsam writes) and load back strictly: an unknown key is
an error. ``apply_overrides(cfg, ["decoder.num_queries=50"])`` implements the CLI's ``--set``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone choice.

    Attributes:
        name: ``resnet18``, ``resnet50``, ``stdc1`` or ``seaformer_large``.
        norm_eval: keep backbone BatchNorm statistics frozen while training (official: True).
    """

    name: str = "resnet50"
    norm_eval: bool = True


@dataclass(frozen=True)
class NeckConfig:
    """YOSO neck widths: ``agg_dim`` for the fused map, ``hidden_dim`` = C of F."""

    agg_dim: int = 128
    hidden_dim: int = 256


@dataclass(frozen=True)
class DecoderConfig:
    """Decoder and heads.

    Attributes:
        num_queries: learned object queries.
        num_stages: decoder stages.
        num_heads: attention heads (self-attention and the prompt adapter).
        ffn_dim: FFN hidden width.
        temperature: stage class logits are cosine * 100 / temperature.
        embed_dim: text-embedding width D of the classifier (768 = CLIP ConvNeXt-L-D-320).
        prompt_features: add the features of F under each click / box centre to its prompt query
            (content-based prompts, the official code's "FIXME ... pool content features as label
            embedding"); off for the official model, on for rapsam_tiny.
        prompt_prior: experimental click-distance prior on prompt masks (``rapsam.modeling.prompt_prior``);
            off for the official model, on for the demo model.
    """

    num_queries: int = 100
    num_stages: int = 3
    num_heads: int = 8
    ffn_dim: int = 2048
    temperature: float = 0.1
    embed_dim: int = 768
    prompt_features: bool = False
    prompt_prior: bool = False


@dataclass(frozen=True)
class VideoConfig:
    """Video inference defaults a model carries (``VideoPredictor`` reads them; its arguments override).

    Attributes:
        test_scale: (long side, short side) resize for video frames; None: the model's ``test_scale``.
        largest_component: each tracked instance keeps its most confident connected region per frame
            (``rapsam.predictor.postprocess.largest_component``); off in the official protocol.
        track_nms_iou: official mode: a (query, class) track whose video-level mask IoU with a
            better-scored track of the same class exceeds this is dropped as a duplicate; None: off
            (the official protocol).
    """

    test_scale: tuple[int, int] | None = None
    largest_component: bool = False
    track_nms_iou: float | None = None

    def __post_init__(self) -> None:
        if self.test_scale is not None and (len(self.test_scale) != 2 or min(self.test_scale) <= 0):
            raise ValueError(f"video.test_scale must be (long, short) positive sizes or null, got {self.test_scale}")
        if self.track_nms_iou is not None and not 0.0 <= self.track_nms_iou <= 1.0:
            raise ValueError(f"video.track_nms_iou must lie in [0, 1] or be null, got {self.track_nms_iou}")


@dataclass(frozen=True)
class ModelConfig:
    """A full RAP-SAM variant.

    Attributes:
        name: variant name (``rapsam_r50`` ...).
        backbone, neck, decoder: part configs.
        pixel_mean, pixel_std: RGB normalisation on the 0-255 scale (ImageNet).
        size_divisor: inputs are padded to a multiple of it.
        test_scale: (long side, short side) the image is resized to fit at test time (1333, 800).
        object_mask_thr: panoptic post-processing keeps a query whose class score exceeds this (official
            0.8; a model trained with other calibration stores its own, chosen on training images).
        video: video inference defaults (:class:`VideoConfig`; the official protocol by default).
    """

    name: str = "rapsam_r50"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisor: int = 32
    test_scale: tuple[int, int] = (1333, 800)
    object_mask_thr: float = 0.8
    video: VideoConfig = field(default_factory=VideoConfig)


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict, path: str = "") -> T:
    """Strictly build dataclass ``cls`` from ``data``: unknown keys and wrong types are errors."""
    if not isinstance(data, dict):
        raise ValueError(f"config{' ' + path if path else ''} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in '{path}'" if path else ""
        raise ValueError(f"unknown config key(s){where}: {unknown}; valid keys: {sorted(names)}")
    kwargs = {}
    for k, v in data.items():
        kwargs[k] = _coerce(hints[k], v, f"{path}.{k}" if path else k)
    return cls(**kwargs)


def _coerce(tp: Any, v: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, path)
            except ValueError:
                continue
        raise ValueError(f"config key '{path}': cannot interpret {v!r} as {tp}")
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"config key '{path}' must be a list, got {v!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], x, path) for x in v)
        if len(args) != len(v):
            raise ValueError(f"config key '{path}' needs {len(args)} values, got {len(v)}")
        return tuple(_coerce(a, x, path) for a, x in zip(args, v))
    if origin is list:
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"config key '{path}' must be a list, got {v!r}")
        (a,) = typing.get_args(tp)
        return [_coerce(a, x, path) for x in v]
    if origin is dict:
        if not isinstance(v, dict):
            raise ValueError(f"config key '{path}' must be a mapping, got {v!r}")
        return dict(v)
    if tp is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
            return v.lower() in ("true", "1", "yes")
        raise ValueError(f"config key '{path}' must be true/false, got {v!r}")
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, str) and not v.lstrip("-").isdigit()):
            raise ValueError(f"config key '{path}' must be an integer, got {v!r}")
        return int(v)
    if tp is float:
        try:
            if isinstance(v, bool):
                raise TypeError
            return float(v)
        except (TypeError, ValueError):
            raise ValueError(f"config key '{path}' must be a number, got {v!r}") from None
    if tp is str:
        if not isinstance(v, str):
            raise ValueError(f"config key '{path}' must be a string, got {v!r}")
        return v
    if tp is Any:
        return v
    return v


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Apply ``key.sub=value`` overrides (values parsed as JSON when possible, else strings)."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like key.subkey=value")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ValueError(f"unknown config key '{key}' (no section '{p}')")
            node = node[p]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ValueError(f"unknown config key '{key}'")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


# ============================================================================ training
@dataclass(frozen=True)
class DataConfig:
    """Training / validation data, given by explicit paths as the publishers lay files out.

    Attributes:
        panoptic_ann, panoptic_images, panoptic_masks: COCO panoptic JSON, image folder, PNG folder
            (the ``panoptic`` and ``prompt`` sources).
        video_ann, video_dir: YouTube-VIS JSON and its ``JPEGImages`` folder (the ``video`` source).
        val_*: the same for evaluation during training (optional).
        mix: sampling probability of each source per iteration (panoptic, video, prompt); the
            official mixture is about 0.4 / 0.2 / 0.4.
        crop: training crop (h, w); every batch is padded to it (official 736 x 1280).
        ratio_range: resize ratio of the crop size for panoptic / video (official 0.8-2.0).
        prompt_ratio_range: the same for prompt images (official 0.1-2.0, LSJ-like).
        clip_interval: frame gap of the 2-frame video clips (official 2).
        num_prompts, max_clicks, box_prob, extra_pos_prob, neg_prob: prompt sampling (see
            ``rapsam.training.data.PromptSampling``); official 30 / 1 / 0 / 0 / 0.
        min_mask_area: prompt segments smaller than this (pixels, after augmentation) are dropped.
        workers: DataLoader worker processes.
    """

    panoptic_ann: str = ""
    panoptic_images: str = ""
    panoptic_masks: str = ""
    video_ann: str = ""
    video_dir: str = ""
    val_panoptic_ann: str = ""
    val_panoptic_images: str = ""
    val_panoptic_masks: str = ""
    val_video_ann: str = ""
    val_video_dir: str = ""
    mix: tuple[float, float, float] = (0.4, 0.2, 0.4)
    crop: tuple[int, int] = (736, 1280)
    ratio_range: tuple[float, float] = (0.8, 2.0)
    prompt_ratio_range: tuple[float, float] = (0.1, 2.0)
    clip_interval: int = 2
    num_prompts: int = 30
    max_clicks: int = 1
    box_prob: float = 0.0
    extra_pos_prob: float = 0.0
    neg_prob: float = 0.0
    min_mask_area: int = 32
    workers: int = 2


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and the step schedule of the official ``schedule_12e``.

    Attributes:
        lr, weight_decay, betas, eps: AdamW (norm layers get no weight decay).
        backbone_lr_mult: backbone learning-rate multiplier (0.1).
        grad_clip: max L2 norm of the gradients (official 0.01); 0 disables.
        warmup_iters, warmup_factor: linear warm-up from ``warmup_factor * lr``.
        milestones: iterations where the lr is multiplied by ``gamma``.
    """

    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    backbone_lr_mult: float = 0.1
    grad_clip: float = 0.01
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
        name: run name.
        model: the network.
        data, optim: data and optimiser.
        iterations: total optimiser steps.
        batch_size: items per process per step.
        grad_accum: micro-batches accumulated per step.
        seed: everything random derives from it.
        amp: "none", "bf16" or "fp16" (autocast on CUDA; fp16 uses a GradScaler).
        vocabulary: training classes: a builtin vocabulary name, a class-list file, or "dataset"
            (the class names of the panoptic annotation file).
        classifier: a classifier file for ``vocabulary`` (official CLIP files); empty = build it with
            ``text_encoder``.
        text_encoder: encoder that embeds the class names (``rapsam.vocab.make_encoder`` name).
        backbone_weights: ImageNet weights for the backbone (local file), or empty.
        num_points: points per mask for matching and losses (12,544); ``dense_loss`` uses every
            logit pixel instead (deterministic; small crops only).
        sampled_dcn: run the neck's DCNv2 through ``deform_conv3x3_sampled`` (the same function as
            torchvision's kernel, differentiable through ``conv2d`` + ``grid_sample``; ~13 % faster
            training steps on CPU). Not saved with the model.
        freeze_bn: keep every BatchNorm in eval mode (statistics frozen).
        checkpoint_every, eval_every, log_every: intervals in iterations (0 = never; checkpoints are
            also written at the end and on interruption).
    """

    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    iterations: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    seed: int = 0
    amp: str = "none"
    vocabulary: str = "dataset"
    classifier: str = ""
    text_encoder: str = "minilm"
    backbone_weights: str = ""
    num_points: int = 12544
    dense_loss: bool = False
    sampled_dcn: bool = False
    freeze_bn: bool = False
    checkpoint_every: int = 500
    eval_every: int = 0
    log_every: int = 10
