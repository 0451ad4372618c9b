"""Video input/output: lazy frame sources and an atomic video writer (PyAV).

RAP-SAM (arXiv 2401.10228) segments and tracks objects frame by frame; its video predictor consumes
``(index, frame)`` pairs with ``frame`` an ``(H, W, 3)`` uint8 RGB array (the same contract as
:func:`rapsam.io.read_image`). :func:`open_frames` produces those pairs from a video file, a folder
of frames, a camera, or any Python iterable, decoding one frame at a time so memory stays constant
whatever the video length. :class:`VideoWriter` writes results back as a video without ever
leaving a half-written file under the final name.

Decoding uses PyAV (FFmpeg bindings, ``import av``), imported lazily so that importing
``rapsam.io`` does not load FFmpeg.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np
from PIL import Image

from rapsam.io.image import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    _pil_to_rgb,
    as_rgb_array,
    list_images,
    read_image,
    write_png,
)

__all__ = [
    "FrameSource",
    "VideoReadError",
    "VideoWriter",
    "open_frames",
    "write_frames_folder",
]

OnSizeChange = Literal["error", "resize", "skip"]
_SIZE_MODES = ("error", "resize", "skip")

#: Codecs tried in order when ``VideoWriter(codec=None)``, by file suffix (default: "*").
_DEFAULT_CODECS: dict[str, tuple[str, ...]] = {
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4",),
    "*": ("libx264", "mpeg4"),
}


class VideoReadError(ValueError):
    """A video (or frame folder / frame iterable) could not be read; the message says why and the fix."""


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


class FrameSource:
    """Lazy iterator of ``(index, frame)`` pairs, ``frame`` an ``(H, W, 3)`` uint8 RGB array.

    ``index`` is the frame's position in the source (0-based, in decode order for videos, in
    natural file order for folders); frames dropped by ``on_size_change="skip"`` leave gaps.

    Made by :func:`open_frames`; not constructed directly. Frames are produced one at a time (one
    decoded frame in memory, plus the decoder's own small buffer). It is a one-shot iterator, like a
    file: iterate once, or call :func:`open_frames` again. Use it as a context manager (or call
    :meth:`close`) to release the file/camera; it also closes itself when exhausted.

    Attributes:
        fps: Frames per second reported by the container (or given as ``fps=``); None if unknown
            (folders, iterables without ``fps=``).
        num_frames: Frame count declared by the source; None when unknown (Matroska/WebM files,
            cameras, generators). A truncated file may declare more frames than it yields.
        size: ``(H, W)`` of the first frame as yielded (after ``max_side`` and rotation). With
            ``on_size_change="resize"`` every frame has this size.
        kind: ``"video"``, ``"folder"``, ``"image"``, ``"animation"``, ``"device"`` or
            ``"iterable"``.
        name: Human-readable description of the source (its path, device, or type).
        frames_yielded: Frames yielded so far.
    """

    def __init__(
        self,
        items: Iterator[tuple[int, Any]],
        *,
        kind: str,
        name: str,
        fps: float | None,
        num_frames: int | None,
        max_side: int | None,
        on_size_change: OnSizeChange,
        apply_rotation: bool,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.fps = fps
        self.num_frames = num_frames
        self.frames_yielded = 0
        self._items = items
        self._max_side = max_side
        self._on_size_change = on_size_change
        self._apply_rotation = apply_rotation
        self._closer = closer
        self._closed = False
        self._ref_hw: tuple[int, int] | None = None  # displayed size of the first source frame
        self._out_hw: tuple[int, int] | None = None  # size of every yielded frame
        self._warned_skip = False
        # Decode the first frame now: it gives `size`, and empty/undecodable sources fail here.
        self._pending: tuple[int, np.ndarray] | None = None
        try:
            first = self._next_processed()
        except BaseException:
            self.close()
            raise
        if first is None:
            self.close()
            raise VideoReadError(
                f"{name} contains no frames. Check that it is the file/folder you meant "
                "(a video must hold at least one decodable frame)."
            )
        self._pending = first
        assert self._out_hw is not None
        self.size: tuple[int, int] = self._out_hw

    # -- iterator protocol ---------------------------------------------------------------------
    def __iter__(self) -> Self:
        return self

    def __next__(self) -> tuple[int, np.ndarray]:
        if self._pending is not None:
            out, self._pending = self._pending, None
        else:
            if self._closed:
                raise StopIteration
            try:
                nxt = self._next_processed()
            except BaseException:
                self.close()
                raise
            if nxt is None:
                self.close()
                raise StopIteration
            out = nxt
        self.frames_yielded += 1
        return out

    def _next_processed(self) -> tuple[int, np.ndarray] | None:
        """Next (index, frame) after size handling, or None at the end of the source."""
        for index, item in self._items:
            frame = self._process(index, item)
            if frame is not None:
                return index, frame
        return None

    def _process(self, index: int, item: Any) -> np.ndarray | None:
        raw_hw, rot_k = _item_size(item, self._apply_rotation)
        if self._ref_hw is None:
            self._ref_hw = raw_hw
            self._out_hw = _fit_max_side(raw_hw, self._max_side)
        elif raw_hw != self._ref_hw:
            if self._on_size_change == "error":
                raise VideoReadError(
                    f"{self.name}: frame {index} has size (H, W)={raw_hw} but the first frame has "
                    f"{self._ref_hw}. Pass on_size_change='resize' to resize such frames to the "
                    "first frame's size, or 'skip' to drop them."
                )
            if self._on_size_change == "skip":
                if not self._warned_skip:
                    self._warned_skip = True
                    warnings.warn(
                        f"{self.name}: frame {index} has size {raw_hw}, not {self._ref_hw}; "
                        "skipping it and any later frame of a different size "
                        "(on_size_change='skip'; indices of skipped frames are missing).",
                        stacklevel=4,
                    )
                return None
        assert self._out_hw is not None
        return _convert(item, self._out_hw, rot_k)

    # -- resource handling ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the underlying file or camera. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pending = None
        close_gen = getattr(self._items, "close", None)
        if close_gen is not None:
            close_gen()
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            self.close()

    def __repr__(self) -> str:
        return (
            f"FrameSource(kind={self.kind!r}, name={self.name!r}, size={getattr(self, 'size', None)}, "
            f"fps={self.fps}, num_frames={self.num_frames}, frames_yielded={self.frames_yielded})"
        )


def open_frames(
    source: Any,
    *,
    max_side: int | None = None,
    on_size_change: OnSizeChange = "error",
    fps: float | None = None,
    apply_rotation: bool = True,
) -> FrameSource:
    """Open a source of video frames for lazy, frame-by-frame reading.

    Sources:

    * a video file path (anything FFmpeg reads: mp4, mov, avi, mkv, webm, ts, ...);
    * an image file path: a still image is a one-frame source (read with
      :func:`rapsam.io.read_image`); an animated GIF/PNG/WebP/TIFF yields its frames (Pillow);
    * a folder of frame images, in natural order (``frame2`` before ``frame10``), see
      :func:`rapsam.io.list_images`;
    * a camera: an ``int`` index or a ``"/dev/videoN"`` path. On Linux it is opened with FFmpeg's
      ``v4l2`` input, on macOS with ``avfoundation`` (index only); other platforms are not
      supported. Camera input is not covered by the test-suite (no camera on CI);
    * any iterable/iterator of images accepted by :func:`rapsam.io.as_rgb_array` (a list of
      arrays, a generator, a ``(T, H, W, 3)`` array or ``(T, 3, H, W)`` tensor).

    Args:
        source: See above.
        max_side: If given, frames whose longer side exceeds it are downscaled (aspect kept) so the
            longer side equals ``max_side``. Smaller frames are never upscaled.
        on_size_change: What to do when a frame's size differs from the first frame's: ``"error"``
            (default) raises :class:`VideoReadError` naming the frame index, ``"resize"`` stretches
            the frame to the first frame's size, ``"skip"`` drops it (with one warning).
        fps: Frame rate to report; overrides the container's value. Useful for folders/iterables.
        apply_rotation: Apply a video's display-matrix rotation (phone videos), as players do.

    Returns:
        A :class:`FrameSource`. The first frame is decoded immediately, so empty or unreadable
        sources fail here rather than mid-loop.

    Raises:
        VideoReadError: missing path, a folder without images, a file that is not a video or is
            unreadable, a video without a video stream or without decodable frames, a camera that
            cannot be opened, an empty iterable, or an item that is not an image.
        ValueError: invalid ``max_side`` / ``on_size_change`` / ``fps``.

    Warns:
        UserWarning: once, when a video stops decoding early (truncated/corrupt file): the frames
            decoded up to that point are yielded, then iteration stops cleanly.

    Example:
        >>> with open_frames("clip.mp4", max_side=1024) as frames:  # doctest: +SKIP
        ...     for index, frame in frames:
        ...         ...  # frame: (H, W, 3) uint8 RGB
    """
    if max_side is not None and (
        isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1
    ):
        raise ValueError(f"max_side must be a positive int or None, got {max_side!r}.")
    if on_size_change not in _SIZE_MODES:
        raise ValueError(f"on_size_change must be one of {_SIZE_MODES}, got {on_size_change!r}.")
    if fps is not None:
        fps = _check_fps(fps, "fps")
    common: dict[str, Any] = {
        "max_side": max_side,
        "on_size_change": on_size_change,
        "apply_rotation": apply_rotation,
    }

    if isinstance(source, (bool, np.bool_)):
        raise VideoReadError(f"Unsupported frame source {source!r}.")
    if isinstance(source, numbers.Integral):
        source = int(source)
    if isinstance(source, int) or (
        isinstance(source, (str, os.PathLike)) and str(source).startswith("/dev/video")
    ):
        return _open_device(source, fps, common)
    if isinstance(source, bytes):
        raise VideoReadError(
            "open_frames got bytes; write them to a file first, or decode the frames yourself "
            "and pass an iterable of arrays."
        )
    if isinstance(source, (str, os.PathLike)):
        s = str(source)
        if "://" in s:
            raise VideoReadError(
                f"URL sources are not supported ({s!r}); download the file first, then pass its path."
            )
        p = Path(source)
        if not p.exists():
            raise VideoReadError(
                f"Video/frames source not found: '{p}'. Check the path (cwd is '{Path.cwd()}')."
            )
        if p.is_dir():
            return _open_folder(p, fps, common)
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            return _open_image_file(p, fps, common)
        return _open_video_file(p, fps, common)
    return _open_iterable(source, fps, common)


def _check_fps(fps: Any, what: str) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a positive number, got {fps!r}.") from None
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"{what} must be a positive finite number, got {fps!r}.")
    return f


def _fit_max_side(hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    h, w = hw
    if max_side is None or max(h, w) <= max_side:
        return hw
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _item_size(item: Any, apply_rotation: bool) -> tuple[tuple[int, int], int]:
    """Displayed (H, W) of a source item and the number of 90-degree CCW turns to apply."""
    if isinstance(item, np.ndarray):
        return (int(item.shape[0]), int(item.shape[1])), 0
    # av.VideoFrame
    k = 0
    if apply_rotation:
        rot = item.rotation  # degrees counter-clockwise, from the display matrix
        if rot and rot % 90 == 0:
            k = (rot // 90) % 4
    h, w = int(item.height), int(item.width)
    return ((w, h) if k % 2 else (h, w)), k


def _convert(item: Any, out_hw: tuple[int, int], rot_k: int) -> np.ndarray:
    """Source item -> (H, W, 3) uint8 RGB of size ``out_hw`` (after rotation)."""
    oh, ow = out_hw
    if isinstance(item, np.ndarray):
        if item.shape[:2] == (oh, ow):
            return item
        resized = Image.fromarray(item).resize((ow, oh), Image.Resampling.BILINEAR)
        return np.asarray(resized)
    # av.VideoFrame: resize in swscale (cheap), then rotate.
    ph, pw = (ow, oh) if rot_k % 2 else (oh, ow)  # size before rotation
    arr = item.to_ndarray(format="rgb24", width=pw, height=ph)  # (ph, pw, 3)
    if rot_k:
        arr = np.ascontiguousarray(np.rot90(arr, k=rot_k))  # CCW turns -> (oh, ow, 3)
    return arr


# -- folder / image / iterable ---------------------------------------------------------------------


def _open_folder(folder: Path, fps: float | None, common: dict[str, Any]) -> FrameSource:
    try:
        files = list_images(folder)
    except ValueError as e:
        raise VideoReadError(str(e)) from None

    def items() -> Iterator[tuple[int, Any]]:
        for i, f in enumerate(files):
            yield i, read_image(f)  # ImageReadError names the file

    return FrameSource(
        items(), kind="folder", name=f"folder '{folder}'", fps=fps, num_frames=len(files), **common
    )


def _open_image_file(path: Path, fps: float | None, common: dict[str, Any]) -> FrameSource:
    """A still image (one frame) or an animated GIF/PNG/WebP/TIFF (frames decoded lazily)."""
    try:
        first = read_image(path)  # validates the file; EXIF orientation applied
    except ImageReadError as e:
        raise VideoReadError(str(e)) from None
    img = Image.open(path)
    n = int(getattr(img, "n_frames", 1) or 1)
    if n <= 1:
        img.close()
        return FrameSource(
            iter([(0, first)]),
            kind="image",
            name=f"image '{path}'",
            fps=fps,
            num_frames=1,
            **common,
        )
    duration_ms = img.info.get("duration") or 0
    src_fps = 1000.0 / duration_ms if duration_ms > 0 else None
    name = f"animated image '{path}'"

    def items() -> Iterator[tuple[int, Any]]:
        for i in range(n):
            try:
                img.seek(i)
                img.load()
                frame = _pil_to_rgb(img, alpha="drop", origin=f"{name} frame {i}")
            except (OSError, EOFError, ValueError, SyntaxError) as e:
                warnings.warn(
                    f"{name}: read {i} frame(s) of {n}; frame {i} could not be decoded "
                    f"({type(e).__name__}: {e}). The file is probably truncated or corrupt; the "
                    "readable frames were returned.",
                    stacklevel=4,
                )
                return
            yield i, frame

    return FrameSource(
        items(),
        kind="animation",
        name=name,
        fps=fps if fps is not None else src_fps,
        num_frames=n,
        closer=img.close,
        **common,
    )


def _open_iterable(source: Any, fps: float | None, common: dict[str, Any]) -> FrameSource:
    torch = sys.modules.get("torch")
    is_tensor = torch is not None and isinstance(source, torch.Tensor)
    if isinstance(source, np.ndarray) or is_tensor:
        if source.ndim != 4:
            raise VideoReadError(
                f"An array/tensor frame source must be 4-D, (T, H, W, C) or (T, C, H, W); got shape "
                f"{tuple(source.shape)}. For a single image pass [image]."
            )
    elif isinstance(source, (Image.Image, Mapping)) or not isinstance(source, Iterable):
        raise VideoReadError(
            f"Unsupported frame source of type {type(source).__name__}: pass a video path, a folder "
            "of frames, a camera index, or an iterable of (H, W, 3) images (for one image: [image])."
        )
    num = None
    try:
        num = len(source)  # type: ignore[arg-type]
    except TypeError:
        pass
    name = f"iterable of type {type(source).__name__}"

    def items() -> Iterator[tuple[int, Any]]:
        for i, x in enumerate(source):
            try:
                yield i, as_rgb_array(x)
            except ValueError as e:
                raise VideoReadError(f"{name}: item {i} is not a valid image: {e}") from None

    return FrameSource(items(), kind="iterable", name=name, fps=fps, num_frames=num, **common)


# -- video files and cameras -----------------------------------------------------------------------


def _open_video_file(path: Path, fps: float | None, common: dict[str, Any]) -> FrameSource:
    import av

    try:
        nbytes = path.stat().st_size
    except OSError as e:  # pragma: no cover - race / exotic filesystems
        raise VideoReadError(f"Cannot stat '{path}': {e}.") from e
    if nbytes == 0:
        raise VideoReadError(
            f"Video file '{path}' is empty (0 bytes); the recording or download that produced it "
            "failed. Re-export or re-download it."
        )
    try:
        container = av.open(str(path), mode="r")
    except PermissionError as e:
        raise VideoReadError(f"No permission to read '{path}': {e}.") from e
    except (av.FFmpegError, OSError, ValueError) as e:
        mp4_hint = ""
        if path.suffix.lower() in (".mp4", ".mov", ".m4v", ".3gp"):
            mp4_hint = (
                " An MP4/MOV whose recording was interrupted has no index ('moov atom') and cannot "
                "be opened; recover it with a repair tool or re-record it."
            )
        raise VideoReadError(
            f"Cannot open '{path}' as a video ({type(e).__name__}: {e}): it is not a video FFmpeg "
            f"can read, or it is truncated/corrupt.{mp4_hint} Check that it plays in a video player."
        ) from e
    return _source_from_container(container, f"video '{path}'", "video", fps, common)


def _open_device(
    source: int | str | os.PathLike[str], fps: float | None, common: dict[str, Any]
) -> FrameSource:
    import av

    if isinstance(source, int) and source < 0:
        raise VideoReadError(f"Camera index must be >= 0, got {source}.")
    if sys.platform.startswith("linux"):
        url = f"/dev/video{source}" if isinstance(source, int) else str(source)
        fmt = "v4l2"
    elif sys.platform == "darwin" and isinstance(source, int):
        url, fmt = str(source), "avfoundation"
    else:
        raise VideoReadError(
            f"Camera input {source!r} is supported on Linux (v4l2, index or /dev/videoN) and macOS "
            "(avfoundation, index) only. Elsewhere, read frames with your own capture code and pass "
            "them to open_frames as an iterable of arrays."
        )
    # avfoundation rejects its 29.97 default on most cameras; ask for 30 unless told otherwise.
    options = {"framerate": f"{fps:g}"} if fps is not None else {}
    if fmt == "avfoundation":
        options.setdefault("framerate", "30")
    try:
        container = av.open(url, format=fmt, options=options)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoReadError(
            f"Cannot open camera {url!r} ({type(e).__name__}: {e}). Check that it exists "
            "(Linux: ls /dev/video*), that you may access it (video group), and that no other "
            "program is using it."
        ) from e
    return _source_from_container(container, f"camera {url!r}", "device", fps, common)


def _source_from_container(
    container: Any, name: str, kind: str, fps: float | None, common: dict[str, Any]
) -> FrameSource:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        raise VideoReadError(
            f"{name} has no video stream (it holds: {kinds or 'no streams'}). Pass a file that "
            "contains video."
        )
    stream = container.streams.video[0]
    rate = stream.guessed_rate or stream.average_rate
    src_fps = float(rate) if rate else None
    declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
    expected = declared if declared is not None else _estimate_frames(container, stream, src_fps)
    items = _decode_video(container, stream, name, expected)
    return FrameSource(
        items,
        kind=kind,
        name=name,
        fps=fps if fps is not None else src_fps,
        num_frames=declared,
        closer=container.close,
        **common,
    )


def _estimate_frames(container: Any, stream: Any, fps: float | None) -> int | None:
    """Frame count implied by the duration, for containers that don't declare one (MKV/WebM).

    Only used to detect truncation; None when it would be unreliable.
    """
    if not fps:
        return None
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None and len(container.streams) == 1:
        seconds = container.duration / 1_000_000  # microseconds (AV_TIME_BASE)
    else:
        return None
    return round(seconds * fps) if seconds > 0 else None


def _decode_video(
    container: Any, stream: Any, name: str, expected: int | None
) -> Iterator[tuple[int, Any]]:
    """Yield (index, av.VideoFrame) lazily; on a decode error yield what is left, warn, stop."""
    import av

    index = 0
    corrupt = 0
    error: BaseException | None = None
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                error = e
                break
            for frame in frames:
                corrupt += bool(frame.is_corrupt)
                yield index, frame
                index += 1
    except av.FFmpegError as e:  # the demuxer itself failed (damaged container)
        error = e
    if error is not None:
        try:  # drain frames the decoder still holds (B-frame reordering delay)
            for frame in stream.codec_context.decode(None):
                corrupt += bool(frame.is_corrupt)
                yield index, frame
                index += 1
        except av.FFmpegError:
            pass
    reasons = []
    if error is not None:
        reasons.append(f"decoding failed ({type(error).__name__}: {error})")
    # Allow 5% slack for duration-based estimates (variable frame rate, rounding).
    if (
        expected is not None
        and index < expected
        and (error is not None or index < 0.95 * expected - 1)
    ):
        reasons.append(f"the container announces about {expected} frames")
    if corrupt:
        reasons.append(
            f"{corrupt} frame(s) were flagged corrupt by the decoder and may show artifacts"
        )
    if reasons and index > 0:
        warnings.warn(
            f"{name}: read {index} frame(s); " + "; ".join(reasons) + ". The file is probably "
            "truncated or corrupt; the readable frames were returned. Re-export/re-download it for "
            "the full video.",
            stacklevel=4,
        )
    elif error is not None:
        raise VideoReadError(
            f"{name}: no frame could be decoded ({type(error).__name__}: {error}). The file is "
            "corrupt or uses an unsupported codec; check that it plays in a video player."
        )


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _encoder_available(name: str) -> bool:
    import av

    try:
        codec = av.Codec(name, "w")
    except Exception:  # noqa: BLE001 - UnknownCodecError / EncoderNotFoundError vary by version
        return False
    return codec.type == "video"


def _video_encoders() -> list[str]:
    import av

    return [n for n in sorted(av.codecs_available) if _encoder_available(n)]


class VideoWriter:
    """Write ``(H, W, 3)`` uint8 RGB frames to a video file, atomically.

    Frames go to a hidden temporary file next to ``path``; :meth:`close` finalises it and renames it
    onto ``path`` with ``os.replace``. If the ``with`` block raises (or :meth:`abort` is called) the
    temporary file is deleted and ``path`` is left untouched, so a crash never leaves a half-written
    video under the final name. (A killed process can leave the hidden ``.<name>.*.partial<suffix>``
    file behind.)

    The frame size is set by the first frame. Codecs with chroma subsampling (``yuv420p``) need even
    width/height: odd sizes are padded by one pixel on the right/bottom, replicating the edge, so the
    stored video is at most one pixel larger than the frames given (:attr:`encoded_size`).

    Args:
        path: Destination file; its folder must exist. The container format follows the suffix
            (``.mp4``, ``.mkv``, ``.avi``, ``.webm``, ``.mov``...) unless ``format`` is given.
        fps: Frame rate (positive; e.g. 30 or 29.97).
        codec: Encoder name. Default None picks by suffix: ``libx264`` (falling back to ``mpeg4``,
            with a warning, when this FFmpeg build lacks it); ``.webm`` -> ``libvpx-vp9``;
            ``.avi`` -> ``mpeg4``.
        pix_fmt: Pixel format of the stored video (default ``yuv420p``, which every player reads).
        options: Encoder options, merged over the defaults (``libx264``: ``crf=18``).
        format: Container format name for FFmpeg, when the suffix is not enough.

    Attributes:
        path: The final path.
        codec: The encoder actually used.
        size: ``(H, W)`` of the frames given (None before the first write).
        encoded_size: ``(H, W)`` stored in the file (even-padded); None before the first write.
        num_frames: Frames written so far.

    Example:
        >>> with VideoWriter("out.mp4", fps=30) as w:  # doctest: +SKIP
        ...     for _, frame in open_frames("in.mp4"):
        ...         w.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        *,
        codec: str | None = None,
        pix_fmt: str = "yuv420p",
        options: Mapping[str, str] | None = None,
        format: str | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        self.fps = _check_fps(fps, "VideoWriter fps")
        if self.path.is_dir():
            raise ValueError(
                f"VideoWriter: '{self.path}' is a directory; pass a file path like "
                f"'{self.path / 'out.mp4'}'."
            )
        if not self.path.parent.is_dir():
            raise ValueError(
                f"VideoWriter: folder '{self.path.parent}' does not exist; create it first "
                "(Path(...).mkdir(parents=True, exist_ok=True))."
            )
        if format is None and not self.path.suffix:
            raise ValueError(
                f"VideoWriter: '{self.path}' has no suffix, so the container format is unknown; "
                "use a name like 'out.mp4' or pass format='mp4'."
            )
        self.codec = self._resolve_codec(codec)
        self.pix_fmt = pix_fmt
        self._options = {"crf": "18"} if self.codec == "libx264" else {}
        if options:
            self._options.update({str(k): str(v) for k, v in options.items()})
        self.size: tuple[int, int] | None = None
        self.encoded_size: tuple[int, int] | None = None
        self.num_frames = 0
        self._stream: Any = None
        self._closed = False
        self._tmp = self.path.with_name(
            f".{self.path.stem}.{os.getpid()}.{secrets.token_hex(4)}.partial{self.path.suffix}"
        )
        try:
            self._container = av.open(str(self._tmp), mode="w", format=format)
        except (av.FFmpegError, OSError, ValueError) as e:
            self._tmp.unlink(missing_ok=True)
            raise ValueError(
                f"VideoWriter: cannot create a video for '{self.path}' ({type(e).__name__}: {e}). "
                "Use a known suffix (.mp4, .mkv, .avi, .webm, .mov) or pass format=..."
            ) from e

    def _resolve_codec(self, codec: str | None) -> str:
        if codec is not None:
            if not _encoder_available(codec):
                raise ValueError(
                    f"VideoWriter: video encoder {codec!r} is not available in this FFmpeg/PyAV "
                    f"build. Available video encoders: {_video_encoders()}. Pass codec=None for "
                    "the default."
                )
            return codec
        choices = _DEFAULT_CODECS.get(self.path.suffix.lower(), _DEFAULT_CODECS["*"])
        for i, name in enumerate(choices):
            if _encoder_available(name):
                if i > 0:
                    warnings.warn(
                        f"VideoWriter: encoder {choices[0]!r} is not available in this PyAV build; "
                        f"using {name!r} instead.",
                        stacklevel=3,
                    )
                return name
        raise ValueError(
            f"VideoWriter: none of the default encoders {list(choices)} for '{self.path.suffix}' "
            f"is available; pass codec= one of {_video_encoders()}."
        )

    def _start(self, h: int, w: int) -> None:
        import av

        sub = self.pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "nv21", "yuv411", "yuv410"))
        sub_w = sub or self.pix_fmt.startswith(("yuv422", "yuvj422"))
        eh = h + (h % 2 if sub else 0)
        ew = w + (w % 2 if sub_w else 0)
        rate = Fraction(self.fps).limit_denominator(100_000)
        try:
            stream = self._container.add_stream(self.codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = ew, eh, self.pix_fmt
            if self.codec in ("mpeg4", "mpeg2video", "mpeg1video") and "b" not in self._options:
                # The 200 kb/s FFmpeg default is blurry; ~0.3 bit/pixel looks clean.
                stream.bit_rate = max(400_000, int(0.3 * ew * eh * self.fps))
            if self._options:
                stream.options = dict(self._options)
            stream.codec_context.open()  # surface bad pix_fmt / options now, not at the first packet
        except (av.FFmpegError, ValueError, TypeError) as e:
            raise ValueError(
                f"VideoWriter: cannot set up encoder {self.codec!r} with pix_fmt={self.pix_fmt!r}, "
                f"size {ew}x{eh}, fps {self.fps} ({type(e).__name__}: {e}). Try the defaults."
            ) from e
        self._stream = stream
        self._frame_time_base = 1 / rate  # pts counts frames
        self.size = (h, w)
        self.encoded_size = (eh, ew)

    def write(self, frame: Any) -> None:
        """Append one frame: ``(H, W, 3)`` uint8 RGB (anything :func:`as_rgb_array` accepts).

        Raises:
            ValueError: invalid image, or a size different from the first frame's.
            RuntimeError: the writer is closed.
        """
        import av

        if self._closed:
            raise RuntimeError(f"VideoWriter for '{self.path}' is closed; open a new one to write.")
        arr = as_rgb_array(frame)
        h, w = arr.shape[:2]
        if self._stream is None:
            self._start(h, w)
        elif (h, w) != self.size:
            raise ValueError(
                f"VideoWriter: frame {self.num_frames} has size (H, W)=({h}, {w}) but the video is "
                f"{self.size}. Resize frames to one size before writing (e.g. open_frames(..., "
                "on_size_change='resize'))."
            )
        assert self.encoded_size is not None
        eh, ew = self.encoded_size
        if (eh, ew) != (h, w):
            arr = np.pad(arr, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")  # (eh, ew, 3)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        vf.pts = self.num_frames
        vf.time_base = self._frame_time_base
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> Path:
        """Flush the encoder, finalise the file and move it onto :attr:`path`.

        Returns:
            The final path.

        Raises:
            RuntimeError: no frame was written (nothing is created; the temporary file is removed).
        """
        if self._closed:
            return self.path
        if self._stream is None:
            self.abort()
            raise RuntimeError(
                f"VideoWriter: no frames were written, so '{self.path}' was not created. Call "
                "write(frame) at least once before close()."
            )
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Discard everything written; :attr:`path` is left as it was. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):  # the file is being discarded anyway
            self._container.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser
            if not self._closed:
                self.abort()


def write_frames_folder(
    folder: str | os.PathLike[str],
    frames: Iterable[Any],
    *,
    pattern: str = "{:06d}.png",
) -> list[Path]:
    """Write frames as numbered PNG files (atomic per file); creates ``folder`` if needed.

    Args:
        folder: Output folder.
        frames: Images (anything :func:`as_rgb_array` accepts), or ``(index, frame)`` pairs as
            yielded by :class:`FrameSource` (the index then fills ``pattern``).
        pattern: File name pattern formatted with the frame index.

    Returns:
        The written paths, in order.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, item in enumerate(frames):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (int, np.integer)):
            i, item = int(item[0]), item[1]
        paths.append(write_png(out / pattern.format(i), as_rgb_array(item)))
    return paths
