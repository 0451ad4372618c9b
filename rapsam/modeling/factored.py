"""F kept factored as ``W . basis`` for inference: the decoder's big matmuls on 131 channels, not 256.

The neck ends in CoordConv, a 1x1 convolution of the aggregated map ``x`` (agg_dim = 128 channels)
concatenated with the normalised coordinates (RAP-SAM's YOSO neck, ``neck.py``)::

    F = W_x . x + W_c . (xs, ys) + b = W . basis,    basis = [x; xs; ys; 1]  (agg_dim + 3 channels)

Everything the decoder does with F is linear in F: mask logits ``K . F = (K W) . basis``, hard-mask
sum pooling ``sum_p m_p F_p = W (sum_p m_p basis_p)``, the prompt adapter's key/value projections
``W_k F + b_k = (W_k W) . basis + b_k``, bilinear sampling of F at clicks (zero padding included: the
constant channel is sampled too). So the per-image map never needs its 256 channels: the matmuls run
on agg_dim + 3 = 131 channels (about half the FLOPs and memory traffic), and the final 1x1 convolution
is skipped. Results equal the unfactored ones up to float reassociation (~1e-6 relative).

``FactoredFeatures`` is produced only by inference encoders (``fuse.FusedEncoder``); training and the
official-parity paths keep F a tensor. The basis is stored pixel-major (B, h*w, D), the layout the
channels-last neck produces, which both matmul directions read without a transposed copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class FactoredFeatures:
    """F (B, C, h, w) represented as ``weight (C, D) . basis``.

    Args:
        basis: (B, h, w, D) pixel-major basis maps (last channel all ones).
        weight: (C, D).
    """

    def __init__(self, basis: torch.Tensor, weight: torch.Tensor) -> None:
        if basis.dim() != 4 or weight.dim() != 2 or basis.shape[-1] != weight.shape[1]:
            raise ValueError(f"basis (B, h, w, D) and weight (C, D) disagree: {tuple(basis.shape)}, {tuple(weight.shape)}")
        self.basis = basis
        self.weight = weight

    # ------------------------------------------------------------------ tensor-like metadata
    @property
    def shape(self) -> torch.Size:
        b, h, w, _ = self.basis.shape
        return torch.Size((b, self.weight.shape[0], h, w))

    @property
    def dtype(self) -> torch.dtype:
        return self.basis.dtype

    @property
    def device(self) -> torch.device:
        return self.basis.device

    def dim(self) -> int:
        return 4

    def _rows(self) -> torch.Tensor:
        return self.basis.flatten(1, 2)  # (B, h*w, D)

    # ------------------------------------------------------------------ the linear maps
    def materialize(self) -> torch.Tensor:
        """F as a tensor (B, C, h, w)."""
        b, c, h, w = self.shape
        f = torch.matmul(self.weight.to(self.dtype), self._rows().transpose(1, 2))  # (B, C, h*w)
        return f.view(b, c, h, w)

    def dot(self, kernels: torch.Tensor) -> torch.Tensor:
        """``einsum('bnc,bchw->bnhw', kernels, F)``: kernels (B, N, C) -> (B, N, h, w)."""
        b, _, h, w = self.shape
        k = torch.matmul(kernels, self.weight.to(kernels.dtype))  # (B, N, D)
        return torch.matmul(k, self._rows().transpose(1, 2).to(k.dtype)).view(b, -1, h, w)

    def pool(self, weights: torch.Tensor) -> torch.Tensor:
        """``einsum('bnhw,bchw->bnc', weights, F)``: weights (B, N, h, w) -> (B, N, C)."""
        p = torch.matmul(weights.flatten(2), self._rows().to(weights.dtype))  # (B, N, D)
        return torch.matmul(p, self.weight.t().to(p.dtype))

    def project(self, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``weight (C', C) . F + bias`` -> (B, C', h*w) (the prompt adapter's key/value projections)."""
        w = torch.matmul(weight, self.weight.to(weight.dtype))  # (C', D)
        if bias is not None:
            w = w.clone()
            w[:, -1] += bias  # the constant channel carries the bias
        return torch.matmul(w.to(self.dtype), self._rows().transpose(1, 2))  # (B, C', h*w)

    def sample(self, grid: torch.Tensor) -> torch.Tensor:
        """``F.grid_sample(F, grid, align_corners=False)`` (zero padding): grid (B, Ho, Wo, 2) -> (B, C, Ho, Wo)."""
        s = F.grid_sample(self.basis.permute(0, 3, 1, 2), grid.to(self.dtype), align_corners=False)  # (B, D, Ho, Wo)
        return torch.einsum("cd,bdhw->bchw", self.weight.to(s.dtype), s)

    def stack_frames(self, batch: int, frames: int) -> "FactoredFeatures":
        """Frames (B*T, C, h, w) stacked along height -> (B, C, T*h, w), as ``RapSam.decode`` does for clips."""
        _, h, w, d = self.basis.shape
        return FactoredFeatures(self.basis.reshape(batch, frames * h, w, d), self.weight)


def as_tensor(features: torch.Tensor | FactoredFeatures) -> torch.Tensor:
    """F as a (B, C, h, w) tensor whichever form it has."""
    return features.materialize() if isinstance(features, FactoredFeatures) else features


def feature_dot(kernels: torch.Tensor, features: torch.Tensor | FactoredFeatures) -> torch.Tensor:
    """Mask logits kernels (B, N, C) . F -> (B, N, h, w)."""
    if isinstance(features, FactoredFeatures):
        return features.dot(kernels)
    return torch.einsum("bnc,bchw->bnhw", kernels, features)


def feature_pool(weights: torch.Tensor, features: torch.Tensor | FactoredFeatures) -> torch.Tensor:
    """Weighted sums of F over pixels: weights (B, N, h, w) -> (B, N, C)."""
    if isinstance(features, FactoredFeatures):
        return features.pool(weights)
    return torch.einsum("bnhw,bchw->bnc", weights, features)
