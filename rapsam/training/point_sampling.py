"""Point sampling for mask matching and mask losses (PointRend / Mask2Former style).

Mask costs and mask losses are not computed on whole maps but on a set of points given in
normalised ``[0, 1]`` image coordinates, so predictions at stride 4 and targets at input
resolution are compared at the same physical locations without resizing either.

- :func:`point_sample` follows ``detectron2.projects.point_rend.point_features.point_sample`` and
  ``mmcv.ops.point_sample``: bilinear ``grid_sample`` with ``align_corners=False`` and zero padding,
  on ``(x, y)`` coordinates in ``[0, 1]``.
- :func:`get_uncertain_point_coords_with_randomness` follows PointRend (Kirillov et al., 2020,
  arXiv 1912.08193) as used by Mask2Former (Cheng et al., 2022, arXiv 2112.01527) and by the
  official RAP-SAM head (mmdet ``get_uncertain_point_coords_with_randomness``): oversample
  ``num_points * oversample_ratio`` uniform points, keep the ``importance_sample_ratio`` share that
  is most uncertain (uncertainty ``-|logit|``), fill the rest with fresh uniform points.

All randomness goes through an optional :class:`torch.Generator`; without one the global RNG of
the target device is used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "calculate_uncertainty",
    "get_uncertain_point_coords_with_randomness",
    "pixel_center_coords",
    "point_sample",
    "uniform_point_coords",
]


def _rand(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """Uniform ``[0, 1)`` samples on ``device`` drawn from ``generator`` (or the global RNG).

    A generator lives on one device; draw there and move, so a CPU generator can seed CUDA work.
    """
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def point_sample(
    input: torch.Tensor, point_coords: torch.Tensor, align_corners: bool = False
) -> torch.Tensor:
    """Bilinearly sample ``input`` at normalised points.

    Args:
        input: Feature or mask maps, (N, C, H, W).
        point_coords: Points as ``(x, y)`` in ``[0, 1]`` (x along W, y along H), (N, P, 2).
            ``(0, 0)`` is the top-left corner of the top-left pixel, so with ``align_corners=False``
            the point ``((j + 0.5) / W, (i + 0.5) / H)`` reads pixel ``(i, j)`` exactly.
        align_corners: Passed to :func:`torch.nn.functional.grid_sample`.

    Returns:
        Sampled values, (N, C, P). Points outside the map read zeros.

    Raises:
        ValueError: If the shapes do not fit the contract above.
    """
    if input.dim() != 4:
        raise ValueError(
            f"point_sample expects input of shape (N, C, H, W), got {tuple(input.shape)}; "
            "add a channel dimension with .unsqueeze(1) for (N, H, W) masks."
        )
    if point_coords.dim() != 3 or point_coords.shape[-1] != 2:
        raise ValueError(
            f"point_sample expects point_coords of shape (N, P, 2), got {tuple(point_coords.shape)}."
        )
    if point_coords.shape[0] != input.shape[0]:
        raise ValueError(
            f"point_sample got {input.shape[0]} maps but {point_coords.shape[0]} point sets; "
            "give one point set per map (expand a shared set with .expand(N, -1, -1))."
        )
    grid = point_coords.to(input.dtype).unsqueeze(2) * 2.0 - 1.0  # (N, P, 1, 2) in [-1, 1]
    out = F.grid_sample(input, grid, mode="bilinear", align_corners=align_corners)  # (N, C, P, 1)
    return out.squeeze(3)  # (N, C, P)


def uniform_point_coords(
    num_masks: int,
    num_points: int,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniformly random points in the unit square.

    Args:
        num_masks: Number of point sets M.
        num_points: Points per set P.
        device: Device of the result (defaults to the CPU).
        generator: Optional RNG; the global RNG of ``device`` otherwise.

    Returns:
        ``(x, y)`` coordinates in ``[0, 1)``, (M, P, 2).
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    return _rand((num_masks, num_points, 2), device, generator)


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits: ``-|logit|`` (largest at the 0.5 boundary).

    Args:
        logits: Mask logits of any shape, e.g. (M, 1, P).

    Returns:
        Uncertainty scores, same shape as ``logits``.
    """
    return -logits.abs()


def get_uncertain_point_coords_with_randomness(
    mask_logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PointRend importance sampling of mask points.

    Draws ``int(num_points * oversample_ratio)`` uniform points per mask, keeps the
    ``int(importance_sample_ratio * num_points)`` most uncertain of them (uncertainty ``-|logit|``
    of the bilinearly sampled logit), and appends ``num_points - that`` fresh uniform points. The
    importance points come first in the result. Call it under ``torch.no_grad()``; the choice of
    points is not differentiable.

    Args:
        mask_logits: Class-agnostic mask logits, (M, 1, H, W).
        num_points: Points per mask P.
        oversample_ratio: Oversampling factor, >= 1.
        importance_sample_ratio: Share of the P points chosen by uncertainty, in [0, 1].
        generator: Optional RNG; the global RNG of the logits' device otherwise.

    Returns:
        ``(x, y)`` coordinates in ``[0, 1)``, (M, P, 2).

    Raises:
        ValueError: On a bad shape or ratio.
    """
    if mask_logits.dim() != 4 or mask_logits.shape[1] != 1:
        raise ValueError(
            "get_uncertain_point_coords_with_randomness expects mask logits of shape (M, 1, H, W), "
            f"got {tuple(mask_logits.shape)}; use .unsqueeze(1) on (M, H, W) logits."
        )
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}.")
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}.")
    if not 0.0 <= importance_sample_ratio <= 1.0:
        raise ValueError(
            f"importance_sample_ratio must lie in [0, 1], got {importance_sample_ratio}."
        )
    num_masks = mask_logits.shape[0]
    device = mask_logits.device
    num_sampled = int(num_points * oversample_ratio)
    candidates = _rand((num_masks, num_sampled, 2), device, generator)  # (M, S, 2)
    # Uncertainty is measured on the sampled (interpolated) logits, not on the grid values.
    cand_logits = point_sample(mask_logits, candidates)  # (M, 1, S)
    uncertainty = calculate_uncertainty(cand_logits)[:, 0, :]  # (M, S)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainty, k=num_uncertain, dim=1).indices  # (M, num_uncertain)
    coords = torch.gather(
        candidates, 1, idx.unsqueeze(-1).expand(-1, -1, 2)
    )  # (M, num_uncertain, 2)
    if num_random > 0:
        coords = torch.cat([coords, _rand((num_masks, num_random, 2), device, generator)], dim=1)
    return coords  # (M, P, 2)


def pixel_center_coords(
    height: int, width: int, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised centres of every pixel of an ``height x width`` map, in row-major order.

    With :func:`point_sample` (``align_corners=False``) these points read the map's pixels exactly,
    which makes point-sampled costs and losses equal to their dense per-pixel formulas.

    Args:
        height: Map height H.
        width: Map width W.
        device: Device of the result.

    Returns:
        ``(x, y)`` coordinates, (H * W, 2).
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)  # (H * W, 2)
