"""Timing primitives and generated inputs shared by rapsam's jobs and the peers' (``rapsam benchmark``).

Jobs are timed in turns (:func:`time_interleaved`): each round runs every job once before the next
round starts, so a change of machine load hits every model alike; the figure of a job is the median
of its rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


# ---------------------------------------------------------------------------------------- timing
def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (mean of the two middle values for an even count).

    Raises:
        ValueError: ``values`` is empty.
    """
    if len(values) == 0:
        raise ValueError("median of no values: time at least one repeat (--repeats >= 1)")
    s = sorted(float(v) for v in values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


@dataclass
class Job:
    """One thing to time.

    Attributes:
        key: identifies the job in the result.
        fn: the call to time (no arguments).
        units: work units per call; times are reported per unit (frames of a video pass).
    """

    key: Hashable
    fn: Callable[[], Any]
    units: int = 1


def time_interleaved(
    jobs: Sequence[Job],
    *,
    warmup: int,
    repeats: int,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[Hashable, list[float]]:
    """Time every job ``repeats`` times after ``warmup`` untimed calls, in interleaved rounds.

    Args:
        jobs: the jobs; keys must be distinct.
        warmup: untimed calls of each job before timing starts (>= 0).
        repeats: timed calls of each job (>= 1).
        sync: called before starting and after stopping the clock (``torch.cuda.synchronize``).
        clock: seconds (``time.perf_counter``).
        on_round: called with (round, of) after each timed round (progress).

    Returns:
        key -> ``repeats`` milliseconds per unit, in round order.

    Raises:
        ValueError: negative ``warmup``, ``repeats`` < 1, duplicate keys or ``units`` < 1.
    """
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"job keys must be distinct, got {keys}")
    if any(j.units < 1 for j in jobs):
        raise ValueError("every job needs units >= 1")
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for j in jobs:
            j.fn()
            sync()
    out: dict[Hashable, list[float]] = {k: [] for k in keys}
    for r in range(repeats):
        for j in jobs:
            sync()
            t0 = clock()
            j.fn()
            sync()
            out[j.key].append(1e3 * (clock() - t0) / j.units)
        if on_round is not None:
            on_round(r + 1, repeats)
    return out


# ---------------------------------------------------------------------------------------- inputs
def make_image(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 RGB test image: smooth colour gradients plus noise."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 + 0.5 * np.sin(xx / 23.0 + yy / 31.0)], -1)
    img = 200.0 * base + rng.normal(0.0, 20.0, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)  # (H, W, 3)


def make_frames(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` video frames: ``image`` shifted by a few pixels per frame."""
    return [np.roll(image, shift=(3 * i, 5 * i), axis=(0, 1)) for i in range(n)]


def click_points(size: tuple[int, int], n: int) -> np.ndarray:
    """``n`` clicks (x, y) in original pixels spread over a grid inside the image, (n, 2) float32."""
    h, w = size
    side = int(np.ceil(np.sqrt(n)))
    g = (np.arange(side, dtype=np.float32) + 0.5) / side
    xs, ys = np.meshgrid(g * (w - 1), g * (h - 1))
    return np.stack([xs.ravel(), ys.ravel()], -1)[:n].astype(np.float32)  # (n, 2)
