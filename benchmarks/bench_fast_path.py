"""The fast inference path, step by step: latency and output difference of each step (issue #9).

    python benchmarks/bench_fast_path.py [--variant rapsam_r18] [--sizes 800x1333,512x512] [--threads 2]
                                         [--repeats 3] [--keep 30] [--prompts 32] [--profile]

On a shared machine set OMP_WAIT_POLICY=PASSIVE: with other processes on the cores, OpenMP threads
spinning at barriers are descheduled and small ops slow down by 3-10x (the value is printed).

Panoptic rows are cumulative: each adds one step to the row above, and ``full s`` is
``PanopticPredictor.predict`` end to end (image in, ``PanopticResult`` out: pre-processing, encoder,
decoder, post-processing). The first row is the path as it was before the fast path (unfolded
encoder, 256-channel F, the official per-query post-processing loop); ``official`` is today's
``postprocess="official", fuse=False``. The diff columns compare each row's output with the first
row's: relative error of the final mask logits, share of panoptic pixels that differ, same segments.
Weights are random (speed does not depend on their values); the object-score threshold is set so that
``--keep`` queries pass it. An untrained model's masks are noise, which sends the fast post-processing
to its dense fallback, so post-processing is also timed alone on realistic logits (one query per
segment of a generated scene plus shifted duplicates, +-8 inside/outside with soft borders).

Interactive rows: ``set_image`` + one click (first call: includes the per-image key/value projection of
the prompt adapter), one more click on the cached image (``each extra prompt``), and 32 clicks in one
call; ``before`` recomputes the key/values per call and upsamples every mask (the old ``predict``).
``model frame only`` is ``predict_torch`` (stride-4 logits, no masks at the image size). With random
weights the prompt masks are noisy, so the fast mask upsampling evaluates a wide band: the mask part
of these rows is pessimistic for a trained model.

Times are medians over ``--repeats`` after one warm-up run, on ``--threads`` threads; the machine load
is printed with the tables.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

import rapsam
from rapsam.modeling.factored import as_tensor
from rapsam.modeling.fuse import FusedEncoder, fuse_conv_bn, use_fast_neck_
from rapsam.predictor import InteractivePredictor, PanopticPredictor
from rapsam.predictor.postprocess import PanopticRaw, panoptic_keep
from rapsam.predictor.transforms import logits_to_original

TARGET_FULL_S = 0.8
TARGET_PROMPT_MS = 5.0
TARGET_BATCH_RATIO = 3.0


# ------------------------------------------------------------------------------ helpers
def timeit(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


class ManualEncoder:
    """An encoder for ``model.extract_features(x, encoder=...)`` with each rewrite switchable."""

    def __init__(self, model: rapsam.RapSam, fold: bool, channels_last: bool, fast_neck: bool) -> None:
        self.model = model
        bb, nk = copy.deepcopy(model.backbone), copy.deepcopy(model.neck)
        if fold:
            bb, nk = fuse_conv_bn(bb), fuse_conv_bn(nk)
        if fast_neck:
            use_fast_neck_(nk)
        self.cl = channels_last
        if channels_last:
            bb.to(memory_format=torch.channels_last)
            nk.to(memory_format=torch.channels_last)
        self.bb, self.nk = bb.eval(), nk.eval()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.nk(self.bb(x)).contiguous()


def legacy_panoptic(scores, labels, mask_logits, thing_flags, iou_thr=0.8, queries=None) -> PanopticRaw:
    """The per-query post-processing loop as it was before the fast path (official semantics)."""
    n, h, w = mask_logits.shape
    seg = torch.zeros(h, w, dtype=torch.int32)
    out = PanopticRaw(seg, [], [], [], [])
    masks = mask_logits.sigmoid()
    ids = (scores.view(-1, 1, 1) * masks).argmax(0)
    stuff: dict[int, int] = {}
    nxt = 1
    for k in range(n):
        label, thing = int(labels[k]), bool(thing_flags[int(labels[k])])
        mask = ids == k
        area, orig = int(mask.sum()), int((masks[k] >= 0.5).sum())
        mask = mask & (masks[k] >= 0.5)
        if area > 0 and orig > 0:
            if area / orig < iou_thr:
                continue
            if not thing and label in stuff:
                seg[mask] = stuff[label]
                continue
            seg[mask] = nxt
            if not thing:
                stuff[label] = nxt
            out.labels.append(label)
            out.scores.append(float(scores[k]))
            out.queries.append(int(queries[k]) if queries is not None else k)
            out.is_thing.append(thing)
            nxt += 1
    return out


class LegacyPredictor(PanopticPredictor):
    """``PanopticPredictor`` with the pre-fast-path post-processing (loop + per-segment full-size masks)."""

    def panoptic_from_logits(self, mask_cls, mask_logits, prepared):
        from rapsam.structures import PanopticResult, Segment, masks_to_boxes

        idx, scores, labels = panoptic_keep(mask_cls, self.object_mask_thr)
        full = logits_to_original(mask_logits[idx], prepared.pad_size, prepared.img_size, prepared.ori_size)
        raw = legacy_panoptic(scores, labels, full, self.model.thing_flags, self.iou_thr, idx)
        segs = []
        for i, (lab, sc, q, th) in enumerate(zip(raw.labels, raw.scores, raw.queries, raw.is_thing)):
            m = raw.seg_ids == i + 1
            box = masks_to_boxes(m[None])[0].tolist()
            segs.append(Segment(i + 1, lab, self.model.class_names[lab], sc, th, int(m.sum()), tuple(box), q))
        return PanopticResult(raw.seg_ids.cpu(), segs, list(self.model.class_names), prepared.ori_size)


def image(h: int, w: int) -> np.ndarray:
    from rapsam.data import synth

    side = max(h, w)
    img = synth._image_scene(np.random.default_rng(0), synth._Grid(side)).image
    return np.ascontiguousarray(img[:h, :w])


def threshold_for(model: rapsam.RapSam, pred: PanopticPredictor, img: np.ndarray, keep: int) -> float:
    """An object-score threshold that ``keep`` non-background queries pass on this image."""
    out = pred.predict_torch(pred.prepare(img))
    cls = out.object_outputs[-1].cls_logits[0].float()
    s, lab = cls.softmax(-1).max(-1)
    s = s[lab != cls.shape[-1] - 1].sort(descending=True).values
    return float(s[min(keep, len(s)) - 1]) - 1e-6 if len(s) else 0.0


# ------------------------------------------------------------------------------ panoptic
def realistic_logits(h: int, w: int, pad: tuple[int, int], n: int, seed: int = 0) -> tuple[torch.Tensor, int]:
    """Stride-4 mask logits that look like a trained model's: one query per segment of a generated
    scene (+ shifted duplicate queries up to ``n``), +-8 inside / outside with soft borders.

    Returns:
        logits (n, h4, w4) and how many of them are the scene's segments (the rest are duplicates).
    """
    from rapsam.data import synth

    scene = synth._image_scene(np.random.default_rng(seed), synth._Grid(max(h, w)))
    rng = np.random.default_rng(seed + 1)
    masks = [torch.from_numpy(sg.mask[:h, :w].astype(np.float32)) for sg in scene.segments if sg.mask[:h, :w].any()]
    real = len(masks)
    while len(masks) < n:  # duplicates of the segments, shifted: lower-quality extra queries
        m = masks[int(rng.integers(len(masks)))]
        masks.append(torch.roll(m, shifts=(int(rng.integers(-20, 21)), int(rng.integers(-20, 21))), dims=(0, 1)))
    full = torch.zeros(n, pad[0], pad[1])
    full[:, :h, :w] = torch.stack(masks[:n])
    low = F.avg_pool2d(full[None], 4)[0]  # (n, h4, w4) coverage
    low = F.avg_pool2d(low[None], 3, 1, 1, count_include_pad=False)[0]  # soft borders
    return (16 * (low - 0.5)).clamp(-8, 8), real


def bench_postprocess(model: rapsam.RapSam, h: int, w: int, args: argparse.Namespace) -> list[tuple]:
    """Post-processing alone on realistic logits: the old loop, the vectorised official, the fast path."""
    img = image(h, w)
    scale = (max(h, w), min(h, w))
    p_off = PanopticPredictor(model, image_scale=scale, postprocess="official", fuse=False)
    p_fast = PanopticPredictor(model, image_scale=scale)
    p_old = LegacyPredictor(model, image_scale=scale, fuse=False, postprocess="official")
    prepared = p_fast.prepare(img)
    h4, w4 = prepared.pad_size[0] // 4, prepared.pad_size[1] // 4
    n = args.keep
    logits, real = realistic_logits(*prepared.img_size, prepared.pad_size, n)
    k = model.num_classes
    cls = torch.full((model.decoder.num_queries, k + 1), -10.0)
    cls[:, -1] = 10.0  # background for the unused queries
    cls[:n, -1] = -10.0
    # the segments' queries: confident (p ~ 1), distinct classes; duplicates: p ~ 0.85 (kept, then mostly
    # dropped by the overlap rule, as a trained model's extra queries are)
    cls[torch.arange(n), torch.arange(n) % k] = torch.where(torch.arange(n) < real, 10.0, -3.4)
    all_logits = torch.full((model.decoder.num_queries, h4, w4), -8.0)
    all_logits[:n] = logits
    rows = []
    ref = None
    with torch.inference_mode():
        for name, p in (("before: loop", p_old), ("official (vectorised)", p_off), ("fast (default)", p_fast)):
            t, pan = timeit(lambda: p.panoptic_from_logits(cls, all_logits, prepared), args.repeats)
            ref = ref or pan
            pix = float((pan.seg_ids != ref.seg_ids).float().mean())
            same = [(x.label, x.query) for x in pan.segments] == [(x.label, x.query) for x in ref.segments]
            rows.append((f"{h}x{w}", f"panoptic, {name}", t, pix, same, len(pan.segments)))
        sem = {}
        for name, p in (("official", p_off), ("fast (default)", p_fast)):
            t, r = timeit(lambda: p.semantic_from_logits(cls, all_logits, prepared), args.repeats)
            sem[name] = r.sem
            pix = float((r.sem != sem["official"]).float().mean())
            rows.append((f"{h}x{w}", f"semantic, {name}", t, pix, True, 0))
    return rows


def bench_panoptic(model: rapsam.RapSam, h: int, w: int, args: argparse.Namespace) -> list[tuple]:
    img = image(h, w)
    scale = (max(h, w), min(h, w))
    probe = PanopticPredictor(model, image_scale=scale)
    thr = threshold_for(model, probe, img, args.keep)

    def pred(cls=PanopticPredictor, encoder: Any = "none", **kw) -> PanopticPredictor:
        p = cls(model, image_scale=scale, object_mask_thr=thr, **kw)
        if encoder != "none":
            p.encoder = encoder
        return p

    steps = [
        ("before: unfolded, loop post-processing", pred(LegacyPredictor, fuse=False, postprocess="official")),
        ("official (vectorised post-processing)", pred(fuse=False, postprocess="official")),
        ("+ conv-BN folding", pred(postprocess="official", encoder=ManualEncoder(model, True, False, False))),
        ("+ channels-last", pred(postprocess="official", encoder=ManualEncoder(model, True, True, False))),
        ("+ sampled DCN, split CoordConv", pred(postprocess="official", encoder=FusedEncoder(model))),
        ("+ factored F (131-ch decoder)", pred(postprocess="official")),
        ("+ fast post-processing = default", pred()),
    ]
    rows = []
    ref = None
    for name, p in steps:
        t, res = timeit(lambda: p.predict(img, tasks=("panoptic",)), args.repeats)
        prepared = p.prepare(img)
        with torch.inference_mode():
            logits = p.predict_torch(prepared).object_outputs[-1].mask_logits[0].float()
        pan = res.panoptic
        if ref is None:
            ref = (logits, pan)
        err = float((logits - ref[0]).norm() / ref[0].norm())
        pix = float((pan.seg_ids != ref[1].seg_ids).float().mean())
        same = [(s.label, s.query) for s in pan.segments] == [(s.label, s.query) for s in ref[1].segments]
        sp = res.speed
        rows.append((f"{h}x{w}", name, t, sp["preprocess"], sp["inference"], sp["postprocess"], err, pix, same))
    return rows


# ------------------------------------------------------------------------------ interactive
def bench_interactive(model: rapsam.RapSam, h: int, w: int, args: argparse.Namespace) -> list[tuple]:
    img = image(h, w)
    scale = (max(h, w), min(h, w))
    rng = np.random.default_rng(1)
    one = [[w * 0.4, h * 0.5]]
    many = (rng.random((args.prompts, 2)) * [w - 1, h - 1]).tolist()
    rows = []

    def before(p: InteractivePredictor, pts) -> Any:  # the old predict: K/V per call, full upsampling
        prompts = p.to_model_frame(points=pts)
        with torch.inference_mode():
            out = model.decode(as_tensor(p._features), prompts, with_objects=False)
            lg = out.prompt_outputs[-1].mask_logits[0]
            pr = p._prepared
            return logits_to_original(lg, pr.pad_size, pr.img_size, pr.ori_size) > 0

    base = InteractivePredictor(model, image_scale=scale, fuse=False, postprocess="official")
    fast = InteractivePredictor(model, image_scale=scale)

    def first(p):
        p.set_image(img)
        return p.predict(points=one)

    t_img_b, _ = timeit(lambda: (base.set_image(img), before(base, one)), args.repeats)
    t_img_f, _ = timeit(lambda: first(fast), args.repeats)
    rows.append((f"{h}x{w}", "set_image + 1 click", t_img_b, t_img_f))
    fast.set_image(img)
    base.set_image(img)
    fast.predict(points=one)
    t1b, mb = timeit(lambda: before(base, one), args.repeats)
    t1f, rf = timeit(lambda: fast.predict(points=one), args.repeats)
    rows.append((f"{h}x{w}", "1 more click (cached image)", t1b, t1f))
    tnb, _ = timeit(lambda: before(base, many), args.repeats)
    tnf, _ = timeit(lambda: fast.predict(points=many), args.repeats)
    rows.append((f"{h}x{w}", f"{args.prompts} clicks in one call", tnb, tnf))
    prompts1, promptsn = fast.to_model_frame(points=one), fast.to_model_frame(points=many)
    t1m, _ = timeit(lambda: fast.predict_torch(prompts1), args.repeats)
    tnm, _ = timeit(lambda: fast.predict_torch(promptsn), args.repeats)
    rows.append((f"{h}x{w}", "  model frame only: 1 click", float("nan"), t1m))
    rows.append((f"{h}x{w}", f"  model frame only: {args.prompts} clicks", float("nan"), tnm))
    agree = float((rf.masks == mb.cpu()).float().mean())
    rows.append((f"{h}x{w}", "mask agreement fast vs before", agree, agree))
    return rows


def profile_fast(model: rapsam.RapSam, h: int, w: int, keep: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    img = image(h, w)
    scale = (max(h, w), min(h, w))
    p = PanopticPredictor(model, image_scale=scale)
    p.object_mask_thr = threshold_for(model, p, img, keep)
    p.predict(img)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        p.predict(img, tasks=("panoptic",))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="rapsam_r18")
    ap.add_argument("--sizes", default="800x1333,512x512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=int, default=30, help="queries kept by the panoptic score threshold")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="torch.profiler table of the default path")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: panoptic,postprocess,interactive")
    args = ap.parse_args()
    if args.repeats < 3:
        raise SystemExit("--repeats must be >= 3 (median of at least three runs)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = rapsam.build_model(args.variant)
    k = 133
    emb = F.normalize(torch.randn(k, 1, model.classifier.embed_dim), dim=-1)
    model.set_vocabulary(emb, [f"class{i}" for i in range(k)], [i < 80 for i in range(k)])
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    load = os.getloadavg()
    print(f"{args.variant}, torch {torch.__version__}, {torch.get_num_threads()} threads, repeats {args.repeats} "
          f"(median after 1 warm-up), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    if "panoptic" not in skip:
        print("\nPanoptic: PanopticPredictor.predict (image in, PanopticResult out), random weights; steps are cumulative")
        print(f"{'size':<10}{'step':<40}{'full s':>8}{'pre ms':>8}{'model ms':>10}{'post ms':>9}{'logit err':>11}"
              f"{'pix diff':>10}{'same segs':>10}")
        for h, w in sizes:
            rows = bench_panoptic(model, h, w, args)
            for size, name, t, pre, inf, post, err, pix, same in rows:
                print(f"{size:<10}{name:<40}{t:>8.3f}{pre:>8.0f}{inf:>10.0f}{post:>9.0f}{err:>11.1e}{pix:>10.2e}{str(same):>10}")
            full = rows[-1][2]
            verdict = "met" if full <= TARGET_FULL_S else "MISSED"
            print(f"{'':<10}-> default full predict {full:.3f} s vs target {TARGET_FULL_S} s: {verdict}; "
                  f"{rows[0][2] / full:.2f}x faster than before")
    if "postprocess" not in skip:
        print(f"\nPost-processing alone on realistic stride-4 logits ({args.keep} kept queries from a generated "
              "scene's segments; pix diff vs the first row of each kind)")
        print(f"{'size':<10}{'path':<36}{'ms':>9}{'pix diff':>10}{'same segs':>10}{'segs':>6}")
        for h, w in sizes:
            for size, name, t, pix, same, nseg in bench_postprocess(model, h, w, args):
                print(f"{size:<10}{name:<36}{1e3 * t:>9.1f}{pix:>10.2e}{str(same):>10}{nseg:>6}")
    if "interactive" not in skip:
        print("\nInteractive: InteractivePredictor (masks at the original size unless noted)")
        print(f"{'size':<10}{'case':<38}{'before ms':>11}{'fast ms':>10}")
        for h, w in sizes:
            rows = bench_interactive(model, h, w, args)
            for size, name, tb, tf in rows:
                if name.startswith("mask agreement"):
                    print(f"{size:<10}{name:<38}{tb:>21.5f}")
                else:
                    print(f"{size:<10}{name:<38}{1e3 * tb:>11.1f}{1e3 * tf:>10.1f}")
            t1, tn = rows[1][3], rows[2][3]
            print(f"{'':<10}-> one more click {1e3 * t1:.1f} ms (target {TARGET_PROMPT_MS} ms: "
                  f"{'met' if 1e3 * t1 <= TARGET_PROMPT_MS else 'MISSED'}); {args.prompts} clicks / 1 click = "
                  f"{tn / t1:.1f} (target {TARGET_BATCH_RATIO}: {'met' if tn / t1 <= TARGET_BATCH_RATIO else 'MISSED'}); "
                  f"marginal {1e3 * (tn - t1) / (args.prompts - 1):.1f} ms per extra prompt in a batch")
    if args.profile:
        h, w = sizes[0]
        print(f"\nProfile of the default panoptic predict at {h}x{w}:")
        profile_fast(model, h, w, args.keep)


if __name__ == "__main__":
    main()
