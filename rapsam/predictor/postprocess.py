"""Official panoptic / instance post-processing (mmdet ``MaskFormerFusionHead``) and semantic maps.

Panoptic: softmax over K+1; keep queries whose argmax is not background and whose score > 0.8; pixel
argmax of score x sigmoid(mask) over the kept queries; for each kept query in order, its visible area
(argmax pixels) over its own area (sigmoid >= 0.5) must be >= 0.8, else it is dropped; painted pixels
are argmax pixels with sigmoid >= 0.5; stuff segments of one class share one segment, things get
instance ids in visiting order.

Instance: softmax without background, top-k over all (query, class) pairs, things only, binary mask =
logit > 0, score = class prob x mean sigmoid inside the mask, box = tight box of the mask.

**Fast path** (``panoptic_fast``, ``binary_masks_fast``, ``argmax_fast``, the predictors' default):
the official code upsamples every kept query's logits to the full image before deciding anything per
pixel. But each full-resolution value is a fixed bilinear mix of the stride-4 values of its *cell* (the
nearest stride-4 position) and that cell's 3x3 neighbours, through both official steps (upsampling to
the padded size, and resizing to the original size when the test pipeline resized the image;
``UpsampleGrid``). So wherever a decision (a mask's sign, the winning query, whether it is painted)
is the same over a cell's 3x3 neighbourhood it is the same for every pixel of the cell: exactly for
signs (a convex mix), and for the argmax up to pathological ties. The fast path decides per stride-4
cell, copies decisions to the cell's pixels, and evaluates the official values only at the pixels of
*uncertain* cells (a band along the boundaries): all queries up to 18, else the two best of each
neighbouring cell. Areas for the panoptic overlap rule (visible and own) are counted the same way, so
the segment set is the official one too. ``tests/predictor/test_fast_path.py`` pins the agreement (same
segments, >= 99.9% of pixels; in practice identical up to float ties). The cost follows the band,
not the image: on clean masks most cells are settled, on noisy ones (many low-confidence queries
flickering in void regions) the band grows and the cost approaches the official one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .transforms import logits_to_original


@dataclass
class PanopticRaw:
    """Post-processing output before it becomes a ``PanopticResult``.

    Attributes:
        seg_ids: (H, W) int32, 0 = void, segment ids from 1.
        labels, scores, queries: per segment, in painting order.
        is_thing: per segment.
        areas: (S,) pixel count per segment, when the producer computed them (fast path), else None.
        boxes: (S, 4) xyxy boxes (x1/y1 exclusive), likewise.
    """

    seg_ids: torch.Tensor
    labels: list[int]
    scores: list[float]
    queries: list[int]
    is_thing: list[bool]
    areas: torch.Tensor | None = None
    boxes: torch.Tensor | None = None


def panoptic_keep(mask_cls: torch.Tensor, object_mask_thr: float = 0.8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask_cls (Q, K+1) -> (kept query indices, their scores, their labels)."""
    scores, labels = mask_cls.softmax(-1).max(-1)
    keep = labels.ne(mask_cls.shape[-1] - 1) & (scores > object_mask_thr)
    idx = torch.nonzero(keep).flatten()
    return idx, scores[idx], labels[idx]


def panoptic_postprocess(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_logits: torch.Tensor,
    thing_flags: list[bool],
    iou_thr: float = 0.8,
    filter_low_score: bool = True,
    queries: torch.Tensor | None = None,
) -> PanopticRaw:
    """Official pixel assignment over the kept queries (vectorised; the same numbers as the loop).

    Args:
        scores, labels: (N,) of the kept queries (``panoptic_keep``).
        mask_logits: (N, H, W) their mask logits at the output size.
        thing_flags: per class.
        iou_thr: minimum visible / own-area ratio.
        filter_low_score: paint only pixels where the winner's sigmoid >= 0.5 (official True).
        queries: (N,) original query indices (for the record).
    """
    n, h, w = mask_logits.shape
    if n == 0:
        return PanopticRaw(torch.zeros(h, w, dtype=torch.int32, device=mask_logits.device), [], [], [], [])
    masks = mask_logits.sigmoid()
    ids = _argmax0(scores.view(-1, 1, 1) * masks)  # (H, W), first maximum as argmax
    area = torch.bincount(ids.flatten(), minlength=n)  # (N,) visible pixels
    orig = (masks >= 0.5).flatten(1).sum(1)  # (N,) own pixels
    lut, raw = _assign_segments(area, orig, scores, labels, thing_flags, iou_thr, queries)
    seg = lut[ids]
    if filter_low_score:
        seg = seg * (masks.gather(0, ids[None])[0] >= 0.5)
    raw.seg_ids = seg.to(torch.int32)
    return raw


