"""``PanopticPredictor``: panoptic, instance and semantic results from one forward pass.

Wraps a ``RapSam`` (SAM's ``SamPredictor(model)`` pattern): images in (numpy / PIL / tensor / path),
typed results out, at the original image size, with the official test pipeline and post-processing.

Speed options (defaults are the fast path; each keeps outputs within the tolerances pinned by
``tests/predictor/test_fast_path.py``):

* ``fuse=True``: the encoder runs as a ``FusedEncoder`` copy (BatchNorm folded, channels-last,
  sampled DCNv2), kept in sync with the model; the model itself is never modified. F stays factored
  (``rapsam.modeling.factored``: the decoder's matmuls on 131 instead of 256 channels).
* ``postprocess="fast"``: panoptic and semantic decisions at stride 4, exact bilinear values only along
  boundaries (``postprocess.panoptic_fast``); ``"official"`` upsamples every kept mask first.
* ``compile=True``: ``torch.compile`` the fused encoder (slow first call per input size).
* ``dtype=torch.float16 / torch.bfloat16``: autocast on CUDA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..modeling.fuse import FusedEncoder, autocast, check_inference_dtype
from ..modeling.rapsam import RapSam, RapSamOutput
from ..structures import InstanceResult, PanopticResult, Segment, SemanticResult
from .base import BasePredictor
from .postprocess import (
    UpsampleGrid,
    argmax_fast,
    instance_scores,
    instance_topk,
    panoptic_fast,
    panoptic_keep,
    panoptic_postprocess,
    segment_stats,
    semantic_scores,
)
from .transforms import PreparedImage, logits_to_original

TASKS = ("panoptic", "instance", "semantic")
POSTPROCESS = ("fast", "official")


@dataclass
class ImagePrediction:
    """The results of ``PanopticPredictor.predict`` (each None when not asked for)."""

    panoptic: PanopticResult | None = None
    instances: InstanceResult | None = None
    semantic: SemanticResult | None = None
    speed: dict[str, float] = field(default_factory=dict)


class PanopticPredictor(BasePredictor):
    """Panoptic / instance / semantic segmentation with a RAP-SAM model.

    Args:
        model: a ``RapSam`` with a vocabulary installed.
        image_scale: (long, short) test resize, default the model config's (1333, 800); None = no resize.
        object_mask_thr: minimum class score of a panoptic segment (default: the model config's, official 0.8).
        iou_thr: minimum visible / own-area ratio of a panoptic segment (official 0.8).
        max_per_image: instance results kept (top-k over (query, class) pairs; official 100).
        device: run on this device (default: the model's).
        postprocess: "fast" (stride-4 decisions, exact values along boundaries) or "official" (every
            kept mask upsampled to the image first; bit-exact with the official code). Instance masks
            are the official ones either way.
        fuse: run the encoder as a BatchNorm-folded, channels-last ``FusedEncoder`` copy.
        compile: ``torch.compile`` that copy (needs ``fuse``): True (inductor) or a backend name.
        dtype: None (float32), or torch.float16 / torch.bfloat16 autocast on CUDA.

    Example::

        predictor = PanopticPredictor(model)
        result = predictor("street.jpg")          # PanopticResult
        both = predictor.predict(image, tasks=("panoptic", "instance"))
    """

    def __init__(
        self,
        model: RapSam,
        *,
        image_scale: tuple[int, int] | None | str = "model",
        object_mask_thr: float | None = None,
        iou_thr: float = 0.8,
        max_per_image: int = 100,
        device: str | torch.device | None = None,
        postprocess: str = "fast",
        fuse: bool = True,
        compile: bool | str = False,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__(model, image_scale=image_scale, device=device)
        if postprocess not in POSTPROCESS:
            raise ValueError(f"postprocess must be one of {POSTPROCESS}, got {postprocess!r}")
        if compile and not fuse:
            raise ValueError("compile=True compiles the fused encoder: use it with fuse=True")
        if object_mask_thr is None:  # the model's own (official 0.8)
            object_mask_thr = float(getattr(getattr(self.model, "config", None), "object_mask_thr", 0.8))
        if not 0.0 <= object_mask_thr < 1.0:
            raise ValueError(f"object_mask_thr must be in [0, 1), got {object_mask_thr}")
        self.object_mask_thr = object_mask_thr
        self.iou_thr = iou_thr
        self.max_per_image = max_per_image
        self.postprocess = postprocess
        self.dtype = check_inference_dtype(dtype, self.device)
        torch_model = isinstance(self.model, RapSam)  # (else an onnxruntime model: its graph is the encoder)
        if compile and not torch_model:
            raise ValueError("compile=True compiles the torch encoder; it does not apply to an ONNX model")
        self.encoder = FusedEncoder(self.model, compile=compile, factored=True) if fuse and torch_model else None

    def __call__(self, image: Any) -> PanopticResult:
        return self.predict(image, tasks=("panoptic",)).panoptic

    @torch.inference_mode()
    def predict_torch(self, prepared: PreparedImage) -> RapSamOutput:
        """Forward pass of the object queries on a prepared image (model frame).

        With ``fuse=True`` the output's ``features`` are ``FactoredFeatures`` (``factored.as_tensor``
        gives F as a tensor)."""
        with autocast(self.device, self.dtype):
            feats = self.model.extract_features(prepared.tensor, encoder=self.encoder)
            return self.model.decode(feats, with_objects=True)

    @torch.inference_mode()
    def predict(self, image: Any, tasks: tuple[str, ...] | list[str] = TASKS) -> ImagePrediction:
        """Run the model once and post-process for each task in ``tasks``."""
        bad = [t for t in tasks if t not in TASKS]
        if bad or not tasks:
            raise ValueError(f"unknown task(s) {bad}; choose from {TASKS}")
        self._require_vocabulary()
        t0 = time.perf_counter()
        rgb = self._to_rgb(image)
        prepared = self.prepare(rgb)
        t1 = time.perf_counter()
        out = self.predict_torch(prepared)
        final = out.object_outputs[-1]
        mask_cls = final.cls_logits[0].float()  # (Q, K+1)
        mask_logits = final.mask_logits[0].float()  # (Q, h, w)
        t2 = time.perf_counter()
        result = ImagePrediction()
        if "panoptic" in tasks:
            result.panoptic = self.panoptic_from_logits(mask_cls, mask_logits, prepared)
        if "instance" in tasks:
            result.instances = self.instances_from_logits(mask_cls, mask_logits, prepared)
        if "semantic" in tasks:
            result.semantic = self.semantic_from_logits(mask_cls, mask_logits, prepared)
        t3 = time.perf_counter()
        result.speed = {"preprocess": 1e3 * (t1 - t0), "inference": 1e3 * (t2 - t1), "postprocess": 1e3 * (t3 - t2)}
        for r in (result.panoptic, result.instances):
            if r is not None:
                r.speed = dict(result.speed)
        return result

    # -------------------------------------------------------------------------------- post-processing
    def panoptic_from_logits(self, mask_cls: torch.Tensor, mask_logits: torch.Tensor, prepared: PreparedImage) -> PanopticResult:
        """(Q, K+1) class logits, (Q, h, w) mask logits -> ``PanopticResult`` at the original size."""
        idx, scores, labels = panoptic_keep(mask_cls, self.object_mask_thr)
        flags = self.model.thing_flags
        if self.postprocess == "fast":
            grid = self._grid(mask_logits, prepared)
            raw = panoptic_fast(scores, labels, mask_logits[idx], grid, flags, self.iou_thr, idx)
        else:
            # Upsampling is per query, so only the kept queries are brought to full size.
            full = logits_to_original(mask_logits[idx], prepared.pad_size, prepared.img_size, prepared.ori_size)
            raw = panoptic_postprocess(scores, labels, full, flags, self.iou_thr, True, idx)
        names = self.model.class_names
        if raw.areas is not None and raw.boxes is not None:
            areas, boxes = raw.areas, raw.boxes
        else:
            areas, boxes = segment_stats(raw.seg_ids, len(raw.labels))
        segs = [
            Segment(i + 1, lab, names[lab], sc, th, a, tuple(b), q)
            for i, (lab, sc, q, th, a, b) in enumerate(
                zip(raw.labels, raw.scores, raw.queries, raw.is_thing, areas.tolist(), boxes.tolist())
            )
        ]
        return PanopticResult(raw.seg_ids.cpu(), segs, list(names), prepared.ori_size)

    @staticmethod
    def _grid(mask_logits: torch.Tensor, prepared: PreparedImage) -> UpsampleGrid:
        return UpsampleGrid(
            tuple(mask_logits.shape[-2:]), prepared.pad_size, prepared.img_size, prepared.ori_size, mask_logits.device
        )

    def instances_from_logits(self, mask_cls: torch.Tensor, mask_logits: torch.Tensor, prepared: PreparedImage) -> InstanceResult:
        """Top-k thing instances, sorted by score (highest first)."""
        cls_scores, labels, queries = instance_topk(mask_cls, self.model.thing_flags, self.max_per_image)
        uq, inv = torch.unique(queries, return_inverse=True)
        full = logits_to_original(mask_logits[uq], prepared.pad_size, prepared.img_size, prepared.ori_size)[inv]
        masks, scores = instance_scores(full, cls_scores)
        order = scores.argsort(descending=True, stable=True)
        return InstanceResult(
            masks=masks[order].cpu(),
            scores=scores[order].cpu(),
            labels=labels[order].cpu(),
            query_indices=queries[order].cpu(),
            class_names=list(self.model.class_names),
            image_size=prepared.ori_size,
        )

    def semantic_from_logits(self, mask_cls: torch.Tensor, mask_logits: torch.Tensor, prepared: PreparedImage) -> SemanticResult:
        """Class map: argmax_k sum_q p(k|q) sigmoid(m_q), scored at stride 4, upsampled like the masks."""
        scores = semantic_scores(mask_cls, mask_logits)  # (K, h, w)
        if self.postprocess == "fast":
            sem = argmax_fast(scores, self._grid(mask_logits, prepared))
        else:
            sem = logits_to_original(scores, prepared.pad_size, prepared.img_size, prepared.ori_size).argmax(0)
        return SemanticResult(sem.cpu(), list(self.model.class_names), prepared.ori_size)
