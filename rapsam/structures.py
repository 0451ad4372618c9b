"""Typed results (detectron2's ``Instances`` / ultralytics' ``Results`` idea).

* ``InstanceResult``: N masks with scores, optional labels / names / boxes / track ids / IoU
  predictions; every per-instance field has length N and ``result[mask_or_index]`` selects across all
  of them.
* ``PanopticResult``: an (H, W) segment-id map (0 = void) and the list of ``Segment`` records, with
  export to the COCO panoptic format (PNG with id = R + 256 G + 65536 B, plus ``segments_info``).
* ``SemanticResult``: an (H, W) class-index map.

Fields are torch tensors; ``.numpy()`` returns a copy holding numpy arrays, ``.to(device)`` moves them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

_PER_INSTANCE = ("masks", "scores", "labels", "boxes", "track_ids", "iou", "query_indices")


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) float xyxy tight boxes (x1/y1 exclusive = last index + 1; zeros if empty)."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4)
    ys = masks.any(2).to(torch.int8)  # (N, H)
    xs = masks.any(1).to(torch.int8)  # (N, W)
    y0 = ys.argmax(1)
    y1 = h - ys.flip(1).argmax(1)
    x0 = xs.argmax(1)
    x1 = w - xs.flip(1).argmax(1)
    boxes = torch.stack([x0, y0, x1, y1], 1).to(torch.float32)
    boxes[~ys.bool().any(1)] = 0
    return boxes


def _as_array(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


@dataclass
class InstanceResult:
    """N instance masks for one image (or one video frame).

    Attributes:
        masks: (N, H, W) bool at the original image size.
        scores: (N,) confidence (class prob x mean mask prob for instances; predicted IoU for prompts).
        labels: (N,) long class indices into ``class_names``, or None (class-agnostic prompts).
        boxes: (N, 4) xyxy pixel boxes of the masks.
        track_ids: (N,) long track ids for video, or None.
        iou: (N,) predicted mask IoU, or None.
        query_indices: (N,) which model query produced each instance, or None.
        class_names: the vocabulary ``labels`` index.
        image_size: (H, W) of the original image.
        speed: timings in milliseconds (preprocess / inference / postprocess).
    """

    masks: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    track_ids: torch.Tensor | None = None
    iou: torch.Tensor | None = None
    query_indices: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    speed: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.masks)
        if self.boxes is None and isinstance(self.masks, torch.Tensor):
            self.boxes = masks_to_boxes(self.masks)
        for name in _PER_INSTANCE:
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"InstanceResult.{name} has {len(v)} entries but there are {n} masks")

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, item: int | slice | torch.Tensor | np.ndarray | list) -> "InstanceResult":
        if isinstance(item, int):
            item = slice(item, item + 1 if item != -1 else None)
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if isinstance(item, list):
            item = torch.as_tensor(item)
        if isinstance(item, torch.Tensor) and item.dtype == torch.bool and len(item) != len(self):
            raise IndexError(f"boolean index of length {len(item)} for {len(self)} instances")
        kw = {n: (getattr(self, n)[item] if getattr(self, n) is not None else None) for n in _PER_INSTANCE}
        return dataclasses.replace(self, **kw)

    @property
    def names(self) -> list[str] | None:
        """Class name of each instance (None for class-agnostic results)."""
        if self.labels is None:
            return None
        return [self.class_names[i] if 0 <= i < len(self.class_names) else str(i) for i in self.labels.tolist()]

    def to(self, device: str | torch.device) -> "InstanceResult":
        kw = {n: (getattr(self, n).to(device) if getattr(self, n) is not None else None) for n in _PER_INSTANCE}
        return dataclasses.replace(self, **kw)

    def cpu(self) -> "InstanceResult":
        return self.to("cpu")

    def numpy(self) -> "InstanceResult":
        """A copy whose per-instance fields are numpy arrays."""
        kw = {n: _as_array(getattr(self, n)) for n in _PER_INSTANCE}
        return dataclasses.replace(self, **kw)

    def to_coco(self, image_id: int | str, category_ids: list[int] | None = None) -> list[dict]:
        """COCO results records (compressed RLE via pycocotools) for this image.

        Args:
            image_id: the COCO image id.
            category_ids: dataset category id of each class index (default: the index itself).
        """
        from pycocotools import mask as mask_utils

        masks = _as_array(self.masks).astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0))) if len(self) else []
        out = []
        labels = _as_array(self.labels) if self.labels is not None else np.zeros(len(self), dtype=np.int64)
        boxes = _as_array(self.boxes)
        scores = _as_array(self.scores)
        track_ids = _as_array(self.track_ids) if self.track_ids is not None else None
        for i in range(len(self)):
            rle = rles[i]
            rle["counts"] = rle["counts"].decode("ascii")
            cls = int(labels[i])
            x0, y0, x1, y1 = (float(v) for v in boxes[i])
            rec = {
                "image_id": image_id,
                "category_id": category_ids[cls] if category_ids is not None else cls,
                "segmentation": rle,
                "score": float(scores[i]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
            }
            if track_ids is not None:
                rec["track_id"] = int(track_ids[i])
            out.append(rec)
        return out

    def plot(self, image: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Overlay on ``image`` (H, W, 3) uint8 RGB -> new uint8 image (see ``rapsam.visualize.draw_masks``)."""
        from .visualize import draw_masks

        r = self.numpy()
        ids = r.track_ids if r.track_ids is not None else None
        return draw_masks(image, r.masks, labels=self.names, scores=r.scores, ids=ids, **kwargs)


