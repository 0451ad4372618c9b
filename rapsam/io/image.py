"""Image input/output: every image that reaches the model is an ``(H, W, 3)`` uint8 RGB array.

RAP-SAM (arXiv 2401.10228), like SAM (``SamPredictor.set_image(image, image_format="RGB")``), takes
``(H, W, 3)`` uint8 RGB images. This module turns whatever a user holds (a file on disk, a numpy
array, a PIL image, a torch tensor) into exactly that, and says clearly what is wrong when it cannot.

Conversion rules (documented once here, applied everywhere):

* EXIF orientation is applied by :func:`read_image` (the array matches what image viewers show). It
  is *not* applied by :func:`as_rgb_array` to in-memory PIL images: the caller owns those pixels.
* Alpha is dropped by default (``alpha="drop"``): the RGB values are kept as stored, which is what
  SAM-style tools and most users expect. ``alpha="black"`` / ``"white"`` composite over that colour.
* Greyscale is replicated to three channels.
* 16-bit data is scaled to 8 bits with ``round(v / 257)`` (so 65535 -> 255, 32768 -> 128), never
  clipped. Pillow itself decodes 16-bit *colour* PNGs to 8 bits by keeping the high byte, which can
  differ from ``round(v / 257)`` by at most 1.
* ``I`` (32-bit integer) images are treated as 16-bit when their values lie in [0, 65535] (the usual
  case: 16-bit PNG/TIFF), else rescaled linearly from their min..max. ``F`` (float) images are treated
  as [0, 1] when they fit, else rescaled linearly from their min..max.
* CMYK, YCbCr, LAB, HSV and palette images are converted with Pillow's ``convert("RGB")`` (no ICC
  colour management: embedded ICC profiles are ignored).
* Multi-frame files (GIF, TIFF) yield their first frame.

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never changed here: truncated files are errors.
Corruption is detected where the format allows it: PNG (CRC/zlib checksums) and truncation of any
format are reliable; JPEG has no checksums, so garbage inside its compressed data may decode with
visible artefacts instead of raising.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "as_rgb_array",
    "list_images",
    "natural_sort_key",
    "read_image",
    "write_png",
]

#: File suffixes (lower case) that :func:`list_images` treats as images.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
    }
)

AlphaMode = Literal["drop", "black", "white"]
_ALPHA_MODES = ("drop", "black", "white")


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the fix."""


def natural_sort_key(path: str | os.PathLike[str]) -> tuple[Any, ...]:
    """Sort key ordering digit runs by value: ``frame2`` before ``frame10``.

    Args:
        path: A file name or path; only its final component is compared, case-insensitively,
            with the full name as tie-breaker so the order is total and deterministic.

    Returns:
        A tuple usable as ``sorted(..., key=natural_sort_key)``.
    """
    name = Path(path).name
    # re.split with a capture group alternates text (even positions) and digit runs (odd ones).
    parts = re.split(r"(\d+)", name.lower())
    # Tag each part so comparisons never mix str and int at the same position.
    key = tuple((0, int(p)) if i % 2 else (1, p) for i, p in enumerate(parts) if p != "")
    return key, name


