"""The training loop: joint image / video / prompt co-training with the official recipe.

``train(cfg, out_dir, resume=False)`` runs on one CPU or, under ``torchrun``, as
DistributedDataParallel (NCCL on GPUs, gloo on CPU; SyncBN on CUDA only). It writes into
``out_dir``:

* ``last.pt``: the training checkpoint, written atomically every ``checkpoint_every`` iterations, at
  the end and when interrupted (SIGINT / SIGTERM); ``--resume`` continues from it and, because all
  randomness derives from (seed, iteration, item), ends with the same weights as an uninterrupted run;
* ``model.safetensors``: the final model in rapsam's format (config + vocabulary + weights);
* ``metrics.jsonl``: one JSON line per logged iteration (losses, lr, it/s) and per evaluation;
* ``loss.png``: the loss curve; ``config.json``: the resolved config.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..config import TrainConfig, to_dict
from ..modeling.neck import DeformLayer
from ..modeling.rapsam import Prompts, RapSam
from ..models import _build
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .criterion import ObjectTargets, PromptTargets, RapSamCriterion, total_loss
from .data import Batch, collate
from .optim import build_optimizer, build_scheduler
from .sources import TrainStream, build_vocabulary


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise torch.distributed from torchrun's environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if world <= 1:
        return DistInfo(device=torch.device("cuda" if want_cuda else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    return DistInfo(rank, world, local, torch.device(f"cuda:{local}" if want_cuda else "cpu"))


def build_training_model(cfg: TrainConfig) -> RapSam:
    torch.manual_seed(cfg.seed)
    model = _build(cfg.model)
    if cfg.backbone_weights:
        model.backbone.load_pretrained(cfg.backbone_weights)
    if cfg.sampled_dcn:
        for m in model.modules():
            if isinstance(m, DeformLayer):
                m.sampled_dcn = True
    return model


class _Stop:
    """Set by SIGINT / SIGTERM: the loop saves a checkpoint and exits cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self._old = {}

    def __enter__(self) -> "_Stop":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ANN001
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _criterion_generator(seed: int, step_key: int, rank: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.default_rng([seed, step_key, rank, 7]).integers(0, 2**62)))
    return g


