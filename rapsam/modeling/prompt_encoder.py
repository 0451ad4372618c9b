"""Prompt encoder: clicks and boxes -> prompt queries (official ``prepare_for_dn_mo``).

A click (x, y) becomes the 6-pixel box (x-3, y-3, x+3, y+3); a box prompt is used as given. Each box
is normalised by the (unpadded) image size, converted to (cx, cy, w, h), passed through the official
``inverse_sigmoid`` / ``sigmoid`` round trip, encoded with 128 sine/cosine features per coordinate
(order y, x, w, h; temperature 10000, scale 2*pi; mmdet ``coordinate_to_encoding``) and projected
512 -> 256. A single positive click gives exactly the official query::

    q = (label_embed[1] + mask_token) + pos_proj(PE(box))

Extensions (the official weights were trained with single positive clicks only; models trained by
rapsam's trainer learn them):

* **Several clicks on one object**: a prompt holds ``n`` points with labels 1 (positive), 0 (negative)
  or -1 (padding). Positive points and the box form the positive group, negatives the negative group;
  ``q = (label_embed[1] + mask_token) + mean_{pos} pos_proj(PE)
  + [any negative] (label_embed[0] + mean_{neg} pos_proj(PE))``.
* **Box prompts**: the box itself is one more member of the positive group.

A prompt needs at least one positive point or a box.

* **Content features** (``content_features=True``, off for the official weights): the features of F
  at each click (bilinear, at the click position) and at the box centre are averaged within the
  positive / negative groups like the position terms and added through ``content_proj`` (initialised
  to the identity): the query then starts as "pixels that look like the clicked one", which lets a
  model trained from scratch localise clicks quickly. The official code leaves this as a FIXME
  ("pool content features as label embedding").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .factored import FactoredFeatures

#: Half side, in input pixels, of the box a click is turned into.
CLICK_HALF_SIZE = 3.0


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """mmdet's ``inverse_sigmoid``: clamp to [0, 1], then log(x / (1 - x)) with eps."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def box_sine_encoding(
    boxes: torch.Tensor, num_feats: int = 128, temperature: int = 10000, scale: float = 2 * math.pi
) -> torch.Tensor:
    """(…, 4) normalised (cx, cy, w, h) -> (…, 4 * num_feats) in the order y, x, w, h."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=boxes.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)

    def enc(v: torch.Tensor) -> torch.Tensor:
        p = (v * scale)[..., None] / dim_t  # (..., num_feats)
        return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2)

    x, y, w, h = boxes.unbind(-1)
    return torch.cat((enc(y), enc(x), enc(w), enc(h)), dim=-1)


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


class PromptEncoder(nn.Module):
    """Encodes point/box prompts into prompt queries of width ``channels``."""

    def __init__(self, channels: int = 256, content_features: bool = False) -> None:
        super().__init__()
        self.label_embed = nn.Embedding(2, channels)  # official pb_embedding: 0 negative, 1 positive
        self.mask_token = nn.Embedding(1, channels)  # official mask_tokens
        self.pos_proj = nn.Linear(2 * channels, channels)  # official pos_linear
        self.content_proj = None
        if content_features:
            self.content_proj = nn.Linear(channels, channels)
            nn.init.eye_(self.content_proj.weight)
            nn.init.zeros_(self.content_proj.bias)

    def encode_boxes(self, boxes_xyxy: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
        """(…, 4) xyxy pixel boxes, image_size (…, 2) as (h, w) -> (…, C) position embeddings."""
        h, w = image_size[..., 0], image_size[..., 1]
        factor = torch.stack([w, h, w, h], -1).to(boxes_xyxy.dtype)
        b = xyxy_to_cxcywh(boxes_xyxy / factor)
        b = inverse_sigmoid(b).sigmoid()
        c = self.pos_proj.out_features  # C/2 features per coordinate (official: 128 for C = 256)
        return self.pos_proj(box_sine_encoding(b, num_feats=c // 2))

    def forward(
        self,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        image_sizes: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Build prompt queries.

        Args:
            points: (B, P, n, 2) clicks (x, y) in input pixels, or None.
            labels: (B, P, n) long: 1 positive, 0 negative, -1 padding.
            boxes: (B, P, 4) xyxy pixel boxes with NaN rows for "no box", or None.
            image_sizes: (B, 2) (h, w) of the unpadded image the pixels refer to.
            features: F (B, C, h, w) at stride 4 of the padded input, needed with content features.

        Returns:
            (B, P, C) prompt queries.
        """
        if points is None and boxes is None:
            raise ValueError("a prompt needs points or a box")
        b = (points if points is not None else boxes).shape[0]
        p = (points if points is not None else boxes).shape[1]
        size = image_sizes.to(torch.float32)[:, None]  # (B, 1, 2)
        c = self.mask_token.weight.shape[1]
        dev = self.mask_token.weight.device
        pos_sum = torch.zeros(b, p, c, device=dev)
        pos_cnt = torch.zeros(b, p, 1, device=dev)
        neg_sum = torch.zeros(b, p, c, device=dev)
        neg_cnt = torch.zeros(b, p, 1, device=dev)
        if points is not None:
            if labels is None:
                raise ValueError("points need labels (1 positive, 0 negative, -1 padding)")
            pts = points.to(torch.float32)
            click_boxes = torch.cat([pts - CLICK_HALF_SIZE, pts + CLICK_HALF_SIZE], -1)  # (B, P, n, 4)
            emb = self.encode_boxes(click_boxes, size[:, :, None].expand(-1, p, pts.shape[2], -1))  # (B, P, n, C)
            if self.content_proj is not None:
                emb = emb + self.content_proj(self._sample(features, pts))  # (B, P, n, C)
            is_pos = (labels == 1).to(emb.dtype)[..., None]  # (B, P, n, 1)
            is_neg = (labels == 0).to(emb.dtype)[..., None]
            pos_sum = pos_sum + (emb * is_pos).sum(2)
            pos_cnt = pos_cnt + is_pos.sum(2)
            neg_sum = neg_sum + (emb * is_neg).sum(2)
            neg_cnt = neg_cnt + is_neg.sum(2)
        if boxes is not None:
            has_box = ~torch.isnan(boxes).any(-1, keepdim=True)  # (B, P, 1)
            safe = torch.where(has_box, boxes.to(torch.float32), torch.zeros_like(boxes, dtype=torch.float32))
            emb = self.encode_boxes(safe, size.expand(-1, p, -1))  # (B, P, C)
            if self.content_proj is not None:
                centre = (safe[..., :2] + safe[..., 2:]) / 2  # (B, P, 2)
                emb = emb + self.content_proj(self._sample(features, centre[:, :, None])[:, :, 0])
            pos_sum = pos_sum + emb * has_box
            pos_cnt = pos_cnt + has_box.to(emb.dtype)
        if bool((pos_cnt == 0).any()):
            raise ValueError("every prompt needs at least one positive click (label 1) or a box")
        q = (self.label_embed.weight[1] + self.mask_token.weight[0]) + pos_sum / pos_cnt
        has_neg = (neg_cnt > 0).to(q.dtype)
        q = q + has_neg * (self.label_embed.weight[0] + neg_sum / neg_cnt.clamp(min=1))
        return q

    @staticmethod
    def _sample(features: torch.Tensor | None, xy: torch.Tensor) -> torch.Tensor:
        """F (B, C, h, w) at input-pixel positions xy (B, P, n, 2) -> (B, P, n, C), bilinear."""
        if features is None:
            raise ValueError("content prompt features need F: call the encoder with features=...")
        h, w = features.shape[-2:]
        grid = torch.stack([xy[..., 0] / (2 * w) - 1, xy[..., 1] / (2 * h) - 1], -1)  # 4 px per cell, in [-1, 1]
        b, p, n, _ = xy.shape
        grid = grid.reshape(b, p * n, 1, 2).to(features.dtype)
        if isinstance(features, FactoredFeatures):
            out = features.sample(grid)  # (B, C, P*n, 1)
        else:
            out = F.grid_sample(features, grid, align_corners=False)  # (B, C, P*n, 1)
        return out[..., 0].permute(0, 2, 1).reshape(b, p, n, -1)
