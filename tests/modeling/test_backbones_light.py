"""Tests for the lightweight backbones: STDC1/STDC2 and SeaFormer (T/S/B/L, Option A and full).

Parameter counts are the ones in design/backbones.md section 5 (computed from the official model code).
Checkpoint round trips write files in the official layouts (STDC ``features.*`` + ``x2..x32`` aliases +
classification head; mmseg ``stages.*``; SeaFormer timm dict with ``state_dict_ema``) and check that a
fresh model reproduces the source model's outputs exactly.
"""

from __future__ import annotations

import argparse
import logging
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rapsam.modeling.backbones.base import Backbone
from rapsam.modeling.backbones.seaformer import (
    SeaAttention,
    SeaFormer,
    seaformer_base,
    seaformer_large,
    seaformer_small,
    seaformer_tiny,
)
from rapsam.modeling.backbones.stdc import STDCNet, stdc1, stdc2

SEA_BUILDERS = {
    "tiny": seaformer_tiny,
    "small": seaformer_small,
    "base": seaformer_base,
    "large": seaformer_large,
}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomise(m: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN buffer random values (so checkpoint copies are distinguishable)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var") or (
                t.dim() == 1 and name.endswith(".weight")
            ):  # BN: > 0
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return m


def images(b: int = 2, h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def stdc() -> STDCNet:
    return stdc1()


@pytest.fixture(scope="module")
def sea_l() -> SeaFormer:
    """SeaFormer-L, Option A, at its initialisation (tests must not modify it)."""
    return seaformer_large()


@pytest.fixture(scope="module")
def sea_l_full() -> SeaFormer:
    """The full SeaFormer-L (smb5 + trans3); shared because it is the costliest to build.

    Tests may overwrite its weights (the checkpoint round trip randomises it), never its structure.
    """
    return seaformer_large(full=True)


# ------------------------------------------------------------------------------------------------
# Parameter counts and architecture facts
# ------------------------------------------------------------------------------------------------
def test_stdc_param_counts(stdc: STDCNet) -> None:
    assert n_params(stdc) == 5_318_304
    assert n_params(stdc2()) == 9_348_768


@pytest.mark.parametrize(
    ("variant", "full_count", "option_a_count"),
    [("tiny", 1_620_096, 483_264), ("small", 3_912_656, 1_265_360), ("base", 8_485_664, 2_560_672)],
)
def test_seaformer_param_counts(variant: str, full_count: int, option_a_count: int) -> None:
    full = SEA_BUILDERS[variant](full=True)
    assert n_params(full) == full_count
    assert n_params(SEA_BUILDERS[variant]()) == option_a_count


def test_seaformer_large_param_counts(sea_l: SeaFormer, sea_l_full: SeaFormer) -> None:
    assert n_params(sea_l_full) == 13_725_504  # official backbone without the classifier
    assert n_params(sea_l) == 6_259_520  # Option A: smb1-smb4 + trans1 + trans2


def test_stdc_is_official_layout(stdc: STDCNet) -> None:
    """Stride-2 modules carry the depthwise avd_layer; inner widths halve; stem is two ConvX."""
    assert stdc.channels == (64, 256, 512, 1024) and stdc.strides == (4, 8, 16, 32)
    assert len(stdc.features) == 8
    sd = stdc.state_dict()
    assert sd["features.2.avd_layer.0.weight"].shape == (128, 1, 3, 3)  # depthwise, N/2 channels
    assert "features.3.avd_layer.0.weight" not in sd  # stride-1 module has no downsampling conv
    widths = [sd[f"features.6.conv_list.{j}.conv.weight"].shape[0] for j in range(4)]
    assert widths == [512, 256, 128, 128]


def test_stdc_kaiming_init(stdc: STDCNet) -> None:
    w = stdc.features[6].conv_list[1].conv.weight  # 3x3, out 256: fan_out = 256 * 9
    assert abs(w.std().item() / math.sqrt(2.0 / (256 * 9)) - 1) < 0.05
    assert torch.all(stdc.features[6].conv_list[1].bn.weight == 1)
    assert torch.all(stdc.features[6].conv_list[1].bn.bias == 0)


def test_seaformer_large_channels(sea_l: SeaFormer, sea_l_full: SeaFormer) -> None:
    assert sea_l.channels == (64, 128, 192, 256) and sea_l.strides == (4, 8, 16, 32)
    assert not hasattr(sea_l, "smb5") and not hasattr(sea_l, "trans3")  # Option A: not built
    assert hasattr(sea_l, "trans1") and hasattr(sea_l, "trans2")  # after smb3 and smb4
    full = sea_l_full
    assert full.channels == (128, 192, 256, 320) and full.strides == (
        8,
        16,
        32,
        64,
    )  # official seg outputs


@pytest.mark.parametrize(
    ("variant", "channels"),
    [("tiny", (16, 32, 64, 128)), ("small", (24, 48, 96, 160)), ("base", (32, 64, 128, 192))],
)
def test_seaformer_small_variants_option_a(variant: str, channels: tuple[int, ...]) -> None:
    m = SEA_BUILDERS[variant]()
    assert m.channels == channels and m.strides == (4, 8, 16, 32)
    assert hasattr(m, "trans1") and not hasattr(m, "trans2")  # only the layer after smb4 is built


def test_seaformer_init(sea_l: SeaFormer) -> None:
    """Output projections of every Sea attention start with BN weight 0, other BNs with 1."""
    attns = [m for m in sea_l.modules() if isinstance(m, SeaAttention)]
    assert len(attns) == 6  # 3 blocks in trans1 + 3 in trans2
    for a in attns:
        for proj in (a.proj, a.proj_encode_row, a.proj_encode_column):
            assert torch.all(proj[1].bn.weight == 0)
        assert torch.all(a.to_q.bn.weight == 1)
    w = sea_l.smb2.layer1.conv[0].c.weight  # 1x1, out 256: n = 256
    assert abs(w.std().item() / math.sqrt(2.0 / 256) - 1) < 0.05


def test_seaformer_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="emb_dims"):
        seaformer_large(emb_dims=(192, 256, 333))
    with pytest.raises(ValueError, match="five MV2 stage"):
        SeaFormer(
            stage_cfgs=(),
            stem_channels=16,
            emb_dims=(),
            key_dims=(),
            depths=(),
            num_heads=1,
            mlp_ratios=(),
        )
    with pytest.raises(ValueError, match="drop_path_rate"):
        seaformer_tiny(drop_path_rate=1.5)


