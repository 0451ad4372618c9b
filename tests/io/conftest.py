"""Fixtures for rapsam.io tests: tiny synthetic videos encoded on the fly with PyAV."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest


def pattern_frame(i: int, h: int, w: int) -> np.ndarray:
    """A deterministic, codec-friendly (H, W, 3) uint8 frame that differs per index ``i``.

    Smooth content (flat blocks + gradient) so lossy codecs reproduce it closely.
    """
    yy, xx = np.mgrid[0:h, 0:w]
    f = np.empty((h, w, 3), np.uint8)
    f[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    f[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
    f[..., 2] = (i * 37) % 256
    return f


def encode_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    fps: float = 10,
    codec: str = "libx264",
    fmt: str | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` with PyAV directly (independent of rapsam's VideoWriter)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            s.options = {"preset": "ultrafast", "crf": "12"}
        if codec == "mpeg4":
            s.bit_rate = 2_000_000
        if rotation is not None:
            s.set_display_rotation(rotation)
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video(name, n=12, h=32, w=48, **encode_kwargs) -> Path`` of pattern frames."""

    def _make(name: str, n: int = 12, h: int = 32, w: int = 48, **kw) -> Path:
        return encode_video(tmp_path / name, [pattern_frame(i, h, w) for i in range(n)], **kw)

    return _make


@pytest.fixture
def media():
    """The helpers above, for tests that need the expected frames or custom encodes."""
    from types import SimpleNamespace

    return SimpleNamespace(pattern_frame=pattern_frame, encode_video=encode_video)
