"""Plain-text tables and JSON files for evaluation results.

Every result dataclass of :mod:`rapsam.evaluation` has ``to_dict()``; :func:`write_json` writes
any of them (or a dict of them) with NaN as ``null``. The tables print percentages (x100) with one
decimal, as panopticapi and pycocotools print them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .davis import DavisResult
from .instance_ap import STAT_NAMES, APResult
from .interactive import CocoSamResult, MeanIoUResult, NoCResult
from .panoptic_quality import PQResult
from .semantic import SemanticResult
from .vpq import VPQResult


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *,
                 float_fmt: str = "{:.1f}") -> str:
    """Align ``rows`` under ``headers``; floats use ``float_fmt``, NaN prints as ``-``.

    The first column is left-aligned, the others right-aligned.
    """
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "-" if math.isnan(v) else float_fmt.format(v)
        return str(v)

    text = [[cell(v) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return " | ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i])
                          for i, v in enumerate(values)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in text])


def _name(cat: Any, names: Mapping[Any, str] | None) -> str:
    return f"{names[cat]} ({cat})" if names and cat in names else str(cat)


def format_pq_table(result: PQResult, category_names: Mapping[Any, str] | None = None, *,
                    per_class: bool = True) -> str:
    """panopticapi's All/Things/Stuff summary, then one row per category (x100)."""
    summary = format_table(
        ["", "PQ", "SQ", "RQ", "N"],
        [[name, 100 * g.pq, 100 * g.sq, 100 * g.rq, g.n]
         for name, g in (("All", result.all), ("Things", result.things), ("Stuff", result.stuff))])
    if not per_class:
        return summary
    rows = [[_name(c, category_names), "thing" if r.isthing else "stuff", 100 * r.pq, 100 * r.sq,
             100 * r.rq, r.tp, r.fp, r.fn] for c, r in result.per_class.items()]
    return summary + "\n\n" + format_table(
        ["category", "kind", "PQ", "SQ", "RQ", "TP", "FP", "FN"], rows)


def format_ap_table(result: APResult, category_names: Mapping[Any, str] | None = None, *,
                    per_class: bool = True) -> str:
    """The 12 COCO numbers (x100, -1 where undefined), then AP per category."""
    summary = format_table(["metric", "value"],
                           [[k, 100 * v if v != -1 else -1.0] for k, v in
                            zip(STAT_NAMES, result.stats)])
    if not per_class:
        return summary
    rows = [[_name(c, category_names), 100 * v] for c, v in result.per_class.items()]
    return summary + "\n\n" + format_table(["category", "AP"], rows)


def format_semantic_table(result: SemanticResult, *, per_class: bool = True) -> str:
    """mIoU / aAcc / mAcc, then IoU and accuracy per class (x100)."""
    summary = format_table(["metric", "value"],
                           [["mIoU", 100 * result.miou], ["aAcc", 100 * result.pixel_accuracy],
                            ["mAcc", 100 * result.mean_accuracy]])
    if not per_class:
        return summary
    names = result.class_names or tuple(str(i) for i in range(len(result.per_class_iou)))
    rows = [[n, 100 * iou, 100 * acc] for n, iou, acc in
            zip(names, result.per_class_iou, result.per_class_accuracy)]
    return summary + "\n\n" + format_table(["class", "IoU", "Acc"], rows)


def format_vpq_table(result: VPQResult) -> str:
    """VPQ per window (k label) and the mean (x100)."""
    rows = [[f"k={k}", 100 * r.all.pq, 100 * r.things.pq, 100 * r.stuff.pq]
            for k, r in result.per_window.items()]
    rows.append(["mean", 100 * result.vpq, 100 * result.vpq_things, 100 * result.vpq_stuff])
    return format_table(["window", "VPQ", "VPQ_th", "VPQ_st"], rows)


def format_result(result: Any, category_names: Mapping[Any, str] | None = None) -> str:
    """A table for any evaluation result of this package."""
    if isinstance(result, PQResult):
        return format_pq_table(result, category_names)
    if isinstance(result, APResult):
        return format_ap_table(result, category_names)
    if isinstance(result, SemanticResult):
        return format_semantic_table(result)
    if isinstance(result, VPQResult):
        return format_vpq_table(result)
    if isinstance(result, NoCResult):
        rows = [[f"NoC@{round(100 * t)}", v] for t, v in result.noc.items()]
        rows += [[f">=20@{round(100 * t)}", float(v)] for t, v in result.over_max.items()]
        rows += [[f"mIoU@{k}", 100 * v] for k, v in result.miou_at.items()]
        return format_table(["metric", "value"], rows, float_fmt="{:.2f}")
    if isinstance(result, CocoSamResult):
        rows = [["mIoU", 100 * result.miou]] + [[f"NoC@{t}", v] for t, v in result.noc.items()]
        return format_table(["metric", "value"], rows + [["prompts", result.num_prompts]],
                            float_fmt="{:.2f}")
    if isinstance(result, MeanIoUResult):
        return format_table(["metric", "value"], [["mIoU", 100 * result.miou],
                                                  ["prompts", len(result.ious)]])
    if isinstance(result, DavisResult):
        d = result.to_dict()
        return format_table(["metric", "value"],
                            [[k, 100 * d[k]] for k in ("J&F-Mean", "J-Mean", "J-Recall",
                                                       "J-Decay", "F-Mean", "F-Recall",
                                                       "F-Decay")])
    raise TypeError(f"no table format for {type(result).__name__}; pass a result of "
                    "rapsam.evaluation.")


def to_jsonable(obj: Any) -> Any:
    """Convert results (dataclasses with ``to_dict``), numpy values and NaN to plain JSON."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


def write_json(path: str | os.PathLike, results: Any) -> None:
    """Write a result (or a dict of results) as indented JSON; NaN becomes ``null``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(results), f, indent=2, allow_nan=False)
        f.write("\n")
