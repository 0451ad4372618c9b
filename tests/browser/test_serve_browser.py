"""End-to-end test of ``rapsam serve`` in a real headless Chromium (``pytest -m browser``).

A ``rapsam serve`` process is started on a free localhost port (fixture ``server``); Playwright
drives Debian's Chromium through the page as a user would: upload an image, click on an object,
check on the screenshot that the mask overlay appears where the returned mask is (and, with the
demo model, that the mask covers the clicked object), download the mask; pick a sample on the
panoptic tab and read the legend; track an object clicked on the first frame of the sample video;
upload a file over the size limit and read the message. Every page must work offline: a request
to any host but this machine fails the test. Screenshots go to each test's ``tmp_path``.

Requirements (installed by ``.ci/browser.sh``): ``/usr/bin/chromium`` (or ``RAPSAM_CHROMIUM``), the
``playwright`` Python package (its wheel carries the node driver; no ``playwright install``: the
browser is Debian's), and gradio. Without them the tests skip, unless ``RAPSAM_REQUIRE_BROWSER=1``
(CI) turns the skip into a failure.

Model: the bundled demo model (``rapsam/assets/demo_model.safetensors``, trained on the synthetic
shapes) when it exists, so the mask must cover the clicked shape; otherwise the random-weight r18
fixture model of ``tests/conftest.py``, for which only the plumbing is checked (an overlay appears
and shows the returned mask). ``RAPSAM_BROWSER_MODEL=fixture`` forces the fixture model.

Run: ``bash .ci/browser.sh /work/venv/bin/python && RAPSAM_REQUIRE_BROWSER=1 pytest -m browser tests/browser``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "rapsam" / "assets" / "demo_model.safetensors"
OFFICIAL = ROOT.parent / "shared" / "fixtures" / "official"  # as tests/conftest.py
CHROMIUM = Path(os.environ.get("RAPSAM_CHROMIUM", "/usr/bin/chromium"))
# Offline, root, CI-friendly Chromium (headless is added by Playwright).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Any host but this machine is unresolvable, so a stray external request fails fast (and is
    # recorded by the `external_requests` check).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]
START_TIMEOUT_S = float(os.environ.get("RAPSAM_SERVE_START_TIMEOUT", "90"))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _missing(what: str) -> None:
    msg = f"browser test needs {what}; run `bash .ci/browser.sh` to install it"
    if os.environ.get("RAPSAM_REQUIRE_BROWSER") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser_requirements() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright")
    try:
        import gradio  # noqa: F401
    except ImportError:
        _missing("gradio")
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"Debian's chromium at {CHROMIUM}")


# ------------------------------------------------------------------------------------------ scene
@dataclass
class Target:
    """An object to click: its (H, W) mask, class and the click pixel (x, y) deepest inside it."""

    mask: np.ndarray
    category: str
    xy: tuple[int, int]


@dataclass
class Scene:
    """Files served / uploaded by the tests, with their ground truth."""

    upload_png: Path  # uploaded on the click tab
    upload_image: np.ndarray
    target: Target  # the object clicked on it
    samples_dir: Path  # --samples: sample_1.png (panoptic tab) + sample_video.mp4
    sample_classes: set[str]  # ground-truth classes of sample_1.png
    video_frames: list[np.ndarray]
    video_target: Target  # an object of the sample video's first frame
    video_track: np.ndarray  # (T, H, W) its ground-truth masks
    big_png: Path  # over the upload limit


def _deepest_point(mask: np.ndarray) -> tuple[int, int]:
    from scipy import ndimage

    d = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(d.argmax()), d.shape)
    return int(x), int(y)


def _best_target(segments: list, min_area: int) -> Target:
    """The thing whose deepest interior point is farthest from its border (an easy click)."""
    from scipy import ndimage

    best, best_r = None, -1.0
    for s in segments:
        if not s.is_thing or s.mask.sum() < min_area:
            continue
        r = float(ndimage.distance_transform_edt(np.pad(s.mask, 1)).max())
        if r > best_r:
            best, best_r = s, r
    assert best is not None, (
        "the synthetic scene has no thing large enough to click; change the seed"
    )
    return Target(best.mask.astype(bool), best.category, _deepest_point(best.mask))


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Scene:
    from PIL import Image

    from rapsam.data.synth import generate
    from rapsam.io.video import VideoWriter

    root = tmp_path_factory.mktemp("browser_scene")
    imgs = generate(
        root / "synth_img", images=2, videos=0, size=320, seed=11, val_fraction=0.0
    ).truth.images
    vids = generate(
        root / "synth_vid", images=0, videos=1, size=192, frames=6, seed=5, val_fraction=0.0
    ).truth.videos
    up = root / "scene.png"
    Image.fromarray(imgs[0].image).save(up)
    samples = root / "samples"
    samples.mkdir()
    Image.fromarray(imgs[1].image).save(samples / "sample_1.png")
    video = vids[0]
    with VideoWriter(samples / "sample_video.mp4", fps=6) as w:
        for f in video.frames:
            w.write(f)
    tracks = [t for t in video.tracks if t.is_thing and t.masks[0].sum() >= 150]
    assert tracks, "the synthetic video has no thing visible on its first frame; change the seed"
    track = max(tracks, key=lambda t: int(t.masks[0].sum()))
    vt = Target(track.masks[0].astype(bool), track.category, _deepest_point(track.masks[0]))
    big = root / "big.png"  # ~3 MB of noise, over the 2 MB limit the server is started with
    Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    ).save(big)
    return Scene(
        upload_png=up,
        upload_image=imgs[0].image,
        target=_best_target(imgs[0].segments, 400),
        samples_dir=samples,
        sample_classes={s.category for s in imgs[1].segments},
        video_frames=list(video.frames),
        video_target=vt,
        video_track=track.masks.astype(bool),
        big_png=big,
    )


# ------------------------------------------------------------------------------------------ server
@dataclass
class Server:
    url: str
    mode: str  # "demo" (a trained model: masks must match objects) or "fixture" (random weights)
    class_names: list[str] | None  # the model's vocabulary when known without loading it
    log: Path
    process: subprocess.Popen


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_class_names() -> list[str] | None:
    """Class names stored in the demo model's header (read without loading the weights)."""
    from safetensors import safe_open

    from rapsam.weights import HEADER_KEY

    with safe_open(str(DEMO_MODEL), framework="pt") as f:
        meta = f.metadata() or {}
    names = json.loads(meta.get(HEADER_KEY, "{}")).get("class_names")
    return list(names) if names else None


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server we started: SIGTERM to its own process group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def r18_files(official_gen, tmp_path_factory) -> tuple[Path, Path]:
    """The random-weight r18 fixture model as official files: (weights .pth, classifier .pth).

    Same weights as ``tests/conftest.py::official_r18_files``, written without its pickled ``meta``
    object (whose class lives in a module named ``conftest``, which pytest may have re-bound to
    another folder's conftest by the time the fixture runs).
    """
    import torch

    d = tmp_path_factory.mktemp("r18")
    sd = official_gen.make_state_dict(str(OFFICIAL / "keys_r18.tsv"), seed=1)
    torch.save({"state_dict": official_gen.to_torch(sd)}, d / "rapsam_r18_fixture.pth")
    plants = np.load(OFFICIAL / "classifier_r18_s1.npz")
    cls = official_gen.make_classifier(
        seed=1, plants=zip(plants["plant_classes"], plants["plant_vectors"])
    )
    torch.save(torch.from_numpy(cls), d / "classifier_coco.pth")
    return d / "rapsam_r18_fixture.pth", d / "classifier_coco.pth"


