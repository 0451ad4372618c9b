"""``VideoPredictor``: video instance / panoptic segmentation with track ids, and prompted tracking.

RAP-SAM (arXiv 2401.10228) segments video with the same object queries as images; its official
video inference (xushilin1/RAP-SAM ``Mask2formerVideoMinVIS``, after MinVIS) links clips by matching
query embeddings. This module offers that protocol, an online mode for live video, and prompted
object tracking (SAM 2's ``add_new_points_or_box`` / ``propagate_in_video`` idea, which the official
code lacks). Frames come from :func:`rapsam.io.open_frames` (video file, folder of frames, camera
index, any iterable of arrays) one at a time.

**Official mode** (``mode="official"``, parity and the YouTube-VIS protocol): the video is cut into
clips of 5 frames (3 for videos of at most 15 frames) as ``video_split`` does; the frames of a clip
are stacked along height so every query predicts a tube mask; clip k's queries are aligned to clip
k-1's by Hungarian matching on 1 - cosine of the final query embeddings; class logits (and IoUs)
are averaged over the clips, so class scores are video-level; every frame then gets the top-100
(query, class) thing pairs, track id = rank + 1 (the same pairs, hence ids, in every frame), and
a panoptic map from the same video-level scores. Clips are decoded as soon as their bounds are
certain (:func:`~rapsam.predictor.tracking.settled_clip_ends`), but video-level scores need the
whole video, so results come after the last frame; the stride-4 logits of all frames are kept
(spilled to a temporary folder past ``max_ram_mb``).

**Online mode** (``mode="online"``, the default, for live video): frames are decoded in windows of
``window`` frames (1 = no latency; a window > 1 is stacked along height like an official clip).
Queries whose instance score (class probability x mean mask probability, as the official instance
score) reaches ``det_thr`` are detections (duplicates removed by mask IoU). Detections are
associated to live tracks by Hungarian matching on 1 - cosine between their embedding and each
track's memory embedding (an EMA of its matched embeddings), mixed with 1 - mask IoU for tracks seen
in the previous window (:class:`~rapsam.predictor.tracking.TrackManager`). A match needs cosine >=
``sim_thr``; unmatched detections scoring >= ``new_track_thr`` get new ids; a track survives
occlusion through its memory embedding for up to ``max_gap`` frames, then is retired. The class of a
track is the argmax of its mean class logits (the official clip averaging, done online). State is
the live tracks only, so memory does not grow with the video length.

**Prompted tracking** (``init_state`` / ``add_prompt`` / ``propagate``): on a prompted frame the
clicks/box go through the prompt encoder, the three decoder stages and the prompt adapter (exactly
:class:`~rapsam.predictor.InteractivePredictor`); the adapter's output kernel k (C,) is the object's
*anchor*. Its mask is ``k . F``, so k is a dynamic-convolution kernel of the object's appearance
(and position, through the neck's coordinate channels). On the next frame the carried kernel is fed
back as a prompt query (``RapSam.decode(prompt_queries=...)``): the decoder starts from the mask
``k . F_{t+1}``, pools the features under it, refines the kernel in three stages and the prompt
adapter gives the new mask, IoU and kernel (K-Net-style kernel propagation). In the same decoder
pass (prompts are isolated from each other), a second candidate re-prompts the object with the box
of its previous mask enlarged by ``box_margin``, an input the prompt encoder was trained on. The
candidate with the higher predicted IoU wins (``propagation="both"``; "kernel" or "box" use one).
Re-anchoring: the new kernel is accepted only if its cosine to the anchor is >= ``prompt_sim_thr``
and its mask is not empty; otherwise the object is reported absent on that frame and the last
confident kernel is kept, so it is found again when it reappears instead of drifting onto
something else. Pixels claimed by several objects go to the highest logit. A prompt on a later
frame re-anchors the object from there (``propagate(state, start_frame=f)`` resumes from the
object states saved at frame f - 1; prompts may also be added to future frames while iterating).

Example::

    vp = VideoPredictor(model)
    for frame_idx, res in vp.track("clip.mp4"):              # online; res.instances.track_ids
        ...
    state = vp.init_state("clip.mp4")
    vp.add_prompt(state, 0, obj_id=1, points=[[120, 80]], labels=[1])
    for frame_idx, res in vp.propagate(state):               # res.instances: one mask per object
        ...
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import VideoConfig
from ..modeling.rapsam import Prompts, RapSam, RapSamOutput
from ..structures import InstanceResult, PanopticResult, Segment, masks_to_boxes
from .base import BasePredictor
from .interactive import parse_prompts
from .postprocess import (
    instance_scores,
    instance_topk,
    largest_component,
    panoptic_keep,
    panoptic_postprocess,
    segment_stats,
)
from .tracking import (
    TrackerConfig,
    TrackManager,
    match_embeddings,
    official_clip_size,
    settled_clip_ends,
    video_split,
)
from .transforms import PreparedImage, logits_to_original

MODES = ("online", "official")
TASKS = ("instance", "panoptic")
PROPAGATIONS = ("both", "kernel", "box")


# ------------------------------------------------------------------------------------------ results
@dataclass
class FrameResult:
    """Results of one video frame.

    Attributes:
        frame_idx: index of the frame in the source.
        instances: tracked things with ``track_ids`` (online: track ids; official: rank + 1 of the
            video-level (query, class) pair; prompted: the object ids), masks at the frame size.
        panoptic: panoptic map whose segment ids are stable over the video (stuff: class + 1;
            things: ``num_classes`` + track id), or None when not asked for.
        image: the (H, W, 3) uint8 RGB frame when ``keep_images=True``.
        speed: timings in milliseconds (this frame's share of its window / clip).
    """

    frame_idx: int
    instances: InstanceResult
    panoptic: PanopticResult | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    speed: dict[str, float] = field(default_factory=dict)

    @property
    def track_ids(self) -> torch.Tensor | None:
        return self.instances.track_ids

    def plot(self, image: np.ndarray | None = None, score_thr: float = 0.0, **kwargs: Any) -> np.ndarray:
        """Instances (score >= ``score_thr``) drawn with their id colours on ``image`` (default: the kept frame)."""
        img = self.image if image is None else image
        if img is None:
            raise ValueError("no image to draw on: pass image=frame, or track(..., keep_images=True)")
        ins = self.instances
        if len(ins):
            ins = ins[ins.scores >= score_thr]
        return ins.plot(img, **kwargs)


# ------------------------------------------------------------------------------------------ state
@dataclass
class _Prompt:
    """Clicks / box of one object on one frame, in original-frame pixels."""

    points: np.ndarray | None  # (n, 2)
    labels: np.ndarray | None  # (n,)
    box: np.ndarray | None  # (4,)


@dataclass
class _ObjState:
    """A prompted object carried between frames (model-frame quantities)."""

    kernel: torch.Tensor  # (C,) last confident adapter kernel
    anchor: torch.Tensor  # (C,) kernel of the latest user prompt
    box: torch.Tensor | None  # (4,) xyxy box of the last confident mask, resized-image pixels
    last_seen: int


@dataclass
class VideoState:
    """Prompted-tracking session of one video (made by ``VideoPredictor.init_state``).

    Attributes:
        source: what was opened (re-opened for each ``propagate`` when possible).
        size: (H, W) of the frames.
        num_frames: frame count declared by the source, or None (cameras, some containers).
        fps: frame rate reported by the source, or None.
        name: description of the source.
        prompts: frame index -> object id -> prompt.
        obj_ids: object ids in the order they were first prompted.
        history: frame index -> object id -> carried state after that frame (a few KB per frame),
            so ``propagate(start_frame=f)`` can resume.
        frames_processed: frames the last ``propagate`` went through.
    """

    source: Any
    size: tuple[int, int]
    num_frames: int | None
    fps: float | None
    name: str
    on_size_change: str = "error"
    prompts: dict[int, dict[int, _Prompt]] = field(default_factory=dict)
    obj_ids: list[int] = field(default_factory=list)
    history: dict[int, dict[int, _ObjState]] = field(default_factory=dict, repr=False)
    frames_processed: int = 0
    _pending_source: Any = field(default=None, repr=False)
    _reopenable: bool = True
    _consumed: bool = False


class _ClipStore:
    """Per-clip arrays kept in RAM up to a budget, then spilled to a temporary folder."""

    def __init__(self, max_ram_bytes: int) -> None:
        self.max_ram_bytes = max_ram_bytes
        self._ram: dict[Any, Any] = {}
        self._files: dict[Any, Path] = {}
        self._used = 0
        self._tmp: tempfile.TemporaryDirectory | None = None

    def put(self, key: Any, value: torch.Tensor | np.ndarray) -> None:
        arr = value.numpy() if isinstance(value, torch.Tensor) else value
        if self._used + arr.nbytes <= self.max_ram_bytes:
            self._ram[key] = arr
            self._used += arr.nbytes
            return
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rapsam_video_")
        path = Path(self._tmp.name) / f"{len(self._files)}.npy"
        np.save(path, arr)
        self._files[key] = path

    def get(self, key: Any) -> np.ndarray:
        """The array under ``key`` (kept in the store)."""
        return self._ram[key] if key in self._ram else np.load(self._files[key])

    def pop(self, key: Any) -> np.ndarray:
        if key in self._ram:
            arr = self._ram.pop(key)
            self._used -= arr.nbytes
            return arr
        path = self._files.pop(key)
        arr = np.load(path)
        path.unlink(missing_ok=True)
        return arr

    @property
    def spilled(self) -> bool:
        return self._tmp is not None

    def close(self) -> None:
        self._ram.clear()
        self._files.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@dataclass
class _Clip:
    frame_indices: list[int]
    cls: torch.Tensor  # (Q, K+1)
    embed: torch.Tensor  # (Q, C)
    ms: float


# ------------------------------------------------------------------------------------------ predictor
class VideoPredictor(BasePredictor):
    """Video instance / panoptic segmentation with track ids, and prompted object tracking.

    Args:
        model: a ``RapSam`` (with a vocabulary for ``track``; prompted tracking works without).
        mode: default mode of ``track``: "online" (live video) or "official" (parity, YouTube-VIS).
        image_scale: (long, short) test resize; None keeps the frame size; "model" (default): for ``track``
            the model config's ``video.test_scale``, else its ``test_scale`` (the official YouTube-VIS
            evaluation uses (1280, 736)), and for prompted tracking its ``test_scale`` (the image
            scale its prompts were trained at).
        window: online mode: frames decoded together (stacked along height), 1 = no latency.
        det_thr: online mode: instance score a query needs to be a detection.
        nms_iou: online mode: a detection whose stride-4 mask IoU with a better one exceeds this is
            a duplicate.
        max_detections: online mode: at most this many detections per window.
        tracker: online association parameters (``sim_thr``, ``new_track_thr``, ``max_gap``, ...).
        clip_size, clip_size_small, small_clip_thr: official clip split (5, 3, 15).
        max_per_image: official mode: (query, class) pairs per frame (100).
        object_mask_thr, iou_thr: panoptic post-processing (default: the model config's keep threshold, official 0.8; 0.8).
        max_ram_mb: official mode: stride-4 logits kept in RAM up to this, the rest in a temp folder.
        propagation: prompted tracking: "both" (kernel and box candidates, best predicted IoU),
            "kernel" or "box".
        prompt_sim_thr: prompted tracking: cosine to the anchor kernel a propagated kernel needs.
        box_margin: prompted tracking: the re-prompt box is the last box enlarged by this fraction
            of its size on each side.
        non_overlap: prompted tracking: a pixel belongs to at most one object (highest logit).
        largest_component: tracked instances keep their most confident connected region per frame
            (``postprocess.largest_component``); None: the model config's ``video.largest_component``
            (off for the official models).
        track_nms_iou: official mode: drop a (query, class) track whose video-level stride-4 mask IoU
            with a better-scored track of the same class exceeds this; None: off; "model" (default): the
            model config's ``video.track_nms_iou`` (off for the official models).
        device: run on this device.
    """

    def __init__(
        self,
        model: RapSam,
        *,
        mode: str = "online",
        image_scale: tuple[int, int] | None | str = "model",
        window: int = 1,
        det_thr: float = 0.3,
        nms_iou: float = 0.7,
        max_detections: int = 50,
        tracker: TrackerConfig | None = None,
        clip_size: int = 5,
        clip_size_small: int = 3,
        small_clip_thr: int = 15,
        max_per_image: int = 100,
        object_mask_thr: float | None = None,
        iou_thr: float = 0.8,
        max_ram_mb: float = 2048,
        propagation: str = "both",
        prompt_sim_thr: float = 0.3,
        box_margin: float = 0.1,
        non_overlap: bool = True,
        largest_component: bool | None = None,
        track_nms_iou: float | None | str = "model",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(model, image_scale=image_scale, device=device)
        #: resize of prompted tracking (``init_state`` / ``propagate``)
        self.prompt_scale = (BasePredictor._model_scale(getattr(self.model, "config", None))
                             if image_scale == "model" else self.image_scale)
        video_cfg = _video_config(self.model)
        if largest_component is None:
            largest_component = video_cfg.largest_component
        if not isinstance(largest_component, bool):
            raise ValueError(f"largest_component must be True, False or None (the model's), got {largest_component!r}")
        if track_nms_iou == "model":
            track_nms_iou = video_cfg.track_nms_iou
        if track_nms_iou is not None and (isinstance(track_nms_iou, (str, bool)) or not 0.0 <= track_nms_iou <= 1.0):
            raise ValueError(f"track_nms_iou must lie in [0, 1], be None (off) or 'model', got {track_nms_iou!r}")
        _check_choice("mode", mode, MODES)
        _check_choice("propagation", propagation, PROPAGATIONS)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be a positive int (frames decoded together), got {window!r}")
        if clip_size < 1 or clip_size_small < 1:
            raise ValueError(f"clip sizes must be >= 1, got {clip_size}, {clip_size_small}")
        if not 0.0 <= nms_iou <= 1.0 or max_detections < 1 or max_per_image < 1:
            raise ValueError("nms_iou must lie in [0, 1]; max_detections and max_per_image must be >= 1")
        if box_margin < 0 or max_ram_mb < 0:
            raise ValueError(f"box_margin and max_ram_mb must be >= 0, got {box_margin}, {max_ram_mb}")
        self.mode = mode
        self.window = window
        self.det_thr = det_thr
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.tracker_config = tracker or TrackerConfig()
        self.clip_size = clip_size
        self.clip_size_small = clip_size_small
        self.small_clip_thr = small_clip_thr
        self.max_per_image = max_per_image
        if object_mask_thr is None:  # the model's own (official 0.8)
            object_mask_thr = float(getattr(getattr(self.model, "config", None), "object_mask_thr", 0.8))
        if not 0.0 <= object_mask_thr < 1.0:
            raise ValueError(f"object_mask_thr must be in [0, 1), got {object_mask_thr}")
        self.object_mask_thr = object_mask_thr
        self.iou_thr = iou_thr
        self.max_ram_bytes = int(max_ram_mb * 2**20)
        self.propagation = propagation
        self.prompt_sim_thr = prompt_sim_thr
        self.box_margin = box_margin
        self.non_overlap = non_overlap
        self.largest_component = largest_component
        self.track_nms_iou = None if track_nms_iou is None else float(track_nms_iou)
        #: Tracks started during the last ``track`` run (online) / ids used (official).
        self.num_tracks = 0
        #: The track manager of the current / last online run (its live tracks, ``retired`` count).
        self.tracker: TrackManager | None = None

    # ============================================================================= shared plumbing
    @staticmethod
    def _model_scale(cfg: Any) -> tuple[int, int]:
        """``image_scale="model"``: the config's video test scale, else its image test scale."""
        video_scale = getattr(getattr(cfg, "video", None), "test_scale", None)
        return tuple(video_scale) if video_scale is not None else BasePredictor._model_scale(cfg)

    @staticmethod
    def _open(source: Any, on_size_change: str) -> Any:
        from ..io.video import FrameSource, open_frames

        return source if isinstance(source, FrameSource) else open_frames(source, on_size_change=on_size_change)

    @staticmethod
    def _limited(frames: Any, max_frames: int | None, on_frame: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
        for n, item in enumerate(frames):
            if max_frames is not None and n >= max_frames:
                return
            if on_frame is not None:
                on_frame(item[0])
            yield item

    def _features(self, prepared: list[PreparedImage]) -> torch.Tensor:
        x = torch.cat([p.tensor for p in prepared]) if len(prepared) > 1 else prepared[0].tensor  # (T, 3, Hp, Wp)
        return self.model.extract_features(x)

    @torch.inference_mode()
    def predict_clip_torch(self, images: torch.Tensor) -> RapSamOutput:
        """Object queries over one clip: normalised, padded frames (T, 3, Hp, Wp) -> ``RapSamOutput``
        with tube masks (1, Q, T, h, w) (T = 1 gives (1, Q, h, w)) and (1, Q, C) embeddings."""
        return self.model.decode(self.model.extract_features(images), num_frames=images.shape[0])

    # ============================================================================= track (VIS / VPS)
    def track(
        self,
        source: Any,
        *,
        mode: str | None = None,
        tasks: Sequence[str] = ("instance",),
        keep_images: bool = False,
        max_frames: int | None = None,
        on_size_change: str = "error",
        on_frame: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, FrameResult]]:
        """Segment and track every frame of ``source``.

        Args:
            source: video path, folder of frames, camera index, iterable of (H, W, 3) arrays, or an
                open ``FrameSource``.
            mode: "online" or "official" (default: the predictor's ``mode``).
            tasks: any of "instance" (tracked instances, always computed) and "panoptic".
            keep_images: attach each RGB frame to its result (for overlays).
            max_frames: stop after this many frames.
            on_size_change: frames whose size differs from the first: "error" (default), "resize"
                or "skip" (with a warning), see ``rapsam.io.open_frames``.
            on_frame: called with each frame index as the frame is read (e.g. a progress bar).

        Yields:
            ``(frame_idx, FrameResult)`` in frame order: online as soon as a window is decoded,
            official after the last frame (class scores are video-level).

        Raises:
            rapsam.io.VideoReadError: unreadable, empty or corrupt source (a truncated file warns and
                stops at the last readable frame); a frame of another size with "error".
            RuntimeError: the model has no vocabulary.
        """
        mode = self.mode if mode is None else mode
        _check_choice("mode", mode, MODES)
        tasks = tuple(tasks)
        bad = [t for t in tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; choose from {TASKS}")
        _check_max_frames(max_frames)
        self._require_vocabulary()
        src = self._open(source, on_size_change)
        return self._track_iter(src, mode, tasks, keep_images, max_frames, on_frame)

    def _track_iter(self, src: Any, mode: str, tasks: tuple[str, ...], keep: bool, max_frames: int | None,
                    on_frame: Callable[[int], None] | None) -> Iterator[tuple[int, FrameResult]]:
        frames = self._limited(src, max_frames, on_frame)
        try:
            if mode == "online":
                yield from self._run_online(frames, tasks, keep)
            else:
                yield from self._run_official(frames, tasks, keep)
        finally:
            src.close()

    __call__ = track

    # ----------------------------------------------------------------------------- online
    def _run_online(self, frames: Iterator, tasks: tuple[str, ...], keep: bool) -> Iterator[tuple[int, FrameResult]]:
        tm = TrackManager(self.tracker_config)
        self.tracker = tm
        self.num_tracks = 0
        buf: list[tuple[int, np.ndarray, PreparedImage, float]] = []
        for idx, rgb in frames:
            t0 = time.perf_counter()
            buf.append((idx, rgb, self.prepare(rgb), 1e3 * (time.perf_counter() - t0)))
            if len(buf) == self.window:
                yield from self._online_window(buf, tm, tasks, keep)
                buf = []
        if buf:
            yield from self._online_window(buf, tm, tasks, keep)
        self.num_tracks = tm.num_created

    def _online_window(self, buf: list, tm: TrackManager, tasks: tuple[str, ...], keep: bool
                       ) -> Iterator[tuple[int, FrameResult]]:
        t0 = time.perf_counter()
        prepared = [b[2] for b in buf]
        pr = prepared[0]
        n_t = len(buf)
        with torch.inference_mode():
            out = self.model.decode(self._features(prepared), num_frames=n_t)
            final = out.object_outputs[-1]
            cls = final.cls_logits[0]  # (Q, K+1)
            logits = final.mask_logits[0]
            if n_t == 1:
                logits = logits[:, None]  # (Q, 1, h, w)
            emb = out.object_embed[0]  # (Q, C)
            t1 = time.perf_counter()
            det, scores, binary = self._detections(cls, logits, pr)
            det_d = det.to(cls.device)
            ids = tm.update(buf[0][0], buf[-1][0], emb[det_d], scores, cls[det_d], binary)
            t2 = time.perf_counter()
            results = []
            for t, (idx, rgb, _, prep_ms) in enumerate(buf):
                s0 = time.perf_counter()
                keep_rows = (ids >= 0) & binary[:, t].flatten(1).any(1)  # tracked and visible in this frame
                q = det[keep_rows]
                tids = ids[keep_rows]
                ins = self._tracked_instances(logits[q.to(logits.device), t], q, tids, tm, pr)
                pan = None
                if "panoptic" in tasks:
                    pan = self._online_panoptic(cls, logits[:, t], q, tids, tm, pr)
                speed = {
                    "preprocess": prep_ms,
                    "inference": 1e3 * (t1 - t0) / n_t,
                    "tracking": 1e3 * (t2 - t1) / n_t,
                    "postprocess": 1e3 * (time.perf_counter() - s0),
                }
                ins.speed = speed
                results.append((idx, FrameResult(idx, ins, pan, rgb if keep else None, speed)))
        yield from results

    def _detections(self, cls: torch.Tensor, logits: torch.Tensor, pr: PreparedImage
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries that are detections: (indices (D,), scores (D,), stride-4 masks (D, T, h, w) bool)."""
        things = torch.tensor(self.model.thing_flags, dtype=torch.bool, device=cls.device)
        probs = cls.softmax(-1)[:, :-1].masked_fill(~things, 0.0)  # (Q, K)
        cls_score = probs.max(-1).values  # (Q,)
        # score = class prob x mask quality <= class prob: only these queries can pass
        cand = torch.nonzero(cls_score >= self.det_thr).flatten()
        hv = min(logits.shape[-2], math.ceil(pr.img_size[0] / 4))
        wv = min(logits.shape[-1], math.ceil(pr.img_size[1] / 4))
        lv = logits[cand, :, :hv, :wv]  # (D', T, hv, wv) the unpadded part
        binary = lv > 0
        area = binary.flatten(2).sum(-1)  # (D', T)
        quality = (lv.sigmoid() * binary).flatten(2).sum(-1) / area.clamp(min=1)  # (D', T)
        present = area > 0
        qual = (quality * present).sum(1) / present.sum(1).clamp(min=1)  # (D',)
        score = cls_score[cand] * qual
        ok = torch.nonzero((score >= self.det_thr) & present.any(1)).flatten()
        ok = ok[torch.argsort(score[ok], descending=True, stable=True)][: self.max_detections]
        keep = ok[_mask_nms(binary[ok].flatten(1), self.nms_iou).to(ok.device)]
        full = torch.zeros((len(keep), *logits.shape[1:]), dtype=torch.bool, device=logits.device)
        full[:, :, :hv, :wv] = binary[keep]  # (D, T, h, w)
        return cand[keep].cpu(), score[keep].cpu(), full.cpu()

    def _track_class(self, tm: TrackManager, tid: int) -> tuple[int, float]:
        """(label, class probability) of a track from its mean class logits, things only."""
        logits = tm.tracks[tid].cls_logits
        probs = logits.softmax(-1)[:-1]
        things = torch.tensor(self.model.thing_flags, dtype=torch.bool)  # (K,)
        probs = probs.masked_fill(~things, -1.0)
        p, lab = probs.max(0)
        return int(lab), float(p)

    def _tracked_instances(self, logits: torch.Tensor, queries: torch.Tensor, tids: torch.Tensor,
                           tm: TrackManager, pr: PreparedImage) -> InstanceResult:
        """Stride-4 logits (N, h, w) of tracked queries -> ``InstanceResult`` at the frame size."""
        full = logits_to_original(logits, pr.pad_size, pr.img_size, pr.ori_size)  # (N, H, W)
        if self.largest_component:
            full = largest_component(full)
        cls_info = [self._track_class(tm, int(t)) for t in tids]
        labels = torch.tensor([c[0] for c in cls_info], dtype=torch.long)
        probs = torch.tensor([c[1] for c in cls_info], dtype=full.dtype, device=full.device)
        masks, scores = instance_scores(full, probs)
        nonempty = masks.flatten(1).any(1).cpu()
        order = torch.argsort(scores.cpu(), descending=True, stable=True)
        order = order[nonempty[order]]
        return InstanceResult(
            masks=masks.cpu()[order],
            scores=scores.cpu()[order],
            labels=labels[order],
            track_ids=tids[order].clone(),
            query_indices=queries[order].clone(),
            class_names=list(self.model.class_names),
            image_size=pr.ori_size,
        )

    def _online_panoptic(self, cls: torch.Tensor, logits: torch.Tensor, q_tracked: torch.Tensor,
                         tids: torch.Tensor, tm: TrackManager, pr: PreparedImage) -> PanopticResult:
        """Panoptic map of one frame: stuff queries by the official rule + the tracked things."""
        idx, sc, lb = panoptic_keep(cls, self.object_mask_thr)
        flags = self.model.thing_flags
        tracked = set(q_tracked.tolist())
        stuff = [i for i in range(len(idx)) if not flags[int(lb[i])] and int(idx[i]) not in tracked]
        queries = [int(idx[i]) for i in stuff] + [int(q) for q in q_tracked]
        scores = [float(sc[i]) for i in stuff]
        labels = [int(lb[i]) for i in stuff]
        ids: dict[int, int] = {}
        for q, t in zip(q_tracked.tolist(), tids.tolist()):
            lab, p = self._track_class(tm, t)
            scores.append(p)
            labels.append(lab)
            ids[q] = t
        order = sorted(range(len(queries)), key=lambda i: queries[i])  # official visiting order
        qs = torch.tensor([queries[i] for i in order], dtype=torch.long)
        return self._panoptic(
            torch.tensor([scores[i] for i in order]), torch.tensor([labels[i] for i in order], dtype=torch.long),
            logits, qs, pr, lambda q, lab: ids.get(q),
        )

    def _panoptic(self, scores: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, queries: torch.Tensor,
                  pr: PreparedImage, thing_id: Any) -> PanopticResult:
        """Official pixel assignment; segment ids stable over the video (see ``FrameResult``)."""
        k = self.model.num_classes
        dev = logits.device
        full = logits_to_original(logits[queries.to(dev)], pr.pad_size, pr.img_size, pr.ori_size)
        raw = panoptic_postprocess(scores.to(dev), labels.to(dev), full, self.model.thing_flags, self.iou_thr, True,
                                   queries)
        lut = torch.zeros(len(raw.labels) + 1, dtype=torch.int32)
        segs = []
        names = self.model.class_names
        areas, boxes = segment_stats(raw.seg_ids, len(raw.labels))  # vectorised, no per-segment full-size masks
        for i, (lab, sc, q, th) in enumerate(zip(raw.labels, raw.scores, raw.queries, raw.is_thing)):
            sid = k + thing_id(q, lab) if th else lab + 1
            lut[i + 1] = sid
            segs.append(Segment(sid, lab, names[lab], sc, th, int(areas[i]), tuple(boxes[i].tolist()), q))
        seg_ids = lut[raw.seg_ids.long().cpu()]
        return PanopticResult(seg_ids, segs, list(names), pr.ori_size)

    # ----------------------------------------------------------------------------- official
    def _run_official(self, frames: Iterator, tasks: tuple[str, ...], keep: bool) -> Iterator[tuple[int, FrameResult]]:
        store = _ClipStore(self.max_ram_bytes)
        try:
            clips, pr, n = self._official_clips(frames, store, keep)
            if n == 0:
                return
            yield from self._official_emit(clips, pr, store, tasks, keep)
        finally:
            store.close()

    def _official_clips(self, frames: Iterator, store: _ClipStore, keep: bool
                        ) -> tuple[list[_Clip], PreparedImage | None, int]:
        """Decode the official clips as their bounds settle; logits (and frames) go to ``store``."""
        pending: list[tuple[int, np.ndarray, PreparedImage]] = []
        clips: list[_Clip] = []
        done = 0
        n = 0
        pr = None

        def run(end: int) -> None:
            nonlocal pending, done
            take, pending = pending[: end - done], pending[end - done:]
            t0 = time.perf_counter()
            x = torch.cat([p.tensor for _, _, p in take])
            out = self.predict_clip_torch(x)
            final = out.object_outputs[-1]
            m = final.mask_logits[0]
            if m.dim() == 3:
                m = m[:, None]  # (Q, 1, h, w)
            i = len(clips)
            store.put(("logits", i), m.float().cpu().contiguous())
            if keep:
                store.put(("frames", i), np.stack([f for _, f, _ in take]))
            clips.append(_Clip([f for f, _, _ in take], final.cls_logits[0].cpu(), out.object_embed[0].cpu(),
                               1e3 * (time.perf_counter() - t0)))
            done = end

        for idx, rgb in frames:
            p = self.prepare(rgb)
            pr = pr or p
            pending.append((idx, rgb if keep else None, p))
            n += 1
            for end in settled_clip_ends(n, self.clip_size, self.clip_size_small, self.small_clip_thr):
                if end > done:
                    run(end)
        if n:
            size = official_clip_size(n, self.clip_size, self.clip_size_small, self.small_clip_thr)
            for end in video_split(n, size):
                if end > done:
                    run(end)
        return clips, pr, n

    @torch.inference_mode()
    def _official_emit(self, clips: list[_Clip], pr: PreparedImage, store: _ClipStore, tasks: tuple[str, ...],
                       keep: bool) -> Iterator[tuple[int, FrameResult]]:
        t0 = time.perf_counter()
        perms = [torch.arange(clips[0].embed.shape[0])]
        aligned = clips[0].embed
        for c in clips[1:]:
            perm = match_embeddings(aligned, c.embed)
            perms.append(perm)
            aligned = c.embed[perm]
        cls = sum(c.cls[p] for c, p in zip(clips, perms)) / len(clips)  # video-level (Q, K+1)
        cls_scores, labels, queries = instance_topk(cls, self.model.thing_flags, self.max_per_image)
        if self.track_nms_iou is not None:
            kept = self._track_nms(perms, store, pr, cls_scores, labels, queries)
            cls_scores, labels, queries = cls_scores[kept], labels[kept], queries[kept]
        track_ids = torch.arange(1, len(queries) + 1)
        self.num_tracks = len(queries)
        pair_id = {(int(q), int(lab)): int(t) for q, lab, t in zip(queries, labels, track_ids)}
        pidx, psc, plb = panoptic_keep(cls, self.object_mask_thr)
        uq, inv = torch.unique(queries, return_inverse=True)
        match_ms = 1e3 * (time.perf_counter() - t0)
        n_total = sum(len(c.frame_indices) for c in clips)
        for i, (c, perm) in enumerate(zip(clips, perms)):
            logits = torch.from_numpy(store.pop(("logits", i)))[perm]  # (Q, T, h, w)
            imgs = store.pop(("frames", i)) if keep else None
            for t, idx in enumerate(c.frame_indices):
                s0 = time.perf_counter()
                lt = logits[:, t].to(self.device)
                full = logits_to_original(lt[uq.to(lt.device)], pr.pad_size, pr.img_size, pr.ori_size)
                if self.largest_component:
                    full = largest_component(full)
                full = full[inv]
                masks, scores = instance_scores(full, cls_scores.to(full.device))
                order = torch.argsort(scores.cpu(), descending=True, stable=True)
                ins = InstanceResult(
                    masks=masks.cpu()[order], scores=scores.cpu()[order], labels=labels[order].cpu(),
                    track_ids=track_ids[order], query_indices=queries[order].cpu(),
                    class_names=list(self.model.class_names), image_size=pr.ori_size,
                )
                pan = None
                if "panoptic" in tasks:
                    pan = self._panoptic(psc, plb, lt, pidx, pr,
                                         lambda q, lab: pair_id.get((q, lab), self.max_per_image + 1 + q))
                speed = {"inference": c.ms / len(c.frame_indices), "tracking": match_ms / n_total,
                         "postprocess": 1e3 * (time.perf_counter() - s0)}
                ins.speed = speed
                yield idx, FrameResult(idx, ins, pan, imgs[t] if imgs is not None else None, speed)

    def _track_nms(self, perms: list[torch.Tensor], store: _ClipStore, pr: PreparedImage,
                   scores: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Indices of the (query, class) pairs that survive same-class NMS on video-level mask IoU.

        IoUs come from the stride-4 masks (logit > 0, the unpadded part) summed over all frames.
        """
        uq, inv = torch.unique(queries, return_inverse=True)
        hv, wv = math.ceil(pr.img_size[0] / 4), math.ceil(pr.img_size[1] / 4)
        inter = torch.zeros(len(uq), len(uq), dtype=torch.float64)
        for i, perm in enumerate(perms):
            logits = torch.from_numpy(store.get(("logits", i)))[perm][uq]  # (U, T, h, w)
            b = (logits[..., :hv, :wv] > 0).transpose(0, 1).flatten(2).float()  # (T, U, P)
            inter += (b @ b.transpose(1, 2)).sum(0).double()
        area = inter.diagonal()
        iou = (inter / (area[:, None] + area[None] - inter).clamp(min=1)).numpy()
        us, labs = inv.tolist(), labels.tolist()
        kept: list[int] = []
        for j in torch.argsort(scores.cpu(), descending=True, stable=True).tolist():
            if not any(labs[k] == labs[j] and us[k] != us[j] and iou[us[j], us[k]] > self.track_nms_iou
                       for k in kept):
                kept.append(j)
        return torch.tensor(sorted(kept), dtype=torch.long)

    # ============================================================================= prompted tracking
    def init_state(self, source: Any, *, on_size_change: str = "error") -> VideoState:
        """Open ``source`` for prompted tracking (the first frame is decoded to learn the size).

        Args:
            source: video path, folder of frames, list / array of frames (re-readable: ``propagate``
                may run several times), or a camera / generator (one pass only).
            on_size_change: see ``rapsam.io.open_frames``.

        Raises:
            rapsam.io.VideoReadError: unreadable, empty or corrupt source.
        """
        from ..io.video import FrameSource, open_frames

        if isinstance(source, FrameSource):
            src, reopenable = source, False
        else:
            src = open_frames(source, on_size_change=on_size_change)
            reopenable = _is_reopenable(source)
        state = VideoState(source, src.size, src.num_frames, src.fps, src.name, on_size_change)
        state._pending_source = src
        state._reopenable = reopenable
        return state

    def add_prompt(
        self,
        state: VideoState,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        *,
        clear: bool = False,
    ) -> None:
        """Add clicks and/or a box for object ``obj_id`` on frame ``frame_idx`` (original pixels).

        Clicks on the same (frame, object) accumulate unless ``clear``; a new box replaces the old
        one. The next ``propagate`` re-anchors the object on this frame.

        Args:
            state: from ``init_state``.
            frame_idx: 0-based frame index.
            obj_id: your id for the object (any int); it is the ``track_id`` of its masks.
            points: (n, 2) clicks (x, y) of this object, or one (2,) click.
            labels: (n,) 1 positive / 0 negative (default all positive).
            box: (4,) xyxy box.
            clear: drop this object's earlier prompts on this frame first.

        Raises:
            ValueError: frame index outside the video, bad object id, malformed or out-of-image
                prompt, or a prompt with no positive click and no box.
        """
        if not isinstance(state, VideoState):
            raise ValueError(f"state must come from init_state(...), got {type(state).__name__}")  # noqa: TRY004
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise ValueError(f"frame_idx must be an int, got {frame_idx!r}")  # noqa: TRY004
        frame_idx = int(frame_idx)
        if frame_idx < 0 or (state.num_frames is not None and frame_idx >= state.num_frames):
            n = state.num_frames
            span = f"it has {n} frames (indices 0..{n - 1})" if n is not None else "indices start at 0"
            raise ValueError(f"frame {frame_idx} is outside the video: {span}")
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)):
            raise ValueError(f"obj_id must be an int, got {obj_id!r}")  # noqa: TRY004
        obj_id = int(obj_id)
        pts = lab = bx = None
        if points is not None:
            pts = np.asarray(points, dtype=np.float64)
            if pts.shape == (2,):
                pts = pts[None]
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
                raise ValueError(f"points must be (n, 2) clicks (x, y) of one object, got shape {np.shape(points)}")
            lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels).reshape(-1)
            if lab.shape != (len(pts),):
                raise ValueError(f"labels must have one entry per click ({len(pts)}), got shape {np.shape(labels)}")
        elif labels is not None:
            raise ValueError("labels given without points")
        if box is not None:
            bx = np.asarray(box, dtype=np.float64).reshape(-1)
            if bx.shape != (4,):
                raise ValueError(f"box must be (x0, y0, x1, y1), got shape {np.shape(box)}")
        if pts is None and bx is None:
            raise ValueError("give points=... and/or box=... for the object")
        old = None if clear else state.prompts.get(frame_idx, {}).get(obj_id)
        if old is not None and old.points is not None:
            pts = old.points if pts is None else np.concatenate([old.points, pts])
            lab = old.labels if lab is None else np.concatenate([old.labels, lab])
        if bx is None and old is not None:
            bx = old.box
        p, lb, b = parse_prompts(None if pts is None else pts[None], None if lab is None else lab[None],
                                 None if bx is None else bx[None], state.size)
        state.prompts.setdefault(frame_idx, {})[obj_id] = _Prompt(
            None if p is None else p[0], None if lb is None else lb[0], None if b is None else b[0])
        if obj_id not in state.obj_ids:
            state.obj_ids.append(obj_id)
        for f in [f for f in state.history if f >= frame_idx]:
            del state.history[f]

    def remove_object(self, state: VideoState, obj_id: int) -> None:
        """Forget ``obj_id`` (its prompts and carried state)."""
        if obj_id not in state.obj_ids:
            raise ValueError(f"object {obj_id} has no prompts; known objects: {state.obj_ids}")
        state.obj_ids.remove(obj_id)
        for f in list(state.prompts):
            state.prompts[f].pop(obj_id, None)
            if not state.prompts[f]:
                del state.prompts[f]
        for snap in state.history.values():
            snap.pop(obj_id, None)

    def reset_state(self, state: VideoState) -> None:
        """Drop every prompt and every carried state (the source stays open)."""
        state.prompts.clear()
        state.obj_ids.clear()
        state.history.clear()

    def propagate(
        self,
        state: VideoState,
        *,
        start_frame: int | None = None,
        max_frames: int | None = None,
        keep_images: bool = False,
        on_frame: Callable[[int], None] | None = None,
        save_states: bool = True,
    ) -> Iterator[tuple[int, FrameResult]]:
        """Track the prompted objects frame by frame (see the module docstring for the method).

        Args:
            state: from ``init_state`` with at least one ``add_prompt``.
            start_frame: first frame to process (default: the earliest prompted frame); objects
                prompted earlier resume from their state saved at ``start_frame - 1`` (run
                ``propagate`` over those frames first).
            max_frames: stop after this many processed frames.
            keep_images: attach each RGB frame to its result.
            on_frame: called with each frame index as the frame is read (e.g. a progress bar).
            save_states: keep each frame's object states in ``state.history`` (about 1 KB per object
                and frame) so a later ``propagate(start_frame=...)`` can resume; turn off for very long
                videos.

        Yields:
            ``(frame_idx, FrameResult)``; ``result.instances`` holds one mask per object prompted on
            or before that frame, in ``state.obj_ids`` order, ``track_ids`` = the object ids,
            ``scores`` = ``iou`` = predicted IoU; an object not found on a frame has an empty mask.

        Raises:
            RuntimeError: no prompts; a one-pass source (camera, generator) propagated twice.
            ValueError: ``start_frame`` outside the video.
        """
        if not state.prompts:
            raise RuntimeError("no prompts: call add_prompt(state, frame_idx, obj_id, points=..., box=...) first")
        first = min(state.prompts)
        start = first if start_frame is None else start_frame
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0 or (
                state.num_frames is not None and start >= state.num_frames):
            raise ValueError(f"start_frame {start_frame!r} is outside the video ({state.num_frames} frames)")
        _check_max_frames(max_frames)
        objs: dict[int, _ObjState] = {}
        if start > first:
            prev = state.history.get(start - 1)
            if prev is None:
                raise ValueError(
                    f"no saved object states at frame {start - 1}: propagate from frame {first} (the first "
                    f"prompt) up to frame {start - 1} before resuming at {start}"
                )
            objs = dict(prev)
        src = self._frames_for(state)
        return self._propagate_iter(state, src, int(start), objs, max_frames, keep_images, on_frame, save_states)

    def _propagate_iter(self, state: VideoState, src: Any, start: int, objs: dict[int, _ObjState],
                        max_frames: int | None, keep: bool, on_frame: Callable[[int], None] | None,
                        save_states: bool) -> Iterator[tuple[int, FrameResult]]:
        processed = 0
        last = -1
        try:
            for idx, rgb in src:
                last = idx
                if on_frame is not None:
                    on_frame(idx)
                if idx < start:
                    continue
                if max_frames is not None and processed >= max_frames:
                    break
                res = self._propagate_frame(state, idx, rgb, objs, keep)
                if save_states:
                    state.history[idx] = dict(objs)
                processed += 1
                yield idx, res
        finally:
            src.close()
            state.frames_processed = processed
        if max_frames is None or processed < max_frames:
            missed = sorted(f for f in state.prompts if f > last)
            if missed:
                warnings.warn(
                    f"{state.name}: prompts on frame(s) {missed} were never reached: the video ended at frame "
                    f"{last}. Those prompts were ignored.",
                    stacklevel=2,
                )

    def _frames_for(self, state: VideoState) -> Any:
        from ..io.video import open_frames

        if state._pending_source is not None:
            src, state._pending_source = state._pending_source, None
            state._consumed = True
            return src
        if not state._reopenable:
            raise RuntimeError(
                f"{state.name} can be read only once (camera, generator or an open FrameSource) and was already "
                "propagated; pass a file, a folder or a list of frames to init_state to propagate again"
            )
        return open_frames(state.source, on_size_change=state.on_size_change)

    def _propagate_frame(self, state: VideoState, idx: int, rgb: np.ndarray, objs: dict[int, _ObjState],
                         keep: bool) -> FrameResult:
        t0 = time.perf_counter()
        pr = self._prepare_at(rgb, self.prompt_scale)
        user = state.prompts.get(idx, {})
        carried = [o for o in state.obj_ids if o in objs and o not in user]
        use_kernel = self.propagation in ("both", "kernel")
        use_box = self.propagation in ("both", "box")
        box_objs = [o for o in carried if use_box and objs[o].box is not None]
        kern_objs = [o for o in carried if use_kernel or objs[o].box is None]
        entries = [("user", o, user[o]) for o in state.obj_ids if o in user]
        entries += [("box", o, None) for o in box_objs]
        with torch.inference_mode():
            feats = self.model.extract_features(pr.tensor)
            t1 = time.perf_counter()
            prompts = self._entries_to_prompts(entries, objs, pr) if entries else None
            kernels = torch.stack([objs[o].kernel for o in kern_objs])[None] if kern_objs else None
            n_rows = len(entries) + len(kern_objs)
            out = self.model.decode(feats, prompts, with_objects=False, prompt_queries=kernels) if n_rows else None
            rows: dict[int, list[int]] = {}
            kinds = [e[0] for e in entries] + ["kernel"] * len(kern_objs)
            owners = [e[1] for e in entries] + kern_objs
            for r, o in enumerate(owners):
                rows.setdefault(o, []).append(r)
            order = [o for o in state.obj_ids if o in rows]
            if out is None:
                logits = torch.zeros(0, *feats.shape[-2:])
                ious = torch.zeros(0)
                cls = None
                emb = torch.zeros(0, feats.shape[1])
            else:
                final = out.prompt_outputs[-1]
                logits = final.mask_logits[0]  # (P, h, w)
                ious = final.iou[0, :, 0]
                cls = final.cls_logits[0] if final.cls_logits is not None else None
                emb = out.prompt_embed[0]  # (P, C)
            hv = min(logits.shape[-2], math.ceil(pr.img_size[0] / 4))
            wv = min(logits.shape[-1], math.ceil(pr.img_size[1] / 4))
            chosen: list[int] = []
            found: list[bool] = []
            for o in order:
                rs = rows[o]
                if kinds[rs[0]] == "user":
                    r = rs[0]
                else:
                    r = max(rs, key=lambda i: (float(ious[i]), kinds[i] == "kernel"))
                nonempty = bool((logits[r, :hv, :wv] > 0).any())
                if kinds[r] == "user":
                    ok = True
                    objs[o] = _ObjState(emb[r].clone(), emb[r].clone(), None, idx)
                else:
                    sim = float(F.cosine_similarity(emb[r], objs[o].anchor, dim=0))
                    ok = nonempty and sim >= self.prompt_sim_thr
                    if ok:
                        objs[o] = replace(objs[o], kernel=emb[r].clone(), last_seen=idx)
                chosen.append(r)
                found.append(ok)
            sel = logits[chosen] if chosen else logits[:0]  # (N, h, w)
            if self.non_overlap and len(chosen) > 1:
                sel = _non_overlap(sel, torch.tensor(found, device=sel.device))
            full = logits_to_original(sel, pr.pad_size, pr.img_size, pr.ori_size)
            masks = full > 0
            for j, ok in enumerate(found):
                if not ok:
                    masks[j] = False
            # boxes of the confident masks, in resized-image pixels, for the next frame's box prompt
            low = (sel[:, :hv, :wv] > 0).cpu()
            boxes = masks_to_boxes(low) * 4.0
            for j, o in enumerate(order):
                if found[j] and bool(low[j].any()):
                    b = boxes[j].clone()
                    b[0::2] = b[0::2].clamp(0, pr.img_size[1])
                    b[1::2] = b[1::2].clamp(0, pr.img_size[0])
                    objs[o] = replace(objs[o], box=b)
            labels_out = None
            if cls is not None and chosen:
                labels_out = cls[chosen][:, :-1].argmax(-1).cpu()
        iou_out = ious[chosen].float().cpu() if chosen else torch.zeros(0)
        ins = InstanceResult(
            masks=masks.cpu(),
            scores=iou_out,
            labels=labels_out,
            track_ids=torch.tensor(order, dtype=torch.long),
            iou=iou_out.clone(),
            class_names=list(self.model.class_names),
            image_size=pr.ori_size,
        )
        speed = {"encode": 1e3 * (t1 - t0), "decode": 1e3 * (time.perf_counter() - t1)}
        ins.speed = speed
        return FrameResult(idx, ins, None, rgb if keep else None, speed)

    def _entries_to_prompts(self, entries: list, objs: dict[int, _ObjState], pr: PreparedImage) -> Prompts:
        """User prompts (original pixels) and box re-prompts (model frame) -> one ``Prompts`` batch."""
        sx, sy = pr.scale_xy
        scale = torch.tensor([sx, sy], dtype=torch.float32)
        n = max([len(p.points) for k, _, p in entries if k == "user" and p.points is not None] + [1])
        m = len(entries)
        points = torch.zeros(m, n, 2)
        labels = torch.full((m, n), -1, dtype=torch.long)
        boxes = torch.full((m, 4), float("nan"))
        any_points = False
        h, w = pr.img_size
        for i, (kind, o, p) in enumerate(entries):
            if kind == "user":
                if p.points is not None:
                    any_points = True
                    points[i, : len(p.points)] = torch.from_numpy(p.points).float() * scale
                    labels[i, : len(p.labels)] = torch.from_numpy(p.labels)
                if p.box is not None:
                    boxes[i] = torch.from_numpy(p.box).float() * scale.repeat(2)
            else:
                b = objs[o].box
                bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
                mx, my = self.box_margin * bw, self.box_margin * bh
                x0, y0, x1, y1 = (float(v) for v in b)
                boxes[i] = torch.tensor([max(0.0, x0 - mx), max(0.0, y0 - my), min(w, x1 + mx), min(h, y1 + my)])
        has_box = ~torch.isnan(boxes).any(1)
        dev = self.device
        return Prompts(
            points[None].to(dev) if any_points else None,
            labels[None].to(dev) if any_points else None,
            boxes[None].to(dev) if bool(has_box.any()) else None,
            torch.tensor([pr.img_size], device=dev),
        )


