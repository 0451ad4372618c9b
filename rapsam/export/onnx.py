"""Export a ``RapSam`` to three ONNX graphs + a JSON sidecar (layout: ``rapsam.runtime.onnx_spec``).

Follows SAM's ``segment_anything/utils/onnx.py`` (``SamOnnxModel``): fixed-I/O wrapper modules per
task graph around the trained model, the model itself is not bent to suit ONNX (STYLE.md
convention 11). The export runs on a deep copy in which ``rapsam.export.ops.swap_for_export``
replaces the neck (export-friendly CoordConv grid) and, with ``deform_conv="decomposed"``, its
deformable convolutions.

Exporter: ``torch.export.export(strict=False)`` with symbolic image / prompt / vocabulary sizes (a
size the code would specialise raises here instead of being frozen silently; the model's einsums are
traced as ``MatMul`` through ``ops.EinsumAsMatmul``), then ``torch.onnx.export(..., dynamo=True)``
(torch's ONNX exporter built on ``torch.export`` and onnxscript), opset >= 19 (``DeformConv`` is an
opset-19 op).

The graphs differ from ``RapSam.decode`` only where the torch code branches on data:

* the prompt decoder always takes points and boxes: box-only prompts are padding clicks (label -1),
  click-only prompts have NaN boxes (each adds exactly zero in ``PromptEncoder``), and the
  "every prompt needs a positive click or a box" check is done by ``OnnxRapSam`` before the run;
* the decoder stages' class branches, which only feed the training losses, are skipped except the
  last stage's for prompts (``InteractivePredictor`` reads it);
* the class embeddings are an input, so the vocabulary can be swapped without re-exporting.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import to_dict
from ..modeling.prompt_encoder import CLICK_HALF_SIZE, PromptEncoder
from ..modeling.rapsam import RapSam
from ..runtime.onnx_spec import (
    FORMAT_VERSION,
    GRAPH_IO,
    GRAPHS,
    IMAGE_ENCODER,
    ONNX_EXTRA_HINT,
    PANOPTIC_DECODER,
    PROMPT_DECODER,
    SIDECAR,
    VOCABULARY_FILE,
    graph_file,
)
from .ops import DEFORM_CONV_IMPLS, EinsumAsMatmul, swap_for_export

#: Lowest opset with ``DeformConv``.
MIN_OPSET = 19
DEFAULT_OPSET = 19
#: Largest image side (pixels) the symbolic shapes allow.
MAX_IMAGE_SIDE = 8192


# ============================================================================ graph wrappers
def cosine_class_logits(
    embed: torch.Tensor, class_embeddings: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """``TextClassifier.forward`` with the vocabulary as a tensor argument.

    Args:
        embed: (B, Q, D) projected query embeddings.
        class_embeddings: (K, P, D) unit-norm text embeddings.
        logit_scale: the classifier's log scale (scalar).

    Returns:
        (B, Q, K+1) logits, background (a zero prototype, so logit 0) last.
    """
    _, p, d = class_embeddings.shape
    table = torch.cat([class_embeddings, class_embeddings.new_zeros(1, p, d)], 0)  # (K+1, P, D)
    cos = torch.einsum("bnd,kpd->bnkp", F.normalize(embed, dim=-1), table)  # (B, Q, K+1, P)
    return logit_scale.exp() * cos.amax(-1)


class _InputClassifier:
    """Stands in for ``TextClassifier`` inside the decoder modules (they only call it)."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: torch.Tensor) -> None:
        self.class_embeddings = class_embeddings
        self.logit_scale = logit_scale

    def __call__(self, embed: torch.Tensor) -> torch.Tensor:
        return cosine_class_logits(embed, self.class_embeddings, self.logit_scale)


class ImageEncoderGraph(nn.Module):
    """image (1, 3, H, W) normalised -> F (1, C, H/4, W/4)."""

    def __init__(self, model: RapSam) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.neck = model.neck

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(image))