@pytest.fixture(scope="module")
def server(browser_requirements, scene, request, tmp_path_factory):
    use_demo = DEMO_MODEL.exists() and os.environ.get("RAPSAM_BROWSER_MODEL", "auto") != "fixture"
    if use_demo:
        margs, mode, names = [], "demo", _demo_class_names()
    else:
        w, c = request.getfixturevalue("r18_files")
        # image scale "none": the fixture model at its 1333x800 test scale is needlessly slow here
        margs = [
            "--model",
            "rapsam_r18",
            "--weights",
            str(w),
            "--classifier",
            str(c),
            "--image-scale",
            "none",
        ]
        mode, names = "fixture", None
    work = tmp_path_factory.mktemp("serve_work")
    log = work / "serve.log"
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "rapsam",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--samples",
        str(scene.samples_dir),
        "--work-dir",
        str(work / "files"),
        "--max-upload-mb",
        "2",
        *margs,
    ]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"rapsam serve exited with code {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"rapsam serve was not ready at {url} after {START_TIMEOUT_S:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.3)
        yield Server(url, mode, names, log, proc)
    finally:
        _stop(proc)


# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser_context(browser_requirements, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            device_scale_factor=1,
        )
        ctx.set_default_timeout(30_000)
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(browser_context, server, tmp_path):
    """A fresh page (a new gradio session) on the app; fails the test if it asked any other host."""
    external: list[str] = []
    errors: list[str] = []

    def on_request(req) -> None:
        u = urlparse(req.url)
        if u.scheme in ("http", "https", "ws", "wss") and u.hostname not in LOCAL_HOSTS:
            external.append(req.url)

    pg = browser_context.new_page()
    pg.on("request", on_request)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url, wait_until="load")
    pg.wait_for_selector("#click-image", state="attached")
    yield pg
    try:
        pg.screenshot(path=str(tmp_path / "page_end.png"), full_page=True)
    finally:
        pg.close()
    assert not external, f"the page contacted other hosts (must work offline): {external}"
    assert not errors, f"JavaScript errors on the page: {errors}"


