"""COCO panoptic segmentation reader (things and stuff), for files laid out as COCO publishes them.

Format (Kirillov et al., "Panoptic Segmentation", CVPR 2019; ``cocodataset/panopticapi``):
``panoptic_{split}.json`` holds ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (one per image: ``image_id``, ``file_name`` of the panoptic PNG, ``segments_info``
with ``id``, ``category_id``, ``area``, ``bbox``, ``iscrowd``) and ``categories`` (``id``, ``name``,
``isthing``). The PNG stores each pixel's segment id as ``R + 256 G + 65536 B`` (0 = VOID); pixels
whose id is not listed in ``segments_info`` are VOID too, as in ``panopticapi``.

Typical paths: ``annotations/panoptic_train2017.json``, ``train2017/`` and
``annotations/panoptic_train2017/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rapsam.data.datasets.base import (
    DatasetFormatError,
    ImageSample,
    PathLike,
    SegmentationDataset,
    _require,
    parse_image_table,
    check_size,
    load_label_png,
    load_rgb,
    read_json,
)
from rapsam.data.formats import MAX_PANOPTIC_ID, rgb_to_id

__all__ = ["CocoPanopticDataset", "load_panoptic_ids", "parse_panoptic_segments"]


@dataclass(frozen=True)
class _Record:
    image_id: int | str
    file_name: str
    image_path: Path
    panoptic_path: Path
    height: int
    width: int
    segment_ids: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64
    iscrowd: np.ndarray  # (N,) bool


def parse_panoptic_segments(
    dataset: SegmentationDataset, segments: list, file: str, where: str
) -> list[tuple[int, int, bool]]:
    """Validate a ``segments_info`` list; return ``(segment_id, label, iscrowd)`` per kept segment.

    Segments with ``area == 0`` are skipped and logged on ``dataset``.

    Raises:
        DatasetFormatError: on a missing key, a bad or duplicate id, or an unknown category.
    """
    out: list[tuple[int, int, bool]] = []
    seen: set[int] = set()
    for k, seg in enumerate(segments):
        w = f"{where} segments_info[{k}]"
        if not isinstance(seg, dict):
            raise DatasetFormatError(f"{file}: {w}: a segment must be an object")
        sid = _require(seg, "id", int, file, w)
        if not 0 < sid <= MAX_PANOPTIC_ID:
            raise DatasetFormatError(
                f"{file}: {w}: segment id {sid} is outside [1, {MAX_PANOPTIC_ID}] and cannot "
                "appear in an RGB panoptic PNG"
            )
        if sid in seen:
            raise DatasetFormatError(f"{file}: {w}: duplicate segment id {sid} in one image")
        seen.add(sid)
        if "category_id" not in seg:
            raise DatasetFormatError(f"{file}: {w}: missing required key 'category_id'")
        label = dataset._category_index(seg["category_id"], file, w)
        area = seg.get("area")
        if isinstance(area, (int, float)) and area <= 0:
            dataset._skip(file, f"{where} segment id={sid}", "empty segment")
            continue
        out.append((sid, label, bool(seg.get("iscrowd", 0))))
    return out


def load_panoptic_ids(path: Path, height: int, width: int, where: str) -> np.ndarray:
    """Load a panoptic PNG and decode it to ``(H, W)`` int64 segment ids.

    Raises:
        DatasetFormatError: if the PNG is not RGB(A) or its size is not ``height x width``.
    """
    png = load_label_png(path)
    if png.ndim != 3 or png.shape[2] not in (3, 4):
        raise DatasetFormatError(
            f"{path}: {where}: a panoptic PNG must be RGB (id = R + 256*G + 65536*B), got an array "
            f"of shape {png.shape}; pass the RGB panoptic folder, not a semantic or raw-id folder"
        )
    check_size(png, height, width, path, where, "the panoptic PNG")
    return rgb_to_id(png[..., :3])  # (H, W)


class CocoPanopticDataset(SegmentationDataset):
    """COCO panoptic reader; one :class:`ImageSample` per image with things and stuff segments.

    Samples keep the image order of ``images`` in the JSON. Contiguous labels follow the order of
    ``categories`` in the JSON (COCO lists the 80 things, then the 53 stuff classes). Errors and
    skips follow :mod:`rapsam.data.datasets.base`.

    Args:
        ann_file: the panoptic JSON, e.g. ``annotations/panoptic_val2017.json``.
        image_dir: the image folder, e.g. ``val2017/``.
        panoptic_dir: the panoptic PNG folder, e.g. ``annotations/panoptic_val2017/``.

    Example:
        >>> ds = CocoPanopticDataset("annotations/panoptic_val2017.json", "val2017",
        ...                          "annotations/panoptic_val2017")  # doctest: +SKIP
        >>> s = ds[0]; s.masks.shape, ds.classes[s.labels[0]]  # doctest: +SKIP
    """

    def __init__(self, ann_file: PathLike, image_dir: PathLike, panoptic_dir: PathLike) -> None:
        super().__init__()
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        self.panoptic_dir = Path(panoptic_dir)
        f = str(self.ann_file)
        data = read_json(self.ann_file)
        if not isinstance(data, dict):
            raise DatasetFormatError(f"{f}: top level must be a JSON object")
        self._parse_categories(data, f, isthing_key=True)
        images = _require(data, "images", list, f, "top level")
        anns = _require(data, "annotations", list, f, "top level")

        infos, order = parse_image_table(images, f)

        per_image: dict[int | str, tuple[str, list[tuple[int, int, bool]]]] = {}
        for j, ann in enumerate(anns):
            where = f"annotations[{j}]"
            if not isinstance(ann, dict):
                raise DatasetFormatError(f"{f}: {where}: an annotation must be an object")
            iid = _require(ann, "image_id", (int, str), f, where)
            where = f"annotations[{j}] (image_id={iid!r})"
            if iid not in infos:
                raise DatasetFormatError(
                    f"{f}: {where}: image_id is not listed in 'images'; the annotation file is "
                    "inconsistent"
                )
            if iid in per_image:
                raise DatasetFormatError(f"{f}: {where}: a second annotation for the same image")
            png = _require(ann, "file_name", str, f, where)
            segs = _require(ann, "segments_info", list, f, where)
            per_image[iid] = (png, parse_panoptic_segments(self, segs, f, where))

        self._records: list[_Record] = []
        for iid in order:
            file_name, height, width = infos[iid]
            if iid not in per_image:
                self._skip(f, f"image id={iid!r}", "no panoptic annotation")
                continue
            png, segs = per_image[iid]
            image_path = self.image_dir / file_name
            if not image_path.is_file():
                self._skip(str(image_path), f"image id={iid!r}", "missing image")
                continue
            pan_path = self.panoptic_dir / png
            if not pan_path.is_file():
                self._skip(str(pan_path), f"image id={iid!r}", "missing panoptic PNG")
                continue
            self._records.append(
                _Record(
                    image_id=iid,
                    file_name=file_name,
                    image_path=image_path,
                    panoptic_path=pan_path,
                    height=height,
                    width=width,
                    segment_ids=np.array([s[0] for s in segs], dtype=np.int64),
                    labels=np.array([s[1] for s in segs], dtype=np.int64),
                    iscrowd=np.array([s[2] for s in segs], dtype=bool),
                )
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
        ids = load_panoptic_ids(rec.panoptic_path, rec.height, rec.width, where)
        masks = ids[None] == rec.segment_ids[:, None, None]  # (N, H, W)
        keep = masks.any(axis=(1, 2))  # (N,)
        for sid in rec.segment_ids[~keep]:
            self._skip_at_load(
                str(rec.panoptic_path), f"{where} segment id={int(sid)}", "empty segment"
            )
        labels = rec.labels[keep]
        return ImageSample(
            image=image,
            masks=masks[keep],
            labels=labels,
            instance_ids=rec.segment_ids[keep],
            is_thing=np.array([self.thing_flags[k] for k in labels], dtype=bool),
            iscrowd=rec.iscrowd[keep],
            image_id=rec.image_id,
            file_name=rec.file_name,
        )
