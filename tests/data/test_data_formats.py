"""Property tests of the RLE / polygon / panoptic-id codecs against pycocotools and panopticapi."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from panopticapi.utils import id2rgb as pa_id2rgb
from panopticapi.utils import rgb2id as pa_rgb2id
from pycocotools import mask as mask_utils

from rapsam.data.formats import (
    MAX_PANOPTIC_ID,
    id_to_rgb,
    mask_to_bbox,
    polygons_to_mask,
    rgb_to_id,
    rle_counts_from_string,
    rle_counts_to_string,
    rle_decode,
    rle_encode,
    segmentation_to_mask,
    validate_polygons,
)

FAST = settings(max_examples=60, deadline=None)


@st.composite
def masks(draw, max_side: int = 20) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    mode = draw(st.sampled_from(["random", "blocky", "empty", "full"]))
    if mode == "empty":
        return np.zeros((h, w), bool)
    if mode == "full":
        return np.ones((h, w), bool)
    m = draw(arrays(np.bool_, (h, w)))
    if mode == "blocky":  # long runs exercise multi-character counts
        m = np.repeat(np.repeat(m, 3, 0), 3, 1)[:h, :w]
    return m


# ------------------------------------------------------------------------------------ RLE


@FAST
@given(masks())
def test_rle_roundtrip_both_forms(m):
    for compressed in (True, False):
        rle = rle_encode(m, compressed=compressed)
        assert rle["size"] == list(m.shape)
        assert isinstance(rle["counts"], str if compressed else list)
        out = rle_decode(rle)
        assert out.dtype == bool and np.array_equal(out, m)


@FAST
@given(masks())
def test_rle_matches_pycocotools(m):
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    ours = rle_encode(m)
    assert ours["counts"] == ref["counts"].decode("ascii")
    # pycocotools decodes our string, we decode its bytes
    assert np.array_equal(mask_utils.decode({"size": ours["size"], "counts": ours["counts"]}), m)
    assert np.array_equal(rle_decode(ref), m)
    # uncompressed RLE as COCO writes it for crowds: pycocotools converts it with frPyObjects
    unc = rle_encode(m, compressed=False)
    h, w = m.shape
    assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(unc, h, w)), m)


@FAST
@given(st.lists(st.integers(0, 2**40), max_size=30))
def test_counts_string_roundtrip(counts):
    s = rle_counts_to_string(counts)
    assert all(48 <= ord(c) < 112 for c in s)
    assert rle_counts_from_string(s) == counts
    assert rle_counts_from_string(s.encode("ascii")) == counts


@pytest.mark.parametrize(
    "rle, message",
    [
        ({"size": [2, 2], "counts": [1, 2]}, "sum to 3"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, "non-negative"),
        ({"size": [2, 2], "counts": [1.0, 3]}, "non-negative ints"),
        ({"size": [2, 2], "counts": "0~"}, "outside the COCO alphabet"),
        ({"size": [2, 2], "counts": "0P"}, "truncated"),
        ({"size": [2, 2], "counts": 4}, "string"),
        ({"size": [2], "counts": [4]}, "'size'"),
        ({"size": [2, 2]}, "dict with 'size'"),
        ([1, 2], "dict with 'size'"),
    ],
)
def test_invalid_rle_is_rejected(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle)


def test_rle_string_with_negative_run_is_rejected():
    # runs 3, 1, 5 then a 4th character coding the difference -10: 1 - 10 < 0
    s = rle_counts_to_string([3, 1, 5, 2])[:-1] + rle_counts_to_string([0, 0, 0, -10])[-1:]
    assert len(s) == 4
    with pytest.raises(ValueError, match="negative length"):
        rle_decode({"size": [1, 11], "counts": s})


def test_rle_encode_rejects_non_2d():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        rle_encode(np.zeros((2, 2, 2), bool))


# ------------------------------------------------------------------------------ panoptic id


@FAST
@given(
    arrays(
        np.int64,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.integers(0, MAX_PANOPTIC_ID),
    )
)
def test_panoptic_id_roundtrip_and_panopticapi_parity(ids):
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == ids.shape + (3,)
    assert np.array_equal(rgb_to_id(rgb), ids)
    assert np.array_equal(rgb, pa_id2rgb(ids))
    assert np.array_equal(rgb_to_id(rgb), pa_rgb2id(rgb))


def test_panoptic_id_encoding_is_r_plus_256g_plus_65536b():
    assert rgb_to_id(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 1 + 2 * 256 + 3 * 65536


@pytest.mark.parametrize("bad", [-1, MAX_PANOPTIC_ID + 1])
def test_id_to_rgb_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="renumber"):
        id_to_rgb(np.array([[bad]]))


def test_rgb_to_id_rejects_single_channel():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        rgb_to_id(np.zeros((4, 4), np.uint8))


# ------------------------------------------------------------------------------- polygons


coords = st.floats(-5.0, 30.0, allow_nan=False, allow_infinity=False)


@FAST
@given(
    st.lists(
        st.lists(coords, min_size=6, max_size=16).filter(lambda p: len(p) % 2 == 0),
        min_size=1,
        max_size=3,
    ),
    st.integers(1, 24),
    st.integers(1, 24),
)
def test_polygons_match_pycocotools(polys, h, w):
    ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w))).astype(bool)
    assert np.array_equal(polygons_to_mask(polys, h, w), ref)
    assert np.array_equal(segmentation_to_mask(polys, h, w), ref)


@FAST
@given(st.lists(st.lists(coords, max_size=12).filter(lambda p: len(p) % 2 == 0), max_size=5))
def test_validate_polygons_drops_only_degenerate(polys):
    kept, dropped = validate_polygons(polys)
    assert dropped == sum(len(p) < 6 for p in polys)
    assert kept == [p for p in polys if len(p) >= 6]


@pytest.mark.parametrize(
    "polys, message",
    [
        ({"x": 1}, "list of"),
        ([[0, 0, 1, 1, 2]], "odd number"),
        ([[0, 0, 1, math.nan, 2, 2]], "non-finite"),
        ([[0, 0, 1, "1", 2, 2]], "not a number"),
        ([[0, 0, 1, True, 2, 2]], "not a number"),
        ([(0, 0, 1, 1, 2, 2)], "flat list"),
    ],
)
def test_malformed_polygons_are_rejected(polys, message):
    with pytest.raises(ValueError, match=message):
        validate_polygons(polys)


def test_polygons_to_mask_rejects_short_polygon():
    # pycocotools would read a 4-number "polygon" as a box; we refuse it
    with pytest.raises(ValueError, match=">= 6"):
        polygons_to_mask([[0, 0, 5, 5]], 8, 8)


def test_segmentation_to_mask_rejects_rle_of_other_size():
    rle = rle_encode(np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="does not match"):
        segmentation_to_mask(rle, 4, 3)


# ----------------------------------------------------------------------------------- boxes


@FAST
@given(masks())
def test_mask_to_bbox_matches_pycocotools(m):
    box = mask_to_bbox(m)
    if not m.any():
        assert box == [0, 0, 0, 0]
        return
    ref = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(m.astype(np.uint8))))
    assert box == [int(v) for v in ref]
    x, y, w, h = box
    assert m[y : y + h, x : x + w].sum() == m.sum()
