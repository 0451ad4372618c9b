"""``OnnxRapSam``: a ``rapsam export onnx`` directory run by onnxruntime behind ``RapSam``'s interface.

The predictors call only ``model.extract_features(images)``, ``model.decode(F, prompts, with_objects)``
(or ``model(images)``) and read a few attributes (``pixel_mean`` / ``pixel_std``, ``size_divisor``,
``config``, ``classifier``, ``class_names``, ``thing_flags``, ``set_vocabulary``). ``OnnxRapSam``
provides exactly those, so ``PanopticPredictor(OnnxRapSam(dir))`` and
``InteractivePredictor(OnnxRapSam(dir))`` run without the torch model (STYLE.md convention 11; the
three-graph split follows SAM's ``SamOnnxModel``: the encoder runs once per image, the prompt decoder
once per set of clicks).

Differences from the torch model (documented, checked at the boundary):

* ``RapSamOutput.object_outputs`` / ``prompt_outputs`` hold only the final output (the object or
  prompt adapter's), not the three decoder-stage outputs (training-only); ``object_embed`` /
  ``prompt_embed`` are None.
* Single images only: ``num_frames > 1`` (video clips) and ``prompt_queries`` (video tracking) raise a
  ``ValueError`` naming the torch model as the way to run them.
* Tensors in and out are on the CPU; execution providers (CPU by default) are chosen with
  ``providers=``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig, from_dict
from ..modeling.classifier import TextClassifier
from ..modeling.decoder import DecoderOutput
from ..modeling.rapsam import Prompts, RapSamOutput, check_images
from .onnx_spec import (
    GRAPH_IO,
    GRAPHS,
    IMAGE_ENCODER,
    ONNX_EXTRA_HINT,
    PANOPTIC_DECODER,
    PROMPT_DECODER,
    read_sidecar,
)


def import_onnxruntime() -> Any:
    """``import onnxruntime`` with an install hint instead of a bare ``ModuleNotFoundError``."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError(
            f"the onnxruntime backend needs the onnxruntime package: {ONNX_EXTRA_HINT}"
        ) from None
    return onnxruntime


