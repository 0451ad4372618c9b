"""The gradio page of ``rapsam serve``: click-to-segment, panoptic and video tabs.

RAP-SAM (arXiv 2401.10228) serves three tasks with one model; the page has one tab per task, in
the manner of segment-anything's web demo:

* **Click to segment**: upload or pick an image; the encoder runs once (its features are cached in
  the browser session's :class:`~rapsam.app.sessions.ClickSession`); every click (positive,
  negative with the toggle or with shift / alt held, or two clicks for a box) only decodes, and the
  mask is drawn at once. Downloads: the mask PNG and a JSON with the prompts and the RLE mask.
* **Panoptic**: every segment of the image, with a legend (colour, class, thing/stuff, score,
  area) and the COCO panoptic PNG / JSON to download.
* **Video**: upload a video (or load the sample); click objects on its first frame (a preview mask
  appears) and track them, or track every object without prompts; the overlay video and YouTube-VIS
  style JSON can be downloaded.

The page is self-contained: no share link, no analytics, no font or script from another host
(``rapsam.commands.serve`` sets ``GRADIO_ANALYTICS_ENABLED=False``). Upload size is capped by
gradio (``max_file_size``); image size and video length by :class:`~rapsam.app.sessions.Limits`,
each with a message saying what to do.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from .samples import Samples
from .sessions import ClickSession, Limits, PanopticView, VideoSession, fit_image, run_panoptic

# Remembers whether shift / alt was held at the last pointer press, for shift/alt-click = negative.
_HEAD = """
<script>
(() => {
  const note = (e) => { window.__rapsamNegative = !!(e.shiftKey || e.altKey); };
  window.addEventListener("pointerdown", note, true);
  window.addEventListener("mousedown", note, true);
})();
</script>
"""
# Runs in the browser before the click handler: shift/alt turns a click negative.
_CLICK_JS = (
    "(mode, st) => [(window.__rapsamNegative && mode === 'positive') ? 'negative' : mode, st]"
)

_CSS = """
.rapsam-legend { font-size: 0.95rem; }
.rapsam-legend-title { font-weight: 600; margin: 0.2rem 0 0.4rem; }
.rapsam-legend-list { list-style: none; padding: 0; margin: 0; max-height: 320px; overflow-y: auto; }
.rapsam-legend-item { display: flex; align-items: center; gap: 0.5rem; padding: 0.15rem 0; }
.rapsam-swatch { width: 1rem; height: 1rem; border-radius: 3px; border: 1px solid rgba(0,0,0,.35);
                 flex: none; }
.rapsam-name { font-weight: 600; }
.rapsam-meta { color: var(--body-text-color-subdued); font-size: 0.85rem; margin-left: auto; }
.rapsam-vocab { margin-top: 0.6rem; color: var(--body-text-color-subdued); font-size: 0.85rem; }
.rapsam-empty { color: var(--body-text-color-subdued); }
#rapsam-header h1 { margin-bottom: 0; }
#click-image img, #pan-image img, #video-first img { cursor: crosshair; }
footer { display: none !important; }
"""

#: Images smaller than this (longer side) are shown upscaled, so clicks and masks are easy to see.
VIEW_SIDE = 640

MODE_CHOICES = [
    ("Positive click", "positive"),
    ("Negative click", "negative"),
    ("Box (2 clicks)", "box"),
]


@dataclass
class AppState:
    """Everything one browser session holds (kept by ``gr.State``)."""

    click: ClickSession
    video: VideoSession
    folder: Path
    panoptic: PanopticView | None = None


@dataclass
class ServerContext:
    """What the handlers share: the model, limits, samples and the work folder."""

    model: Any
    limits: Limits
    samples: Samples
    work_dir: Path
    image_scale: tuple[int, int] | None | str = "model"
    model_name: str = "model"
    view_side: int = VIEW_SIDE

    @property
    def has_vocabulary(self) -> bool:
        clf = getattr(self.model, "classifier", None)
        return bool(getattr(clf, "is_set", False))

    def new_state(self) -> AppState:
        folder = self.work_dir / "sessions" / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return AppState(
            ClickSession(self.model, self.image_scale, self.view_side),
            VideoSession(self.model, self.image_scale, self.limits, self.view_side),
            folder,
        )


def _guard(fn: Callable, n_outputs: int) -> Callable:
    """Show a ``ValueError`` / ``RuntimeError`` / ``OSError`` of a handler as a warning toast that stays
    until closed, leaving the outputs as they were (no error badges over the page)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            gr.Warning(str(e), duration=None, title="Cannot do that")
            return tuple(gr.skip() for _ in range(n_outputs)) if n_outputs > 1 else gr.skip()

    return wrapper


