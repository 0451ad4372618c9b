"""Tables, ratios, issue-#9 targets, ``benchmark.json`` and the speed/size plot of ``rapsam benchmark``.

RAP-SAM (Xu et al., arXiv 2401.10228, table 1) is judged by its speed relative to the specialist
models; the targets of issue #9 are stated here as data (``TARGETS``) so they are checked the same way
in the table, in the JSON and in the tests:

* rapsam_r18 full panoptic predict at 800x1333 <= 1/8 of Mask2Former-R50's forward;
* each extra prompt on cached features <= 5 ms, and 32 prompts in one call <= 3x one;
* rapsam_r18 image + 1 click <= 1/20 of SAM ViT-B image + 1 click.

Ratios are written peer / rapsam: "8.0x" means the peer takes 8 times as long.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import SCHEMA, TASK_TITLES, TASKS, BenchmarkResult

#: (peer, peer task, rapsam task): the comparisons of the ratio table.
COMPARISONS = (
    ("mask2former_r50", "forward", "forward"),
    ("mask2former_r50", "forward", "predict"),
    ("sam_vit_b", "click", "click"),
    ("sam_vit_b", "prompt", "prompt"),
    ("sam_vit_b", "prompt32", "prompt32"),
    ("yolo11n_seg", "forward", "forward"),
    ("yolo11n_seg", "predict", "predict"),
)

#: The task each model is plotted with (its headline latency); rapsam variants use "predict".
HEADLINE = {"mask2former_r50": "forward", "sam_vit_b": "click", "yolo11n_seg": "predict"}


@dataclass(frozen=True)
class Target:
    """One speed target.

    Attributes:
        name: identifier (JSON).
        description: what the table prints.
        kind: "ratio" (peer_ms / rapsam_ms >= threshold), "latency" (ms <= threshold) or
            "scaling" (ms of ``task`` / ms of ``base_task`` <= threshold).
        task: the rapsam task measured.
        threshold: the bound.
        model: the rapsam variant it applies to (None: every variant measured).
        size: the input size it applies to (None: every size measured).
        peer, peer_task: the peer measurement of a "ratio" target.
        base_task: the denominator of a "scaling" target.
    """

    name: str
    description: str
    kind: str
    task: str
    threshold: float
    model: str | None = None
    size: tuple[int, int] | None = None
    peer: str | None = None
    peer_task: str | None = None
    base_task: str | None = None


TARGETS = (
    Target("panoptic_vs_mask2former", "r18 full panoptic predict <= 1/8 of Mask2Former-R50 forward", "ratio",
           "predict", 8.0, model="rapsam_r18", size=(800, 1333), peer="mask2former_r50", peer_task="forward"),
    Target("prompt_cached_ms", "each extra prompt on cached features <= 5 ms", "latency", "prompt", 5.0),
    Target("prompts32_vs_1", "32 prompts in one call <= 3x one prompt", "scaling", "prompt32", 3.0,
           base_task="prompt"),
    Target("click_vs_sam", "r18 image + 1 click <= 1/20 of SAM ViT-B image + 1 click", "ratio", "click", 20.0,
           model="rapsam_r18", peer="sam_vit_b", peer_task="click"),
)


@dataclass
class Ratio:
    """peer_ms / rapsam_ms for one comparison, rapsam variant and size."""

    peer: str
    peer_task: str
    model: str
    task: str
    size: tuple[int, int]
    peer_ms: float
    rapsam_ms: float

    @property
    def ratio(self) -> float:
        return self.peer_ms / self.rapsam_ms if self.rapsam_ms > 0 else math.inf


@dataclass
class TargetResult:
    """A target checked on one (variant, size): ``passed`` is None when it could not be measured."""

    target: Target
    model: str
    size: tuple[int, int] | None
    value: float | None
    passed: bool | None
    detail: str

    @property
    def need(self) -> str:
        t = self.target
        return f">= {t.threshold:g}x" if t.kind == "ratio" else (f"<= {t.threshold:g} ms" if t.kind == "latency"
                                                                  else f"<= {t.threshold:g}x")

    @property
    def shown(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:.2f} ms" if self.target.kind == "latency" else f"{self.value:.2f}x"

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


def _hw(size: tuple[int, int] | None) -> str:
    return "-" if size is None else f"{size[0]}x{size[1]}"


# ---------------------------------------------------------------------------------------- logic
def ratios(result: BenchmarkResult) -> list[Ratio]:
    """Every comparison of ``COMPARISONS`` that both sides measured, per rapsam variant and size."""
    out = []
    for size in result.config.sizes:
        for peer, ptask, task in COMPARISONS:
            pm = result.get(peer, ptask, size)
            if pm is None:
                continue
            for v in result.variants:
                rm = result.get(v, task, size)
                if rm is not None:
                    out.append(Ratio(peer, ptask, v, task, tuple(size), pm.median_ms, rm.median_ms))
    return out


def evaluate_targets(result: BenchmarkResult, targets: tuple[Target, ...] = TARGETS) -> list[TargetResult]:
    """Check each target on every (variant, size) it applies to; unmeasurable ones say why."""
    out: list[TargetResult] = []
    sizes = [tuple(s) for s in result.config.sizes]
    for t in targets:
        if t.model is not None and t.model not in result.variants:
            out.append(TargetResult(t, t.model, t.size, None, None, f"not measured: {t.model} not in --variants"))
            continue
        if t.size is not None and tuple(t.size) not in sizes:
            out.append(TargetResult(t, t.model or "-", t.size, None, None,
                                    f"not measured: {_hw(t.size)} not in --sizes"))
            continue
        if t.peer is not None and t.peer not in result.peer_names:
            why = result.skipped.get(t.peer, "not in --peers")
            out.append(TargetResult(t, t.model or "-", t.size, None, None, f"not measured: {t.peer} {why}"))
            continue
        for v in [t.model] if t.model else result.variants:
            for size in [tuple(t.size)] if t.size else sizes:
                out.append(_check(result, t, v, size))
    return out


def _check(result: BenchmarkResult, t: Target, model: str, size: tuple[int, int]) -> TargetResult:
    m = result.get(model, t.task, size)
    if m is None:
        return TargetResult(t, model, size, None, None, f"not measured: {model} {t.task}")
    ms = m.median_ms
    if t.kind == "latency":
        return TargetResult(t, model, size, ms, ms <= t.threshold, f"{ms:.2f} ms")
    if t.kind == "scaling":
        b = result.get(model, t.base_task, size)
        if b is None:
            return TargetResult(t, model, size, None, None, f"not measured: {model} {t.base_task}")
        v = ms / b.median_ms
        return TargetResult(t, model, size, v, v <= t.threshold, f"{ms:.2f} ms / {b.median_ms:.2f} ms")
    if t.kind == "ratio":
        p = result.get(t.peer, t.peer_task, size)
        if p is None:
            return TargetResult(t, model, size, None, None, f"not measured: {t.peer} {t.peer_task}")
        v = p.median_ms / ms if ms > 0 else math.inf
        return TargetResult(t, model, size, v, v >= t.threshold,
                            f"{t.peer} {p.median_ms:.1f} ms / {model} {ms:.1f} ms")
    raise ValueError(f"target {t.name!r} has unknown kind {t.kind!r}; use ratio, latency or scaling")


# ---------------------------------------------------------------------------------------- table
def _cell(ms: float | None, task: str) -> str:
    if ms is None:
        return "-"
    txt = f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"
    return f"{txt} ({1e3 / ms:.1f}fps)" if task == "video" and ms > 0 else txt


def format_report(result: BenchmarkResult) -> str:
    """The latency table per size, the peer / rapsam ratios and the target checks, as text."""
    cfg, env = result.config, result.environment
    lines = [
        (f"rapsam benchmark, {env.get('date', '?')}: device {env.get('device', '?')} ({env.get('device_name', '?')}), "
         f"{env.get('threads', '?')} torch threads, median of {cfg.repeats} after {cfg.warmup} warm-up, batch 1, "
         "fp32, random weights"),
    ]
    if "loadavg_start" in env:
        lines.append(f"machine load average (1, 5, 15 min) at start {env['loadavg_start']}"
                     + (f", at end {env['loadavg_end']}" if "loadavg_end" in env else "")
                     + f" on {env.get('cpu_count', '?')} cores")
    for name, why in result.skipped.items():
        lines.append(f"skipped {name}: {why}")
    tasks = [t for t in TASKS if any(m.task == t for m in result.measurements)]
    names = list(result.models)
    w = max([len(n) for n in names] + [14]) + 2
    for size in cfg.sizes:
        lines += ["", f"== {_hw(size)}: latency in ms (video: ms per frame and fps) =="]
        head = f"{'model':<{w}}{'params M':>9}" + "".join(f"{t:>{20 if t == 'video' else 11}}" for t in tasks)
        lines.append(head)
        for n in names:
            row = f"{n:<{w}}{result.models[n].params / 1e6:>9.1f}"
            for t in tasks:
                m = result.get(n, t, size)
                row += f"{_cell(m.median_ms if m else None, t):>{20 if t == 'video' else 11}}"
            lines.append(row)
        for v in result.variants:
            one, many = result.get(v, "prompt", size), result.get(v, "prompt32", size)
            if one is not None and many is not None and cfg.num_prompts > 1:
                extra = (many.median_ms - one.median_ms) / (cfg.num_prompts - 1)
                lines.append(f"  {v}: each prompt added to a batched call costs {extra:.2f} ms "
                             f"(({cfg.num_prompts} prompts - 1 prompt) / {cfg.num_prompts - 1})")
        rs = [r for r in ratios(result) if r.size == tuple(size)]
        if rs:
            variants = result.variants
            lines.append("  ratio peer / rapsam (x = the peer takes that many times the rapsam latency)")
            lines.append(f"  {'peer task':<28}{'rapsam task':<14}" + "".join(f"{v:>18}" for v in variants))
            for peer, ptask, task in COMPARISONS:
                cells = {r.model: r.ratio for r in rs if (r.peer, r.peer_task, r.task) == (peer, ptask, task)}
                if cells:
                    lines.append(f"  {peer + ' ' + ptask:<28}{task:<14}"
                                 + "".join(f"{(f'{cells[v]:.2f}x' if v in cells else '-'):>18}" for v in variants))
    lines += ["", "== targets (issue #9) =="]
    lines.append(f"{'target':<62}{'model':<18}{'size':<10}{'value':>11}{'need':>11}  result")
    for tr in evaluate_targets(result):
        lines.append(f"{tr.target.description:<62}{tr.model:<18}{_hw(tr.size):<10}{tr.shown:>11}{tr.need:>11}  "
                     f"{tr.verdict}" + ("" if tr.passed is not None else f" ({tr.detail})"))
    notes = sorted({f"{m.model} {m.task}: {m.note}" for m in result.measurements if m.note})
    if notes:
        lines += ["", "notes:"] + [f"  {n}" for n in notes]
    lines += ["", "tasks: " + "; ".join(f"{t} = {TASK_TITLES[t]}" for t in tasks)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- JSON
def to_dict(result: BenchmarkResult) -> dict[str, Any]:
    """The JSON document (schema ``rapsam.benchmark/1``)."""
    cfg = dataclasses.asdict(result.config)
    cfg["sizes"] = [list(s) for s in result.config.sizes]
    cfg["variants"], cfg["peers"] = list(result.config.variants), list(result.config.peers)
    return {
        "schema": SCHEMA,
        "config": cfg,
        "environment": result.environment,
        "models": {n: dataclasses.asdict(i) for n, i in result.models.items()},
        "skipped": dict(result.skipped),
        "results": [
            {"model": m.model, "task": m.task, "size": list(m.size), "median_ms": m.median_ms,
             "times_ms": [float(t) for t in m.times_ms], "note": m.note}
            for m in result.measurements
        ],
        "ratios": [
            {"peer": r.peer, "peer_task": r.peer_task, "model": r.model, "task": r.task, "size": list(r.size),
             "ratio": r.ratio, "peer_ms": r.peer_ms, "rapsam_ms": r.rapsam_ms}
            for r in ratios(result)
        ],
        "targets": [
            {"name": tr.target.name, "description": tr.target.description, "kind": tr.target.kind,
             "model": tr.model, "size": None if tr.size is None else list(tr.size), "value": tr.value,
             "threshold": tr.target.threshold, "passed": tr.passed, "detail": tr.detail}
            for tr in evaluate_targets(result)
        ],
    }


def write_json(result: BenchmarkResult, path: str | os.PathLike) -> Path:
    """Write ``to_dict(result)`` to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _finite(to_dict(result))
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=str))
    return path


