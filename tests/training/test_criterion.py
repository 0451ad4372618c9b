"""Tests for rapsam.training.criterion (object / prompt / joint losses against hand formulas)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import rapsam.training.criterion as criterion_mod
from rapsam.training.criterion import (
    DecoderOutput,
    ObjectTargets,
    PromptTargets,
    RapSamCriterion,
    dice_loss,
    loss_keys,
    reduce_mean_count,
    sigmoid_bce_loss,
    total_loss,
    zero_terms,
)
from rapsam.training.matcher import HungarianMatcher
from rapsam.training.point_sampling import pixel_center_coords

H, W = 4, 6  # logits size in most tests


class FixedMatcher:
    """Stub matcher returning given (query_idx, target_idx) per image; counts its calls."""

    def __init__(self, indices: list[tuple[list[int], list[int]]]) -> None:
        self.indices = indices
        self.calls = 0

    def __call__(self, cls_logits, mask_logits, labels, masks, *, generator=None):
        self.calls += 1
        return [
            (torch.tensor(q, dtype=torch.long), torch.tensor(t, dtype=torch.long))
            for q, t in self.indices
        ]


@pytest.fixture
def dense_points(monkeypatch):
    """Replace importance sampling by every pixel centre of the logits (exact dense losses)."""

    def fake(mask_logits, num_points, oversample_ratio, importance_sample_ratio, *, generator=None):
        m, _, h, w = mask_logits.shape
        return pixel_center_coords(h, w, device=mask_logits.device).expand(m, -1, -1)

    monkeypatch.setattr(criterion_mod, "get_uncertain_point_coords_with_randomness", fake)


def _out(
    b: int, q: int, k: int, seed: int = 0, *, t: int | None = None, grad: bool = False
) -> DecoderOutput:
    g = torch.Generator().manual_seed(seed)
    shape = (b, q, H, W) if t is None else (b, q, t, H, W)
    o = DecoderOutput(
        cls_logits=torch.randn(b, q, k + 1, generator=g),
        mask_logits=3 * torch.randn(*shape, generator=g),
        iou=torch.rand(b, q, 1, generator=g),
    )
    if grad:
        for x in (o.cls_logits, o.mask_logits, o.iou):
            x.requires_grad_(True)
    return o


def _masks(n: int, seed: int, *, t: int | None = None, scale: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, H, W) if t is None else (n, t, H, W)
    m = torch.rand(*shape, generator=g) > 0.5
    return m.repeat_interleave(scale, -2).repeat_interleave(scale, -1)  # nearest upsampling


def _hand_bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logit.sigmoid()
    t = target.float()
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


def _hand_dice(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logit.sigmoid().flatten()
    t = target.float().flatten()
    return 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)


# ----------------------------------------------------------------------------- loss primitives
def test_sigmoid_bce_and_dice_per_mask() -> None:
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    targets = (torch.rand(3, 10, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    bce = sigmoid_bce_loss(logits, targets)
    dice = dice_loss(logits, targets)
    for i in range(3):
        assert float(bce[i]) == pytest.approx(float(_hand_bce(logits[i], targets[i])), rel=1e-5)
        assert float(dice[i]) == pytest.approx(float(_hand_dice(logits[i], targets[i])), rel=1e-5)


def test_loss_keys_follow_the_official_names() -> None:
    keys = loss_keys(4)
    assert len(keys) == 16
    assert keys[:4] == ["d0.loss_cls", "d0.loss_mask", "d0.loss_dice", "d0.loss_iou"]
    assert keys[8:12] == ["d2.loss_cls", "d2.loss_mask", "d2.loss_dice", "d2.loss_iou"]
    assert keys[12:] == ["loss_cls", "loss_mask", "loss_dice", "loss_iou"]


def test_total_loss_sums_loss_entries_only() -> None:
    total = total_loss(
        {"loss_a": torch.tensor(1.5), "d0.loss_b": torch.tensor([2.0]), "acc": torch.tensor(9.0)}
    )
    assert float(total) == pytest.approx(3.5)
    with pytest.raises(ValueError, match="no entry"):
        total_loss({"acc": torch.tensor(1.0)})


def test_zero_terms_is_zero_and_reaches_every_tensor() -> None:
    a = torch.randn(3, requires_grad=True)
    b = torch.nn.Parameter(torch.randn(2, 2))
    z = zero_terms(a, None, b)
    assert float(z.detach()) == 0.0
    z.backward()
    assert a.grad is not None and b.grad is not None
    assert float(a.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        zero_terms(None)


# ----------------------------------------------------------------------------- object mode
def _hand_object_losses(out: DecoderOutput, targets, indices, no_obj: float = 0.1):
    cls = out.cls_logits
    b, q, kp1 = cls.shape
    k = kp1 - 1
    labels = torch.full((b, q), k)
    for i, (qi, ti) in enumerate(indices):
        for qq, tt in zip(qi, ti):
            labels[i, qq] = targets[i].labels[tt]
    num, den = 0.0, 0.0
    for i in range(b):
        for j in range(q):
            y = int(labels[i, j])
            w = no_obj if y == k else 1.0
            num += w * -float(cls[i, j].log_softmax(-1)[y])
            den += w
    loss_cls = 2.0 * num / den
    bces, dices = [], []
    for i, (qi, ti) in enumerate(indices):
        for qq, tt in zip(qi, ti):
            logit = out.mask_logits[i, qq]
            target = targets[i].masks[tt]
            if logit.dim() == 3:  # clip: frames stacked along height
                logit, target = logit.flatten(0, 1), target.flatten(0, 1)
            bces.append(float(_hand_bce(logit, target)))
            dices.append(float(_hand_dice(logit, target)))
    m = max(len(bces), 1)
    return loss_cls, 5.0 * sum(bces) / m, 5.0 * sum(dices) / m


@pytest.mark.usefixtures("dense_points")
def test_object_losses_equal_hand_computation() -> None:
    out = _out(2, 5, 3, seed=0)
    targets = [
        ObjectTargets(torch.tensor([2, 0]), _masks(2, 1)),
        ObjectTargets(torch.tensor([1, 1, 2]), _masks(3, 2)),
    ]
    indices = [([3, 0], [1, 0]), ([1, 2, 4], [2, 0, 1])]
    crit = RapSamCriterion(matcher=FixedMatcher(indices))
    losses = crit(object_outputs=[out, out], object_targets=targets)
    exp_cls, exp_mask, exp_dice = _hand_object_losses(out, targets, indices)
    for prefix in ("d0.", ""):
        assert float(losses[prefix + "loss_cls"]) == pytest.approx(exp_cls, rel=1e-5)
        assert float(losses[prefix + "loss_mask"]) == pytest.approx(exp_mask, rel=1e-5)
        assert float(losses[prefix + "loss_dice"]) == pytest.approx(exp_dice, rel=1e-5)
        assert float(losses[prefix + "loss_iou"]) == 0.0


@pytest.mark.usefixtures("dense_points")
def test_object_targets_at_input_resolution_match_1x_targets() -> None:
    out = _out(1, 4, 3, seed=1)
    indices = [([2, 0], [0, 1])]
    labels = torch.tensor([0, 2])
    crit = RapSamCriterion(matcher=FixedMatcher(indices))
    l1 = crit(object_outputs=[out], object_targets=[ObjectTargets(labels, _masks(2, 3))])
    l4 = crit(object_outputs=[out], object_targets=[ObjectTargets(labels, _masks(2, 3, scale=4))])
    for key in l1:
        torch.testing.assert_close(l1[key], l4[key])


def test_class_loss_uses_no_object_weight_as_mmdet() -> None:
    out = _out(2, 4, 3, seed=2)
    targets = [
        ObjectTargets(torch.tensor([1]), _masks(1, 0)),
        ObjectTargets(torch.tensor([0, 2]), _masks(2, 1)),
    ]
    indices = [([2], [0]), ([0, 3], [1, 0])]
    labels = torch.tensor([[3, 3, 1, 3], [2, 3, 3, 0]]).flatten()
    w = torch.tensor([1.0, 1.0, 1.0, 0.1])
    # weighted mean CE == mmdet CE(class_weight) with avg_factor = class_weight[labels].sum()
    expected = 2.0 * F.cross_entropy(out.cls_logits.flatten(0, 1), labels, weight=w)
    losses = RapSamCriterion(matcher=FixedMatcher(indices), num_points=4)(
        object_outputs=[out], object_targets=targets
    )
    assert float(losses["loss_cls"]) == pytest.approx(float(expected), rel=1e-5)
    plain = RapSamCriterion(matcher=FixedMatcher(indices), num_points=4, no_object_weight=1.0)(
        object_outputs=[out], object_targets=targets
    )
    expected_plain = 2.0 * F.cross_entropy(out.cls_logits.flatten(0, 1), labels)
    assert float(plain["loss_cls"]) == pytest.approx(float(expected_plain), rel=1e-5)


def test_no_targets_gives_background_only_class_loss_and_zero_mask_losses() -> None:
    out = _out(2, 3, 4, seed=3, grad=True)
    empty = ObjectTargets(torch.zeros(0, dtype=torch.long), torch.zeros(0, H, W, dtype=torch.bool))
    losses = RapSamCriterion(num_points=8)(object_outputs=[out], object_targets=[empty, empty])
    bg = torch.full((6,), 4)
    assert losses["loss_cls"].item() == pytest.approx(
        (2.0 * F.cross_entropy(out.cls_logits.flatten(0, 1), bg)).item(), rel=1e-5
    )
    assert losses["loss_mask"].item() == 0.0 and losses["loss_dice"].item() == 0.0
    total_loss(losses).backward()
    assert out.mask_logits.grad is not None and out.iou.grad is not None  # connected zero terms


def test_every_output_is_matched_independently() -> None:
    matcher = FixedMatcher([([0], [0])])
    out = _out(1, 3, 2, seed=0)
    targets = [ObjectTargets(torch.tensor([1]), _masks(1, 0))]
    losses = RapSamCriterion(matcher=matcher, num_points=8)(
        object_outputs=[out] * 4, object_targets=targets
    )
    assert matcher.calls == 4
    assert list(losses) == loss_keys(4)


def test_hungarian_matching_inside_the_criterion_finds_the_right_queries() -> None:
    # Queries 2 and 0 predict targets 0 and 1 perfectly (at stride 4); the rest say background.
    small = torch.zeros(2, H, W, dtype=torch.bool)
    small[0, :2, :3] = True
    small[1, 2:, 3:] = True
    masks = small.repeat_interleave(4, -2).repeat_interleave(4, -1)
    logits = torch.full((1, 4, H, W), -12.0)
    logits[0, 2] = torch.where(small[0], 12.0, -12.0)
    logits[0, 0] = torch.where(small[1], 12.0, -12.0)
    cls = torch.zeros(1, 4, 4)
    cls[0, :, 3] = 9.0
    cls[0, 2] = torch.tensor([0.0, 9.0, 0.0, 0.0])
    cls[0, 0] = torch.tensor([0.0, 0.0, 9.0, 0.0])
    out = DecoderOutput(cls, logits, None)
    targets = [ObjectTargets(torch.tensor([1, 2]), masks)]
    seen = []

    class Spy(HungarianMatcher):
        def __call__(self, *args, **kwargs):
            seen.append(super().__call__(*args, **kwargs))
            return seen[-1]

    losses = RapSamCriterion(matcher=Spy(num_points=512), num_points=512)(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    q_idx, t_idx = seen[0][0]
    assert dict(zip(t_idx.tolist(), q_idx.tolist())) == {0: 2, 1: 0}
    assert float(losses["loss_cls"]) < 0.01
    swapped = RapSamCriterion(matcher=FixedMatcher([([0, 2], [0, 1])]), num_points=512)(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    assert float(swapped["loss_mask"]) > 3 * float(losses["loss_mask"])
    assert float(swapped["loss_cls"]) > 10.0


def test_object_gradients_reach_cls_and_mask_logits_and_iou_gets_a_zero() -> None:
    out = _out(1, 4, 3, seed=4, grad=True)
    targets = [ObjectTargets(torch.tensor([0, 1]), _masks(2, 0, scale=4))]
    losses = RapSamCriterion(num_points=32)(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    total_loss(losses).backward()
    assert float(out.cls_logits.grad.abs().sum()) > 0
    assert float(out.mask_logits.grad.abs().sum()) > 0
    assert out.iou.grad is not None and float(out.iou.grad.abs().sum()) == 0.0


# ----------------------------------------------------------------------------- video tubes
@pytest.mark.usefixtures("dense_points")
def test_video_tubes_equal_frames_stacked_along_height() -> None:
    out = _out(1, 3, 2, seed=5, t=2)
    masks = _masks(2, 6, t=2)
    masks[1, 1] = False  # instance 1 absent from frame 2
    targets = [ObjectTargets(torch.tensor([0, 1]), masks)]
    indices = [([1, 2], [0, 1])]
    crit = RapSamCriterion(matcher=FixedMatcher(indices))
    clip = crit(object_outputs=[out], object_targets=targets)
    stacked = DecoderOutput(out.cls_logits, out.mask_logits.flatten(2, 3), out.iou)
    image = crit(
        object_outputs=[stacked],
        object_targets=[ObjectTargets(torch.tensor([0, 1]), masks.flatten(1, 2))],
    )
    _, exp_mask, exp_dice = _hand_object_losses(out, targets, indices)
    for key in clip:
        torch.testing.assert_close(clip[key], image[key])
    assert float(clip["loss_mask"]) == pytest.approx(exp_mask, rel=1e-5)
    assert float(clip["loss_dice"]) == pytest.approx(exp_dice, rel=1e-5)


def test_video_empty_frame_is_supervised_as_empty() -> None:
    tube = torch.zeros(1, 2, 16, 16, dtype=torch.bool)
    tube[0, 0, 4:12, 4:12] = True  # present in frame 1, absent in frame 2
    good = torch.where(tube[0, :, ::4, ::4], 10.0, -10.0)  # (T, 4, 4) at stride 4
    bad = good.clone()
    bad[1] = good[0]  # predicts the object in frame 2 too
    crit = RapSamCriterion(matcher=FixedMatcher([([0], [0])]), num_points=256)
    targets = [ObjectTargets(torch.tensor([0]), tube)]

    def run(logits):
        out = DecoderOutput(torch.zeros(1, 1, 2), logits[None, None], None)
        return crit(
            object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
        )

    lg, lb = run(good), run(bad)
    assert float(lb["loss_mask"]) > float(lg["loss_mask"]) + 1.0
    assert float(lb["loss_dice"]) > float(lg["loss_dice"]) + 1.0


# ----------------------------------------------------------------------------- prompt mode
def _hand_prompt_losses(out: DecoderOutput, targets):
    bces, dices, ious = [], [], []
    for i, t in enumerate(targets):
        for j in range(t.masks.shape[0]):
            logit, target = out.mask_logits[i, j], t.masks[j]
            if logit.dim() == 3:
                logit, target = logit.flatten(0, 1), target.flatten(0, 1)
            d = float(_hand_dice(logit, target))
            bces.append(float(_hand_bce(logit, target)))
            dices.append(d)
            ious.append((float(out.iou.reshape(out.iou.shape[0], -1)[i, j]) - (1 - d)) ** 2)
    n = max(len(bces), 1)
    return 5.0 * sum(bces) / n, 5.0 * sum(dices) / n, 10.0 * sum(ious) / n


@pytest.mark.usefixtures("dense_points")
def test_prompt_losses_equal_hand_computation() -> None:
    out = _out(2, 3, 2, seed=7)
    targets = [PromptTargets(_masks(3, 8)), PromptTargets(_masks(3, 9))]
    losses = RapSamCriterion()(prompt_outputs=[out, out, out], prompt_targets=targets)
    exp_mask, exp_dice, exp_iou = _hand_prompt_losses(out, targets)
    for prefix in ("d0.", "d1.", ""):
        assert float(losses[prefix + "loss_cls"]) == 0.0
        assert float(losses[prefix + "loss_mask"]) == pytest.approx(exp_mask, rel=1e-5)
        assert float(losses[prefix + "loss_dice"]) == pytest.approx(exp_dice, rel=1e-5)
        assert float(losses[prefix + "loss_iou"]) == pytest.approx(exp_iou, rel=1e-5)


@pytest.mark.usefixtures("dense_points")
def test_prompt_iou_of_shape_bq_and_clip_prompts() -> None:
    out = _out(1, 2, 2, seed=10, t=2)
    out = DecoderOutput(None, out.mask_logits, out.iou[..., 0])  # (B, Q) iou, no class logits
    targets = [PromptTargets(_masks(2, 11, t=2, scale=4))]
    losses = RapSamCriterion()(prompt_outputs=[out], prompt_targets=targets)
    small = [PromptTargets(_masks(2, 11, t=2))]
    exp_mask, exp_dice, exp_iou = _hand_prompt_losses(out, small)
    assert float(losses["loss_mask"]) == pytest.approx(exp_mask, rel=1e-5)
    assert float(losses["loss_dice"]) == pytest.approx(exp_dice, rel=1e-5)
    assert float(losses["loss_iou"]) == pytest.approx(exp_iou, rel=1e-5)


@pytest.mark.usefixtures("dense_points")
def test_prompt_queries_beyond_the_targets_are_padding() -> None:
    out = _out(1, 4, 2, seed=12)
    targets = [PromptTargets(_masks(2, 13))]
    crit = RapSamCriterion()
    a = crit(prompt_outputs=[out], prompt_targets=targets)
    changed = DecoderOutput(out.cls_logits, out.mask_logits.clone(), out.iou.clone())
    changed.mask_logits[0, 2:] += 5.0
    changed.iou[0, 2:] += 5.0
    b = crit(prompt_outputs=[changed], prompt_targets=targets)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    exp_mask, _, _ = _hand_prompt_losses(out, targets)
    assert float(a["loss_mask"]) == pytest.approx(exp_mask, rel=1e-5)


def test_prompt_gradients_and_iou_target_detach() -> None:
    targets = [PromptTargets(_masks(3, 14, scale=4))]
    for detach in (True, False):
        out = _out(1, 3, 2, seed=15, grad=True)
        losses = RapSamCriterion(num_points=64, detach_iou_target=detach)(
            prompt_outputs=[out], prompt_targets=targets, generator=torch.Generator().manual_seed(0)
        )
        losses["loss_iou"].backward(retain_graph=True)
        assert float(out.iou.grad.abs().sum()) > 0
        iou_to_mask = (
            float(out.mask_logits.grad.abs().sum()) if out.mask_logits.grad is not None else 0.0
        )
        assert (iou_to_mask == 0.0) == detach
        out.mask_logits.grad = None
        total_loss(losses).backward()
        assert float(out.mask_logits.grad.abs().sum()) > 0
        assert out.cls_logits.grad is not None and float(out.cls_logits.grad.abs().sum()) == 0.0


def test_prompt_with_no_targets_returns_connected_zeros() -> None:
    out = _out(1, 3, 2, seed=16, grad=True)
    losses = RapSamCriterion(num_points=8)(
        prompt_outputs=[out], prompt_targets=[PromptTargets(torch.zeros(0, H, W))]
    )
    assert all(v.item() == 0.0 for v in losses.values())
    total_loss(losses).backward()
    assert out.mask_logits.grad is not None and out.iou.grad is not None


# ----------------------------------------------------------------------------- joint mode
@pytest.mark.usefixtures("dense_points")
def test_joint_mode_adds_group_losses_key_by_key() -> None:
    obj_out, prm_out = _out(1, 4, 3, seed=20), _out(1, 2, 3, seed=21)
    obj_t = [ObjectTargets(torch.tensor([1, 0]), _masks(2, 22))]
    prm_t = [PromptTargets(_masks(2, 23))]
    crit = RapSamCriterion(matcher=FixedMatcher([([3, 1], [0, 1])]))
    joint = crit(
        object_outputs=[obj_out] * 2,
        object_targets=obj_t,
        prompt_outputs=[prm_out] * 2,
        prompt_targets=prm_t,
    )
    only_obj = crit(object_outputs=[obj_out] * 2, object_targets=obj_t)
    only_prm = crit(prompt_outputs=[prm_out] * 2, prompt_targets=prm_t)
    assert list(joint) == loss_keys(2)
    for key in joint:
        torch.testing.assert_close(joint[key], only_obj[key] + only_prm[key])


def test_reproducible_with_seeded_generator() -> None:
    obj_out, prm_out = _out(2, 5, 3, seed=30), _out(2, 3, 3, seed=31)
    obj_t = [
        ObjectTargets(torch.tensor([1, 0]), _masks(2, 32, scale=4)),
        ObjectTargets(torch.tensor([2]), _masks(1, 33, scale=4)),
    ]
    prm_t = [PromptTargets(_masks(3, 34, scale=4)), PromptTargets(_masks(2, 35, scale=4))]
    crit = RapSamCriterion(num_points=16)

    def run(seed):
        return crit(
            object_outputs=[obj_out] * 4,
            object_targets=obj_t,
            prompt_outputs=[prm_out] * 4,
            prompt_targets=prm_t,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b, c = run(0), run(0), run(1)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ----------------------------------------------------------------------------- DDP normaliser
def test_reduce_mean_count_averages_over_ranks(monkeypatch) -> None:
    other_rank = torch.tensor([5.0, 0.0])

    def fake_all_reduce(t, op=None):
        t.add_(other_rank)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    torch.testing.assert_close(
        reduce_mean_count([3, 0], torch.device("cpu")), torch.tensor([4.0, 1.0])
    )


def test_single_process_group_gives_the_same_losses(tmp_path) -> None:
    out = _out(1, 3, 2, seed=40)
    targets = [ObjectTargets(torch.tensor([1, 0]), _masks(2, 41))]
    crit = RapSamCriterion(num_points=16)
    ref = crit(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        got = crit(
            object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
        )
    finally:
        dist.destroy_process_group()
    for key in ref:
        torch.testing.assert_close(ref[key], got[key])


def test_mask_losses_are_normalised_by_the_count() -> None:
    # Duplicating the batch doubles the summed losses and the count: loss unchanged.
    out = _out(1, 3, 2, seed=42)
    targets = [ObjectTargets(torch.tensor([1, 0]), _masks(2, 43))]
    crit = RapSamCriterion(matcher=FixedMatcher([([0, 2], [1, 0])]), num_points=16)
    one = crit(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    double_out = DecoderOutput(
        out.cls_logits.repeat(2, 1, 1), out.mask_logits.repeat(2, 1, 1, 1), out.iou.repeat(2, 1, 1)
    )
    crit2 = RapSamCriterion(
        matcher=FixedMatcher([([0, 2], [1, 0])] * 2), num_points=16, importance_sample_ratio=0.0
    )
    crit1 = RapSamCriterion(
        matcher=FixedMatcher([([0, 2], [1, 0])]), num_points=4000, importance_sample_ratio=0.0
    )
    two = crit2(
        object_outputs=[double_out],
        object_targets=targets * 2,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(one["loss_cls"], two["loss_cls"])
    # With many uniform points the per-mask BCE is the area mean, identical for the copies.
    many1 = crit1(
        object_outputs=[out], object_targets=targets, generator=torch.Generator().manual_seed(0)
    )
    crit2b = RapSamCriterion(
        matcher=FixedMatcher([([0, 2], [1, 0])] * 2), num_points=4000, importance_sample_ratio=0.0
    )
    many2 = crit2b(
        object_outputs=[double_out],
        object_targets=targets * 2,
        generator=torch.Generator().manual_seed(1),
    )
    assert float(many2["loss_mask"]) == pytest.approx(float(many1["loss_mask"]), rel=0.05)
    assert float(many2["loss_dice"]) == pytest.approx(float(many1["loss_dice"]), rel=0.05)
    assert float(one["loss_mask"]) > 0 and float(two["loss_mask"]) > 0


# ----------------------------------------------------------------------------- validation
def _obj_args():
    return {
        "object_outputs": [_out(1, 3, 2)],
        "object_targets": [ObjectTargets(torch.tensor([0]), _masks(1, 0))],
    }


def _prm_args():
    return {"prompt_outputs": [_out(1, 3, 2)], "prompt_targets": [PromptTargets(_masks(2, 0))]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "Nothing to supervise"),
        ({"object_outputs": [_out(1, 3, 2)]}, "given together"),
        ({"prompt_targets": [PromptTargets(_masks(1, 0))]}, "given together"),
        (
            {
                **_obj_args(),
                "prompt_outputs": [_out(1, 3, 2)] * 2,
                "prompt_targets": [PromptTargets(_masks(1, 0))],
            },
            "different numbers",
        ),
        (
            {
                "object_outputs": [_out(2, 3, 2)],
                "object_targets": [ObjectTargets(torch.tensor([0]), _masks(1, 0))],
            },
            "batch of 2",
        ),
        (
            {
                "object_outputs": [DecoderOutput(None, torch.zeros(1, 3, H, W), None)],
                "object_targets": _obj_args()["object_targets"],
            },
            "need cls_logits",
        ),
        (
            {
                "object_outputs": [_out(1, 3, 2)],
                "object_targets": [ObjectTargets(torch.tensor([2]), _masks(1, 0))],
            },
            r"\[0, 2\)",
        ),
        (
            {
                "object_outputs": [_out(1, 3, 2, t=2)],
                "object_targets": [ObjectTargets(torch.tensor([0]), _masks(1, 0, t=3))],
            },
            "Clip length",
        ),
        (
            {
                "object_outputs": [_out(1, 3, 2, t=2)],
                "object_targets": [ObjectTargets(torch.tensor([0]), _masks(1, 0))],
            },
            r"\(N, T, H, W\) targets",
        ),
        (
            {
                "object_outputs": [_out(1, 3, 2)],
                "object_targets": [ObjectTargets(torch.tensor([0]), torch.zeros(1, 8, 8))],
            },
            "field of view",
        ),
        (
            {"prompt_outputs": [_out(1, 3, 2)], "prompt_targets": [PromptTargets(_masks(4, 0))]},
            "at most one target per query",
        ),
        (
            {
                "prompt_outputs": [DecoderOutput(None, torch.zeros(1, 3, H, W), None)],
                "prompt_targets": _prm_args()["prompt_targets"],
            },
            "need iou",
        ),
        (
            {
                "prompt_outputs": [
                    DecoderOutput(None, torch.zeros(1, 3, H, W), torch.zeros(1, 3, 2))
                ],
                "prompt_targets": _prm_args()["prompt_targets"],
            },
            r"iou must be",
        ),
    ],
)
def test_bad_calls_raise_value_error(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        RapSamCriterion(num_points=4)(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"object_outputs": [torch.zeros(1)], "object_targets": []}, "DecoderOutput"),
        (
            {"object_outputs": [_out(1, 3, 2)], "object_targets": [PromptTargets(_masks(1, 0))]},
            "ObjectTargets",
        ),
        (
            {
                "prompt_outputs": [_out(1, 3, 2)],
                "prompt_targets": [ObjectTargets(torch.tensor([0]), _masks(1, 0))],
            },
            "PromptTargets",
        ),
    ],
)
def test_wrong_types_raise_type_error(kwargs, match) -> None:
    with pytest.raises(TypeError, match=match):
        RapSamCriterion(num_points=4)(**kwargs)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ObjectTargets(torch.tensor([0.0]), _masks(1, 0)), "integer"),
        (lambda: ObjectTargets(torch.tensor([[0]]), _masks(1, 0)), r"\(N,\)"),
        (lambda: ObjectTargets(torch.tensor([0, 1]), _masks(1, 0)), "N = len"),
        (lambda: PromptTargets(torch.zeros(4, 4)), r"\(N, H, W\)"),
        (lambda: RapSamCriterion(num_points=0), "num_points"),
        (lambda: RapSamCriterion(oversample_ratio=0.5), "oversample_ratio"),
        (lambda: RapSamCriterion(importance_sample_ratio=-0.1), "importance_sample_ratio"),
    ],
)
def test_bad_construction_raises_value_error(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_default_matcher_uses_official_costs_and_num_points() -> None:
    crit = RapSamCriterion(num_points=77)
    assert isinstance(crit.matcher, HungarianMatcher)
    m = crit.matcher
    assert (m.cost_class, m.cost_mask, m.cost_dice, m.num_points) == (2.0, 5.0, 5.0, 77)
    d = RapSamCriterion()
    assert (d.num_points, d.oversample_ratio, d.importance_sample_ratio) == (12544, 3.0, 0.75)
    assert (d.class_weight, d.mask_weight, d.dice_weight, d.iou_weight, d.no_object_weight) == (
        2.0,
        5.0,
        5.0,
        10.0,
        0.1,
    )


def test_dense_mode_is_deterministic_and_matches_dense_formula():
    """dense=True evaluates losses at every logit pixel: no randomness, equal to per-pixel formulas."""
    torch.manual_seed(0)
    out = DecoderOutput(torch.randn(1, 4, 3), torch.randn(1, 4, 6, 6), torch.randn(1, 4, 1))
    tgt = [ObjectTargets(torch.tensor([1]), torch.rand(1, 24, 24) > 0.5)]
    crit = RapSamCriterion(dense=True)
    a = crit(object_outputs=[out], object_targets=tgt)
    b = crit(object_outputs=[out], object_targets=tgt)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # prompt mode, dense: BCE equals the mean over logit pixels of BCE against the bilinearly
    # sampled target at the pixel centres
    logits = torch.randn(1, 1, 6, 6)
    target = torch.zeros(1, 24, 24)
    target[:, :12] = 1
    p_out = DecoderOutput(None, logits, torch.zeros(1, 1, 1))
    losses = crit(prompt_outputs=[p_out], prompt_targets=[PromptTargets(target)])
    t_small = torch.nn.functional.interpolate(target[None], size=(6, 6), mode="bilinear", align_corners=False)[0]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[0], t_small).item()
    assert losses["loss_mask"].item() == pytest.approx(5.0 * bce, rel=1e-5)
