"""Association logic of the video predictor: the official clip split and query matching, and the
online track manager.

Official (``Mask2formerVideoMinVIS`` in xushilin1/RAP-SAM ``seg/models/detectors/
mask2former_vid_minvis.py``, after MinVIS, Huang et al., NeurIPS 2022; design notes section 2.8):

* :func:`video_split` cuts a video of N frames into clips of ``clip_size`` frames whose last clips
  are shortened so the split is balanced (the official ``video_split``, rule for rule);
  :func:`official_clip_size` picks 5 frames for videos longer than 15 frames, else 3;
* :func:`settled_clip_ends` says which clip ends are already certain after n frames of a stream of
  unknown length, so clips can be decoded as frames arrive;
* :func:`match_embeddings` is the official ``match_from_embeds``: Hungarian matching (scipy
  ``linear_sum_assignment``) on 1 - cosine of the final query embeddings, returning the permutation
  that aligns the current clip's queries to the previous clip's (already aligned) queries.

Online (:class:`TrackManager`): detections (queries that pass a score threshold) are associated to
live tracks by Hungarian matching on 1 - cosine between the detection embedding and the track's
memory embedding (an exponential moving average of its matched embeddings), optionally mixed with
1 - mask IoU against the track's last mask when the track was seen in the previous window. A pair is
accepted only when the cosine passes ``sim_thr``. Unmatched detections scoring at least
``new_track_thr`` start new tracks (ids 1, 2, ... never reused); tracks unseen for more than
``max_gap`` frames are retired, so the state is bounded by the number of live tracks, not by the
video length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Track",
    "TrackManager",
    "TrackerConfig",
    "match_embeddings",
    "official_clip_size",
    "settled_clip_ends",
    "video_split",
]


# --------------------------------------------------------------------------------- official rules
def video_split(total: int, clip_size: int, overlap: int = 0) -> list[int]:
    """End indices (exclusive) of the official clips of a ``total``-frame video.

    Clips are ``clip_size`` frames; when ``total`` is not a multiple, the last clips are shortened
    by 1, 2, ... frames (at most one frame per clip) so the split stays balanced, or only the last
    clip when that is impossible (a video shorter than ``clip_size`` is one clip).

    Example: ``video_split(7, 3) == [3, 5, 7]``, ``video_split(21, 5) == [5, 9, 13, 17, 21]``.

    Raises:
        ValueError: ``total < 1``, ``clip_size <= overlap`` or ``overlap < 0``.
    """
    if total < 1:
        raise ValueError(f"a video needs at least one frame to be split, got {total}")
    if overlap < 0 or clip_size <= overlap:
        raise ValueError(f"clip_size ({clip_size}) must be larger than overlap ({overlap}) >= 0")
    total -= overlap
    step = clip_size - overlap
    splits = -(-total // step)
    ends = [(i + 1) * step for i in range(splits)]
    diff = ends[-1] - total
    if diff < splits:
        for i in range(diff):
            ends[splits - 1 - i] -= diff - i
    else:
        ends[-1] -= diff
    return [e + overlap for e in ends]


def official_clip_size(num_frames: int, clip_size: int = 5, clip_size_small: int = 3,
                       small_clip_thr: int = 15) -> int:
    """Clip length of the official YouTube-VIS inference: ``clip_size`` above ``small_clip_thr``
    frames, else ``clip_size_small`` (eval config: 5, 3, 15)."""
    return clip_size if num_frames > small_clip_thr else clip_size_small


def _leading_full_clips(total: int, clip_size: int) -> int:
    """How many clips at the start of ``video_split(total, clip_size)`` have the full length."""
    splits = -(-total // clip_size)
    diff = splits * clip_size - total
    if diff == 0:
        return splits
    return splits - diff if diff < splits else splits - 1


def settled_clip_ends(n_seen: int, clip_size: int = 5, clip_size_small: int = 3,
                      small_clip_thr: int = 15) -> list[int]:
    """Clip ends that every video of at least ``n_seen`` frames shares (a stream of unknown length).

    The official split depends on the total length, but only through its last few clips: the
    leading clips have the full length whatever the total. The result lists the ends (all
    ``<= n_seen``) that ``video_split`` gives for every total ``N >= n_seen``; decoding those clips
    before the stream ends gives exactly the official clips.
    """
    if n_seen <= small_clip_thr:
        return []  # the clip length itself is not known yet
    c = clip_size
    # The number of leading full clips is smallest for totals N = k*c + 1; two periods cover it.
    full = min(_leading_full_clips(n, c) for n in range(n_seen, n_seen + 2 * c + 1))
    return [(j + 1) * c for j in range(full) if (j + 1) * c <= n_seen]


def match_embeddings(target: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Permutation aligning ``current`` queries to ``target`` queries (official ``match_from_embeds``).

    Args:
        target: (Q, C) embeddings of the previous clip, already aligned.
        current: (Q, C) embeddings of the new clip.

    Returns:
        (Q,) long ``perm`` such that ``current[perm][i]`` continues ``target[i]``: Hungarian
        matching minimising the summed 1 - cosine.
    """
    from scipy.optimize import linear_sum_assignment

    if target.dim() != 2 or current.dim() != 2 or target.shape[1] != current.shape[1]:
        raise ValueError(
            f"embeddings must be (Q, C) with equal C, got {tuple(target.shape)} and {tuple(current.shape)}"
        )
    cur = current / current.norm(dim=-1, keepdim=True)
    tgt = target / target.norm(dim=-1, keepdim=True)
    cost = (1 - cur @ tgt.T).T  # (Q_target, Q_current)
    _, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    return torch.as_tensor(cols, dtype=torch.long)


