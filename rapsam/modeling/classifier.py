"""Open-vocabulary classifier: cosine scores against text embeddings of class names.

RAP-SAM replaces a linear class head by ``scale * max_p cos(e, t_{k,p})`` where ``t_{k,p}`` are the
(L2-normalised) text embeddings of the ``P`` synonyms/prototypes of class ``k`` and ``e`` the projected
query embedding (official ``sphere_cls``). A zero "background" prototype is appended, so the background
logit is always exactly 0. The embeddings are a buffer that is swapped at run time to change the
vocabulary; they are not part of the official checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: ``logit_scale`` of the official head (``exp(4.6052)`` ~= 100).
LOGIT_SCALE = 4.6052


class TextClassifier(nn.Module):
    """Holds the (D, K+1, P) text-embedding table and turns query embeddings into class logits.

    Args:
        embed_dim: text-embedding width D (768 for CLIP ConvNeXt-L-D-320).
        embeddings: optional initial table (K, P, D), unit-norm rows.
    """

    def __init__(self, embed_dim: int, embeddings: torch.Tensor | None = None) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.register_buffer("logit_scale", torch.tensor(LOGIT_SCALE, dtype=torch.float32), persistent=False)
        self.register_buffer("table", torch.zeros(embed_dim, 1, 1), persistent=False)  # (D, K+1, P)
        self.num_classes = 0
        if embeddings is not None:
            self.set_embeddings(embeddings)

    @property
    def is_set(self) -> bool:
        return self.num_classes > 0

    def set_embeddings(self, embeddings: torch.Tensor) -> None:
        """Install a vocabulary: ``embeddings`` (K, P, D) with unit-norm rows, or (K, D)."""
        if not isinstance(embeddings, torch.Tensor):
            raise ValueError(f"class embeddings must be a torch.Tensor (K, P, D), got {type(embeddings).__name__}")
        if embeddings.dim() == 2:
            embeddings = embeddings[:, None]
        if embeddings.dim() != 3 or embeddings.shape[0] == 0 or embeddings.shape[1] == 0:
            raise ValueError(
                f"class embeddings must have shape (K, P, D) with K, P >= 1, got {tuple(embeddings.shape)}"
            )
        if embeddings.shape[2] != self.embed_dim:
            raise ValueError(
                f"class embeddings have dimension {embeddings.shape[2]} but this model expects "
                f"{self.embed_dim}: build the classifier with the text encoder the model was trained with"
            )
        emb = embeddings.detach().to(dtype=torch.float32)
        if not torch.isfinite(emb).all():
            raise ValueError("class embeddings contain NaN or Inf")
        norms = emb.norm(dim=-1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
            raise ValueError(
                "class embeddings must have unit-norm rows (L2-normalise each prototype); "
                f"found norms in [{norms.min().item():.4f}, {norms.max().item():.4f}]"
            )
        k, p, d = emb.shape
        table = torch.cat([emb, emb.new_zeros(1, p, d)], 0)  # (K+1, P, D), zero background
        self.table = table.permute(2, 0, 1).contiguous().to(self.logit_scale.device)  # (D, K+1, P)
        self.num_classes = k

    def embeddings(self) -> torch.Tensor:
        """The installed table as (K, P, D) (without the background row)."""
        return self.table.permute(1, 2, 0)[: self.num_classes].contiguous()

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        """embed (B, Q, D) -> logits (B, Q, K+1) = exp(logit_scale) * max_p cos."""
        if not self.is_set:
            raise RuntimeError(
                "this model has no vocabulary: pass classifier=... to build_model or call "
                "model.set_vocabulary(...) before asking for class scores"
            )
        cos = torch.einsum("bnc,ckp->bnkp", F.normalize(embed, dim=-1), self.table)  # (B, Q, K+1, P)
        return self.logit_scale.exp() * cos.max(-1).values

