"""Tests for rapsam.visualize: pixel-level checks of overlays, markers, legends and panels."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from rapsam import visualize as vis
from rapsam.visualize import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    color_for_id,
    draw_masks,
    draw_panoptic,
    draw_prompts,
    draw_semantic,
    hstack_images,
    legend,
    palette,
)

GREY = 100


def grey(h: int = 48, w: int = 64, value: int = GREY) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def rect_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def inner_boundary(m: np.ndarray, width: int = 1) -> np.ndarray:
    return m & ~ndimage.binary_erosion(m, iterations=width, border_value=0)


def blend(base: int, color: np.ndarray, alpha: float) -> np.ndarray:
    return np.round(base * (1 - alpha) + color.astype(np.float64) * alpha).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# palette / color_for_id
# ---------------------------------------------------------------------------------------------


def test_palette_shape_dtype_and_determinism():
    p = palette(20)
    assert p.shape == (20, 3) and p.dtype == np.uint8
    np.testing.assert_array_equal(p, palette(20))
    np.testing.assert_array_equal(palette(7), p[:7])  # prefixes are stable
    assert palette(0).shape == (0, 3)
    assert not np.array_equal(palette(10, seed=1), palette(10, seed=0))


def test_palette_first_50_are_well_separated_and_not_dark():
    p = palette(50).astype(np.float64)
    d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))  # (50, 50)
    d[np.eye(50, dtype=bool)] = np.inf
    assert d.min() > 30.0, d.min()
    assert palette(8).astype(float).max(1).min() >= 0.8 * 255 - 1  # value >= 0.8
    q = palette(8).astype(np.float64)
    dq = np.sqrt(((q[:, None] - q[None]) ** 2).sum(-1)) + np.eye(8) * 1e9
    assert dq.min() > 70.0  # the first few colours are very different


def test_color_for_id_is_stable_and_matches_palette():
    assert color_for_id(5) == color_for_id(5)
    assert color_for_id(5) == tuple(int(c) for c in palette(6)[5])
    assert color_for_id(np.int64(12)) == color_for_id(12)
    assert color_for_id(3) != color_for_id(4)
    big = color_for_id(10**9)
    assert len(big) == 3 and all(0 <= c <= 255 for c in big)
    assert color_for_id(-3) == color_for_id(-3)
    with pytest.raises(ValueError, match="int"):
        color_for_id(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        palette(-1)


# ---------------------------------------------------------------------------------------------
# draw_masks: fills, contours, colours
# ---------------------------------------------------------------------------------------------


def test_fill_moves_interior_towards_colour_and_leaves_outside_unchanged():
    img = grey()
    m = rect_mask(48, 64, 10, 30, 12, 40)
    color = np.array([[250, 20, 20]], dtype=np.uint8)
    out = draw_masks(img, m[None], colors=color, alpha=0.5, contour_width=1)
    interior = ndimage.binary_erosion(m, border_value=0)
    expected = np.broadcast_to(blend(GREY, color[0], 0.5), (interior.sum(), 3))
    np.testing.assert_array_equal(out[interior], expected)
    before = np.abs(img[interior].astype(int) - color[0]).sum(1)
    after = np.abs(out[interior].astype(int) - color[0]).sum(1)
    assert np.all(after < before)
    np.testing.assert_array_equal(out[~m], img[~m])
    assert out.dtype == np.uint8 and out.shape == img.shape


def test_input_image_not_modified():
    img = grey()
    keep = img.copy()
    draw_masks(img, rect_mask(48, 64, 5, 20, 5, 20)[None], labels=["x"], boxes=[[5, 5, 20, 20]])
    np.testing.assert_array_equal(img, keep)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_contour_pixels_are_exactly_the_inner_boundary(width):
    h, w = 40, 50
    yy, xx = np.mgrid[:h, :w]
    m = ((yy - 20) ** 2 + (xx - 18) ** 2 < 11**2) | rect_mask(h, w, 5, 15, 25, 49)
    color = np.array([[10, 240, 200]], dtype=np.uint8)
    out = draw_masks(grey(h, w), m[None], colors=color, alpha=0.5, contour_width=width)
    is_color = np.all(out == color[0], axis=-1)
    np.testing.assert_array_equal(is_color, inner_boundary(m, width))


def test_contour_closes_along_image_edge_and_can_be_disabled():
    m = rect_mask(20, 20, 0, 10, 0, 20)  # touches top, left and right edges
    color = np.array([[0, 0, 255]], dtype=np.uint8)
    out = draw_masks(grey(20, 20), m[None], colors=color, contour_width=1)
    assert np.all(out[0, :] == color[0])  # image-edge row is contour
    off = draw_masks(grey(20, 20), m[None], colors=color, contours=False)
    assert not np.any(np.all(off == color[0], axis=-1))


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, (12, 14)))
def test_contour_property_random_masks(m):
    color = np.array([[255, 0, 255]], dtype=np.uint8)
    out = draw_masks(grey(12, 14), m[None], colors=color, alpha=0.3, contour_width=1)
    np.testing.assert_array_equal(np.all(out == color[0], axis=-1), inner_boundary(m))
    np.testing.assert_array_equal(out[~m], GREY)


def test_two_masks_get_different_colours_and_later_is_on_top():
    a = rect_mask(48, 64, 5, 25, 5, 30)
    b = rect_mask(48, 64, 15, 40, 20, 60)
    out = draw_masks(grey(), np.stack([a, b]), alpha=0.6, contours=False)
    pa, pb = out[8, 8], out[35, 55]  # only-a, only-b
    assert not np.array_equal(pa, pb)
    p = palette(2)
    np.testing.assert_array_equal(pa, blend(GREY, p[0], 0.6))
    np.testing.assert_array_equal(out[20, 25], blend(GREY, p[1], 0.6))  # overlap -> b on top


def test_ids_give_stable_colours_across_frames():
    a = rect_mask(30, 30, 2, 12, 2, 12)
    b = rect_mask(30, 30, 16, 28, 16, 28)
    f1 = draw_masks(grey(30, 30), np.stack([a, b]), ids=[7, 42], contour_width=1, show_tags=False)
    f2 = draw_masks(grey(30, 30), np.stack([b, a]), ids=[42, 7], contour_width=1, show_tags=False)
    np.testing.assert_array_equal(f1, f2)
    assert tuple(f1[2, 5]) == color_for_id(7)  # contour pixel has the id's colour
    assert tuple(f1[16, 20]) == color_for_id(42)
    tagged = draw_masks(grey(30, 30), np.stack([a, b]), ids=[7, 42], contour_width=1)
    assert np.any(tagged != f1)  # "#7" / "#42" tags are drawn by default


def test_explicit_colors_and_single_2d_mask_and_int_masks():
    m = rect_mask(20, 20, 5, 15, 5, 15)
    out_bool = draw_masks(grey(20, 20), m, colors=[(1, 2, 3)], contour_width=1)
    m_u8 = m[None].astype(np.uint8)
    out_int = draw_masks(grey(20, 20), m_u8, colors=[(1, 2, 3)], contour_width=1)
    np.testing.assert_array_equal(out_bool, out_int)
    assert tuple(out_bool[5, 10]) == (1, 2, 3)


def test_zero_masks_returns_unchanged_copy():
    img = grey()
    for empty in (np.zeros((0, 48, 64), bool), [], np.zeros(0)):
        out = draw_masks(img, empty, labels=[], scores=np.zeros(0))
        np.testing.assert_array_equal(out, img)
        assert out is not img


def test_boxes_drawn_in_mask_colour():
    m = rect_mask(48, 64, 10, 20, 10, 20)
    color = np.array([[255, 128, 0]], dtype=np.uint8)
    box = np.array([[5, 5, 40, 30]])
    out = draw_masks(grey(), m[None], colors=color, boxes=box, contour_width=1)
    assert tuple(out[5, 25]) == (255, 128, 0)  # top edge, outside the mask
    assert tuple(out[30, 40]) == (255, 128, 0)  # bottom-right corner
    assert tuple(out[25, 30]) == (GREY,) * 3  # inside the box, outside the mask


# ---------------------------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------------------------


def _render_tags(img, masks, tags, position="top_left", boxes=None):
    n = len(masks)
    return vis._render(
        img,
        masks,
        palette(n),
        np.full(n, 0.5),
        np.full(n, 1),
        boxes,
        1,
        tags,
        position,
        np.full(n, 0.65),
        None,
    )


def test_format_tag():
    assert vis._format_tag(3, "cat", 0.934) == "#3 cat 0.93"
    assert vis._format_tag(None, "cat", 0.5) == "cat 0.50"
    assert vis._format_tag(None, None, None) == ""


@pytest.mark.parametrize("corner", ["tl", "br", "tr", "bl"])
def test_tag_stays_inside_image_and_has_dark_background(corner):
    h, w = 60, 80
    ys = slice(0, 4) if corner[0] == "t" else slice(h - 4, h)
    xs = slice(0, 4) if corner[1] == "l" else slice(w - 4, w)
    m = np.zeros((1, h, w), bool)
    m[0, ys, xs] = True
    img = grey(h, w, 230)
    out, rects = _render_tags(img, m, ["person 0.93"])
    ((x0, y0, x1, y1),) = rects
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    region = out[y0:y1, x0:x1]
    assert region.mean() < 150  # dark box on a light image
    assert region.max() >= 200  # white text on it
    # Through the public API too: the tag changes pixels outside the mask.
    pub = draw_masks(img, m, labels=["person"], scores=[0.93])
    assert np.any(pub[~m[0]] != 230)


def test_tag_is_readable_width_and_font_scales_with_image():
    small = vis._auto_font_size(64, 64)
    large = vis._auto_font_size(1080, 1920)
    assert small < large <= 32 and small >= 10
    m = rect_mask(200, 300, 50, 150, 50, 250)[None]
    _, rects = _render_tags(grey(200, 300), m, ["a much longer label 0.99"])
    _, rects_short = _render_tags(grey(200, 300), m, ["a"])
    assert rects[0][2] - rects[0][0] > rects_short[0][2] - rects_short[0][0]


def test_center_tag_lies_on_the_mask_for_l_shape():
    h, w = 120, 120
    # An "L" whose bounding-box centre is off the mask.
    m = rect_mask(h, w, 0, 120, 0, 30) | rect_mask(h, w, 90, 120, 0, 120)
    _, (rect,) = _render_tags(grey(h, w), m[None], ["L"], position="center")
    cx, cy = (rect[0] + rect[2]) // 2, (rect[1] + rect[3]) // 2
    assert m[cy, cx]


def test_tags_of_coincident_masks_do_not_overlap():
    m = rect_mask(100, 100, 40, 90, 30, 90)
    _, rects = _render_tags(grey(100, 100), np.stack([m, m]), ["first", "second"])
    assert not vis._overlaps(rects[0], rects[1])


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-500, 500),
    st.floats(-500, 500),
    st.integers(1, 100),
    st.integers(1, 100),
    st.integers(1, 100),
    st.integers(1, 100),
)
def test_place_tag_property(ax, ay, tw, th, w, h):
    x, y = vis._place_tag((ax, ay), (tw, th), (w, h))
    assert 0 <= x and 0 <= y
    if tw <= w:
        assert x + tw <= w
    if th <= h:
        assert y + th <= h
    if 0 <= round(ax) and round(ax) + tw <= w and 0 <= round(ay) and round(ay) + th <= h:
        assert (x, y) == (round(ax), round(ay))


def test_tiny_image_with_tags_does_not_crash():
    img = np.zeros((8, 8, 3), np.uint8)
    m = np.ones((2, 8, 8), bool)
    boxes = [[0, 0, 7, 7]] * 2
    out = draw_masks(img, m, labels=["person", "dog"], scores=[0.9, 0.1], ids=[1, 2], boxes=boxes)
    assert out.shape == (8, 8, 3)
    out = draw_masks(np.zeros((1, 1, 3), np.uint8), np.ones((1, 1, 1), bool), labels=["x"])
    assert out.shape == (1, 1, 3)
    assert draw_prompts(img, [[4, 4]], [1]).shape == (8, 8, 3)


def test_many_masks_are_fine_and_fast():
    rng = np.random.default_rng(0)
    h, w = 96, 128
    masks = np.zeros((300, h, w), bool)
    for i in range(300):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        masks[i, y : y + 8, x : x + 8] = True
    t0 = time.perf_counter()
    labels = [f"c{i}" for i in range(300)]
    out = draw_masks(grey(h, w), masks, labels=labels, scores=rng.random(300))
    assert time.perf_counter() - t0 < 10.0
    assert out.shape == (h, w, 3)
    # 300 masks -> 300 colours drawn; at least many distinct colours survive on contours.
    assert len(np.unique(out.reshape(-1, 3), axis=0)) > 100


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------


def test_wrong_mask_size_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(N, 48, 64\).*\(1, 40, 64\)"):
        draw_masks(grey(), np.zeros((1, 40, 64), bool))
    with pytest.raises(ValueError, match="shape"):
        draw_masks(grey(), np.zeros((1, 1, 48, 64), bool))


@pytest.mark.parametrize(
    "image, pattern",
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), r"img\[\.\.\., :3\]"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_raise_clear_errors(image, pattern):
    with pytest.raises(ValueError, match=pattern):
        draw_masks(image, np.zeros((0, 8, 8), bool))
    with pytest.raises(ValueError, match=pattern):
        draw_prompts(image, [[1, 1]], [1])


def test_bad_mask_values_and_per_item_lengths_raise():
    m = np.zeros((2, 48, 64), bool)
    with pytest.raises(ValueError, match="threshold"):
        draw_masks(grey(), np.full((1, 48, 64), 0.3, np.float32))
    ok = draw_masks(grey(), np.ones((1, 48, 64), np.float32))  # 0/1 floats are fine
    assert ok.shape == (48, 64, 3)
    with pytest.raises(ValueError, match="labels has 1 entries but there are 2"):
        draw_masks(grey(), m, labels=["a"])
    with pytest.raises(ValueError, match="scores"):
        draw_masks(grey(), m, scores=np.zeros(3))
    with pytest.raises(ValueError, match="ids"):
        draw_masks(grey(), m, ids=[1])
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        draw_masks(grey(), m, boxes=np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        draw_masks(grey(), m, colors=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        draw_masks(grey(), m, colors=np.full((2, 3), 300))
    with pytest.raises(ValueError, match="alpha"):
        draw_masks(grey(), m, alpha=1.5)
    with pytest.raises(ValueError, match="tag_position"):
        draw_masks(grey(), m, tag_position="bottom")
    with pytest.raises(ValueError, match="NaN"):
        draw_masks(grey(), m, boxes=np.full((2, 4), np.nan))


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    m = rect_mask(20, 20, 5, 15, 5, 15)
    a = draw_masks(grey(20, 20), m[None], scores=np.array([0.5]))
    b = draw_masks(
        torch.from_numpy(grey(20, 20)), torch.from_numpy(m[None]), scores=torch.tensor([0.5])
    )
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# draw_prompts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["star", "circle"])
def test_prompt_markers_have_the_right_colours(marker):
    img = grey(80, 80)
    pts = np.array([[20, 20], [60, 50], [40, 70]])
    out = draw_prompts(img, pts, np.array([1, 0, -1]), marker=marker, marker_size=6)
    assert tuple(out[20, 20]) == POSITIVE_COLOR  # (row=y, col=x)
    assert tuple(out[50, 60]) == NEGATIVE_COLOR
    assert tuple(out[70, 40]) == (GREY,) * 3  # label -1 skipped
    # White outline just outside the fill, directly above the click.
    column = out[:20, 20]
    assert np.any(np.all(column == 255, axis=-1))
    assert np.array_equal(out[0:5, 70:80], img[0:5, 70:80])  # far away unchanged


def test_prompt_boxes_and_defaults():
    img = grey(60, 60)
    out = draw_prompts(img, boxes=np.array([10, 10, 50, 40]))
    assert tuple(out[10, 30]) == POSITIVE_COLOR
    assert tuple(out[25, 30]) == (GREY,) * 3
    out2 = draw_prompts(img, np.array([[30.0, 30.0]]))  # labels default to positive
    assert tuple(out2[30, 30]) == POSITIVE_COLOR
    np.testing.assert_array_equal(draw_prompts(img), img)  # nothing to draw


def test_prompt_bad_inputs():
    with pytest.raises(ValueError, match="one label"):
        draw_prompts(grey(), [[1, 1], [2, 2]], [1])
    with pytest.raises(ValueError, match=r"-1"):
        draw_prompts(grey(), [[1, 1]], [2])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        draw_prompts(grey(), np.zeros((2, 3)), [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        draw_prompts(grey(), [[np.nan, 1]], [1])
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        draw_prompts(grey(), boxes=np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# draw_panoptic / draw_semantic
# ---------------------------------------------------------------------------------------------


def _panoptic_fixture():
    h, w = 60, 80
    seg = np.zeros((h, w), np.int32)  # 0 = void
    seg[:30] = 5  # stuff "sky"
    seg[35:55, 10:40] = 11  # thing "car"
    seg[35:55, 45:75] = 12  # thing "person"
    segments = [
        {"id": 5, "category_id": 2, "isthing": False},
        SimpleNamespace(id=11, label_name="car", is_thing=True, score=0.9),
        {"id": 12, "name": "person", "is_thing": True, "score": 0.8},
    ]
    return seg, segments


def test_panoptic_things_stuff_and_void():
    seg, segments = _panoptic_fixture()
    img = grey(60, 80)
    out = draw_panoptic(
        img,
        seg,
        segments,
        class_names=["a", "b", "sky"],
        alpha=0.6,
        stuff_alpha=0.3,
        show_tags=False,
    )
    void = seg == 0
    np.testing.assert_array_equal(out[void], img[void])
    car = seg == 11
    car_c = np.array(color_for_id(11))
    is_c = np.all(out == car_c, axis=-1)
    assert np.all(is_c[inner_boundary(car, 2)])  # things have contours
    np.testing.assert_array_equal(out[45, 20], blend(GREY, car_c, 0.6))
    sky_c = np.array(color_for_id(5))
    np.testing.assert_array_equal(out[29, 79], blend(GREY, sky_c, 0.3))  # stuff: no contour
    assert not np.array_equal(out[45, 20], out[45, 60])  # two things, two colours


def test_panoptic_tags_present_and_errors():
    seg, segments = _panoptic_fixture()
    img = grey(60, 80)
    with_tags = draw_panoptic(img, seg, segments, class_names=["a", "b", "sky"])
    # Compare against the same overlay without names/scores: tags change pixels.
    bare = [{"id": 5, "isthing": False}, {"id": 11}, {"id": 12}]
    no_tags = draw_panoptic(img, seg, bare)
    assert np.any(with_tags != no_tags)
    np.testing.assert_array_equal(draw_panoptic(img, seg, []), img)
    with pytest.raises(ValueError, match="twice"):
        draw_panoptic(img, seg, [{"id": 5}, {"id": 5}])
    with pytest.raises(ValueError, match="no 'id'"):
        draw_panoptic(img, seg, [{"name": "x"}])
    with pytest.raises(ValueError, match=r"\(60, 80\)"):
        draw_panoptic(img, seg[:10], segments)
    with pytest.raises(ValueError, match="integer"):
        draw_panoptic(img, seg.astype(np.float32), segments)
    with pytest.raises(ValueError, match="class_names has 1"):
        draw_panoptic(img, seg, [{"id": 5, "category_id": 3}], class_names=["a"])


def test_semantic_colours_by_class_and_ignores_index():
    sem = np.full((40, 50), 255, np.int64)
    sem[:20, :25] = 0
    sem[20:, 25:] = 2
    img = grey(40, 50)
    names = ["road", "car", "tree"]
    out = draw_semantic(img, sem, names, alpha=0.5, contour_width=1, show_tags=False)
    ign = sem == 255
    np.testing.assert_array_equal(out[ign], img[ign])
    np.testing.assert_array_equal(out[30, 26], blend(GREY, np.array(color_for_id(2)), 0.5))
    assert tuple(out[0, 0]) == color_for_id(0)  # contour
    tagged = draw_semantic(img, sem, names, alpha=0.5, contour_width=1)
    assert np.any(tagged != out)  # light name tags are drawn by default
    np.testing.assert_array_equal(draw_semantic(img, np.full((40, 50), 255), ["a"]), img)
    with pytest.raises(ValueError, match=r"\[7\]"):
        draw_semantic(img, np.full((40, 50), 7), ["a", "b"])


# ---------------------------------------------------------------------------------------------
# legend / hstack_images
# ---------------------------------------------------------------------------------------------


def test_legend_contains_swatches_and_wraps():
    names = ["sky", "car", "person"]
    cols = palette(3)
    leg = legend(names, cols)
    assert leg.dtype == np.uint8 and leg.ndim == 3 and leg.shape[2] == 3
    flat = leg.reshape(-1, 3)
    for c in cols:
        assert np.any(np.all(flat == c, axis=1)), c
    many = legend([f"class {i}" for i in range(12)], palette(12), max_rows=4)
    one_col = legend([f"class {i}" for i in range(12)], palette(12))
    assert many.shape[0] < one_col.shape[0] and many.shape[1] > one_col.shape[1]
    assert legend([], np.zeros((0, 3))).shape[2] == 3
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        legend(names, palette(2))


def test_hstack_images_layout():
    a = np.full((10, 20, 3), 1, np.uint8)
    b = np.full((16, 5), 2, np.uint8)  # grayscale accepted
    out = hstack_images([a, b], pad=3, pad_value=255)
    assert out.shape == (16 + 6, 20 + 5 + 9, 3)
    assert np.all(out[3:13, 3:23] == 1) and np.all(out[3:19, 26:31] == 2)
    assert np.all(out[13:19, 3:23] == 255)  # under the shorter image
    titled = hstack_images([a, b], pad=3, titles=["input", "masks"])
    assert titled.shape[0] > out.shape[0] and titled.shape[1] == out.shape[1]
    with pytest.raises(ValueError, match="at least one"):
        hstack_images([])
    with pytest.raises(ValueError, match=r"images\[1\].*uint8"):
        hstack_images([a, a.astype(np.float64)])
    with pytest.raises(ValueError, match="titles"):
        hstack_images([a], titles=["x", "y"])


def test_font_falls_back_to_bitmap_font_on_old_pillow(monkeypatch):
    from PIL import ImageFont

    def old_load_default(*args, **kwargs):
        if args or kwargs:
            raise TypeError("load_default() got an unexpected keyword argument 'size'")
        return ImageFont.load_default_imagefont()  # the fixed-size bitmap font

    vis._font.cache_clear()
    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    try:
        assert isinstance(vis._font(20), ImageFont.ImageFont)
        m = rect_mask(40, 60, 10, 30, 10, 50)[None]
        out = draw_masks(grey(40, 60), m, labels=["cat"], scores=[0.5])
        assert np.any(out[~m[0]] != GREY)  # the tag was still drawn
        assert legend(["a"], palette(1)).shape[2] == 3
    finally:
        vis._font.cache_clear()