def _assign_segments(
    area: torch.Tensor,
    orig: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    thing_flags: list[bool],
    iou_thr: float,
    queries: torch.Tensor | None,
) -> tuple[torch.Tensor, PanopticRaw]:
    """The official segment rules without a loop over queries.

    Visiting the kept queries in order, a query with ``area > 0``, ``orig > 0`` and
    ``area / orig >= iou_thr`` survives; a thing survivor opens a new segment, a stuff survivor opens one
    unless an earlier survivor of its class did (then it paints into that one). Other queries paint
    nothing (their pixels stay void).

    Returns:
        lut (N,) long: segment id (1, 2, ...) each kept query paints, 0 for none; and the per-segment
        record (``seg_ids`` left empty for the caller).
    """
    n = area.numel()
    dev = area.device
    things = torch.tensor(thing_flags, dtype=torch.bool, device=dev)[labels]  # (N,)
    ratio_ok = area.double() / orig.clamp(min=1).double() >= iou_thr
    alive = (area > 0) & (orig > 0) & ratio_ok  # (N,)
    pos = torch.arange(n, device=dev)
    # one key per segment: the query itself for things, the class for stuff
    key = torch.where(things, labels.new_full((n,), -1) - pos, labels)  # things: -1 - i (distinct)
    key = torch.where(alive, key, labels.new_full((n,), torch.iinfo(labels.dtype).min))
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), n, dtype=torch.long, device=dev).scatter_reduce(0, inv, pos, "amin")
    opener = alive & (first[inv] == pos)  # (N,) queries that open a segment, in visiting order
    seg_of_opener = torch.cumsum(opener.long(), 0)  # (N,) id of the segment opened at each opener
    lut = torch.where(alive, seg_of_opener[first[inv].clamp(max=n - 1)], torch.zeros_like(pos))
    o = torch.nonzero(opener).flatten()
    q = queries[o] if queries is not None else o
    raw = PanopticRaw(
        torch.zeros(0, dtype=torch.int32),
        labels[o].tolist(),
        [float(v) for v in scores[o].tolist()],
        [int(v) for v in q.tolist()],
        things[o].tolist(),
    )
    return lut, raw


