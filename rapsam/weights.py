"""Reading and writing weights: the official mmengine ``.pth`` and rapsam's safetensors format.

* ``read_torch_checkpoint(path)`` loads a PyTorch file **without executing code**: first with
  ``torch.load(weights_only=True)``; if the file carries other objects (mmengine's ``meta`` /
  ``message_hub``), a restricted unpickler rebuilds tensors and plain containers and turns every other
  class into an inert placeholder.
* ``official_to_rapsam(state_dict)`` maps the official key names (``panoptic_head.mask_heads.0.s_atten``
  ...) onto ours; see ``design/official-rapsam.md`` section 7.
* rapsam checkpoints are safetensors files whose metadata holds a JSON header with the model config,
  class names, thing flags and normalisation; the class-embedding table is stored as
  ``classifier.embeddings`` (K, P, D).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
HEADER_KEY = "rapsam"


class CheckpointError(ValueError):
    """A weights file that cannot be used, with the reason and the fix in the message."""


# ----------------------------------------------------------------------------- safe torch.load
class _Placeholder:
    """Stands in for any non-allowlisted class found in a pickle; never runs code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict-like reduce
        pass

    def append(self, item: Any) -> None:  # list-like reduce
        pass

    def extend(self, items: Any) -> None:
        pass


def _placeholder_factory(module: str, name: str) -> type:
    return type(f"Placeholder[{module}.{name}]", (_Placeholder,), {})


_ALLOWED_MODULES = ("torch", "collections", "numpy.core.multiarray", "numpy", "_codecs", "builtins")
_ALLOWED_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "bytearray", "int", "float", "complex", "str", "bool", "slice", "range"}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name not in _ALLOWED_BUILTINS:
            return _placeholder_factory(module, name)
        if module.startswith("torch") and (
            name.startswith("_rebuild")
            or name.endswith("Storage")
            or name in ("Size", "device", "dtype", "float32", "float16", "bfloat16", "int64")
            or module == "torch._utils"
            or module == "torch"
            and hasattr(torch, name)
            and isinstance(getattr(torch, name), torch.dtype)
        ):
            return super().find_class(module, name)
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            return super().find_class(module, name)
        if module == "_codecs" and name == "encode":
            return super().find_class(module, name)
        if module.startswith("numpy") and name in ("_reconstruct", "ndarray", "dtype", "scalar"):
            return super().find_class(module, name)
        return _placeholder_factory(module, name)


class _RestrictedPickleModule:
    Unpickler = _RestrictedUnpickler
    load = pickle.load
    __name__ = "rapsam_restricted_pickle"


