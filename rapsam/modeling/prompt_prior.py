"""Experimental: a click-distance prior on prompt masks (off for the official model).

Mask logits are ``query . F``; F's position channels are linear ramps, so a prompt mask cannot be
localised around its click and identical objects merge. This adds to every prompt mask (each stage's
and the adapter's) ``sum_k a_k(query) * exp(-d^2 / (2 sigma_k^2))`` where d is the
distance (in F cells) of each cell to the prompt's nearest positive click or to its box (0 inside) and
``a(query)`` is a zero-initialised linear map of the query, so training starts from the official head.
Prompt rows without clicks or box (carried kernels in video tracking) get no prior.
"""

from __future__ import annotations

import torch
from torch import nn

SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)


class PromptPrior(nn.Module):
    """Radial click / box maps and, per output, a zero-initialised ``Linear(C, K)`` giving their weights.

    Args:
        channels: C of the prompt queries.
        num_outputs: masks that get a prior (decoder stages + the prompt adapter).
        sigmas: widths of the radial maps, in F cells.
        stride: pixels per F cell.
    """

    def __init__(self, channels: int, num_outputs: int, sigmas: tuple[float, ...] = SIGMAS, stride: int = 4) -> None:
        super().__init__()
        self.stride = stride
        self.register_buffer("sigmas", torch.tensor(sigmas), persistent=False)
        self.weights = nn.ModuleList(nn.Linear(channels, len(sigmas)) for _ in range(num_outputs))
        for lin in self.weights:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def maps(self, points, labels, boxes, b: int, p: int, h: int, w: int, device) -> torch.Tensor:
        """(B, P, K, h, w) radial maps (zeros for prompts with neither a positive click nor a box)."""
        s = self.stride
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        d2 = torch.full((b, p, h, w), float("inf"), device=device)
        if points is not None:
            pos = labels == 1  # (B, P, n)
            dx = xs.view(1, 1, 1, 1, w) - points[..., 0, None, None]  # (B, P, n, 1, w)
            dy = ys.view(1, 1, 1, h, 1) - points[..., 1, None, None]  # (B, P, n, h, 1)
            dd = dx**2 + dy**2  # (B, P, n, h, w)
            dd = torch.where(pos[..., None, None], dd, torch.full_like(dd, float("inf")))
            d2 = torch.minimum(d2, dd.amin(2))
        if boxes is not None:
            valid = ~torch.isnan(boxes).any(-1)  # (B, P)
            bx = torch.nan_to_num(boxes, nan=0.0)
            ddx = torch.clamp(torch.maximum(bx[..., 0, None] - xs, xs - bx[..., 2, None]), min=0)  # (B, P, w)
            ddy = torch.clamp(torch.maximum(bx[..., 1, None] - ys, ys - bx[..., 3, None]), min=0)  # (B, P, h)
            db = ddy[..., :, None] ** 2 + ddx[..., None, :] ** 2
            db = torch.where(valid[..., None, None], db, torch.full_like(db, float("inf")))
            d2 = torch.minimum(d2, db)
        d2 = d2 / s**2  # cells^2
        sig = self.sigmas.view(1, 1, -1, 1, 1)
        return torch.exp(-d2[:, :, None] / (2 * sig**2))  # inf -> 0

    def bias(self, index: int, kernels: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """kernels (B, P, C), phi (B, P, K, h, w) -> (B, P, h, w)."""
        a = self.weights[index](kernels)  # (B, P, K)
        return torch.einsum("bpk,bpkhw->bphw", a, phi.to(a.dtype))  # float32 maps, bf16/fp16 queries