class PanopticDecoderGraph(nn.Module):
    """F (1, C, h, w), class embeddings (K, P, D) -> mask logits (1, Q, h, w), class logits (1, Q, K+1), IoU (1, Q)."""

    def __init__(self, model: RapSam) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.object_adapter = model.object_adapter
        self.register_buffer(
            "logit_scale", model.classifier.logit_scale.detach().clone(), persistent=False
        )

    def forward(
        self, features: torch.Tensor, class_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = features.shape[0]
        n_obj = self.decoder.num_queries
        kernels = self.decoder.query_embed.weight[None].expand(b, -1, -1)  # (B, Q, C)
        stages, masks, kernels = self.decoder(features, kernels, None, n_obj)
        cls, masks, _ = self.object_adapter(
            features, kernels, masks, _InputClassifier(class_embeddings, self.logit_scale)
        )
        return masks, cls, stages[-1].iou[..., 0]


def encode_prompts(
    encoder: PromptEncoder,
    points: torch.Tensor,
    labels: torch.Tensor,
    boxes: torch.Tensor,
    image_size: torch.Tensor,
    features: torch.Tensor,
) -> torch.Tensor:
    """``PromptEncoder.forward`` with points and boxes always present and no data-dependent check.

    Args:
        encoder: the model's prompt encoder (its parameters are used).
        points: (B, P, n, 2) clicks (x, y); label -1 marks padding.
        labels: (B, P, n) 1 positive, 0 negative, -1 padding.
        boxes: (B, P, 4) xyxy, NaN rows for prompts without a box.
        image_size: (B, 2) (h, w) of the unpadded image.
        features: F (B, C, h, w) (for content prompt features).

    Returns:
        (B, P, C) prompt queries, equal to ``encoder(...)`` called with the points / boxes present.
    """
    p, n = points.shape[1], points.shape[2]
    size = image_size.to(torch.float32)[:, None]  # (B, 1, 2)
    pts = points.to(torch.float32)
    click_boxes = torch.cat([pts - CLICK_HALF_SIZE, pts + CLICK_HALF_SIZE], -1)  # (B, P, n, 4)
    emb = encoder.encode_boxes(click_boxes, size[:, :, None].expand(-1, p, n, -1))  # (B, P, n, C)
    if encoder.content_proj is not None:
        emb = emb + encoder.content_proj(encoder._sample(features, pts))  # (B, P, n, C)
    is_pos = (labels == 1).to(emb.dtype)[..., None]  # (B, P, n, 1)
    is_neg = (labels == 0).to(emb.dtype)[..., None]
    pos_sum = (emb * is_pos).sum(2)  # (B, P, C)
    pos_cnt = is_pos.sum(2)  # (B, P, 1)
    neg_sum = (emb * is_neg).sum(2)
    neg_cnt = is_neg.sum(2)
    has_box = ~torch.isnan(boxes).any(-1, keepdim=True)  # (B, P, 1)
    safe = torch.where(
        has_box, boxes.to(torch.float32), torch.zeros_like(boxes, dtype=torch.float32)
    )
    bemb = encoder.encode_boxes(safe, size.expand(-1, p, -1))  # (B, P, C)
    if encoder.content_proj is not None:
        centre = (safe[..., :2] + safe[..., 2:]) / 2  # (B, P, 2)
        bemb = bemb + encoder.content_proj(encoder._sample(features, centre[:, :, None])[:, :, 0])
    pos_sum = pos_sum + bemb * has_box
    pos_cnt = pos_cnt + has_box.to(bemb.dtype)
    q = (encoder.label_embed.weight[1] + encoder.mask_token.weight[0]) + pos_sum / pos_cnt
    has_neg = (neg_cnt > 0).to(q.dtype)
    return q + has_neg * (encoder.label_embed.weight[0] + neg_sum / neg_cnt.clamp(min=1))


class PromptDecoderGraph(nn.Module):
    """F + prompts -> mask logits (1, N, h, w), predicted IoU (1, N), class logits (1, N, K+1)."""

    def __init__(self, model: RapSam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.decoder = model.decoder
        self.prompt_adapter = model.prompt_adapter
        self.prompt_prior = getattr(model, "prompt_prior", None)
        self.register_buffer(
            "logit_scale", model.classifier.logit_scale.detach().clone(), persistent=False
        )

    def forward(
        self,
        features: torch.Tensor,
        points: torch.Tensor,
        point_labels: torch.Tensor,
        boxes: torch.Tensor,
        image_size: torch.Tensor,
        class_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kernels = encode_prompts(
            self.prompt_encoder, points, point_labels, boxes, image_size, features
        )  # (B, N, C)
        masks = torch.einsum("bnc,bchw->bnhw", kernels, features)  # (B, N, h, w)
        classifier = _InputClassifier(class_embeddings, self.logit_scale)
        pp = self.prompt_prior
        phi = None
        if pp is not None:
            b, p = points.shape[:2]
            h, w = features.shape[-2:]
            phi = pp.maps(points.to(torch.float32), point_labels, boxes.to(torch.float32), b, p, h, w,
                          features.device)
        stages = self.decoder.stages
        cls = None
        for i, stage in enumerate(stages):
            cls, masks, _, kernels = stage(
                features, kernels, masks, classifier if i == len(stages) - 1 else None, 0
            )
            if phi is not None:
                masks = masks + pp.bias(i, kernels, phi)
        masks, iou, kernels = self.prompt_adapter(features, kernels)
        if phi is not None:
            masks = masks + pp.bias(len(pp.weights) - 1, kernels, phi)
        return masks, iou[..., 0], cls / self.decoder.temperature


# ============================================================================ export
@dataclass
class ExportResult:
    """What ``export_onnx`` wrote.

    Attributes:
        out_dir: the export directory.
        files: graph name -> path.
        seconds: graph name -> export time.
        max_abs_error: graph name -> max |onnxruntime - torch| on the example inputs (when checked).
    """

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    max_abs_error: dict[str, float] = field(default_factory=dict)


def _require_exporter() -> None:
    missing = []
    for mod in ("onnx", "onnxscript"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise RuntimeError(
            f"ONNX export needs {', '.join(missing)} (torch's dynamo exporter): {ONNX_EXTRA_HINT} "
            "(or pip install onnx onnxscript onnxruntime)"
        )


def example_inputs(
    model: RapSam, image_size: tuple[int, int] | None = None
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Deterministic example inputs of each graph (used for tracing and for the parity check).

    Args:
        model: the model (widths, size divisor).
        image_size: (H, W), multiples of the size divisor; default 3 x 4 divisors (96 x 128).

    Sizes avoid 0 and 1 in every dynamic dimension (``torch.export`` would specialise them).
    """
    g = torch.Generator().manual_seed(0)
    h, w = (
        image_size if image_size is not None else (3 * model.size_divisor, 4 * model.size_divisor)
    )
    c = model.config.neck.hidden_dim if model.config is not None else model.neck.out_channels
    d = model.classifier.embed_dim
    image = torch.randn(1, 3, h, w, generator=g)
    feats = torch.randn(1, c, h // 4, w // 4, generator=g)
    n, k = 3, 2
    points = torch.rand(1, n, k, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    labels = torch.tensor([[[1, 0], [1, -1], [-1, -1]]], dtype=torch.int64)
    boxes = torch.tensor(
        [[[4.0, 6.0, w / 2, h / 2], [float("nan")] * 4, [w / 4, h / 4, w - 2.0, h - 3.0]]]
    )
    size = torch.tensor([[h, w]], dtype=torch.int64)
    emb = F.normalize(torch.randn(3, 2, d, generator=g), dim=-1)
    return {
        IMAGE_ENCODER: (image,),
        PROMPT_DECODER: (feats, points, labels, boxes, size, emb),
        PANOPTIC_DECODER: (feats, emb),
    }


def _dynamic_shapes(name: str, size_divisor: int) -> dict:
    Dim = torch.export.Dim
    top = MAX_IMAGE_SIDE // size_divisor
    if name == IMAGE_ENCODER:
        hs, ws = Dim("H", min=1, max=top), Dim("W", min=1, max=top)
        return {"image": {2: size_divisor * hs, 3: size_divisor * ws}}
    fh, fw = Dim("h", min=1, max=MAX_IMAGE_SIDE // 4), Dim("w", min=1, max=MAX_IMAGE_SIDE // 4)
    vocab = {0: Dim("num_classes", min=1, max=100_000), 1: Dim("num_prototypes", min=1, max=1024)}
    if name == PANOPTIC_DECODER:
        return {"features": {2: fh, 3: fw}, "class_embeddings": vocab}
    n, k = Dim("num_prompts", min=1, max=4096), Dim("num_clicks", min=1, max=1024)
    return {
        "features": {2: fh, 3: fw},
        "points": {1: n, 2: k},
        "point_labels": {1: n, 2: k},
        "boxes": {1: n},
        "image_size": None,
        "class_embeddings": vocab,
    }


@contextlib.contextmanager
def _quiet_onnxscript() -> Iterator[None]:
    """Silence onnxscript's optimizer chatter ("Skipping constant folding ...") during an export."""
    logger = logging.getLogger("onnxscript")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _wrapper(name: str, model: RapSam) -> nn.Module:
    cls = {
        IMAGE_ENCODER: ImageEncoderGraph,
        PROMPT_DECODER: PromptDecoderGraph,
        PANOPTIC_DECODER: PanopticDecoderGraph,
    }
    return cls[name](model).eval()


def _reference(name: str, model: RapSam, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    """The eager model's outputs for a graph's inputs, through the public ``RapSam`` API.

    ``model`` must be a copy the caller owns: the decoders' example vocabulary is installed in it.
    """
    from ..modeling.rapsam import Prompts

    with torch.inference_mode():
        if name == IMAGE_ENCODER:
            return [model.extract_features(args[0]).numpy()]
        m = model
        feats, emb = args[0], args[-1]
        m.classifier.set_embeddings(emb)
        if name == PANOPTIC_DECODER:
            o = m.decode(feats, None, with_objects=True).object_outputs[-1]
            return [o.mask_logits.numpy(), o.cls_logits.numpy(), o.iou[..., 0].numpy()]
        _, points, labels, boxes, size, _ = args
        o = m.decode(
            feats, Prompts(points, labels, boxes, size), with_objects=False
        ).prompt_outputs[-1]
        return [o.mask_logits.numpy(), o.iou[..., 0].numpy(), o.cls_logits.numpy()]


def _check_symbolic(path: Path, name: str) -> None:
    """Raise if the exporter froze a dimension meant to be dynamic (e.g. the image size)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    want = {
        IMAGE_ENCODER: {"image": (2, 3), "features": (2, 3)},
        PROMPT_DECODER: {
            "points": (1, 2),
            "mask_logits": (1, 2, 3),
            "iou_predictions": (1,),
            "class_logits": (1, 2),
        },
        PANOPTIC_DECODER: {"features": (2, 3), "mask_logits": (2, 3), "class_logits": (2,)},
    }[name]
    values = {v.name: v for v in list(proto.graph.input) + list(proto.graph.output)}
    for vname, axes in want.items():
        dims = values[vname].type.tensor_type.shape.dim
        fixed = [a for a in axes if not dims[a].dim_param]
        if fixed:
            raise RuntimeError(
                f"exporting {name}: {vname} axes {fixed} came out with fixed sizes "
                f"{[dims[a].dim_value for a in fixed]} instead of dynamic ones; this torch/onnxscript version "
                "specialised a shape (please report it with `rapsam --version` and torch's version)"
            )


def export_onnx(
    model: RapSam,
    out_dir: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    deform_conv: str = "onnx",
    check: bool = True,
    source: str | None = None,
    graphs: tuple[str, ...] = GRAPHS,
    optimize: bool = True,
) -> ExportResult:
    """Export ``model`` into ``out_dir``: the three graphs, the sidecar and the vocabulary.

    Args:
        model: a ``RapSam`` built by ``rapsam.build_model`` (its ``config`` is recorded).
        out_dir: directory to write (created; existing graph files are replaced).
        opset: ONNX opset, >= 19.
        deform_conv: "onnx" (the ``DeformConv`` op; onnxruntime >= 1.25 on CPU) or "decomposed"
            (gather + matmul, runs on any onnxruntime).
        check: run each graph in onnxruntime on the example inputs and record the max abs error
            against the eager model (needs onnxruntime).
        source: weights description recorded in the sidecar.
        graphs: which graphs to export (default all three; ``OnnxRapSam`` needs all three).
        optimize: run onnxscript's graph optimizer (constant folding, redundant-op removal) at export.

    Returns:
        ``ExportResult`` with paths, timings and (with ``check``) parity errors.

    Raises:
        ValueError: not a built ``RapSam``, opset < 19 or an unknown ``deform_conv``.
        RuntimeError: onnx / onnxscript missing (``pip install rapsam[onnx]``) or a shape specialised.
    """
    if not isinstance(model, RapSam):
        raise ValueError(
            f"export_onnx takes a rapsam.RapSam (rapsam.build_model(...)), got {type(model).__name__}"
        )
    if model.config is None:
        raise ValueError("the model has no config attached; build it with rapsam.build_model")
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(
            f"opset {opset} is too old: the neck's DeformConv needs opset >= {MIN_OPSET}"
        )
    if deform_conv not in DEFORM_CONV_IMPLS:
        raise ValueError(f"unknown deform_conv '{deform_conv}'; choose one of {DEFORM_CONV_IMPLS}")
    bad = [g for g in graphs if g not in GRAPHS]
    if bad or not graphs:
        raise ValueError(f"unknown graph(s) {bad}; choose from {GRAPHS}")
    _require_exporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # No valid-looking directory until the new sidecar is written (a failed export leaves none).
    (out / SIDECAR).unlink(missing_ok=True)
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    # Everything runs on copies: the caller's model keeps its mode, modules and vocabulary.
    work = swap_for_export(copy.deepcopy(model), deform_conv).eval()
    examples = example_inputs(model)
    reference_model = copy.deepcopy(model).eval() if check else None
    result = ExportResult(out)
    for name in graphs:
        t0 = time.perf_counter()
        path = out / graph_file(name)
        args = examples[name]
        wrapper = _wrapper(name, work)
        with torch.no_grad(), _quiet_onnxscript():
            with EinsumAsMatmul():  # the model's einsums as MatMul (onnxruntime's Einsum is slow)
                ep = torch.export.export(
                    wrapper,
                    args,
                    dynamic_shapes=_dynamic_shapes(name, model.size_divisor),
                    strict=False,
                )
            prog = torch.onnx.export(
                ep,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=list(GRAPH_IO[name][0]),
                output_names=list(GRAPH_IO[name][1]),
                external_data=False,
                optimize=optimize,
                verbose=False,
            )
        tmp = path.with_suffix(".onnx.tmp")
        prog.save(str(tmp))
        os.replace(tmp, path)
        _check_symbolic(path, name)
        result.files[name] = path
        result.seconds[name] = time.perf_counter() - t0
        if check:
            result.max_abs_error[name] = parity_error(
                path, _reference(name, reference_model, args), args, name
            )
    _write_sidecar(model, out, opset, deform_conv, source, result)
    return result


def parity_error(
    path: Path, reference: list[np.ndarray], args: tuple[torch.Tensor, ...], name: str
) -> float:
    """Max abs difference between onnxruntime's outputs of graph ``path`` and ``reference``."""
    from ..runtime.ort import import_onnxruntime

    ort = import_onnxruntime()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {n: a.numpy() for n, a in zip(GRAPH_IO[name][0], args)}
    got = sess.run(list(GRAPH_IO[name][1]), feed)
    return max(float(np.abs(g - r).max()) for g, r in zip(got, reference))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_sidecar(
    model: RapSam, out: Path, opset: int, deform_conv: str, source: str | None, result: ExportResult
) -> None:
    from .. import __version__

    vocab = None
    if model.classifier.is_set:
        np.save(
            out / VOCABULARY_FILE, model.classifier.embeddings().cpu().numpy().astype(np.float32)
        )
        vocab = VOCABULARY_FILE
    elif (out / VOCABULARY_FILE).exists():
        (out / VOCABULARY_FILE).unlink()
    graphs = {}
    for name in GRAPHS:
        path = out / graph_file(name)
        if not path.exists():
            continue
        graphs[name] = {
            "file": path.name,
            "inputs": list(GRAPH_IO[name][0]),
            "outputs": list(GRAPH_IO[name][1]),
            "sha256": _sha256(path),
        }
    meta = {
        "format_version": FORMAT_VERSION,
        "rapsam_version": __version__,
        "exporter": {
            "torch": torch.__version__,
            "method": "torch.export.export(strict=False) + torch.onnx.export(dynamo=True)",
            "opset": opset,
            "deform_conv": deform_conv,
        },
        "source": source,
        "config": to_dict(model.config),
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten().tolist()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten().tolist()],
        "size_divisor": int(model.size_divisor),
        "feature_stride": 4,
        "class_names": list(model.class_names),
        "thing_flags": list(model.thing_flags),
        "text_encoder": getattr(model, "text_encoder", None),
        "vocabulary": vocab,
        "graphs": graphs,
        "parity_max_abs_error": result.max_abs_error,
    }
    tmp = out / (SIDECAR + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, out / SIDECAR)
