"""Tests for rapsam.io.image: reading, converting, listing and writing images."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile

from rapsam.io import (
    ImageReadError,
    as_rgb_array,
    list_images,
    natural_sort_key,
    read_image,
    write_png,
)

RNG = np.random.default_rng(0)


def _rand_rgb(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_bytes(w: int, h: int, depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """Hand-built PNG (for 16-bit colour and zero-size headers Pillow cannot write)."""

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw_rows))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------
# read_image / write_png round trips and conversions
# --------------------------------------------------------------------------------------------------


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    a = _rand_rgb()
    p = write_png(tmp_path / "x.png", a)
    assert p == tmp_path / "x.png"
    out = read_image(p)
    assert out.dtype == np.uint8 and out.shape == a.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated: display = 90 deg clockwise
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, expected) -> None:
    a = _rand_rgb(6, 10)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(tmp_path / "o.png", exif=exif.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), expected(a))


def test_greyscale_L_and_1_bit(tmp_path: Path) -> None:
    g = np.array([[0, 50, 255]], np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(g[..., None], 3, -1))
    b = np.array([[True, False]])
    Image.fromarray(b).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(read_image(tmp_path / "b.png")[0, :, 0], [255, 0])


def test_16bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    v = np.array([[0, 257, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 4, 128, 255])  # round(v / 257)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_16bit_rgb_png_within_one_of_exact(tmp_path: Path) -> None:
    v = np.array([[[0, 32768, 65535], [2570, 51400, 1000]]], dtype=">u2")  # (1, 2, 3)
    (tmp_path / "c16.png").write_bytes(_png_bytes(2, 1, 16, 2, b"\x00" + v[0].tobytes()))
    out = read_image(tmp_path / "c16.png").astype(int)
    exact = np.rint(v.astype(np.float64) / 257)
    assert np.abs(out - exact).max() <= 1
    assert out[0, 0, 2] == 255 and out[0, 0, 0] == 0


def test_int32_and_float_tiff(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 65535, 32768]], np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "i.tif")[0, :, 0], [0, 255, 128])
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif")[0, :, 0], [0, 128, 255])
    # Outside [0, 1]: min..max rescale.
    Image.fromarray(np.array([[-2.0, 0.0, 2.0]], np.float32)).save(tmp_path / "f2.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "f2.tif")[0, :, 0], [0, 128, 255])


def test_rgba_alpha_modes(tmp_path: Path) -> None:
    a = np.array([[[200, 100, 50, 0], [200, 100, 50, 255], [200, 100, 50, 128]]], np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    drop = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(drop, a[..., :3])  # default: alpha dropped, RGB as stored
    black = read_image(tmp_path / "a.png", alpha="black")
    np.testing.assert_array_equal(black[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(black[0, 1], [200, 100, 50])
    np.testing.assert_array_equal(black[0, 2], np.rint(np.array([200, 100, 50]) * 128 / 255))
    white = read_image(tmp_path / "a.png", alpha="white")
    np.testing.assert_array_equal(white[0, 0], [255, 255, 255])
    with pytest.raises(ValueError, match="alpha must be one of"):
        read_image(tmp_path / "a.png", alpha="grey")  # type: ignore[arg-type]


def test_la_and_palette_with_transparency(tmp_path: Path) -> None:
    la = np.array([[[90, 0], [10, 255]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[0], [[90] * 3, [10] * 3])
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png")[0], [[255, 0, 0], [0, 255, 0]])
    np.testing.assert_array_equal(
        read_image(tmp_path / "p.png", alpha="black")[0], [[0, 0, 0], [0, 255, 0]]
    )


def test_cmyk_tiff(tmp_path: Path) -> None:
    cmyk = np.array(
        [[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255]]], np.uint8
    )
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.tif")
    assert Image.open(tmp_path / "c.tif").mode == "CMYK"
    np.testing.assert_array_equal(
        read_image(tmp_path / "c.tif")[0],
        [[255, 255, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0]],
    )


def test_ycbcr_pil_image() -> None:
    y = Image.fromarray(np.array([[[128, 128, 128], [76, 85, 255]]], np.uint8), "YCbCr")
    out = as_rgb_array(y).astype(int)
    np.testing.assert_array_equal(out[0, 0], [128, 128, 128])
    assert np.abs(out[0, 1] - [255, 0, 0]).max() <= 2  # BT.601 red


def test_multiframe_gif_gives_first_frame(tmp_path: Path) -> None:
    f0, f1 = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    Image.fromarray(f0).save(tmp_path / "a.gif", save_all=True, append_images=[Image.fromarray(f1)])
    np.testing.assert_array_equal(read_image(tmp_path / "a.gif"), f0)


# --------------------------------------------------------------------------------------------------
# read_image errors
# --------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    (tmp_path / "img.jpeg").write_bytes(b"x")
    with pytest.raises(ImageReadError, match=r"not found.*img\.jpg.*same stem.*img\.jpeg"):
        read_image(tmp_path / "img.jpg")


def test_not_a_path() -> None:
    with pytest.raises(ImageReadError, match="expects a file path.*as_rgb_array"):
        read_image(np.zeros((2, 2, 3), np.uint8))  # type: ignore[arg-type]


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="is a directory.*list_images"):
        read_image(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"e\.png.*empty \(0 bytes\)"):
        read_image(tmp_path / "e.png")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file(tmp_path: Path, fmt: str, keep: float) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rand_rgb(40, 50)).save(buf, fmt)
    data = buf.getvalue()
    p = tmp_path / f"t.{fmt.lower()}"
    p.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageReadError, match=r"truncated or corrupt"):
        read_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_jpeg_missing_end_marker_is_truncated(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rand_rgb(40, 50)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[:-2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "t.jpg")


def _corrupt(data: bytes, lo: int, hi: int, seed: int = 1) -> bytes:
    out = bytearray(data)
    out[lo:hi] = np.random.default_rng(seed).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    return bytes(out)


def test_corrupt_png_middle(tmp_path: Path) -> None:
    # PNG chunks carry CRCs and zlib checksums, so garbage anywhere in the data is detected.
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 80, 3), np.uint8)).save(
        buf, "PNG"
    )
    n = len(buf.getvalue())
    (tmp_path / "c.png").write_bytes(_corrupt(buf.getvalue(), n // 3, 2 * n // 3))
    with pytest.raises(ImageReadError, match=r"c\.png.*truncated or corrupt"):
        read_image(tmp_path / "c.png")


def test_corrupt_jpeg_header(tmp_path: Path) -> None:
    # JPEG has no checksums: garbage inside the entropy-coded data may decode with artefacts
    # (documented). Garbage over the header tables is always an error.
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 80, 3), np.uint8)).save(
        buf, "JPEG"
    )
    (tmp_path / "c.jpg").write_bytes(_corrupt(buf.getvalue(), 20, 200, seed=0))
    with pytest.raises(ImageReadError, match=r"Cannot (read|decode) '.*c\.jpg'"):
        read_image(tmp_path / "c.jpg")


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is text\n" * 20,
        bytes(np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8)),
    ],
)
def test_unsupported_format(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(ImageReadError, match=r"x\.png.*does not recognise its format"):
        read_image(tmp_path / "x.png")


def test_zero_size_png(tmp_path: Path) -> None:
    (tmp_path / "z.png").write_bytes(_png_bytes(0, 5, 8, 2, b""))
    with pytest.raises(ImageReadError, match="zero width/height"):
        read_image(tmp_path / "z.png")


def test_zero_size_pil_image_rejected() -> None:
    with pytest.raises(ValueError, match="zero size"):
        as_rgb_array(Image.new("RGB", (0, 3)))


# --------------------------------------------------------------------------------------------------
# as_rgb_array
# --------------------------------------------------------------------------------------------------


def _reference_uint8(a: np.ndarray) -> np.ndarray:
    """Independent statement of the documented dtype rules."""
    if a.dtype == np.bool_:
        return np.where(a, 255, 0).astype(np.uint8)
    if a.dtype == np.uint16:
        return np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return np.round(a.astype(np.float64) * 255.0).astype(np.uint8)
    return a.astype(np.uint8)


_dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.bool_, np.int64])


@st.composite
def _images(draw):
    dtype = draw(_dtypes)
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    c = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (h, w) if c is None else (h, w, c)
    if dtype in (np.float32, np.float64):
        elements = st.floats(0.0, 1.0, width=32)
    elif dtype == np.int64:
        elements = st.integers(0, 255)
    else:
        elements = None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=150, deadline=None)
@given(_images())
def test_as_rgb_array_property(a: np.ndarray) -> None:
    out = as_rgb_array(a)
    assert out.shape == (a.shape[0], a.shape[1], 3) and out.dtype == np.uint8
    ref = _reference_uint8(a)
    if ref.ndim == 2:
        ref = ref[..., None]
    if ref.shape[-1] == 1:
        ref = np.repeat(ref, 3, -1)
    np.testing.assert_array_equal(out, ref[..., :3])  # 4 channels: alpha dropped


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5), st.just(3))))
def test_chw_and_hwc_agree(a: np.ndarray) -> None:
    np.testing.assert_array_equal(as_rgb_array(torch.from_numpy(a).permute(2, 0, 1)), a)
    np.testing.assert_array_equal(as_rgb_array(Image.fromarray(a)), a)
    np.testing.assert_array_equal(as_rgb_array(a), a)  # numpy: (H, W, 3) wins when ambiguous
    if a.shape[0] not in (1, 3, 4):  # unambiguous (H, W, 3) tensor
        np.testing.assert_array_equal(as_rgb_array(torch.from_numpy(a)), a)


def test_ambiguous_tensor_is_read_as_chw() -> None:
    t = torch.arange(27, dtype=torch.uint8).reshape(3, 3, 3)
    np.testing.assert_array_equal(as_rgb_array(t), t.permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(as_rgb_array(t.numpy()), t.numpy())


def test_torch_inputs() -> None:
    a = _rand_rgb(5, 7)
    t = torch.from_numpy(a).permute(2, 0, 1).float().div(255).requires_grad_(True)  # (3, H, W)
    np.testing.assert_array_equal(as_rgb_array(t), a)
    np.testing.assert_array_equal(as_rgb_array(torch.from_numpy(a)), a)  # (H, W, 3)
    np.testing.assert_array_equal(as_rgb_array(torch.from_numpy(a).bfloat16() / 255).shape, a.shape)
    g = torch.tensor([[0, 255]], dtype=torch.uint8)
    np.testing.assert_array_equal(as_rgb_array(g)[0], [[0, 0, 0], [255, 255, 255]])


def test_numpy_chw_when_unambiguous() -> None:
    a = _rand_rgb(5, 7)
    np.testing.assert_array_equal(as_rgb_array(np.ascontiguousarray(a.transpose(2, 0, 1))), a)


def test_uint8_hwc_is_returned_without_copy() -> None:
    a = _rand_rgb()
    assert as_rgb_array(a) is a


def test_rgba_array_alpha_composite() -> None:
    a = np.array([[[10, 20, 30, 0]]], np.uint8)
    np.testing.assert_array_equal(as_rgb_array(a)[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(as_rgb_array(a, alpha="white")[0, 0], [255, 255, 255])


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4,), np.uint8), "rank 1"),
        (np.zeros((2, 4, 4, 3), np.uint8), "rank 4.*one frame at a time"),
        (np.zeros((5, 6, 2), np.uint8), "channel axis"),
        (np.zeros((5, 6, 5), np.uint8), "channel axis"),
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((4, 0), np.uint8), "zero size"),
        (np.array([[np.nan, 0.5]]), "1 NaN/inf"),
        (np.array([[np.inf, 0.5]], np.float32), "NaN/inf"),
        (np.array([[0.0, 200.0]]), r"\[0, 1\].*divide by 255"),
        (np.array([[-0.5, 0.5]]), r"\[0, 1\]"),
        (np.array([[-1, 5]], np.int64), r"outside \[0, 255\]"),
        (np.array([[300]], np.int32), r"outside \[0, 255\]"),
        (np.array([[1 + 1j]]), "Unsupported image dtype"),
        (np.array([["a"]]), "Unsupported image dtype"),
        ([[0, 1], [2, 3]], "got list"),
        ("img.png", "read_image"),
        (None, "got NoneType"),
    ],
)
def test_as_rgb_array_errors(bad, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        as_rgb_array(bad)


def test_truncated_pil_image_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rand_rgb(40, 50)).save(buf, "PNG")
    img = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 2]))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        as_rgb_array(img)


# --------------------------------------------------------------------------------------------------
# list_images / natural sort
# --------------------------------------------------------------------------------------------------


def test_list_images_natural_case_insensitive(tmp_path: Path) -> None:
    names = ["frame10.png", "frame2.JPG", "frame1.Png", "frame100.jpeg", "Frame3.tif"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    for n in ["notes.txt", ".hidden.png", "._frame0.jpg", "video.mp4"]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a directory with an image suffix is not an image
    got = [p.name for p in list_images(tmp_path)]
    assert got == ["frame1.Png", "frame2.JPG", "Frame3.tif", "frame10.png", "frame100.jpeg"]
    assert [p.name for p in list_images(tmp_path, extensions=["png"])] == [
        "frame1.Png",
        "frame10.png",
    ]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "frames").mkdir()
    with pytest.raises(ValueError, match=r"No image files.*\.txt.*frames.*not recursive"):
        list_images(tmp_path)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        list_images(tmp_path / "a.txt")


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(["f", "frame_", "IMG"]))
def test_natural_sort_key_orders_numbers(a: int, b: int, prefix: str) -> None:
    ka, kb = natural_sort_key(f"{prefix}{a}.png"), natural_sort_key(f"{prefix}{b}.png")
    assert (ka < kb) == (a < b)


@given(st.lists(st.text(max_size=8), max_size=6))
def test_natural_sort_key_never_fails(names: list[str]) -> None:
    # Arbitrary text (including unicode digits such as superscripts) must sort without TypeError.
    s = sorted(names, key=natural_sort_key)
    assert sorted(s, key=natural_sort_key) == s


def test_natural_sort_mixed_names_is_total() -> None:
    names = ["a", "1", "a1", "a01", "A1", "a1b2", "a1b10", "b", "10"]
    s = sorted(names, key=natural_sort_key)
    assert s.index("a1b2") < s.index("a1b10")
    assert s.index("1") < s.index("10") < s.index("a")
    rotated = names[4:] + names[:4]
    assert sorted(rotated, key=natural_sort_key) == s  # input-order independent


# --------------------------------------------------------------------------------------------------
# write_png
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arr", "mode"),
    [
        (np.arange(12, dtype=np.uint8).reshape(3, 4), "L"),
        (np.arange(12, dtype=np.uint8).reshape(3, 4, 1), "L"),
        (np.eye(3, dtype=bool), "1"),
        (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000, "I;16"),
        (RNG.integers(0, 256, (3, 4, 4), dtype=np.uint8), "RGBA"),
    ],
)
def test_write_png_lossless_modes(tmp_path: Path, arr: np.ndarray, mode: str) -> None:
    p = write_png(tmp_path / "m.png", arr)
    with Image.open(p) as im:
        assert im.mode == mode
        expected = arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr
        np.testing.assert_array_equal(np.asarray(im), expected)


def test_write_png_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "out.png"
    old = _rand_rgb()
    write_png(p, old)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temp files left

    def boom(self, fp, *a, **k):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_png(p, _rand_rgb())
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(p), old)  # old content intact
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # temp file removed


def test_write_png_overwrites(tmp_path: Path) -> None:
    p = tmp_path / "o.png"
    write_png(p, _rand_rgb())
    new = _rand_rgb()
    write_png(str(p), new)
    np.testing.assert_array_equal(read_image(p), new)


@pytest.mark.parametrize(
    ("arr", "match"),
    [
        (np.zeros((3, 4), np.float32), "supports"),
        (np.zeros((3, 4, 3), np.uint16), "supports"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        ([1, 2], "numpy array or PIL image"),
    ],
)
def test_write_png_errors(tmp_path: Path, arr, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_png(tmp_path / "x.png", arr)
    assert os.listdir(tmp_path) == []


def test_write_png_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist; create it"):
        write_png(tmp_path / "no" / "x.png", _rand_rgb())
    with pytest.raises(ValueError, match="is a directory"):
        write_png(tmp_path, _rand_rgb())
