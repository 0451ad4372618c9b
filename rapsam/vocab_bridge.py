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
        return obj.float(), names, flags
    raise CheckpointError(
        f"cannot use classifier '{classifier}': give a tensor (K, P, D), a .safetensors classifier built with "
        "`rapsam vocab build`, or an official .pth classifier file"
    )