# ------------------------------------------------------------------------------------------ helpers
def _video_config(model: Any) -> VideoConfig:
    """The model config's video defaults (the official protocol when the model has none)."""
    cfg = getattr(getattr(model, "config", None), "video", None)
    return cfg if isinstance(cfg, VideoConfig) else VideoConfig()


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_max_frames(max_frames: Any) -> None:
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")


def _is_reopenable(source: Any) -> bool:
    """Sources that give the same frames when opened again (files, folders, in-memory sequences)."""
    if isinstance(source, (bool, int, np.integer)):
        return False  # a camera
    if isinstance(source, (str, os.PathLike)):
        return not str(source).startswith("/dev/video")
    return isinstance(source, (list, tuple, np.ndarray, torch.Tensor))


def _mask_nms(flat: torch.Tensor, thr: float) -> torch.Tensor:
    """Greedy mask NMS over score-sorted (N, P) bool masks -> kept row indices."""
    n = flat.shape[0]
    if n <= 1:
        return torch.arange(n)
    f = flat.float()
    inter = f @ f.T  # (N, N)
    area = f.sum(1)
    iou = (inter / (area[:, None] + area[None] - inter).clamp(min=1)).cpu().numpy()
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > thr
    return torch.tensor(keep, dtype=torch.long)


