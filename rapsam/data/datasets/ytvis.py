"""YouTube-VIS reader (2019 and 2021 JSON; OVIS uses the same schema).

Format (Yang et al., "Video Instance Segmentation", ICCV 2019; ``youtubevos/MaskTrackRCNN``):
``videos`` (``id``, ``width``, ``height``, ``length``, ``file_names`` relative to the frame folder),
``annotations`` (one per object track: ``id``, ``video_id``, ``category_id``, ``iscrowd``, and
per-frame lists ``segmentations`` (RLE, polygons or ``null`` where the object is absent),
``areas``, ``bboxes``) and ``categories`` (``id``, ``name``). 2019 ships ``train.json`` next to
``train/JPEGImages/``; 2021 ships ``train/instances.json`` and ``train/JPEGImages/``; the schemas
are the same. ``valid``/``test`` files have no ``annotations`` (videos load with no tracks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rapsam.data.datasets.base import (
    DatasetFormatError,
    PathLike,
    SegmentationDataset,
    VideoSample,
    _require,
    check_size,
    find_image,
    load_rgb,
    read_json,
)
from rapsam.data.datasets.coco_instances import check_segmentation, decode_segmentation

__all__ = ["YouTubeVISDataset", "select_frames"]


@dataclass(frozen=True)
class _Track:
    ann_id: int
    label: int
    iscrowd: bool
    segmentations: tuple[Any, ...]  # one per frame: checked segmentation or None


@dataclass(frozen=True)
class _Record:
    video_id: int | str
    file_names: tuple[str, ...]
    frame_paths: tuple[Path, ...]
    height: int
    width: int
    tracks: tuple[_Track, ...]


def select_frames(frames: Sequence[int] | None, num_frames: int) -> np.ndarray:
    """Validate a frame selection; ``None`` selects every frame.

    Raises:
        ValueError: if an index is outside ``[0, num_frames)``.
    """
    if frames is None:
        return np.arange(num_frames, dtype=np.int64)
    idx = np.asarray(list(frames), dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= num_frames)):
        raise ValueError(
            f"frame indices must be in [0, {num_frames}) for this video, got {idx.tolist()}; use "
            "dataset.num_frames(i) to size the selection"
        )
    return idx


class YouTubeVISDataset(SegmentationDataset):
    """YouTube-VIS reader; one :class:`VideoSample` per video, tracks as rows.

    ``dataset[i]`` loads every frame; ``dataset.load(i, frames=[...])`` loads only the chosen
    frames (for clip sampling) and returns every track of the video, so rows line up across clips
    of one video (``valid`` says where each track is present). A frame whose segmentation is
    ``null`` or decodes to no pixels is absent (``valid`` False). A track empty in every frame is
    skipped and counted; a video with a missing frame file is skipped and counted. Other errors
    follow :mod:`rapsam.data.datasets.base`.

    Args:
        ann_file: ``train.json`` (2019) or ``train/instances.json`` (2021).
        video_dir: the frame folder the ``file_names`` are relative to, e.g. ``train/JPEGImages``.
    """

    def __init__(self, ann_file: PathLike, video_dir: PathLike) -> None:
        super().__init__()
        self.ann_file = Path(ann_file)
        self.video_dir = Path(video_dir)
        f = str(self.ann_file)
        data = read_json(self.ann_file)
        if not isinstance(data, dict):
            raise DatasetFormatError(f"{f}: top level must be a JSON object")
        self._parse_categories(data, f, isthing_key=False)
        videos = _require(data, "videos", list, f, "top level")
        anns = data.get("annotations", [])
        if not isinstance(anns, list):
            raise DatasetFormatError(f"{f}: top level: 'annotations' must be a list")

        infos: dict[int | str, tuple[tuple[str, ...], int, int]] = {}
        order: list[int | str] = []
        for j, vid in enumerate(videos):
            where = f"videos[{j}]"
            if not isinstance(vid, dict):
                raise DatasetFormatError(f"{f}: {where}: a video entry must be an object")
            vid_id = _require(vid, "id", (int, str), f, where)
            where = f"videos[{j}] (id={vid_id!r})"
            if vid_id in infos:
                raise DatasetFormatError(f"{f}: {where}: duplicate video id")
            names = _require(vid, "file_names", list, f, where)
            if not names or not all(isinstance(n, str) for n in names):
                raise DatasetFormatError(
                    f"{f}: {where}: 'file_names' must be a non-empty list of frame paths"
                )
            length = vid.get("length", len(names))
            if length != len(names):
                raise DatasetFormatError(
                    f"{f}: {where}: 'length' is {length} but 'file_names' lists {len(names)} frames"
                )
            infos[vid_id] = (
                tuple(names),
                _require(vid, "height", int, f, where),
                _require(vid, "width", int, f, where),
            )
            order.append(vid_id)

        per_video: dict[int | str, list[_Track]] = {v: [] for v in order}
        seen: set[int] = set()
        for j, ann in enumerate(anns):
            where = f"annotations[{j}]"
            if not isinstance(ann, dict):
                raise DatasetFormatError(f"{f}: {where}: an annotation must be an object")
            aid = _require(ann, "id", int, f, where)
            where = f"annotations[{j}] (id={aid})"
            if aid in seen:
                raise DatasetFormatError(f"{f}: {where}: duplicate annotation id")
            seen.add(aid)
            vid_id = _require(ann, "video_id", (int, str), f, where)
            if vid_id not in infos:
                raise DatasetFormatError(
                    f"{f}: {where}: video_id {vid_id!r} is not listed in 'videos'"
                )
            if "category_id" not in ann:
                raise DatasetFormatError(f"{f}: {where}: missing required key 'category_id'")
            label = self._category_index(ann["category_id"], f, where)
            names, height, width = infos[vid_id]
            segs = _require(ann, "segmentations", list, f, where)
            if len(segs) != len(names):
                raise DatasetFormatError(
                    f"{f}: {where}: {len(segs)} segmentations for a video of {len(names)} frames; "
                    "there must be one entry (or null) per frame"
                )
            checked: list[Any] = []
            for t, seg in enumerate(segs):
                if seg is None:
                    checked.append(None)
                    continue
                if not isinstance(seg, (dict, list)):
                    raise DatasetFormatError(
                        f"{f}: {where} frame {t}: a segmentation must be an RLE, polygons or null"
                    )
                seg, hint = check_segmentation(seg, height, width, f, f"{where} frame {t}")
                checked.append(None if hint == 0 else seg)
            if all(s is None for s in checked):
                self._skip(f, f"annotation id={aid} (video id={vid_id!r})", "empty track")
                continue
            per_video[vid_id].append(
                _Track(aid, label, bool(ann.get("iscrowd", 0)), tuple(checked))
            )

        self._records: list[_Record] = []
        for vid_id in order:
            names, height, width = infos[vid_id]
            paths: list[Path] = []
            for name in names:
                p = find_image(self.video_dir, name)
                if p is None:
                    self._skip(str(self.video_dir / name), f"video id={vid_id!r}", "missing frame")
                    break
                paths.append(p)
            else:
                self._records.append(
                    _Record(vid_id, names, tuple(paths), height, width, tuple(per_video[vid_id]))
                )
        self._warn_skipped()

    def __len__(self) -> int:
        return len(self._records)

    def num_frames(self, idx: int) -> int:
        """Number of frames of video ``idx`` (from the JSON)."""
        return len(self._records[idx].file_names)

    def size(self, idx: int) -> tuple[int, int]:
        """``(H, W)`` of video ``idx`` from the JSON."""
        rec = self._records[idx]
        return rec.height, rec.width

    def __getitem__(self, idx: int) -> VideoSample:
        return self.load(idx)

    def load(self, idx: int, frames: Sequence[int] | None = None) -> VideoSample:
        """Load video ``idx``, optionally only the frames at positions ``frames``.

        Args:
            idx: video index.
            frames: frame positions in ``[0, num_frames(idx))``; ``None`` loads all.

        Returns:
            The clip; ``masks`` is ``(N, T, H, W)`` with ``T = len(frames)``.
        """
        rec = self._records[idx]
        sel = select_frames(frames, len(rec.file_names))
        where = f"video id={rec.video_id!r}"
        images = []
        for t in sel:
            img = load_rgb(rec.frame_paths[t])
            check_size(img, rec.height, rec.width, rec.frame_paths[t], where, "the frame")
            images.append(img)
        h, w = rec.height, rec.width
        kept: list[_Track] = []
        masks: list[np.ndarray] = []
        valid: list[np.ndarray] = []
        for tr in rec.tracks:
            m = np.zeros((len(sel), h, w), dtype=bool)  # (T, H, W)
            v = np.zeros(len(sel), dtype=bool)
            for k, t in enumerate(sel):
                seg = tr.segmentations[t]
                if seg is not None:
                    m[k] = decode_segmentation(seg, h, w)
                    v[k] = m[k].any()
            if frames is None and not v.any():
                self._skip_at_load(
                    str(self.ann_file), f"annotation id={tr.ann_id} ({where})", "empty track"
                )
                continue
            kept.append(tr)
            masks.append(m)
            valid.append(v)
        labels = np.array([tr.label for tr in kept], dtype=np.int64)
        return VideoSample(
            frames=images,
            masks=np.stack(masks) if masks else np.zeros((0, len(sel), h, w), dtype=bool),
            valid=np.stack(valid) if valid else np.zeros((0, len(sel)), dtype=bool),
            labels=labels,
            track_ids=np.array([tr.ann_id for tr in kept], dtype=np.int64),
            is_thing=np.array([self.thing_flags[k] for k in labels], dtype=bool),
            iscrowd=np.array([tr.iscrowd for tr in kept], dtype=bool),
            video_id=rec.video_id,
            file_names=[rec.file_names[t] for t in sel],
            frame_indices=sel,
        )
