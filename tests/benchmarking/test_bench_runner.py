"""The timing loop (warm-up honoured, interleaving, median) and the input parsing of ``rapsam benchmark``."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapsam.benchmarking.runner import (
    BenchmarkConfig,
    Job,
    click_points,
    make_frames,
    make_image,
    median,
    parse_names,
    parse_sizes,
    time_interleaved,
)


# ------------------------------------------------------------------------------------------ median
def test_median_odd_even_single():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.5]) == 7.5


def test_median_of_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one repeat"):
        median([])


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=40))
def test_median_matches_statistics(values):
    m = median(values)
    assert min(values) <= m <= max(values)
    assert m == pytest.approx(statistics.median(values), rel=1e-12, abs=1e-9)


# ------------------------------------------------------------------------------------------ timing
class FakeClock:
    """A clock that advances only when a job 'works'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting_job(key, clock, seconds, log, units=1):
    def fn():
        log.append(key)
        clock.now += seconds

    return Job(key, fn, units)


@pytest.mark.parametrize("warmup,repeats", [(0, 1), (1, 3), (3, 2)])
def test_warmup_and_repeats_are_honoured(warmup, repeats):
    clock, log = FakeClock(), []
    jobs = [counting_job("a", clock, 0.010, log), counting_job("b", clock, 0.002, log)]
    out = time_interleaved(jobs, warmup=warmup, repeats=repeats, clock=clock)
    assert log.count("a") == warmup + repeats
    assert log.count("b") == warmup + repeats
    assert len(out["a"]) == repeats and len(out["b"]) == repeats
    # only the timed calls are measured, in milliseconds
    assert out["a"] == pytest.approx([10.0] * repeats)
    assert out["b"] == pytest.approx([2.0] * repeats)


def test_jobs_are_interleaved_round_by_round():
    clock, log = FakeClock(), []
    jobs = [counting_job(k, clock, 0.001, log) for k in "abc"]
    rounds = []
    time_interleaved(jobs, warmup=1, repeats=2, clock=clock, on_round=lambda r, n: rounds.append((r, n)))
    assert log == list("abc") * 3  # warm-up round, then two timed rounds, never a a a b b b
    assert rounds == [(1, 2), (2, 2)]


def test_times_are_per_unit_and_sync_wraps_each_timed_call():
    clock, log, syncs = FakeClock(), [], []
    job = counting_job("video", clock, 0.030, log, units=3)  # one pass = 3 frames
    out = time_interleaved([job], warmup=0, repeats=2, clock=clock, sync=lambda: syncs.append(clock.now))
    assert out["video"] == pytest.approx([10.0, 10.0])  # 30 ms / 3 frames
    assert len(syncs) == 4  # before and after each timed call


def test_a_slow_round_changes_only_that_round():
    clock, log = FakeClock(), []
    costs = iter([0.001, 0.001, 0.050, 0.001])  # warm-up, round 1, round 2 (machine busy), round 3

    def fn():
        log.append(1)
        clock.now += next(costs)

    out = time_interleaved([Job("x", fn)], warmup=1, repeats=3, clock=clock)
    assert out["x"] == pytest.approx([1.0, 50.0, 1.0])
    assert median(out["x"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"warmup": -1, "repeats": 1}, "warmup"), ({"warmup": 0, "repeats": 0}, "repeats")],
)
def test_bad_counts_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_interleaved([Job("a", lambda: None)], **kwargs)


def test_duplicate_keys_and_bad_units_are_errors():
    with pytest.raises(ValueError, match="distinct"):
        time_interleaved([Job("a", lambda: None), Job("a", lambda: None)], warmup=0, repeats=1)
    with pytest.raises(ValueError, match="units"):
        time_interleaved([Job("a", lambda: None, units=0)], warmup=0, repeats=1)


# ------------------------------------------------------------------------------------------ parsing
def test_parse_sizes_accepts_the_documented_forms():
    assert parse_sizes("512x512,800x1333") == [(512, 512), (800, 1333)]
    assert parse_sizes(" 64X96 , 64x96,32x32") == [(64, 96), (32, 32)]  # case, spaces, duplicates


@pytest.mark.parametrize("text", ["", "512", "512x", "x512", "axb", "512x512,", "512*512", "16x64", "-64x64"])
def test_parse_sizes_rejects_bad_strings_with_the_fix(text):
    with pytest.raises(ValueError, match="--sizes"):
        parse_sizes(text)


@given(st.lists(st.tuples(st.integers(32, 4096), st.integers(32, 4096)), min_size=1, max_size=5))
def test_parse_sizes_round_trips(sizes):
    text = ",".join(f"{h}x{w}" for h, w in sizes)
    assert parse_sizes(text) == list(dict.fromkeys(sizes))


def test_parse_names():
    known = ["rapsam_r18", "rapsam_r50"]
    assert parse_names("all", known, "variant") == known
    assert parse_names("rapsam_r50, rapsam_r18,rapsam_r50", known, "variant") == ["rapsam_r50", "rapsam_r18"]
    assert parse_names("none", known, "peer", allow_none=True) == []
    with pytest.raises(ValueError, match="unknown variant.*rapsam_r99.*choose from rapsam_r18"):
        parse_names("rapsam_r99", known, "variant")
    with pytest.raises(ValueError, match="unknown variant"):
        parse_names("none", known, "variant")  # 'none' only where allowed


def test_config_validation_names_the_problem():
    BenchmarkConfig(sizes=[(64, 64)], variants=["rapsam_tiny"], peers=["sam"]).validate()
    with pytest.raises(ValueError, match="unknown rapsam variant.*choose from"):
        BenchmarkConfig(variants=["rapsam_big"]).validate()
    with pytest.raises(ValueError, match="unknown peer.*mask2former"):
        BenchmarkConfig(peers=["detr"]).validate()
    with pytest.raises(ValueError, match="repeats"):
        BenchmarkConfig(repeats=0).validate()
    with pytest.raises(ValueError, match=">= 32"):
        BenchmarkConfig(sizes=[(16, 16)]).validate()
    with pytest.raises(ValueError, match="device"):
        BenchmarkConfig(device="tpu").validate()


def test_cuda_request_without_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available.*--device cpu"):
        BenchmarkConfig(device="cuda").validate()


# ------------------------------------------------------------------------------------------ inputs
def test_inputs_are_deterministic_and_inside_the_image():
    a, b = make_image((48, 80), seed=3), make_image((48, 80), seed=3)
    assert a.shape == (48, 80, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, make_image((48, 80), seed=4))
    frames = make_frames(a, 3)
    assert len(frames) == 3 and np.array_equal(frames[0], a) and not np.array_equal(frames[1], a)
    pts = click_points((48, 80), 32)
    assert pts.shape == (32, 2)
    assert (pts[:, 0] >= 0).all() and (pts[:, 0] <= 79).all() and (pts[:, 1] >= 0).all() and (pts[:, 1] <= 47).all()
    assert len({tuple(p) for p in pts.tolist()}) == 32  # distinct clicks