MIN_IOU = 0.5  # demo model: IoU of the returned mask with the clicked object
CHANGED = 24  # sum over RGB of |after - before| above which a screen pixel counts as painted
MARKER_R = 22  # screen px around a click left out of the pixel checks (the star marker)


# ------------------------------------------------------------------------------------------ helpers
def _shot(locator) -> np.ndarray:
    """Element screenshot -> (h, w, 3) uint8."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def _geometry(img) -> dict:
    """On-screen geometry of a gradio image: element box, natural size and the drawn content rect.

    gradio draws the picture with ``object-fit: scale-down`` (never upscaled), centred; its click
    handler uses the same rule to turn a click into natural-pixel coordinates.
    """
    g = img.evaluate(
        "e => { const r = e.getBoundingClientRect();"
        " return {w: r.width, h: r.height, nw: e.naturalWidth, nh: e.naturalHeight, src: e.src}; }"
    )
    r = min(g["w"] / g["nw"], g["h"] / g["nh"], 1.0)
    g.update(r=r, ox=(g["w"] - g["nw"] * r) / 2, oy=(g["h"] - g["nh"] * r) / 2)
    return g


def _image_to_screen(g: dict, image_hw: tuple[int, int], x: float, y: float) -> tuple[float, float]:
    """Pixel (x, y) of the original image -> position inside the element (CSS px)."""
    s = g["nw"] / image_hw[1]  # the app shows small images upscaled to a 640 px view
    vx, vy = (x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5
    return g["ox"] + (vx + 0.5) * g["r"], g["oy"] + (vy + 0.5) * g["r"]


def _mask_to_screen(g: dict, mask: np.ndarray, shot_hw: tuple[int, int]) -> np.ndarray:
    """An (H, W) image mask -> the screenshot's (h, w) frame (where it is drawn on screen)."""
    cw, ch = max(1, round(g["nw"] * g["r"])), max(1, round(g["nh"] * g["r"]))
    small = (
        np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((cw, ch), Image.NEAREST))
        > 127
    )
    out = np.zeros(shot_hw, dtype=bool)
    x0, y0 = round(g["ox"]), round(g["oy"])
    hh, ww = min(ch, shot_hw[0] - y0), min(cw, shot_hw[1] - x0)
    out[y0 : y0 + hh, x0 : x0 + ww] = small[:hh, :ww]
    return out


def _content(g: dict, shot_hw: tuple[int, int]) -> np.ndarray:
    return _mask_to_screen(g, np.ones((int(g["nh"]), int(g["nw"])), bool), shot_hw)


def _disk(shot_hw: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shot_hw[0], : shot_hw[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _wait_new_image(page, selector: str, old_src: str | None) -> None:
    page.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel);"
        " return e && e.src && e.src !== old && e.complete && e.naturalWidth > 0; }",
        arg=[selector, old_src or ""],
    )


def _status(page, selector: str, text: str, timeout: float = 60_000) -> str:
    page.wait_for_function(
        "([sel, t]) => { const e = document.querySelector(sel); return e && e.innerText.includes(t); }",
        arg=[selector, text],
        timeout=timeout,
    )
    return page.inner_text(selector)


def _upload(page, button: str, path) -> None:
    with page.expect_file_chooser() as fc:
        page.click(button)
    fc.value.set_files(str(path))


def _download(page, button: str, dest) -> bytes:
    page.wait_for_function(f"() => !document.querySelector('{button}').disabled")
    with page.expect_download() as dl:
        page.click(button)
    dl.value.save_as(str(dest))
    return dest.read_bytes()


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