def compute_losses(
    model: nn.Module, criterion: RapSamCriterion, batch: Batch, device: torch.device, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """One forward pass of a batch and its loss dict."""
    images = batch.images.to(device, non_blocking=True)
    if batch.source == "prompt":
        prompts = Prompts(batch.points.to(device), batch.point_labels.to(device), batch.boxes.to(device), batch.image_sizes.to(device))
        out = model(images, prompts, with_objects=False)
        targets = [PromptTargets(m.to(device)) for m in batch.masks]
        return criterion(prompt_outputs=out.prompt_outputs, prompt_targets=targets, generator=generator)
    out = model(images, None, with_objects=True, num_frames=batch.num_frames)
    targets = [ObjectTargets(l.to(device), m.to(device)) for l, m in zip(batch.labels, batch.masks)]
    return criterion(object_outputs=out.object_outputs, object_targets=targets, generator=generator)


def train(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool = False, device: str | None = None,
          progress: bool = True, max_iterations: int | None = None) -> Path:
    """Train ``cfg`` and return the path of the final ``model.safetensors``.

    Args:
        cfg: the run.
        out_dir: where checkpoints, logs and the model go.
        resume: continue from ``out_dir/last.pt``.
        device: "cpu" / "cuda" (default: CUDA when available).
        progress: show a progress bar (main process only).
        max_iterations: stop after this iteration (as if killed; for tests), checkpoint included.
    """
    out = Path(out_dir)
    d = init_distributed(device)
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))

    model = build_training_model(cfg)
    vocab_names, vocab_flags, embeddings, encoder_name = build_vocabulary(cfg)
    model.set_vocabulary(embeddings, vocab_names, vocab_flags)
    model.text_encoder = encoder_name
    model.to(d.device)
    if d.world > 1 and d.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    stream = TrainStream(cfg, vocab_names)

    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    use_amp = cfg.amp != "none" and d.device.type == "cuda"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp, torch.float32)
    if cfg.amp not in ("none", "bf16", "fp16"):
        raise ValueError(f"amp must be none, bf16 or fp16, got {cfg.amp!r}")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg.amp == "fp16")
    criterion = RapSamCriterion(num_points=cfg.num_points, dense=cfg.dense_loss)

    start = 0
    if resume:
        ck = load_checkpoint(out / "last.pt")
        if ck["config"] != to_dict(cfg):
            raise ValueError(f"{out / 'last.pt'} was written with a different config; resume with the same config or a new --out")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        start = int(ck["iteration"])
    ddp = model
    if d.world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == "cuda" else None, find_unused_parameters=True
        )

    def state(it: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": rng_state(), "iteration": it, "config": to_dict(cfg),
        }

    total = cfg.iterations
    stop_at = min(total, max_iterations) if max_iterations is not None else total
    loader = stream.loader(start, stop_at, d.rank, d.world, collate_fn=lambda items: collate(
        items, cfg.data.crop, model.pixel_mean.flatten().cpu(), model.pixel_std.flatten().cpu()))
    log_path = out / "metrics.jsonl"
    bar = None
    if progress and d.is_main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc=cfg.name, unit="it", dynamic_ncols=True, file=sys.stderr)
    history: list[tuple[int, float]] = _read_history(log_path) if resume and d.is_main else []
    it = start
    t_last, it_last = time.perf_counter(), start
    loader_iter = iter(loader)
    with _Stop() as stopper:
        while it < stop_at:
            ddp.train()
            if cfg.freeze_bn:
                for m in model.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
            optimizer.zero_grad(set_to_none=True)
            logged: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                batch = next(loader_iter)
                gen = _criterion_generator(cfg.seed, it * cfg.grad_accum + micro, d.rank)
                with torch.autocast(d.device.type, dtype=amp_dtype, enabled=use_amp):
                    losses = compute_losses(ddp, criterion, batch, d.device, gen)
                    loss = total_loss(losses) / cfg.grad_accum
                if not torch.isfinite(loss):
                    raise RuntimeError(f"loss became {loss.item()} at iteration {it}; lower optim.lr or check the data")
                scaler.scale(loss).backward()
                for k, v in losses.items():
                    logged[k] = logged.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
                logged["source_" + batch.source] = logged.get("source_" + batch.source, 0) + 1
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            it += 1
            total_l = sum(v for k, v in logged.items() if k.startswith(("loss", "d")) and "loss_" in k)
            if d.is_main:
                history.append((it, total_l))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{total_l:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if cfg.log_every and it % cfg.log_every == 0:
                    now = time.perf_counter()
                    rec = {"iteration": it, "loss": total_l, "lr": scheduler.get_last_lr()[0],
                           "it_per_s": (it - it_last) / max(now - t_last, 1e-9), **logged}
                    t_last, it_last = now, it
                    with open(log_path, "a") as f:
                        f.write(json.dumps(rec) + "\n")
            if cfg.eval_every and it % cfg.eval_every == 0 and it < total and d.is_main:
                _evaluate(model, cfg, it, log_path)
            if cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and d.is_main:
                save_checkpoint(out / "last.pt", state(it))
            if stopper.requested:
                break
    if d.is_main:
        save_checkpoint(out / "last.pt", state(it))
        if bar is not None:
            bar.close()
        plot_loss(history, out / "loss.png")
    final = out / "model.safetensors"
    if it >= total and d.is_main:
        from ..weights import save_rapsam

        if cfg.eval_every:
            _evaluate(model, cfg, it, log_path)
        save_rapsam(model, final, extra={"train_config": to_dict(cfg), "iterations": it})
    if d.world > 1:
        dist.barrier()
    return final


def export_model(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``model.safetensors`` from a run's ``last.pt`` (e.g. a run stopped before its end).

    The vocabulary is rebuilt from the run's config exactly as training built it.
    """
    from ..config import from_dict
    from ..weights import save_rapsam

    run_dir = Path(run_dir)
    ck = load_checkpoint(run_dir / "last.pt")
    cfg = from_dict(TrainConfig, ck["config"])
    model = build_training_model(cfg)
    model.load_state_dict(ck["model"])
    names, flags, emb, enc = build_vocabulary(cfg)
    model.set_vocabulary(emb, names, flags)
    model.text_encoder = enc
    out = Path(out) if out is not None else run_dir / "model.safetensors"
    save_rapsam(model.eval(), out, extra={"train_config": ck["config"], "iterations": int(ck["iteration"])})
    return out


def _evaluate(model: RapSam, cfg: TrainConfig, it: int, log_path: Path) -> dict:
    from ..evaluation.runner import evaluate_synthetic_val

    model.eval()
    with torch.inference_mode():
        res = evaluate_synthetic_val(model, cfg.data)
    model.train()
    with open(log_path, "a") as f:
        f.write(json.dumps({"iteration": it, "eval": res}) + "\n")
    print(f"[eval @ {it}] " + ", ".join(f"{k} {v:.1f}" for k, v in res.items() if isinstance(v, (int, float))), file=sys.stderr)
    return res


def _read_history(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in rec:
            out.append((rec["iteration"], rec["loss"]))
    return out


def plot_loss(history: list[tuple[int, float]], path: Path, size: tuple[int, int] = (640, 360)) -> None:
    """Draw the loss curve (log scale, with a moving average) to a PNG with PIL."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, "white")
    dr = ImageDraw.Draw(img)
    pad = 40
    dr.rectangle([pad, 10, w - 10, h - pad], outline=(0, 0, 0))
    pts = [(i, v) for i, v in history if v > 0 and math.isfinite(v)]
    if len(pts) >= 2:
        xs = np.array([p[0] for p in pts], dtype=np.float64)
        ys = np.log10(np.array([p[1] for p in pts], dtype=np.float64))
        k = max(1, len(ys) // 50)
        smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
        x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
        y0, y1 = ys.min(), max(ys.max(), ys.min() + 1e-6)

        def px(x: float, y: float) -> tuple[float, float]:
            return pad + (x - x0) / (x1 - x0) * (w - pad - 10), (h - pad) - (y - y0) / (y1 - y0) * (h - pad - 10)

        dr.line([px(x, y) for x, y in zip(xs, ys)], fill=(180, 200, 230), width=1)
        dr.line([px(x, y) for x, y in zip(xs[k - 1:], smooth)], fill=(20, 60, 160), width=2)
        dr.text((pad, h - pad + 5), f"iteration {int(x0)}", fill=(0, 0, 0))
        dr.text((w - 120, h - pad + 5), f"{int(x1)}", fill=(0, 0, 0))
        dr.text((2, 12), f"{10 ** y1:.3g}", fill=(0, 0, 0))
        dr.text((2, h - pad - 12), f"{10 ** y0:.3g}", fill=(0, 0, 0))
    dr.text((pad + 5, h - 18), "total loss (log scale)", fill=(0, 0, 0))
    img.save(path)
