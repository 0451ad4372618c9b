"""The layout of a rapsam ONNX export directory (written by ``rapsam.export``, read by ``OnnxRapSam``).

Three graphs, as SAM splits its model (``segment_anything/utils/onnx.py``) so interactive use never
re-runs the encoder, plus a JSON sidecar holding everything else the runtime needs (no torch model):

* ``image_encoder.onnx``: ``image`` (1, 3, H, W) normalised RGB, H and W multiples of the size
  divisor -> ``features`` F (1, C, H/4, W/4).
* ``prompt_decoder.onnx``: ``features`` F, ``points`` (1, N, K, 2) clicks (x, y) in model-frame
  pixels, ``point_labels`` (1, N, K) int64 (1 positive, 0 negative, -1 padding), ``boxes`` (1, N, 4)
  xyxy with NaN rows for prompts without a box, ``image_size`` (1, 2) int64 (h, w) of the resized,
  unpadded image, ``class_embeddings`` (V, P, D) -> ``mask_logits`` (1, N, H/4, W/4),
  ``iou_predictions`` (1, N), ``class_logits`` (1, N, V+1) (last stage's, divided by the temperature).
* ``panoptic_decoder.onnx``: ``features`` F, ``class_embeddings`` (V, P, D) -> ``mask_logits``
  (1, Q, H/4, W/4), ``class_logits`` (1, Q, V+1) (object adapter, background last),
  ``iou_predictions`` (1, Q).
* ``rapsam_onnx.json``: format version, model config, vocabulary names / thing flags / text encoder,
  pixel mean / std, size divisor, opset, exporter and per-graph input / output names.
* ``class_embeddings.npy``: the vocabulary installed at export (V, P, D) float32, if any.

The vocabulary is an **input** of both decoders, so ``OnnxRapSam.set_vocabulary`` swaps classes at
run time without re-exporting. N (prompts), K (clicks per prompt), V, P and the image size are
dynamic; the batch is 1 (``OnnxRapSam`` loops over larger batches).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FORMAT_VERSION = 1
SIDECAR = "rapsam_onnx.json"
VOCABULARY_FILE = "class_embeddings.npy"

IMAGE_ENCODER = "image_encoder"
PROMPT_DECODER = "prompt_decoder"
PANOPTIC_DECODER = "panoptic_decoder"
GRAPHS = (IMAGE_ENCODER, PROMPT_DECODER, PANOPTIC_DECODER)

#: Input and output names of each graph, in order.
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    IMAGE_ENCODER: (("image",), ("features",)),
    PROMPT_DECODER: (
        ("features", "points", "point_labels", "boxes", "image_size", "class_embeddings"),
        ("mask_logits", "iou_predictions", "class_logits"),
    ),
    PANOPTIC_DECODER: (
        ("features", "class_embeddings"),
        ("mask_logits", "class_logits", "iou_predictions"),
    ),
}

ONNX_EXTRA_HINT = "pip install rapsam[onnx]"


def graph_file(name: str) -> str:
    return f"{name}.onnx"


def read_sidecar(onnx_dir: str | os.PathLike) -> dict:
    """Read and validate ``rapsam_onnx.json`` of an export directory.

    Raises:
        FileNotFoundError: the directory or its sidecar does not exist.
        ValueError: the sidecar is corrupt, from a newer rapsam, or lacks required keys.
    """
    d = Path(onnx_dir)
    if not d.exists():
        raise FileNotFoundError(
            f"ONNX export directory not found: {d}; create it with `rapsam export onnx --weights ... --out {d}`"
        )
    if not d.is_dir():
        raise FileNotFoundError(
            f"{d} is a file; pass the directory `rapsam export onnx --out` wrote"
        )
    path = d / SIDECAR
    if not path.exists():
        raise FileNotFoundError(
            f"{d} is not a rapsam ONNX export (no {SIDECAR}); create it with `rapsam export onnx --out {d}`"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt ({e}); re-run `rapsam export onnx`") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is corrupt (not a JSON object); re-run `rapsam export onnx`")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{d} was exported by a newer rapsam (format {meta['format_version']}); upgrade rapsam"
        )
    missing = [
        k for k in ("config", "pixel_mean", "pixel_std", "size_divisor", "graphs") if k not in meta
    ]
    if missing:
        raise ValueError(f"{path} lacks {missing}; re-run `rapsam export onnx`")
    return meta
