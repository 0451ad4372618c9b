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
        masks = torch.einsum("bnc,bchw->bnhw", kernels, features)
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

    def forward(self, features: torch.Tensor, kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F (B, C, H, W), kernels (B, P, C) -> masks (B, P, H, W), IoU (B, P, 1), kernels (B, P, C)."""
        keys = features.flatten(2).transpose(1, 2)  # (B, H*W, C)
        attn = self.cross_attn(kernels, keys, keys, need_weights=False)[0]
        kernels = self.norm(kernels + attn)
        masks = torch.einsum("bnc,bchw->bnhw", kernels, features)
        return masks, self.iou(kernels), kernels
