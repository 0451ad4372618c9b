"""Tests for rapsam.training.point_sampling (point_sample semantics and PointRend sampling)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.training.point_sampling import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    pixel_center_coords,
    point_sample,
    uniform_point_coords,
)


def _bilinear_reference(img: torch.Tensor, x: float, y: float) -> float:
    """Hand bilinear read of a (H, W) map at normalised (x, y), align_corners=False, zero padding."""
    h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5  # continuous pixel coordinates of the point
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    total = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * float(img[yy, xx])
    return total


# ----------------------------------------------------------------------------- point_sample
def test_point_sample_reads_pixels_exactly_at_pixel_centres() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 2, 5, 7, generator=g)  # (N, C, H, W)
    coords = pixel_center_coords(5, 7).expand(3, -1, -1)  # (N, H*W, 2)
    out = point_sample(maps, coords)  # (N, C, H*W)
    torch.testing.assert_close(out, maps.flatten(2))


def test_pixel_center_coords_are_xy_row_major() -> None:
    c = pixel_center_coords(2, 4)
    assert c.shape == (8, 2)
    # second point is one step along x (width), same row
    torch.testing.assert_close(c[0], torch.tensor([0.125, 0.25]))
    torch.testing.assert_close(c[1], torch.tensor([0.375, 0.25]))
    torch.testing.assert_close(c[4], torch.tensor([0.125, 0.75]))


def test_point_sample_x_is_width_and_boundaries_average() -> None:
    img = torch.tensor([[0.0, 10.0, 20.0, 30.0]])  # (1, 4): varies along x only
    maps = img[None, None]  # (1, 1, 1, 4)
    # x = 0.5 is the border between pixel 1 and 2 -> their mean; x = 0.375 is pixel 1's centre
    out = point_sample(maps, torch.tensor([[[0.5, 0.5], [0.375, 0.5]]]))
    torch.testing.assert_close(out, torch.tensor([[[15.0, 10.0]]]))


def test_point_sample_outside_reads_zero() -> None:
    maps = torch.ones(1, 1, 4, 4)
    out = point_sample(maps, torch.tensor([[[1.5, 0.5], [-0.5, 0.5]]]))
    torch.testing.assert_close(out, torch.zeros(1, 1, 2))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    x=st.floats(0.0, 1.0),
    y=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_point_sample_matches_hand_bilinear(h: int, w: int, x: float, y: float, seed: int) -> None:
    img = torch.randn(h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = point_sample(img[None, None], torch.tensor([[[x, y]]], dtype=torch.float64))
    assert float(out) == pytest.approx(_bilinear_reference(img, x, y), abs=1e-9)


@pytest.mark.parametrize(
    ("maps", "coords", "match"),
    [
        (torch.zeros(2, 4, 4), torch.zeros(2, 3, 2), "unsqueeze"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, 3), r"\(N, P, 2\)"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(3, 5, 2), "one point set per map"),
    ],
)
def test_point_sample_rejects_bad_shapes(maps, coords, match) -> None:
    with pytest.raises(ValueError, match=match):
        point_sample(maps, coords)


# ----------------------------------------------------------------------------- uniform
def test_uniform_point_coords_range_shape_and_reproducibility() -> None:
    a = uniform_point_coords(3, 500, generator=torch.Generator().manual_seed(1))
    b = uniform_point_coords(3, 500, generator=torch.Generator().manual_seed(1))
    c = uniform_point_coords(3, 500, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 500, 2)
    assert bool((a >= 0).all() and (a < 1).all())
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_calculate_uncertainty_peaks_at_zero_logit() -> None:
    u = calculate_uncertainty(torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0]))
    torch.testing.assert_close(u, torch.tensor([-3.0, -0.5, 0.0, -0.5, -3.0]))


# ----------------------------------------------------------------------------- importance sampling
def _in_band(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return (x >= lo) & (x <= hi)


def test_importance_points_land_on_the_uncertain_band() -> None:
    # Confident logits (+10) everywhere except a vertical band of columns with logit 0.
    h = w = 40
    logits = torch.full((1, 1, h, w), 10.0)
    logits[..., 14:26] = 0.0  # band x in [0.35, 0.65): 30% of the area
    num_points = 4000
    coords = get_uncertain_point_coords_with_randomness(
        logits, num_points, 3.0, 0.75, generator=torch.Generator().manual_seed(0)
    )[0]  # (P, 2)
    assert coords.shape == (num_points, 2)
    n_imp = int(0.75 * num_points)
    imp, rnd = coords[:n_imp, 0], coords[n_imp:, 0]
    # 3P * 0.3 = 0.9P candidates have logit exactly 0 > 0.75P needed: every importance point is
    # strictly inside the band (inner half-pixel margins excluded by interpolation).
    assert bool(_in_band(imp, 14.5 / w, 25.5 / w).all())
    # The random quarter stays uniform: ~30% in the band, mean x ~ 0.5.
    frac_rnd = float(_in_band(rnd, 0.35, 0.65).float().mean())
    assert frac_rnd == pytest.approx(0.30, abs=0.06)
    assert float(rnd.mean()) == pytest.approx(0.5, abs=0.04)
    # Overall ~75% + 25% * 30% of all points are in the band.
    frac_all = float(_in_band(coords[:, 0], 0.35, 0.65).float().mean())
    assert frac_all == pytest.approx(0.75 + 0.25 * 0.30, abs=0.03)


def test_oversample_ratio_sets_the_uncertainty_quantile() -> None:
    # Logit ramp along x: uncertainty decreases with |x - 0.5|. Keeping the 0.75P most uncertain
    # of 3P uniform candidates keeps the 25% quantile of |x - 0.5|, i.e. |x - 0.5| < 0.125.
    # (Zero padding pulls the outermost half pixel towards logit 0, so a few border points also
    # look uncertain: compare a high quantile, not the max.)
    w = 200
    xs = (torch.arange(w) + 0.5) / w
    logits = (20.0 * (xs - 0.5)).expand(1, 1, w, w).contiguous()
    coords = get_uncertain_point_coords_with_randomness(
        logits, 4000, 3.0, 0.75, generator=torch.Generator().manual_seed(3)
    )[0]
    dist = (coords[:3000, 0] - 0.5).abs()
    assert float(dist.quantile(0.98)) == pytest.approx(0.125, abs=0.01)
    # With oversample_ratio 1.5 the kept quantile is 0.75 / 1.5 = 50% -> |x - 0.5| < 0.25.
    coords = get_uncertain_point_coords_with_randomness(
        logits, 4000, 1.5, 0.75, generator=torch.Generator().manual_seed(3)
    )[0]
    dist = (coords[:3000, 0] - 0.5).abs()
    assert float(dist.quantile(0.98)) == pytest.approx(0.25, abs=0.015)


def test_importance_ratio_zero_gives_uniform_points_and_one_gives_none() -> None:
    logits = torch.zeros(2, 1, 6, 6)
    logits[..., :3] = 10.0
    coords = get_uncertain_point_coords_with_randomness(
        logits, 3000, 3.0, 0.0, generator=torch.Generator().manual_seed(0)
    )
    assert coords.shape == (2, 3000, 2)
    assert float(coords[..., 0].mean()) == pytest.approx(0.5, abs=0.03)
    coords = get_uncertain_point_coords_with_randomness(
        logits, 300, 3.0, 1.0, generator=torch.Generator().manual_seed(0)
    )
    assert coords.shape == (2, 300, 2)
    assert bool((coords[..., 0] > 0.5 - 1 / 12).all())  # all in the uncertain (logit 0) half


def test_importance_sampling_is_per_mask() -> None:
    # Two masks with their uncertain band on opposite sides.
    logits = torch.full((2, 1, 20, 20), 10.0)
    logits[0, ..., :8] = 0.0
    logits[1, ..., 12:] = 0.0
    coords = get_uncertain_point_coords_with_randomness(
        logits, 400, 3.0, 0.75, generator=torch.Generator().manual_seed(0)
    )
    assert bool((coords[0, :300, 0] < 0.4).all())
    assert bool((coords[1, :300, 0] > 0.6).all())


def test_importance_sampling_reproducible_with_generator() -> None:
    logits = torch.randn(3, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    a = get_uncertain_point_coords_with_randomness(
        logits, 50, generator=torch.Generator().manual_seed(7)
    )
    b = get_uncertain_point_coords_with_randomness(
        logits, 50, generator=torch.Generator().manual_seed(7)
    )
    c = get_uncertain_point_coords_with_randomness(
        logits, 50, generator=torch.Generator().manual_seed(8)
    )
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((2, 5, 5), {}, r"\(M, 1, H, W\)"),
        ((2, 2, 5, 5), {}, r"\(M, 1, H, W\)"),
        ((2, 1, 5, 5), {"oversample_ratio": 0.5}, "oversample_ratio"),
        ((2, 1, 5, 5), {"importance_sample_ratio": 1.5}, "importance_sample_ratio"),
        ((2, 1, 5, 5), {"num_points": 0}, "num_points"),
    ],
)
def test_importance_sampling_rejects_bad_arguments(shape, kwargs, match) -> None:
    args = {"num_points": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        get_uncertain_point_coords_with_randomness(torch.zeros(shape), **args)
