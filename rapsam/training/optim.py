"""AdamW parameter groups and the warm-up + step schedule of the official ``schedule_12e``."""

from __future__ import annotations

import torch
from torch import nn

from ..config import OptimConfig

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Backbone at ``lr * backbone_lr_mult``; norm-layer parameters without weight decay."""
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = (name.startswith("backbone."), id(p) in norm_params)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_bb, is_norm), params in sorted(groups.items()):
        out.append({
            "params": params,
            "lr": cfg.lr * (cfg.backbone_lr_mult if is_bb else 1.0),
            "weight_decay": 0.0 if is_norm else cfg.weight_decay,
        })
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def lr_factor(it: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at iteration ``it``: linear warm-up, then x gamma at each milestone."""
    f = cfg.gamma ** sum(it >= m for m in cfg.milestones)
    if cfg.warmup_iters > 0 and it < cfg.warmup_iters:
        alpha = it / cfg.warmup_iters
        f *= cfg.warmup_factor * (1 - alpha) + alpha
    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, cfg))