def _finite(obj: Any) -> Any:
    """Non-finite floats -> None (strict JSON has no Infinity / NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_json(path: str | os.PathLike) -> BenchmarkResult:
    """A ``BenchmarkResult`` from a ``benchmark.json`` (to re-print the table or re-draw the plot).

    Raises:
        ValueError: the file is not a ``rapsam.benchmark/1`` document.
    """
    from .runner import BenchmarkConfig, Measurement, ModelInfo

    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a {SCHEMA} document (written by `rapsam benchmark`)")
    cfg = dict(doc["config"])
    cfg["sizes"] = [tuple(s) for s in cfg["sizes"]]
    fields = {f.name for f in dataclasses.fields(BenchmarkConfig)}
    result = BenchmarkResult(BenchmarkConfig(**{k: v for k, v in cfg.items() if k in fields}), doc["environment"])
    result.models = {n: ModelInfo(**i) for n, i in doc["models"].items()}
    result.measurements = [Measurement(r["model"], r["task"], tuple(r["size"]), list(r["times_ms"]), r["note"])
                           for r in doc["results"]]
    result.skipped = dict(doc["skipped"])
    return result


# ---------------------------------------------------------------------------------------- plot
def plot_points(result: BenchmarkResult, size: tuple[int, int]) -> list[tuple[str, float, float]]:
    """(label, parameters in millions, headline latency ms) per model measured at ``size``."""
    pts = []
    for name, info in result.models.items():
        task = HEADLINE.get(name, "predict")
        m = result.get(name, task, size)
        if m is None:  # fall back to the first task measured
            m = next((result.get(name, t, size) for t in TASKS if result.get(name, t, size) is not None), None)
        if m is not None:
            pts.append((f"{name} ({m.task})", info.params / 1e6, m.median_ms))
    return pts


def write_plot(result: BenchmarkResult, path: str | os.PathLike, backend: str = "auto") -> Path:
    """Latency against parameter count, one point per model (labelled), one panel per input size.

    Args:
        backend: "matplotlib", "pil" (no matplotlib needed) or "auto" (matplotlib if installed).

    Returns:
        The PNG path.

    Raises:
        ValueError: an unknown ``backend``, or nothing measured to plot.
    """
    if backend not in ("auto", "matplotlib", "pil"):
        raise ValueError(f"plot backend must be auto, matplotlib or pil, got {backend!r}")
    panels = [(tuple(s), plot_points(result, tuple(s))) for s in result.config.sizes]
    panels = [(s, p) for s, p in panels if p]
    if not panels:
        raise ValueError("nothing to plot: the benchmark measured no model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if backend == "auto":
        import importlib.util

        backend = "matplotlib" if importlib.util.find_spec("matplotlib") is not None else "pil"
    sub = f"{result.environment.get('device', '?')}, {result.environment.get('threads', '?')} threads"
    if backend == "matplotlib":
        _plot_matplotlib(panels, path, sub)
    else:
        _plot_pil(panels, path, sub)
    return path


def _plot_matplotlib(panels: list, path: Path, sub: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(panels), 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (size, pts) in zip(axes, panels):
        placed: list[tuple[float, float]] = []
        for label, x, y in sorted(pts, key=lambda p: (p[2], p[1])):
            ax.scatter([x], [y], s=40, color="tab:red" if label.startswith("rapsam") else "tab:blue")
            # labels of points at similar latency and size would overlap: stack them downwards
            near = sum(1 for px, py in placed if abs(math.log10(py / y)) < 0.08 and abs(math.log10(px / x)) < 0.8)
            placed.append((x, y))
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 - 12 * near), fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(x=0.35, y=0.2)  # room for the labels
        ax.set_xlabel("parameters (millions, log)")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{_hw(size)} input, {sub}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_pil(panels: list, path: Path, sub: str) -> None:
    from PIL import Image, ImageDraw

    pw, ph, m = 560, 440, 60
    img = Image.new("RGB", (pw * len(panels), ph), "white")
    d = ImageDraw.Draw(img)
    for i, (size, pts) in enumerate(panels):
        x0 = i * pw
        xs = [math.log10(max(p[1], 1e-6)) for p in pts]
        ys = [math.log10(max(p[2], 1e-6)) for p in pts]
        lo_x, hi_x = min(xs) - 0.2, max(xs) + 0.4
        lo_y, hi_y = min(ys) - 0.2, max(ys) + 0.2
        box = (x0 + m, 30, x0 + pw - 20, ph - m)
        d.rectangle(box, outline="black")
        d.text((x0 + m, 8), f"{_hw(size)} input, {sub}", fill="black")
        d.text((x0 + m, ph - m + 20), "parameters (M, log)", fill="black")
        d.text((x0 + 4, 30), "ms (log)", fill="black")
        for label, lx, ly, (_, px, py) in zip([p[0] for p in pts], xs, ys, pts):
            u = box[0] + (lx - lo_x) / (hi_x - lo_x) * (box[2] - box[0])
            v = box[3] - (ly - lo_y) / (hi_y - lo_y) * (box[3] - box[1])
            colour = "red" if label.startswith("rapsam") else "blue"
            d.ellipse((u - 4, v - 4, u + 4, v + 4), fill=colour)
            d.text((u + 6, v - 12), f"{label} {py:.0f} ms, {px:.1f} M", fill="black")
    img.save(path)
