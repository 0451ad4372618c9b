"""Resolve the ``classifier=`` argument of ``build_model`` into (embeddings, names, thing flags).

Kept apart from ``rapsam.vocab`` so the model builder imports the vocabulary code only when needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .weights import CheckpointError


def resolve_classifier(
    classifier: torch.Tensor | str | os.PathLike,
    names: list[str] | None,
    flags: list[bool] | None,
    embed_dim: int,
) -> tuple[torch.Tensor, list[str] | None, list[bool] | None]:
    """Tensor / file path / builtin name -> ((K, P, D) tensor, names, thing flags)."""
    if isinstance(classifier, torch.Tensor):
        return classifier, names, flags
    path = Path(classifier)
    if path.suffix == ".safetensors":
        from .vocab.classifier import load_classifier

        emb, vocab, _ = load_classifier(path, expected_dim=embed_dim)
        return emb, names or list(vocab.names), flags or list(vocab.is_thing)
    if path.suffix in (".pth", ".pt"):
        if not path.exists():
            raise CheckpointError(f"classifier file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"cannot read classifier {path}: {e}") from None
        if not isinstance(obj, torch.Tensor) or obj.dim() != 3:
            got = tuple(obj.shape) if isinstance(obj, torch.Tensor) else type(obj).__name__
            raise CheckpointError(f"{path} is not an official classifier file: expected a tensor (K, P, D), got {got}")
        if names is None:
            vocab = builtin_for_size(obj.shape[0])
            if vocab is not None:
                names, flags = list(vocab.names), list(vocab.is_thing)
        return obj.float(), names, flags
    raise CheckpointError(
        f"cannot use classifier '{classifier}': give a tensor (K, P, D), a .safetensors classifier built with "
        "`rapsam vocab build`, or an official .pth classifier file"
    )


def builtin_for_size(k: int):
    """The builtin vocabulary an official classifier of ``k`` classes was built for, if unique."""
    from .vocab import Vocabulary

    by_size = {133: "coco_panoptic", 155: "coco_ytvis2019_merged", 40: "ytvis_2019"}
    return Vocabulary.builtin(by_size[k]) if k in by_size else None


def vocabulary_for_model(model, vocabulary, encoder=None) -> tuple[torch.Tensor, list[str] | None, list[bool] | None]:
    """Anything naming a vocabulary -> (K, P, D) embeddings, names, thing flags, for ``model``.

    Classifier files and tensors are used as they are. Class names (a list, a builtin vocabulary
    name, a .json/.txt class list) are encoded with ``encoder`` or, by default, the text encoder
    recorded with the model (``model.text_encoder``).
    """
    from .vocab import Vocabulary, build_classifier, make_encoder

    dim = model.classifier.embed_dim
    if isinstance(vocabulary, torch.Tensor):
        return vocabulary, None, None
    if isinstance(vocabulary, (str, os.PathLike)) and Path(vocabulary).suffix in (".safetensors", ".pth", ".pt"):
        return resolve_classifier(vocabulary, None, None, dim)
    if isinstance(vocabulary, Vocabulary):
        vocab = vocabulary
    elif isinstance(vocabulary, (list, tuple)):
        if not vocabulary or not all(isinstance(n, str) for n in vocabulary):
            raise ValueError("a vocabulary given as a list must be a non-empty list of class-name strings")
        vocab = Vocabulary.from_names(list(vocabulary))
    elif isinstance(vocabulary, (str, os.PathLike)):
        vocab = Vocabulary.load(vocabulary)
    else:
        raise ValueError(
            f"cannot use {type(vocabulary).__name__} as a vocabulary: give class names, a vocabulary "
            "name/file, a classifier file or a (K, P, D) tensor"
        )
    if encoder is None:
        enc_name = getattr(model, "text_encoder", None)
        if not enc_name:
            raise ValueError(
                "this model does not record which text encoder its classifier was built with; pass "
                "encoder=rapsam.vocab.make_encoder('clip', weights=...) (official weights) or a classifier file"
            )
        encoder = _cached_encoder(enc_name)
    emb = build_classifier(vocab, encoder)
    if emb.shape[-1] != dim:
        raise ValueError(
            f"the text encoder gives {emb.shape[-1]}-d embeddings but the model expects {dim}: "
            "use the encoder the model was trained with"
        )
    return emb, list(vocab.names), list(vocab.is_thing)


_ENCODERS: dict[str, object] = {}


def _cached_encoder(name: str):
    from .vocab import make_encoder

    if name not in _ENCODERS:
        _ENCODERS[name] = make_encoder(name)
    return _ENCODERS[name]
