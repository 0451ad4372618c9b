"""Sample types, the shared reader base class and the error policy of the dataset readers.

Every reader in :mod:`rapsam.data.datasets` is a map-style dataset (``len`` / ``[i]``, usable by a
``torch.utils.data.DataLoader`` without importing torch here) that returns one of two typed
samples, in the spirit of detectron2's ``Instances``: :class:`ImageSample` for images and
:class:`VideoSample` for clips. Labels are *contiguous* indices ``0..K-1`` into the reader's
``classes`` list, which follows the order of the categories in the annotation file; ``category_ids``
maps back to the file's own ids.

Error policy (the same in every reader):

* **Errors** (:class:`DatasetFormatError`, a ``ValueError`` naming the file and the record):
  malformed JSON, missing required keys, duplicate ids, an unknown ``category_id``, an annotation
  pointing at an unknown image/video, a malformed RLE or polygon (bad type, odd coordinate count,
  runs not summing to ``H*W``), an RLE / panoptic PNG / image whose size differs from the
  annotation's, a panoptic PNG that is not RGB. These mean the annotation file does not describe
  the data; going on would train on wrong targets.
* **Skipped and counted** (recorded in ``dataset.skipped`` as :class:`SkippedRecord` and reported
  by one ``warnings.warn`` per dataset): a missing image / frame / panoptic PNG (the sample is
  dropped), an image without a panoptic annotation record, an empty segment (``area == 0``, no
  polygon with 3 points or more, or a mask with no pixels once decoded; the segment is dropped, the
  sample kept), a track that is empty in every frame. Real datasets contain a few of these and a
  user wants the run to go on. Checks that need pixels happen when a sample is loaded: those
  skips are appended to ``skipped`` of the dataset object in the loading process (a DataLoader
  worker holds its own copy).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetFormatError",
    "ImageSample",
    "SegmentationDataset",
    "SkippedRecord",
    "VideoSample",
]

PathLike = str | os.PathLike[str]

#: File extensions the readers accept for images, in the order they are tried.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class DatasetFormatError(ValueError):
    """An annotation file or data file does not follow its format; the message names both."""


@dataclass(frozen=True)
class SkippedRecord:
    """One record a reader left out.

    Attributes:
        file: the file the problem is in (or the missing file).
        record: which record, e.g. ``"image id=12"`` or ``"image id=12 segment id=3"``.
        reason: short reason, e.g. ``"missing image"``, ``"empty segment"``.
    """

    file: str
    record: str
    reason: str


@dataclass
class ImageSample:
    """One annotated image.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(N, H, W)`` bool, one mask per segment / instance.
        labels: ``(N,)`` int64 contiguous class indices into the dataset's ``classes``.
        instance_ids: ``(N,)`` int64 ids from the file (panoptic segment id, COCO annotation id,
            or the raw pixel value for semantic maps).
        is_thing: ``(N,)`` bool.
        iscrowd: ``(N,)`` bool.
        image_id: the image id from the annotation file (int or str; the file stem for ADE20K).
        file_name: the image file name as written in the annotation file (relative to the image
            folder).
    """

    image: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    instance_ids: np.ndarray
    is_thing: np.ndarray
    iscrowd: np.ndarray
    image_id: int | str
    file_name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class VideoSample:
    """One annotated video clip; tracks are the rows.

    Attributes:
        frames: ``T`` arrays of ``(H, W, 3)`` uint8 RGB.
        masks: ``(N, T, H, W)`` bool; all-False where a track is absent from a frame.
        valid: ``(N, T)`` bool, whether the track is annotated (present) in each frame (YouTube-VIS
            ``null`` segmentations and VIPSeg frames without the segment are ``False``).
        labels: ``(N,)`` int64 contiguous class indices.
        track_ids: ``(N,)`` int64 ids from the file (YouTube-VIS annotation id; VIPSeg panoptic
            segment id, constant across frames).
        is_thing: ``(N,)`` bool.
        iscrowd: ``(N,)`` bool.
        video_id: the video id from the annotation file.
        file_names: ``T`` frame file names as written in the annotation file.
        frame_indices: ``(T,)`` int64 positions of the returned frames in the full video.
    """

    frames: list[np.ndarray]
    masks: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    is_thing: np.ndarray
    iscrowd: np.ndarray
    video_id: int | str
    file_names: list[str]
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_frames(self) -> int:
        return len(self.frames)


class SegmentationDataset:
    """Shared state of the readers: the category table and the skip log.

    Attributes:
        classes: class names, index = contiguous label.
        thing_flags: ``True`` for thing classes, aligned with ``classes``.
        category_ids: the annotation file's category id of each contiguous label.
        category_id_to_index: the inverse map, file id -> contiguous label.
        skipped: every record left out (see the module docstring for which cases are skipped).
    """

    classes: tuple[str, ...]
    thing_flags: tuple[bool, ...]
    category_ids: tuple[int, ...]
    category_id_to_index: dict[int, int]

    def __init__(self) -> None:
        self.skipped: list[SkippedRecord] = []
        self._warned_at_load = False

    # ---------------------------------------------------------------- categories
    def _set_categories(
        self, ids: Sequence[int], names: Sequence[str], things: Sequence[bool]
    ) -> None:
        self.category_ids = tuple(int(i) for i in ids)
        self.classes = tuple(names)
        self.thing_flags = tuple(bool(t) for t in things)
        self.category_id_to_index = {cid: k for k, cid in enumerate(self.category_ids)}

    def _parse_categories(
        self, data: dict[str, Any], file: str, *, isthing_key: bool, key: str = "categories"
    ) -> None:
        """Read a COCO-style ``categories`` list (``id``, ``name``, optional ``isthing``).

        Args:
            data: the loaded JSON object.
            file: file name for messages.
            isthing_key: whether ``isthing`` is required (panoptic formats); without it every
                category is a thing (instance formats).
            key: the key holding the list.
        """
        cats = _require(data, key, list, file, "top level")
        ids: list[int] = []
        names: list[str] = []
        things: list[bool] = []
        for j, cat in enumerate(cats):
            where = f"{key}[{j}]"
            if not isinstance(cat, dict):
                raise DatasetFormatError(f"{file}: {where}: a category must be an object")
            cid = _require(cat, "id", int, file, where)
            name = _require(cat, "name", str, file, where)
            if isthing_key:
                isthing = _require(cat, "isthing", (int, bool), file, where)
            else:
                isthing = cat.get("isthing", 1)
            if cid in ids:
                raise DatasetFormatError(
                    f"{file}: {where}: duplicate category id {cid}; each category needs a unique id"
                )
            ids.append(cid)
            names.append(name)
            things.append(bool(isthing))
        self._set_categories(ids, names, things)

    def _category_index(self, category_id: Any, file: str, where: str) -> int:
        try:
            return self.category_id_to_index[category_id]
        except (KeyError, TypeError):
            raise DatasetFormatError(
                f"{file}: {where}: unknown category_id {category_id!r}; the file's 'categories' "
                f"list has ids {sorted(self.category_id_to_index)}. Fix the annotation or the "
                "categories list"
            ) from None

    # ---------------------------------------------------------------- skip log
    def _skip(self, file: str, record: str, reason: str) -> None:
        self.skipped.append(SkippedRecord(str(file), record, reason))

    def _warn_skipped(self) -> None:
        """Issue the single construction-time warning (if anything was skipped)."""
        if not self.skipped:
            return
        reasons: dict[str, int] = {}
        for rec in self.skipped:
            reasons[rec.reason] = reasons.get(rec.reason, 0) + 1
        summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        warnings.warn(
            f"{type(self).__name__}: skipped {len(self.skipped)} record(s) ({summary}); "
            "see dataset.skipped for the files and records",
            stacklevel=3,
        )

    def _skip_at_load(self, file: str, record: str, reason: str) -> None:
        self._skip(file, record, reason)
        if not self._warned_at_load:
            self._warned_at_load = True
            warnings.warn(
                f"{type(self).__name__}: dropped {record} of {file} ({reason}); further drops "
                "while loading are only counted in dataset.skipped",
                stacklevel=3,
            )

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


# -------------------------------------------------------------------------------- helpers


def read_json(path: PathLike) -> Any:
    """Load a JSON file, turning every failure into one :class:`DatasetFormatError`.

    Raises:
        DatasetFormatError: if the file is missing or not valid JSON (with line and column).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetFormatError(
            f"{path}: annotation file not found; pass the path of the annotation JSON"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFormatError(
            f"{path}: malformed JSON ({e}); re-download or regenerate the file"
        ) from None


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def parse_image_table(
    images: list, f: str
) -> tuple[dict[int | str, tuple[str, int, int]], list[int | str]]:
    """COCO ``images`` list -> ({id: (file_name, height, width)}, ids in file order); errors name the record."""
    infos: dict[int | str, tuple[str, int, int]] = {}
    order: list[int | str] = []
    for j, img in enumerate(images):
        where = f"images[{j}]"
        if not isinstance(img, dict):
            raise DatasetFormatError(f"{f}: {where}: an image entry must be an object")
        iid = _require(img, "id", (int, str), f, where)
        if iid in infos:
            raise DatasetFormatError(f"{f}: {where}: duplicate image id {iid!r}")
        infos[iid] = (
            _require(img, "file_name", str, f, where),
            _require(img, "height", int, f, where),
            _require(img, "width", int, f, where),
        )
        order.append(iid)
    return infos, order


def _require(
    obj: dict[str, Any], key: str, typ: type | tuple[type, ...], file: str, where: str
) -> Any:
    """Fetch ``obj[key]`` and check its type, raising a :class:`DatasetFormatError` otherwise."""
    if key not in obj:
        raise DatasetFormatError(f"{file}: {where}: missing required key {key!r}")
    value = obj[key]
    bad_bool = isinstance(value, bool) and typ is int
    if bad_bool or not isinstance(value, typ):
        raise DatasetFormatError(
            f"{file}: {where}: {key!r} must be {_type_name(typ)}, got {type(value).__name__}"
        )
    return value


def load_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey and palette images are converted)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_label_png(path: PathLike) -> np.ndarray:
    """Read a PNG as stored (no colour conversion): ``(H, W)`` or ``(H, W, C)``."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def find_image(folder: Path, file_name: str) -> Path | None:
    """Return ``folder / file_name`` if it exists, else the same stem with another image extension.

    VIPSeg writes the PNG name of the mask in its JSON while the frames are JPEGs; this lookup lets
    every reader take the publishers' file names as they are.
    """
    p = folder / file_name
    if p.is_file():
        return p
    stem = p.with_suffix("")
    for ext in IMAGE_EXTENSIONS:
        q = stem.with_suffix(ext)
        if q.is_file():
            return q
    return None


def check_size(
    array: np.ndarray, height: int, width: int, file: PathLike, where: str, what: str
) -> None:
    """Raise :class:`DatasetFormatError` if ``array`` is not ``height x width``."""
    if array.shape[0] != height or array.shape[1] != width:
        raise DatasetFormatError(
            f"{file}: {where}: {what} is {array.shape[0]}x{array.shape[1]} (HxW) but the "
            f"annotation says {height}x{width}; the file does not belong to this record"
        )
