"""Throughput of video tracking next to single-image inference, on the same frames and variant.

Prints frames per second of:

* ``network``: the model forward alone (backbone, neck, decoder, object adapter), one frame at a time;
* ``image``: ``PanopticPredictor.predict(frame, tasks=("instance",))`` per frame (the image API);
* ``online``: ``VideoPredictor.track`` in online mode (instances with track ids), window 1 (and
  ``--window`` if larger);
* ``official``: the official clip protocol (results after the last frame).

and the tracking overhead: online time vs image time, and the share of the association step
(``speed["tracking"]``) in the online frame time. Frames come from the synthetic video generator
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


def _time(fn, frames, device, warmup: int) -> float:
    for f in frames[:warmup]:
        fn(f)
    _sync(device)
    t = time.perf_counter()
    for f in frames:
        fn(f)
    _sync(device)
    return time.perf_counter() - t


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
    p.add_argument("--repeats", type=int, default=1, help="repeat each measurement, report the median")
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
    rows = []

    @torch.inference_mode()
    def network(f):
        return model(image.prepare(f).tensor)

    def median(fn):
        return statistics.median(fn() for _ in range(args.repeats))


    timed = frames[args.warmup:]
    t_net = median(lambda: _time(network, timed, args.device, args.warmup))
    rows.append(("network (forward only)", t_net))
    t_img = median(lambda: _time(lambda f: image.predict(f, tasks=("instance",)), timed, args.device, args.warmup))
    rows.append(("image: PanopticPredictor instance", t_img))

    def run_video(**kw):
        list(VideoPredictor(model, image_scale=scale, **kw).track(frames[: args.warmup]))  # warm-up
        vp = VideoPredictor(model, image_scale=scale, **kw)
        best = None
        for _ in range(args.repeats):
            _sync(args.device)
            t = time.perf_counter()
            speed: dict[str, float] = {}
            for _, r in vp.track(timed):
                for k, v in r.speed.items():
                    speed[k] = speed.get(k, 0.0) + v
            _sync(args.device)
            dt = time.perf_counter() - t
            if best is None or dt < best[0]:
                best = (dt, speed)
        return best[0], best[1], vp

    t_on, sp_on, vp_on = run_video(mode="online")
    rows.append(("video: online (window 1)", t_on))
    if args.window > 1:
        t_w, _, _ = run_video(mode="online", window=args.window)
        rows.append((f"video: online (window {args.window})", t_w))
    t_off, _, _ = run_video(mode="official")
    rows.append(("video: official (clips of 3/5)", t_off))

    print(f"{'mode':36s} {'fps':>8s} {'ms/frame':>9s}")
    for label, t in rows:
        print(f"{label:36s} {n / t:8.2f} {1e3 * t / n:9.1f}")
    track_ms = sp_on.get("tracking", 0.0) / n
    print(f"online vs image API: {100 * (t_on - t_img) / t_img:+.1f}% time per frame "
          f"(tracking overhead target < 10%)")
    print(f"online vs network forward: {100 * (t_on - t_net) / t_net:+.1f}% (pre/post-processing + association)")
    print(f"association step: {track_ms:.2f} ms/frame = {100 * track_ms / (1e3 * t_on / n):.1f}% of the online "
          f"frame time; {vp_on.num_tracks} tracks started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
