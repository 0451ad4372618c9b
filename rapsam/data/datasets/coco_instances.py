"""COCO instance segmentation reader (things only), for ``instances_{split}.json`` as COCO ships it.

Format (Lin et al., "Microsoft COCO", ECCV 2014; ``cocodataset/cocoapi``): ``images`` (``id``,
``file_name``, ``width``, ``height``), ``annotations`` (``id``, ``image_id``, ``category_id``,
``segmentation``, ``area``, ``bbox``, ``iscrowd``) and ``categories`` (``id``, ``name``). A
``segmentation`` is a list of polygons (``[[x0, y0, x1, y1, ...], ...]``, their union), an
uncompressed RLE (``counts`` a list of ints, used by COCO for ``iscrowd=1``) or a compressed RLE
(``counts`` a string). Polygons are rasterised with ``pycocotools`` so masks match the COCO tools
bit for bit; RLEs are decoded by :mod:`rapsam.data.formats` with full validation.

Typical paths: ``annotations/instances_train2017.json`` and ``train2017/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rapsam.data.datasets.base import (
    DatasetFormatError,
    ImageSample,
    PathLike,
    SegmentationDataset,
    _require,
    parse_image_table,
    check_size,
    load_rgb,
    read_json,
)
from rapsam.data.formats import polygons_to_mask, rle_counts, rle_decode, validate_polygons

__all__ = ["CocoInstancesDataset", "check_segmentation"]


@dataclass(frozen=True)
class _Ann:
    ann_id: int
    label: int
    iscrowd: bool
    segmentation: Any  # validated polygons (list) or RLE dict


@dataclass(frozen=True)
class _Record:
    image_id: int | str
    file_name: str
    image_path: Path
    height: int
    width: int
    anns: tuple[_Ann, ...]


def check_segmentation(
    segmentation: Any, height: int, width: int, file: str, where: str
) -> tuple[Any, int]:
    """Validate one COCO ``segmentation`` value against the image size.

    Returns:
        ``(segmentation, num_pixels_hint)``: polygons with degenerate ones (< 3 points) removed, or
        the RLE unchanged; the hint is ``0`` when nothing drawable is left (an empty segment), else
        ``-1`` (unknown until decoded).

    Raises:
        DatasetFormatError: for a malformed polygon or RLE, or an RLE size other than
            ``height x width``.
    """
    if isinstance(segmentation, dict):
        try:
            h, w, counts = rle_counts(segmentation)
        except ValueError as e:
            raise DatasetFormatError(f"{file}: {where}: invalid RLE: {e}") from None
        if (h, w) != (height, width):
            raise DatasetFormatError(
                f"{file}: {where}: RLE size {h}x{w} differs from the image size {height}x{width} "
                "(HxW); the annotation belongs to another image or was resized"
            )
        return segmentation, (0 if sum(counts[1::2]) == 0 else -1)
    try:
        polys, _ = validate_polygons(segmentation)
    except ValueError as e:
        raise DatasetFormatError(f"{file}: {where}: invalid polygon segmentation: {e}") from None
    return polys, (0 if not polys else -1)


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a segmentation already checked by :func:`check_segmentation` to ``(H, W)`` bool."""
    if isinstance(segmentation, dict):
        return rle_decode(segmentation)
    return polygons_to_mask(segmentation, height, width)