# --------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], *, alpha: AlphaMode = "drop") -> np.ndarray:
    """Read an image file as an ``(H, W, 3)`` uint8 RGB array.

    EXIF orientation is applied; greyscale, 16-bit, alpha, palette, CMYK and YCbCr images are
    converted to RGB as described in the module docstring.

    Args:
        path: Path of the image file.
        alpha: What to do with an alpha channel: ``"drop"`` (keep RGB as stored, the default),
            ``"black"`` or ``"white"`` (composite over that background).

    Returns:
        ``(H, W, 3)`` uint8 RGB array, C-contiguous.

    Raises:
        ImageReadError: The file is missing, a directory, empty, truncated or corrupt, in a format
            Pillow cannot read, or has zero width/height. The message names the file and the fix.
        ValueError: ``alpha`` is not one of ``"drop"``, ``"black"``, ``"white"``.
    """
    _check_alpha_mode(alpha)
    if not isinstance(path, (str, os.PathLike)):
        raise ImageReadError(
            f"read_image expects a file path, got {type(path).__name__}; for in-memory images use "
            "rapsam.io.as_rgb_array(image)."
        )
    p = Path(path)
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            similar = sorted(q.name for q in p.parent.iterdir() if q.stem == p.stem)[:3]
            if similar:
                hint = f" Files with the same stem exist there: {similar}."
        raise ImageReadError(
            f"Image file not found: '{p}'. Check the path (cwd is '{Path.cwd()}').{hint}"
        )
    if p.is_dir():
        raise ImageReadError(
            f"'{p}' is a directory, not an image file. Pass a file path, or use "
            "rapsam.io.list_images(folder) / rapsam.io.open_frames(folder) for a folder of images."
        )
    try:
        size = p.stat().st_size
    except OSError as e:  # pragma: no cover - race with deletion / exotic filesystems
        raise ImageReadError(f"Cannot stat image file '{p}': {e}.") from e
    if size == 0:
        raise ImageReadError(
            f"Image file '{p}' is empty (0 bytes); the write that produced it probably failed. "
            "Re-export or re-download the image."
        )
    try:
        with Image.open(p) as img:
            img.load()  # decode now: truncation/corruption surfaces here, not later
            # Broken EXIF metadata must not make an otherwise readable image unreadable.
            with contextlib.suppress(Exception):
                img = ImageOps.exif_transpose(img)
            arr = _pil_to_rgb(img, alpha=alpha, origin=f"'{p}'")
    except ImageReadError:
        raise
    except UnidentifiedImageError as e:
        raise ImageReadError(
            f"Cannot read '{p}' as an image: Pillow does not recognise its format, its header is "
            "corrupt, or it declares a zero width/height. Check the file opens in an image viewer; "
            f"supported suffixes include {sorted(IMAGE_EXTENSIONS)}. "
            "For videos use rapsam.io.open_frames(path)."
        ) from e
    except Image.DecompressionBombError as e:
        raise ImageReadError(
            f"'{p}' is too large to decode safely ({e}). If you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before reading it."
        ) from e
    except PermissionError as e:
        raise ImageReadError(f"No permission to read '{p}': {e}. Fix the file permissions.") from e
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        # Pillow reports truncated data as OSError("image file is truncated"), broken chunks as
        # SyntaxError / OSError, and some plugins raise ValueError/EOFError on bad headers.
        raise ImageReadError(
            f"Cannot decode '{p}': the file is truncated or corrupt ({type(e).__name__}: {e}). "
            "Re-export or re-download it; check that the copy/download finished."
        ) from e
    return arr


def _check_alpha_mode(alpha: str) -> None:
    if alpha not in _ALPHA_MODES:
        raise ValueError(f"alpha must be one of {_ALPHA_MODES}, got {alpha!r}.")


def _pil_to_rgb(img: Image.Image, *, alpha: AlphaMode, origin: str) -> np.ndarray:
    """Convert a loaded PIL image of any mode to an ``(H, W, 3)`` uint8 RGB array."""
    w, h = img.size
    if w == 0 or h == 0:
        raise ImageReadError(
            f"Image {origin} has zero size (width={w}, height={h}); it holds no pixels. "
            "Re-export the image."
        )
    mode = img.mode
    if mode in ("RGB",):
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if mode == "1":
        return _grey_to_rgb(np.asarray(img.convert("L"), dtype=np.uint8))
    if mode == "L":
        return _grey_to_rgb(np.asarray(img, dtype=np.uint8))
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        return _grey_to_rgb(_high_depth_to_uint8(np.asarray(img), mode))
    if mode == "P":
        has_alpha = "transparency" in img.info or (
            img.palette is not None and img.palette.mode == "RGBA"
        )
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
        if mode == "RGB":
            return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if mode in ("RGBa", "La"):  # premultiplied alpha: un-premultiply first
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
        mode = img.mode
    if mode == "PA":
        img = img.convert("RGBA")
        mode = img.mode
    if mode in ("RGBA", "LA"):
        a = np.asarray(img, dtype=np.uint8)
        colour = a[..., :3] if mode == "RGBA" else np.repeat(a[..., :1], 3, axis=-1)
        return _apply_alpha(colour, a[..., -1], alpha)
    if mode == "RGBX":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[..., :3])
    try:  # CMYK, YCbCr, LAB, HSV and anything else Pillow can convert
        rgb = img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageReadError(
            f"Image {origin} has pixel mode {mode!r}, which cannot be converted to RGB ({e}). "
            "Convert it to an 8-bit RGB PNG or JPEG first."
        ) from e
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))  # (H, W) -> (H, W, 3)


