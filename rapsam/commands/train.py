"""``rapsam train``: train a model from a committed config or a YAML file.

    rapsam train --config synthetic_tiny --out runs/tiny
    rapsam train --config rapsam_r50_coco_ytvis_sam --set data.panoptic_ann=... --out runs/r50
    torchrun --nproc_per_node=8 -m rapsam train --config rapsam_r50_coco_ytvis_sam --out runs/r50
    rapsam train --config runs/r50/config.json --out runs/r50 --resume
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (committed config name or YAML/JSON file)")
    p.add_argument("--config", required=True, help=f"config name ({', '.join(list_configs())}) or a .yaml/.json file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. optim.lr=2e-4")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="build everything and run 2 iterations (no workers)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--export", action="store_true", help="only write <out>/model.safetensors from <out>/last.pt")
    p.set_defaults(func=run)


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_train_config(name_or_path: str, overrides: list[str] | None = None):
    """Committed config name, or .yaml / .json file -> ``TrainConfig`` (unknown keys are errors)."""
    import yaml

    from ..config import TrainConfig, apply_overrides, from_dict

    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ValueError(f"unknown config '{name_or_path}'; committed configs: {list_configs()} (or give a .yaml file)")
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot parse config {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must be a mapping of keys to values")
    try:
        cfg = from_dict(TrainConfig, data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return apply_overrides(cfg, overrides or [])


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile

    from ..training.trainer import train

    cfg = load_train_config(args.config, args.set)
    out = args.out or f"runs/{cfg.name}"
    if args.export:
        from ..training.trainer import export_model

        print(f"wrote {export_model(out)}")
        return 0
    if args.dry_run:
        cfg = dataclasses.replace(cfg, iterations=2, checkpoint_every=0, eval_every=0, log_every=1,
                                  data=dataclasses.replace(cfg.data, workers=0))
        out = args.out or tempfile.mkdtemp(prefix="rapsam_dry_run_")
    final = train(cfg, out, resume=args.resume, device=args.device, progress=not args.no_progress)
    if args.dry_run:
        print(f"dry run OK: 2 iterations of '{cfg.name}' ({cfg.model.name}) -> {out}")
    elif final.exists():
        print(f"trained '{cfg.name}': {final}")
    else:
        print(f"stopped early; resume with: rapsam train --config {Path(out) / 'config.json'} --out {out} --resume")
    return 0
