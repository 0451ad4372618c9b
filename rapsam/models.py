"""Named RAP-SAM variants and ``build_model`` (SAM's ``build_sam`` / torchvision's ``get_model``).

Every variant is a function returning a ``ModelConfig``; ``build_model`` wires modules from a config in
one place (``_build``) and optionally loads weights:

* ``weights="rapsam_r50_12e.pth"``: the official mmengine checkpoint (keys mapped, read safely);
* ``weights="model.safetensors"``: a rapsam checkpoint (config, vocabulary and weights in one file);
* ``weights="demo"``: the small demo model bundled in the package (see README).

``classifier`` installs a vocabulary: a tensor (K, P, D), a path to a classifier file (rapsam
safetensors or an official ``.pth`` tensor), or a builtin vocabulary name resolved through
``rapsam.vocab``. ``backbone_weights`` loads ImageNet weights into the backbone only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .config import BackboneConfig, DecoderConfig, ModelConfig, NeckConfig, from_dict
from .modeling.adapters import ObjectAdapter, PromptAdapter
from .modeling.backbones.base import Backbone
from .modeling.classifier import TextClassifier
from .modeling.decoder import Decoder
from .modeling.neck import RapSamNeck
from .modeling.prompt_encoder import PromptEncoder
from .modeling.prompt_prior import PromptPrior
from .modeling.rapsam import RapSam
from .weights import (
    CheckpointError,
    is_official_state_dict,
    load_into,
    official_to_rapsam,
    read_rapsam,
    read_torch_checkpoint,
)


def rapsam_r50(**overrides) -> ModelConfig:
    """The released RAP-SAM model: ResNet-50 backbone (the official ``rap_sam_r50_12e_adaptor``)."""
    return dataclasses.replace(ModelConfig(name="rapsam_r50", backbone=BackboneConfig("resnet50")), **overrides)


def rapsam_r18(**overrides) -> ModelConfig:
    """Real-time variant: ResNet-18 backbone (the official fixtures' ``r18``)."""
    return dataclasses.replace(ModelConfig(name="rapsam_r18", backbone=BackboneConfig("resnet18")), **overrides)


def rapsam_stdc1(**overrides) -> ModelConfig:
    """Real-time variant: STDC1 (STDCNet813) backbone."""
    return dataclasses.replace(ModelConfig(name="rapsam_stdc1", backbone=BackboneConfig("stdc1", norm_eval=False)), **overrides)


def rapsam_seaformer(**overrides) -> ModelConfig:
    """Real-time variant: SeaFormer-Large backbone (stride 4-32 levels, see README)."""
    return dataclasses.replace(
        ModelConfig(name="rapsam_seaformer", backbone=BackboneConfig("seaformer_large", norm_eval=False)), **overrides
    )


def rapsam_tiny(**overrides) -> ModelConfig:
    """The small model bundled as the demo: SeaFormer-Small (stride 4-32 levels), C = 128, 50 queries,
    MiniLM text embeddings (D = 384), content prompt features, stage temperature 1 (100*cos)."""
    return dataclasses.replace(
        ModelConfig(
            name="rapsam_tiny",
            backbone=BackboneConfig("seaformer_small", norm_eval=False),
            neck=NeckConfig(agg_dim=64, hidden_dim=128),
            decoder=DecoderConfig(num_queries=50, num_stages=3, num_heads=8, ffn_dim=512, embed_dim=384,
                                  temperature=1.0, prompt_features=True),
            test_scale=(128, 128),
        ),
        **overrides,
    )


_MODELS: dict[str, Callable[..., ModelConfig]] = {
    "rapsam_r18": rapsam_r18,
    "rapsam_stdc1": rapsam_stdc1,
    "rapsam_seaformer": rapsam_seaformer,
    "rapsam_r50": rapsam_r50,
    "rapsam_tiny": rapsam_tiny,
}


def list_models() -> list[str]:
    """Names accepted by ``build_model``."""
    return list(_MODELS)


def get_config(name: str) -> ModelConfig:
    if name not in _MODELS:
        raise ValueError(f"unknown model '{name}'; choose one of {list_models()}")
    return _MODELS[name]()


def build_backbone(cfg: BackboneConfig) -> Backbone:
    name = cfg.name
    if name in ("resnet18", "resnet34", "resnet50", "resnet101"):
        from .modeling.backbones.resnet import ResNet

        return ResNet(int(name[len("resnet"):]), norm_eval=cfg.norm_eval)
    if name == "stdc1":
        from .modeling.backbones.stdc import stdc1

        return stdc1(norm_eval=cfg.norm_eval)
    if name in ("seaformer_tiny", "seaformer_small", "seaformer_base", "seaformer_large"):
        from .modeling.backbones import seaformer

        return getattr(seaformer, name)(norm_eval=cfg.norm_eval)
    if name == "stdc2":
        from .modeling.backbones.stdc import stdc2

        return stdc2(norm_eval=cfg.norm_eval)
    raise ValueError(
        f"unknown backbone '{name}'; choose resnet18, resnet50, stdc1, stdc2 or seaformer_tiny/small/base/large"
    )


def _build(cfg: ModelConfig) -> RapSam:
    backbone = build_backbone(cfg.backbone)
    c = cfg.neck.hidden_dim
    d = cfg.decoder
    model = RapSam(
        backbone=backbone,
        neck=RapSamNeck(backbone.channels, cfg.neck.agg_dim, c),
        prompt_encoder=PromptEncoder(c, content_features=d.prompt_features),
        decoder=Decoder(d.num_queries, d.num_stages, c, d.embed_dim, d.num_heads, d.ffn_dim, d.temperature),
        object_adapter=ObjectAdapter(c, d.embed_dim),
        prompt_adapter=PromptAdapter(c, d.num_heads),
        classifier=TextClassifier(d.embed_dim),
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        size_divisor=cfg.size_divisor,
        prompt_prior=PromptPrior(c, d.num_stages + 1) if d.prompt_prior else None,
    )
    model.config = cfg
    return model


def bundled_demo_path() -> Path:
    """Path of the demo model shipped in the package."""
    return Path(__file__).parent / "assets" / "demo_model.safetensors"


def build_model(
    name: str | ModelConfig | None = None,
    weights: str | os.PathLike | None = None,
    classifier: torch.Tensor | str | os.PathLike | None = None,
    *,
    backbone_weights: str | os.PathLike | None = None,
    class_names: list[str] | None = None,
    thing_flags: list[bool] | None = None,
    device: str | torch.device | None = None,
) -> RapSam:
    """Build a RAP-SAM model, optionally with weights and a vocabulary.

    Args:
        name: a variant name (``list_models()``) or a ``ModelConfig``; may be None when ``weights`` is a
            rapsam checkpoint (its config is used) or "demo".
        weights: official ``.pth`` / rapsam ``.safetensors`` path, or "demo".
        classifier: vocabulary: tensor (K, P, D), classifier file path, or builtin vocabulary name.
        backbone_weights: ImageNet weights for the backbone (torchvision / official STDC / SeaFormer files).
        class_names, thing_flags: names and thing/stuff flags for a tensor ``classifier``.
        device: where to put the model.

    Returns:
        The model in eval mode.

    Example::

        model = rapsam.build_model("rapsam_r50", weights="rapsam_r50_12e.pth", classifier="coco_panoptic.safetensors")
    """
    header = tensors = None
    if weights is not None and str(weights) == "demo":
        weights = bundled_demo_path()
        if not weights.exists():
            raise CheckpointError(f"the bundled demo model is missing from the installation ({weights})")
    if weights is not None and str(weights).endswith(".safetensors"):
        header, tensors = read_rapsam(weights)
        file_cfg = from_dict(ModelConfig, header["config"])
        if name is None:
            cfg = file_cfg
        else:
            cfg = name if isinstance(name, ModelConfig) else get_config(name)
            if cfg != file_cfg:
                raise CheckpointError(
                    f"{weights} holds a '{file_cfg.name}' model but '{cfg.name}' was requested; "
                    "omit the name to use the file's own config"
                )
    elif name is None:
        raise ValueError("give a model name (see rapsam.list_models()) or a rapsam .safetensors checkpoint")
    else:
        cfg = name if isinstance(name, ModelConfig) else get_config(name)
    model = _build(cfg)
    if backbone_weights is not None:
        model.backbone.load_pretrained(str(backbone_weights))
    if tensors is not None:
        emb = tensors.pop("classifier.embeddings", None)
        load_into(model, tensors, str(weights))
        if emb is not None:
            model.set_vocabulary(emb, header.get("class_names"), header.get("thing_flags"))
        model.text_encoder = header.get("text_encoder")
    elif weights is not None:
        sd = read_torch_checkpoint(weights)
        if is_official_state_dict(sd):
            sd, _ = official_to_rapsam(sd)
        elif not any(k.startswith("decoder.") for k in sd):
            raise CheckpointError(
                f"{weights} is not a RAP-SAM checkpoint (no 'panoptic_head.*' or 'decoder.*' keys; "
                f"first keys: {list(sd)[:3]}). For backbone-only ImageNet weights use backbone_weights=..."
            )
        load_into(model, sd, str(weights))
    if classifier is not None:
        from .vocab_bridge import resolve_classifier

        emb, names, flags = resolve_classifier(classifier, class_names, thing_flags, cfg.decoder.embed_dim)
        model.set_vocabulary(emb, names, flags)
    if device is not None:
        model.to(device)
    return model.eval()
