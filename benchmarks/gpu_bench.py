"""GPU speed of RAP-SAM's panoptic forward: fp32 / bf16 x eager / torch.compile / CUDA graphs.

RAP-SAM (Xu et al., arXiv 2401.10228, table 1) reports real-time FPS on a GPU; issue #9's target is
rapsam_r18 in bf16 at >= 150 FPS on an H100 (800x1333, batch 1). This one self-contained script times
the raw network (backbone, neck, decoder, object adapter: ``model(x)``) of each variant for each
dtype and execution mode, checks every output against fp32 eager (max |diff| of the final mask
logits, agreement of the class argmax per query and of the mask sign per pixel), prints one table with
the card, torch / CUDA versions and date, and writes JSON. By default the timed model is the
deploy copy from ``rapsam.modeling.fuse.optimize_for_inference`` (Conv-BN folded, fast neck kernels)
when this rapsam has it (``--optimized no``: the model as built); the reference is always the model
as built::

    python benchmarks/gpu_bench.py                                  # H100: r18 + r50, 800x1333
    python benchmarks/gpu_bench.py --variants rapsam_r18 --modes eager,cudagraphs --channels-last
    python benchmarks/gpu_bench.py --device cpu --size 64x64 --quick    # CPU smoke test of the code paths

Modes: ``eager``; ``compile`` (``torch.compile``, default mode); ``cudagraphs`` (the eager forward
captured once in a ``torch.cuda.CUDAGraph`` and replayed); ``compile-cudagraphs`` (``torch.compile``
with ``mode="reduce-overhead"``). The CUDA-graph modes need a CUDA device and are skipped, with a
message, on CPU. bf16 runs under ``torch.autocast`` (weights stay fp32; matmuls and convolutions run
in bf16). Weights are random (speed does not depend on their values). A mode that fails (e.g. an op
that cannot be captured) is reported as failed in its row and the other rows still run.

``--quick`` means 3 repeats after 1 warm-up, and on CPU the ``eager`` compile backend (dynamo
tracing without inductor's C++ code generation, so the smoke test stays fast).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("eager", "compile", "cudagraphs", "compile-cudagraphs")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
TARGET = ("rapsam_r18", "bf16", 150.0)  # variant, dtype, minimum FPS (issue #9, H100)

Outputs = tuple[torch.Tensor, torch.Tensor]  # final mask logits (1, Q, h, w), class logits (1, Q, K+1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke test)")
    p.add_argument("--size", default="800x1333", help="input HxW, padded to 32 (default 800x1333)")
    p.add_argument("--variants", default="rapsam_r18,rapsam_r50")
    p.add_argument("--dtypes", default="fp32,bf16", help="fp32, bf16")
    p.add_argument("--modes", default=",".join(MODES), help=", ".join(MODES))
    p.add_argument("--repeats", type=int, default=None, help="timed calls (default 100, --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 20, --quick 1)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (default inductor; eager with --quick on CPU)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format for model and input")
    p.add_argument("--optimized", default="auto", choices=("auto", "yes", "no"),
                   help="time rapsam.modeling.fuse.optimize_for_inference(model) (Conv-BN folded, fast neck) "
                   "instead of the model as built; auto = when this rapsam has it (default)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="few repeats: a smoke test of every code path")
    p.add_argument("--out", default="gpu_bench.json", help="JSON output path (default gpu_bench.json)")
    args = p.parse_args(argv)

    def listed(text: str, known: Any, what: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in known]
        if bad or not items:
            p.error(f"unknown {what} {bad or '(none)'}; choose from {', '.join(known)}")
        return items

    import rapsam

    args.variants = listed(args.variants, rapsam.list_models(), "variant(s)")
    args.dtypes = listed(args.dtypes, DTYPES, "dtype(s)")
    args.modes = listed(args.modes, MODES, "mode(s)")
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must look like 800x1333 (HxW), got {args.size!r}")
    if min(h, w) < 32:
        p.error(f"--size sides must be >= 32, got {args.size}")
    args.hw = (h, w)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available here; smoke-test with --device cpu --size 64x64 --quick")
    args.repeats = args.repeats or (3 if args.quick else 100)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 20)
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if args.compile_backend is None:
        args.compile_backend = "eager" if (args.quick and args.device == "cpu") else "inductor"
    return args


def environment(device: str) -> dict[str, Any]:
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    if not cuda:
        try:
            with open("/proc/cpuinfo") as f:
                name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
        except OSError:
            pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
    }


def build(name: str, device: str, channels_last: bool) -> torch.nn.Module:
    """Random-weight variant with a random COCO-sized vocabulary (133 classes, 80 things)."""
    import rapsam

    torch.manual_seed(0)
    model = rapsam.build_model(name, device=device)
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(133, 1, model.classifier.embed_dim, generator=g), dim=-1)
    model.set_vocabulary(emb.to(device), [f"c{i}" for i in range(133)], [i < 80 for i in range(133)])
    model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def deploy_copy(model: torch.nn.Module, how: str) -> tuple[torch.nn.Module, bool]:
    """The model to time: the inference copy from ``optimize_for_inference`` when asked / available."""
    if how == "no":
        return model, False
    try:
        from rapsam.modeling.fuse import optimize_for_inference
    except ImportError:
        if how == "yes":
            raise SystemExit("--optimized yes, but this rapsam has no rapsam.modeling.fuse.optimize_for_inference; "
                             "use --optimized no") from None
        return model, False
    return optimize_for_inference(model), True


def make_runner(model: torch.nn.Module, x: torch.Tensor, dtype: str, mode: str, backend: str
                ) -> tuple[Callable[[], Outputs], float]:
    """A no-argument callable running one forward in ``dtype`` / ``mode``, and its setup seconds
    (compilation or graph capture, first call included)."""
    dev_type = x.device.type

    def core(inp: torch.Tensor) -> Outputs:
        ctx = (torch.autocast(dev_type, dtype=torch.bfloat16, cache_enabled=False) if dtype == "bf16"
               else contextlib.nullcontext())
        with ctx:
            final = model(inp, with_objects=True).object_outputs[-1]
        return final.mask_logits, final.cls_logits

    def sync() -> None:
        if dev_type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    if mode == "eager":

        def fn() -> Outputs:
            return core(x)
    elif mode in ("compile", "compile-cudagraphs"):
        compiled = torch.compile(core, backend=backend, dynamic=False,
                                 mode="reduce-overhead" if mode == "compile-cudagraphs" else None)

        def fn() -> Outputs:
            if mode == "compile-cudagraphs":
                torch.compiler.cudagraph_mark_step_begin()
                m, c = compiled(x)
                return m.clone(), c.clone()  # the graph's output buffers are reused by the next replay
            return compiled(x)

        with torch.no_grad():
            fn()
            fn()  # reduce-overhead records the graph on a later call
    elif mode == "cudagraphs":
        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):  # allocator and cuDNN warm-up before capture
                core(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = core(static_x)

        def fn() -> Outputs:
            graph.replay()
            return static_out
    else:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    sync()
    return fn, time.perf_counter() - t0


def time_it(fn: Callable[[], Any], warmup: int, repeats: int, device: str) -> list[float]:
    """Milliseconds per call, ``repeats`` calls after ``warmup`` untimed ones."""
    cuda = device.startswith("cuda")
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize()
        out = []
        for _ in range(repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                out.append(1e3 * (time.perf_counter() - t0))
    return out


def compare(out: Outputs, ref: Outputs) -> dict[str, float]:
    """Max |diff| of mask logits, fraction of queries with the same class argmax, of pixels with the
    same mask sign."""
    m, c = (t.float() for t in out)
    rm, rc = ref
    return {
        "max_abs_diff": float((m - rm).abs().max()),
        "class_agreement": float((c.argmax(-1) == rc.argmax(-1)).float().mean()),
        "mask_agreement": float(((m > 0) == (rm > 0)).float().mean()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    dev = args.device
    h, w = args.hw
    hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
    rows: list[dict[str, Any]] = []
    optimized = False
    for name in args.variants:
        plain = build(name, dev, args.channels_last)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, hp, wp, generator=g).to(dev)  # normalised, padded input (1, 3, Hp, Wp)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():  # reference: the model as built, fp32, eager
            ref = tuple(t.float().clone() for t in make_runner(plain, x, "fp32", "eager", args.compile_backend)[0]())
        model, optimized = deploy_copy(plain, args.optimized)
        for dtype in args.dtypes:
            for mode in args.modes:
                row: dict[str, Any] = {"model": name, "dtype": dtype, "mode": mode, "size": [h, w]}
                rows.append(row)
                if "cudagraphs" in mode and not dev.startswith("cuda"):
                    row["status"] = "skipped: CUDA graphs need a CUDA device"
                    print(f"{name} {dtype} {mode}: {row['status']}", file=sys.stderr)
                    continue
                try:
                    fn, setup = make_runner(model, x, dtype, mode, args.compile_backend)
                    times = time_it(fn, args.warmup, args.repeats, dev)
                    with torch.no_grad():
                        row.update(compare(fn(), ref))
                except Exception as e:  # noqa: BLE001 - report the failing mode in its row, keep timing the others
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    row["status"] = f"failed: {type(e).__name__}: {first[:200]}"
                    print(f"{name} {dtype} {mode}: {row['status']}", file=sys.stderr)
                    torch._dynamo.reset()
                    continue
                med = statistics.median(times)
                row.update(status="ok", median_ms=med, fps=1e3 / med, setup_s=setup, times_ms=times)
                print(f"{name} {dtype} {mode}: {med:.2f} ms ({1e3 / med:.1f} FPS)", file=sys.stderr)
        torch._dynamo.reset()
        del model, plain
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
    tv, td, tf = TARGET
    best = max((r["fps"] for r in rows if r["model"] == tv and r["dtype"] == td and r.get("status") == "ok"),
               default=None)
    target = {"description": f"{tv} {td} >= {tf:g} FPS at 800x1333 on an H100", "best_fps": best,
              "threshold_fps": tf,
              "passed": None if best is None or not dev.startswith("cuda") or tuple(args.hw) != (800, 1333)
              else best >= tf}
    config = {k: getattr(args, k) for k in ("device", "variants", "dtypes", "modes", "repeats", "warmup",
                                             "compile_backend", "channels_last", "quick")}
    config["size"] = list(args.hw)
    config["optimized"] = optimized
    return {"schema": "rapsam.gpu_bench/1", "environment": environment(dev), "config": config, "rows": rows,
            "target": target}


def format_table(doc: dict[str, Any]) -> str:
    env, cfg = doc["environment"], doc["config"]
    lines = [
        (f"rapsam GPU benchmark {env['date']}: {env['device_name']} ({env['device']}), torch {env['torch']}, "
         f"CUDA {env['cuda']}, cuDNN {env['cudnn']}"),
        (f"input {cfg['size'][0]}x{cfg['size'][1]} (padded to 32), batch 1, median of {cfg['repeats']} after "
         f"{cfg['warmup']} warm-up, compile backend {cfg['compile_backend']}, channels_last {cfg['channels_last']}, "
         f"optimize_for_inference {cfg['optimized']}, random weights; checks against the fp32 eager model as built"),
        (f"{'model':<14}{'dtype':<6}{'mode':<20}{'ms':>9}{'FPS':>9}{'setup s':>9}{'max|d| mask':>13}"
         f"{'class agree':>13}{'mask agree':>12}  status"),
    ]
    for r in doc["rows"]:
        if r.get("status") != "ok":
            lines.append(f"{r['model']:<14}{r['dtype']:<6}{r['mode']:<20}{'-':>9}{'-':>9}{'-':>9}{'-':>13}{'-':>13}"
                         f"{'-':>12}  {r['status']}")
            continue
        lines.append(f"{r['model']:<14}{r['dtype']:<6}{r['mode']:<20}{r['median_ms']:>9.2f}{r['fps']:>9.1f}"
                     f"{r['setup_s']:>9.1f}{r['max_abs_diff']:>13.3g}{100 * r['class_agreement']:>12.1f}%"
                     f"{100 * r['mask_agreement']:>11.2f}%  ok")
    t = doc["target"]
    verdict = {True: "PASS", False: "MISS", None: "n/a (needs CUDA at 800x1333)"}[t["passed"]]
    best = "-" if t["best_fps"] is None else f"{t['best_fps']:.1f}"
    lines.append(f"target: {t['description']}: best {best} FPS -> {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    doc = run(args)
    print(format_table(doc))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
