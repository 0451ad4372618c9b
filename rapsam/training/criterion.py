"""Training losses of RAP-SAM for object queries (panoptic / video) and prompt queries (interactive).

Follows the official recipe (``xushilin1/RAP-SAM@186206cb``, ``RapSAMVideoHead._loss_by_feat_single``
on mmdet's Mask2Former losses; see ``shared/design/official-rapsam.md`` section 3). Every decoder
output (3 decoder stages + the adapter) is supervised the same way:

**Object mode** (COCO panoptic pseudo-clips, YouTube-VIS clips). Queries are matched to segments by
:class:`~rapsam.training.matcher.HungarianMatcher`, independently for each output. Then

- ``loss_cls = 2.0 * sum_q w[y_q] * CE(cls_q, y_q) / sum_q w[y_q]`` over all B*Q queries, with
  ``w = 1`` for classes and ``0.1`` for no-object (mmdet ``CrossEntropyLoss`` with ``class_weight``
  and ``avg_factor = class_weight[labels].sum()``);
- ``loss_mask = 5.0 * sum_matched mean_points BCE / num_masks``;
- ``loss_dice = 5.0 * sum_matched (1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)) / num_masks``;
- ``loss_iou = 0`` (a zero term on the IoU predictions keeps DDP's graph complete).

**Prompt mode** (COCO-SAM click batches). No matching: query i is paired with prompt target i.

- ``loss_mask`` and ``loss_dice`` as above, normalised by the number of prompts;
- ``loss_iou = 10.0 * sum_prompts (iou_pred - (1 - dice))^2 / num_prompts``, where ``dice`` is
  the unweighted point-sampled dice loss of that prompt (so the target is the dice coefficient,
  not the true IoU), detached by default;
- ``loss_cls = 0`` (a zero term on the class logits).

Mask losses are computed on ``num_points`` (12,544) points per mask chosen by PointRend importance
sampling (``oversample_ratio`` 3, ``importance_sample_ratio`` 0.75). ``num_masks`` /
``num_prompts`` are averaged over DDP ranks (mmdet ``reduce_mean``) and clamped to at least 1.

Clips are handled as tubes: (B, Q, T, H, W) logits and (N, T, H', W') targets are flattened to
frames stacked along the height, exactly as the official code does.

Keys of the returned dict follow the official ones: ``d{i}.loss_{cls,mask,dice,iou}`` for all but
the last output and ``loss_{cls,mask,dice,iou}`` for the last (the adapter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from rapsam.training.matcher import HungarianMatcher, check_same_field_of_view, stack_frames
from rapsam.training.point_sampling import (
    get_uncertain_point_coords_with_randomness,
    pixel_center_coords,
    point_sample,
)

__all__ = [
    "DecoderOutput",
    "DecoderOutputLike",
    "ObjectTargets",
    "PromptTargets",
    "RapSamCriterion",
    "dice_loss",
    "loss_keys",
    "reduce_mean_count",
    "sigmoid_bce_loss",
    "total_loss",
    "zero_terms",
]

LOSS_NAMES: tuple[str, ...] = ("loss_cls", "loss_mask", "loss_dice", "loss_iou")


@runtime_checkable
class DecoderOutputLike(Protocol):
    """What the criterion reads from one decoder output (any object with these attributes)."""

    cls_logits: torch.Tensor | None
    mask_logits: torch.Tensor
    iou: torch.Tensor | None


@dataclass
class DecoderOutput:
    """One supervised decoder output.

    Attributes:
        cls_logits: Class logits with background last, (B, Q, K+1). Required for object queries;
            optional for prompt queries (only a zero term is built from it).
        mask_logits: Mask logits at stride 4, (B, Q, H, W) for images or (B, Q, T, H, W) for clips.
        iou: Predicted mask quality, (B, Q, 1) or (B, Q). Required for prompt queries; optional
            for object queries (only a zero term is built from it).
    """

    cls_logits: torch.Tensor | None
    mask_logits: torch.Tensor
    iou: torch.Tensor | None = None


@dataclass
class ObjectTargets:
    """Ground truth of one image (or clip) for object queries.

    Attributes:
        labels: Classes in ``[0, K)``, (N,) long.
        masks: Segment masks (bool or float in [0, 1]) at the padded input resolution,
            (N, H', W'), or (N, T, H', W') for a clip (an instance absent from a frame has an empty
            mask there).
    """

    labels: torch.Tensor
    masks: torch.Tensor

    def __post_init__(self) -> None:
        if self.labels.dim() != 1:
            raise ValueError(f"ObjectTargets.labels must be (N,), got {tuple(self.labels.shape)}.")
        if self.labels.dtype.is_floating_point or self.labels.dtype == torch.bool:
            raise ValueError(
                f"ObjectTargets.labels must be integer class ids, got {self.labels.dtype}; "
                "use .long()."
            )
        if self.masks.dim() not in (3, 4) or self.masks.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"ObjectTargets.masks must be (N, H, W) or (N, T, H, W) with N = len(labels) = "
                f"{self.labels.shape[0]}, got {tuple(self.masks.shape)}."
            )


@dataclass
class PromptTargets:
    """Ground truth of one image (or clip) for prompt queries: mask i is the target of prompt i.

    Attributes:
        masks: One target mask per prompt, (N, H', W') or (N, T, H', W'), at the padded input
            resolution. N may be smaller than the number of prompt queries Q; queries N..Q-1 are
            then treated as padding and get no loss.
    """

    masks: torch.Tensor

    def __post_init__(self) -> None:
        if self.masks.dim() not in (3, 4):
            raise ValueError(
                f"PromptTargets.masks must be (N, H, W) or (N, T, H, W), got {tuple(self.masks.shape)}."
            )


def sigmoid_bce_loss(point_logits: torch.Tensor, point_targets: torch.Tensor) -> torch.Tensor:
    """Per-mask sigmoid binary cross-entropy, averaged over points.

    Args:
        point_logits: Mask logits at P points, (M, P).
        point_targets: Targets in [0, 1] at the same points, (M, P).

    Returns:
        Loss per mask, (M,).
    """
    return F.binary_cross_entropy_with_logits(point_logits, point_targets, reduction="none").mean(1)


def dice_loss(
    point_logits: torch.Tensor, point_targets: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    """Per-mask naive dice loss on sigmoid probabilities (mmdet ``DiceLoss(naive_dice=True)``).

    Args:
        point_logits: Mask logits at P points, (M, P).
        point_targets: Targets in [0, 1] at the same points, (M, P).
        eps: Smoothing added to numerator and denominator.

    Returns:
        ``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)`` per mask, (M,).
    """
    probs = point_logits.sigmoid()  # (M, P)
    numerator = 2.0 * (probs * point_targets).sum(1)
    denominator = probs.sum(1) + point_targets.sum(1)
    return 1.0 - (numerator + eps) / (denominator + eps)


def reduce_mean_count(
    counts: Sequence[float], device: torch.device, minimum: Sequence[float] | None = None
) -> torch.Tensor:
    """Average normalisers over DDP ranks and clamp them to at least 1 (mmdet ``reduce_mean``).

    One ``all_reduce`` is issued per call when ``torch.distributed`` is initialised, so every rank
    must make the same calls in the same order.

    Args:
        counts: Local counts (e.g. matched masks, prompts).
        device: Device of the result (CUDA for NCCL).
        minimum: Per-count lower bound (default 1 for every count).

    Returns:
        The per-rank mean of each count, clamped to >= ``minimum``, (len(counts),) float32.
    """
    t = torch.tensor([float(c) for c in counts], dtype=torch.float32, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t = t / dist.get_world_size()
    if minimum is None:
        return t.clamp(min=1.0)
    return torch.maximum(t, torch.tensor([float(m) for m in minimum], dtype=t.dtype, device=device))


def zero_terms(*tensors: torch.Tensor | None) -> torch.Tensor:
    """``sum(t.sum() * 0)``: a zero loss that still touches every given tensor (or parameter).

    DDP (without ``find_unused_parameters``) requires every parameter that takes part in the graph
    to get a gradient. Add ``zero_terms(*unused_params)`` to the total loss for parts of the model
    a batch does not supervise (e.g. the object adapter on a prompt-only batch).

    Args:
        tensors: Tensors or parameters; ``None`` entries are skipped. At least one must be given.

    Returns:
        A scalar zero connected to all inputs.

    Raises:
        ValueError: If no tensor is given.
    """
    present = [t for t in tensors if t is not None]
    if not present:
        raise ValueError("zero_terms needs at least one tensor to attach the zero to.")
    out = present[0].sum() * 0.0
    for t in present[1:]:
        out = out + t.sum() * 0.0
    return out


def loss_keys(num_outputs: int) -> list[str]:
    """Names of the losses for ``num_outputs`` supervised outputs, in the official order.

    Args:
        num_outputs: Number of decoder outputs (4 for RAP-SAM: 3 stages + adapter).

    Returns:
        ``d0.loss_cls, d0.loss_mask, d0.loss_dice, d0.loss_iou, d1.…, loss_cls, …, loss_iou``.
    """
    keys = [f"d{i}.{n}" for i in range(num_outputs - 1) for n in LOSS_NAMES]
    return keys + list(LOSS_NAMES)


def total_loss(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum of all entries whose key contains ``loss`` (the weights are already applied).

    Args:
        losses: The criterion's output (may contain extra non-loss entries, which are skipped).

    Returns:
        Scalar total loss.

    Raises:
        ValueError: If there is no loss entry.
    """
    terms = [v for k, v in losses.items() if "loss" in k]
    if not terms:
        raise ValueError("total_loss got no entry with 'loss' in its key.")
    return torch.stack([t.reshape(()) for t in terms]).sum()