def test_stdc_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="three positive"):
        STDCNet(layers=(2, 2))


# ------------------------------------------------------------------------------------------------
# Forward contract
# ------------------------------------------------------------------------------------------------
BACKBONES = {
    "stdc1": lambda: stdc1(),
    "seaformer_large": lambda: seaformer_large(),
    "seaformer_tiny": lambda: seaformer_tiny(),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_forward_shapes_match_contract(name: str) -> None:
    m = BACKBONES[name]().eval()
    assert isinstance(m, Backbone)
    x = images()
    with torch.no_grad():
        feats = m(x)
    assert len(feats) == 4 == len(m.channels) == len(m.strides)
    for f, c, s in zip(feats, m.channels, m.strides):
        assert tuple(f.shape) == (2, c, 64 // s, 96 // s)
        assert torch.isfinite(f).all()


def test_seaformer_full_shapes(sea_l_full: SeaFormer) -> None:
    m = sea_l_full.eval()
    with torch.no_grad():
        feats = m(images(1, 128, 192))
    assert [tuple(f.shape) for f in feats] == [
        (1, 128, 16, 24),
        (1, 192, 8, 12),
        (1, 256, 4, 6),
        (1, 320, 2, 3),
    ]
    with pytest.raises(ValueError, match="multiples of 64"):
        m(images(1, 64, 96))  # fine for Option A, not for the stride-64 network


@settings(max_examples=4, deadline=None)
@given(h=st.integers(1, 3), w=st.integers(1, 3))
def test_stdc_output_sizes_property(stdc: STDCNet, h: int, w: int) -> None:
    m = stdc.eval()
    with torch.no_grad():
        feats = m(torch.zeros(1, 3, 32 * h, 32 * w))
    for f, s in zip(feats, m.strides):
        assert f.shape[-2:] == (32 * h // s, 32 * w // s)


@pytest.mark.parametrize("name", ["stdc1", "seaformer_large"])
def test_rejects_bad_input(name: str) -> None:
    m = BACKBONES[name]()
    with pytest.raises(ValueError, match="multiples of 32"):
        m(torch.zeros(1, 3, 64, 90))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        m(torch.zeros(3, 64, 64))


@pytest.mark.parametrize("name", ["stdc1", "seaformer_large"])
def test_gradients_reach_all_parameters(name: str) -> None:
    # Random BN scales: with the zero-init projections of SeaFormer, q/k/pos-emb grads would be 0 at init.
    m = randomise(BACKBONES[name](), seed=1).train()
    feats = m(images(2, 64, 64, seed=2))  # >= 2 tokens per axis at stride 32 (1 token: no q/k grad)
    sum((f * torch.randn_like(f)).sum() for f in feats).backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


@pytest.mark.parametrize("name", ["stdc1", "seaformer_large"])
def test_eval_is_deterministic(name: str) -> None:
    m = randomise(BACKBONES[name]()).eval()
    x = images(1, 32, 64)
    with torch.no_grad():
        a, b = m(x), m(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("name", ["stdc1", "seaformer_large"])
def test_norm_eval_keeps_bn_frozen(name: str) -> None:
    m = BACKBONES[name]()
    m.norm_eval = True
    m.train()
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    before = bns[0].running_mean.clone()
    with torch.no_grad():
        m(images(1, 32, 32))
    assert torch.equal(bns[0].running_mean, before)  # statistics did not move
    m.norm_eval = False
    m.train()
    assert all(bn.training for bn in bns)


def test_seaformer_drop_path_only_in_training() -> None:
    m = seaformer_tiny(drop_path_rate=0.5)
    m.train()
    x = images(4, 32, 32)
    torch.manual_seed(0)
    a = m(x)[-1]
    torch.manual_seed(1)
    b = m(x)[-1]
    assert not torch.allclose(a, b)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x)[-1], m(x)[-1])


def test_sea_attention_matches_reference() -> None:
    """The squeezed row/column attention equals a per-head loop computed directly from the definition."""
    torch.manual_seed(0)
    attn = randomise(SeaAttention(dim=32, key_dim=4, num_heads=2), seed=3).eval()
    x = torch.randn(2, 32, 6, 10)
    with torch.no_grad():
        out = attn(x)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        detail = attn.pwconv(torch.clamp(attn.dwconv(torch.cat([q, k, v], 1)), 0, 6))

        def axial(qs, ks, vs, pq, pk):  # (B, C, N) each
            n = qs.shape[-1]
            pq = torch.nn.functional.interpolate(pq, size=n, mode="linear", align_corners=False)
            pk = torch.nn.functional.interpolate(pk, size=n, mode="linear", align_corners=False)
            qs, ks = qs + pq, ks + pk
            heads = []
            for h in range(2):
                qh, kh, vh = (
                    qs[:, 4 * h : 4 * h + 4],
                    ks[:, 4 * h : 4 * h + 4],
                    vs[:, 8 * h : 8 * h + 8],
                )
                a = torch.softmax(
                    torch.einsum("bcn,bcm->bnm", qh, kh) / 2.0, dim=-1
                )  # d_k ** 0.5 = 2
                heads.append(torch.einsum("bnm,bcm->bcn", a, vh))
            return torch.cat(heads, 1)

        row = axial(
            q.mean(-1),
            k.mean(-1),
            v.mean(-1),
            attn.pos_emb_rowq.pos_embed,
            attn.pos_emb_rowk.pos_embed,
        )
        col = axial(
            q.mean(-2),
            k.mean(-2),
            v.mean(-2),
            attn.pos_emb_columnq.pos_embed,
            attn.pos_emb_columnk.pos_embed,
        )
        row = attn.proj_encode_row[1](torch.clamp(row, 0, 6)[..., None])  # (B, dh, H, 1)
        col = attn.proj_encode_column[1](torch.clamp(col, 0, 6)[:, :, None])  # (B, dh, 1, W)
        gate = attn.proj[1](torch.clamp(v + row + col, 0, 6))
        ref = torch.clamp(gate + 3, 0, 6) / 6 * detail
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Checkpoint loading: official layouts round trip
# ------------------------------------------------------------------------------------------------
def stdc_official_state_dict(m: STDCNet) -> dict[str, torch.Tensor]:
    """What the official STDCNet813 classification model's state_dict holds, built from ours."""
    sd = {k: v.clone() for k, v in m.state_dict().items()}  # features.* are the official names
    n = len(m.features)
    l0, l1, _ = m.layers
    slices = {
        "x2": range(1),
        "x4": range(1, 2),
        "x8": range(2, 2 + l0),
        "x16": range(2 + l0, 2 + l0 + l1),
        "x32": range(2 + l0 + l1, n),
    }
    for alias, idxs in slices.items():  # nn.Sequential(self.features[a:b]) -> alias.0.{j}.*
        for j, i in enumerate(idxs):
            for k, v in m.features[i].state_dict().items():
                sd[f"{alias}.0.{j}.{k}"] = v.clone()
    sd.update(
        {
            "conv_last.conv.weight": torch.randn(1024, 1024, 1, 1),
            "conv_last.bn.weight": torch.ones(1024),
            "conv_last.bn.bias": torch.zeros(1024),
            "conv_last.bn.running_mean": torch.zeros(1024),
            "conv_last.bn.running_var": torch.ones(1024),
            "conv_last.bn.num_batches_tracked": torch.tensor(0),
            "fc.weight": torch.randn(1024, 1024),
            "bn.weight": torch.ones(1024),
            "bn.bias": torch.zeros(1024),
            "bn.running_mean": torch.zeros(1024),
            "bn.running_var": torch.ones(1024),
            "bn.num_batches_tracked": torch.tensor(0),
            "linear.weight": torch.randn(1000, 1024),
        }
    )
    return sd


def stdc_mmseg_state_dict(m: STDCNet) -> dict[str, torch.Tensor]:
    """mmseg's stdc2mmseg.py output: features.i -> stages.{0,1,2.0,...}, conv_list -> layers, ..."""
    stage = ["0", "1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1"]
    out = {}
    for k, v in m.state_dict().items():
        _, idx, rest = k.split(".", 2)
        rest = rest.replace("conv_list.", "layers.").replace("avd_layer.0.", "avg_pool.conv.")
        rest = rest.replace("avd_layer.1.", "avg_pool.bn.")
        out[f"stages.{stage[int(idx)]}.{rest}"] = v.clone()
    out["final_conv.conv.weight"] = torch.randn(1024, 1024, 1, 1)
    return out


def assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None) -> None:
    x = images(1, 32, 64) if x is None else x
    a.eval()
    b.eval()
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            assert torch.equal(u, v)


def test_stdc_load_official_checkpoint(tmp_path, caplog) -> None:
    src = randomise(stdc1(), seed=5)
    path = tmp_path / "STDCNet813M_73.91.tar"
    torch.save(
        {"epoch": 300, "best_prec1": 73.91, "state_dict": stdc_official_state_dict(src)}, path
    )
    dst = stdc1()
    with caplog.at_level(logging.INFO, logger="rapsam.modeling.backbones.stdc"):
        dst.load_pretrained(path)
    assert_same_outputs(src, dst)
    msg = caplog.text
    for group in ("x2.*", "x8.*", "x32.*", "conv_last.*", "fc.*", "bn.*", "linear.*"):
        assert group in msg
    assert "features" not in msg.split("unused:")[1]  # every trunk tensor was used


def test_stdc_load_mmseg_and_nested_checkpoints(tmp_path) -> None:
    src = randomise(stdc1(), seed=6)
    flat = tmp_path / "stdc1_mmseg.pth"
    torch.save(stdc_mmseg_state_dict(src), flat)
    dst = stdc1()
    dst.load_pretrained(flat)
    assert_same_outputs(src, dst)

    nested = (
        tmp_path / "segmentor.pth"
    )  # mmseg segmentor: trunk under backbone.backbone., plus a head
    sd = {f"backbone.backbone.{k}": v for k, v in stdc_mmseg_state_dict(src).items()}
    sd["decode_head.conv_seg.weight"] = torch.randn(19, 256, 1, 1)
    torch.save({"meta": {"epoch": 1}, "state_dict": sd}, nested)
    dst2 = stdc1()
    dst2.load_pretrained(nested)
    assert_same_outputs(src, dst2)


def test_stdc_load_own_state_dict_with_module_prefix(tmp_path) -> None:
    src = randomise(stdc1(), seed=7)
    path = tmp_path / "own.pth"
    torch.save({"model": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = stdc1()
    dst.load_pretrained(str(path))
    assert_same_outputs(src, dst)


def test_stdc_load_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    src = randomise(stdc1(), seed=8)
    path = tmp_path / "stdc1.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    dst = stdc1()
    dst.load_pretrained(path)
    assert_same_outputs(src, dst)


def sea_official_checkpoint(full: SeaFormer, ema_seed: int | None = None) -> dict:
    """A timm training checkpoint as the official SeaFormer_*.pth: EMA + raw weights, args, classifier."""
    sd = {k: v.clone() for k, v in full.state_dict().items()}  # our names are the official names
    sd["linear.weight"] = torch.randn(1000, full.channels[-1])
    sd["linear.bias"] = torch.zeros(1000)
    raw = {k: v + 1.0 if v.is_floating_point() else v for k, v in sd.items()}  # must NOT be picked
    return {
        "epoch": 599,
        "arch": "SeaFormer_L",
        "args": argparse.Namespace(lr=0.001, model="SeaFormer_L", drop_path=0.1),
        "state_dict": raw,
        "state_dict_ema": {f"module.{k}": v for k, v in sd.items()},
        "version": 2,
    }


def test_seaformer_load_official_checkpoint_option_a(
    tmp_path, caplog, sea_l_full: SeaFormer
) -> None:
    src_full = randomise(sea_l_full, seed=9)
    path = tmp_path / "SeaFormer_L.pth"
    torch.save(sea_official_checkpoint(src_full), path)
    dst = seaformer_large()
    with caplog.at_level(logging.INFO, logger="rapsam.modeling.backbones.seaformer"):
        dst.load_pretrained(path)
    # Reference: the source network's smb1..smb4 path (trans1 after smb3, trans2 after smb4).
    x = images(1, 32, 64)
    with torch.no_grad():
        src_full.eval()
        ref, h = [], x
        for i in range(4):
            h = getattr(src_full, f"smb{i + 1}")(h)
            if i == 2:
                h = src_full.trans1(h)
            if i == 3:
                h = src_full.trans2(h)
            ref.append(h)
        got = dst.eval()(x)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    unused = caplog.text.split("unused:")[1]
    assert "smb5.*" in unused and "trans3.*" in unused and "linear.*" in unused
    assert "smb4" not in unused and "trans2" not in unused


def test_seaformer_load_full_network(tmp_path) -> None:
    src = randomise(seaformer_tiny(full=True), seed=10)
    path = tmp_path / "SeaFormer_T.pth.tar"
    torch.save(sea_official_checkpoint(src), path)
    dst = seaformer_tiny(full=True)
    dst.load_pretrained(path)
    assert_same_outputs(src, dst, images(1, 64, 64))


def test_seaformer_load_mmseg_segmentor_checkpoint(tmp_path) -> None:
    src = randomise(seaformer_tiny(), seed=11)
    path = tmp_path / "seaformer_tiny_ade20k.pth"
    sd = {f"backbone.{k}": v for k, v in src.state_dict().items()}
    sd["decode_head.conv_seg.weight"] = torch.randn(150, 64, 1, 1)
    torch.save({"meta": {}, "state_dict": sd}, path)
    dst = seaformer_tiny()
    dst.load_pretrained(path)
    assert_same_outputs(src, dst)


# ------------------------------------------------------------------------------------------------
# Checkpoint loading: clear errors
# ------------------------------------------------------------------------------------------------
def test_load_missing_file(tmp_path, stdc: STDCNet, sea_l: SeaFormer) -> None:
    with pytest.raises(ValueError, match="not found"):
        stdc.load_pretrained(tmp_path / "nope.tar")
    with pytest.raises(ValueError, match="not found"):
        sea_l.load_pretrained(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not found"):
        sea_l.load_pretrained(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("builder", [stdc1, seaformer_tiny])
def test_load_garbage_and_truncated_files(tmp_path, builder) -> None:
    model = builder()
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all\x00\x01" * 10)
    with pytest.raises(ValueError, match="cannot read .* as a PyTorch checkpoint"):
        model.load_pretrained(garbage)

    good = tmp_path / "good.pth"
    torch.save(model.state_dict(), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        model.load_pretrained(truncated)

    bad_st = tmp_path / "garbage.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        model.load_pretrained(bad_st)

    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(ValueError, match="holds no state dict"):
        model.load_pretrained(tensor_only)

    no_tensors = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, no_tensors)
    with pytest.raises(ValueError, match="holds no state dict"):
        model.load_pretrained(no_tensors)


_SIDE_EFFECTS: list[str] = []


def _record_side_effect(tag: str) -> str:
    _SIDE_EFFECTS.append(tag)
    return tag


class CodeOnLoad:
    """Unpickling this would call ``_record_side_effect``: safe loading must not run it."""

    def __reduce__(self):
        return (_record_side_effect, ("executed",))


def test_load_never_executes_pickled_code(tmp_path) -> None:
    src = randomise(stdc1(), seed=12)
    path = tmp_path / "with_objects.tar"
    torch.save({"state_dict": stdc_official_state_dict(src), "hook": CodeOnLoad()}, path)
    _SIDE_EFFECTS.clear()
    dst = stdc1()
    dst.load_pretrained(path)  # the weights load; the foreign object is neutralised
    assert _SIDE_EFFECTS == []
    assert_same_outputs(src, dst)


def test_stdc_wrong_checkpoints(tmp_path, stdc: STDCNet) -> None:
    """A failed load raises before touching the model, so the shared fixture stays intact."""
    sea = tmp_path / "SeaFormer_T.pth"
    torch.save({"state_dict": seaformer_tiny().state_dict()}, sea)
    with pytest.raises(
        ValueError, match=r"does not match STDC1: .*missing.*features\.0\.conv\.weight.*STDCNet813M"
    ):
        stdc.load_pretrained(sea)

    s2 = tmp_path / "STDCNet1446_76.47.tar"
    torch.save({"state_dict": stdc2().state_dict()}, s2)
    with pytest.raises(ValueError, match="does not match STDC1"):
        stdc.load_pretrained(s2)

    partial = tmp_path / "partial.pth"
    sd = stdc.state_dict()
    del sd["features.7.conv_list.3.bn.running_var"]
    torch.save(sd, partial)
    with pytest.raises(
        ValueError, match=r"1 of \d+ trunk tensors are missing.*features\.7\.conv_list\.3\.bn"
    ):
        stdc.load_pretrained(partial)


def test_seaformer_wrong_checkpoints(tmp_path, sea_l: SeaFormer) -> None:
    tiny = tmp_path / "SeaFormer_T.pth"
    torch.save({"state_dict_ema": seaformer_tiny(full=True).state_dict()}, tiny)
    with pytest.raises(ValueError, match="does not match this SeaFormer.*(missing|wrong shape)"):
        sea_l.load_pretrained(tiny)

    stdc_file = tmp_path / "stdc.pth"
    torch.save({"state_dict": {"features.0.conv.weight": torch.zeros(32, 3, 3, 3)}}, stdc_file)
    with pytest.raises(
        ValueError, match=r"missing.*smb1\.stem_block\.0\.c\.weight.*SeaFormer_T/S/B/L"
    ):
        sea_l.load_pretrained(stdc_file)

    # Option-A checkpoint into the full network: smb5 / trans3 are genuinely missing there.
    option_a = tmp_path / "option_a.pth"
    torch.save(seaformer_tiny().state_dict(), option_a)
    with pytest.raises(ValueError, match="missing.*smb5"):
        seaformer_tiny(full=True).load_pretrained(option_a)
