"""``InteractivePredictor``: SAM-style click / box segmentation with a cached image embedding.

``set_image`` runs the backbone and neck once and caches F; ``predict`` only runs the prompt encoder,
the three decoder stages and the prompt adapter for the prompts given, all prompts in one batched pass.

Prompt shapes (coordinates in original-image pixels, x then y):

* ``points`` (P, 2): P prompts of one click each (the official COCO-SAM use: one click per object);
* ``points`` (P, n, 2) with ``labels`` (P, n): P prompts of n clicks each, labels 1 positive,
  0 negative, -1 padding (several clicks refine one object);
* ``boxes`` (P, 4) xyxy: P box prompts; given together with points of P prompts, each prompt gets its
  clicks and its box;
* ``multimask=False`` only: RAP-SAM predicts one mask per prompt.

Per-image work is done once: ``set_image`` caches F (through a BatchNorm-folded ``FusedEncoder`` copy of
the encoder by default), and the first ``predict`` caches the prompt adapter's key/value projections of
F (``PromptAdapter.project_features``), the bulk of the adapter's cost. Masks are brought to the
original size by ``postprocess.binary_masks_fast`` (per-cell signs, exact bilinear values only along
each mask's boundary) unless ``postprocess="official"`` or ``return_logits=True``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..modeling.factored import as_tensor
from ..modeling.fuse import FusedEncoder, autocast, check_inference_dtype
from ..modeling.rapsam import Prompts, RapSam
from ..structures import InstanceResult
from .base import BasePredictor
from .postprocess import UpsampleGrid, binary_masks_fast
from .transforms import PreparedImage, logits_to_original

POSTPROCESS = ("fast", "official")


class InteractivePredictor(BasePredictor):
    """Click/box prompts -> one mask per prompt with its predicted IoU.

    Args:
        model: a ``RapSam``.
        image_scale: (long, short) test resize (default the model config's, (1333, 800)); None = none.
        device: run on this device.
        postprocess: "fast" (per-cell mask signs, exact values along boundaries: the official masks)
            or "official" (every mask upsampled to the image first).
        fuse: encode with a BatchNorm-folded, channels-last ``FusedEncoder`` copy of the encoder.
        compile: ``torch.compile`` that copy (needs ``fuse``): True (inductor) or a backend name.
        dtype: None (float32), or torch.float16 / torch.bfloat16 autocast on CUDA.

    Example::

        p = InteractivePredictor(model)
        p.set_image(image)                                   # encoder runs once
        res = p.predict(points=[[120, 80], [300, 200]])      # two objects, one click each
        res = p.predict(points=[[[120, 80], [140, 90], [60, 40]]], labels=[[1, 1, 0]])  # one object
        res = p.predict(boxes=[[50, 40, 200, 180]])
    """

    def __init__(
        self,
        model: RapSam,
        *,
        image_scale: tuple[int, int] | None | str = "model",
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
        self.postprocess = postprocess
        self.dtype = check_inference_dtype(dtype, self.device)
        self._torch_model = isinstance(self.model, RapSam)  # (else an onnxruntime model)
        if compile and not self._torch_model:
            raise ValueError("compile=True compiles the torch encoder; it does not apply to an ONNX model")
        self.encoder = FusedEncoder(self.model, compile=compile, factored=True) if fuse and self._torch_model else None
        self._features: torch.Tensor | None = None
        self._prompt_kv: tuple[torch.Tensor, torch.Tensor] | None = None
        self._grid: UpsampleGrid | None = None
        self._prepared: PreparedImage | None = None
        self.encode_ms = 0.0

    # ---------------------------------------------------------------------------------- image
    @torch.inference_mode()
    def set_image(self, image: Any) -> None:
        """Pre-process ``image`` (path, (H, W, 3) uint8 RGB array, PIL image or tensor) and cache F."""
        t0 = time.perf_counter()
        prepared = self.prepare(self._to_rgb(image))
        with autocast(self.device, self.dtype):
            self._features = self.model.extract_features(prepared.tensor, encoder=self.encoder)
        self._prompt_kv = None  # projected on the first predict
        self._grid = None
        self._prepared = prepared
        self.encode_ms = 1e3 * (time.perf_counter() - t0)

    def reset_image(self) -> None:
        self._features = None
        self._prompt_kv = None
        self._grid = None
        self._prepared = None

    @property
    def is_image_set(self) -> bool:
        return self._features is not None

    @property
    def original_size(self) -> tuple[int, int]:
        self._require_image()
        return self._prepared.ori_size

    @property
    def features(self) -> torch.Tensor:
        """The cached F (1, C, H/4, W/4) as a tensor."""
        self._require_image()
        return as_tensor(self._features)

    def _require_image(self) -> None:
        if self._features is None:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")

    # ---------------------------------------------------------------------------------- prompts
    @torch.inference_mode()
    def predict(
        self,
        points: Any = None,
        labels: Any = None,
        boxes: Any = None,
        *,
        return_logits: bool = False,
    ) -> InstanceResult:
        """Predict one mask per prompt (see the module docstring for prompt shapes).

        Returns:
            ``InstanceResult`` with masks (P, H, W) at the original size, ``scores`` = ``iou`` = the
            predicted IoU, and, when the model has a vocabulary, the class guess of each mask
            (``labels`` / ``names``). With ``return_logits`` the (P, H, W) float logits are in
            ``result.logits``.
        """
        self._require_image()
        t0 = time.perf_counter()
        prompts = self.to_model_frame(points, labels, boxes)
        logits, iou, cls = self.predict_torch(prompts)
        pr = self._prepared
        full = boxes = None
        if return_logits or self.postprocess == "official":
            full = logits_to_original(logits, pr.pad_size, pr.img_size, pr.ori_size)
            masks = full > 0
        else:
            if self._grid is None:
                self._grid = UpsampleGrid(tuple(logits.shape[-2:]), pr.pad_size, pr.img_size, pr.ori_size, logits.device)
            masks, boxes = binary_masks_fast(logits, self._grid)
        labels_out = None
        if cls is not None:
            labels_out = cls[:, :-1].argmax(-1).cpu()
        res = InstanceResult(
            masks=masks.cpu(),
            boxes=boxes,  # None: computed from the masks
            scores=iou.cpu(),
            labels=labels_out,
            iou=iou.cpu(),
            class_names=list(self.model.class_names),
            image_size=pr.ori_size,
        )
        if return_logits:
            res.logits = full.cpu()  # type: ignore[attr-defined]
        res.speed = {"encode (cached)": self.encode_ms, "decode": 1e3 * (time.perf_counter() - t0)}
        return res

    @torch.inference_mode()
    def predict_torch(self, prompts: Prompts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Batched prompts in the model frame -> (stride-4 logits (P, h, w), IoU (P,), class logits (P, K+1) or None).

        ``prompts`` hold one image's prompts (batch dimension 1), coordinates in resized-image pixels.
        """
        self._require_image()
        with autocast(self.device, self.dtype):
            if self._prompt_kv is None and self._torch_model:
                self._prompt_kv = self.model.prompt_adapter.project_features(self._features)
            out = self.model.decode(self._features, prompts.to(self.device), with_objects=False, prompt_kv=self._prompt_kv)
        final = out.prompt_outputs[-1]
        cls = final.cls_logits[0].float() if final.cls_logits is not None else None
        return final.mask_logits[0].float(), final.iou[0, :, 0].float(), cls

    def to_model_frame(self, points: Any = None, labels: Any = None, boxes: Any = None) -> Prompts:
        """Validate prompts in original-image pixels and map them to the model frame (``Prompts``)."""
        self._require_image()
        h, w = self._prepared.ori_size
        sx, sy = self._prepared.scale_xy
        pts, lab, bxs = parse_prompts(points, labels, boxes, (h, w))
        dev = self.device
        scale = torch.tensor([sx, sy], dtype=torch.float32)
        p_t = l_t = b_t = None
        if pts is not None:
            p_t = (torch.from_numpy(pts) * scale)[None].to(dev)
            l_t = torch.from_numpy(lab)[None].to(dev)
        if bxs is not None:
            b_t = (torch.from_numpy(bxs) * scale.repeat(2))[None].to(dev)
        size = torch.tensor([self._prepared.img_size], device=dev)
        return Prompts(p_t, l_t, b_t, size)


def parse_prompts(
    points: Any, labels: Any, boxes: Any, image_size: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate and normalise prompt inputs (original pixels).

    Returns:
        points (P, n, 2) float32 or None, labels (P, n) int64 or None, boxes (P, 4) float32 with NaN
        rows for prompts without a box, or None.

    Raises:
        ValueError: wrong shapes, NaN/Inf, points outside the image, boxes with x1 <= x0 or y1 <= y0,
            labels other than 1/0/-1, prompt counts that disagree, or a prompt with no positive click
            and no box.
    """
    h, w = image_size
    if points is None and boxes is None:
        raise ValueError("give points=... and/or boxes=... (no prompt given)")
    pts = lab = bxs = None
    if points is not None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim == 1 and pts.shape == (2,):
            pts = pts[None]
        if pts.ndim == 2:
            if pts.shape[1] != 2:
                raise ValueError(f"points must have shape (P, 2) or (P, n, 2) as (x, y), got {pts.shape}")
            pts = pts[:, None]  # one click per prompt
        if pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[0] == 0 or pts.shape[1] == 0:
            raise ValueError(f"points must have shape (P, 2) or (P, n, 2) as (x, y), got {np.asarray(points).shape}")
        if labels is None:
            lab = np.ones(pts.shape[:2], dtype=np.int64)
        else:
            lab_in = np.asarray(labels)
            if lab_in.size != pts.shape[0] * pts.shape[1]:
                raise ValueError(f"labels {lab_in.shape} do not match points {pts.shape[:2]}: one label per click")
            if not np.isfinite(lab_in.astype(np.float64)).all() or not np.all(np.isin(lab_in, (-1, 0, 1))):
                raise ValueError("labels must be 1 (positive), 0 (negative) or -1 (padding)")
            lab = lab_in.reshape(pts.shape[:2]).astype(np.int64)
        valid = lab >= 0
        if not np.isfinite(pts[valid]).all():
            raise ValueError("points contain NaN or Inf")
        px, py = pts[..., 0][valid], pts[..., 1][valid]
        if (px < 0).any() or (px > w).any() or (py < 0).any() or (py > h).any():
            bad = pts[valid][((px < 0) | (px > w) | (py < 0) | (py > h))][0]
            raise ValueError(f"point ({bad[0]:g}, {bad[1]:g}) is outside the {w}x{h} image (x in [0, {w}], y in [0, {h}])")
        pts = np.where(valid[..., None], pts, 0.0).astype(np.float32)
    elif labels is not None:
        raise ValueError("labels given without points")
    if boxes is not None:
        bxs = np.asarray(boxes, dtype=np.float64)
        if bxs.ndim == 1 and bxs.shape == (4,):
            bxs = bxs[None]
        if bxs.ndim != 2 or bxs.shape[1] != 4 or bxs.shape[0] == 0:
            raise ValueError(f"boxes must have shape (P, 4) as (x0, y0, x1, y1), got {np.asarray(boxes).shape}")
        if not np.isfinite(bxs).all():
            raise ValueError("boxes contain NaN or Inf")
        flat = (bxs[:, 2] <= bxs[:, 0]) | (bxs[:, 3] <= bxs[:, 1])  # (P,)
        outside = (bxs[:, 0] < 0) | (bxs[:, 1] < 0) | (bxs[:, 2] > w) | (bxs[:, 3] > h)
        bad = np.nonzero(flat | outside)[0]
        if len(bad):
            b = bxs[bad[0]]
            if flat[bad[0]]:
                raise ValueError(f"box {b.tolist()} needs x1 > x0 and y1 > y0 (format x0, y0, x1, y1)")
            raise ValueError(f"box {b.tolist()} reaches outside the {w}x{h} image")
        bxs = bxs.astype(np.float32)
        if pts is not None and bxs.shape[0] != pts.shape[0]:
            raise ValueError(f"{pts.shape[0]} point prompts but {bxs.shape[0]} boxes: give one box per prompt")
    if pts is not None:
        has_box = np.zeros(pts.shape[0], dtype=bool) if bxs is None else np.ones(pts.shape[0], dtype=bool)
        no_pos = ~(lab == 1).any(1) & ~has_box
        if no_pos.any():
            raise ValueError(f"prompt {int(np.nonzero(no_pos)[0][0])} has no positive click (label 1) and no box")
    return pts, lab, bxs