# ------------------------------------------------------------------------------------------ tests
def test_click_shows_mask_over_the_clicked_object(page, server, scene, tmp_path):
    h, w = scene.upload_image.shape[:2]
    _upload(page, "#click-upload", scene.upload_png)
    status = _status(page, "#click-status", "encoder")
    assert f"{w}x{h}" in status, status
    sel = "#click-image img"
    _wait_new_image(page, sel, None)
    img = page.locator(sel).first
    g = _geometry(img)
    before = _shot(img)
    Image.fromarray(before).save(tmp_path / "click_before.png")

    tx, ty = scene.target.xy
    px, py = _image_to_screen(g, (h, w), tx, ty)
    img.click(position={"x": px, "y": py})
    status = _status(page, "#click-status", "Mask:")
    assert "1 positive" in status and "decoder" in status, status
    _wait_new_image(page, sel, g["src"])
    page.wait_for_timeout(200)  # let the new picture be painted
    after = _shot(img)
    Image.fromarray(after).save(tmp_path / "click_after.png")
    page.screenshot(path=str(tmp_path / "click_page.png"), full_page=True)
    assert after.shape == before.shape, (
        "the image element changed size; the screen mapping would be off"
    )

    # The mask the server returned, as the user downloads it.
    returned = (
        np.asarray(Image.open(io.BytesIO(_download(page, "#dl-mask", tmp_path / "mask.png")))) > 127
    )
    assert returned.shape == (h, w)
    rec = json.loads(_download(page, "#dl-json", tmp_path / "mask.json"))
    assert rec["prompts"]["labels"] == [1]
    assert np.allclose(rec["prompts"]["points"][0], [tx, ty], atol=1.0), (rec["prompts"], (tx, ty))
    assert np.array_equal(_decode_rle(rec["mask"]["segmentation"]), returned)
    assert returned.any(), "the click returned an empty mask"

    # Pixel check on the screenshots: the overlay paints the returned mask and nothing far from it.
    hw = before.shape[:2]
    changed = np.abs(after.astype(np.int16) - before.astype(np.int16)).sum(-1) > CHANGED
    not_marker = ~_disk(hw, px, py, MARKER_R)
    on_screen = _mask_to_screen(g, returned, hw)
    inner = ndimage.binary_erosion(on_screen, iterations=3) & not_marker
    outer = ~ndimage.binary_dilation(on_screen, iterations=4) & _content(g, hw) & not_marker
    assert changed[_disk(hw, px, py, 6)].any(), "no click marker where the click was"
    if inner.sum() >= 30:
        assert changed[inner].mean() >= 0.9, (
            f"only {changed[inner].mean():.0%} of the mask is painted on screen"
        )
    assert changed[outer].mean() <= 0.02, (
        f"{changed[outer].mean():.1%} of the area outside the mask changed"
    )

    if server.mode == "demo":
        iou = _iou(returned, scene.target.mask)
        assert iou >= MIN_IOU, (
            f"mask IoU with the clicked {scene.target.category} is {iou:.2f} < {MIN_IOU}"
        )
        obj = (
            ndimage.binary_erosion(_mask_to_screen(g, scene.target.mask, hw), iterations=3)
            & not_marker
        )
        assert changed[obj].mean() >= 0.7, (
            f"only {changed[obj].mean():.0%} of the clicked object is covered on screen"
        )