def read_torch_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a PyTorch checkpoint and return its flat tensor state dict.

    Accepts a bare state dict or one nested under ``state_dict`` / ``model`` / ``state_dict_ema``.

    Raises:
        CheckpointError: missing, empty, truncated or non-PyTorch file, or no tensors inside.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"weights file not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory; pass the checkpoint file itself")
    if p.stat().st_size == 0:
        raise CheckpointError(f"weights file {p} is empty (0 bytes): the download or copy did not finish")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - classify below
        msg = str(first)
        if "Unsupported global" in msg or "Weights only load failed" in msg:
            try:
                obj = torch.load(p, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
            except Exception as second:  # noqa: BLE001
                raise CheckpointError(f"cannot read {p} as a PyTorch checkpoint ({type(second).__name__}: {second})") from None
        else:
            raise CheckpointError(
                f"cannot read {p} as a PyTorch checkpoint: the file is truncated, corrupt or not a torch.save "
                f"file ({type(first).__name__}: {msg.splitlines()[0] if msg else ''})"
            ) from None
    sd = _find_state_dict(obj)
    if sd is None:
        raise CheckpointError(
            f"{p} holds no state dict (found {type(obj).__name__}); expected tensors at the top level or under "
            "'state_dict' / 'model'"
        )
    return sd


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict):
        for key in ("state_dict_ema", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                inner = _find_state_dict(obj[key])
                if inner:
                    return inner
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    return None


def strip_prefixes(sd: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Remove any of ``prefixes`` from the start of every key (repeatedly)."""
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for pre in prefixes:
                if k.startswith(pre):
                    k = k[len(pre):]
                    changed = True
        out[k] = v
    return out


# ----------------------------------------------------------------------------- official names
_STAGE_RENAMES = [
    (r"\.s_atten_norm\.", ".self_attn_norm."),
    (r"\.s_atten\.", ".self_attn."),
    (r"\.ffn\.layers\.0\.0\.", ".ffn.fc1."),
    (r"\.ffn\.layers\.1\.", ".ffn.fc2."),
]

_PREFIX_RENAMES = [
    ("neck.deconv.", "neck.fpn."),
    ("panoptic_head.kernels.", "decoder.query_embed."),
    ("panoptic_head.mask_tokens.", "prompt_encoder.mask_token."),
    ("panoptic_head.pb_embedding.", "prompt_encoder.label_embed."),
    ("panoptic_head.pos_linear.", "prompt_encoder.pos_proj."),
    ("panoptic_head.mask_heads.", "decoder.stages."),
    ("panoptic_head.panoptic_attn.", "object_adapter.kernel_update."),
    ("panoptic_head.panoptic_cls.0.", "object_adapter.cls_proj."),
    ("panoptic_head.conv_cls.0.", "object_adapter.cls_proj."),  # mmdet legacy-key hook rename
    ("panoptic_head.prompt_attn.attn.", "prompt_adapter.cross_attn."),
    ("panoptic_head.prompt_norm.", "prompt_adapter.norm."),
    ("panoptic_head.prompt_iou.", "prompt_adapter.iou."),
]

# Official buffers/extras that are not parameters of ours.
_OFFICIAL_IGNORED = re.compile(r"(^data_preprocessor\.|\.fc_cls$|\.logit_scale$|^panoptic_fusion_head\.)")


def is_official_state_dict(sd: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("panoptic_head.") for k in sd)


def official_to_rapsam(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map official RAP-SAM keys to rapsam keys. Returns (mapped dict, ignored official keys)."""
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for k, v in sd.items():
        if _OFFICIAL_IGNORED.search(k):
            ignored.append(k)
            continue
        new = k
        for old, rep in _PREFIX_RENAMES:
            if new.startswith(old):
                new = rep + new[len(old):]
                break
        if new.startswith("decoder.stages."):
            for pat, rep in _STAGE_RENAMES:
                new = re.sub(pat, rep, new)
        if new.startswith("neck.fpn.") and new.endswith(".dcn.weight"):
            new = new[: -len(".dcn.weight")] + ".dcn_weight"
        out[new] = v
    return out, ignored


def rapsam_to_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``official_to_rapsam`` (used to test the mapping and to export)."""
    inv_prefix = [(rep, old) for old, rep in _PREFIX_RENAMES if not old.startswith("panoptic_head.conv_cls")]
    out = {}
    for k, v in sd.items():
        if k.startswith("classifier."):
            continue
        new = k
        if new.startswith("neck.fpn.") and new.endswith(".dcn_weight"):
            new = new[: -len(".dcn_weight")] + ".dcn.weight"
        if new.startswith("decoder.stages."):
            for pat, rep in [(r"\.self_attn_norm\.", ".s_atten_norm."), (r"\.self_attn\.", ".s_atten."),
                             (r"\.ffn\.fc1\.", ".ffn.layers.0.0."), (r"\.ffn\.fc2\.", ".ffn.layers.1.")]:
                new = re.sub(pat, rep, new)
        for ours, old in inv_prefix:
            if new.startswith(ours):
                new = old + new[len(ours):]
                break
        out[new] = v
    return out


def load_into(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strictly load ``sd`` into ``model`` with one clear error listing missing/unexpected/mismatched keys."""
    own = model.state_dict()
    sd = {  # scalar buffers (num_batches_tracked) are sometimes saved as (1,)
        k: (v.reshape(own[k].shape) if k in own and v.numel() == 1 and own[k].numel() == 1 else v)
        for k, v in sd.items()
    }
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = [k for k in own if k in sd and tuple(own[k].shape) != tuple(sd[k].shape)]
    if missing or unexpected or mismatched:
        parts = [f"{source} does not match this model ({getattr(getattr(model, 'config', None), 'name', type(model).__name__)}):"]
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:6]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:6]})")
        if mismatched:
            k = mismatched[0]
            parts.append(
                f"{len(mismatched)} shape mismatches (e.g. {k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)})"
            )
        parts.append("Check that the weights are for this variant (e.g. rapsam_r50 for rapsam_r50_12e.pth).")
        raise CheckpointError(" ".join(parts))
    model.load_state_dict(sd, strict=True)


# ----------------------------------------------------------------------------- safetensors
def save_rapsam(model: torch.nn.Module, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``model`` (a RapSam) as safetensors + JSON header, atomically."""
    from safetensors.torch import save_file

    from .config import to_dict

    if getattr(model, "config", None) is None:
        raise ValueError("the model has no config attached; build it with rapsam.build_model")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.classifier.is_set:
        tensors["classifier.embeddings"] = model.classifier.embeddings().cpu().contiguous()
    header = {
        "format_version": FORMAT_VERSION,
        "config": to_dict(model.config),
        "class_names": list(model.class_names),
        "thing_flags": list(model.thing_flags),
        "text_encoder": getattr(model, "text_encoder", None),
        "pixel_mean": list(model.config.pixel_mean),
        "pixel_std": list(model.config.pixel_std),
    }
    if extra:
        header.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={HEADER_KEY: json.dumps(header)})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_rapsam(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a rapsam safetensors file -> (header dict, tensors)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"weights file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"cannot read {p} as safetensors (truncated or corrupt?): {e}") from None
    if HEADER_KEY not in meta:
        raise CheckpointError(
            f"{p} is a safetensors file but not a rapsam checkpoint (no '{HEADER_KEY}' header); "
            "convert official weights with `rapsam convert`"
        )
    try:
        header = json.loads(meta[HEADER_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p}: corrupt rapsam header ({e})") from None
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{p} was written by a newer rapsam (format {header['format_version']}); upgrade rapsam")
    return header, tensors
