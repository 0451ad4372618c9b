"""ADE20K semantic segmentation reader (SceneParsing ``ADEChallengeData2016`` layout).

Format (Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017): ``images/{training,
validation}/ADE_*.jpg`` with ``annotations/{training,validation}/ADE_*.png``, single-channel uint8
where pixel value ``v`` in ``1..150`` is class ``v`` of ``objectInfo150.txt`` and ``0`` is "other"
(ignored; mmseg's ``reduce_zero_label``). Class names come from ``objectInfo150.txt`` (tab-separated
``Idx Ratio Train Val Name``) or are passed as a list.

Samples carry one mask per class present (semantic, not instance, segmentation); ``instance_ids``
holds the raw pixel value and the contiguous label is ``value - 1``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rapsam.data.datasets.base import (
    IMAGE_EXTENSIONS,
    DatasetFormatError,
    ImageSample,
    PathLike,
    SegmentationDataset,
    check_size,
    load_label_png,
    load_rgb,
)

__all__ = ["ADE20KSemanticDataset", "read_ade_object_info"]


def read_ade_object_info(path: PathLike) -> list[str]:
    """Read class names from ADE's ``objectInfo150.txt`` (tab-separated) or ``objectInfo150.csv``.

    Both have a header with ``Idx`` and ``Name`` columns; rows are returned in ``Idx`` order.

    Raises:
        DatasetFormatError: if the file is missing, has no ``Idx``/``Name`` header, or the indices
            are not ``1..K``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: class list file not found") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    delim = "\t" if lines and "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delim))
    if not rows:
        raise DatasetFormatError(f"{path}: empty class list file")
    header = [h.strip() for h in rows[0]]
    if "Idx" not in header or "Name" not in header:
        raise DatasetFormatError(
            f"{path}: header must name the 'Idx' and 'Name' columns (as objectInfo150.txt does), "
            f"got {header}"
        )
    ii, ni = header.index("Idx"), header.index("Name")
    entries: list[tuple[int, str]] = []
    for r, row in enumerate(rows[1:], start=2):
        try:
            entries.append((int(row[ii]), row[ni].strip()))
        except (ValueError, IndexError):
            raise DatasetFormatError(
                f"{path}: line {r}: expected an integer Idx and a Name"
            ) from None
    entries.sort()
    if [e[0] for e in entries] != list(range(1, len(entries) + 1)):
        raise DatasetFormatError(f"{path}: Idx values must be 1..K without gaps")
    return [e[1] for e in entries]


class ADE20KSemanticDataset(SegmentationDataset):
    """ADE20K-style semantic reader: each image of ``image_dir`` with ``ann_dir/<stem>.png``.

    Images are taken in sorted file-name order. An image without an annotation PNG is skipped and
    counted; an empty ``image_dir``, a non-single-channel PNG, a size mismatch or a pixel value
    above the number of classes is a :class:`DatasetFormatError` naming the file.

    Args:
        image_dir: e.g. ``ADEChallengeData2016/images/validation``.
        ann_dir: e.g. ``ADEChallengeData2016/annotations/validation``.
        classes: the class names (value ``k+1`` is ``classes[k]``), or the path of
            ``objectInfo150.txt``.
        thing_flags: optional thing/stuff flag per class (ADE's semantic release has none;
            default: all ``False``).
    """

    def __init__(
        self,
        image_dir: PathLike,
        ann_dir: PathLike,
        classes: Sequence[str] | PathLike,
        *,
        thing_flags: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        self.image_dir = Path(image_dir)
        self.ann_dir = Path(ann_dir)
        if isinstance(classes, (str, os.PathLike)):
            names = read_ade_object_info(classes)
        else:
            names = [str(c) for c in classes]
        if not names:
            raise ValueError("classes is empty; pass the class names or objectInfo150.txt")
        if len(names) > 255:
            raise ValueError(f"{len(names)} classes do not fit a uint8 label PNG (max 255)")
        flags = [False] * len(names) if thing_flags is None else [bool(t) for t in thing_flags]
        if len(flags) != len(names):
            raise ValueError(
                f"thing_flags has {len(flags)} entries for {len(names)} classes; give one per class"
            )
        self._set_categories(range(1, len(names) + 1), names, flags)

        if not self.image_dir.is_dir():
            raise DatasetFormatError(f"{self.image_dir}: image folder not found")
        files = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetFormatError(
                f"{self.image_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) found; pass the "
                "folder that holds the images, e.g. images/validation"
            )
        self._records: list[tuple[Path, Path]] = []
        for img in files:
            ann = self.ann_dir / (img.stem + ".png")
            if not ann.is_file():
                self._skip(str(ann), f"image {img.name}", "missing annotation")
                continue
            self._records.append((img, ann))
        self._warn_skipped()

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, idx: int) -> ImageSample:
        img_path, ann_path = self._records[idx]
        image = load_rgb(img_path)
        ann = load_label_png(ann_path)
        where = f"image {img_path.name}"
        if ann.ndim != 2:
            raise DatasetFormatError(
                f"{ann_path}: {where}: a semantic annotation must be a single-channel class-index "
                f"PNG, got shape {ann.shape}"
            )
        check_size(ann, image.shape[0], image.shape[1], ann_path, where, "the annotation")
        values = np.unique(ann)
        values = values[values != 0].astype(np.int64)  # 0 = "other", ignored
        if values.size and values.max() > len(self.classes):
            raise DatasetFormatError(
                f"{ann_path}: {where}: pixel value {int(values.max())} is beyond the "
                f"{len(self.classes)} classes; pass the matching class list"
            )
        labels = values - 1
        return ImageSample(
            image=image,
            masks=ann[None] == values[:, None, None],  # (N, H, W)
            labels=labels,
            instance_ids=values,
            is_thing=np.array([self.thing_flags[k] for k in labels], dtype=bool),
            iscrowd=np.zeros(len(labels), dtype=bool),
            image_id=img_path.stem,
            file_name=img_path.name,
        )
