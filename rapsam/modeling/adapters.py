"""The two asymmetric adapters applied after the last decoder stage (RAP-SAM section 3.3).

* ``ObjectAdapter`` (for panoptic / video object queries): pooling-based dynamic convolution once
  more — hard-mask sum pooling with the stage-3 masks, a K-Net kernel update, masks as kernel . F and
  cosine class logits at scale 100 (no temperature, unlike the stages' 1000).
* ``PromptAdapter`` (for interactive prompt queries): one pixel-wise cross-attention layer from the
  prompt kernels to every position of F (no positional encoding), residual + LayerNorm, masks as
  kernel . F and an IoU head.
"""

from __future__ import annotations

import torch
from torch import nn

from .classifier import TextClassifier
from .decoder import KernelUpdator, mask_pool
from .factored import FactoredFeatures, feature_dot


class ObjectAdapter(nn.Module):
    """Kernel-update adapter for object queries.

    Args:
        channels: query width C.
        embed_dim: text-embedding width D.
    """

    def __init__(self, channels: int = 256, embed_dim: int = 768) -> None:
        super().__init__()
        self.kernel_update = KernelUpdator(channels)
        self.cls_proj = nn.Linear(channels, embed_dim)
        # The adapter's kernels end in ReLU(LayerNorm), so at init ||k|| ~ sqrt(C) and k . F gives mask
        # logits far beyond the stages' (std ~20 instead of ~3). Start the final LayerNorm scale at
        # 1 / sqrt(C) so a model trained from scratch starts with calibrated masks (loaded weights,
        # e.g. the official checkpoint, overwrite it).
        nn.init.constant_(self.kernel_update.fc_norm.weight, channels**-0.5)

    def forward(
        self,
        features: torch.Tensor,
        kernels: torch.Tensor,
        mask_logits: torch.Tensor,
        classifier: TextClassifier | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """F (B, C, H, W), kernels (B, N, C), stage-3 masks (B, N, H, W) ->
        class logits (B, N, K+1) or None, masks (B, N, H, W), kernels (B, N, C)."""
        kernels = self.kernel_update(mask_pool(mask_logits, features), kernels)
        masks = feature_dot(kernels, features)  # (B, N, H, W)
        cls = classifier(self.cls_proj(kernels)) if classifier is not None else None
        return cls, masks, kernels


class PromptAdapter(nn.Module):
    """One cross-attention layer from prompt kernels to the pixels of F, then LayerNorm and IoU."""

    def __init__(self, channels: int = 256, num_heads: int = 8) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)
        self.iou = nn.Linear(channels, 1)
        nn.init.constant_(self.norm.weight, channels**-0.5)  # calibrated initial masks, as ObjectAdapter

    def project_features(self, features: torch.Tensor | FactoredFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention's key and value projections of F, which do not depend on the prompts.

        Computed once per image (``InteractivePredictor`` caches them) and passed back as ``kv``: this
        is most of the adapter's cost (two C x C projections of every pixel).

        Args:
            features: F (B, C, H, W).

        Returns:
            keys, values, each (B, heads, head_dim, H*W) (pixels last, so the attention matmuls need
            no transposed copies).
        """
        b, c = features.shape[:2]
        heads = self.cross_attn.num_heads
        w = self.cross_attn.in_proj_weight  # (3C, C): q, k, v
        bias = self.cross_attn.in_proj_bias
        if isinstance(features, FactoredFeatures):
            k = features.project(w[c : 2 * c], bias[c : 2 * c] if bias is not None else None)  # (B, C, H*W)
            v = features.project(w[2 * c :], bias[2 * c :] if bias is not None else None)
        else:
            f = features.flatten(2)  # (B, C, H*W)
            k = torch.matmul(w[c : 2 * c], f)  # (B, C, H*W)
            v = torch.matmul(w[2 * c :], f)
            if bias is not None:
                k += bias[c : 2 * c, None]
                v += bias[2 * c :, None]
        return k.view(b, heads, c // heads, -1), v.view(b, heads, c // heads, -1)  # (B, heads, d, H*W)

    def _cached_attention(self, kernels: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Multi-head cross-attention of kernels (B, P, C) over precomputed keys/values -> (B, P, C)."""
        k, v = kv  # (B, heads, d, N)
        b, p, c = kernels.shape
        heads, d = k.shape[1], k.shape[2]
        w, bias = self.cross_attn.in_proj_weight, self.cross_attn.in_proj_bias
        q = torch.nn.functional.linear(kernels, w[:c], bias[:c] if bias is not None else None)  # (B, P, C)
        q = q.view(b, p, heads, d).transpose(1, 2) * d**-0.5  # (B, heads, P, d)
        attn = torch.matmul(q, k).softmax(-1)  # (B, heads, P, N)
        out = torch.matmul(attn, v.transpose(-1, -2))  # (B, heads, P, d)
        return self.cross_attn.out_proj(out.transpose(1, 2).reshape(b, p, c))

    def forward(
        self,
        features: torch.Tensor | FactoredFeatures,
        kernels: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F (B, C, H, W), kernels (B, P, C) -> masks (B, P, H, W), IoU (B, P, 1), kernels (B, P, C).

        ``kv``: ``project_features(F)`` computed earlier for the same F (inference; same numbers to
        ~1e-6). Without it the keys/values are projected here (``nn.MultiheadAttention``, training).
        """
        if kv is None and isinstance(features, FactoredFeatures):
            kv = self.project_features(features)
        if kv is None:
            keys = features.flatten(2).transpose(1, 2)  # (B, H*W, C)
            attn = self.cross_attn(kernels, keys, keys, need_weights=False)[0]
        else:
            attn = self._cached_attention(kernels, kv)
        kernels = self.norm(kernels + attn)
        masks = feature_dot(kernels, features)  # (B, P, H, W)
        return masks, self.iou(kernels), kernels
