"""The shared three-stage decoder of pooling-based dynamic convolution (RAP-SAM section 3.2).

Each stage (official ``CrossAttenHead`` with ``use_kernel_updator=True``) takes kernels K (B, N, C),
mask logits M (B, N, H, W) and features F (B, C, H, W):

1. hard-mask sum pooling ``f = sum_{hw} [sigmoid(M) > 0.5] F`` (a sum, not a mean; no gradient through
   the mask);
2. K-Net gated kernel update ``K' = KernelUpdator(f, K)``;
3. self-attention among queries (+ residual, LayerNorm); an attention mask isolates prompt queries;
4. FFN 256 -> 2048 -> 256 (+ residual, LayerNorm);
5. class branch (Linear-LN-ReLU, MLP to the text dim, cosine vs text embeddings), mask branch
   (Linear-LN-ReLU, Linear, dot product with F) and IoU branch (MLP on the mask feature).

The kernel updator is from K-Net (Zhang et al., NeurIPS 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import TextClassifier
from .factored import FactoredFeatures, feature_dot, feature_pool


@dataclass
class DecoderOutput:
    """One supervised decoder output (a stage or an adapter).

    Attributes:
        cls_logits: (B, Q, K+1), background last.
        mask_logits: (B, Q, H, W) at stride 4, or (B, Q, T, H, W) for a clip.
        iou: (B, Q, 1) predicted mask IoU.
    """

    cls_logits: torch.Tensor | None
    mask_logits: torch.Tensor
    iou: torch.Tensor


def mask_pool(mask_logits: torch.Tensor, features: torch.Tensor | FactoredFeatures) -> torch.Tensor:
    """Hard-mask sum pooling: (B, N, H, W) logits, (B, C, H, W) features -> (B, N, C).

    The mask is ``sigmoid(logit) > 0.5`` (official). Inference features (``FactoredFeatures``) use the
    equivalent ``logit > 0`` (4x cheaper; the two differ only for logits in (0, 6e-8], where float32
    sigmoid rounds to exactly 0.5).
    """
    if isinstance(features, FactoredFeatures):
        hard = (mask_logits > 0).to(features.dtype)
    else:
        hard = (mask_logits.sigmoid() > 0.5).to(features.dtype)
    return feature_pool(hard, features)


class KernelUpdator(nn.Module):
    """K-Net's gated kernel update: fuses pooled features ``f`` into kernels ``k`` (both (B, N, C))."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.dynamic_layer = nn.Linear(c, 2 * c)
        self.input_layer = nn.Linear(c, 2 * c)
        self.input_gate = nn.Linear(c, c)
        self.update_gate = nn.Linear(c, c)
        self.norm_in = nn.LayerNorm(c)
        self.norm_out = nn.LayerNorm(c)
        self.input_norm_in = nn.LayerNorm(c)
        self.input_norm_out = nn.LayerNorm(c)
        self.fc_layer = nn.Linear(c, c)
        self.fc_norm = nn.LayerNorm(c)

    def forward(self, f: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        c = self.channels
        params = self.dynamic_layer(f)  # (B, N, 2C)
        p_in, p_out = params[..., :c], params[..., -c:]
        inputs = self.input_layer(k)  # (B, N, 2C)
        i_in, i_out = inputs[..., :c], inputs[..., -c:]
        gate = i_in * p_in
        input_gate = self.input_norm_in(self.input_gate(gate)).sigmoid()
        update_gate = self.norm_in(self.update_gate(gate)).sigmoid()
        out = update_gate * self.norm_out(p_out) + input_gate * self.input_norm_out(i_out)
        return F.relu(self.fc_norm(self.fc_layer(out)))


class FFN(nn.Module):
    """Two-layer MLP with ReLU and a residual connection."""

    def __init__(self, channels: int = 256, hidden: int = 2048) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.relu(self.fc1(x)))


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class DecoderStage(nn.Module):
    """One pooling-based dynamic-convolution stage with class, mask and IoU branches.

    Args:
        channels: query / feature width C.
        embed_dim: text-embedding width D of the class branch.
        num_heads: self-attention heads.
        ffn_dim: FFN hidden width.
    """

    def __init__(self, channels: int = 256, embed_dim: int = 768, num_heads: int = 8, ffn_dim: int = 2048) -> None:
        super().__init__()
        c = channels
        self.kernel_update = KernelUpdator(c)
        self.self_attn = nn.MultiheadAttention(c, num_heads, dropout=0.0)
        self.self_attn_norm = nn.LayerNorm(c)
        self.ffn = FFN(c, ffn_dim)
        self.ffn_norm = nn.LayerNorm(c)
        self.cls_fcs = nn.Sequential(nn.Linear(c, c, bias=False), nn.LayerNorm(c), nn.ReLU(inplace=True))
        self.cls_proj = _mlp([c, c, c, embed_dim])
        self.mask_fcs = nn.Sequential(nn.Linear(c, c, bias=False), nn.LayerNorm(c), nn.ReLU(inplace=True))
        self.fc_mask = nn.Linear(c, c)
        self.iou_embed = _mlp([c, c, c, 1])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Official CrossAttenHead._init_weights: trunc_normal(0.02) on Linear, LN 1/0.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(
        self,
        features: torch.Tensor | FactoredFeatures,
        kernels: torch.Tensor,
        mask_logits: torch.Tensor,
        classifier: TextClassifier | None,
        num_objects: int | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one stage.

        Args:
            features: F (B, C, H, W) (a clip is stacked along H).
            kernels: (B, N, C) query kernels.
            mask_logits: (B, N, H, W) masks of the previous stage.
            classifier: text classifier; ``None`` skips the class branch (returns ``None`` logits).
            num_objects: the first ``num_objects`` queries are object queries (they attend to each
                other); the rest are prompt queries, each attending only to itself. None = all objects.

        Returns:
            cosine class logits (B, N, K+1) (not yet divided by the temperature) or None,
            new mask logits (B, N, H, W), IoU (B, N, 1), new kernels (B, N, C).
        """
        f = mask_pool(mask_logits, features)  # (B, N, C)
        k = self.kernel_update(f, kernels)  # (B, N, C)
        k = k.permute(1, 0, 2)  # (N, B, C)
        k = k + self._self_attention(k, num_objects)
        k = self.self_attn_norm(k.permute(1, 0, 2))  # (B, N, C)
        obj = self.ffn_norm(self.ffn(k))  # (B, N, C)
        cls_logits = None
        if classifier is not None:
            cls_logits = classifier(self.cls_proj(self.cls_fcs(obj)))
        mask_feat = self.mask_fcs(obj)
        new_masks = feature_dot(self.fc_mask(mask_feat), features)  # (B, N, H, W)
        return cls_logits, new_masks, self.iou_embed(mask_feat), obj

    def _self_attention(self, k: torch.Tensor, num_objects: int | None) -> torch.Tensor:
        """Self-attention with the prompt isolation mask, computed block by block.

        Equivalent to one attention over all queries with ``isolation_mask`` (object block open,
        prompts see only themselves) but never builds the (N, N) mask over objects and prompts, and
        gives each block exactly the numbers of a separate pass.
        """
        n = k.shape[0]
        n_obj = n if num_objects is None else num_objects
        parts = []
        if n_obj:
            parts.append(self.self_attn(k[:n_obj], k[:n_obj], k[:n_obj], need_weights=False)[0])
        if n > n_obj:
            kp = k[n_obj:]  # (P, B, C)
            diag = ~torch.eye(n - n_obj, dtype=torch.bool, device=k.device)  # official prompt mask
            parts.append(self.self_attn(kp, kp, kp, attn_mask=diag, need_weights=False)[0])
        return torch.cat(parts, 0) if len(parts) > 1 else parts[0]


class Decoder(nn.Module):
    """Object queries + ``num_stages`` shared-weight-free stages run over object and prompt queries.

    Args:
        num_queries: number of learned object queries (100).
        num_stages: decoder stages (3).
        channels, embed_dim, num_heads, ffn_dim: stage widths.
        temperature: stage class logits are divided by it (official 0.1, so stages give 1000*cos).
    """

    def __init__(
        self,
        num_queries: int = 100,
        num_stages: int = 3,
        channels: int = 256,
        embed_dim: int = 768,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_queries = num_queries
        self.temperature = temperature
        self.query_embed = nn.Embedding(num_queries, channels)
        self.stages = nn.ModuleList(
            [DecoderStage(channels, embed_dim, num_heads, ffn_dim) for _ in range(num_stages)]
        )

    def forward(
        self,
        features: torch.Tensor | FactoredFeatures,
        kernels: torch.Tensor,
        classifier: TextClassifier | None,
        num_objects: int | None = None,
        mask_hook=None,
    ) -> tuple[list[DecoderOutput], torch.Tensor, torch.Tensor]:
        """features (B, C, H, W), kernels (B, N, C) -> per-stage outputs, last masks, last kernels.
        ``mask_hook(i, kernels, masks)`` (experimental prompt prior) edits stage i's masks."""
        masks = feature_dot(kernels, features)  # (B, N, H, W)
        outputs = []
        for si, stage in enumerate(self.stages):
            cls, masks, iou, kernels = stage(features, kernels, masks, classifier, num_objects)
            if mask_hook is not None:
                masks = mask_hook(si, kernels, masks)
            if cls is not None:
                cls = cls / self.temperature
            outputs.append(DecoderOutput(cls, masks, iou))
        return outputs, masks, kernels
