"""Shared predictor plumbing: input conversion, the official pre-processing, vocabulary swaps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modeling.rapsam import RapSam
from ..runtime.ort import OnnxRapSam
from .transforms import PreparedImage, prepare_image


class BasePredictor:
    """Holds the model, its device and the test-time resize.

    Args:
        model: a ``RapSam``, or a ``rapsam.runtime.OnnxRapSam`` (an ONNX export run by onnxruntime:
            ``PanopticPredictor(OnnxRapSam("export_dir"))``; tensors then stay on the CPU).
        image_scale: (long, short) resize target, "model" for the model config's ``test_scale``,
            or None to keep the input size.
        device: run on this device (the model is moved there).
    """

    def __init__(self, model: RapSam | OnnxRapSam, *, image_scale: tuple[int, int] | None | str = "model", device: str | torch.device | None = None) -> None:
        if not isinstance(model, (RapSam, OnnxRapSam)):
            raise ValueError(
                f"predictors wrap a rapsam.RapSam model or a rapsam.runtime.OnnxRapSam, got {type(model).__name__}; "
                "use rapsam.build_model(...) or OnnxRapSam(onnx_dir)"
            )
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        cfg = getattr(model, "config", None)
        if image_scale == "model":
            image_scale = self._model_scale(cfg)
        if image_scale is not None and (len(image_scale) != 2 or min(image_scale) <= 0):
            raise ValueError(f"image_scale must be (long, short) positive sizes or None, got {image_scale}")
        self.image_scale = image_scale

    @staticmethod
    def _model_scale(cfg: Any) -> tuple[int, int]:
        """The resize ``image_scale="model"`` means: the config's ``test_scale``."""
        return tuple(cfg.test_scale) if cfg is not None else (1333, 800)

    @property
    def device(self) -> torch.device:
        if not isinstance(self.model, torch.nn.Module):  # OnnxRapSam: CPU tensors in and out
            return torch.device("cpu")
        return next(self.model.parameters()).device

    def _to_rgb(self, image: Any) -> np.ndarray:
        from ..io.image import as_rgb_array, read_image

        if isinstance(image, (str, os.PathLike)):
            return read_image(Path(image))
        return as_rgb_array(image)

    def prepare(self, rgb: np.ndarray) -> PreparedImage:
        """(H, W, 3) uint8 RGB -> normalised, resized, padded batch of one on the model's device."""
        return self._prepare_at(rgb, self.image_scale)

    def _prepare_at(self, rgb: np.ndarray, image_scale: tuple[int, int] | None) -> PreparedImage:
        return prepare_image(
            rgb, image_scale, self.model.pixel_mean.flatten(), self.model.pixel_std.flatten(),
            self.model.size_divisor, self.device,
        )

    def _require_vocabulary(self) -> None:
        if not self.model.classifier.is_set:
            raise RuntimeError(
                "the model has no vocabulary (class-name embeddings): build it with "
                "rapsam.build_model(..., classifier=PATH) or call predictor.set_vocabulary(...)"
            )

    def set_vocabulary(self, vocabulary: Any, encoder: Any = None) -> None:
        """Swap the classes at run time, without reloading the model.

        Args:
            vocabulary: a classifier file (.safetensors from ``rapsam vocab build`` / official .pth),
                a (K, P, D) tensor, a builtin vocabulary name, a class-list file (.json / .txt) or a
                list of class names (these last three need a text ``encoder``; by default the one
                recorded with the model).
            encoder: text encoder for names (see ``rapsam.vocab``).
        """
        from ..vocab_bridge import vocabulary_for_model

        emb, names, flags = vocabulary_for_model(self.model, vocabulary, encoder)
        self.model.set_vocabulary(emb.to(self.device), names, flags)
