"""Tests for rapsam.io.video: lazy frame sources and the atomic video writer."""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rapsam.io import (
    FrameSource,
    VideoReadError,
    VideoWriter,
    open_frames,
    write_frames_folder,
    write_png,
)
from rapsam.io import video as video_mod


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _read_all(source, **kw) -> tuple[FrameSource, list[tuple[int, np.ndarray]]]:
    src = open_frames(source, **kw)
    with src:
        items = list(src)
    return src, items


# --------------------------------------------------------------------------------------------------
# VideoWriter -> open_frames round trips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "codec", "declares_count"),
    [
        (".mp4", "libx264", True),
        (".mkv", "libx264", False),
        (".avi", "mpeg4", True),
        (".webm", "libvpx-vp9", False),
        (".mov", "libx264", True),
    ],
)
def test_round_trip(tmp_path: Path, media, suffix: str, codec: str, declares_count: bool) -> None:
    frames = [media.pattern_frame(i, 32, 48) for i in range(15)]
    path = tmp_path / f"v{suffix}"
    with VideoWriter(path, fps=12.5) as w:
        for f in frames:
            w.write(f)
    assert w.codec == codec and w.num_frames == 15 and w.size == (32, 48)
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temp file left behind
    src, items = _read_all(path)
    assert src.fps == pytest.approx(12.5)
    assert src.size == (32, 48) and src.kind == "video"
    assert src.num_frames == (15 if declares_count else None)
    assert [i for i, _ in items] == list(range(15))
    for (_, got), want in zip(items, frames):
        assert got.shape == (32, 48, 3) and got.dtype == np.uint8
        assert _mae(got, want) < 4.0
    # Frames are distinguishable (the blue channel encodes the index), so order is right.
    blues = [int(np.median(g[..., 2])) for _, g in items]
    assert all(abs(b - (i * 37) % 256) <= 6 for i, b in enumerate(blues))


def test_writer_ntsc_fps(tmp_path: Path, media) -> None:
    with VideoWriter(tmp_path / "n.mp4", fps=29.97) as w:
        for i in range(3):
            w.write(media.pattern_frame(i, 16, 16))
    assert open_frames(tmp_path / "n.mp4").fps == pytest.approx(29.97, abs=1e-3)


def test_writer_odd_size_is_padded(tmp_path: Path, media) -> None:
    frames = [media.pattern_frame(i, 33, 47) for i in range(4)]
    with VideoWriter(tmp_path / "odd.mp4", fps=10) as w:
        for f in frames:
            w.write(f)
    assert w.size == (33, 47) and w.encoded_size == (34, 48)
    src, items = _read_all(tmp_path / "odd.mp4")
    assert src.size == (34, 48)
    for (_, got), want in zip(items, frames):
        assert _mae(got[:33, :47], want) < 4.0
        assert _mae(got[33, :47], want[32]) < 6.0  # padding replicates the edge row
        assert _mae(got[:33, 47], want[:, 46]) < 6.0


def test_writer_accepts_any_image_type(tmp_path: Path, media) -> None:
    f = media.pattern_frame(0, 16, 16)
    with VideoWriter(tmp_path / "t.mkv", fps=5) as w:
        w.write(torch.from_numpy(f).permute(2, 0, 1).float() / 255)  # (3, H, W) float
        w.write(f[..., 0])  # greyscale
    assert w.num_frames == 2


def test_writer_atomic_on_exception(tmp_path: Path, media) -> None:
    final = tmp_path / "out.mp4"
    final.write_bytes(b"previous version")
    with pytest.raises(RuntimeError, match="crash"), VideoWriter(final, fps=10) as w:
        for i in range(5):
            w.write(media.pattern_frame(i, 16, 16))
        # While writing, the final name still holds the old file; data goes to a hidden temp.
        assert final.read_bytes() == b"previous version"
        raise RuntimeError("crash")
    assert final.read_bytes() == b"previous version"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_writer_no_frames(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="no frames were written"),
        VideoWriter(tmp_path / "e.mp4", fps=10),
    ):
        pass
    assert os.listdir(tmp_path) == []


def test_writer_size_change_and_closed(tmp_path: Path, media) -> None:
    w = VideoWriter(tmp_path / "s.mp4", fps=10)
    w.write(media.pattern_frame(0, 16, 16))
    with pytest.raises(ValueError, match=r"frame 1 has size \(H, W\)=\(16, 18\).*\(16, 16\)"):
        w.write(media.pattern_frame(1, 16, 18))
    assert w.close() == tmp_path / "s.mp4"
    with pytest.raises(RuntimeError, match="closed"):
        w.write(media.pattern_frame(2, 16, 16))
    assert len(list(open_frames(tmp_path / "s.mp4"))) == 1


