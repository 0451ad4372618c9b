"""``rapsam demo``: all three tasks on generated sample scenes and a generated video.

Writes to ``--out`` (default ``rapsam_demo``): panoptic overlays + COCO panoptic PNG/JSON, an
interactive overlay from a few clicks and a box, an overlay video of online tracking and one of
prompted tracking (H.264 mp4), YouTube-VIS JSON, and ``index.html`` showing everything side by side
with timings. The scenes come from ``rapsam.data.synth`` (fixed seed), the data the bundled demo
model was trained on.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import add_model_args, load_model, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run panoptic, interactive and video segmentation on bundled samples")
    p.add_argument("--out", default="rapsam_demo", help="output folder (default rapsam_demo)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated scenes and video")
    p.add_argument("--size", type=int, default=192, help="side of the generated scenes (pixels; the demo model was trained at 192)")
    p.add_argument("--frames", type=int, default=24, help="frames of the generated video")
    add_model_args(p)
    p.set_defaults(func=run)


def _timed(timings: dict, key: str):
    class _T:
        def __enter__(self):
            self.t = time.perf_counter()

        def __exit__(self, *exc):
            timings[key] = 1e3 * (time.perf_counter() - self.t)

    return _T()


def run(args: argparse.Namespace) -> int:
    from ..data.synth import generate
    from ..evaluation.interactive import coco_sam_click
    from ..io.image import write_png
    from ..io.video import VideoWriter
    from ..predictor import InteractivePredictor, PanopticPredictor
    from ..predictor.video import VideoPredictor
    from ..visualize import draw_prompts, hstack_images

    t_start = time.perf_counter()
    out = Path(args.out)
    (out / "panoptic").mkdir(parents=True, exist_ok=True)
    model = load_model(args)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rapsam_demo_") as tmp:
        with _timed(timings, "generate samples"):
            paths = generate(tmp, images=4, videos=2, size=args.size, seed=args.seed, frames=args.frames, val_fraction=0.5)
        truth = paths.truth
        scenes = [im for im in truth.images][:3]
        video = truth.videos[0]

        # ---------------------------------------------------------------- panoptic
        pan = PanopticPredictor(model)
        pan_entries, pan_anns = [], []
        for k, sc in enumerate(scenes):
            with _timed(timings, f"panoptic {k}"):
                pred = pan.predict(sc.image, tasks=("panoptic", "instance"))
            name = f"scene{k}"
            write_png(out / f"{name}.png", sc.image)
            write_png(out / f"{name}_panoptic.png", pred.panoptic.plot(sc.image))
            ann = pred.panoptic.save(out / "panoptic" / f"{name}.png", image_id=k)
            pan_anns.append(ann)
            segs = [f"{s.name} ({s.score:.2f})" for s in pred.panoptic.segments]
            pan_entries.append((name, segs, timings[f"panoptic {k}"]))
        cats = [{"id": i, "name": n, "isthing": int(t)} for i, (n, t) in enumerate(zip(model.class_names, model.thing_flags))]
        write_json(out / "panoptic.json", {"annotations": pan_anns, "categories": cats})

        # ---------------------------------------------------------------- interactive
        sc = scenes[0]
        things = [s for s in sc.segments if s.is_thing and s.mask.sum() >= 40]
        stuff = [s for s in sc.segments if not s.is_thing and s.mask.sum() >= 40]
        clicks = np.array([coco_sam_click(s.mask) for s in (things[:2] + stuff[:1])], dtype=np.float64)
        box_src = things[2] if len(things) > 2 else (things[0] if things else sc.segments[0])
        ys, xs = np.nonzero(box_src.mask)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)
        ip = InteractivePredictor(model)
        with _timed(timings, "interactive: encode image"):
            ip.set_image(sc.image)
        with _timed(timings, f"interactive: decode {len(clicks)} clicks + 1 box"):
            r_clicks = ip.predict(points=clicks)
            r_box = ip.predict(boxes=box)
        masks = np.concatenate([r_clicks.masks.numpy(), r_box.masks.numpy()])
        ious = np.concatenate([r_clicks.iou.numpy(), r_box.iou.numpy()])
        from ..visualize import draw_masks

        vis = draw_masks(sc.image, masks, scores=ious, labels=[f"click {i + 1}" for i in range(len(clicks))] + ["box"])
        vis = draw_prompts(vis, clicks, np.ones(len(clicks), dtype=np.int64), box)
        write_png(out / "interactive.png", vis)
        inter = []
        for i, (m, iou) in enumerate(zip(masks, ious)):
            gt = (things[:2] + stuff[:1] + [box_src])[i].mask
            inter.append({"prompt": clicks[i].tolist() if i < len(clicks) else {"box": box[0].tolist()},
                          "predicted_iou": float(iou), "iou_with_truth": float((m & gt).sum() / max((m | gt).sum(), 1))})
        write_json(out / "interactive.json", inter)

        # ---------------------------------------------------------------- video
        frames = video.frames
        fps = 8.0
        vp = VideoPredictor(model, mode="online")
        t0 = time.perf_counter()
        results = list(vp.track(frames, keep_images=True))
        timings[f"video: online tracking, {len(frames)} frames"] = 1e3 * (time.perf_counter() - t0)
        from ..predictor.video import YouTubeVISWriter

        ytw = YouTubeVISWriter(video_id=0)
        with VideoWriter(out / "tracking.mp4", fps) as w:
            for idx, res in results:
                ytw.add(idx, res.instances)
                w.write(res.plot(score_thr=0.3))
        ytw.save(out / "ytvis_results.json", num_frames=len(frames))
        n_tracks = len({int(t) for _, r in results for t in (r.track_ids.tolist() if r.track_ids is not None else [])})

        # prompted tracking of one object clicked on the first frame
        tr = next((t for t in video.tracks if t.is_thing and t.masks[0].sum() >= 30), None)
        prompted_iou = None
        if tr is not None:
            px, py = coco_sam_click(tr.masks[0])
            state = vp.init_state(frames)
            vp.add_prompt(state, 0, 1, points=[[px, py]])
            t0 = time.perf_counter()
            prop = list(vp.propagate(state, keep_images=True))
            timings[f"video: prompted tracking, {len(prop)} frames"] = 1e3 * (time.perf_counter() - t0)
            ious = []
            with VideoWriter(out / "prompted.mp4", fps) as w:
                for idx, res in prop:
                    m = res.instances.masks[0].numpy()
                    g = tr.masks[idx]
                    if g.any():
                        ious.append((m & g).sum() / max((m | g).sum(), 1))
                    w.write(draw_prompts(res.plot(), np.array([[px, py]]), np.array([1])) if idx == 0 else res.plot())
            prompted_iou = float(np.mean(ious)) if ious else None
        write_png(out / "video_first_last.png", hstack_images([results[0][1].plot(score_thr=0.3), results[-1][1].plot(score_thr=0.3)]))

    total = time.perf_counter() - t_start
    summary = {"model": model.config.name, "classes": list(model.class_names), "timings_ms": timings,
               "interactive": inter, "video": {"frames": len(frames), "tracks": n_tracks, "prompted_mean_iou": prompted_iou},
               "total_s": total}
    write_json(out / "summary.json", summary)
    _write_html(out, pan_entries, inter, summary)
    print(f"demo done in {total:.1f} s: {len(scenes)} panoptic scenes, {len(inter)} prompts, "
          f"{len(frames)} video frames ({n_tracks} tracks)")
    print(f"open {out.resolve() / 'index.html'}")
    return 0


def _write_html(out: Path, pan_entries: list, inter: list, summary: dict) -> None:
    e = html.escape
    rows = "".join(
        f"<figure><img src='{n}.png'><img src='{n}_panoptic.png'><figcaption>{e(', '.join(segs) or 'no segments')}"
        f" &middot; {t:.0f} ms</figcaption></figure>"
        for n, segs, t in pan_entries
    )
    inter_rows = "".join(
        f"<tr><td>{e(json.dumps(r['prompt']))}</td><td>{r['predicted_iou']:.2f}</td><td>{r['iou_with_truth']:.2f}</td></tr>"
        for r in inter
    )
    timing_rows = "".join(f"<tr><td>{e(k)}</td><td>{v:.0f} ms</td></tr>" for k, v in summary["timings_ms"].items())
    v = summary["video"]
    piou = "n/a" if v["prompted_mean_iou"] is None else f"{v['prompted_mean_iou']:.2f}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>rapsam demo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ margin-bottom: 4px; }} .sub {{ color: #666; margin-top: 0; }}
section {{ margin: 24px 0; }} figure {{ display: inline-block; margin: 8px; }}
img, video {{ image-rendering: pixelated; width: 320px; border: 1px solid #ccc; margin-right: 4px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
</style></head><body>
<h1>rapsam demo</h1>
<p class="sub">model <b>{e(summary['model'])}</b> &middot; classes: {e(', '.join(summary['classes']))} &middot;
total {summary['total_s']:.1f} s</p>
<section><h2>Panoptic segmentation</h2>{rows}
<p><a href="panoptic.json">panoptic.json</a> (COCO panoptic) &middot; PNGs in <a href="panoptic/">panoptic/</a></p></section>
<section><h2>Interactive segmentation</h2>
<figure><img src="interactive.png"><figcaption>3 clicks and a box; one mask per prompt</figcaption></figure>
<table><tr><th>prompt</th><th>predicted IoU</th><th>IoU with truth</th></tr>{inter_rows}</table>
<p><a href="interactive.json">interactive.json</a></p></section>
<section><h2>Video: tracking</h2>
<video src="tracking.mp4" controls loop autoplay muted></video>
<video src="prompted.mp4" controls loop autoplay muted></video>
<p>left: online video instance segmentation ({v['frames']} frames, {v['tracks']} track ids);
right: one object clicked on frame 0 and propagated (mean IoU with truth {piou}).
<a href="ytvis_results.json">ytvis_results.json</a></p>
<img src="video_first_last.png" style="width: 660px"></section>
<section><h2>Timings (this CPU)</h2><table>{timing_rows}</table></section>
</body></html>
"""
    (out / "index.html").write_text(page)
    print(f"wrote {out / 'index.html'}", file=sys.stderr)