# --------------------------------------------------------------------------------- online tracking
@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of the online track manager.

    Attributes:
        sim_thr: a detection may continue a track only if the cosine between its embedding and the
            track memory is at least this.
        new_track_thr: score an unmatched detection needs to start a new track.
        max_gap: a track unseen for more than this many frames is retired (its id is never reused).
        momentum: weight of a new embedding in the track memory (EMA; 1 = keep only the last).
        iou_weight: weight of 1 - mask IoU (last mask of a track seen in the previous window vs the
            detection's first mask) in the matching cost; 0 uses the embeddings alone.
        max_tracks: at most this many live tracks (the lowest-scoring new detections are dropped).
    """

    sim_thr: float = 0.5
    new_track_thr: float = 0.5
    max_gap: int = 30
    momentum: float = 0.5
    iou_weight: float = 0.25
    max_tracks: int = 100

    def __post_init__(self) -> None:
        if not -1.0 <= self.sim_thr <= 1.0:
            raise ValueError(f"sim_thr is a cosine in [-1, 1], got {self.sim_thr}")
        if not 0.0 < self.momentum <= 1.0:
            raise ValueError(f"momentum must lie in (0, 1], got {self.momentum}")
        if not 0.0 <= self.iou_weight <= 1.0:
            raise ValueError(f"iou_weight must lie in [0, 1], got {self.iou_weight}")
        if self.max_gap < 0 or self.max_tracks < 1:
            raise ValueError(f"max_gap must be >= 0 and max_tracks >= 1, got {self.max_gap}, {self.max_tracks}")


@dataclass
class Track:
    """One live track.

    Attributes:
        id: the track id (from 1).
        memory: (C,) unit memory embedding.
        cls_sum: (K+1,) sum of the matched class logits (the track's class is their mean).
        hits: number of windows the track was matched in.
        first_seen, last_seen: frame indices.
        last_mask: (h, w) bool stride-4 mask in its last frame, or None.
        score_sum: sum of the matched detection scores.
    """

    id: int
    memory: torch.Tensor
    cls_sum: torch.Tensor | None
    hits: int
    first_seen: int
    last_seen: int
    last_mask: torch.Tensor | None = field(default=None, repr=False)
    score_sum: float = 0.0

    @property
    def cls_logits(self) -> torch.Tensor | None:
        """(K+1,) mean class logits over the matched windows (official clip averaging)."""
        return None if self.cls_sum is None else self.cls_sum / self.hits

    @property
    def mean_score(self) -> float:
        """Mean matched detection score."""
        return self.score_sum / self.hits if self.hits else 0.0


class TrackManager:
    """Online association of per-window detections to tracks (see the module docstring).

    Example::

        tm = TrackManager(TrackerConfig(max_gap=10))
        ids = tm.update(frame, frame, embeds, scores)   # (D,) track ids, -1 = not tracked
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self.next_id = 1
        self.retired = 0

    def reset(self) -> None:
        self.tracks.clear()
        self.next_id = 1
        self.retired = 0

    @property
    def num_created(self) -> int:
        """Tracks started so far (live and retired)."""
        return self.next_id - 1

    def retire(self, frame_idx: int) -> list[int]:
        """Drop tracks unseen for more than ``max_gap`` frames before ``frame_idx``; returns their ids."""
        gone = [t.id for t in self.tracks.values() if frame_idx - t.last_seen > self.config.max_gap]
        for i in gone:
            del self.tracks[i]
        self.retired += len(gone)
        return gone

    def update(
        self,
        first_frame: int,
        last_frame: int,
        embeds: torch.Tensor,
        scores: torch.Tensor,
        cls_logits: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Associate the detections of the window ``[first_frame, last_frame]`` to tracks.

        Args:
            first_frame, last_frame: frame indices the window covers.
            embeds: (D, C) detection embeddings.
            scores: (D,) detection scores.
            cls_logits: (D, K+1) class logits (accumulated into the track's class), or None.
            masks: (D, T, h, w) bool stride-4 masks of the window, or None (no IoU term).

        Returns:
            (D,) long track id per detection; -1 for a detection that neither continues a track nor
            scores enough to start one.
        """
        cfg = self.config
        embeds = embeds.detach().float().cpu()
        scores = scores.detach().float().cpu()
        if masks is not None:
            masks = masks.detach().cpu()
        d = embeds.shape[0]
        if scores.shape != (d,):
            raise ValueError(f"scores must be ({d},) for {d} embeddings, got {tuple(scores.shape)}")
        self.retire(first_frame)
        ids = torch.full((d,), -1, dtype=torch.long)
        if d == 0:
            return ids
        emb = F.normalize(embeds.float(), dim=-1)  # (D, C)
        live = list(self.tracks.values())
        matched_det: set[int] = set()
        if live:
            from scipy.optimize import linear_sum_assignment

            mem = torch.stack([t.memory for t in live])  # (N, C)
            sim = emb @ mem.T  # (D, N)
            cost = 1 - sim
            if cfg.iou_weight > 0 and masks is not None:
                iou = self._iou_with_last(masks[:, 0], live, first_frame)  # (D, N)
                cost = (1 - cfg.iou_weight) * cost + cfg.iou_weight * (1 - iou)
            ok = (sim >= cfg.sim_thr).numpy()
            cost = np.where(ok, cost.double().numpy(), 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows.tolist(), cols.tolist()):
                if ok[r, c]:
                    ids[r] = live[c].id
                    matched_det.add(r)
                    self._absorb(live[c], emb[r], scores[r], cls_logits, r, masks, last_frame)
        # new tracks, best scores first, within the live-track budget
        order = torch.argsort(scores, descending=True, stable=True).tolist()
        for r in order:
            if r in matched_det or float(scores[r]) < cfg.new_track_thr:
                continue
            if len(self.tracks) >= cfg.max_tracks:
                break
            t = Track(self.next_id, emb[r].clone(), None, 0, first_frame, last_frame)
            self.next_id += 1
            self.tracks[t.id] = t
            self._absorb(t, emb[r], scores[r], cls_logits, r, masks, last_frame, first=True)
            ids[r] = t.id
        return ids

    def _absorb(self, t: Track, e: torch.Tensor, score: torch.Tensor, cls_logits: torch.Tensor | None, r: int,
                masks: torch.Tensor | None, last_frame: int, first: bool = False) -> None:
        m = self.config.momentum
        if not first:
            t.memory = F.normalize((1 - m) * t.memory + m * e, dim=0)
        if cls_logits is not None:
            c = cls_logits[r].detach().float().cpu()
            t.cls_sum = c.clone() if t.cls_sum is None else t.cls_sum + c
        t.hits += 1
        t.score_sum += float(score)
        t.last_seen = last_frame
        if masks is not None:
            t.last_mask = masks[r, -1].detach().cpu().clone()

    @staticmethod
    def _iou_with_last(first_masks: torch.Tensor, live: list[Track], first_frame: int) -> torch.Tensor:
        """(D, N) IoU of each detection's first mask with the last mask of tracks seen just before."""
        out = torch.zeros(first_masks.shape[0], len(live))
        cols = [j for j, t in enumerate(live) if t.last_mask is not None and t.last_seen == first_frame - 1
                and t.last_mask.shape == first_masks.shape[1:]]
        if not cols:
            return out
        a = first_masks.flatten(1).float()  # (D, h*w)
        b = torch.stack([live[j].last_mask.flatten() for j in cols]).float()  # (N', h*w)
        inter = a @ b.T  # (D, N')
        union = a.sum(1)[:, None] + b.sum(1)[None] - inter
        out[:, cols] = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
        return out