@dataclass
class Segment:
    """One panoptic segment.

    Attributes:
        id: segment id in ``PanopticResult.seg_ids`` (1, 2, ...).
        label: class index into the vocabulary.
        name: class name.
        score: class probability of the query that produced it.
        is_thing: thing (countable) or stuff class.
        area: visible pixel count.
        bbox: xyxy box of the visible pixels.
        query: index of the producing query.
    """

    id: int
    label: int
    name: str
    score: float
    is_thing: bool
    area: int
    bbox: tuple[float, float, float, float]
    query: int = -1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class PanopticResult:
    """Panoptic segmentation of one image.

    Attributes:
        seg_ids: (H, W) int32, 0 = void, otherwise a ``Segment.id``.
        segments: the segments, in painting order.
        class_names: the vocabulary.
        image_size: (H, W).
        speed: timings in milliseconds.
    """

    seg_ids: torch.Tensor
    segments: list[Segment]
    class_names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    speed: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.segments)

    def semantic(self, void: int = 255) -> torch.Tensor:
        """(H, W) class-index map derived from the segments (``void`` where unassigned)."""
        lut = torch.full((max([s.id for s in self.segments], default=0) + 1,), void, dtype=torch.int64)
        for s in self.segments:
            lut[s.id] = s.label
        return lut[self.seg_ids.long()]

    def official_map(self, num_classes: int, thing_offset: int = 1000) -> torch.Tensor:
        """The mmdet encoding: void = ``num_classes``, stuff = class, thing = class + 1000 * instance."""
        out = torch.full_like(self.seg_ids, num_classes, dtype=torch.int64)
        inst = 0
        for s in self.segments:
            if s.is_thing:
                inst += 1
                out[self.seg_ids == s.id] = s.label + thing_offset * inst
            else:
                out[self.seg_ids == s.id] = s.label
        return out

    def to(self, device: str | torch.device) -> "PanopticResult":
        return dataclasses.replace(self, seg_ids=self.seg_ids.to(device))

    def numpy(self) -> "PanopticResult":
        return dataclasses.replace(self, seg_ids=_as_array(self.seg_ids))

    def to_coco_panoptic(
        self, image_id: int | str, file_name: str, category_ids: list[int] | None = None
    ) -> tuple[np.ndarray, dict]:
        """-> (PNG array (H, W, 3) uint8 with id = R + 256 G + 65536 B, annotation dict).

        Segments of one stuff class are merged into a single segment, as the COCO format requires.
        """
        ids = _as_array(self.seg_ids).astype(np.int64)
        out_ids = np.zeros_like(ids)
        infos = []
        stuff_seg: dict[int, dict] = {}
        next_id = 1
        for s in self.segments:
            m = ids == s.id
            if not m.any():
                continue
            cat = category_ids[s.label] if category_ids is not None else s.label
            if not s.is_thing and cat in stuff_seg:
                info = stuff_seg[cat]
                out_ids[m] = info["id"]
                continue
            out_ids[m] = next_id
            info = {"id": next_id, "category_id": int(cat), "iscrowd": 0, "isthing": int(s.is_thing)}
            infos.append(info)
            if not s.is_thing:
                stuff_seg[cat] = info
            next_id += 1
        for info in infos:
            m = out_ids == info["id"]
            ys, xs = np.nonzero(m)
            info["area"] = int(m.sum())
            info["bbox"] = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            info.pop("isthing")
        png = np.stack([out_ids % 256, out_ids // 256 % 256, out_ids // 65536 % 256], -1).astype(np.uint8)
        return png, {"image_id": image_id, "file_name": file_name, "segments_info": infos}

    def save(self, png_path: str | os.PathLike, image_id: int | str = 0, category_ids: list[int] | None = None) -> dict:
        """Write the COCO panoptic PNG and return its annotation dict (``file_name`` = the PNG's name)."""
        from PIL import Image

        png, ann = self.to_coco_panoptic(image_id, Path(png_path).name, category_ids)
        Path(png_path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(png).save(png_path)
        return ann

    def plot(self, image: np.ndarray, **kwargs: Any) -> np.ndarray:
        from .visualize import draw_panoptic

        segs = [
            {"id": s.id, "label_name": s.name, "is_thing": s.is_thing, "score": s.score} for s in self.segments
        ]
        return draw_panoptic(image, _as_array(self.seg_ids), segs, **kwargs)

    def to_json(self) -> str:
        return json.dumps({"image_size": list(self.image_size), "segments": [s.to_dict() for s in self.segments]})


@dataclass
class SemanticResult:
    """(H, W) class-index map (``ignore_index`` where no class) and the vocabulary."""

    sem: torch.Tensor
    class_names: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)
    ignore_index: int = 255

    def numpy(self) -> "SemanticResult":
        return dataclasses.replace(self, sem=_as_array(self.sem))

    def to(self, device: str | torch.device) -> "SemanticResult":
        return dataclasses.replace(self, sem=self.sem.to(device))

    def plot(self, image: np.ndarray, **kwargs: Any) -> np.ndarray:
        from .visualize import draw_semantic

        return draw_semantic(image, _as_array(self.sem), self.class_names, ignore_index=self.ignore_index, **kwargs)