class CocoInstancesDataset(SegmentationDataset):
    """COCO instances reader; one :class:`ImageSample` per image (things only).

    Images without annotations are kept as samples with ``N = 0`` (filter them in the training
    pipeline if wanted). Contiguous labels follow the order of ``categories`` in the JSON; every
    category is a thing unless the file gives ``isthing``. Errors and skips follow
    :mod:`rapsam.data.datasets.base`; degenerate polygons (fewer than 3 points) are dropped, and an
    annotation with none left is an empty segment.

    Args:
        ann_file: e.g. ``annotations/instances_val2017.json``.
        image_dir: e.g. ``val2017/``.
    """

    def __init__(self, ann_file: PathLike, image_dir: PathLike) -> None:
        super().__init__()
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        f = str(self.ann_file)
        data = read_json(self.ann_file)
        if not isinstance(data, dict):
            raise DatasetFormatError(f"{f}: top level must be a JSON object")
        self._parse_categories(data, f, isthing_key=False)
        images = _require(data, "images", list, f, "top level")
        anns = _require(data, "annotations", list, f, "top level")

        infos, order = parse_image_table(images, f)

        per_image: dict[int | str, list[_Ann]] = {iid: [] for iid in order}
        seen_ids: set[int] = set()
        for j, ann in enumerate(anns):
            where = f"annotations[{j}]"
            if not isinstance(ann, dict):
                raise DatasetFormatError(f"{f}: {where}: an annotation must be an object")
            aid = _require(ann, "id", int, f, where)
            where = f"annotations[{j}] (id={aid})"
            if aid in seen_ids:
                raise DatasetFormatError(f"{f}: {where}: duplicate annotation id")
            seen_ids.add(aid)
            iid = _require(ann, "image_id", (int, str), f, where)
            if iid not in infos:
                raise DatasetFormatError(
                    f"{f}: {where}: image_id {iid!r} is not listed in 'images'; the annotation "
                    "file is inconsistent"
                )
            if "category_id" not in ann:
                raise DatasetFormatError(f"{f}: {where}: missing required key 'category_id'")
            label = self._category_index(ann["category_id"], f, where)
            seg = _require(ann, "segmentation", (list, dict), f, where)
            _, height, width = infos[iid]
            seg, hint = check_segmentation(seg, height, width, f, where)
            area = ann.get("area")
            if hint == 0 or (isinstance(area, (int, float)) and area <= 0):
                self._skip(f, f"annotation id={aid} (image id={iid!r})", "empty segment")
                continue
            per_image[iid].append(_Ann(aid, label, bool(ann.get("iscrowd", 0)), seg))

        self._records: list[_Record] = []
        for iid in order:
            file_name, height, width = infos[iid]
            image_path = self.image_dir / file_name
            if not image_path.is_file():
                self._skip(str(image_path), f"image id={iid!r}", "missing image")
                continue
            self._records.append(
                _Record(iid, file_name, image_path, height, width, tuple(per_image[iid]))
            )
        self._warn_skipped()

    def __len__(self) -> int:
        return len(self._records)

    def size(self, idx: int) -> tuple[int, int]:
        """``(H, W)`` of sample ``idx`` from the JSON, without reading the image."""
        rec = self._records[idx]
        return rec.height, rec.width

    def __getitem__(self, idx: int) -> ImageSample:
        rec = self._records[idx]
        where = f"image id={rec.image_id!r}"
        image = load_rgb(rec.image_path)
        check_size(image, rec.height, rec.width, rec.image_path, where, "the image")
        kept: list[_Ann] = []
        masks: list[np.ndarray] = []
        for ann in rec.anns:
            m = decode_segmentation(ann.segmentation, rec.height, rec.width)
            if not m.any():
                self._skip_at_load(
                    str(self.ann_file), f"annotation id={ann.ann_id} ({where})", "empty segment"
                )
                continue
            kept.append(ann)
            masks.append(m)
        labels = np.array([a.label for a in kept], dtype=np.int64)
        return ImageSample(
            image=image,
            masks=(
                np.stack(masks) if masks else np.zeros((0, rec.height, rec.width), dtype=bool)
            ),  # (N, H, W)
            labels=labels,
            instance_ids=np.array([a.ann_id for a in kept], dtype=np.int64),
            is_thing=np.array([self.thing_flags[k] for k in labels], dtype=bool),
            iscrowd=np.array([a.iscrowd for a in kept], dtype=bool),
            image_id=rec.image_id,
            file_name=rec.file_name,
        )
