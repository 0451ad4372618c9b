"""Speed of the RAP-SAM variants against peer models, measured in one process (``rapsam benchmark``).

RAP-SAM's claim (Xu et al., arXiv 2401.10228, section 4 and table 1) is real-time speed for
interactive, panoptic and video segmentation with one model. This package times every task through
the public predictors, next to peers built from their own public code with random weights (nothing is
downloaded): Mask2Former-R50 (transformers), SAM ViT-B (transformers) and YOLO11n-seg (ultralytics).

* ``runner``: the timing loop (warm-up, interleaved repeats, median) and ``run_benchmark``;
* ``peers``: the peer builders and the offline guard;
* ``report``: the latency / ratio / target tables, ``benchmark.json`` and the speed/size plot.

Re-exports only; nothing is imported from the peer libraries until a peer is built.
"""

from .report import (
    TARGETS,
    Target,
    evaluate_targets,
    format_report,
    ratios,
    read_json,
    write_json,
    write_plot,
)
from .runner import (
    BenchmarkConfig,
    BenchmarkResult,
    Measurement,
    median,
    parse_sizes,
    run_benchmark,
    time_interleaved,
)

__all__ = [
    "TARGETS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "Measurement",
    "Target",
    "evaluate_targets",
    "format_report",
    "median",
    "parse_sizes",
    "ratios",
    "read_json",
    "run_benchmark",
    "time_interleaved",
    "write_json",
    "write_plot",
]