def _apply_alpha(rgb: np.ndarray, a: np.ndarray, alpha: AlphaMode) -> np.ndarray:
    """Drop or composite alpha. ``rgb`` (H, W, 3) uint8, ``a`` (H, W) uint8."""
    if alpha == "drop":
        return np.ascontiguousarray(rgb)
    bg = 0.0 if alpha == "black" else 255.0
    w = a.astype(np.float32)[..., None] / 255.0  # (H, W, 1)
    out = rgb.astype(np.float32) * w + bg * (1.0 - w)
    return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _uint16_to_uint8(a: np.ndarray) -> np.ndarray:
    # round(v / 257): exact integer arithmetic, 0 -> 0, 65535 -> 255; maps the full range (no clip).
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _high_depth_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16/32-bit integer or float greyscale plane ``(H, W)`` to uint8."""
    if mode.startswith("I;16"):
        return _uint16_to_uint8(a.astype(np.uint16))
    if mode == "I":
        if a.size and a.min() >= 0 and a.max() <= 65535:
            return _uint16_to_uint8(a.astype(np.uint16))
        return _minmax_to_uint8(a.astype(np.float64))
    f = a.astype(np.float64)  # mode "F"
    if not np.isfinite(f).all():
        f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    if f.size and f.min() >= 0.0 and f.max() <= 1.0:
        return np.rint(f * 255.0).astype(np.uint8)
    return _minmax_to_uint8(f)


def _minmax_to_uint8(f: np.ndarray) -> np.ndarray:
    lo, hi = float(f.min()), float(f.max())
    if hi <= lo:
        return np.zeros(f.shape, np.uint8)
    return np.rint((f - lo) * (255.0 / (hi - lo))).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# In-memory images
# --------------------------------------------------------------------------------------------------


def as_rgb_array(image: Any, *, alpha: AlphaMode = "drop") -> np.ndarray:
    """Convert an in-memory image to an ``(H, W, 3)`` uint8 RGB array.

    Accepted inputs:

    * numpy arrays ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (last channel alpha);
      a 3-D array whose last axis is not 1/3/4 but whose first axis is, is read as ``(C, H, W)``.
    * torch tensors ``(3, H, W)`` / ``(1, H, W)`` / ``(4, H, W)`` (torch convention, preferred when
      ambiguous) or ``(H, W, 3)`` / ``(H, W)``; moved to CPU and detached.
    * PIL images of any mode (converted like :func:`read_image`, but EXIF orientation is *not*
      applied).

    Accepted dtypes: ``uint8`` (as is), ``bool`` (0/255), ``uint16`` (``round(v / 257)``), other
    integer types when every value lies in [0, 255], and floats in [0, 1] (``round(v * 255)``).

    Args:
        image: The image.
        alpha: ``"drop"`` (default), ``"black"`` or ``"white"``, for 4-channel / alpha inputs.

    Returns:
        ``(H, W, 3)`` uint8 RGB array, C-contiguous. When the input is already such a numpy array
        it is returned as is (no copy), so it may share memory with the input.

    Raises:
        ValueError: wrong type, rank, channel count or dtype; NaN/inf or out-of-range values;
            zero height or width. The message says what was received and what to pass instead.
    """
    _check_alpha_mode(alpha)
    if isinstance(image, Image.Image):
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ValueError(
                f"The PIL image could not be decoded ({type(e).__name__}: {e}); the file behind it "
                "is truncated or corrupt. Re-export it, or load it with rapsam.io.read_image(path)."
            ) from e
        try:
            return _pil_to_rgb(image, alpha=alpha, origin="(PIL image)")
        except ImageReadError as e:
            raise ValueError(str(e)) from None
    torch = sys.modules.get("torch")
    from_torch = torch is not None and isinstance(image, torch.Tensor)
    if from_torch:
        image = _tensor_to_numpy(image)
    elif not isinstance(image, np.ndarray):
        if isinstance(image, (str, os.PathLike)):
            raise ValueError(
                f"as_rgb_array got a path ({image!r}); use rapsam.io.read_image(path) to load files."
            )
        raise ValueError(
            f"Expected an image as a numpy array, PIL image or torch tensor, got "
            f"{type(image).__name__}. Wrap data with np.asarray(...) or load files with read_image."
        )
    return _array_to_rgb(image, alpha=alpha, prefer_chw=from_torch)


def _tensor_to_numpy(t: Any) -> np.ndarray:
    t = t.detach()
    if t.is_complex():
        raise ValueError(f"Image tensors must be real, got dtype {t.dtype}.")
    t = t.cpu()
    if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16
        t = t.float()
    return t.numpy()


def _array_to_rgb(a: np.ndarray, *, alpha: AlphaMode, prefer_chw: bool) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]  # (H, W) -> (H, W, 1)
    elif a.ndim == 3:
        last_ok, first_ok = a.shape[-1] in (1, 3, 4), a.shape[0] in (1, 3, 4)
        if first_ok and (prefer_chw or not last_ok):
            a = np.moveaxis(a, 0, -1)  # (C, H, W) -> (H, W, C)
        elif not last_ok:
            raise ValueError(
                f"Cannot tell the channel axis of an image of shape {tuple(a.shape)}: expected "
                "(H, W, C) or (C, H, W) with C in {1, 3, 4}. For a batch, pass one image at a time."
            )
    else:
        hint = " For a batch or video, pass one frame at a time." if a.ndim == 4 else ""
        raise ValueError(
            f"Expected an image of shape (H, W), (H, W, C) or (C, H, W) with C in {{1, 3, 4}}, "
            f"got an array of rank {a.ndim} and shape {tuple(a.shape)}.{hint}"
        )
    h, w, c = a.shape
    if h == 0 or w == 0:
        raise ValueError(f"Image has zero size (height={h}, width={w}); pass a non-empty image.")
    a8 = _to_uint8(a)
    if c == 1:
        return np.ascontiguousarray(np.repeat(a8, 3, axis=-1))  # (H, W, 1) -> (H, W, 3)
    if c == 4:
        return _apply_alpha(a8[..., :3], a8[..., 3], alpha)
    return np.ascontiguousarray(a8)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    dt = a.dtype
    if dt == np.uint8:
        return a
    if dt == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if dt == np.uint16:
        return _uint16_to_uint8(a)
    if np.issubdtype(dt, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"Integer image of dtype {dt} has values in [{lo}, {hi}], outside [0, 255]. "
                "Pass uint8 (0-255), uint16 (0-65535) or float in [0, 1]; rescale your data first."
            )
        return a.astype(np.uint8)
    if np.issubdtype(dt, np.floating):
        f = a.astype(np.float64)
        finite = np.isfinite(f)
        if not finite.all():
            n_bad = int((~finite).sum())
            raise ValueError(
                f"Float image contains {n_bad} NaN/inf value(s). Fix the data (e.g. "
                "np.nan_to_num) before passing it."
            )
        lo, hi = float(f.min()), float(f.max())
        eps = 1e-6
        if lo < -eps or hi > 1.0 + eps:
            hint = " It looks like 0-255 data: divide by 255 or cast to uint8." if hi <= 255 else ""
            raise ValueError(
                f"Float images must be in [0, 1], got values in [{lo:g}, {hi:g}].{hint}"
            )
        return np.rint(np.clip(f, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(
        f"Unsupported image dtype {dt}; use uint8, uint16, bool, an integer type in [0, 255] or a "
        "float type in [0, 1]."
    )


# --------------------------------------------------------------------------------------------------
# Folders and writing
# --------------------------------------------------------------------------------------------------


def list_images(
    folder: str | os.PathLike[str], *, extensions: Sequence[str] | None = None
) -> list[Path]:
    """List the image files directly inside ``folder`` (not recursive), in natural order.

    Matching is by suffix, case-insensitively (``.JPG`` counts); hidden files (``.name``, such as
    macOS ``._frame.jpg`` resource forks) are skipped. Order is natural: ``frame2`` before
    ``frame10``.

    Args:
        folder: Directory to list.
        extensions: Suffixes to accept, e.g. ``[".png"]``; default :data:`IMAGE_EXTENSIONS`.

    Returns:
        Paths of the image files, naturally sorted.

    Raises:
        ValueError: The folder does not exist, is not a directory, or contains no image files (the
            message lists what it does contain).
    """
    d = Path(folder)
    if not d.exists():
        raise ValueError(f"Image folder not found: '{d}'. Check the path (cwd is '{Path.cwd()}').")
    if not d.is_dir():
        raise ValueError(
            f"'{d}' is a file, not a folder. Use rapsam.io.read_image(path) for one image or "
            "rapsam.io.open_frames(path) for a video."
        )
    exts = IMAGE_EXTENSIONS if extensions is None else frozenset(_norm_ext(e) for e in extensions)
    entries = [q for q in d.iterdir() if not q.name.startswith(".")]
    images = [q for q in entries if q.suffix.lower() in exts and q.is_file()]
    if not images:
        others = sorted({q.suffix.lower() or "(no suffix)" for q in entries if q.is_file()})
        subdirs = sorted(q.name for q in entries if q.is_dir())[:5]
        found = f"files with suffixes {others[:10]}" if others else "no files"
        sub = f"; sub-folders {subdirs} (listing is not recursive)" if subdirs else ""
        raise ValueError(
            f"No image files in '{d}' (looked for {sorted(exts)}); it holds {found}{sub}. "
            "Point to the folder that holds the frames, or pass extensions=[...]."
        )
    return sorted(images, key=natural_sort_key)


def _norm_ext(e: str) -> str:
    e = e.lower()
    return e if e.startswith(".") else "." + e


def write_png(path: str | os.PathLike[str], array: Any) -> Path:
    """Write an array to a PNG file atomically (temporary file in the same folder, then rename).

    The pixels are stored losslessly, as given: ``(H, W)`` uint8 -> 8-bit greyscale, ``(H, W)``
    bool -> 1-bit, ``(H, W)`` uint16 -> 16-bit greyscale, ``(H, W, 3)`` uint8 -> RGB,
    ``(H, W, 4)`` uint8 -> RGBA. A PIL image is saved in its own mode (when PNG supports it).
    A crash mid-write never leaves a partial file under ``path``: readers see the old file or
    the complete new one.

    Args:
        path: Destination; its folder must exist. The suffix is not checked.
        array: The image.

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: unsupported shape/dtype, empty image, or missing destination folder.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(
            f"write_png: '{p}' is a directory; pass a file path such as '{p / 'x.png'}'."
        )
    if not p.parent.is_dir():
        raise ValueError(
            f"write_png: folder '{p.parent}' does not exist; create it first "
            "(Path(...).mkdir(parents=True, exist_ok=True))."
        )
    img = array if isinstance(array, Image.Image) else _array_to_pil(array)
    if img.width == 0 or img.height == 0:
        raise ValueError(f"write_png: cannot write an empty image (size {img.size}) to '{p}'.")
    tmp = _tmp_sibling(p)
    try:
        with open(tmp, "xb") as f:
            img.save(f, format="PNG")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def _tmp_sibling(p: Path) -> Path:
    """A unique hidden temporary name next to ``p`` (same filesystem, so os.replace is atomic)."""
    return p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _array_to_pil(array: Any) -> Image.Image:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        array = _tensor_to_numpy(array)
    if not isinstance(array, np.ndarray):
        raise ValueError(  # noqa: TRY004 - house style: ValueError at the public boundary
            f"write_png expects a numpy array or PIL image, got {type(array).__name__}."
        )
    a = array
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]  # (H, W, 1) -> (H, W)
    if a.ndim == 2 and a.dtype in (np.uint8, np.bool_, np.uint16):
        if 0 in a.shape:
            raise ValueError(f"write_png: cannot write an empty image of shape {a.shape}.")
        if a.dtype == np.uint16:
            return Image.fromarray(np.ascontiguousarray(a))  # mode I;16
        return Image.fromarray(np.ascontiguousarray(a))
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.dtype == np.uint8:
        if 0 in a.shape:
            raise ValueError(f"write_png: cannot write an empty image of shape {a.shape}.")
        return Image.fromarray(np.ascontiguousarray(a))
    raise ValueError(
        f"write_png supports (H, W) uint8/bool/uint16, (H, W, 3) uint8 and (H, W, 4) uint8 arrays; "
        f"got shape {tuple(a.shape)} dtype {a.dtype}. Convert with rapsam.io.as_rgb_array(x) first."
    )
