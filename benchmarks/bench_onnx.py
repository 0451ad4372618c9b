"""onnxruntime vs eager torch on the panoptic path (encoder + panoptic decoder), same process, same threads.

    python benchmarks/bench_onnx.py [--variant rapsam_r18] [--sizes 512x512,800x1333] [--threads 2]
        [--repeats 10] [--onnx DIR] [--deform-conv onnx|decomposed] [--profile]

Builds the variant with random weights (speed does not depend on the values; seed 0) and a random
133-class vocabulary, exports it with ``rapsam.export.export_onnx`` unless ``--onnx`` names an existing
export of the same variant, then times, per input size (batch 1, fp32, CPU):

* torch: ``model.extract_features`` + ``model.decode(with_objects=True)`` under ``inference_mode``
  with ``torch.set_num_threads(threads)``;
* the torch predictor's own inference path, ``PanopticPredictor(model).predict_torch`` (whatever
  speed-ups the predictor applies by default);
* onnxruntime: the same two calls on ``rapsam.runtime.OnnxRapSam`` (``num_threads=threads``).

The three paths run back to back in each of ``--repeats`` rounds (after ``--warmup`` rounds), so a
load change on a shared machine hits all of them; medians over rounds and the median of the per-round
ratios ORT / torch are printed (target: <= 0.75). ``--profile`` turns on onnxruntime's profiler and
prints the time per operator type of each graph.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import rapsam
from rapsam.export import export_onnx
from rapsam.predictor import PanopticPredictor
from rapsam.predictor.transforms import PreparedImage
from rapsam.runtime import OnnxRapSam


def profile_summary(path: str, top: int = 8) -> list[tuple[str, float, float]]:
    """onnxruntime profile JSON -> [(op type, total ms, share)] of the node events, largest first."""
    events = json.loads(Path(path).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e.get("args", {}).get("op_name", "?")] += e.get("dur", 0) / 1e3
    total = sum(per_op.values()) or 1.0
    rows = sorted(per_op.items(), key=lambda kv: -kv[1])[:top]
    return [(op, ms, ms / total) for op, ms in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="rapsam_r18")
    ap.add_argument(
        "--sizes", default="512x512,800x1333", help="comma-separated HxW (padded to 32)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument(
        "--onnx",
        help="existing export of --variant, e.g. from `rapsam export onnx --weights none --variant "
        "rapsam_r18` (the same seed-0 weights); default: export to a temporary directory",
    )
    ap.add_argument("--deform-conv", default="onnx", choices=("onnx", "decomposed"))
    ap.add_argument(
        "--profile", action="store_true", help="onnxruntime profiling: time per operator type"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = rapsam.build_model(args.variant).eval()
    d = model.classifier.embed_dim
    g = torch.Generator().manual_seed(0)
    model.set_vocabulary(torch.nn.functional.normalize(torch.randn(133, 1, d, generator=g), dim=-1))
    onnx_dir = args.onnx
    if onnx_dir is None:
        onnx_dir = tempfile.mkdtemp(prefix=f"{args.variant}_onnx_")
        t0 = time.perf_counter()
        export_onnx(
            model,
            onnx_dir,
            deform_conv=args.deform_conv,
            check=False,
            source=f"random:{args.variant}",
        )
        print(f"exported {args.variant} to {onnx_dir} in {time.perf_counter() - t0:.0f} s")
    so = None
    if args.profile:
        import onnxruntime

        so = onnxruntime.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort_profile")
    ort_model = OnnxRapSam(onnx_dir, num_threads=args.threads, session_options=so)
    if ort_model.config.name != args.variant:
        raise SystemExit(f"{onnx_dir} holds {ort_model.config.name}, not {args.variant}")
    ort_model.set_vocabulary(model.classifier.embeddings(), model.class_names, model.thing_flags)

    print(
        f"{args.variant}, batch 1, fp32, CPU, {args.threads} threads both sides (torch {torch.__version__}, "
        f"onnxruntime {ort_model._ort.__version__}); {args.warmup} warm-up rounds, then {args.repeats} "
        "rounds each running the three paths back to back; medians over rounds"
    )
    print(
        f"{'size':>10}{'torch enc':>11}{'torch dec':>11}{'torch ms':>10}{'pred ms':>9}{'ort enc':>9}"
        f"{'ort dec':>9}{'ort ms':>8}{'ort/torch':>10}{'ort/pred':>9}{'max|diff|':>11}{'max|ref|':>10}"
    )
    predictor = PanopticPredictor(model)
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.lower().split("x"))
        hh, ww = -(-h // 32) * 32, -(-w // 32) * 32
        x = torch.randn(1, 3, hh, ww, generator=g)
        prepared = PreparedImage(x, (hh, ww), (hh, ww), (hh, ww))
        rounds = []
        for i in range(args.warmup + args.repeats):
            with torch.inference_mode():
                t0 = time.perf_counter()
                f_t = model.extract_features(x)
                t1 = time.perf_counter()
                ref = model.decode(f_t, with_objects=True).object_outputs[-1].mask_logits
                t2 = time.perf_counter()
                predictor.predict_torch(prepared)
                t3 = time.perf_counter()
            f_o = ort_model.extract_features(x)
            t4 = time.perf_counter()
            got = ort_model.decode(f_o, with_objects=True).object_outputs[-1].mask_logits
            t5 = time.perf_counter()
            if i >= args.warmup:
                rounds.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4))
        t_enc, t_dec, t_pred, o_enc, o_dec = (
            statistics.median(r[j] for r in rounds) for j in range(5)
        )
        tt = statistics.median(r[0] + r[1] for r in rounds)
        to = statistics.median(r[3] + r[4] for r in rounds)
        ratio_t = statistics.median((r[3] + r[4]) / (r[0] + r[1]) for r in rounds)
        ratio_p = statistics.median((r[3] + r[4]) / r[2] for r in rounds)
        diff = (got - ref).abs().max().item()  # large if --onnx holds other weights
        print(
            f"{hh}x{ww:<5}{1e3 * t_enc:>10.1f}{1e3 * t_dec:>11.1f}{1e3 * tt:>10.1f}{1e3 * t_pred:>9.1f}"
            f"{1e3 * o_enc:>9.1f}{1e3 * o_dec:>9.1f}{1e3 * to:>8.1f}{ratio_t:>10.2f}{ratio_p:>9.2f}"
            f"{diff:>11.2e}{ref.abs().max().item():>10.1f}"
        )
    print(
        "torch = eager model.extract_features + model.decode; pred = PanopticPredictor(model).predict_torch "
        "(the torch predictor's default inference path); ort = OnnxRapSam, same two calls; ratios are "
        "medians of the per-round ratios; max|diff| = final mask logits, ort vs eager (max|ref|: their scale)"
    )
    if args.profile:
        for name, sess in ort_model._sessions.items():
            path = sess.end_profiling()
            print(f"\nonnxruntime profile, {name} (all sizes together): op type, ms, share")
            for op, ms, share in profile_summary(path):
                print(f"  {op:<24}{ms:>10.1f}{100 * share:>7.1f}%")


if __name__ == "__main__":
    main()