def test_negative_click_and_box_mode(page, scene):
    h, w = scene.upload_image.shape[:2]
    _upload(page, "#click-upload", scene.upload_png)
    _status(page, "#click-status", "encoder")
    sel = "#click-image img"
    _wait_new_image(page, sel, None)
    img = page.locator(sel).first
    g = _geometry(img)
    tx, ty = scene.target.xy
    img.click(position=dict(zip("xy", _image_to_screen(g, (h, w), tx, ty))))
    _status(page, "#click-status", "1 positive")
    # shift-click = negative click, whatever the toggle says
    nx, ny = (tx + w // 2) % w, (ty + h // 2) % h
    img.click(position=dict(zip("xy", _image_to_screen(g, (h, w), nx, ny))), modifiers=["Shift"])
    _status(page, "#click-status", "1 negative")
    page.click("#click-clear")
    _status(page, "#click-status", "click on an object")
    # box mode: two clicks on opposite corners of the object's bounding box
    page.locator("#click-mode label", has_text="Box").click()
    ys, xs = np.nonzero(scene.target.mask)
    img.click(position=dict(zip("xy", _image_to_screen(g, (h, w), xs.min(), ys.min()))))
    _status(page, "#click-status", "first corner")
    img.click(position=dict(zip("xy", _image_to_screen(g, (h, w), xs.max(), ys.max()))))
    status = _status(page, "#click-status", "Mask:")
    assert "box" in status, status


def test_panoptic_tab_renders_a_legend_of_the_model_classes(page, server, scene, tmp_path):
    page.get_by_role("tab", name="Panoptic").click()
    page.locator("#pan-samples .thumbnail-item").first.click()
    page.wait_for_selector("#pan-legend .rapsam-legend[data-state='done']", timeout=60_000)
    page.wait_for_selector("#pan-image img", state="visible")
    page.screenshot(path=str(tmp_path / "panoptic_page.png"), full_page=True)
    vocab = [
        e.get_attribute("data-class") for e in page.locator("#pan-legend .rapsam-vocab-item").all()
    ]
    found = [
        e.get_attribute("data-class") for e in page.locator("#pan-legend .rapsam-legend-item").all()
    ]
    n = int(page.locator("#pan-legend .rapsam-legend").get_attribute("data-segments"))
    assert n == len(found)
    assert set(found) <= set(vocab), (found, vocab)
    assert page.locator("#dl-pan-png").is_enabled() and page.locator("#dl-pan-json").is_enabled()
    rec = json.loads(_download(page, "#dl-pan-json", tmp_path / "panoptic.json"))
    assert [c["name"] for c in rec["categories"]] == vocab
    assert len(rec["annotations"][0]["segments_info"]) <= n
    if server.mode == "demo":
        if server.class_names:
            assert vocab == server.class_names
        assert found, "the demo model found no segment on a synthetic scene"
        assert set(found) & scene.sample_classes, (
            f"legend {found} shares no class with the scene {scene.sample_classes}"
        )
        # a swatch is painted in the overlay colour of its segment
        from rapsam.visualize import color_for_id

        item = page.locator("#pan-legend .rapsam-legend-item").first
        sid = int(item.get_attribute("data-segment"))
        bg = item.locator(".rapsam-swatch").evaluate("e => getComputedStyle(e).backgroundColor")
        assert bg == "rgb({}, {}, {})".format(*color_for_id(sid)), bg
    else:
        assert len(vocab) == 133 and "person" in vocab, vocab[:5]
    # the image picked here is also the click tab's image (one image per session)
    page.get_by_role("tab", name="Click to segment").click()
    page.wait_for_selector("#click-image img", state="visible")
    assert "click on an object" in page.inner_text("#click-status")


def test_video_tab_tracks_a_clicked_object(page, server, scene, tmp_path):
    page.get_by_role("tab", name="Video").click()
    page.click("#video-sample")
    frames = scene.video_frames
    h, w = frames[0].shape[:2]
    status = _status(page, "#video-status", f"{len(frames)} frames")
    assert f"{w}x{h}" in status, status
    sel = "#video-first img"
    _wait_new_image(page, sel, None)
    img = page.locator(sel).first
    g = _geometry(img)
    tx, ty = scene.video_target.xy
    img.click(position=dict(zip("xy", _image_to_screen(g, (h, w), tx, ty))))
    _status(page, "#video-status", "objects prompted: #1")
    page.click("#video-track")
    page.wait_for_function(
        "() => { const v = document.querySelector('#video-out video'); return v && v.readyState >= 1 && v.videoWidth > 0; }",
        timeout=90_000,
    )
    page.screenshot(path=str(tmp_path / "video_page.png"), full_page=True)
    rec = json.loads(_download(page, "#dl-video-json", tmp_path / "tracks.json"))
    assert [r["track_id"] for r in rec] == [1]
    segs = rec[0]["segmentations"]
    assert len(segs) == len(frames)
    assert segs[0] is not None, "the clicked object has no mask on the prompted frame"
    if server.mode == "demo":
        iou0 = _iou(_decode_rle(segs[0]), scene.video_target.mask)
        assert iou0 >= MIN_IOU, f"first-frame IoU {iou0:.2f} < {MIN_IOU}"


def test_upload_over_the_size_limit_is_refused_with_a_message(page, scene):
    _upload(page, "#click-upload", scene.big_png)
    toast = page.get_by_text("exceed the maximum allowed size", exact=False)
    toast.first.wait_for(timeout=20_000)
    assert "big.png" in toast.first.inner_text()
    assert "Upload an image" in page.inner_text("#click-status")  # nothing was loaded