def test_writer_codec_fallback(tmp_path: Path, media, monkeypatch: pytest.MonkeyPatch) -> None:
    real = video_mod._encoder_available
    monkeypatch.setattr(video_mod, "_encoder_available", lambda n: n != "libx264" and real(n))
    with pytest.warns(UserWarning, match="'libx264' is not available.*'mpeg4'"):
        w = VideoWriter(tmp_path / "f.mp4", fps=10)
    assert w.codec == "mpeg4"
    with w:
        for i in range(3):
            w.write(media.pattern_frame(i, 16, 16))
    assert len(list(open_frames(tmp_path / "f.mp4"))) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"codec": "no_such_codec"}, "not available.*Available video encoders"),
        ({"codec": "aac"}, "not available"),  # an audio encoder is not a video encoder
        ({"fps": 0}, "positive"),
        ({"fps": float("nan")}, "positive finite"),
        ({"fps": "fast"}, "positive number"),
    ],
)
def test_writer_bad_arguments(tmp_path: Path, kwargs, match: str) -> None:
    kwargs = {"fps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        VideoWriter(tmp_path / "x.mp4", **kwargs)
    assert os.listdir(tmp_path) == []


def test_writer_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist; create it"):
        VideoWriter(tmp_path / "missing" / "x.mp4", fps=10)
    with pytest.raises(ValueError, match="no suffix"):
        VideoWriter(tmp_path / "noext", fps=10)
    with pytest.raises(ValueError, match="is a directory"):
        VideoWriter(tmp_path, fps=10)
    with pytest.raises(ValueError, match="known suffix"):
        VideoWriter(tmp_path / "x.notavideoformat", fps=10)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# Laziness / memory
# --------------------------------------------------------------------------------------------------


def test_video_decoding_is_lazy(tmp_path: Path, media) -> None:
    """300 frames of 256x256 (59 MB decoded): memory while iterating stays a few frames' worth."""
    n, h, w = 300, 256, 256
    frames = [media.pattern_frame(i, h, w) for i in range(4)]
    media.encode_video(tmp_path / "long.mp4", [frames[i % 4] for i in range(n)], fps=30)
    frame_bytes = h * w * 3
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    gc.collect()
    tracemalloc.start()
    try:
        with open_frames(tmp_path / "long.mp4") as src:
            rss0 = proc.memory_info().rss
            peak_rss = rss0
            count = 0
            for i, f in src:
                assert i == count
                count += 1
                if count % 25 == 0:
                    peak_rss = max(peak_rss, proc.memory_info().rss)
            _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n and src.num_frames == n
    # numpy allocations are traced: at most a handful of frames alive at once.
    assert traced_peak < 8 * frame_bytes, traced_peak / frame_bytes
    # Whole-process check (includes FFmpeg's buffers): far below the 59 MB of all frames.
    assert peak_rss - rss0 < 0.35 * n * frame_bytes, (peak_rss - rss0) / 2**20


def test_iterable_is_consumed_one_by_one(media) -> None:
    pulled: list[int] = []

    def gen():
        for i in range(5):
            pulled.append(i)
            yield media.pattern_frame(i, 8, 8)

    src = open_frames(gen())
    assert pulled == [0]  # only the first frame, for `size`
    assert src.num_frames is None and src.size == (8, 8) and src.kind == "iterable"
    assert next(src)[0] == 0 and pulled == [0]
    assert next(src)[0] == 1 and pulled == [0, 1]
    src.close()
    with pytest.raises(StopIteration):
        next(src)


def test_folder_reads_files_lazily(tmp_path: Path, media, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        write_png(tmp_path / f"f{i}.png", media.pattern_frame(i, 8, 8))
    reads: list[str] = []
    real = video_mod.read_image
    monkeypatch.setattr(video_mod, "read_image", lambda p: reads.append(Path(p).name) or real(p))
    src = open_frames(tmp_path)
    assert reads == ["f0.png"]
    next(src), next(src)
    assert reads == ["f0.png", "f1.png"]


# --------------------------------------------------------------------------------------------------
# Other sources
# --------------------------------------------------------------------------------------------------


def test_folder_natural_order(tmp_path: Path, media) -> None:
    order = [1, 2, 10, 11, 100]
    for k in reversed(order):
        write_png(tmp_path / f"frame{k}.png", media.pattern_frame(k, 8, 10))
    (tmp_path / "readme.txt").write_text("not a frame")
    src, items = _read_all(tmp_path, fps=24)
    assert src.num_frames == 5 and src.fps == 24 and src.kind == "folder"
    for (i, f), k in zip(items, order):
        np.testing.assert_array_equal(f, media.pattern_frame(k, 8, 10))  # PNG: exact
    assert [i for i, _ in items] == [0, 1, 2, 3, 4]


def test_write_frames_folder_round_trip(tmp_path: Path, media) -> None:
    frames = [media.pattern_frame(i, 6, 9) for i in range(12)]
    paths = write_frames_folder(tmp_path / "out", frames, pattern="img{}.png")
    assert [p.name for p in paths][:3] == ["img0.png", "img1.png", "img2.png"]
    _, items = _read_all(tmp_path / "out")
    for (_, got), want in zip(items, frames):
        np.testing.assert_array_equal(got, want)
    # (index, frame) pairs keep their index.
    paths = write_frames_folder(tmp_path / "pairs", [(7, frames[0])])
    assert paths[0].name == "000007.png"


def test_corrupt_frame_in_folder_names_file(tmp_path: Path, media) -> None:
    write_png(tmp_path / "0.png", media.pattern_frame(0, 8, 8))
    (tmp_path / "1.png").write_bytes(b"")
    src = open_frames(tmp_path)
    next(src)
    with pytest.raises(ValueError, match=r"1\.png.*empty"):
        next(src)


def test_single_image_file(tmp_path: Path, media) -> None:
    write_png(tmp_path / "one.png", media.pattern_frame(3, 8, 8))
    src, items = _read_all(tmp_path / "one.png")
    assert src.kind == "image" and src.num_frames == 1 and len(items) == 1


def test_animated_gif(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    pil = [Image.fromarray(f) for f in frames]
    pil[0].save(tmp_path / "a.png", save_all=True, append_images=pil[1:], duration=40)  # APNG
    src, items = _read_all(tmp_path / "a.png")
    assert src.kind == "animation" and src.num_frames == 6 and src.fps == pytest.approx(25.0)
    for (_, got), want in zip(items, frames):
        np.testing.assert_array_equal(got, want)  # lossless
    pil[0].save(tmp_path / "a.gif", save_all=True, append_images=pil[1:], duration=50)
    data = (tmp_path / "a.gif").read_bytes()
    (tmp_path / "t.gif").write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(UserWarning, match=r"read \d frame\(s\) of \d.*truncated or corrupt"):
        src, items = _read_all(tmp_path / "t.gif")
    assert 0 < len(items) < 6 and src.fps == pytest.approx(20.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda fr: fr,  # list
        lambda fr: np.stack(fr),  # (T, H, W, 3)
        lambda fr: torch.from_numpy(np.stack(fr)).permute(0, 3, 1, 2).float() / 255,  # (T, 3, H, W)
        lambda fr: (f for f in fr),  # generator, unknown length
    ],
)
def test_iterable_sources(media, make) -> None:
    frames = [media.pattern_frame(i, 8, 12) for i in range(3)]
    src, items = _read_all(make(frames))
    assert src.num_frames in (3, None) and src.fps is None
    for (_, got), want in zip(items, frames):
        np.testing.assert_array_equal(got, want)
    assert len(items) == 3


def test_iterable_errors(media) -> None:
    with pytest.raises(VideoReadError, match="must be 4-D.*single image"):
        open_frames(media.pattern_frame(0, 8, 8))
    with pytest.raises(VideoReadError, match="contains no frames"):
        open_frames([])
    with pytest.raises(VideoReadError, match=r"item 1 is not a valid image.*NaN"):
        list(open_frames([media.pattern_frame(0, 8, 8), np.full((8, 8), np.nan)]))
    with pytest.raises(VideoReadError, match="Unsupported frame source of type float"):
        open_frames(3.5)
    with pytest.raises(VideoReadError, match="Unsupported frame source of type dict"):
        open_frames({"a": 1})
    with pytest.raises(VideoReadError, match="bytes"):
        open_frames(b"\x00\x01")
    with pytest.raises(VideoReadError, match="URL"):
        open_frames("rtsp://camera.local/stream")


# --------------------------------------------------------------------------------------------------
# Resizing, size changes and rotation
# --------------------------------------------------------------------------------------------------


def test_max_side(make_video, media) -> None:
    path = make_video("m.mp4", n=3, h=48, w=64)
    src, items = _read_all(path, max_side=32)
    assert src.size == (24, 32) and all(f.shape == (24, 32, 3) for _, f in items)
    src, items = _read_all(path, max_side=1000)  # never upscaled
    assert src.size == (48, 64)
    frames = [media.pattern_frame(i, 40, 20) for i in range(2)]
    src, items = _read_all(frames, max_side=10)
    assert src.size == (10, 5) and items[0][1].shape == (10, 5, 3)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_side"):
            open_frames(frames, max_side=bad)
    with pytest.raises(ValueError, match="on_size_change"):
        open_frames(frames, on_size_change="crop")  # type: ignore[arg-type]


@pytest.fixture
def size_change_video(tmp_path: Path, media) -> Path:
    """An MPEG-TS stream whose resolution changes at frame 3 (concatenated streams)."""
    a = media.encode_video(
        tmp_path / "a.ts", [media.pattern_frame(i, 32, 48) for i in range(3)], fmt="mpegts"
    )
    b = media.encode_video(
        tmp_path / "b.ts", [media.pattern_frame(i, 40, 64) for i in range(3, 6)], fmt="mpegts"
    )
    out = tmp_path / "cat.ts"
    out.write_bytes(a.read_bytes() + b.read_bytes())
    return out


def test_size_change_error(size_change_video: Path) -> None:
    src = open_frames(size_change_video)
    got = [next(src)[0] for _ in range(3)]
    assert got == [0, 1, 2]
    with pytest.raises(
        VideoReadError,
        match=r"frame 3 has size \(H, W\)=\(40, 64\).*\(32, 48\).*"
        r"on_size_change='resize'",
    ):
        next(src)


def test_size_change_resize(size_change_video: Path, media) -> None:
    _, items = _read_all(size_change_video, on_size_change="resize")
    assert [i for i, _ in items] == list(range(6))
    assert all(f.shape == (32, 48, 3) for _, f in items)
    # The resized frame 4 still shows frame 4's content (the blue channel encodes the index).
    assert abs(int(np.median(items[4][1][..., 2])) - (4 * 37) % 256) <= 6


def test_size_change_skip(size_change_video: Path) -> None:
    with pytest.warns(UserWarning, match="frame 3 has size") as rec:
        _, items = _read_all(size_change_video, on_size_change="skip")
    assert len([r for r in rec if "frame 3 has size" in str(r.message)]) == 1  # warned once
    assert [i for i, _ in items] == [0, 1, 2]


def test_size_change_in_iterable(media) -> None:
    frames = [
        media.pattern_frame(0, 8, 8),
        media.pattern_frame(1, 8, 8),
        media.pattern_frame(2, 9, 8),
    ]
    with pytest.raises(VideoReadError, match="frame 2 has size"):
        _read_all(frames)
    _, items = _read_all(frames, on_size_change="resize")
    assert items[2][1].shape == (8, 8, 3)


@pytest.mark.parametrize(("rotation", "k"), [(90, 1), (-90, -1), (180, 2)])
def test_display_rotation(tmp_path: Path, media, rotation: int, k: int) -> None:
    f = np.zeros((32, 64, 3), np.uint8)
    f[:16, :32] = 255  # white top-left quadrant
    path = media.encode_video(tmp_path / "r.mp4", [f, f], rotation=rotation)
    src, items = _read_all(path)
    expected = np.rot90(f, k)  # display = rotate counter-clockwise by `rotation`
    assert src.size == expected.shape[:2]
    assert _mae(items[0][1], expected) < 8
    _, raw = _read_all(path, apply_rotation=False)
    assert raw[0][1].shape == (32, 64, 3)


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match=r"not found.*nope\.mp4"):
        open_frames(tmp_path / "nope.mp4")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match=r"empty \(0 bytes\)"):
        open_frames(tmp_path / "e.mp4")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="No image files"):
        open_frames(tmp_path)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_garbage_file_fails_fast(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"g{suffix}"
    p.write_bytes(np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    t0 = time.perf_counter()
    with pytest.raises(VideoReadError, match="Cannot open .* as a video"):
        open_frames(p)
    assert time.perf_counter() - t0 < 5.0


def test_text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("just text\n" * 50)
    with pytest.raises(VideoReadError, match="not a video FFmpeg can read"):
        open_frames(tmp_path / "notes.mp4")


def test_audio_only_file(tmp_path: Path) -> None:
    import av

    p = tmp_path / "a.wav"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        fr.sample_rate = 8000
        for pk in list(s.encode(fr)) + list(s.encode()):
            c.mux(pk)
    with pytest.raises(VideoReadError, match=r"no video stream.*audio"):
        open_frames(p)


def test_zero_frame_video(tmp_path: Path) -> None:
    import av

    p = tmp_path / "z.avi"
    with av.open(str(p), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(VideoReadError, match="contains no frames"):
        open_frames(p)


@pytest.mark.parametrize(
    ("name", "codec"), [("t.avi", "mpeg4"), ("t.mkv", "libx264"), ("t.webm", "libvpx-vp9")]
)
def test_truncated_video_warns_once(tmp_path: Path, media, name: str, codec: str) -> None:
    rng = np.random.default_rng(0)  # noise: every frame costs bytes, so truncation drops frames
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(30)]
    full = media.encode_video(tmp_path / f"full_{name}", frames, codec=codec)
    data = full.read_bytes()
    p = tmp_path / name
    p.write_bytes(data[: len(data) // 2])
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        src, items = _read_all(p)
    assert time.perf_counter() - t0 < 5.0
    msgs = [str(r.message) for r in rec if "truncated or corrupt" in str(r.message)]
    assert len(msgs) == 1, msgs
    assert 0 < len(items) < 30
    assert f"read {len(items)} frame(s)" in msgs[0] and name in msgs[0]
    with pytest.raises(StopIteration):  # stopped cleanly, stays stopped
        next(src)


def test_corrupt_middle_mp4_warns_and_stops(tmp_path: Path, media) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(30)]
    full = media.encode_video(tmp_path / "c.mp4", frames, options={"movflags": "faststart"})
    data = bytearray(full.read_bytes())
    n = len(data)
    data[n // 3 : 2 * n // 3] = (
        np.random.default_rng(1).integers(0, 256, 2 * n // 3 - n // 3, dtype=np.uint8).tobytes()
    )
    full.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"read \d+ frame\(s\); decoding failed") as rec:
        _, items = _read_all(full)
    assert 0 < len(items) < 30
    assert sum("truncated or corrupt" in str(r.message) for r in rec) == 1


def test_truncated_mp4_with_index_at_end(tmp_path: Path, make_video) -> None:
    p = make_video("t.mp4", n=20)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # moov atom (index) is at the end: lost
    with pytest.raises(VideoReadError, match="moov atom"):
        open_frames(p)


def test_truncated_faststart_mp4_yields_prefix(tmp_path: Path, media) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(30)]
    p = media.encode_video(tmp_path / "fs.mp4", frames, options={"movflags": "faststart"})
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(UserWarning, match="announces about 30 frames"):
        src, items = _read_all(p)
    assert src.num_frames == 30 and 0 < len(items) < 30


def test_no_warning_for_intact_video(make_video) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("ok.mp4", "ok.mkv"):
            _, items = _read_all(make_video(name, n=12))
            assert len(items) == 12


# --------------------------------------------------------------------------------------------------
# FrameSource protocol, fps override, devices
# --------------------------------------------------------------------------------------------------


def test_context_manager_closes(make_video) -> None:
    path = make_video("c.mkv", n=5)
    with open_frames(path) as src:
        assert next(src)[0] == 0
        container_closer = src._closer
        assert container_closer is not None
    with pytest.raises(StopIteration):
        next(src)
    src.close()  # idempotent
    assert "frames_yielded=1" in repr(src)


def test_fps_override(make_video) -> None:
    src = open_frames(make_video("f.mp4", n=3, fps=10), fps=25)
    assert src.fps == 25.0
    with pytest.raises(ValueError, match="fps"):
        open_frames(make_video("g.mp4", n=3), fps=-1)


def test_device_errors() -> None:
    with pytest.raises(VideoReadError, match="Camera index must be >= 0"):
        open_frames(-1)
    with pytest.raises(VideoReadError, match="Camera index must be >= 0"):
        open_frames(np.int64(-2))
    with pytest.raises(VideoReadError, match="Unsupported frame source"):
        open_frames(True)
    if sys.platform.startswith("linux"):
        with pytest.raises(
            VideoReadError, match=r"Cannot open camera '/dev/video987'.*ls /dev/video"
        ):
            open_frames(987)
