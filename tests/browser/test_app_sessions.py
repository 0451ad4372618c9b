"""Unit tests of the ``rapsam serve`` app logic (``rapsam.app``) without a browser.

The browser test (``test_serve_browser.py``, marker ``browser``) drives the page end to end; these
tests pin the session logic it relies on (one encoder run per image, prompt bookkeeping, view
mapping, limits and their messages, downloads, legend, video tracking) on the random-weight r18
fixture model with tiny images, and build the gradio page without serving it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rapsam.app.samples import find_samples, list_samples, synthetic_samples
from rapsam.app.sessions import (
    ClickSession,
    LimitError,
    Limits,
    VideoSession,
    fit_image,
    from_view,
    legend_html,
    read_video,
    run_panoptic,
    safe_stem,
    to_view,
    upscale,
    view_scale,
)

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = ROOT.parent / "shared" / "fixtures" / "official"


@pytest.fixture(scope="module")
def model(official_gen, tmp_path_factory):
    """The random-weight r18 fixture model with its 133-class classifier (COCO names)."""
    import torch

    import rapsam

    d = tmp_path_factory.mktemp("r18_app")
    sd = official_gen.make_state_dict(str(OFFICIAL / "keys_r18.tsv"), seed=1)
    torch.save({"state_dict": official_gen.to_torch(sd)}, d / "w.pth")
    plants = np.load(OFFICIAL / "classifier_r18_s1.npz")
    cls = official_gen.make_classifier(
        seed=1, plants=zip(plants["plant_classes"], plants["plant_vectors"])
    )
    torch.save(torch.from_numpy(cls), d / "c.pth")
    return rapsam.build_model("rapsam_r18", weights=d / "w.pth", classifier=d / "c.pth")


def _image(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 60, np.uint8)
    img[16:48, 20:52] = (220, 40, 40)  # a red square
    return (img + rng.integers(0, 20, img.shape)).astype(np.uint8)


@pytest.fixture
def session(model):
    s = ClickSession(model, image_scale=None, view_side=160)
    s.set_image(_image(), "scene one.png")
    return s


# ------------------------------------------------------------------------------------------ limits
def test_limits_reject_non_positive_values():
    with pytest.raises(ValueError, match="max_video_seconds"):
        Limits(max_video_seconds=0)
    with pytest.raises(ValueError, match="max_upload_mb"):
        Limits(max_upload_mb=float("nan"))
    assert Limits().max_image_side == 2048


def test_fit_image_downscales_large_images_with_a_notice():
    big = np.zeros((300, 1000, 3), np.uint8)
    out, note = fit_image(big, Limits(max_image_side=500))
    assert out.shape == (150, 500, 3)
    assert "1000x300" in note and "500x150" in note and "--max-image-side" in note
    same, none = fit_image(_image(), Limits())
    assert same.shape == (64, 80, 3) and none is None
    gray, _ = fit_image(np.zeros((10, 12), np.uint8), Limits())
    assert gray.shape == (10, 12, 3)


@pytest.mark.parametrize("bad", [None, np.zeros(5, np.uint8), "not an image"])
def test_fit_image_rejects_non_images(bad):
    with pytest.raises(ValueError, match="image"):
        fit_image(bad, Limits())


@given(st.text(max_size=80))
def test_safe_stem_is_a_safe_file_name(name):
    s = safe_stem(name)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,48}", s), s


# ------------------------------------------------------------------------------------------ view mapping
@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 700),
    w=st.integers(1, 700),
    side=st.integers(1, 1000),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
def test_view_mapping_round_trips(h, w, side, fx, fy):
    s = view_scale((h, w), side)
    assert s >= 1.0 and (s == 1.0 or abs(max(h, w) * s - side) < 1e-6)
    x, y = fx * (w - 1), fy * (h - 1)
    vx, vy = to_view(np.array([x, y]), s)
    bx, by = from_view(vx, vy, s, (h, w))
    assert abs(bx - x) < 1e-6 and abs(by - y) < 1e-6


def test_from_view_clips_to_the_image():
    assert from_view(-5, 10_000, 2.0, (10, 20)) == (0.0, 9.0)


def test_upscale_of_a_mask_keeps_it_binary_and_in_place():
    m = np.zeros((10, 10), bool)
    m[2:5, 6:9] = True
    up = upscale(m, 3.0, mask=True)
    assert up.shape == (30, 30) and up.dtype == bool
    assert up[10, 22] and not up[25, 5]


# ------------------------------------------------------------------------------------------ clicks
def test_encoder_runs_once_per_image_and_clicks_only_decode(model, monkeypatch):
    calls = []
    orig = model.extract_features
    monkeypatch.setattr(model, "extract_features", lambda *a, **k: calls.append(1) or orig(*a, **k))
    s = ClickSession(model, image_scale=None)
    s.set_image(_image())
    s.click(30, 30, "positive")
    s.click(60, 10, "negative")
    s.click(5, 5, "box")
    s.click(70, 60, "box")
    s.undo()
    assert len(calls) == 1 and s.encode_count == 1 and s.decode_count == 4
    s.set_image(_image(seed=1))
    assert len(calls) == 2 and s.points == [] and s.result is None


def test_click_before_an_image_is_refused(model):
    s = ClickSession(model, image_scale=None)
    with pytest.raises(ValueError, match="no image yet"):
        s.click(1, 1, "positive")
    assert s.render() is None and "Upload an image" in s.status()


def test_bad_clicks_are_refused_with_the_reason(session):
    with pytest.raises(ValueError, match="outside the 80x64 image"):
        session.click(81, 3, "positive")
    with pytest.raises(ValueError, match="unknown click mode"):
        session.click(3, 3, "lasso")


def test_positive_click_mask_matches_the_predictor_and_is_drawn(session):
    session.click(36, 32, "positive")
    direct = session.predictor.predict(points=[[[36, 32]]], labels=[[1]])
    assert np.array_equal(session.mask, direct.masks[0].numpy())
    assert session.mask.shape == (64, 80)
    view = session.render()
    assert view.shape == (128, 160, 3)  # upscaled by 2 to the 160 px view side
    plain = upscale(session.image, 2.0)
    m = upscale(session.mask, 2.0, mask=True)
    far = np.ones_like(m)
    far[40:90, 50:110] = False  # the marker around the click (view pixel ~ (73, 65))
    if m.any():
        changed = np.abs(view.astype(int) - plain.astype(int)).sum(-1) > 0
        assert changed[m & far].mean() > 0.95
    assert "Mask:" in session.status() and "1 positive" in session.status()


def test_negative_clicks_alone_make_no_mask(session):
    session.click(5, 5, "negative")
    assert session.result is None and session.labels == [0]
    assert "add a positive click or a box" in session.status()
    session.click(36, 32, "positive")
    assert session.result is not None and session.labels == [0, 1]


def test_box_takes_two_corners_and_undo_steps_back(session):
    session.click(60, 50, "box")
    assert session.corner == (60.0, 50.0) and session.box is None and session.result is None
    assert "first corner" in session.status()
    session.click(20, 10, "box")
    assert session.box == (20.0, 10.0, 61.0, 51.0) and session.corner is None
    assert session.result is not None and "box" in session.status()
    session.undo()  # back to the first corner pending
    assert session.box is None and session.corner == (60.0, 50.0)
    session.undo()
    assert session.corner is None and session._undo == []


def test_a_box_under_two_pixels_is_refused(session):
    session.click(10, 10, "box")
    with pytest.raises(ValueError, match="under 2 pixels"):
        session.click(10, 30, "box")
    assert session.corner is None and session.box is None and session._undo == []


def test_undo_and_clear(session):
    session.click(36, 32, "positive")
    session.click(60, 5, "negative")
    session.undo()
    assert session.labels == [1] and session.result is not None
    session.clear()
    assert session.points == [] and session.result is None and session.encode_count == 1


def test_export_writes_the_mask_png_and_json(session, tmp_path):
    with pytest.raises(ValueError, match="no mask yet"):
        session.export(tmp_path)
    session.click(36, 32, "positive")
    png, js = session.export(tmp_path)
    assert png.name == "scene_one_mask.png" and js.name == "scene_one_mask.json"
    saved = np.asarray(Image.open(png))
    assert set(np.unique(saved)) <= {0, 255}
    assert np.array_equal(saved > 0, session.mask)
    rec = json.loads(js.read_text())
    from pycocotools import mask as mask_utils

    rle = rec["mask"]["segmentation"]
    dec = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
    assert np.array_equal(dec, session.mask)
    assert rec["prompts"] == {"points": [[36.0, 32.0]], "labels": [1], "box": None}
    assert rec["image"] == {"file_name": "scene_one", "height": 64, "width": 80}
    assert rec["mask"]["area"] == int(session.mask.sum())


# ------------------------------------------------------------------------------------------ panoptic
class _Seg:
    def __init__(self, id, name, is_thing, score, area):
        self.id, self.name, self.is_thing, self.score, self.area = id, name, is_thing, score, area


class _Result:
    image_size = (10, 10)

    def __init__(self, segments):
        self.segments = segments


def test_legend_lists_segments_largest_first_with_their_overlay_colours():
    from rapsam.visualize import color_for_id

    res = _Result([_Seg(3, "sky", False, 0.9, 20), _Seg(7, "<b>cat</b>", True, 0.75, 50)])
    html = legend_html(res, ["<b>cat</b>", "sky"], [True, False])
    items = re.findall(
        r'<li class="rapsam-legend-item" data-class="([^"]*)" data-kind="(\w+)" data-segment="(\d+)">',
        html,
    )
    assert items == [("&lt;b&gt;cat&lt;/b&gt;", "thing", "7"), ("sky", "stuff", "3")]
    assert "<b>" not in html  # names are escaped
    assert "#{:02x}{:02x}{:02x}".format(*color_for_id(7)) in html
    assert "50.0%" in html and 'data-state="done"' in html and 'data-segments="2"' in html
    assert "Vocabulary: 2 classes" in html and "sky (stuff)" in html
    empty = legend_html(_Result([]), ["a"], state="empty", empty_text="nothing yet")
    assert "nothing yet" in empty and 'data-state="empty"' in empty


def test_run_panoptic_writes_coco_files_and_an_upscaled_overlay(model, tmp_path):
    from rapsam.predictor.image import PanopticPredictor

    img = _image()
    view = run_panoptic(
        PanopticPredictor(model, image_scale=None), img, "my scene.jpg", tmp_path, view_side=160
    )
    assert view.overlay.shape == (128, 160, 3)
    assert view.png_path == tmp_path / "my_scene_panoptic.png" and view.png_path.exists()
    rec = json.loads(view.json_path.read_text())
    assert len(rec["categories"]) == 133 and len(rec["segments"]) == len(view.result.segments)
    assert rec["annotations"][0]["file_name"] == "my_scene_panoptic.png"
    assert f'data-segments="{len(view.result.segments)}"' in view.legend_html


# ------------------------------------------------------------------------------------------ video
def _write_video(path: Path, n: int, fps: float, size: int = 48) -> Path:
    from rapsam.io.video import VideoWriter

    with VideoWriter(path, fps=fps) as w:
        for k in range(n):
            f = np.full((size, size, 3), 40, np.uint8)
            f[10:30, 8 + k : 28 + k] = (230, 60, 30)
            w.write(f)
    return path


def test_read_video_enforces_length_limits_with_clear_messages(tmp_path):
    v = _write_video(tmp_path / "clip.mp4", 10, fps=5)
    frames, fps = read_video(v, Limits())
    assert len(frames) == 10 and fps == 5 and frames[0].shape == (48, 48, 3)
    with pytest.raises(LimitError, match=r"2\.0 s long .*up to 1 s.*--max-video-seconds"):
        read_video(v, Limits(max_video_seconds=1))
    with pytest.raises(LimitError, match="10 frames.*up to 4"):
        read_video(v, Limits(max_video_frames=4))
    small, _ = read_video(v, Limits(max_video_side=24))
    assert small[0].shape == (24, 24, 3)


def test_read_video_rejects_a_non_video(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError):
        read_video(bad, Limits())


def test_video_session_tracks_a_clicked_object_and_everything(model, tmp_path):
    v = _write_video(tmp_path / "clip.mp4", 3, fps=3)
    s = VideoSession(model, image_scale=None, limits=Limits(), view_side=96)
    with pytest.raises(ValueError, match="no video yet"):
        s.click(1, 1)
    s.load(v, "my clip.mp4")
    assert s.name == "my_clip" and len(s.frames) == 3 and "3 frames" in s.status()
    assert s.render_first_frame().shape == (96, 96, 3)
    with pytest.raises(ValueError, match="click on an object"):
        s.track_prompted(tmp_path)
    x, y = s.view_to_image(36, 40)
    assert (x, y) == pytest.approx((17.75, 19.75))
    s.click(x, y)
    assert s.prompted_ids == [1] and "#1" in s.status()
    assert s.new_object() == 2
    s.click(40, 40, positive=False)  # negatives only: object 2 is not tracked
    assert s.prompted_ids == [1]
    out_video, out_json, summary = s.track_prompted(tmp_path)
    assert out_video.exists() and out_video.stat().st_size > 0
    recs = json.loads(out_json.read_text())
    assert [r["track_id"] for r in recs] in ([1], [])  # absent everywhere -> no record
    if recs:
        assert len(recs[0]["segmentations"]) == 3
    assert summary.startswith("Tracked 3 frames")
    steps = []
    out_all, json_all, _ = s.track_all(tmp_path, progress=lambda d, n: steps.append((d, n)))
    assert steps[-1] == (3, 3) and out_all.name == "my_clip_all.mp4" and json_all.exists()


def test_video_session_undo_and_clear(model, tmp_path):
    s = VideoSession(model, image_scale=None)
    s.load(_write_video(tmp_path / "c.mp4", 2, fps=2))
    s.click(20, 20)
    s.click(30, 20, positive=False)
    s.undo()
    assert s.objects[1].labels == [1]
    s.clear()
    assert s.prompted_ids == [] and s.current == 1


# ------------------------------------------------------------------------------------------ samples
def test_synthetic_samples_are_written_once(tmp_path):
    s = synthetic_samples(tmp_path, images=2, size=64, frames=3)
    assert [p.name for p in s.images] == [
        "sample_1.png",
        "sample_2.png",
    ] and s.video.name == "sample_video.mp4"
    assert np.asarray(Image.open(s.images[0])).shape == (64, 64, 3)
    stamp = s.images[0].stat().st_mtime_ns
    again = synthetic_samples(tmp_path, images=2, size=64, frames=3)
    assert again.images[0].stat().st_mtime_ns == stamp


def test_samples_from_a_folder(tmp_path):
    Image.fromarray(_image()).save(tmp_path / "b.png")
    Image.fromarray(_image()).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    s = list_samples(tmp_path)
    assert [p.name for p in s.images] == ["a.jpg", "b.png"] and s.video is None
    assert find_samples(tmp_path / "work", tmp_path).images == s.images
    with pytest.raises(FileNotFoundError, match="samples folder not found"):
        list_samples(tmp_path / "missing")


# ------------------------------------------------------------------------------------------ page / CLI
def test_build_app_lays_out_the_three_tabs(model, tmp_path):
    pytest.importorskip("gradio")
    from rapsam.app.samples import Samples
    from rapsam.app.web import ServerContext, build_app

    Image.fromarray(_image()).save(tmp_path / "s.png")
    ctx = ServerContext(model, Limits(), Samples([tmp_path / "s.png"], None, "test"), tmp_path)
    demo = build_app(ctx)
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for needed in (
        "click-image",
        "click-upload",
        "click-samples",
        "click-mode",
        "dl-mask",
        "dl-json",
        "pan-image",
        "pan-legend",
        "pan-run",
        "video-first",
        "video-track",
        "video-out",
    ):
        assert needed in ids, needed
    st_ = ctx.new_state()
    assert st_.folder.is_dir() and st_.folder.parent == tmp_path / "sessions"
    assert st_.click.view_side == 640


def test_old_gradio_is_refused_with_the_fix():
    pytest.importorskip("gradio")
    from rapsam.app.web import check_gradio_version

    with pytest.raises(RuntimeError, match=r"gradio >= 6\.0, found 5\.9\.1.*pip install"):
        check_gradio_version("5.9.1")
    check_gradio_version("6.31.0")
    check_gradio_version("7.0.0.dev1")


def test_serve_command_is_registered_and_validates_its_port(capsys):
    from rapsam.cli import build_parser, main

    args = build_parser().parse_args(["serve", "--port", "8000", "--max-video-seconds", "5"])
    assert args.port == 8000 and args.host == "127.0.0.1" and args.max_video_seconds == 5
    assert main(["serve", "--port", "0"]) == 1
    assert "--port must be in 1..65535" in capsys.readouterr().err
