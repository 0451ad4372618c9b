"""VIPSeg video panoptic reader (the COCO-format release made by the VIPSeg scripts).

Format (Miao et al., "Large-scale Video Panoptic Segmentation in the Wild", CVPR 2022;
``VIPSeg-Dataset/VIPSeg-Dataset`` ``create_panoptic_video_labels.py`` + ``splitjson.py``):
``panoptic_gt_VIPSeg_{split}.json`` holds ``videos`` (``video_id``, ``images``: ``id``,
``file_name``, ``width``, ``height`` per frame), ``annotations`` (``video_id``, ``annotations``: one
per frame with ``image_id``, ``file_name`` and COCO-panoptic ``segments_info``) and ``categories``
(``id`` from 0, ``name``, ``isthing``, ``color``). ``panomasksRGB/<video>/<frame>.png`` uses the
COCO panoptic id encoding, and a segment keeps its id in every frame of a video, so the id is the
track id. Frames are ``images/<video>/<frame>.jpg`` while the JSON names the ``.png`` mask; the
reader tries the name as given, then the same stem with ``.jpg``/``.jpeg``/``.png``.

Typical paths: ``VIPSeg_720P/panoptic_gt_VIPSeg_train.json``, ``VIPSeg_720P/images`` and
``VIPSeg_720P/panomasksRGB``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from rapsam.data.datasets.coco_panoptic import load_panoptic_ids, parse_panoptic_segments
from rapsam.data.datasets.ytvis import select_frames

__all__ = ["VIPSegDataset"]


@dataclass(frozen=True)
class _Record:
    video_id: int | str
    file_names: tuple[str, ...]
    image_paths: tuple[Path, ...]
    panoptic_paths: tuple[Path, ...]
    height: int
    width: int
    track_ids: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64
    iscrowd: np.ndarray  # (N,) bool
    listed: np.ndarray  # (N, T) bool: segment listed in the frame's segments_info


class VIPSegDataset(SegmentationDataset):
    """VIPSeg reader; one :class:`VideoSample` per video, each panoptic segment id a track.

    Tracks cover things and stuff (``is_thing`` tells them apart). A segment id that changes
    category between frames is an error; a video with a missing frame, a missing panoptic PNG or a
    frame without an annotation record is skipped and counted. Other errors follow
    :mod:`rapsam.data.datasets.base`.

    Args:
        ann_file: e.g. ``VIPSeg_720P/panoptic_gt_VIPSeg_val.json``.
        image_dir: folder holding one sub-folder of frames per video (``VIPSeg_720P/images``).
        panoptic_dir: folder holding one sub-folder of panoptic PNGs per video
            (``VIPSeg_720P/panomasksRGB``).
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
        videos = _require(data, "videos", list, f, "top level")
        vanns = _require(data, "annotations", list, f, "top level")

        frames_of: dict[int | str, list[tuple[int | str, str, int, int]]] = {}
        for j, vid in enumerate(videos):
            where = f"videos[{j}]"
            if not isinstance(vid, dict):
                raise DatasetFormatError(f"{f}: {where}: a video entry must be an object")
            vid_id = _require(vid, "video_id", (int, str), f, where)
            where = f"videos[{j}] (video_id={vid_id!r})"
            if vid_id in frames_of:
                raise DatasetFormatError(f"{f}: {where}: duplicate video_id")
            images = _require(vid, "images", list, f, where)
            frames: list[tuple[int | str, str, int, int]] = []
            for k, img in enumerate(images):
                w = f"{where} images[{k}]"
                if not isinstance(img, dict):
                    raise DatasetFormatError(f"{f}: {w}: an image entry must be an object")
                frames.append(
                    (
                        _require(img, "id", (int, str), f, w),
                        _require(img, "file_name", str, f, w),
                        _require(img, "height", int, f, w),
                        _require(img, "width", int, f, w),
                    )
                )
            if len({fr[0] for fr in frames}) != len(frames):
                raise DatasetFormatError(f"{f}: {where}: duplicate frame ids")
            if not frames:
                raise DatasetFormatError(f"{f}: {where}: a video needs at least one frame")
            if len({(fr[2], fr[3]) for fr in frames}) != 1:
                raise DatasetFormatError(f"{f}: {where}: frames of one video differ in size")
            frames_of[vid_id] = frames

        # per video: frame id -> (png name, [(segment id, label, iscrowd), ...])
        anns_of: dict[int | str, dict[int | str, tuple[str, list[tuple[int, int, bool]]]]] = {}
        for j, va in enumerate(vanns):
            where = f"annotations[{j}]"
            if not isinstance(va, dict):
                raise DatasetFormatError(f"{f}: {where}: a video annotation must be an object")
            vid_id = _require(va, "video_id", (int, str), f, where)
            where = f"annotations[{j}] (video_id={vid_id!r})"
            if vid_id not in frames_of:
                raise DatasetFormatError(f"{f}: {where}: video_id is not listed in 'videos'")
            if vid_id in anns_of:
                raise DatasetFormatError(f"{f}: {where}: a second annotation entry for the video")
            frame_ids = {fr[0] for fr in frames_of[vid_id]}
            per_frame: dict[int | str, tuple[str, list[tuple[int, int, bool]]]] = {}
            for k, fa in enumerate(_require(va, "annotations", list, f, where)):
                w = f"{where} annotations[{k}]"
                if not isinstance(fa, dict):
                    raise DatasetFormatError(f"{f}: {w}: a frame annotation must be an object")
                fid = _require(fa, "image_id", (int, str), f, w)
                w = f"{w} (image_id={fid!r})"
                if fid not in frame_ids:
                    raise DatasetFormatError(f"{f}: {w}: image_id is not a frame of this video")
                if fid in per_frame:
                    raise DatasetFormatError(f"{f}: {w}: a second annotation for the same frame")
                png = _require(fa, "file_name", str, f, w)
                segs = _require(fa, "segments_info", list, f, w)
                per_frame[fid] = (png, parse_panoptic_segments(self, segs, f, w))
            anns_of[vid_id] = per_frame

        self._records: list[_Record] = []
        for vid_id, frames in frames_of.items():
            rec = self._build_record(f, vid_id, frames, anns_of.get(vid_id, {}))
            if rec is not None:
                self._records.append(rec)
        self._warn_skipped()

    def _build_record(
        self,
        f: str,
        vid_id: int | str,
        frames: list[tuple[int | str, str, int, int]],
        per_frame: dict[int | str, tuple[str, list[tuple[int, int, bool]]]],
    ) -> _Record | None:
        where = f"video_id={vid_id!r}"
        image_paths: list[Path] = []
        pan_paths: list[Path] = []
        for fid, name, _, _ in frames:
            if fid not in per_frame:
                self._skip(f, f"{where} frame id={fid!r}", "frame without panoptic annotation")
                return None
            img = find_image(self.image_dir / str(vid_id), name)
            if img is None:
                self._skip(str(self.image_dir / str(vid_id) / name), where, "missing frame")
                return None
            pan = self.panoptic_dir / str(vid_id) / per_frame[fid][0]
            if not pan.is_file():
                self._skip(str(pan), where, "missing panoptic PNG")
                return None
            image_paths.append(img)
            pan_paths.append(pan)
        track_info: dict[int, tuple[int, bool]] = {}
        for fid, _, _, _ in frames:
            for sid, label, crowd in per_frame[fid][1]:
                if sid in track_info and track_info[sid][0] != label:
                    raise DatasetFormatError(
                        f"{f}: {where} frame id={fid!r}: segment id {sid} is "
                        f"'{self.classes[label]}' here but '{self.classes[track_info[sid][0]]}' in "
                        "an earlier frame; a VIPSeg segment id must keep its category in a video"
                    )
                track_info.setdefault(sid, (label, crowd))
        sids = sorted(track_info)
        listed = np.zeros((len(sids), len(frames)), dtype=bool)  # (N, T)
        row = {sid: n for n, sid in enumerate(sids)}
        for t, (fid, _, _, _) in enumerate(frames):
            for sid, _, _ in per_frame[fid][1]:
                listed[row[sid], t] = True
        return _Record(
            video_id=vid_id,
            file_names=tuple(fr[1] for fr in frames),
            image_paths=tuple(image_paths),
            panoptic_paths=tuple(pan_paths),
            height=frames[0][2],
            width=frames[0][3],
            track_ids=np.array(sids, dtype=np.int64),
            labels=np.array([track_info[s][0] for s in sids], dtype=np.int64),
            iscrowd=np.array([track_info[s][1] for s in sids], dtype=bool),
            listed=listed,
        )

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

        Every track of the video is returned (rows line up across clips); ``valid`` marks the
        frames where a track is listed and has pixels.

        Args:
            idx: video index.
            frames: frame positions in ``[0, num_frames(idx))``; ``None`` loads all.

        Returns:
            The clip; ``masks`` is ``(N, T, H, W)``.
        """
        rec = self._records[idx]
        sel = select_frames(frames, len(rec.file_names))
        where = f"video_id={rec.video_id!r}"
        images: list[np.ndarray] = []
        n, h, w = len(rec.track_ids), rec.height, rec.width
        masks = np.zeros((n, len(sel), h, w), dtype=bool)  # (N, T, H, W)
        valid = np.zeros((n, len(sel)), dtype=bool)  # (N, T)
        for k, t in enumerate(sel):
            img = load_rgb(rec.image_paths[t])
            check_size(img, h, w, rec.image_paths[t], where, "the frame")
            images.append(img)
            ids = load_panoptic_ids(rec.panoptic_paths[t], h, w, where)
            rows = np.flatnonzero(rec.listed[:, t])
            masks[rows, k] = ids[None] == rec.track_ids[rows, None, None]
            has = masks[rows, k].any(axis=(1, 2))
            valid[rows, k] = has
            for r in rows[~has]:
                self._skip_at_load(
                    str(rec.panoptic_paths[t]),
                    f"{where} frame {int(t)} segment id={int(rec.track_ids[r])}",
                    "empty segment",
                )
        return VideoSample(
            frames=images,
            masks=masks,
            valid=valid,
            labels=rec.labels.copy(),
            track_ids=rec.track_ids.copy(),
            is_thing=np.array([self.thing_flags[k] for k in rec.labels], dtype=bool),
            iscrowd=rec.iscrowd.copy(),
            video_id=rec.video_id,
            file_names=[rec.file_names[t] for t in sel],
            frame_indices=sel,
        )
