"""Speed of the RAP-SAM variants and of rapsam's inference paths, measured against each other in one run.

    python benchmarks/bench_model.py --size 512x512 --repeats 5 [--device cuda] [--variants rapsam_r18,rapsam_r50]

Prints, per variant: encoder (backbone + neck) and object-decoder times and frames per second; the
joint pass (object + prompt queries together) against two separate passes; and the interactive
predictor's cost per prompt batch against a full forward (what the cached embedding saves). Times are
medians over ``--repeats`` after one warm-up, batch 1, fp32, random weights (speed does not depend on
the values).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rapsam
from rapsam.modeling.rapsam import Prompts


def timeit(fn, repeats: int, device: str) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default=",".join(rapsam.list_models()))
    ap.add_argument("--prompts", type=int, default=10)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    dev = args.device
    print(f"device {dev}, input {h}x{w} (padded to 32), batch 1, fp32, {args.repeats} repeats, torch threads {torch.get_num_threads()}")
    rows = []
    for name in args.variants.split(","):
        torch.manual_seed(0)
        m = rapsam.build_model(name).to(dev).eval()
        d = m.classifier.embed_dim
        e = torch.nn.functional.normalize(torch.randn(133, 1, d), dim=-1)
        m.set_vocabulary(e.to(dev))
        hh, ww = -(-h // 32) * 32, -(-w // 32) * 32
        x = torch.randn(1, 3, hh, ww, device=dev)
        pts = torch.rand(1, args.prompts, 1, 2, device=dev) * torch.tensor([ww, hh], device=dev)
        prompts = Prompts(pts, torch.ones(1, args.prompts, 1, dtype=torch.long, device=dev))
        with torch.inference_mode():
            feats = m.extract_features(x)
            t_enc = timeit(lambda: m.extract_features(x), args.repeats, dev)
            t_obj = timeit(lambda: m.decode(feats), args.repeats, dev)
            t_prm = timeit(lambda: m.decode(feats, prompts, with_objects=False), args.repeats, dev)
            t_joint = timeit(lambda: m.decode(feats, prompts, with_objects=True), args.repeats, dev)
        rows.append((name, t_enc, t_obj, t_prm, t_joint))
    print()
    print(f"{'model':<18}{'encoder ms':>11}{'objects ms':>11}{'image fps':>10}{'prompts ms':>11}"
          f"{'joint ms':>10}{'2 passes ms':>12}{'joint/2 passes':>15}{'prompt/full':>12}")
    for name, te, to, tp, tj in rows:
        full = te + to
        print(f"{name:<18}{1e3 * te:>11.1f}{1e3 * to:>11.1f}{1 / full:>10.2f}{1e3 * tp:>11.1f}"
              f"{1e3 * tj:>10.1f}{1e3 * (to + tp):>12.1f}{tj / (to + tp):>15.2f}{tp / (te + tp):>12.3f}")
    print(f"\nprompts ms: {args.prompts} prompts decoded in one batch on the cached F (InteractivePredictor.predict);"
          " prompt/full: that cost relative to running the encoder again for them.")


if __name__ == "__main__":
    main()
