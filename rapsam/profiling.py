"""Parameter and FLOP counting for ``rapsam info`` and the benchmarks.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add) plus a
formula for torchvision's ``deform_conv2d`` (its 3x3 multiply-adds; the bilinear sampling is not
counted). ``GMACs = GFLOPs / 2`` is the figure papers usually call "GFLOPs" (fvcore convention).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .modeling.rapsam import Prompts, RapSam


def _deform_conv_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    b = x_shape[0]
    cout, cin_g, kh, kw = w_shape
    h_out, w_out = out_shape[-2:]
    return 2 * b * cout * h_out * w_out * cin_g * kh * kw


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per top-level child module, plus 'total'."""
    out = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    out["total"] = sum(p.numel() for p in model.parameters())
    return out


def count_flops(model: RapSam, height: int = 800, width: int = 1333, num_prompts: int = 0) -> dict[str, float]:
    """FLOPs of one forward pass on a (height x width) image padded to the size divisor.

    Returns GFLOPs for 'encoder' (backbone + neck), 'decoder' (queries, stages, adapters) and 'total'.
    """
    d = model.size_divisor
    h, w = -(-height // d) * d, -(-width // d) * d
    x = torch.zeros(1, 3, h, w)
    mapping = {torch.ops.torchvision.deform_conv2d.default: _deform_conv_flops}
    was_training = model.training
    model.eval()
    # (FlopCounterMode's module tracker breaks under no_grad: freeze parameters instead)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    with FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        feats = model.extract_features(x)
    enc = fc.get_total_flops()
    prompts = None
    if num_prompts:
        pts = torch.full((1, num_prompts, 1, 2), 16.0)
        prompts = Prompts(pts, torch.ones(1, num_prompts, 1, dtype=torch.long))
    with FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        model.decode(feats, prompts)
    dec = fc.get_total_flops()
    model.train(was_training)
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)
    return {"encoder": enc / 1e9, "decoder": dec / 1e9, "total": (enc + dec) / 1e9, "input": (h, w)}
