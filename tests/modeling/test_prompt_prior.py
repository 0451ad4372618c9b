"""The experimental click-distance prior on prompt masks (``DecoderConfig.prompt_prior``; off = official)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rapsam.models import _build, get_config
from rapsam.modeling.prompt_prior import SIGMAS, PromptPrior
from rapsam.modeling.rapsam import Prompts


def tiny(prior: bool):
    cfg = get_config("rapsam_tiny")
    dec = dataclasses.replace(cfg.decoder, prompt_prior=prior, prompt_features=True)
    torch.manual_seed(0)
    return _build(dataclasses.replace(cfg, decoder=dec))


def prompts(b: int = 2) -> Prompts:
    pts = torch.tensor([[[[10.0, 20.0], [0.0, 0.0]], [[40.0, 44.0], [50.0, 8.0]]]]).expand(b, -1, -1, -1)
    lbl = torch.tensor([[[1, -1], [1, 0]]]).expand(b, -1, -1)
    box = torch.tensor([[[0.0, 0.0, 30.0, 30.0], [math.nan] * 4]]).expand(b, -1, -1)
    return Prompts(pts, lbl, box, torch.tensor([[64, 64]]).expand(b, 2))


@settings(max_examples=30, deadline=None)
@given(st.floats(0, 63), st.floats(0, 63), st.floats(0, 40), st.floats(0, 40), st.floats(1, 23), st.floats(1, 23),
       st.booleans())
def test_maps_are_gaussians_of_the_distance_to_clicks_and_box(x, y, bx, by, bw, bh, with_box):
    pp = PromptPrior(8, 1)
    pts = torch.tensor([[[[x, y], [5.0, 5.0]]]])
    lbl = torch.tensor([[[1, 0]]])  # the negative click is ignored
    box = torch.tensor([[[bx, by, bx + bw, by + bh]]]) if with_box else None
    phi = pp.maps(pts, lbl, box, 1, 1, 16, 16, "cpu")[0, 0].numpy()  # (K, 16, 16)
    for i in range(16):
        for j in range(16):
            cx, cy = (j + 0.5) * 4, (i + 0.5) * 4
            d2 = (cx - x) ** 2 + (cy - y) ** 2
            if with_box:
                dx = max(bx - cx, cx - (bx + bw), 0.0)
                dy = max(by - cy, cy - (by + bh), 0.0)
                d2 = min(d2, dx * dx + dy * dy)
            want = np.exp(-d2 / 16 / (2 * np.asarray(SIGMAS) ** 2))
            np.testing.assert_allclose(phi[:, i, j], want, rtol=1e-4, atol=1e-6)


def test_rows_without_clicks_or_box_get_no_prior():
    pp = PromptPrior(8, 1)
    phi = pp.maps(torch.zeros(1, 1, 1, 2), torch.tensor([[[0]]]), torch.full((1, 1, 4), math.nan), 1, 1, 8, 8, "cpu")
    assert float(phi.abs().max()) == 0.0


def test_zero_init_gives_the_model_without_prior_and_learns():
    """Freshly built, the prior adds exactly zero (training starts from the official head); gradients
    reach every output's weights (the stages' and the adapter's)."""
    m1, m0 = tiny(True), tiny(False)
    m0.load_state_dict({k: v for k, v in m1.state_dict().items() if not k.startswith("prompt_prior")})
    x = torch.randn(2, 3, 64, 64)
    o1, o0 = m1.train()(x, prompts()), m0.train()(x, prompts())
    for a, b in zip(o1.prompt_outputs + o1.object_outputs, o0.prompt_outputs + o0.object_outputs):
        assert torch.equal(a.mask_logits, b.mask_logits)
    sum(o.mask_logits.sum() for o in o1.prompt_outputs).backward()
    assert len(m1.prompt_prior.weights) == m1.config.decoder.num_stages + 1
    assert all(float(lin.weight.grad.abs().sum()) > 0 for lin in m1.prompt_prior.weights)


def test_prior_moves_masks_towards_the_click_and_spares_carried_kernels():
    m = tiny(True).eval()
    with torch.no_grad():
        for lin in m.prompt_prior.weights:
            lin.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0, 0.0]))  # a bump of width 4 cells
        feats = m.extract_features(torch.randn(1, 3, 64, 64))
        carried = torch.randn(1, 1, feats.shape[1])
        out = m.decode(feats, prompts(1), with_objects=False, prompt_queries=carried)
        ref = tiny(False).eval()
        ref.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("prompt_prior")})
        base = ref.decode(feats, prompts(1), with_objects=False, prompt_queries=carried)
    diff = out.prompt_outputs[-1].mask_logits[0] - base.prompt_outputs[-1].mask_logits[0]  # (3, 16, 16)
    assert float(diff[0, 5, 2]) > 40  # next to the first click (10, 20) -> cell (row 5, col 2)
    assert float(diff[1, 11, 10]) > 40  # at the second prompt's click (40, 44)
    assert float(diff[1, 0, 15]) < 1  # far from it
    assert torch.equal(out.prompt_outputs[0].mask_logits[0, 2], base.prompt_outputs[0].mask_logits[0, 2])


def test_bias_follows_the_query_dtype():
    """The maps are float32; a half-precision model's queries give a half-precision bias (no dtype error)."""
    pp = PromptPrior(8, 1).to(torch.bfloat16)
    phi = pp.maps(torch.tensor([[[[3.0, 5.0]]]]), torch.tensor([[[1]]]), None, 1, 1, 4, 4, "cpu")
    out = pp.bias(0, torch.randn(1, 1, 8, dtype=torch.bfloat16), phi)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 1, 4, 4)
