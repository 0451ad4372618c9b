"""Throughput of video tracking next to single-image inference, on the same frames and variant.

Prints frames per second of:

* ``network``: the model forward alone (backbone, neck, decoder, object adapter), one frame at a time;
* ``image``: ``PanopticPredictor.predict(frame, tasks=("instance",))`` per frame (the image API);
* ``online``: ``VideoPredictor.track`` in online mode (instances with track ids), window 1 (and
  ``--window`` if larger);
* ``official``: the official clip protocol (results after the last frame).

Network, image API and online mode are timed frame by frame, interleaved (the three see the same
machine load, which matters on a shared CPU), and the tracking overhead is the median per-frame
ratio online / image API, with the share of the association step (``speed["tracking"]``) in the
online frame time. Frames come from the synthetic video generator
(moving, crossing, occluding shapes). Not a test: run it by hand::

    python benchmarks/bench_video.py --size 512 --frames 60                    # random r18, CPU
    python benchmarks/bench_video.py --weights demo --size 128 --frames 100    # the demo model
    python benchmarks/bench_video.py --size 736,1280 --device cuda             # 720p-like frames
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _frames(h: int, w: int, n: int) -> list[np.ndarray]:
    """Synthetic video frames of size (h, w): a square video from rapsam.data.synth, resized."""
    from PIL import Image

    from rapsam.data.synth import generate

    side = max(32, min(1024, max(h, w)))
    with tempfile.TemporaryDirectory() as d:
        truth = generate(Path(d) / "s", images=0, videos=1, size=side, frames=max(n, 2), val_fraction=0.0).truth
    frames = truth.videos[0].frames[:n]
    if (h, w) != (side, side):
        frames = [np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BILINEAR)) for f in frames]
    return frames


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="rapsam_r18", help="variant (random weights unless --weights)")
    p.add_argument("--weights", default=None, help="weights file, or 'demo' for the bundled demo model")
    p.add_argument("--size", default="256", help="frame size S or H,W (default 256)")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--window", type=int, default=1, help="also time online mode with this window")
    p.add_argument("--image-scale", default="none", help="LONG,SHORT test resize, or 'none' (default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=1, help="passes over the frames")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import rapsam
    from rapsam.predictor import PanopticPredictor, VideoPredictor

    hw = [int(v) for v in args.size.split(",")]
    h, w = (hw[0], hw[0]) if len(hw) == 1 else hw
    scale = None if args.image_scale.lower() == "none" else tuple(int(v) for v in args.image_scale.split(","))
    if args.weights == "demo" or (args.weights and args.weights.endswith(".safetensors")):
        model = rapsam.build_model(weights=args.weights, device=args.device)
    else:
        model = rapsam.build_model(args.model, weights=args.weights, device=args.device)
    if not model.classifier.is_set:  # random vocabulary of COCO size (80 things + 53 stuff)
        g = torch.Generator().manual_seed(0)
        emb = torch.nn.functional.normalize(torch.randn(133, 1, model.classifier.embed_dim, generator=g), dim=-1)
        model.set_vocabulary(emb.to(args.device), [f"c{i}" for i in range(133)], [i < 80 for i in range(133)])
    frames = _frames(h, w, args.frames + args.warmup)
    n = args.frames
    name = getattr(model.config, "name", args.model)
    print(f"{name} on {args.device} ({torch.get_num_threads()} threads), {n} frames of {h}x{w}, "
          f"image_scale={scale}, torch {torch.__version__}")

    image = PanopticPredictor(model, image_scale=scale)
    timed = frames[args.warmup:]

    @torch.inference_mode()
    def network(f):
        return model(image.prepare(f).tensor)

    def timed_call(fn, *a, **kw) -> tuple[float, object]:
        _sync(args.device)
        t = time.perf_counter()
        out = fn(*a, **kw)
        _sync(args.device)
        return time.perf_counter() - t, out

    def run_all(**kw):
        return list(VideoPredictor(model, image_scale=scale, **kw).track(timed))

    # warm-up (kernels, allocator, scipy import)
    for f in frames[: args.warmup]:
        network(f)
        image.predict(f, tasks=("instance",))
    list(VideoPredictor(model, image_scale=scale).track(frames[: args.warmup]))

    # Interleaved per frame: network, image API, one online step (window 1 yields each frame as soon as it
    # is read), so the three see the same machine load; medians and per-frame ratios are reported.
    per = {"network": [], "image": [], "online": []}
    ratio_img, ratio_net = [], []
    speed: dict[str, float] = {}
    for _ in range(args.repeats):
        vp = VideoPredictor(model, image_scale=scale)
        stream = vp.track(iter(timed))
        for f in timed:
            a, _ = timed_call(network, f)
            b, _ = timed_call(image.predict, f, tasks=("instance",))
            c, (_, res) = timed_call(next, stream)
            for k, v in res.speed.items():
                speed[k] = speed.get(k, 0.0) + v
            per["network"].append(a)
            per["image"].append(b)
            per["online"].append(c)
            ratio_img.append(c / b)
            ratio_net.append(c / a)
    n_steps = len(per["online"])
    rows = [(f"{k} (median per frame)", statistics.median(v) * n) for k, v in
            zip(("network (forward only)", "image: PanopticPredictor instance", "video: online (window 1)"),
                per.values())]
    for label, kw in [("video: official (clips of 3/5)", {"mode": "official"})] + (
            [(f"video: online (window {args.window})", {"mode": "online", "window": args.window})]
            if args.window > 1 else []):
        t = min(timed_call(run_all, **kw)[0] for _ in range(args.repeats))
        rows.append((f"{label} (best run)", t))

    print(f"{'mode':52s} {'fps':>8s} {'ms/frame':>9s}")
    for label, t in rows:
        print(f"{label:52s} {n / t:8.2f} {1e3 * t / n:9.1f}")
    track_ms = speed.get("tracking", 0.0) / n_steps
    on_ms = 1e3 * statistics.median(per["online"])
    print(f"online / image API, median per-frame ratio: {statistics.median(ratio_img):.3f} "
          f"({100 * (statistics.median(ratio_img) - 1):+.1f}%; tracking overhead target < 10%)")
    print(f"online / network forward, median per-frame ratio: {statistics.median(ratio_net):.3f} "
          f"({100 * (statistics.median(ratio_net) - 1):+.1f}%: pre/post-processing + association)")
    print(f"association step (detections + matching): {track_ms:.2f} ms/frame = {100 * track_ms / on_ms:.1f}% of "
          f"the online frame time; {vp.tracker.num_created} tracks started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