class RapSamCriterion:
    """Losses of every supervised decoder output, for object and/or prompt queries.

    Args:
        matcher: Query-to-segment matcher for object queries; by default a
            :class:`HungarianMatcher` with the official costs (2, 5, 5) and ``num_points`` points.
        class_weight: Weight of the classification loss.
        mask_weight: Weight of the point-sampled BCE loss.
        dice_weight: Weight of the point-sampled dice loss.
        iou_weight: Weight of the IoU (mask-quality) regression loss of prompt queries.
        no_object_weight: Class weight of the background class in the CE loss.
        num_points: Points per mask for the mask losses.
        oversample_ratio: PointRend oversampling ratio.
        importance_sample_ratio: Share of points chosen by uncertainty.
        dice_eps: Dice smoothing.
        detach_iou_target: Detach the IoU target ``1 - dice``. The brief's choice (True) stops the
            IoU loss from pushing the mask logits; the official code does not detach.

    Example:
        >>> crit = RapSamCriterion(num_points=64)
        >>> out = DecoderOutput(torch.randn(1, 5, 4), torch.randn(1, 5, 8, 8), torch.randn(1, 5, 1))
        >>> tgt = [ObjectTargets(torch.tensor([1]), torch.rand(1, 32, 32) > 0.5)]
        >>> losses = crit(object_outputs=[out] * 4, object_targets=tgt)
        >>> loss = total_loss(losses)
    """

    def __init__(
        self,
        *,
        matcher: HungarianMatcher | None = None,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        iou_weight: float = 10.0,
        no_object_weight: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        dice_eps: float = 1.0,
        detach_iou_target: bool = True,
        dense: bool = False,
    ) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}.")
        if oversample_ratio < 1:
            raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}.")
        if not 0.0 <= importance_sample_ratio <= 1.0:
            raise ValueError(
                f"importance_sample_ratio must lie in [0, 1], got {importance_sample_ratio}."
            )
        self.matcher = matcher if matcher is not None else HungarianMatcher(num_points=num_points, dense=dense)
        self.dense = dense
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.iou_weight = iou_weight
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.dice_eps = dice_eps
        self.detach_iou_target = detach_iou_target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(matcher={self.matcher!r}, class_weight={self.class_weight}, "
            f"mask_weight={self.mask_weight}, dice_weight={self.dice_weight}, "
            f"iou_weight={self.iou_weight}, no_object_weight={self.no_object_weight}, "
            f"num_points={self.num_points}, oversample_ratio={self.oversample_ratio}, "
            f"importance_sample_ratio={self.importance_sample_ratio})"
        )

    # ------------------------------------------------------------------ public entry point
    def __call__(
        self,
        *,
        object_outputs: Sequence[DecoderOutputLike] | None = None,
        object_targets: Sequence[ObjectTargets] | None = None,
        prompt_outputs: Sequence[DecoderOutputLike] | None = None,
        prompt_targets: Sequence[PromptTargets] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute all losses.

        Each group (object, prompt) is optional; when both are given (joint decoding) the losses
        of the two groups are added key by key, each normalised by its own count. Under DDP
        every rank must call this with the same number of outputs: each output issues exactly
        one ``all_reduce`` (of both counts together), whichever groups the rank holds.

        Args:
            object_outputs: One output per supervised stage (last = adapter), object queries.
            object_targets: B ground truths, one per image/clip of the batch.
            prompt_outputs: One output per supervised stage, prompt queries (query i <-> target i).
            prompt_targets: B prompt ground truths.
            generator: Optional RNG for all random points (matching and losses).

        Returns:
            Loss tensors keyed as in :func:`loss_keys`, weights applied; sum with
            :func:`total_loss`.

        Raises:
            ValueError: If a group is half given, groups disagree on the number of outputs, or
                shapes are inconsistent.
            TypeError: If an output lacks the DecoderOutput attributes or a target has the wrong
                type.
        """
        num_outputs = _check_groups(object_outputs, object_targets, prompt_outputs, prompt_targets)
        keys = loss_keys(num_outputs)
        losses: dict[str, torch.Tensor] = {}
        for i in range(num_outputs):
            prefix = "" if i == num_outputs - 1 else f"d{i}."
            stage = self._losses_for_output(
                object_outputs[i] if object_outputs is not None else None,
                object_targets,
                prompt_outputs[i] if prompt_outputs is not None else None,
                prompt_targets,
                generator,
            )
            for name in LOSS_NAMES:
                losses[prefix + name] = stage[name]
        assert list(losses) == keys
        return losses

    # ------------------------------------------------------------------ one output
    def _losses_for_output(
        self,
        obj_out: DecoderOutputLike | None,
        obj_tgt: Sequence[ObjectTargets] | None,
        prm_out: DecoderOutputLike | None,
        prm_tgt: Sequence[PromptTargets] | None,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        """Losses of one decoder output; exactly one all-reduce (both normalisers together)."""
        indices = None
        num_obj = num_prm = 0
        device = None
        if obj_out is not None and obj_tgt is not None:
            _check_object_output(obj_out, obj_tgt)
            device = obj_out.mask_logits.device
            indices = self.matcher(
                obj_out.cls_logits,
                obj_out.mask_logits,
                [t.labels for t in obj_tgt],
                [t.masks for t in obj_tgt],
                generator=generator,
            )
            num_obj = sum(int(q.numel()) for q, _ in indices)
            # CE normaliser = sum of the class weights of all query labels (matched 1, background w)
            q = obj_out.cls_logits.shape[1]
            cls_w = sum(n + self.no_object_weight * (q - n) for n in (int(i.numel()) for i, _ in indices))
        else:
            cls_w = 0.0
        if prm_out is not None and prm_tgt is not None:
            _check_prompt_output(prm_out, prm_tgt)
            device = prm_out.mask_logits.device
            num_prm = sum(int(t.masks.shape[0]) for t in prm_tgt)
        assert device is not None
        # One all-reduce: under DDP every normaliser is the mean over ranks, so the averaged
        # gradients equal those of one process holding the whole global batch.
        norm_obj, norm_prm, norm_cls = reduce_mean_count([num_obj, num_prm, cls_w], device, (1.0, 1.0, 1e-12))

        parts: list[dict[str, torch.Tensor]] = []
        if indices is not None:
            parts.append(self._object_losses(obj_out, obj_tgt, indices, norm_obj, generator, norm_cls))
        if prm_out is not None:
            parts.append(self._prompt_losses(prm_out, prm_tgt, norm_prm, generator))
        return {name: sum((p[name] for p in parts[1:]), parts[0][name]) for name in LOSS_NAMES}

    def _object_losses(
        self,
        out: DecoderOutputLike,
        targets: Sequence[ObjectTargets],
        indices: list[tuple[torch.Tensor, torch.Tensor]],
        num_masks: torch.Tensor,
        generator: torch.Generator | None,
        cls_norm: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        cls_logits = out.cls_logits
        assert cls_logits is not None
        is_clip = out.mask_logits.dim() == 5
        mask_logits = stack_frames(out.mask_logits) if is_clip else out.mask_logits  # (B, Q, H, W)
        batch, num_queries, num_cls = cls_logits.shape
        num_classes = num_cls - 1
        device = cls_logits.device

        # Classification: every query is supervised; unmatched ones as background (index K).
        labels = torch.full((batch, num_queries), num_classes, dtype=torch.long, device=device)
        for b, (q_idx, t_idx) in enumerate(indices):
            labels[b, q_idx] = targets[b].labels.to(device)[t_idx]
        weights = torch.ones(num_cls, dtype=torch.float32, device=device)
        weights[num_classes] = self.no_object_weight
        flat_labels = labels.flatten()  # (B*Q,)
        ce = F.cross_entropy(
            cls_logits.float().flatten(0, 1), flat_labels, reduction="none"
        )  # (B*Q,)
        label_w = weights[flat_labels]  # (B*Q,)
        denom = cls_norm if cls_norm is not None else label_w.sum().clamp(min=1e-12)
        loss_cls = self.class_weight * (ce * label_w).sum() / denom

        # Masks: matched pairs only.
        src = torch.cat([mask_logits[b, q] for b, (q, _) in enumerate(indices)])  # (M, H, W)
        tgt_masks = [
            _flat_target(targets[b].masks, is_clip)[t.to(targets[b].masks.device)]
            for b, (_, t) in enumerate(indices)
        ]  # B x (M_b, H', W'), the matched targets in query order
        if src.shape[0] == 0:
            zero = zero_terms(mask_logits)
            loss_mask, loss_dice = zero, zero.clone()
        else:
            bce, dice = self._point_losses(src, tgt_masks, generator)
            loss_mask = self.mask_weight * bce.sum() / num_masks
            loss_dice = self.dice_weight * dice.sum() / num_masks
        loss_iou = zero_terms(out.iou if out.iou is not None else mask_logits)
        return {
            "loss_cls": loss_cls,
            "loss_mask": loss_mask,
            "loss_dice": loss_dice,
            "loss_iou": loss_iou,
        }

    def _prompt_losses(
        self,
        out: DecoderOutputLike,
        targets: Sequence[PromptTargets],
        num_prompts: torch.Tensor,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        is_clip = out.mask_logits.dim() == 5
        mask_logits = stack_frames(out.mask_logits) if is_clip else out.mask_logits  # (B, Q, H, W)
        assert out.iou is not None
        iou = out.iou.reshape(out.iou.shape[0], out.iou.shape[1])  # (B, Q)
        counts = [int(t.masks.shape[0]) for t in targets]
        src = torch.cat([mask_logits[b, :n] for b, n in enumerate(counts)])  # (M, H, W)
        iou_pred = torch.cat([iou[b, :n] for b, n in enumerate(counts)])  # (M,)
        loss_cls = zero_terms(out.cls_logits if out.cls_logits is not None else mask_logits)
        if src.shape[0] == 0:
            zero = zero_terms(mask_logits)
            return {
                "loss_cls": loss_cls,
                "loss_mask": zero,
                "loss_dice": zero.clone(),
                "loss_iou": zero_terms(iou),
            }
        tgt_masks = [_flat_target(t.masks, is_clip) for t in targets]
        bce, dice = self._point_losses(src, tgt_masks, generator)
        iou_target = 1.0 - dice  # dice coefficient of each prompt, unweighted
        if self.detach_iou_target:
            iou_target = iou_target.detach()
        iou_err = (iou_pred.float() - iou_target) ** 2  # (M,)
        return {
            "loss_cls": loss_cls,
            "loss_mask": self.mask_weight * bce.sum() / num_prompts,
            "loss_dice": self.dice_weight * dice.sum() / num_prompts,
            "loss_iou": self.iou_weight * iou_err.sum() / num_prompts,
        }

    def _point_losses(
        self,
        src: torch.Tensor,
        tgt_masks: Sequence[torch.Tensor],
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-mask BCE and dice on importance-sampled points.

        Args:
            src: Predicted mask logits of the M supervised queries, (M, H, W).
            tgt_masks: Their targets, image by image, B x (M_b, H', W'), sum M_b = M.
            generator: Optional RNG.

        Returns:
            ``(bce, dice)``, each (M,), unweighted.
        """
        src = src.unsqueeze(1)  # (M, 1, H, W)
        with torch.no_grad():
            if self.dense:  # every logit pixel centre: deterministic
                coords = pixel_center_coords(*src.shape[-2:], device=src.device).expand(src.shape[0], -1, -1)
            else:
                coords = self._sample_coords(src, generator)
            point_tgts = []
            start = 0
            for masks in tgt_masks:
                n = masks.shape[0]
                if n == 0:
                    continue
                point_tgts.append(
                    point_sample(
                        masks.to(device=src.device, dtype=torch.float32).unsqueeze(1),
                        coords[start : start + n],
                    ).squeeze(1)
                )  # (M_b, P)
                start += n
            point_targets = torch.cat(point_tgts)  # (M, P)
        point_logits = point_sample(src.float(), coords).squeeze(1)  # (M, P)
        bce = sigmoid_bce_loss(point_logits, point_targets)
        dice = dice_loss(point_logits, point_targets, eps=self.dice_eps)
        return bce, dice


    def _sample_coords(self, src: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return get_uncertain_point_coords_with_randomness(
            src.detach().float(),
            self.num_points,
            self.oversample_ratio,
            self.importance_sample_ratio,
            generator=generator,
        )  # (M, P, 2)


# ---------------------------------------------------------------------- validation helpers
def _flat_target(masks: torch.Tensor, is_clip: bool) -> torch.Tensor:
    """(N, T, H, W) -> (N, T*H, W) for clips, else unchanged."""
    return stack_frames(masks) if is_clip else masks


def _check_groups(
    object_outputs: Sequence[DecoderOutputLike] | None,
    object_targets: Sequence[ObjectTargets] | None,
    prompt_outputs: Sequence[DecoderOutputLike] | None,
    prompt_targets: Sequence[PromptTargets] | None,
) -> int:
    """Validate which groups are given; return the number of decoder outputs."""
    if (object_outputs is None) != (object_targets is None):
        raise ValueError(
            "object_outputs and object_targets must be given together (or both left None)."
        )
    if (prompt_outputs is None) != (prompt_targets is None):
        raise ValueError(
            "prompt_outputs and prompt_targets must be given together (or both left None)."
        )
    if object_outputs is None and prompt_outputs is None:
        raise ValueError(
            "Nothing to supervise: pass object_outputs/object_targets and/or "
            "prompt_outputs/prompt_targets."
        )
    sizes = {len(o) for o in (object_outputs, prompt_outputs) if o is not None}
    if len(sizes) != 1:
        raise ValueError(
            f"Object and prompt groups have different numbers of decoder outputs ({sorted(sizes)}); "
            "give one output per supervised stage for both."
        )
    num = sizes.pop()
    if num < 1:
        raise ValueError("Give at least one decoder output per group.")
    for group in (object_outputs, prompt_outputs):
        for out in group or ():
            if not isinstance(out, DecoderOutputLike):
                raise TypeError(
                    f"Decoder outputs need attributes cls_logits, mask_logits and iou; got "
                    f"{type(out).__name__}. Wrap tensors in DecoderOutput(cls_logits, mask_logits, iou)."
                )
    return num


def _check_masks_vs_logits(mask_logits: torch.Tensor, masks: torch.Tensor, what: str) -> None:
    if mask_logits.dim() not in (4, 5):
        raise ValueError(
            f"mask_logits must be (B, Q, H, W) or (B, Q, T, H, W), got {tuple(mask_logits.shape)}."
        )
    if masks.dim() != mask_logits.dim() - 1:
        raise ValueError(
            f"{what} masks {tuple(masks.shape)} do not fit mask_logits {tuple(mask_logits.shape)}: "
            "use (N, H, W) targets with (B, Q, H, W) logits and (N, T, H, W) targets with clips."
        )
    if mask_logits.dim() == 5 and masks.shape[1] != mask_logits.shape[2]:
        raise ValueError(
            f"Clip length mismatch: logits have T={mask_logits.shape[2]} frames, {what} masks "
            f"T={masks.shape[1]}; give a (possibly empty) mask for every frame."
        )
    check_same_field_of_view(mask_logits.shape[-2:], masks.shape[-2:])


def _check_object_output(out: DecoderOutputLike, targets: Sequence[ObjectTargets]) -> None:
    if out.cls_logits is None:
        raise ValueError("Object queries need cls_logits (B, Q, K+1); got None.")
    cls_logits, mask_logits = out.cls_logits, out.mask_logits
    if cls_logits.dim() != 3:
        raise ValueError(f"cls_logits must be (B, Q, K+1), got {tuple(cls_logits.shape)}.")
    if cls_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(
            f"cls_logits {tuple(cls_logits.shape)} and mask_logits {tuple(mask_logits.shape)} "
            "disagree on (B, Q)."
        )
    if len(targets) != cls_logits.shape[0]:
        raise ValueError(
            f"Got {len(targets)} object targets for a batch of {cls_logits.shape[0]}; pass one "
            "ObjectTargets per image/clip (an image without segments gets empty labels/masks)."
        )
    for t in targets:
        if not isinstance(t, ObjectTargets):
            raise TypeError(f"object_targets must hold ObjectTargets, got {type(t).__name__}.")
        _check_masks_vs_logits(mask_logits, t.masks, "object")


def _check_prompt_output(out: DecoderOutputLike, targets: Sequence[PromptTargets]) -> None:
    mask_logits = out.mask_logits
    if mask_logits.dim() not in (4, 5):
        raise ValueError(
            f"mask_logits must be (B, Q, H, W) or (B, Q, T, H, W), got {tuple(mask_logits.shape)}."
        )
    batch, num_queries = mask_logits.shape[:2]
    if out.iou is None:
        raise ValueError("Prompt queries need iou predictions (B, Q, 1); got None.")
    iou_ok = out.iou.dim() == 2 or (out.iou.dim() == 3 and out.iou.shape[2] == 1)
    if not iou_ok or out.iou.shape[:2] != (batch, num_queries):
        raise ValueError(
            f"iou must be (B, Q, 1) or (B, Q) = ({batch}, {num_queries}[, 1]), "
            f"got {tuple(out.iou.shape)}."
        )
    if out.cls_logits is not None and out.cls_logits.shape[:2] != (batch, num_queries):
        raise ValueError(
            f"cls_logits {tuple(out.cls_logits.shape)} and mask_logits "
            f"{tuple(mask_logits.shape)} disagree on (B, Q)."
        )
    if len(targets) != batch:
        raise ValueError(
            f"Got {len(targets)} prompt targets for a batch of {batch}; pass one PromptTargets "
            "per image/clip."
        )
    for t in targets:
        if not isinstance(t, PromptTargets):
            raise TypeError(f"prompt_targets must hold PromptTargets, got {type(t).__name__}.")
        if t.masks.shape[0] > num_queries:
            raise ValueError(
                f"{t.masks.shape[0]} prompt targets but only {num_queries} prompt queries; "
                "query i is supervised by target i, so give at most one target per query."
            )
        _check_masks_vs_logits(mask_logits, t.masks, "prompt")