# ------------------------------------------------------------------------------------- fast path
class UpsampleGrid:
    """Where each original-image pixel samples the stride-4 logits in the official upsampling chain.

    Official chain (``transforms.logits_to_original``): bilinear from (h4, w4) to the padded input size,
    crop to the resized image, then (if the image was resized) bilinear to the original size, with
    align_corners=False and PyTorch's index clamping. Both steps are separable and linear, so an original
    row reads at most four stride-4 rows with fixed weights (two when there is no resize). Each original
    row belongs to a *cell* row (``rows``: the rounded centre of its taps), and all its taps lie in that
    cell row or the two next to it; ``_row_w`` (h4, sy, 3) holds, for the ``sy`` pixel rows of each cell
    row, the weights on cell rows (-1, 0, +1). The same for columns. So the official value of every pixel
    of a cell is a fixed separable mix of the cell's 3x3 neighbourhood (``cell_values``).

    Args:
        low_size: (h4, w4) of the logits.
        pad_size, img_size, ori_size: as in ``PreparedImage``.
        device: where the index tensors live.
    """

    def __init__(
        self,
        low_size: tuple[int, int],
        pad_size: tuple[int, int],
        img_size: tuple[int, int],
        ori_size: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> None:
        self.low_size = (int(low_size[0]), int(low_size[1]))
        self.ori_size = (int(ori_size[0]), int(ori_size[1]))
        self.pad_size = (int(pad_size[0]), int(pad_size[1]))
        self.img_size = (int(img_size[0]), int(img_size[1]))
        h4, w4 = self.low_size
        self.rows, self.row_first, self.row_count, self._row_w = _axis(ori_size[0], img_size[0], pad_size[0], h4, device)
        self.cols, self.col_first, self.col_count, self._col_w = _axis(ori_size[1], img_size[1], pad_size[1], w4, device)
        self._d = torch.tensor([-1, 0, 1], device=device)

    def upsample(self, low: torch.Tensor) -> torch.Tensor:
        """The official dense upsampling of (N, h4, w4) to (N, H, W) (``logits_to_original``)."""
        return logits_to_original(low, self.pad_size, self.img_size, self.ori_size)

    def cell_pixels(self) -> torch.Tensor:
        """(h4, w4) long: how many original pixels each cell holds."""
        return self.row_count[:, None] * self.col_count[None, :]

    def expand(self, low: torch.Tensor) -> torch.Tensor:
        """(..., h4, w4) per-cell values -> (..., H, W), each pixel taking its cell's value."""
        # columns first on the small map, then whole rows (contiguous copies) on the big one
        return low.index_select(-1, self.cols).index_select(-2, self.rows)

    def cell_values(self, low: torch.Tensor, channels: torch.Tensor | None, ci: torch.Tensor, cj: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The official upsampled values of the pixels of cells (ci, cj) (M,), for some channels.

        Args:
            low: (N, h4, w4) stride-4 values.
            channels: (C, M) channel indices to evaluate in each cell, or None for all N channels.
            ci, cj: (M,) cell rows / columns.

        Returns:
            values (C, M, sy, sx) float32 for the block of pixels of each cell, valid (M, sy, sx) bool
            (cells near the edges or of a resize hold fewer pixels), and the pixel rows (M, sy) and
            columns (M, sx) of each block.
        """
        h4, w4 = self.low_size
        ii = (ci[:, None] + self._d).clamp(0, h4 - 1)  # (M, 3)
        jj = (cj[:, None] + self._d).clamp(0, w4 - 1)
        nb = (ii.t() * w4)[:, None, :] + jj.t()[None, :, :]  # (3, 3, M) flat index of each neighbour
        m = ci.numel()
        # cells last (M contiguous) so that every broadcast below runs over unit-stride rows
        if channels is None:
            v = low.float().flatten(1).index_select(1, nb.flatten()).view(low.shape[0], 3, 3, m).permute(1, 2, 0, 3)  # (3, 3, N, M)
        else:
            v = low.float().flatten()[channels[None, None] * (h4 * w4) + nb[:, :, None]]  # (3, 3, C, M)
        wy = self._row_w[ci].permute(1, 2, 0)  # (sy, 3, M)
        wx = self._col_w[cj].permute(1, 2, 0)  # (sx, 3, M)
        # separable 3-tap mixes as broadcast multiply-adds (tiny per-cell matmuls are slow as bmm)
        t = sum(wy[:, d, None, None, :] * v[d][None] for d in range(3))  # (sy, 3, C, M)
        out = sum(t[:, None, e] * wx[None, :, e, None, :] for e in range(3))  # (sy, sx, C, M)
        out = out.permute(2, 3, 0, 1)  # (C, M, sy, sx) view
        a = torch.arange(wy.shape[0], device=ci.device)
        b = torch.arange(wx.shape[0], device=ci.device)
        valid = (a[None, :, None] < self.row_count[ci][:, None, None]) & (b[None, None, :] < self.col_count[cj][:, None, None])
        return out, valid, self.row_first[ci][:, None] + a, self.col_first[cj][:, None] + b


def _linear_taps(n_out: int, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch bilinear (align_corners=False) resampling n_in -> n_out along one axis:
    per output index the two source indices and the second one's weight (float32 arithmetic)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long().clamp(max=n_in - 1)
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    lam = src - i0.float()
    return i0, i1, lam


def _axis(n_out: int, n_img: int, n_pad: int, n_low: int, device: torch.device | str
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of ``UpsampleGrid``: per output index its cell; per cell the first output index, the
    count, and the (count_max, 3) weights of its outputs on cells (-1, 0, +1)."""
    l0, l1, lam = _linear_taps(n_pad, n_low)  # low -> padded (the crop keeps indices < n_img)
    if n_img == n_out:
        taps = torch.stack([l0[:n_out], l1[:n_out]], 1)
        weights = torch.stack([1 - lam[:n_out], lam[:n_out]], 1)
    else:
        r0, r1, a = _linear_taps(n_out, n_img)  # img -> ori
        taps = torch.stack([l0[r0], l1[r0], l0[r1], l1[r1]], 1)
        weights = torch.stack([(1 - a) * (1 - lam[r0]), (1 - a) * lam[r0], a * (1 - lam[r1]), a * lam[r1]], 1)
    centre = (taps.float() * weights).sum(1) / weights.sum(1)
    cell = (centre + 0.5).floor().long().clamp(0, n_low - 1)  # (n_out,)
    rel = taps - cell[:, None] + 1  # 0, 1, 2 for cells -1, 0, +1
    # a tap outside the 3x3 neighbourhood would break the per-cell evaluation (cannot happen for
    # bilinear chains: the taps span less than two cells around their centre)
    assert bool(((rel >= 0) & (rel <= 2) | (weights == 0)).all()), "upsampling tap outside the cell neighbourhood"
    w3 = torch.zeros(n_out, 3).scatter_add_(1, rel.clamp(0, 2), weights)  # (n_out, 3)
    count = torch.bincount(cell, minlength=n_low)
    first = torch.cumsum(count, 0) - count
    smax = max(int(count.max()), 1)
    pos = torch.arange(n_out) - first[cell]  # index of each output within its cell
    table = torch.zeros(n_low, smax, 3).index_put_((cell, pos), w3)  # (n_low, smax, 3)
    return cell.to(device), first.to(device), count.to(device), table.to(device)


#: Above this share of uncertain cells the fast path upsamples densely instead (noisy masks, e.g. an
#: untrained model: evaluating the band per pixel would cost more than the official upsampling).
DENSE_FALLBACK = 0.5


def _varies(low: torch.Tensor) -> torch.Tensor:
    """(N, h, w) values -> (N, h, w) bool: some 3x3 neighbour of the cell holds another value."""
    out = torch.zeros(low.shape, dtype=torch.bool, device=low.device)
    for d, a, b in (
        (low[:, :, 1:] != low[:, :, :-1], (slice(None), slice(None), slice(1, None)), (slice(None), slice(None), slice(None, -1))),
        (low[:, 1:] != low[:, :-1], (slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        (low[:, 1:, 1:] != low[:, :-1, :-1], (slice(None), slice(1, None), slice(1, None)), (slice(None), slice(None, -1), slice(None, -1))),
        (low[:, 1:, :-1] != low[:, :-1, 1:], (slice(None), slice(1, None), slice(None, -1)), (slice(None), slice(None, -1), slice(1, None))),
    ):
        out[a] |= d
        out[b] |= d
    return out


def _candidates(values: torch.Tensor, ci: torch.Tensor, cj: torch.Tensor, top: int = 2) -> torch.Tensor | None:
    """Channels that may win at the pixels of cells (ci, cj): the ``top`` best channels of every cell
    in the 3x3 neighbourhood (C = 9 * top, duplicates allowed) -> (C, M); None (all channels) when
    there are no more than that."""
    n, h, w = values.shape
    if n <= 9 * top:
        return None
    best = values.topk(top, dim=0).indices  # (top, h, w)
    d = torch.tensor([-1, 0, 1], device=values.device)
    ii = (ci[None, :] + d.repeat_interleave(3)[:, None]).clamp(0, h - 1)  # (9, M)
    jj = (cj[None, :] + d.repeat(3)[:, None]).clamp(0, w - 1)
    return best[:, ii, jj].reshape(top * 9, ci.numel())  # (top*9, M)


def _argmax0(x: torch.Tensor) -> torch.Tensor:
    """``x.argmax(0)`` (first maximum on ties), through ``max``, which is several times faster on CPU."""
    return x.max(0).indices


def _pick(values: torch.Tensor, cand: torch.Tensor | None) -> torch.Tensor:
    """Per position the winning channel, the lowest id on ties (as ``argmax``).

    Args:
        values: (C, M, sy, sx) values of the candidates.
        cand: (C, M) candidate channel ids, or None when ``values`` holds every channel in order.
    """
    if cand is None:
        return _argmax0(values)
    cand = cand[:, :, None, None].expand(values.shape)
    best = values.max(0, keepdim=True).values
    big = torch.iinfo(cand.dtype).max
    return torch.where(values == best, cand, big).min(0).values


def _value_of(values: torch.Tensor, cand: torch.Tensor | None, winner: torch.Tensor) -> torch.Tensor:
    """The winner's value: values (C, M, sy, sx), winner (M, sy, sx) channel ids -> (M, sy, sx)."""
    if cand is None:
        return values.gather(0, winner[None])[0]
    hit = cand[:, :, None, None] == winner[None]
    return torch.where(hit, values, float("-inf")).max(0).values


def binary_masks_fast(logits: torch.Tensor, grid: UpsampleGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``upsample(logits) > 0`` masks without upsampling: (P, h4, w4) -> (P, H, W) bool.

    Each mask's sign is decided per cell; only cells whose 3x3 neighbourhood changes sign are evaluated
    pixel by pixel (exact: a pixel's bilinear value is a convex mix of its cell's neighbourhood).

    Returns:
        masks (P, H, W) bool and their boxes (P, 4) (``masks_to_boxes`` convention), the boxes
        computed from settled cells and band pixels instead of scanning the full masks.
    """
    p = logits.shape[0]
    h, w = grid.ori_size
    dev = logits.device
    if p == 0:
        return torch.zeros(0, h, w, dtype=torch.bool, device=dev), torch.zeros(0, 4)
    low = logits > 0  # (P, h4, w4)
    unsure = _varies(low)
    if unsure.float().mean() > DENSE_FALLBACK:
        from ..structures import masks_to_boxes

        masks = grid.upsample(logits) > 0
        return masks, masks_to_boxes(masks.cpu())
    out = grid.expand(low)  # (P, H, W)
    k, ci, cj = torch.nonzero(unsure, as_tuple=True)  # boundary cells of each mask
    v, valid, ys, xs = grid.cell_values(logits, k[None], ci, cj)  # (1, M, sy, sx)
    m, a, b = torch.nonzero(valid, as_tuple=True)
    inside = v[0, m, a, b] > 0
    out[k[m], ys[m, a], xs[m, b]] = inside
    # boxes: settled inside cells span their whole pixel block (extent per cell row / column at
    # stride 4), band pixels count one by one
    settled = low & ~unsure & (grid.cell_pixels() > 0)  # (P, h4, w4)
    y0, y1 = _extent(settled.any(2), grid.row_first, grid.row_count, h)  # (P,) each
    x0, x1 = _extent(settled.any(1), grid.col_first, grid.col_count, w)
    bk = k[m][inside]
    by, bx = ys[m, a][inside], xs[m, b][inside]

    def red(cur: torch.Tensor, v: torch.Tensor, how: str) -> torch.Tensor:
        return cur.scatter_reduce(0, bk, v, how)

    boxes = torch.stack([red(x0, bx, "amin"), red(y0, by, "amin"), red(x1, bx + 1, "amax"), red(y1, by + 1, "amax")], 1)
    boxes = boxes.float()
    boxes[(boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])] = 0  # empty masks
    return out, boxes.cpu()


def _extent(present: torch.Tensor, first: torch.Tensor, count: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel extent of the True cells along one axis: present (P, n) -> start (P,), end (P,) exclusive
    (size, 0 when nothing is present)."""
    n = present.shape[1]
    hit = present.any(1)
    lo = present.to(torch.int8).argmax(1)
    hi = n - 1 - present.flip(1).to(torch.int8).argmax(1)
    start = torch.where(hit, first[lo], torch.full_like(lo, size))
    end = torch.where(hit, first[hi] + count[hi], torch.zeros_like(hi))
    return start, end


def argmax_fast(scores: torch.Tensor, grid: UpsampleGrid) -> torch.Tensor:
    """Official ``upsample(scores).argmax(0)`` without upsampling: (K, h4, w4) -> (H, W) long.

    The winner is decided per cell; in cells whose 3x3 neighbourhood has several winners each pixel
    compares the official values of the candidates (``_candidates``: the two best of each neighbour).
    """
    ids = _argmax0(scores)  # (h4, w4)
    unsure = _varies(ids[None])[0]
    if unsure.float().mean() > DENSE_FALLBACK:
        return _argmax0(grid.upsample(scores))
    out = grid.expand(ids)
    ci, cj = torch.nonzero(unsure, as_tuple=True)
    if len(ci):
        cand = _candidates(scores, ci, cj)  # (C, M) or None: all
        v, valid, ys, xs = grid.cell_values(scores, cand, ci, cj)  # (C, M, sy, sx)
        win = _pick(v, cand)  # (M, sy, sx)
        m, a, b = torch.nonzero(valid, as_tuple=True)
        out[ys[m, a], xs[m, b]] = win[m, a, b]
    return out


def panoptic_fast(
    scores: torch.Tensor,
    labels: torch.Tensor,
    mask_logits: torch.Tensor,
    grid: UpsampleGrid,
    thing_flags: list[bool],
    iou_thr: float = 0.8,
    queries: torch.Tensor | None = None,
) -> PanopticRaw:
    """``panoptic_postprocess`` from stride-4 logits (N, h4, w4) of the kept queries (module docstring).

    Per cell: the winning query (argmax of score x sigmoid) and whether it is painted (its sigmoid
    >= 0.5). Pixels of cells where either changes within the 3x3 neighbourhood compare the official
    values of the candidate queries (all of them up to 18, else the two best of each neighbour); this
    includes void regions, whose winners count in the overlap rule's visible areas. Each query's own
    area (sigmoid >= 0.5) is counted exactly along its own boundary. Areas and boxes come from cell
    counts plus band pixels.

    When more than ``DENSE_FALLBACK`` of the cells are uncertain it runs the official dense path.

    Returns:
        ``PanopticRaw`` with ``seg_ids`` (H, W) at the original size (and ``areas``, ``boxes`` unless
        it fell back).
    """
    n = mask_logits.shape[0]
    h, w = grid.ori_size
    dev = mask_logits.device
    if n == 0:
        return PanopticRaw(torch.zeros(h, w, dtype=torch.int32, device=dev), [], [], [], [],
                           torch.zeros(0, dtype=torch.long), torch.zeros(0, 4))
    logits = mask_logits.float()
    prob = logits.sigmoid()  # (N, h4, w4)
    own = prob >= 0.5
    weighted = scores.view(-1, 1, 1) * prob
    ids_low = _argmax0(weighted)  # (h4, w4)
    painted_low = prob.gather(0, ids_low[None])[0] >= 0.5
    cells = grid.cell_pixels()  # (h4, w4)
    # 1. the visible band
    unsure = _varies(ids_low[None])[0] | _varies(painted_low[None])[0]  # (h4, w4)
    if unsure.float().mean() > DENSE_FALLBACK:
        return panoptic_postprocess(scores, labels, grid.upsample(mask_logits), thing_flags, iou_thr, True, queries)
    ci, cj = torch.nonzero(unsure, as_tuple=True)
    cand = _candidates(weighted, ci, cj)  # (C, M) or None: all
    v, valid, bys, bxs = grid.cell_values(logits, cand, ci, cj)  # (C, M, sy, sx)
    p_c = v.sigmoid()
    s_c = scores.view(-1, 1, 1, 1) if cand is None else scores[cand][:, :, None, None]
    ids_blk = _pick(s_c * p_c, cand)  # (M, sy, sx)
    painted_blk = _value_of(p_c, cand, ids_blk) >= 0.5
    m, a, b = torch.nonzero(valid, as_tuple=True)
    ys, xs = bys[m, a], bxs[m, b]
    ids_b, painted_b = ids_blk[m, a, b], painted_blk[m, a, b]  # (B,)
    settled = cells * ~unsure
    area = torch.bincount(ids_low.flatten(), weights=settled.flatten().double(), minlength=n).round().long()
    area += torch.bincount(ids_b, minlength=n)
    # 2. each query's own area, exact along its own boundary
    own_var = _varies(own)  # (N, h4, w4)
    orig = (own & ~own_var).flatten(1).long() @ cells.flatten()
    k, oi, oj = torch.nonzero(own_var, as_tuple=True)
    if len(k):
        ov, ovalid, _, _ = grid.cell_values(logits, k[None], oi, oj)  # (1, M', sy, sx)
        inside = ((ov[0].sigmoid() >= 0.5) & ovalid).flatten(1).sum(1)  # (M',)
        orig += torch.bincount(k, weights=inside.double(), minlength=n).round().long()
    lut, raw = _assign_segments(area, orig, scores, labels, thing_flags, iou_thr, queries)
    seg_low = (lut[ids_low] * painted_low).to(torch.int32)  # (h4, w4)
    seg_b = (lut[ids_b] * painted_b).to(torch.int32)  # (B,)
    seg = grid.expand(seg_low)
    seg[ys, xs] = seg_b
    raw.seg_ids = seg
    raw.areas, raw.boxes = _band_stats(seg_low, unsure, seg_b, ys, xs, grid, len(raw.labels))
    return raw


def _band_stats(seg_low: torch.Tensor, unsure: torch.Tensor, seg_b: torch.Tensor, ys: torch.Tensor,
                xs: torch.Tensor, grid: UpsampleGrid, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``segment_stats`` of the full map from its settled cells and band pixels: areas (S,), boxes (S, 4)."""
    h, w = grid.ori_size
    dev = seg_low.device
    cnt = grid.cell_pixels()
    ok = ~unsure & (cnt > 0) & (seg_low > 0)
    r, c = torch.nonzero(ok, as_tuple=True)
    cs = seg_low[r, c].long()  # (M,) settled cells holding a segment
    area = torch.bincount(cs, weights=cnt[r, c].double(), minlength=s + 1).round().long()
    area += torch.bincount(seg_b.long(), minlength=s + 1)
    inb = seg_b > 0
    ids = torch.cat([cs, seg_b[inb].long()])
    y0 = torch.cat([grid.row_first[r], ys[inb]])
    y1 = torch.cat([grid.row_first[r] + grid.row_count[r], ys[inb] + 1])
    x0 = torch.cat([grid.col_first[c], xs[inb]])
    x1 = torch.cat([grid.col_first[c] + grid.col_count[c], xs[inb] + 1])

    def red(v: torch.Tensor, init: int, how: str) -> torch.Tensor:
        return torch.full((s + 1,), init, dtype=torch.long, device=dev).scatter_reduce(0, ids, v, how)[1:]

    boxes = torch.stack([red(x0, w, "amin"), red(y0, h, "amin"), red(x1, 0, "amax"), red(y1, 0, "amax")], 1)
    boxes = boxes.to(torch.float32)
    area = area[1:]
    boxes[area == 0] = 0
    return area.cpu(), boxes.cpu()


def segment_stats(seg_ids: torch.Tensor, num_segments: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) segment ids 1..S (0 void) -> areas (S,) long and xyxy boxes (S, 4) float
    (``masks_to_boxes`` convention: x1/y1 exclusive; zeros for an empty segment)."""
    h, w = seg_ids.shape
    s = num_segments
    flat = seg_ids.long()
    area = torch.bincount(flat.flatten(), minlength=s + 1)[1 : s + 1]
    rows = torch.zeros(s + 1, h, dtype=torch.bool, device=seg_ids.device)
    cols = torch.zeros(s + 1, w, dtype=torch.bool, device=seg_ids.device)
    rows[flat, torch.arange(h, device=seg_ids.device)[:, None].expand(h, w)] = True
    cols[flat, torch.arange(w, device=seg_ids.device)[None, :].expand(h, w)] = True
    rows, cols = rows[1:].to(torch.int8), cols[1:].to(torch.int8)
    boxes = torch.stack(
        [cols.argmax(1), rows.argmax(1), w - cols.flip(1).argmax(1), h - rows.flip(1).argmax(1)], 1
    ).to(torch.float32)
    boxes[area == 0] = 0
    return area, boxes


def instance_topk(
    mask_cls: torch.Tensor, thing_flags: list[bool], max_per_image: int = 100
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask_cls (Q, K+1) -> (class probs, labels, query indices) of the top-k thing pairs."""
    q, k1 = mask_cls.shape
    k = k1 - 1
    probs = mask_cls.softmax(-1)[:, :-1]  # (Q, K)
    top = min(max_per_image, q * k)
    scores, idx = probs.flatten().topk(top, sorted=False)
    labels = idx % k
    query = idx // k
    things = torch.tensor(thing_flags, dtype=torch.bool, device=mask_cls.device)[labels]
    return scores[things], labels[things], query[things]


def instance_scores(mask_logits: torch.Tensor, class_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) logits, (N,) class probs -> (binary masks, score = class prob x mean sigmoid in mask)."""
    binary = (mask_logits > 0).float()
    mean = (mask_logits.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return binary.bool(), class_scores * mean


def semantic_scores(mask_cls: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """(Q, K+1), (Q, h, w) -> (K, h, w) = sum_q softmax[q, :K] * sigmoid(mask_q) (mmdet semantic_inference)."""
    return torch.einsum("qk,qhw->khw", mask_cls.softmax(-1)[:, :-1], mask_logits.sigmoid())


def largest_component(mask_logits: torch.Tensor, fill: float = -10.0) -> torch.Tensor:
    """Keep each mask's most confident connected region: (N, H, W) logits -> (N, H, W) logits.

    A mask (logit > 0) made of several 8-connected regions keeps the region with the largest
    sum of sigmoid; the logits of the other regions are clamped to at most ``fill``, so they leave
    the binary mask and its mean-sigmoid score. A model that merges look-alike instances into one
    query (one region per instance) then reports one of them. Rows with one region are unchanged,
    and the input is returned as it is when no row changes (else a changed copy).
    Labelling runs on each mask's bounding box on the CPU (scipy), so the cost follows mask sizes.
    """
    import numpy as np
    from scipy import ndimage

    if mask_logits.dim() != 3:
        raise ValueError(f"mask_logits must be (N, H, W), got {tuple(mask_logits.shape)}")
    positive = (mask_logits > 0).cpu().numpy()
    structure = ndimage.generate_binary_structure(2, 2)
    rows = positive.any(2)  # (N, H)
    cols = positive.any(1)  # (N, W)
    out = None
    for i in range(len(positive)):
        ys, xs = rows[i].nonzero()[0], cols[i].nonzero()[0]
        if not len(ys):
            continue
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
        labels, n = ndimage.label(positive[i, y0:y1, x0:x1], structure)
        if n < 2:
            continue
        prob = mask_logits[i, y0:y1, x0:x1].detach().float().sigmoid().cpu().numpy()
        mass = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n + 1)[1:]
        keep = int(mass.argmax()) + 1
        drop = torch.from_numpy((labels > 0) & (labels != keep)).to(mask_logits.device)
        if out is None:
            out = mask_logits.clone()
        region = out[i, y0:y1, x0:x1]
        out[i, y0:y1, x0:x1] = torch.where(drop, region.clamp(max=fill), region)
    return mask_logits if out is None else out