class OnnxRapSam:
    """RAP-SAM exported to ONNX, executed by onnxruntime, with ``RapSam``'s inference interface.

    Args:
        onnx_dir: a directory written by ``rapsam export onnx`` / ``rapsam.export.export_onnx``.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        num_threads: intra-op threads of each session (default: onnxruntime's, one per core).
        session_options: an ``onnxruntime.SessionOptions`` to start from (e.g. with profiling on);
            ``num_threads`` is applied on top of it.

    Raises:
        FileNotFoundError: the directory, its ``rapsam_onnx.json`` or a graph file is missing.
        ValueError: the sidecar is corrupt or from an incompatible rapsam.
        RuntimeError: onnxruntime is not installed (``pip install rapsam[onnx]``).

    Example::

        model = OnnxRapSam("rapsam_onnx/")
        pan = rapsam.predictor.PanopticPredictor(model)("street.jpg")
    """

    backend = "onnxruntime"

    def __init__(
        self,
        onnx_dir: str | os.PathLike,
        *,
        providers: list[str] | None = None,
        num_threads: int | None = None,
        session_options: Any = None,
    ) -> None:
        meta = read_sidecar(onnx_dir)
        self._ort = import_onnxruntime()
        self.onnx_dir = Path(onnx_dir)
        self.meta = meta
        graphs = meta["graphs"]
        self._paths: dict[str, Path] = {}
        for name in GRAPHS:
            entry = graphs.get(name) if isinstance(graphs, dict) else None
            if not isinstance(entry, dict) or "file" not in entry:
                raise ValueError(
                    f"{self.onnx_dir}/rapsam_onnx.json lists no '{name}' graph; re-run `rapsam export onnx`"
                )
            if (tuple(entry.get("inputs", ())), tuple(entry.get("outputs", ()))) != GRAPH_IO[name]:
                raise ValueError(
                    f"the '{name}' graph in {self.onnx_dir} has inputs {entry.get('inputs')} / outputs "
                    f"{entry.get('outputs')}, not the {GRAPH_IO[name]} this rapsam expects; re-export it"
                )
            path = self.onnx_dir / entry["file"]
            if not path.exists():
                raise FileNotFoundError(
                    f"graph file {path} is missing from the export; re-run `rapsam export onnx --out {self.onnx_dir}`"
                )
            self._paths[name] = path
        self.config: ModelConfig = from_dict(ModelConfig, meta["config"])
        self.pixel_mean = torch.tensor(meta["pixel_mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.pixel_std = torch.tensor(meta["pixel_std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.size_divisor = int(meta["size_divisor"])
        self.feature_stride = int(meta.get("feature_stride", 4))
        self.text_encoder: str | None = meta.get("text_encoder")
        self.classifier = TextClassifier(self.config.decoder.embed_dim)
        self.class_names: list[str] = []
        self.thing_flags: list[bool] = []
        vocab = meta.get("vocabulary")
        if vocab:
            vpath = self.onnx_dir / vocab
            if not vpath.exists():
                raise FileNotFoundError(
                    f"vocabulary file {vpath} is missing from the export; re-run `rapsam export onnx`"
                )
            emb = torch.from_numpy(np.load(vpath, allow_pickle=False))
            self.set_vocabulary(emb, meta.get("class_names"), meta.get("thing_flags"))
        self.providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        self.num_threads = num_threads
        self.session_options = session_options
        self._sessions: dict[str, Any] = {}

    # ------------------------------------------------------------------ RapSam-like attributes
    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    def eval(self) -> OnnxRapSam:
        return self

    def to(self, device: str | torch.device) -> OnnxRapSam:
        if torch.device(device).type != "cpu":
            raise ValueError(
                f"OnnxRapSam takes and returns CPU tensors (asked for {device}); choose onnxruntime execution "
                "providers with OnnxRapSam(dir, providers=['CUDAExecutionProvider', 'CPUExecutionProvider'])"
            )
        return self

    def set_vocabulary(
        self,
        embeddings: torch.Tensor,
        names: list[str] | None = None,
        is_thing: list[bool] | None = None,
    ) -> None:
        """Swap the class vocabulary (no re-export: the embeddings are a graph input). (K, P, D) unit rows."""
        k = (
            embeddings.shape[0]
            if isinstance(embeddings, torch.Tensor) and embeddings.dim() >= 2
            else None
        )
        if names is not None and k is not None and len(names) != k:
            raise ValueError(f"{len(names)} class names given for a classifier with {k} classes")
        if is_thing is not None and k is not None and len(is_thing) != k:
            raise ValueError(f"{len(is_thing)} thing flags given for a classifier with {k} classes")
        self.classifier.set_embeddings(
            embeddings.cpu() if isinstance(embeddings, torch.Tensor) else embeddings
        )
        k = self.classifier.num_classes
        self.class_names = list(names) if names is not None else [f"class_{i}" for i in range(k)]
        self.thing_flags = [bool(t) for t in is_thing] if is_thing is not None else [True] * k

    # ------------------------------------------------------------------ sessions
    def session(self, name: str) -> Any:
        """The onnxruntime ``InferenceSession`` of graph ``name`` (created on first use)."""
        if name not in self._sessions:
            ort = self._ort
            so = self.session_options if self.session_options is not None else ort.SessionOptions()
            if self.num_threads is not None:
                so.intra_op_num_threads = int(self.num_threads)
                so.inter_op_num_threads = 1
            try:
                self._sessions[name] = ort.InferenceSession(
                    str(self._paths[name]), so, providers=self.providers
                )
            except Exception as e:  # noqa: BLE001 - classified below
                msg = str(e)
                if "DeformConv" in msg:
                    raise RuntimeError(
                        f"onnxruntime {ort.__version__} cannot run the ONNX DeformConv op of {self._paths[name].name} "
                        "(its CPU kernel arrived in onnxruntime 1.25): upgrade onnxruntime, or re-export with "
                        "`rapsam export onnx --deform-conv decomposed`"
                    ) from None
                raise RuntimeError(
                    f"onnxruntime cannot load {self._paths[name]}: {msg.splitlines()[0] if msg else e}"
                ) from None
        return self._sessions[name]

    def _run(self, name: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session(name).run(list(GRAPH_IO[name][1]), feed)

    def _class_embeddings(self) -> np.ndarray:
        if self.classifier.is_set:
            return self.classifier.embeddings().numpy().astype(np.float32, copy=False)  # (K, P, D)
        return np.zeros((1, 1, self.classifier.embed_dim), dtype=np.float32)

    # ------------------------------------------------------------------ encoder
    def _check_images(self, images: torch.Tensor) -> None:
        check_images(images, self.size_divisor)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float RGB (B, 3, H, W) in 0-255 -> normalised float (no resizing, no padding)."""
        return (images.to(torch.float32) - self.pixel_mean) / self.pixel_std

    def extract_features(self, images: torch.Tensor, encoder: Any = None) -> torch.Tensor:
        """Normalised images (B, 3, H, W) -> F (B, C, H/4, W/4) (one encoder run per image).

        ``encoder`` (a torch ``FusedEncoder`` the predictors may pass) is ignored: the ONNX graph is
        the encoder.
        """
        self._check_images(images)
        x = images.detach().cpu().to(torch.float32).numpy()
        outs = [
            self._run(IMAGE_ENCODER, {"image": np.ascontiguousarray(x[i : i + 1])})[0]
            for i in range(len(x))
        ]
        return torch.from_numpy(np.concatenate(outs, 0))

    # ------------------------------------------------------------------ decoder
    def decode(
        self,
        features: torch.Tensor,
        prompts: Prompts | None = None,
        with_objects: bool = True,
        num_frames: int = 1,
        prompt_queries: torch.Tensor | None = None,
        prompt_kv: Any = None,
    ) -> RapSamOutput:
        """Decode object and/or prompt queries over F, as ``RapSam.decode`` (final outputs only).

        Args:
            features: F (B, C, h, w).
            prompts: prompts for the batch, in the model frame, or None.
            with_objects: run the panoptic decoder (object queries).
            num_frames: must be 1 (video clips need the torch model).
            prompt_queries: must be None (video tracking needs the torch model).
            prompt_kv: ignored (a torch-side cache of the prompt adapter's key / value projections;
                the prompt decoder graph computes them itself).
        """
        if num_frames != 1:
            raise ValueError(
                f"the onnxruntime backend decodes single images (num_frames=1), got num_frames={num_frames}; "
                "run video clips with the torch model (rapsam.build_model)"
            )
        if prompt_queries is not None:
            raise ValueError(
                "prompt_queries (video object tracking) are not part of the ONNX graphs; use the torch model"
            )
        c = self.config.neck.hidden_dim
        if not isinstance(features, torch.Tensor) or features.dim() != 4 or features.shape[1] != c:
            got = (
                tuple(features.shape)
                if isinstance(features, torch.Tensor)
                else type(features).__name__
            )
            raise ValueError(
                f"features must be F of shape (B, {c}, h, w) from extract_features, got {got}"
            )
        if not with_objects and prompts is None:
            raise ValueError("nothing to decode: enable object queries or give prompts")
        feats = features.detach().cpu().to(torch.float32).numpy()
        b, _, h, w = feats.shape
        emb = self._class_embeddings()
        out = RapSamOutput(features=features)
        has_cls = self.classifier.is_set
        if with_objects:
            res = [
                self._run(PANOPTIC_DECODER, {"features": feats[i : i + 1], "class_embeddings": emb})
                for i in range(b)
            ]
            masks, cls, iou = (
                torch.from_numpy(np.concatenate([r[j] for r in res], 0)) for j in range(3)
            )
            out.object_outputs = [DecoderOutput(cls if has_cls else None, masks, iou[..., None])]
        if prompts is not None:
            feeds = self._prompt_feeds(prompts, b, (h, w))
            res = []
            for i in range(b):
                feed = {k: v[i : i + 1] for k, v in feeds.items()}
                feed.update(features=feats[i : i + 1], class_embeddings=emb)
                res.append(self._run(PROMPT_DECODER, feed))
            masks, iou, cls = (
                torch.from_numpy(np.concatenate([r[j] for r in res], 0)) for j in range(3)
            )
            out.prompt_outputs = [DecoderOutput(cls if has_cls else None, masks, iou[..., None])]
        return out

    def _prompt_feeds(
        self, prompts: Prompts, b: int, feat_hw: tuple[int, int]
    ) -> dict[str, np.ndarray]:
        """``Prompts`` -> the prompt decoder's point / label / box / size arrays (validated)."""
        if not isinstance(prompts, Prompts):
            raise ValueError(f"prompts must be a rapsam Prompts, got {type(prompts).__name__}")
        if prompts.points is None and prompts.boxes is None:
            raise ValueError("a prompt needs points or a box")
        if prompts.batch_size != b:
            raise ValueError(f"prompts are for {prompts.batch_size} images but the batch has {b}")
        p = prompts.num_prompts
        if prompts.points is not None:
            if prompts.labels is None:
                raise ValueError("points need labels (1 positive, 0 negative, -1 padding)")
            points = prompts.points.detach().cpu().to(torch.float32).numpy()
            labels = prompts.labels.detach().cpu().to(torch.int64).numpy()
            if points.ndim != 4 or points.shape[:2] != (b, p) or points.shape[3] != 2:
                raise ValueError(f"points must have shape (B, P, n, 2), got {points.shape}")
            if labels.shape != points.shape[:3]:
                raise ValueError(f"labels {labels.shape} do not match points {points.shape[:3]}")
        else:
            points = np.zeros((b, p, 1, 2), dtype=np.float32)
            labels = np.full((b, p, 1), -1, dtype=np.int64)
        if prompts.boxes is not None:
            boxes = prompts.boxes.detach().cpu().to(torch.float32).numpy()
            if boxes.shape != (b, p, 4):
                raise ValueError(
                    f"boxes must have shape (B, P, 4) = {(b, p, 4)}, got {boxes.shape}"
                )
        else:
            boxes = np.full((b, p, 4), np.nan, dtype=np.float32)
        has_box = ~np.isnan(boxes).any(-1)  # (B, P)
        if not ((labels == 1).any(-1) | has_box).all():
            raise ValueError("every prompt needs at least one positive click (label 1) or a box")
        if prompts.image_sizes is not None:
            sizes = prompts.image_sizes.detach().cpu().to(torch.int64).numpy().reshape(b, 2)
        else:
            s = self.feature_stride
            sizes = np.tile(np.array([[feat_hw[0] * s, feat_hw[1] * s]], dtype=np.int64), (b, 1))
        return {
            "points": np.ascontiguousarray(points),
            "point_labels": np.ascontiguousarray(labels),
            "boxes": np.ascontiguousarray(boxes),
            "image_size": np.ascontiguousarray(sizes),  # (B, 2), sliced per image to (1, 2)
        }

    def __call__(
        self,
        images: torch.Tensor,
        prompts: Prompts | None = None,
        with_objects: bool = True,
        num_frames: int = 1,
    ) -> RapSamOutput:
        """Normalised images (B, 3, H, W) (+ prompts) -> ``RapSamOutput`` (final outputs only)."""
        return self.decode(self.extract_features(images), prompts, with_objects, num_frames)

    def __repr__(self) -> str:
        return (
            f"OnnxRapSam('{self.onnx_dir}', model={self.config.name}, classes={self.num_classes}, "
            f"providers={self.providers})"
        )
