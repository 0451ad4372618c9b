"""Tests for rapsam.training.matcher (costs, optimality, tubes, validation)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from rapsam.training.matcher import (
    HungarianMatcher,
    batch_dice_cost,
    batch_sigmoid_bce_cost,
    stack_frames,
)
from rapsam.training.point_sampling import pixel_center_coords


def _random_case(seed: int, q: int, n: int, k: int = 3, h: int = 4, w: int = 5):
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(q, k + 1, generator=g)
    logits = 3 * torch.randn(q, h, w, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    masks = torch.rand(n, h, w, generator=g) > 0.5
    return cls, logits, labels, masks


def _direct_cost(cls, logits, labels, masks, wc=2.0, wm=5.0, wd=5.0) -> torch.Tensor:
    """Dense per-pixel cost written out with loops over (query, target)."""
    q, n = cls.shape[0], labels.shape[0]
    probs = cls.softmax(-1)
    out = torch.zeros(q, n)
    for i in range(q):
        p = logits[i].sigmoid().flatten()
        for j in range(n):
            t = masks[j].float().flatten()
            bce = F.binary_cross_entropy_with_logits(logits[i].flatten(), t)  # mean over pixels
            dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
            out[i, j] = wc * -probs[i, labels[j]] + wm * bce + wd * dice
    return out


def _upsample_nearest(masks: torch.Tensor, factor: int) -> torch.Tensor:
    return masks.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


# ----------------------------------------------------------------------------- cost terms
def test_cost_matrix_equals_direct_formula_on_all_pixels() -> None:
    cls, logits, labels, masks = _random_case(0, q=4, n=3)
    matcher = HungarianMatcher()
    cost = matcher.cost_matrix(cls, logits, labels, masks, point_coords=pixel_center_coords(4, 5))
    torch.testing.assert_close(cost, _direct_cost(cls, logits, labels, masks), rtol=1e-5, atol=1e-5)


def test_cost_weights_are_applied_per_term() -> None:
    cls, logits, labels, masks = _random_case(1, q=3, n=2)
    pts = pixel_center_coords(4, 5)
    for wc, wm, wd in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
        m = HungarianMatcher(cost_class=wc, cost_mask=wm, cost_dice=wd)
        torch.testing.assert_close(
            m.cost_matrix(cls, logits, labels, masks, point_coords=pts),
            _direct_cost(cls, logits, labels, masks, wc, wm, wd),
            rtol=1e-5,
            atol=1e-5,
        )


def test_targets_at_4x_resolution_give_the_same_cost_as_1x() -> None:
    # Pixel-centre points of the stride-4 logits fall inside one 4x4 block of the input-size masks.
    cls, logits, labels, masks = _random_case(2, q=3, n=3)
    pts = pixel_center_coords(4, 5)
    m = HungarianMatcher()
    torch.testing.assert_close(
        m.cost_matrix(cls, logits, labels, _upsample_nearest(masks, 4), point_coords=pts),
        m.cost_matrix(cls, logits, labels, masks, point_coords=pts),
    )


def test_batch_cost_helpers_shapes_and_values() -> None:
    logits = torch.tensor([[10.0, -10.0], [0.0, 0.0]])  # (Q=2, P=2)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # (N=3, P=2)
    bce = batch_sigmoid_bce_cost(logits, targets)
    dice = batch_dice_cost(logits, targets)
    assert bce.shape == dice.shape == (2, 3)
    assert float(bce[0, 0]) < 1e-4 and float(bce[0, 1]) > 9.9  # perfect vs inverted
    torch.testing.assert_close(bce[1], torch.full((3,), 0.6931), atol=1e-4, rtol=0)
    # naive dice, eps 1: perfect match -> 1 - (2+1)/(1+1+1) ~ 0; one-point pred, empty target
    # -> 1 - 1/(1+0+1) = 0.5
    assert float(dice[0, 0]) == pytest.approx(0.0, abs=1e-4)
    assert float(dice[0, 2]) == pytest.approx(0.5, abs=1e-4)
    assert float(dice[1, 0]) == pytest.approx(1 - 2.0 / 3.0, abs=1e-6)  # 2*.5+1 / (1+1+1)


# ----------------------------------------------------------------------------- optimality
def _brute_force_min(cost: torch.Tensor) -> float:
    q, n = cost.shape
    if n == 0:
        return 0.0
    if n <= q:  # target j -> query perm[j]
        return min(
            sum(float(cost[p[j], j]) for j in range(n)) for p in itertools.permutations(range(q), n)
        )
    return min(
        sum(float(cost[i, p[i]]) for i in range(q)) for p in itertools.permutations(range(n), q)
    )


@pytest.mark.parametrize(
    ("seed", "q", "n"),
    [
        (s, q, n)
        for s, (q, n) in enumerate(
            [
                (1, 1),
                (3, 1),
                (3, 3),
                (4, 2),
                (5, 3),
                (5, 5),
                (6, 4),
                (2, 3),
                (3, 5),
                (4, 0),
                (1, 2),
                (6, 6),
            ]
        )
    ],
)
def test_matching_is_optimal_against_brute_force(seed: int, q: int, n: int) -> None:
    cls, logits, labels, masks = _random_case(100 + seed, q=q, n=n)
    matcher = HungarianMatcher(num_points=32)
    pts = torch.rand(32, 2, generator=torch.Generator().manual_seed(seed))
    cost = matcher.cost_matrix(cls, logits, labels, masks, point_coords=pts)
    qi, ti = matcher.match_single(cls, logits, labels, masks, point_coords=pts)
    assert qi.dtype == ti.dtype == torch.long
    assert len(qi) == len(ti) == min(q, n)
    assert len(set(qi.tolist())) == len(qi) and len(set(ti.tolist())) == len(ti)
    assert qi.tolist() == sorted(qi.tolist())
    assert float(cost[qi, ti].sum()) == pytest.approx(_brute_force_min(cost), abs=1e-5)


def test_no_targets_means_every_query_is_background() -> None:
    cls, logits, labels, masks = _random_case(0, q=5, n=0)
    m = HungarianMatcher(num_points=16)
    assert m.cost_matrix(cls, logits, labels, masks).shape == (5, 0)
    qi, ti = m.match_single(cls, logits, labels, masks)
    assert qi.numel() == 0 and ti.numel() == 0


def test_recovers_a_planted_permutation() -> None:
    g = torch.Generator().manual_seed(0)
    n, q, k = 4, 7, 5
    masks = torch.rand(n, 16, 16, generator=g) > 0.5
    labels = torch.tensor([0, 3, 3, 1])
    perm = torch.tensor([5, 0, 3, 6])  # target j is predicted by query perm[j]
    logits = -10 * torch.ones(q, 16, 16)
    cls = torch.zeros(q, k + 1)
    cls[:, k] = 5.0  # unmatched queries say background
    for j in range(n):
        logits[perm[j]] = torch.where(masks[j], 10.0, -10.0)
        cls[perm[j]] = 0.0
        cls[perm[j], labels[j]] = 8.0
    qi, ti = HungarianMatcher(num_points=200).match_single(
        cls, logits, labels, masks, generator=torch.Generator().manual_seed(1)
    )
    assert dict(zip(ti.tolist(), qi.tolist())) == {j: int(perm[j]) for j in range(n)}


def test_class_cost_breaks_ties_between_identical_masks() -> None:
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:6, 2:6] = True
    logits = torch.where(masks[0], 5.0, -5.0).expand(2, 8, 8).clone()
    cls = torch.tensor([[0.0, 6.0, 0.0], [6.0, 0.0, 0.0]])  # query 0 says class 1, query 1 class 0
    labels = torch.tensor([0, 1])
    qi, ti = HungarianMatcher(num_points=64).match_single(cls, logits, labels, masks)
    assert dict(zip(qi.tolist(), ti.tolist())) == {0: 1, 1: 0}


# ----------------------------------------------------------------------------- video tubes
def test_stack_frames_puts_frames_on_top_of_each_other() -> None:
    x = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)  # (N, T, H, W)
    y = stack_frames(x)
    assert y.shape == (2, 6, 2)
    torch.testing.assert_close(y[1, 2:4], x[1, 1])


def test_tube_matching_uses_every_frame() -> None:
    # Two instances look the same in frame 0; only frame 1 (where target 1 is absent) tells them
    # apart. Query 0 predicts target 1's tube (empty in frame 1), query 1 predicts target 0's.
    t0 = torch.zeros(2, 8, 8, dtype=torch.bool)
    t0[:, 1:5, 1:5] = True  # present in both frames
    t1 = t0.clone()
    t1[1] = False  # absent from frame 1
    masks = torch.stack([t0, t1])  # (N=2, T=2, 8, 8)
    logits = torch.stack([torch.where(t1, 8.0, -8.0), torch.where(t0, 8.0, -8.0)])  # (Q, T, H, W)
    cls = torch.zeros(2, 3)
    labels = torch.tensor([0, 0])
    m = HungarianMatcher(num_points=256)
    qi, ti = m.match_single(cls, logits, labels, masks, generator=torch.Generator().manual_seed(0))
    assert dict(zip(qi.tolist(), ti.tolist())) == {0: 1, 1: 0}
    # same as matching the explicitly stacked images with the same points
    pts = torch.rand(64, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        m.cost_matrix(cls, logits, labels, masks, point_coords=pts),
        m.cost_matrix(cls, logits.flatten(1, 2), labels, masks.flatten(1, 2), point_coords=pts),
    )


# ----------------------------------------------------------------------------- batch & RNG
def test_batched_call_matches_each_image_and_is_reproducible() -> None:
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(2, 6, 4, generator=g)
    logits = torch.randn(2, 6, 5, 5, generator=g)
    labels = [torch.tensor([0, 2]), torch.tensor([1, 1, 0])]
    masks = [torch.rand(2, 20, 20, generator=g) > 0.5, torch.rand(3, 20, 20, generator=g) > 0.5]
    m = HungarianMatcher(num_points=8)
    a = m(cls, logits, labels, masks, generator=torch.Generator().manual_seed(5))
    b = m(cls, logits, labels, masks, generator=torch.Generator().manual_seed(5))
    assert [len(q) for q, _ in a] == [2, 3]
    for (qa, ta), (qb, tb) in zip(a, b):
        assert torch.equal(qa, qb) and torch.equal(ta, tb)


def test_random_points_change_with_the_seed() -> None:
    cls, logits, labels, masks = _random_case(3, q=4, n=3)
    m = HungarianMatcher(num_points=5)
    c1 = m.cost_matrix(cls, logits, labels, masks, generator=torch.Generator().manual_seed(1))
    c2 = m.cost_matrix(cls, logits, labels, masks, generator=torch.Generator().manual_seed(1))
    c3 = m.cost_matrix(cls, logits, labels, masks, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(c1, c2)
    assert not torch.allclose(c1, c3)


def test_matching_does_not_track_gradients() -> None:
    cls, logits, labels, masks = _random_case(4, q=3, n=2)
    cls.requires_grad_(True)
    cost = HungarianMatcher(num_points=8).cost_matrix(cls, logits, labels, masks)
    assert not cost.requires_grad


# ----------------------------------------------------------------------------- validation
def test_non_finite_logits_raise_runtime_error() -> None:
    cls, logits, labels, masks = _random_case(0, q=3, n=2)
    cls[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        HungarianMatcher(num_points=8).match_single(cls, logits, labels, masks)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c, l, y, m: (c, l, torch.tensor([0, 3]), m), r"labels must lie in \[0, 3\)"),
        (lambda c, l, y, m: (c, l, y.float(), m), "integer"),
        (lambda c, l, y, m: (c, l, y, m[:1]), "one mask per label"),
        (lambda c, l, y, m: (c, l, y, m[:, :, :4]), "field of view"),
        (lambda c, l, y, m: (c[:2], l, y, m), "queries"),
        (lambda c, l, y, m: (c, l[:, None, None], y, m), r"\(Q, H, W\) or \(Q, T, H, W\)"),
        (
            lambda c, l, y, m: (
                c,
                l.unsqueeze(1).expand(-1, 2, -1, -1),
                y,
                m[:, None].expand(-1, 3, -1, -1),
            ),
            "Clip length",
        ),
    ],
)
def test_bad_inputs_raise_value_error(mutate, match) -> None:
    args = mutate(*_random_case(0, q=3, n=2, h=4, w=5))
    with pytest.raises(ValueError, match=match):
        HungarianMatcher(num_points=8).match_single(*args)


def test_batch_size_mismatch_raises() -> None:
    cls, logits, labels, masks = _random_case(0, q=3, n=2)
    with pytest.raises(ValueError, match="one target set per image"):
        HungarianMatcher(num_points=8)(cls[None], logits[None], [labels, labels], [masks, masks])
    with pytest.raises(ValueError, match="num_points"):
        HungarianMatcher(num_points=0)
