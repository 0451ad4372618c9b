"""The neck's Fourier position channels (``NeckConfig.fourier_coords``, our extension; 0 = official)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.export.ops import ExportNeck
from rapsam.models import _build, get_config
from rapsam.modeling.neck import RapSamNeck, coord_features, fourier_coord_features, fourier_frequencies


def fourier_tiny(k: int = 8):
    cfg = get_config("rapsam_tiny")
    return _build(dataclasses.replace(cfg, neck=dataclasses.replace(cfg.neck, fourier_coords=k))).eval()


def test_frequencies_are_fixed_and_span_the_requested_radii():
    f = fourier_frequencies(16)
    assert f.shape == (16, 2) and torch.equal(f, fourier_frequencies(16))
    r = f.norm(dim=1)
    assert torch.allclose(r[[0, -1]], torch.tensor([0.05, 1.0]))
    assert bool((r[1:] > r[:-1]).all())
    with pytest.raises(ValueError, match="k must be"):
        fourier_frequencies(0)
    with pytest.raises(ValueError, match="fourier_coords"):
        RapSamNeck((8, 16, 32, 64), 16, 16, fourier_coords=-1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 11), st.integers(0, 9), st.integers(0, 11), st.integers(0, 9), st.integers(-4, 4), st.integers(-3, 3))
def test_dot_products_depend_on_position_differences_only(x0, y0, x1, y1, dx, dy):
    """sin/cos pairs: <PE(p), PE(q)> = sum_k cos(w_k . (p - q)), whatever p and q are."""
    freqs = fourier_frequencies(6)
    pe = fourier_coord_features(torch.zeros(1, 1, 16, 20), freqs)[0]  # (12, 16, 20)

    def dot(a, b):
        return float(pe[:, a[1], a[0]] @ pe[:, b[1], b[0]])

    p, q = (x0, y0), (x1, y1)
    expect = float(torch.cos(freqs.double() @ torch.tensor([x0 - x1, y0 - y1], dtype=torch.float64)).sum())
    assert dot(p, q) == pytest.approx(expect, abs=1e-4)
    shifted = (x0 + 4 + dx, y0 + 3 + dy), (x1 + 4 + dx, y1 + 3 + dy)
    assert dot(*shifted) == pytest.approx(dot(p, q), abs=1e-4)


def test_fourier_channels_can_localise_where_linear_coords_cannot():
    """Why the option exists: mask logits are query . F, and F's position part is a linear map of the
    position channels. A bump around one point (one object among identical ones) is far better fitted
    by the Fourier channels than by the official (x, y) ramps."""
    h = w = 32
    x = torch.zeros(1, 1, h, w)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    target = torch.exp(-((xs - 9) ** 2 + (ys - 20) ** 2) / (2 * 5.0**2)).flatten()  # ~ an object 10 cells wide

    def residual(maps):
        a = torch.cat([maps[0].flatten(1), torch.ones(1, h * w)]).T.double()  # (h*w, P + 1)
        sol = torch.linalg.lstsq(a, target.double()[:, None]).solution
        return float(((a @ sol).squeeze(1) - target).norm() / target.norm())

    linear = residual(coord_features(x))
    fourier = residual(torch.cat([coord_features(x), fourier_coord_features(x, fourier_frequencies(16))], 1))
    assert linear > 0.7 and fourier < 0.2, (linear, fourier)


def test_neck_paths_agree_with_fourier_channels():
    """Forward, the fast paths (split CoordConv, factored F) and the ONNX export neck give one F."""
    m = fourier_tiny(8)
    assert m.neck.loc_conv.in_channels == m.config.neck.agg_dim + 2 + 16
    assert torch.equal(m.state_dict()["neck.fourier_freqs"], fourier_frequencies(8))
    g = torch.Generator().manual_seed(0)
    feats = m.backbone(torch.randn(2, 3, 64, 96, generator=g))
    with torch.no_grad():
        ref = m.neck(feats)
        agg = m.neck.fpn(feats)
        for got in (m.neck._split_coord_conv(agg), m.neck.factored_features(agg).materialize(), ExportNeck(m.neck)(feats)):
            assert got.shape == ref.shape
            assert float((got - ref).abs().max() / ref.abs().max()) < 1e-5


def test_official_neck_has_no_fourier_state():
    m = _build(get_config("rapsam_r18"))
    assert m.neck.fourier_freqs is None and m.neck.loc_conv.in_channels == 130
    assert not any("fourier" in k for k in m.state_dict())
