"""``rapsam benchmark``: rapsam's tasks against Mask2Former-R50, SAM ViT-B and YOLO11n-seg in one run.

RAP-SAM (arXiv 2401.10228) claims real-time speed for interactive, panoptic and video segmentation;
this command measures it next to the peers on the same input, thread count and machine, with random
weights and no download (see ``rapsam.benchmarking``). Prints the latency table, the peer / rapsam
ratios and the issue-#9 targets (PASS / MISS), and writes ``benchmark.json`` and ``benchmark.png``
(latency against parameter count) to ``--out``::

    rapsam benchmark --sizes 512x512,800x1333 --variants rapsam_r18,rapsam_r50 --threads 2 --repeats 3
    rapsam benchmark --sizes 64x64 --variants rapsam_tiny --peers none --repeats 1     # smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="time rapsam's tasks against Mask2Former, SAM and YOLO in one run",
        description="Time every rapsam task (panoptic forward and predict, image + 1 click, prompts on cached "
        "features, online video) against Mask2Former-R50, SAM ViT-B and YOLO11n-seg built with random weights, "
        "in one process on the same input and threads; print latencies, peer/rapsam ratios and the issue-#9 "
        "targets, and write benchmark.json and benchmark.png.",
    )
    p.add_argument("--sizes", default="512x512,800x1333", help="input sizes HxW, comma-separated (default 512x512,800x1333)")
    p.add_argument("--variants", default="all", help="rapsam variants, comma-separated, or 'all' (default all)")
    p.add_argument("--peers", default="all",
                   help="peers: mask2former, sam, yolo, comma-separated, 'all' (default) or 'none'; "
                   "a peer whose library is missing is skipped")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--video-frames", type=int, default=3, help="frames of the online video pass (default 3)")
    p.add_argument("--out", default="rapsam_benchmark", help="folder for benchmark.json and benchmark.png")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..benchmarking.peers import PEERS
    from ..benchmarking.report import format_report, write_json, write_plot
    from ..benchmarking.runner import BenchmarkConfig, parse_names, parse_sizes, run_benchmark
    from ..models import list_models

    config = BenchmarkConfig(
        sizes=parse_sizes(args.sizes),
        variants=parse_names(args.variants, list_models(), "rapsam variant(s)"),
        peers=parse_names(args.peers, list(PEERS), "peer(s)", allow_none=True),
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        device=args.device,
        video_frames=args.video_frames,
    )
    config.validate()
    result = run_benchmark(config, verbose=not args.quiet)
    print(format_report(result))
    out = Path(args.out)
    js = write_json(result, out / "benchmark.json")
    png = write_plot(result, out / "benchmark.png")
    print(f"\nwrote {js} and {png}", file=sys.stderr)
    return 0
