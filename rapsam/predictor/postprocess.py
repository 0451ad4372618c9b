"""Official panoptic / instance post-processing (mmdet ``MaskFormerFusionHead``) and semantic maps.

Panoptic: softmax over K+1; keep queries whose argmax is not background and whose score > 0.8; pixel
argmax of score x sigmoid(mask) over the kept queries; for each kept query in order, its visible area
(argmax pixels) over its own area (sigmoid >= 0.5) must be >= 0.8, else it is dropped; painted pixels
are argmax pixels with sigmoid >= 0.5; stuff segments of one class share one segment, things get
instance ids in visiting order.

Instance: softmax without background, top-k over all (query, class) pairs, things only, binary mask =
logit > 0, score = class prob x mean sigmoid inside the mask, box = tight box of the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PanopticRaw:
    """Post-processing output before it becomes a ``PanopticResult``.

    Attributes:
        seg_ids: (H, W) int32, 0 = void, segment ids from 1.
        labels, scores, queries: per segment, in painting order.
        is_thing: per segment.
    """

    seg_ids: torch.Tensor
    labels: list[int]
    scores: list[float]
    queries: list[int]
    is_thing: list[bool]


def panoptic_keep(mask_cls: torch.Tensor, object_mask_thr: float = 0.8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask_cls (Q, K+1) -> (kept query indices, their scores, their labels)."""
    scores, labels = mask_cls.softmax(-1).max(-1)
    keep = labels.ne(mask_cls.shape[-1] - 1) & (scores > object_mask_thr)
    idx = torch.nonzero(keep).flatten()
    return idx, scores[idx], labels[idx]


def panoptic_postprocess(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_logits: torch.Tensor,
    thing_flags: list[bool],
    iou_thr: float = 0.8,
    filter_low_score: bool = True,
    queries: torch.Tensor | None = None,
) -> PanopticRaw:
    """Official pixel assignment over the kept queries.

    Args:
        scores, labels: (N,) of the kept queries (``panoptic_keep``).
        mask_logits: (N, H, W) their mask logits at the output size.
        thing_flags: per class.
        queries: (N,) original query indices (for the record).
    """
    n, h, w = mask_logits.shape
    seg = torch.zeros(h, w, dtype=torch.int32, device=mask_logits.device)
    out = PanopticRaw(seg, [], [], [], [])
    if n == 0:
        return out
    masks = mask_logits.sigmoid()
    ids = (scores.view(-1, 1, 1) * masks).argmax(0)  # (H, W)
    stuff_segment: dict[int, int] = {}
    next_id = 1
    for k in range(n):
        label = int(labels[k])
        thing = bool(thing_flags[label])
        mask = ids == k
        area = int(mask.sum())
        orig = int((masks[k] >= 0.5).sum())
        if filter_low_score:
            mask = mask & (masks[k] >= 0.5)
        if area > 0 and orig > 0:
            if area / orig < iou_thr:
                continue
            if not thing and label in stuff_segment:
                seg[mask] = stuff_segment[label]
                continue
            seg[mask] = next_id
            if not thing:
                stuff_segment[label] = next_id
            out.labels.append(label)
            out.scores.append(float(scores[k]))
            out.queries.append(int(queries[k]) if queries is not None else k)
            out.is_thing.append(thing)
            next_id += 1
    return out


def instance_topk(
    mask_cls: torch.Tensor, thing_flags: list[bool], max_per_image: int = 100
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask_cls (Q, K+1) -> (class probs, labels, query indices) of the top-k thing pairs."""
    q, k1 = mask_cls.shape
    k = k1 - 1
    probs = mask_cls.softmax(-1)[:, :-1]  # (Q, K)
    top = min(max_per_image, q * k)
    scores, idx = probs.flatten().topk(top, sorted=False)
    labels = idx % k
    query = idx // k
    things = torch.tensor(thing_flags, dtype=torch.bool, device=mask_cls.device)[labels]
    return scores[things], labels[things], query[things]


def instance_scores(mask_logits: torch.Tensor, class_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) logits, (N,) class probs -> (binary masks, score = class prob x mean sigmoid in mask)."""
    binary = (mask_logits > 0).float()
    mean = (mask_logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return binary.bool(), class_scores * mean


def semantic_scores(mask_cls: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """(Q, K+1), (Q, h, w) -> (K, h, w) = sum_q softmax[q, :K] * sigmoid(mask_q) (mmdet semantic_inference)."""
    return torch.einsum("qk,qhw->khw", mask_cls.softmax(-1)[:, :-1], mask_logits.sigmoid())