def _non_overlap(logits: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
    """Each pixel keeps a positive logit only for the found object with the largest logit."""
    masked = logits.masked_fill(~found[:, None, None], float("-inf"))
    winner = masked.argmax(0, keepdim=True)  # (1, h, w)
    is_win = torch.zeros_like(logits, dtype=torch.bool).scatter_(0, winner, True)
    return torch.where(is_win, logits, logits.clamp(max=-10.0))


# ------------------------------------------------------------------------------------------ writers
class YouTubeVISWriter:
    """Collect tracked instances frame by frame; write YouTube-VIS results.

    One record per track id: ``{video_id, category_id, score, segmentations}`` where
    ``segmentations`` has one compressed RLE per frame (``None`` where the track is absent), the
    score is the mean of its per-frame scores and the category the majority vote of its per-frame
    labels (ties: the lowest), as mmdet's ``YouTubeVISMetric`` aggregates. Masks are encoded as they
    arrive, so only RLE strings are kept.

    Args:
        video_id: the dataset's video id.
        category_ids: dataset category id of each class index (default: index + 1, as mmdet).
    """

    def __init__(self, video_id: Any = 1, category_ids: Sequence[int] | None = None) -> None:
        self.video_id = video_id
        self.category_ids = list(category_ids) if category_ids is not None else None
        self._tracks: dict[int, dict[str, Any]] = {}
        self.num_frames = 0

    def add(self, frame_idx: int, instances: InstanceResult) -> None:
        """Record the instances (with ``track_ids``) of frame ``frame_idx`` (0-based position)."""
        from pycocotools import mask as mask_utils

        if instances.track_ids is None:
            raise ValueError("instances have no track_ids: use results of VideoPredictor.track / propagate")
        self.num_frames = max(self.num_frames, int(frame_idx) + 1)
        if not len(instances):
            return
        masks = np.asarray(instances.masks.cpu().numpy() if isinstance(instances.masks, torch.Tensor)
                           else instances.masks, dtype=np.uint8)
        rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
        ids = np.asarray(instances.track_ids).tolist()
        scores = np.asarray(instances.scores, dtype=np.float64).tolist()
        labels = np.asarray(instances.labels).tolist() if instances.labels is not None else [0] * len(ids)
        for tid, rle, sc, lab in zip(ids, rles, scores, labels):
            rec = self._tracks.setdefault(int(tid), {"scores": [], "labels": [], "segs": {}})
            rec["scores"].append(float(sc))
            rec["labels"].append(int(lab))
            rle["counts"] = rle["counts"].decode("ascii")
            rec["segs"][int(frame_idx)] = rle

    @property
    def track_ids(self) -> list[int]:
        return sorted(self._tracks)

    def results(self, num_frames: int | None = None) -> list[dict]:
        """The YouTube-VIS result records (one per track), ``num_frames`` entries per track."""
        n = self.num_frames if num_frames is None else num_frames
        out = []
        for tid in sorted(self._tracks):
            rec = self._tracks[tid]
            lab = Counter(rec["labels"]).most_common()
            best = max(c for _, c in lab)
            label = min(k for k, c in lab if c == best)
            cat = self.category_ids[label] if self.category_ids is not None else label + 1
            out.append({
                "video_id": self.video_id,
                "category_id": int(cat),
                "score": float(np.mean(rec["scores"])),
                "segmentations": [rec["segs"].get(f) for f in range(n)],
                "track_id": tid,
            })
        return out

    def save(self, path: str | os.PathLike, num_frames: int | None = None) -> Path:
        """Write the results JSON atomically; returns the path."""
        _write_json_atomic(Path(path), self.results(num_frames))
        return Path(path)


class PanopticVideoWriter:
    """Per-frame panoptic PNGs with video-stable segment ids (VIPSeg / VPS layout).

    Writes ``<folder>/<video_name>/<frame_idx:06d>.png`` (id = R + 256 G + 65536 B, 0 = void) and
    collects ``segments_info``; ``save_json`` writes ``{"annotations": [{"video_id", "annotations":
    [{"image_id", "file_name", "segments_info"}]}], "categories"}`` as ``vpq_compute_vipseg`` reads.

    Args:
        folder: output folder of the PNGs.
        video_name: sub-folder / ``video_id`` of this video.
        class_names, thing_flags: the vocabulary (for ``categories``).
        category_ids: dataset category id of each class index (default: the index).
    """

    def __init__(self, folder: str | os.PathLike, video_name: str, class_names: Sequence[str],
                 thing_flags: Sequence[bool], category_ids: Sequence[int] | None = None) -> None:
        self.folder = Path(folder) / video_name
        self.video_name = video_name
        self.class_names = list(class_names)
        self.thing_flags = list(thing_flags)
        self.category_ids = list(category_ids) if category_ids is not None else list(range(len(class_names)))
        self.frames: list[dict] = []

    def add(self, frame_idx: int, panoptic: PanopticResult) -> Path:
        from ..io.image import write_png

        ids = np.asarray(panoptic.seg_ids.cpu().numpy() if isinstance(panoptic.seg_ids, torch.Tensor)
                         else panoptic.seg_ids, dtype=np.int64)
        if ids.max(initial=0) >= 256**3:
            raise ValueError("segment ids do not fit in an RGB panoptic PNG (>= 2^24)")
        png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        name = f"{int(frame_idx):06d}.png"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = write_png(self.folder / name, png)
        infos = []
        for s in panoptic.segments:
            m = ids == s.id
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            infos.append({"id": int(s.id), "category_id": int(self.category_ids[s.label]), "iscrowd": 0,
                          "area": int(m.sum()), "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                                                         int(ys.max() - ys.min() + 1)]})
        self.frames.append({"image_id": f"{int(frame_idx):06d}", "file_name": name, "segments_info": infos})
        return path

    def json(self) -> dict:
        cats = [{"id": int(c), "name": n, "isthing": int(t)}
                for c, n, t in zip(self.category_ids, self.class_names, self.thing_flags)]
        return {"annotations": [{"video_id": self.video_name, "annotations": self.frames}], "categories": cats}

    def save_json(self, path: str | os.PathLike) -> Path:
        _write_json_atomic(Path(path), self.json())
        return Path(path)


def _write_json_atomic(path: Path, obj: Any) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
