"""Hungarian matching between object queries and ground-truth segments.

Follows the matcher of the official RAP-SAM recipe (``xushilin1/RAP-SAM@186206cb``,
``rap_sam_r50_12e_adaptor.py``), which is mmdet's ``HungarianAssigner`` as configured for
Mask2Former (Cheng et al., 2022, arXiv 2112.01527, Sec. 3.3 / App. A):

``cost = 2.0 * (-softmax(cls)[target class]) + 5.0 * sigmoid-BCE cost + 5.0 * dice cost (eps 1)``

Both mask costs are computed on ``num_points`` (12,544) uniformly random points shared by all
queries and all targets of an image, with :func:`~rapsam.training.point_sampling.point_sample`;
the assignment is :func:`scipy.optimize.linear_sum_assignment`. Video clips are matched as tubes:
frames are stacked along the height (``(Q, T, H, W) -> (Q, T*H, W)``), as the official code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from rapsam.training.point_sampling import pixel_center_coords, point_sample, uniform_point_coords

__all__ = [
    "HungarianMatcher",
    "batch_dice_cost",
    "batch_sigmoid_bce_cost",
    "check_same_field_of_view",
    "stack_frames",
]


def stack_frames(maps: torch.Tensor) -> torch.Tensor:
    """Stack the frames of a clip along the height: (..., T, H, W) -> (..., T*H, W).

    This is how the official code turns a clip into one image, so a query predicts a tube mask and
    is matched and supervised on all frames at once. Only call it on clip tensors.

    Args:
        maps: Clip maps, (..., T, H, W).

    Returns:
        The frames on top of one another, (..., T*H, W).
    """
    return maps.flatten(-3, -2)  # (..., T*H, W)


def batch_sigmoid_bce_cost(point_logits: torch.Tensor, point_targets: torch.Tensor) -> torch.Tensor:
    """Pairwise mean sigmoid binary cross-entropy (mmdet ``CrossEntropyLossCost(use_sigmoid=True)``).

    Args:
        point_logits: Predicted mask logits at P points, (Q, P).
        point_targets: Target mask values in [0, 1] at the same points, (N, P).

    Returns:
        ``cost[q, n] = mean_p BCE(logit[q, p], target[n, p])``, (Q, N).
    """
    num_points = point_logits.shape[1]
    pos = F.binary_cross_entropy_with_logits(
        point_logits, torch.ones_like(point_logits), reduction="none"
    )  # (Q, P): cost of predicting "inside"
    neg = F.binary_cross_entropy_with_logits(
        point_logits, torch.zeros_like(point_logits), reduction="none"
    )  # (Q, P): cost of predicting "outside"
    cost = pos @ point_targets.T + neg @ (1.0 - point_targets).T  # (Q, N)
    return cost / num_points


def batch_dice_cost(
    point_logits: torch.Tensor, point_targets: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    """Pairwise naive dice cost on sigmoid probabilities (mmdet ``DiceCost(pred_act=True, eps=1)``).

    Args:
        point_logits: Predicted mask logits at P points, (Q, P).
        point_targets: Target mask values in [0, 1] at the same points, (N, P).
        eps: Smoothing added to numerator and denominator.

    Returns:
        ``cost[q, n] = 1 - (2 sum(p*t) + eps) / (sum(p) + sum(t) + eps)``, (Q, N).
    """
    probs = point_logits.sigmoid()  # (Q, P)
    numerator = 2.0 * probs @ point_targets.T  # (Q, N)
    denominator = probs.sum(-1)[:, None] + point_targets.sum(-1)[None, :]  # (Q, N)
    return 1.0 - (numerator + eps) / (denominator + eps)


class HungarianMatcher:
    """One-to-one assignment of object queries to ground-truth segments, per image.

    Args:
        cost_class: Weight of the classification cost ``-softmax(cls)[label]``.
        cost_mask: Weight of the sigmoid-BCE mask cost.
        cost_dice: Weight of the dice mask cost.
        num_points: Uniform points per image on which both mask costs are computed.
        dice_eps: Dice smoothing.

    Example:
        >>> matcher = HungarianMatcher(num_points=64)
        >>> cls = torch.randn(5, 4)                      # (Q, K+1), K = 3 classes
        >>> logits = torch.randn(5, 8, 8)                # (Q, H, W)
        >>> labels = torch.tensor([2, 0])                # (N,)
        >>> masks = torch.rand(2, 32, 32) > 0.5          # (N, 4H, 4W)
        >>> q_idx, t_idx = matcher.match_single(cls, logits, labels, masks)
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
        dice_eps: float = 1.0,
        dense: bool = False,
    ) -> None:
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}.")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.dice_eps = dice_eps
        # dense: evaluate the costs at every logit pixel centre instead of random points
        # (deterministic; used for tiny CPU runs and exact DDP / resume equivalence tests)
        self.dense = dense

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}, dice_eps={self.dice_eps})"
        )

    @torch.no_grad()
    def cost_matrix(
        self,
        cls_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        *,
        point_coords: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Matching cost between every query and every target of one image (or clip).

        Args:
            cls_logits: Class logits with background last, (Q, K+1).
            mask_logits: Mask logits, (Q, H, W) or (Q, T, H, W) for a clip.
            labels: Target classes in ``[0, K)``, (N,).
            masks: Target masks (bool or float), (N, H', W') or (N, T, H', W'), covering the
                same field of view as ``mask_logits`` (usually H' = 4H at the padded input size).
            point_coords: Optional fixed ``(x, y)`` points in [0, 1], (P, 2); by default
                ``num_points`` uniform random points.
            generator: Optional RNG for the random points.

        Returns:
            Cost, (Q, N), float32.

        Raises:
            ValueError: On inconsistent shapes or out-of-range labels.
        """
        _check_single(cls_logits, mask_logits, labels, masks)
        num_queries, num_targets = cls_logits.shape[0], labels.shape[0]
        device = mask_logits.device
        if num_targets == 0:
            return torch.zeros(num_queries, 0, device=device)
        if mask_logits.dim() == 4:  # clip: match tubes with frames stacked along height
            mask_logits = stack_frames(mask_logits)  # (Q, T*H, W)
            masks = stack_frames(masks)  # (N, T*H', W')
        if point_coords is None and self.dense:
            point_coords = pixel_center_coords(*mask_logits.shape[-2:], device=device)
        if point_coords is None:
            point_coords = uniform_point_coords(
                1, self.num_points, device=device, generator=generator
            )[0]  # (P, 2)
        point_coords = point_coords.to(device=device, dtype=torch.float32)
        pred_points = point_sample(
            mask_logits.float().unsqueeze(1), point_coords.expand(num_queries, -1, -1)
        ).squeeze(1)  # (Q, P)
        target_points = point_sample(
            masks.to(device=device, dtype=torch.float32).unsqueeze(1),
            point_coords.expand(num_targets, -1, -1),
        ).squeeze(1)  # (N, P)

        probs = cls_logits.float().softmax(-1)  # (Q, K+1)
        cost_cls = -probs[:, labels.to(device)]  # (Q, N)
        cost_bce = batch_sigmoid_bce_cost(pred_points, target_points)  # (Q, N)
        cost_dice = batch_dice_cost(pred_points, target_points, eps=self.dice_eps)  # (Q, N)
        return self.cost_class * cost_cls + self.cost_mask * cost_bce + self.cost_dice * cost_dice

    @torch.no_grad()
    def match_single(
        self,
        cls_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        *,
        point_coords: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimal assignment for one image (or clip); arguments as in :meth:`cost_matrix`.

        Returns:
            ``(query_idx, target_idx)``, each (min(Q, N),) long on the logits' device, sorted by
            query index; query ``query_idx[i]`` is matched to target ``target_idx[i]``. With
            N = 0 both are empty (every query is background). With N > Q only Q targets are
            matched (the cheapest set); the rest get no query.
        """
        cost = self.cost_matrix(
            cls_logits, mask_logits, labels, masks, point_coords=point_coords, generator=generator
        )
        device = cls_logits.device
        if cost.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty.clone()
        cost_np = cost.cpu().numpy()
        if not np.isfinite(cost_np).all():
            raise RuntimeError(
                "Matching cost has NaN/Inf entries; the model produced non-finite class or mask "
                "logits. Lower the learning rate or check the inputs for NaNs."
            )
        rows, cols = linear_sum_assignment(cost_np)
        return (
            torch.as_tensor(rows, dtype=torch.long, device=device),
            torch.as_tensor(cols, dtype=torch.long, device=device),
        )

    @torch.no_grad()
    def __call__(
        self,
        cls_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        *,
        generator: torch.Generator | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Match every image of a batch independently (fresh random points per image).

        Args:
            cls_logits: Class logits with background last, (B, Q, K+1).
            mask_logits: Mask logits, (B, Q, H, W) or (B, Q, T, H, W).
            labels: B tensors of target classes, each (N_b,).
            masks: B tensors of target masks, each (N_b, H', W') or (N_b, T, H', W').
            generator: Optional RNG for the random points.

        Returns:
            B pairs ``(query_idx, target_idx)`` as in :meth:`match_single`.

        Raises:
            ValueError: If the batch sizes disagree.
        """
        if cls_logits.dim() != 3:
            raise ValueError(
                f"cls_logits must be (B, Q, K+1), got {tuple(cls_logits.shape)}; "
                "use match_single for one image."
            )
        batch = cls_logits.shape[0]
        if mask_logits.shape[0] != batch or len(labels) != batch or len(masks) != batch:
            raise ValueError(
                f"Batch sizes disagree: cls_logits {batch}, mask_logits {mask_logits.shape[0]}, "
                f"labels {len(labels)}, masks {len(masks)}; pass one target set per image."
            )
        return [
            self.match_single(
                cls_logits[b], mask_logits[b], labels[b], masks[b], generator=generator
            )
            for b in range(batch)
        ]


def _check_single(
    cls_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor
) -> None:
    """Validate the per-image matching inputs; raise ValueError naming the fix."""
    if cls_logits.dim() != 2:
        raise ValueError(f"cls_logits must be (Q, K+1), got {tuple(cls_logits.shape)}.")
    if mask_logits.dim() not in (3, 4):
        raise ValueError(
            f"mask_logits must be (Q, H, W) or (Q, T, H, W), got {tuple(mask_logits.shape)}."
        )
    if mask_logits.shape[0] != cls_logits.shape[0]:
        raise ValueError(
            f"cls_logits has {cls_logits.shape[0]} queries but mask_logits has "
            f"{mask_logits.shape[0]}; both must come from the same decoder output."
        )
    if labels.dim() != 1:
        raise ValueError(f"labels must be (N,), got {tuple(labels.shape)}.")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}; use .long().")
    if masks.dim() != mask_logits.dim() or masks.shape[0] != labels.shape[0]:
        raise ValueError(
            f"masks {tuple(masks.shape)} do not fit labels {tuple(labels.shape)} and mask_logits "
            f"{tuple(mask_logits.shape)}: expected (N, H', W') for images or (N, T, H', W') for "
            "clips, one mask per label."
        )
    if mask_logits.dim() == 4 and masks.shape[1] != mask_logits.shape[1]:
        raise ValueError(
            f"Clip length mismatch: mask_logits have T={mask_logits.shape[1]} frames, target masks "
            f"T={masks.shape[1]}; give a (possibly empty) mask for every frame."
        )
    check_same_field_of_view(mask_logits.shape[-2:], masks.shape[-2:])
    num_classes = cls_logits.shape[1] - 1
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}) for cls_logits with {num_classes + 1} columns "
            f"(last = background); got range [{int(labels.min())}, {int(labels.max())}]."
        )


def check_same_field_of_view(logit_hw: Sequence[int], mask_hw: Sequence[int]) -> None:
    """Raise if target masks and logits have different aspect ratios (a sign of unpadded targets).

    Point coordinates are normalised, so targets may have any resolution as long as they cover
    the same padded image as the logits (e.g. 4x the stride-4 logits).

    Raises:
        ValueError: If ``H' * W != W' * H``.
    """
    h, w = int(logit_hw[0]), int(logit_hw[1])
    mh, mw = int(mask_hw[0]), int(mask_hw[1])
    if mh * w != mw * h:
        raise ValueError(
            f"Target masks of size {mh}x{mw} do not cover the same field of view as mask logits of "
            f"size {h}x{w} (aspect ratios differ). Pass masks at the padded input resolution "
            "(a multiple of the logits' size, usually 4x), padded like the image."
        )
