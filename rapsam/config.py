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
    """

    num_queries: int = 100
    num_stages: int = 3
    num_heads: int = 8
    ffn_dim: int = 2048
    temperature: float = 0.1
    embed_dim: int = 768


@dataclass(frozen=True)
class ModelConfig:
    """A full RAP-SAM variant.

    Attributes:
        name: variant name (``rapsam_r50`` ...).
        backbone, neck, decoder: part configs.
        pixel_mean, pixel_std: RGB normalisation on the 0-255 scale (ImageNet).
        size_divisor: inputs are padded to a multiple of it.
        test_scale: (long side, short side) the image is resized to fit at test time (1333, 800).
    """

    name: str = "rapsam_r50"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisor: int = 32
    test_scale: tuple[int, int] = (1333, 800)


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