def _model_line(ctx: ServerContext) -> str:
    m = ctx.model
    names = list(getattr(m, "class_names", []) or [])
    cls = f"{len(names)} classes" if names else "no vocabulary (click-to-segment only)"
    cfg = getattr(m, "config", None)
    arch = getattr(cfg, "name", "") if cfg is not None else ""
    lim = ctx.limits
    return (
        f"Model **{ctx.model_name}**{f' ({arch})' if arch and arch != ctx.model_name else ''} · {cls} · "
        f"uploads up to {lim.max_upload_mb:g} MB · images up to {lim.max_image_side} px (larger ones are "
        f"downscaled) · videos up to {lim.max_video_seconds:g} s / {lim.max_video_frames} frames"
    )


def build_app(ctx: ServerContext) -> Any:
    """Build the gradio ``Blocks`` of the page (call ``launch`` to serve it)."""

    samples = ctx.samples
    sample_items = [(str(p), p.stem) for p in samples.images]

    def st(state: AppState | None) -> AppState:
        return state if state is not None else ctx.new_state()

    def dl(path: Path | None) -> Any:
        return gr.DownloadButton(
            value=str(path) if path is not None else None, interactive=path is not None
        )

    # ------------------------------------------------------------------ shared image loading
    def load_image(state: AppState, image: Any, name: str) -> AppState:
        rgb, note = fit_image(image, ctx.limits)
        state.click.set_image(rgb, name)
        state.panoptic = None
        if note:
            gr.Info(note)
        return state

    def image_outputs(state: AppState) -> tuple:
        c = state.click
        pan = state.panoptic
        return (
            state,
            c.render(),
            c.status(),
            dl(None),
            dl(None),
            pan.overlay if pan is not None else _plain_view(c),
            pan.legend_html if pan is not None else _legend_placeholder(ctx),
            dl(pan.png_path if pan else None),
            dl(pan.json_path if pan else None),
        )

    def read_upload(path: str) -> np.ndarray:
        from ..io.image import read_image

        if path is None:
            raise ValueError("no file received: choose a PNG or JPEG image")
        return read_image(path)

    def on_upload(path: str, state: AppState | None) -> tuple:
        state = load_image(st(state), read_upload(path), Path(str(path)).name)
        return image_outputs(state)

    def on_sample(evt: gr.SelectData, state: AppState | None) -> tuple:
        p = samples.images[int(evt.index)]
        state = load_image(st(state), read_upload(str(p)), p.name)
        return image_outputs(state)

    # ------------------------------------------------------------------ click tab
    def click_outputs(state: AppState) -> tuple:
        c = state.click
        png = js = None
        if c.result is not None:
            png, js = c.export(state.folder)
        return state, c.render(), c.status(), dl(png), dl(js)

    def on_click(mode: str, state: AppState | None, evt: gr.SelectData) -> tuple:
        state = st(state)
        x, y = state.click.view_to_image(*evt.index)
        state.click.click(x, y, mode)
        return click_outputs(state)

    def on_undo(state: AppState | None) -> tuple:
        state = st(state)
        state.click.undo()
        return click_outputs(state)

    def on_clear(state: AppState | None) -> tuple:
        state = st(state)
        state.click.clear()
        return click_outputs(state)

    # ------------------------------------------------------------------ panoptic tab
    def pan_outputs(state: AppState) -> tuple:
        pan = state.panoptic
        c = state.click
        if pan is None:
            return state, _plain_view(c), _legend_placeholder(ctx), dl(None), dl(None)
        return state, pan.overlay, pan.legend_html, dl(pan.png_path), dl(pan.json_path)

    def segment_everything(state: AppState) -> None:
        if not ctx.has_vocabulary:
            raise ValueError(
                "this model has no vocabulary, so it cannot name segments: restart with "
                "rapsam serve --classifier FILE (or --classes) to use the panoptic tab"
            )
        img = state.click.require_image()
        from ..predictor.image import PanopticPredictor

        predictor = PanopticPredictor(ctx.model, image_scale=ctx.image_scale)
        state.panoptic = run_panoptic(predictor, img, state.click.name, state.folder, ctx.view_side)

    def on_panoptic(state: AppState | None) -> tuple:
        state = st(state)
        segment_everything(state)
        return pan_outputs(state)

    def load_and_segment(state: AppState, image: np.ndarray, name: str) -> tuple:
        """A new image from the panoptic tab: both tabs show it; a failed panoptic run only warns."""
        state = load_image(state, image, name)
        try:
            segment_everything(state)
        except (ValueError, RuntimeError) as e:
            gr.Warning(str(e), duration=None)
        return image_outputs(state)

    def on_pan_upload(path: str, state: AppState | None) -> tuple:
        return load_and_segment(st(state), read_upload(path), Path(str(path)).name)

    def on_pan_sample(evt: gr.SelectData, state: AppState | None) -> tuple:
        p = samples.images[int(evt.index)]
        return load_and_segment(st(state), read_upload(str(p)), p.name)

    # ------------------------------------------------------------------ video tab
    def video_outputs(state: AppState, video: Any = None, files: tuple = (None, None)) -> tuple:
        v = state.video
        return (state, v.render_first_frame(), v.status(), video, dl(files[0]), dl(files[1]))

    def load_video(state: AppState, path: str, name: str) -> tuple:
        if path is None:
            raise ValueError("no file received: choose a video file (mp4, webm, mov...)")
        state.video.load(path, name)
        return video_outputs(state)

    def on_video_upload(path: str, state: AppState | None) -> tuple:
        return load_video(st(state), path, Path(str(path)).name)

    def on_video_sample(state: AppState | None) -> tuple:
        if samples.video is None:
            raise ValueError("this server has no sample video; upload one")
        return load_video(st(state), str(samples.video), samples.video.name)

    def on_video_click(mode: str, state: AppState | None, evt: gr.SelectData) -> tuple:
        state = st(state)
        x, y = state.video.view_to_image(*evt.index)
        state.video.click(x, y, positive=(mode != "negative"))
        return video_outputs(state)

    def on_video_new(state: AppState | None) -> tuple:
        state = st(state)
        state.video.new_object()
        return video_outputs(state)

    def on_video_undo(state: AppState | None) -> tuple:
        state = st(state)
        state.video.undo()
        return video_outputs(state)

    def on_video_clear(state: AppState | None) -> tuple:
        state = st(state)
        state.video.clear()
        return video_outputs(state)

    def _progress(progress: Any) -> Callable[[int, int | None], None]:
        def cb(done: int, total: int | None) -> None:
            if total:
                progress(done / total, desc=f"frame {done}/{total}")

        return cb

    def on_track(state: AppState | None, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        state = st(state)
        vid, js, summary = state.video.track_prompted(state.folder, _progress(progress))
        gr.Info(summary)
        return video_outputs(state, str(vid), (vid, js))

    def on_track_all(state: AppState | None, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        state = st(state)
        if not ctx.has_vocabulary:
            raise ValueError(
                "tracking every object needs a model with a vocabulary: restart with rapsam serve "
                "--classifier FILE, or click objects and use 'Track clicked objects'"
            )
        vid, js, summary = state.video.track_all(state.folder, _progress(progress))
        gr.Info(summary)
        return video_outputs(state, str(vid), (vid, js))

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="RAP-SAM", analytics_enabled=False) as demo:
        state = gr.State(None, time_to_live=3 * 3600)
        gr.Markdown(
            f"# RAP-SAM · segment anything in real time\n{_model_line(ctx)}",
            elem_id="rapsam-header",
        )
        with gr.Tabs():
            with (
                gr.Tab("Click to segment", id="click", elem_id="tab-click"),
                gr.Row(equal_height=False),
            ):
                with gr.Column(scale=3):
                    click_img = gr.Image(
                        label="Click on an object",
                        type="numpy",
                        interactive=False,
                        height=540,
                        elem_id="click-image",
                        buttons=["download", "fullscreen"],
                        format="png",
                        placeholder="Upload an image or pick a sample, then click on an object.",
                    )
                with gr.Column(scale=2):
                    upload = gr.UploadButton(
                        "Upload image",
                        file_types=["image"],
                        variant="primary",
                        elem_id="click-upload",
                    )
                    gallery = gr.Gallery(
                        sample_items,
                        label="Samples: click one",
                        columns=4,
                        height=150,
                        fit_columns=False,
                        allow_preview=False,
                        elem_id="click-samples",
                        buttons=[],
                    )
                    mode = gr.Radio(
                        MODE_CHOICES,
                        value="positive",
                        label="Click mode",
                        info="Shift- or alt-click also adds a negative click.",
                        elem_id="click-mode",
                    )
                    with gr.Row():
                        undo = gr.Button("Undo", size="sm", elem_id="click-undo")
                        clear = gr.Button("Clear prompts", size="sm", elem_id="click-clear")
                    status = gr.Markdown(
                        "Upload an image or pick a sample, then click on an object.",
                        elem_id="click-status",
                    )
                    with gr.Row():
                        dl_mask = gr.DownloadButton(
                            "Mask (PNG)", interactive=False, size="sm", elem_id="dl-mask"
                        )
                        dl_json = gr.DownloadButton(
                            "Mask + prompts (JSON)",
                            interactive=False,
                            size="sm",
                            elem_id="dl-json",
                        )
            with (
                gr.Tab("Panoptic", id="panoptic", elem_id="tab-panoptic"),
                gr.Row(equal_height=False),
            ):
                with gr.Column(scale=3):
                    pan_img = gr.Image(
                        label="Panoptic segmentation",
                        type="numpy",
                        interactive=False,
                        height=540,
                        elem_id="pan-image",
                        format="png",
                        buttons=["download", "fullscreen"],
                        placeholder="Upload an image or pick a sample.",
                    )
                with gr.Column(scale=2):
                    pan_upload = gr.UploadButton(
                        "Upload image", file_types=["image"], elem_id="pan-upload"
                    )
                    pan_gallery = gr.Gallery(
                        sample_items,
                        label="Samples: click one",
                        columns=4,
                        height=150,
                        fit_columns=False,
                        allow_preview=False,
                        elem_id="pan-samples",
                        buttons=[],
                    )
                    pan_btn = gr.Button("Segment everything", variant="primary", elem_id="pan-run")
                    legend = gr.HTML(_legend_placeholder(ctx), elem_id="pan-legend")
                    with gr.Row():
                        dl_pan_png = gr.DownloadButton(
                            "Panoptic PNG (COCO)",
                            interactive=False,
                            size="sm",
                            elem_id="dl-pan-png",
                        )
                        dl_pan_json = gr.DownloadButton(
                            "Segments (JSON)",
                            interactive=False,
                            size="sm",
                            elem_id="dl-pan-json",
                        )
            with gr.Tab("Video", id="video", elem_id="tab-video"), gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    first = gr.Image(
                        label="First frame: click the objects to track",
                        type="numpy",
                        interactive=False,
                        height=360,
                        elem_id="video-first",
                        format="png",
                        buttons=["fullscreen"],
                        placeholder="Upload a video or load the sample.",
                    )
                    out_video = gr.Video(
                        label="Tracking result",
                        interactive=False,
                        height=360,
                        elem_id="video-out",
                        format=None,
                    )
                with gr.Column(scale=2):
                    with gr.Row():
                        v_upload = gr.UploadButton(
                            "Upload video",
                            file_types=["video"],
                            variant="primary",
                            elem_id="video-upload",
                        )
                        v_sample = gr.Button(
                            "Load sample video",
                            elem_id="video-sample",
                            interactive=samples.video is not None,
                        )
                    v_mode = gr.Radio(
                        MODE_CHOICES[:2],
                        value="positive",
                        label="Click mode",
                        info="Shift- or alt-click also adds a negative click.",
                        elem_id="video-mode",
                    )
                    with gr.Row():
                        v_new = gr.Button(
                            "New object", size="sm", min_width=60, elem_id="video-new"
                        )
                        v_undo = gr.Button("Undo", size="sm", min_width=60, elem_id="video-undo")
                        v_clear = gr.Button("Clear", size="sm", min_width=60, elem_id="video-clear")
                    with gr.Row():
                        v_track = gr.Button(
                            "Track clicked objects", variant="primary", elem_id="video-track"
                        )
                        v_all = gr.Button(
                            "Track all objects",
                            elem_id="video-track-all",
                            interactive=ctx.has_vocabulary,
                        )
                    v_status = gr.Markdown(
                        "Upload a video (or load the sample), click an object on its "
                        "first frame, then track.",
                        elem_id="video-status",
                    )
                    with gr.Row():
                        dl_vid = gr.DownloadButton(
                            "Overlay video (MP4)",
                            interactive=False,
                            size="sm",
                            elem_id="dl-video",
                        )
                        dl_vjson = gr.DownloadButton(
                            "Tracks (JSON)",
                            interactive=False,
                            size="sm",
                            elem_id="dl-video-json",
                        )

        img_outs = [
            state,
            click_img,
            status,
            dl_mask,
            dl_json,
            pan_img,
            legend,
            dl_pan_png,
            dl_pan_json,
        ]
        click_outs = [state, click_img, status, dl_mask, dl_json]
        pan_outs = [state, pan_img, legend, dl_pan_png, dl_pan_json]
        vid_outs = [state, first, v_status, out_video, dl_vid, dl_vjson]
        model_ev = {"concurrency_id": "model", "concurrency_limit": 1}

        upload.upload(_guard(on_upload, len(img_outs)), [upload, state], img_outs, **model_ev)
        gallery.select(_guard(on_sample, len(img_outs)), [state], img_outs, **model_ev)
        click_img.select(
            _guard(on_click, len(click_outs)),
            [mode, state],
            click_outs,
            js=_CLICK_JS,
            show_progress="hidden",
            **model_ev,
        )
        undo.click(_guard(on_undo, len(click_outs)), [state], click_outs, **model_ev)
        clear.click(_guard(on_clear, len(click_outs)), [state], click_outs, **model_ev)

        pan_btn.click(_guard(on_panoptic, len(pan_outs)), [state], pan_outs, **model_ev)
        pan_upload.upload(
            _guard(on_pan_upload, len(img_outs)), [pan_upload, state], img_outs, **model_ev
        )
        pan_gallery.select(_guard(on_pan_sample, len(img_outs)), [state], img_outs, **model_ev)

        v_upload.upload(
            _guard(on_video_upload, len(vid_outs)), [v_upload, state], vid_outs, **model_ev
        )
        v_sample.click(_guard(on_video_sample, len(vid_outs)), [state], vid_outs, **model_ev)
        first.select(
            _guard(on_video_click, len(vid_outs)),
            [v_mode, state],
            vid_outs,
            js=_CLICK_JS,
            show_progress="hidden",
            **model_ev,
        )
        v_new.click(_guard(on_video_new, len(vid_outs)), [state], vid_outs, **model_ev)
        v_undo.click(_guard(on_video_undo, len(vid_outs)), [state], vid_outs, **model_ev)
        v_clear.click(_guard(on_video_clear, len(vid_outs)), [state], vid_outs, **model_ev)
        v_track.click(_guard(on_track, len(vid_outs)), [state], vid_outs, **model_ev)
        v_all.click(_guard(on_track_all, len(vid_outs)), [state], vid_outs, **model_ev)
    demo.queue(default_concurrency_limit=1)
    return demo


def _plain_view(c: ClickSession) -> np.ndarray | None:
    """The session's image as the panoptic tab shows it before a run (upscaled like the overlay)."""
    if c.image is None:
        return None
    from .sessions import upscale

    return upscale(c.image, c.view_scale)


def _legend_placeholder(ctx: ServerContext) -> str:
    if not ctx.has_vocabulary:
        return (
            '<div class="rapsam-legend" data-state="no-vocabulary" data-segments="0"><p class="rapsam-empty">'
            "This model has no vocabulary: restart with --classifier FILE to name segments.</p></div>"
        )
    from types import SimpleNamespace

    from .sessions import legend_html

    names = list(ctx.model.class_names)
    flags = (
        [bool(f) for f in ctx.model.thing_flags]
        if getattr(ctx.model, "thing_flags", None) is not None
        else None
    )
    empty = SimpleNamespace(segments=[], image_size=(0, 0))
    return legend_html(
        empty,
        names,
        flags,
        empty_text="Press “Segment everything” (or pick a sample) to list the segments.",
        state="empty",
    )


#: Oldest gradio this page is written for (``buttons=``, ``gr.skip``, theme / css given to ``launch``).
MIN_GRADIO = (6, 0)


def check_gradio_version(version: str = gr.__version__) -> None:
    """Raise ``RuntimeError`` naming the fix when the installed gradio is older than ``MIN_GRADIO``."""
    try:
        have = tuple(int(v) for v in version.split(".")[:2])
    except ValueError:
        return  # a development build: let it try
    if have < MIN_GRADIO:
        need = ".".join(map(str, MIN_GRADIO))
        raise RuntimeError(
            f"rapsam serve needs gradio >= {need}, found {version}: pip install -U 'gradio>={need}'"
        )


def _style() -> dict[str, Any]:
    """Theme (gradio's own fonts, served locally), CSS and the shift/alt-click script."""
    return {"theme": gr.themes.Default(primary_hue="blue"), "css": _CSS, "head": _HEAD}


def launch(
    demo: Any, ctx: ServerContext, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True
) -> Any:
    """Serve ``demo`` on ``host:port`` (no share link; uploads capped at ``ctx.limits.max_upload_mb``)."""
    kwargs: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "share": False,
        "inbrowser": False,
        "show_error": True,
        "max_file_size": int(ctx.limits.max_upload_mb * 1024 * 1024),
        "allowed_paths": [str(ctx.work_dir), *(str(p.parent) for p in ctx.samples.images[:1])],
        "prevent_thread_lock": not block,
        "quiet": False,
        "footer_links": [],
    }
    kwargs.update(_style())
    return demo.launch(**kwargs)
