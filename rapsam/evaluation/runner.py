"""Run a model over a dataset, or read saved predictions, and score them with rapsam's metrics.

Every task has two entry points returning the same :class:`EvalRun`:

* ``run_<task>(model, ...)``: the predictors of :mod:`rapsam.predictor` over the ground-truth
  images / videos, scored in memory, with the predictions written in the task's standard format
  when ``out_dir`` is given (so ``score_<task>`` on those files gives the same numbers);
* ``score_<task>(...)``: predictions read from those standard files; no model needed.

Tasks and protocols (see ``shared/design/metrics.md``):

* ``panoptic``: COCO panoptic PNG + JSON -> PQ / SQ / RQ, all / things / stuff and per class
  (panopticapi rules, :mod:`.panoptic_quality`);
* ``instance``: COCO results JSON (compressed RLE) -> mask AP through pycocotools
  (:mod:`.instance_ap`);
* ``semantic``: one class-index PNG per image -> mIoU, per-class IoU, pixel accuracy
  (:mod:`.semantic`);
* ``interactive``: COCO-SAM, RAP-SAM's own protocol: one click per GT segment (things, stuff and
  crowd) at the interior point farthest from the boundary of the mask resized to the test size,
  IoU at the original resolution against the resized mask upsampled back (the official quirk),
  mIoU pooled over all prompts; plus box prompts (tight box, pooled mIoU) and the RITM /
  SimpleClick multi-click protocol (at most 20 clicks; NoC@85 / NoC@90, mIoU after 1, 3, 5
  clicks; all objects of an image are clicked in one batched decoder pass per round);
* ``vis``: YouTube-VIS results JSON -> AP, AP50, AP75, AR1, AR10 (:mod:`.vis_ap`);
* ``vps``: VIPSeg-layout panoptic PNGs per frame -> VPQ over windows of 1, 2, 4, 6, 8 frames
  (:mod:`.vpq`).

Predicted classes are mapped to the dataset's categories by id when the model carries a builtin
vocabulary whose ids are exactly the dataset's (official COCO / YouTube-VIS classifiers), else by
name (case, ``_``/``-``, the words "other", "merged", "stuff" and synonym lists are ignored).
Predictions of unmapped classes are dropped (panoptic: void; semantic: "no class").

All metric dicts (``EvalRun.metrics``) are x100, NoC in clicks; the result objects keep the
reference's 0-1 scale.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    EvaluationInputError,
    MissingPredictionError,
    check_rle,
    encode_mask,
    load_json,
    read_panoptic_png,
    require_keys,
)

TASKS = ("panoptic", "instance", "semantic", "interactive", "vis", "vps")
"""The tasks (``run_<task>`` / ``score_<task>``), as ``rapsam eval --task`` names them."""

RITM_PROB_THR = 0.49
"""RITM thresholds click-prompt probabilities at ``> 0.49`` (``isegm/inference/evaluation.py``)."""

_RITM_LOGIT_THR = math.log(RITM_PROB_THR / (1.0 - RITM_PROB_THR))


# ------------------------------------------------------------------------------------------------
# Result container
# ------------------------------------------------------------------------------------------------


@dataclass
class EvalRun:
    """The outcome of one evaluation.

    Attributes:
        task: One of :data:`TASKS`.
        result: The metric layer's result: ``PQResult`` (panoptic), ``APResult`` (instance, vis),
            ``SemanticResult`` (semantic), ``VPQResult`` (vps), or for interactive a dict with
            ``"click"`` (``CocoSamResult``), ``"box"`` (``MeanIoUResult`` or None) and ``"noc"``
            (``NoCResult`` or None).
        metrics: Headline numbers (x100; NoC in clicks; counts as ints).
        count: Images (image tasks) or videos (video tasks) scored.
        category_names: Dataset ``category id -> name`` for the per-class tables.
        outputs: Prediction files written (empty when scoring saved predictions).
        notes: Remarks for the user (e.g. classes that could not be mapped).
    """

    task: str
    result: Any
    metrics: dict[str, float]
    count: int
    category_names: dict[Any, str] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, per_class: bool = True) -> str:
        """Summary and (``per_class``) per-class tables, as plain text."""
        from .report import format_ap_table, format_pq_table, format_result, format_semantic_table

        if self.task == "panoptic":
            return format_pq_table(self.result, self.category_names, per_class=per_class)
        if self.task in ("instance", "vis"):
            return format_ap_table(self.result, self.category_names, per_class=per_class)
        if self.task == "semantic":
            return format_semantic_table(self.result, per_class=per_class)
        if self.task == "vps":
            text = format_result(self.result)
            if per_class:
                text += "\n\n" + _vpq_class_table(self.result, self.category_names)
            return text
        parts = [f"single click (COCO-SAM)\n{format_result(self.result['click'])}"]
        if self.result.get("box") is not None:
            parts.append(f"box prompts\n{format_result(self.result['box'])}")
        if self.result.get("noc") is not None:
            parts.append(f"multi-click (RITM NoC)\n{format_result(self.result['noc'])}")
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: task, headline metrics, count, full result, outputs and notes."""
        from .report import to_jsonable

        return to_jsonable(
            {
                "task": self.task,
                "metrics": self.metrics,
                "count": self.count,
                "result": self.result,
                "category_names": {str(k): v for k, v in self.category_names.items()},
                "outputs": [str(p) for p in self.outputs],
                "notes": self.notes,
            }
        )


def _vpq_class_table(result: Any, names: Mapping[Any, str]) -> str:
    """VPQ per category: its PQ averaged over the window lengths where it was counted (x100)."""
    from .report import format_table

    rows = []
    first = next(iter(result.per_window.values()), None)
    if first is None:
        return ""
    for cat, info in first.per_class.items():
        vals = [r.per_class[cat].pq for r in result.per_window.values() if r.per_class[cat].counted]
        label = f"{names[cat]} ({cat})" if cat in names else str(cat)
        rows.append(
            [
                label,
                "thing" if info.isthing else "stuff",
                100 * float(np.mean(vals)) if vals else math.nan,
            ]
        )
    return format_table(["category", "kind", "VPQ"], rows)


# ------------------------------------------------------------------------------------------------
# Class mapping
# ------------------------------------------------------------------------------------------------

_IGNORED_WORDS = {"other", "merged", "stuff"}


class ClassMappingWarning(UserWarning):
    """No model class matches a dataset category, so every class prediction is dropped."""


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-]", " ", str(name)).lower().split())


def _token_key(name: str) -> str:
    words = [w for w in _norm(name).split() if w not in _IGNORED_WORDS]
    return " ".join(sorted(words))


def match_categories(
    class_names: Sequence[str], categories: Sequence[Mapping[str, Any]]
) -> dict[int, Any]:
    """Map model class indices to dataset category ids.

    If ``class_names`` are those of a builtin vocabulary (e.g. the official COCO panoptic
    classifier) whose dataset ids are exactly the ids of ``categories``, classes map by id.
    Otherwise by name, trying in turn the normalised name (lower case, ``_``/``-`` as spaces), the
    set of its words without "other" / "merged" / "stuff" (so COCO's ``floor-wood`` matches
    ``wood floor``), then each synonym of a comma-separated name.

    Args:
        class_names: The model's vocabulary, index = class.
        categories: Dataset categories with ``id`` and (optionally) ``name``.

    Returns:
        ``class index -> category id`` for the classes that matched; each category is taken by at
        most one class per matching tier.
    """
    from ..vocab.vocabulary import BUILTIN_VOCABULARIES, Vocabulary, split_synonyms

    cat_ids = [c["id"] for c in categories]
    for name in BUILTIN_VOCABULARIES:
        vocab = Vocabulary.builtin(name)
        if (
            vocab.dataset_ids is not None
            and tuple(vocab.names) == tuple(class_names)
            and set(vocab.dataset_ids) == set(cat_ids)
            and len(set(vocab.dataset_ids)) == len(vocab.dataset_ids)
        ):
            return dict(enumerate(vocab.dataset_ids))
    exact: dict[str, Any] = {}
    token: dict[str, Any] = {}
    synonym: dict[str, Any] = {}
    for c in categories:
        name = str(c.get("name", c["id"]))
        exact.setdefault(_norm(name), c["id"])
        token.setdefault(_token_key(name), c["id"])
        for s in split_synonyms(name):
            synonym.setdefault(_norm(s), c["id"])
    out: dict[int, Any] = {}
    for i, n in enumerate(class_names):
        for table, key in ((exact, _norm(n)), (token, _token_key(n))):
            if key in table:
                out[i] = table[key]
                break
        else:
            for s in split_synonyms(str(n)):
                if _norm(s) in exact:
                    out[i] = exact[_norm(s)]
                    break
                if _norm(s) in synonym:
                    out[i] = synonym[_norm(s)]
                    break
    return out


def _mapping_notes(
    model: Any, cmap: Mapping[int, Any], categories: Sequence[Mapping[str, Any]]
) -> list[str]:
    """User notes (and one warning) when model classes do not cover the dataset categories."""
    covered = set(cmap.values())
    missing = [str(c.get("name", c["id"])) for c in categories if c["id"] not in covered]
    notes = []
    if not cmap:
        msg = (
            f"none of the model's {len(model.class_names)} classes matches a dataset category by "
            f"name (dataset: {', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}), so "
            "every class prediction is dropped. Fix: give the dataset's classes with --classes "
            "(a classifier .safetensors from `rapsam vocab build`, or a class list)."
        )
        warnings.warn(msg, ClassMappingWarning, stacklevel=3)
        notes.append(msg)
    elif missing:
        notes.append(
            f"{len(missing)} dataset categories have no model class: "
            f"{', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''}"
        )
    return notes


# ------------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------------


def _progress(
    it: Iterable, show: bool, desc: str, total: int | None = None, unit: str = "img"
) -> Iterable:
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, desc=desc, unit=unit, total=total)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive number of images / videos, got {limit!r}")


def _first(seq: Sequence[Any], limit: int | None) -> list[Any]:
    return list(seq) if limit is None else list(seq)[:limit]


def _find_file(folder: Path, name: str, *, source: str, record: str, what: str) -> Path:
    """``folder / name``, or the same stem with another image extension; a clear error otherwise."""
    from ..data.datasets.base import find_image

    p = find_image(Path(folder), name)
    if p is None:
        raise EvaluationInputError(
            f"{what} {str(Path(folder) / name)!r} does not exist.",
            source=source,
            record=record,
            fix=f"check the {what} folder (--images / --video-dir) and the file names in the JSON.",
        )
    return p


def _np(x: Any) -> np.ndarray:
    """A torch tensor (any device) or array as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _read_rgb(path: Path) -> np.ndarray:
    from ..io.image import read_image

    return read_image(path)


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    os.replace(tmp, path)
    return path


def _image_scale_kw(image_scale: Any) -> dict[str, Any]:
    return (
        {}
        if isinstance(image_scale, str) and image_scale == "model"
        else {"image_scale": image_scale}
    )


def _pq_metrics(r: Any) -> dict[str, float]:
    out = {}
    for suffix, g in (("", r.all), ("_th", r.things), ("_st", r.stuff)):
        out[f"PQ{suffix}"] = 100 * g.pq
        out[f"SQ{suffix}"] = 100 * g.sq
        out[f"RQ{suffix}"] = 100 * g.rq
    return out


def _ap_metrics(r: Any, keys: Sequence[tuple[str, str]]) -> dict[str, float]:
    return {k: (100 * getattr(r, attr) if getattr(r, attr) != -1 else -1.0) for k, attr in keys}


_INSTANCE_KEYS = (
    ("AP", "ap"),
    ("AP50", "ap50"),
    ("AP75", "ap75"),
    ("APs", "ap_small"),
    ("APm", "ap_medium"),
    ("APl", "ap_large"),
)
_VIS_KEYS = (("AP", "ap"), ("AP50", "ap50"), ("AP75", "ap75"), ("AR1", "ar1"), ("AR10", "ar10"))


# ------------------------------------------------------------------------------------------------
# COCO panoptic ground truth
# ------------------------------------------------------------------------------------------------


@dataclass
class _PanopticGT:
    data: dict[str, Any]
    source: str
    annotations: list[dict[str, Any]]  # the evaluated ones, in file order
    images: dict[Any, dict[str, Any]]  # image_id -> image record
    categories: list[dict[str, Any]]

    def subset(self) -> dict[str, Any]:
        """The GT JSON restricted to the evaluated annotations."""
        ids = {a["image_id"] for a in self.annotations}
        return {
            **self.data,
            "annotations": self.annotations,
            "images": [im for im in self.data.get("images", []) if im.get("id") in ids],
        }

    @property
    def names(self) -> dict[Any, str]:
        return {c["id"]: str(c.get("name", c["id"])) for c in self.categories}


def _load_panoptic_gt(
    ann_file: str | os.PathLike, limit: int | None, *, need_images: bool
) -> _PanopticGT:
    from .panoptic_quality import _category_map, _check_panoptic_json

    src = str(ann_file)
    data = load_json(ann_file, what="panoptic ground truth")
    _check_panoptic_json(data, src, is_gt=True)
    _category_map(data["categories"], src)
    images: dict[Any, dict[str, Any]] = {}
    if need_images:
        fix = "a COCO panoptic JSON lists images [{id, file_name, height, width}]."
        require_keys(data, ("images",), source=src, where="top level", fix=fix)
        for i, im in enumerate(data["images"]):
            require_keys(im, ("id", "file_name"), source=src, where=f"images[{i}]", fix=fix)
            images[im["id"]] = im
        for i, a in enumerate(data["annotations"]):
            if a["image_id"] not in images:
                raise EvaluationInputError(
                    f"image_id {a['image_id']!r} is not in 'images'.",
                    source=src,
                    record=f"annotations[{i}]",
                    fix=fix,
                )
    return _PanopticGT(
        data, src, _first(data["annotations"], limit), images, list(data["categories"])
    )


def _panoptic_to_dataset(
    res: Any, cmap: Mapping[int, Any], thing_of: Mapping[Any, bool]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A ``PanopticResult`` -> ``(ids (H, W) int64, segments_info)`` in dataset category ids.

    Segments of unmapped classes become void; stuff segments of one dataset category are merged
    (the COCO panoptic format has one segment per stuff category). Ids are renumbered 1, 2, ...
    """
    src = _np(res.seg_ids).astype(np.int64)
    lut = np.zeros(int(src.max(initial=0)) + 1, np.int64)
    segs: list[dict[str, Any]] = []
    stuff_id: dict[Any, int] = {}
    for s in res.segments:
        if s.label not in cmap or s.id >= lut.size:
            continue
        cat = cmap[s.label]
        if not thing_of.get(cat, True) and cat in stuff_id:
            lut[s.id] = stuff_id[cat]
            continue
        new = len(segs) + 1
        lut[s.id] = new
        segs.append({"id": new, "category_id": cat, "iscrowd": 0})
        if not thing_of.get(cat, True):
            stuff_id[cat] = new
    ids = lut[src]  # (H, W)
    present = set(np.unique(ids).tolist())
    kept = [s for s in segs if s["id"] in present]
    if len(kept) != len(segs):  # a segment may lose all pixels to a merged one; renumber densely
        remap = np.zeros(len(segs) + 1, np.int64)
        for k, s in enumerate(kept, 1):
            remap[s["id"]] = k
            s["id"] = k
        ids = remap[ids]
    for s in kept:
        m = ids == s["id"]
        ys, xs = np.nonzero(m)
        s["area"] = int(m.sum())
        s["bbox"] = [
            int(xs.min()),
            int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        ]
    return ids, kept


# ------------------------------------------------------------------------------------------------
# Panoptic
# ------------------------------------------------------------------------------------------------



def _load_panoptic_pair(gt: Any, ann: dict, i: int, image_dir: Any, panoptic_dir: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """(record name, RGB image, GT id map) of annotation ``i``; sizes checked."""
    rec = f"annotations[{i}] (image_id={ann['image_id']!r})"
    info = gt.images[ann["image_id"]]
    img = _read_rgb(_find_file(Path(image_dir), info["file_name"], source=gt.source, record=rec, what="image"))
    gt_ids = read_panoptic_png(Path(panoptic_dir) / ann["file_name"], source=gt.source, record=rec)
    if gt_ids.shape != img.shape[:2]:
        raise EvaluationInputError(
            f"the image is {img.shape[0]}x{img.shape[1]} but its panoptic PNG is "
            f"{gt_ids.shape[0]}x{gt_ids.shape[1]}.",
            source=gt.source,
            record=rec,
            fix="pass the image folder that belongs to this annotation file.",
        )
    return rec, img, gt_ids

def run_panoptic(
    model: Any,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> EvalRun:
    """PQ of ``model`` (``PanopticPredictor``) on a COCO panoptic split.

    Args:
        model: A ``RapSam`` with a vocabulary.
        ann_file: GT panoptic JSON (``images``, ``annotations``, ``categories``).
        image_dir: Folder of the images named in ``images[*].file_name``.
        panoptic_dir: Folder of the GT panoptic PNGs.
        image_scale: Test resize ``(long, short)``, ``None`` (none) or ``"model"`` (its config).
        limit: Evaluate only the first ``limit`` annotated images.
        progress: Show a progress bar.
        out_dir: Write ``panoptic.json`` + ``panoptic/<png>`` (COCO panoptic predictions) here.

    Raises:
        EvaluationInputError: malformed GT JSON, a missing image or PNG (the message names them).
    """
    from ..predictor import PanopticPredictor
    from .panoptic_quality import PanopticPredictionWriter, PQStats, pq_from_stats, pq_image_stats

    _check_limit(limit)
    gt = _load_panoptic_gt(ann_file, limit, need_images=True)
    cats = {c["id"]: c for c in gt.categories}
    thing_of = {c["id"]: c["isthing"] == 1 for c in gt.categories}
    cmap = match_categories(model.class_names, gt.categories)
    notes = _mapping_notes(model, cmap, gt.categories)
    pred = PanopticPredictor(model, **_image_scale_kw(image_scale))
    writer = PanopticPredictionWriter(Path(out_dir) / "panoptic") if out_dir is not None else None
    stats = PQStats()
    for i, ann in enumerate(_progress(gt.annotations, progress, "panoptic")):
        rec, img, gt_ids = _load_panoptic_pair(gt, ann, i, image_dir, panoptic_dir)
        res = pred.predict(img, tasks=("panoptic",)).panoptic
        ids, segs = _panoptic_to_dataset(res, cmap, thing_of)
        stats += pq_image_stats(
            gt_ids, ann["segments_info"], ids, segs, cats, source="<model predictions>", record=rec
        )
        if writer is not None:
            writer.add(ann["image_id"], Path(ann["file_name"]).name, ids, segs)
    outputs = []
    if writer is not None:
        path = Path(out_dir) / "panoptic.json"
        _write_json(path, {"annotations": writer.annotations, "categories": gt.categories})
        outputs = [path, writer.folder]
    r = pq_from_stats(stats, gt.categories, empty_group="nan")
    return EvalRun(
        "panoptic",
        r,
        {**_pq_metrics(r), "images": len(gt.annotations)},
        len(gt.annotations),
        gt.names,
        outputs,
        notes,
    )


def score_panoptic(
    ann_file: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    pred_json: str | os.PathLike,
    pred_dir: str | os.PathLike,
    *,
    limit: int | None = None,
    num_workers: int = 0,
) -> EvalRun:
    """PQ of saved COCO panoptic predictions (``pq_compute`` on the files).

    Args:
        ann_file, panoptic_dir: GT panoptic JSON and PNG folder.
        pred_json, pred_dir: Prediction JSON (``annotations`` with ``image_id``, ``file_name``,
            ``segments_info``) and PNG folder.
        limit: Score only the first ``limit`` GT annotations.
        num_workers: Worker processes for ``pq_compute``.

    Raises:
        EvaluationInputError: malformed files, a GT image without prediction, or a PNG that
            disagrees with its ``segments_info`` (the message names the file and the record).
    """
    from .panoptic_quality import pq_compute

    _check_limit(limit)
    gt = _load_panoptic_gt(ann_file, limit, need_images=False)
    r = pq_compute(
        gt.subset(), panoptic_dir, pred_json, pred_dir, num_workers=num_workers, empty_group="nan"
    )
    return EvalRun(
        "panoptic",
        r,
        {**_pq_metrics(r), "images": len(gt.annotations)},
        len(gt.annotations),
        gt.names,
    )


# ------------------------------------------------------------------------------------------------
# Instance
# ------------------------------------------------------------------------------------------------


def _instance_gt(ann_file: str | os.PathLike, limit: int | None) -> tuple[Any, dict[str, Any]]:
    """(validated ``COCO`` of the whole file, GT dict restricted to the first ``limit`` images)."""
    from .instance_ap import load_coco_gt

    coco = load_coco_gt(str(ann_file))
    data = coco.dataset
    images = _first(data["images"], limit)
    ids = {im["id"] for im in images}
    sub = {
        **data,
        "images": images,
        "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
    }
    return coco, sub


def run_instance(
    model: Any,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> EvalRun:
    """COCO mask AP of ``model`` (the top-100 thing instances of ``PanopticPredictor``).

    Args:
        ann_file: COCO instances JSON.
        image_dir: Folder of its images.
        out_dir: Write ``instances.json`` (COCO results, compressed RLE, with ``bbox``) here.
        Other arguments as :func:`run_panoptic`.
    """
    from ..predictor import PanopticPredictor
    from .instance_ap import evaluate_instance_ap, masks_to_coco_results

    _check_limit(limit)
    _, sub = _instance_gt(ann_file, limit)
    cats = sub["categories"]
    cmap = match_categories(model.class_names, cats)
    notes = _mapping_notes(model, cmap, cats)
    pred = PanopticPredictor(model, **_image_scale_kw(image_scale))
    results: list[dict[str, Any]] = []
    for info in _progress(sub["images"], progress, "instance"):
        rec = f"image_id={info['id']!r}"
        img = _read_rgb(
            _find_file(
                Path(image_dir), info["file_name"], source=str(ann_file), record=rec, what="image"
            )
        )
        if img.shape[:2] != (int(info["height"]), int(info["width"])):
            raise EvaluationInputError(
                f"the image is {img.shape[0]}x{img.shape[1]} but the annotation says "
                f"{info['height']}x{info['width']}.",
                source=str(ann_file),
                record=rec,
                fix="pass the image folder that belongs to this annotation file.",
            )
        inst = pred.predict(img, tasks=("instance",)).instances.numpy()
        labels = np.asarray(inst.labels, dtype=np.int64)
        keep = np.array([int(k) in cmap for k in labels], dtype=bool)
        cat_ids = np.array([cmap[int(k)] for k in labels[keep]], dtype=np.int64)
        results.extend(
            masks_to_coco_results(info["id"], inst.masks[keep], inst.scores[keep], cat_ids)
        )
    outputs = []
    if out_dir is not None:
        outputs = [_write_json(Path(out_dir) / "instances.json", results)]
    r = evaluate_instance_ap(sub, results, validate=False)
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    return EvalRun(
        "instance",
        r,
        {**_ap_metrics(r, _INSTANCE_KEYS), "images": len(sub["images"])},
        len(sub["images"]),
        names,
        outputs,
        notes,
    )


def score_instance(
    ann_file: str | os.PathLike, results: str | os.PathLike, *, limit: int | None = None
) -> EvalRun:
    """COCO mask AP of a saved COCO results JSON (pycocotools ``COCOeval``, iouType ``segm``).

    Raises:
        EvaluationInputError: malformed GT or results (unknown image or category, bad RLE, bad
            score); the message names the file and the record.
    """
    from .instance_ap import _image_sizes, evaluate_instance_ap
    from .io import read_coco_instance_results

    _check_limit(limit)
    coco, sub = _instance_gt(ann_file, limit)
    dets = read_coco_instance_results(
        results, image_sizes=_image_sizes(coco), category_ids=coco.getCatIds()
    )
    keep = {im["id"] for im in sub["images"]}
    dets = [d for d in dets if d["image_id"] in keep]
    r = evaluate_instance_ap(sub, dets, validate=False)
    names = {c["id"]: str(c.get("name", c["id"])) for c in sub["categories"]}
    return EvalRun(
        "instance",
        r,
        {**_ap_metrics(r, _INSTANCE_KEYS), "images": len(sub["images"])},
        len(sub["images"]),
        names,
    )


# ------------------------------------------------------------------------------------------------
# Semantic
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticItem:
    """One semantic GT image: ``name`` (file stem, also the prediction PNG stem), the image path
    (``None`` if not found) and the label PNG."""

    name: str
    image: Path | None
    label: Path


@dataclass(frozen=True)
class SemanticGT:
    """Semantic ground truth: class names and one label PNG per image.

    Two encodings: ``"ade"`` (ADE20K: value ``v`` in ``1..K`` is class ``v - 1``, 0 = ignored,
    mmseg's ``reduce_zero_label``) and ``"contiguous"`` (COCO ``panoptic_semseg``: value = class
    index, 255 = ignored). Predictions are always class indices ``0..K-1`` with 255 = no class.

    Build with :meth:`ade` or :meth:`coco`.
    """

    class_names: tuple[str, ...]
    items: tuple[SemanticItem, ...]
    encoding: str
    source: str

    @classmethod
    def ade(
        cls,
        image_dir: str | os.PathLike | None,
        ann_dir: str | os.PathLike,
        classes: Sequence[str] | str | os.PathLike,
    ) -> SemanticGT:
        """ADE20K layout: ``ann_dir/<stem>.png`` per image, classes from ``objectInfo150.txt``.

        Every PNG of ``ann_dir`` is one GT image (sorted by name); its image is
        ``image_dir/<stem>.{jpg,jpeg,png}``.

        Raises:
            EvaluationInputError: ``ann_dir`` missing or holding no PNG, or a bad class list.
        """
        from ..data.datasets import read_ade_object_info
        from ..data.datasets.base import DatasetFormatError, find_image

        ann = Path(ann_dir)
        if isinstance(classes, (str, os.PathLike)):
            try:
                names = read_ade_object_info(classes)
            except DatasetFormatError as e:
                raise EvaluationInputError(str(e), fix="pass ADE's objectInfo150.txt.") from None
        else:
            names = [str(c) for c in classes]
        if not ann.is_dir():
            raise EvaluationInputError(
                f"annotation folder {str(ann)!r} does not exist.",
                fix="pass the folder of label PNGs (--masks).",
            )
        labels = sorted(p for p in ann.iterdir() if p.suffix.lower() == ".png")
        if not labels:
            raise EvaluationInputError(
                f"annotation folder {str(ann)!r} holds no PNG.",
                fix="pass the folder of label PNGs (--masks).",
            )
        items = tuple(
            SemanticItem(
                p.stem,
                find_image(Path(image_dir), p.stem + ".png") if image_dir is not None else None,
                p,
            )
            for p in labels
        )
        return cls(tuple(names), items, "ade", str(ann))

    @classmethod
    def coco(
        cls,
        panoptic_json: str | os.PathLike,
        semseg_dir: str | os.PathLike,
        image_dir: str | os.PathLike | None = None,
    ) -> SemanticGT:
        """COCO ``panoptic_semseg`` layout: classes = panoptic ``categories`` in file order, label
        PNG ``semseg_dir/<image stem>.png`` for each image of the panoptic JSON.

        Raises:
            EvaluationInputError: malformed JSON.
        """
        from ..data.datasets.base import find_image

        src = str(panoptic_json)
        data = load_json(panoptic_json, what="panoptic ground truth")
        fix = "pass the COCO panoptic JSON whose categories the semantic PNGs index."
        require_keys(data, ("images", "categories"), source=src, where="top level", fix=fix)
        for i, c in enumerate(data["categories"]):
            require_keys(c, ("id",), source=src, where=f"categories[{i}]", fix=fix)
        items = []
        for i, im in enumerate(data["images"]):
            require_keys(im, ("file_name",), source=src, where=f"images[{i}]", fix=fix)
            stem = Path(im["file_name"]).stem
            img = find_image(Path(image_dir), im["file_name"]) if image_dir is not None else None
            items.append(SemanticItem(stem, img, Path(semseg_dir) / f"{stem}.png"))
        names = tuple(str(c.get("name", c["id"])) for c in data["categories"])
        return cls(names, tuple(items), "contiguous", src)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def read_label(self, item: SemanticItem) -> np.ndarray:
        """``(H, W)`` int64 class indices with 255 = ignore."""
        arr = _read_index_png(
            item.label, source=self.source, record=f"image {item.name!r}", what="label PNG"
        )
        k = self.num_classes
        if self.encoding == "ade":
            if arr.max(initial=0) > k:
                raise EvaluationInputError(
                    f"label PNG {str(item.label)!r} holds value {int(arr.max())} but there are "
                    f"{k} classes.",
                    source=self.source,
                    record=f"image {item.name!r}",
                    fix="pass the class list (objectInfo150.txt) that belongs to the labels.",
                )
            out = arr - 1
            out[arr == 0] = 255
            return out
        bad = (arr >= k) & (arr != 255)
        if bad.any():
            raise EvaluationInputError(
                f"label PNG {str(item.label)!r} holds value {int(arr[bad][0])}, not a class index "
                f"of the {k} categories or 255.",
                source=self.source,
                record=f"image {item.name!r}",
                fix="pass the semantic folder made from this panoptic JSON.",
            )
        return arr


def _read_index_png(path: Path, *, source: str, record: str, what: str) -> np.ndarray:
    from PIL import Image

    if not Path(path).is_file():
        raise MissingPredictionError(
            f"{what} {str(path)!r} does not exist.",
            source=source,
            record=record,
            fix="write one single-channel PNG per image, named <image stem>.png.",
        )
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise EvaluationInputError(
            f"{what} {str(path)!r} has shape {arr.shape}; a single-channel class-index PNG "
            "is required.",
            source=source,
            record=record,
            fix="save class indices as an 8-bit greyscale ('L') or palette ('P') PNG.",
        )
    return arr.astype(np.int64)


class _SemanticAccumulator:
    """mmseg mIoU where a "no class" prediction (255) counts as wrong for its GT class."""

    def __init__(self, class_names: Sequence[str]) -> None:
        from .semantic import SemanticEvaluator

        self.k = len(class_names)
        self.names = tuple(class_names)
        self.ev = SemanticEvaluator(self.k + 1, ignore_index=255)  # class K = "no class"

    def add(self, pred: np.ndarray, gt: np.ndarray, *, source: str, record: str) -> None:
        if pred.shape != gt.shape:
            raise EvaluationInputError(
                f"prediction is {pred.shape[0]}x{pred.shape[1]} but the label is "
                f"{gt.shape[0]}x{gt.shape[1]}.",
                source=source,
                record=record,
                fix="write predictions at the original image size.",
            )
        bad = (pred >= self.k) & (pred != 255)
        if bad.any():
            raise EvaluationInputError(
                f"prediction holds value {int(pred[bad][0])}, not a class index of the {self.k} "
                "dataset classes or 255 (no class).",
                source=source,
                record=record,
                fix="write dataset class indices 0..K-1 (255 where no class is predicted).",
            )
        p = np.where(pred == 255, self.k, pred)
        self.ev.add(p, gt)

    def compute(self) -> Any:
        from .semantic import SemanticResult

        r = self.ev.compute()
        k = self.k
        iou = r.per_class_iou[:k]
        acc = r.per_class_accuracy[:k]
        cm = r.confusion[:k]  # (K, K + 1): last column = "no class" predictions
        total = cm.sum()
        return SemanticResult(
            miou=float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else math.nan,
            per_class_iou=iou,
            pixel_accuracy=float(np.trace(cm[:, :k]) / total) if total > 0 else math.nan,
            mean_accuracy=float(np.nanmean(acc)) if np.any(~np.isnan(acc)) else math.nan,
            per_class_accuracy=acc,
            confusion=cm,
            class_names=self.names,
        )


def _semantic_metrics(r: Any) -> dict[str, float]:
    return {"mIoU": 100 * r.miou, "aAcc": 100 * r.pixel_accuracy, "mAcc": 100 * r.mean_accuracy}


def run_semantic(
    model: Any,
    gt: SemanticGT,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> EvalRun:
    """mIoU of ``model``'s semantic maps (argmax over classes of the summed query masks).

    Args:
        gt: The ground truth (:meth:`SemanticGT.ade` / :meth:`SemanticGT.coco`), with images.
        out_dir: Write ``semantic/<stem>.png`` (dataset class index, 255 = no class) here.
        Other arguments as :func:`run_panoptic`.
    """
    from ..io.image import write_png
    from ..predictor import PanopticPredictor

    _check_limit(limit)
    if gt.num_classes > 255:
        raise ValueError(f"{gt.num_classes} classes do not fit an 8-bit prediction PNG (max 255).")
    cats = [{"id": i, "name": n} for i, n in enumerate(gt.class_names)]
    cmap = match_categories(model.class_names, cats)
    notes = _mapping_notes(model, cmap, cats)
    lut = np.full(len(model.class_names), 255, np.int64)
    for k, c in cmap.items():
        lut[k] = c
    pred = PanopticPredictor(model, **_image_scale_kw(image_scale))
    acc = _SemanticAccumulator(gt.class_names)
    items = _first(gt.items, limit)
    folder = Path(out_dir) / "semantic" if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for it in _progress(items, progress, "semantic"):
        rec = f"image {it.name!r}"
        if it.image is None:
            raise EvaluationInputError(
                f"no image found for label {str(it.label)!r}.",
                source=gt.source,
                record=rec,
                fix="pass the image folder (--images DIR).",
            )
        img = _read_rgb(it.image)
        label = gt.read_label(it)
        sem = _np(pred.predict(img, tasks=("semantic",)).semantic.sem).astype(np.int64)
        p = lut[sem]  # (H, W) dataset class or 255
        acc.add(p, label, source=str(it.image), record=rec)
        if folder is not None:
            write_png(folder / f"{it.name}.png", p.astype(np.uint8))
    r = acc.compute()
    return EvalRun(
        "semantic",
        r,
        {**_semantic_metrics(r), "images": len(items)},
        len(items),
        dict(enumerate(gt.class_names)),
        [folder] if folder is not None else [],
        notes,
    )


def score_semantic(
    gt: SemanticGT, pred_dir: str | os.PathLike, *, limit: int | None = None
) -> EvalRun:
    """mIoU of saved class-index PNGs ``pred_dir/<stem>.png`` (dataset index, 255 = no class).

    Raises:
        EvaluationInputError: a missing or malformed prediction PNG (named), or a size mismatch.
    """
    _check_limit(limit)
    acc = _SemanticAccumulator(gt.class_names)
    items = _first(gt.items, limit)
    for it in items:
        rec = f"image {it.name!r}"
        path = Path(pred_dir) / f"{it.name}.png"
        p = _read_index_png(path, source=str(pred_dir), record=rec, what="prediction PNG")
        acc.add(p, gt.read_label(it), source=str(path), record=rec)
    r = acc.compute()
    return EvalRun(
        "semantic",
        r,
        {**_semantic_metrics(r), "images": len(items)},
        len(items),
        dict(enumerate(gt.class_names)),
    )


# ------------------------------------------------------------------------------------------------
# Interactive
# ------------------------------------------------------------------------------------------------


def _prompt_segments(gt_ids: np.ndarray, ann: Mapping[str, Any]) -> tuple[list[int], np.ndarray]:
    """The segments COCO-SAM prompts (every listed segment with area > 0 and pixels in the PNG):
    their ids and ``(N, H, W)`` bool masks."""
    ids, masks = [], []
    for s in ann["segments_info"]:
        if isinstance(s.get("area"), (int, float)) and s["area"] <= 0:
            continue
        m = gt_ids == s["id"]
        if m.any():
            ids.append(int(s["id"]))
            masks.append(m)
    h, w = gt_ids.shape
    return ids, (np.stack(masks) if masks else np.zeros((0, h, w), bool))


def _click_gt(mask: np.ndarray, test_size: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray]:
    """COCO-SAM: the click ``(x, y)`` in test-size pixels and the GT the IoU is taken against."""
    from .interactive import coco_sam_click, coco_sam_iou_gt, resize_nearest

    h, w = mask.shape
    if tuple(test_size) == (h, w):
        return coco_sam_click(mask), mask
    small = resize_nearest(mask, test_size)
    return coco_sam_click(small), coco_sam_iou_gt(small, (h, w))


def _noc_traces(
    predictor: Any, gts: np.ndarray, *, max_clicks: int, target_iou: float, extra_until: int
) -> list[Any]:
    """RITM click loop (:func:`~rapsam.evaluation.interactive.run_clicks`) for all objects of one
    image at once: each round clicks every unfinished object and decodes them in one pass."""
    from .interactive import ClickTrace, next_click, ritm_iou

    n, h, w = gts.shape
    preds = np.zeros((n, h, w), bool)
    not_clicked = np.ones((n, h, w), bool)
    traces = [ClickTrace() for _ in range(n)]
    stopped = [False] * n
    for k in range(max_clicks):
        active = [i for i in range(n) if not (stopped[i] and k >= extra_until)]
        if not active:
            break
        for i in active:
            c = next_click(gts[i], preds[i], not_clicked=not_clicked[i])
            not_clicked[i, c.y, c.x] = False
            traces[i].clicks.append(c)
        pts = np.array([[[c.x, c.y] for c in traces[i].clicks] for i in active], np.float64)
        lab = np.array([[int(c.is_positive) for c in traces[i].clicks] for i in active], np.int64)
        out = predictor.predict(points=pts, labels=lab, return_logits=True)
        masks = _np(out.logits > _RITM_LOGIT_THR)  # (A, H, W)
        for j, i in enumerate(active):
            preds[i] = masks[j]
            iou = ritm_iou(gts[i], preds[i])
            traces[i].ious_all.append(iou)
            if not stopped[i]:
                traces[i].ious.append(iou)
                if iou >= target_iou:
                    stopped[i] = True
    return traces


def _interactive_metrics(click: Any, box: Any, noc: Any) -> dict[str, float]:
    out: dict[str, float] = {"mIoU_1click": 100 * click.miou, "prompts": click.num_prompts}
    if box is not None:
        out["mIoU_box"] = 100 * box.miou
    if noc is not None:
        for thr, v in noc.noc.items():
            out[f"NoC@{round(100 * thr)}"] = v
        for k, v in noc.miou_at.items():
            out[f"mIoU@{k}"] = 100 * v
    return out


def run_interactive(
    model: Any,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    boxes: bool = True,
    noc: bool = True,
    max_clicks: int = 20,
    target_iou: float = 0.9,
    miou_clicks: Sequence[int] = (1, 3, 5),
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> EvalRun:
    """Interactive segmentation of ``model`` on COCO panoptic segments, class-agnostic.

    Args:
        ann_file, image_dir, panoptic_dir: The COCO panoptic split.
        boxes: Also prompt each segment with its tight box.
        noc: Also run the RITM multi-click protocol (up to ``max_clicks`` clicks per segment,
            stopping at ``target_iou`` once mIoU after ``miou_clicks`` clicks is known).
        out_dir: Write ``interactive.json`` (one record per click / box prompt: ``image_id``,
            ``segment_id``, ``prompt``, ``point`` / ``box`` (original pixels), ``test_size``,
            ``segmentation`` (RLE), ``predicted_iou``) here.
        Other arguments as :func:`run_panoptic`.
    """
    from ..predictor import InteractivePredictor
    from ..predictor.transforms import resized_shape
    from .interactive import CocoSamEvaluator, MeanIoUResult, ritm_iou, summarize_noc, tight_box

    _check_limit(limit)
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be >= 1, got {max_clicks}")
    gt = _load_panoptic_gt(ann_file, limit, need_images=True)
    pred = InteractivePredictor(model, **_image_scale_kw(image_scale))
    click_ev = CocoSamEvaluator()
    box_ious: list[float] = []
    traces: list[Any] = []
    records: list[dict[str, Any]] = []
    for i, ann in enumerate(_progress(gt.annotations, progress, "interactive")):
        rec, img, gt_ids = _load_panoptic_pair(gt, ann, i, image_dir, panoptic_dir)
        seg_ids, masks = _prompt_segments(gt_ids, ann)
        if not seg_ids:
            continue  # the official evaluator skips images without segments
        h, w = gt_ids.shape
        test_size = resized_shape(h, w, pred.image_scale)
        sx, sy = test_size[1] / w, test_size[0] / h
        clicks, iou_gts = zip(*(_click_gt(m, test_size) for m in masks))
        pts = np.array([[x / sx, y / sy] for x, y in clicks], np.float64)  # (N, 2) original px
        pred.set_image(img)
        res = pred.predict(points=pts)
        pm = _np(res.masks)
        click_ev.add(pm, np.stack(iou_gts))
        for j, sid in enumerate(seg_ids):
            records.append(
                {
                    "image_id": ann["image_id"],
                    "segment_id": sid,
                    "prompt": "point",
                    "point": pts[j].tolist(),
                    "test_size": list(test_size),
                    "segmentation": encode_mask(pm[j]),
                    "predicted_iou": float(res.iou[j]),
                }
            )
        if boxes:
            bxs = np.stack([tight_box(m) for m in masks]).astype(np.float64)  # (N, 4) xyxy
            bres = pred.predict(boxes=bxs)
            bm = _np(bres.masks)
            for j, sid in enumerate(seg_ids):
                box_ious.append(ritm_iou(masks[j], bm[j]))
                records.append(
                    {
                        "image_id": ann["image_id"],
                        "segment_id": sid,
                        "prompt": "box",
                        "box": bxs[j].tolist(),
                        "segmentation": encode_mask(bm[j]),
                        "predicted_iou": float(bres.iou[j]),
                    }
                )
        if noc:
            traces.extend(
                _noc_traces(
                    pred,
                    masks,
                    max_clicks=max_clicks,
                    target_iou=target_iou,
                    extra_until=max(miou_clicks, default=0),
                )
            )
    click_r = click_ev.compute()
    box_r = (
        MeanIoUResult(float(np.mean(box_ious)) if box_ious else math.nan, tuple(box_ious))
        if boxes
        else None
    )
    noc_r = (
        summarize_noc(traces, max_clicks=max_clicks, target_iou=target_iou, miou_clicks=miou_clicks)
        if noc
        else None
    )
    outputs = []
    if out_dir is not None:
        outputs = [_write_json(Path(out_dir) / "interactive.json", records)]
    result = {"click": click_r, "box": box_r, "noc": noc_r}
    return EvalRun(
        "interactive",
        result,
        {**_interactive_metrics(click_r, box_r, noc_r), "images": len(gt.annotations)},
        len(gt.annotations),
        {},
        outputs,
    )


def score_interactive(
    ann_file: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    predictions: str | os.PathLike,
    *,
    limit: int | None = None,
) -> EvalRun:
    """Single-click and box mIoU of saved interactive predictions.

    ``predictions`` is a JSON list as :func:`run_interactive` writes it: per record ``image_id``,
    ``segment_id`` (a GT panoptic segment), ``prompt`` (``"point"`` or ``"box"``) and
    ``segmentation`` (compressed or uncompressed RLE at the image size); an optional
    ``test_size`` ``[h, w]`` makes point IoUs use COCO-SAM's GT (resized mask upsampled back),
    else the original mask. Every prompted GT segment (area > 0) needs one record per prompt type
    present in the file. NoC needs the model in the loop and is not available here.

    Raises:
        EvaluationInputError: malformed records, unknown image or segment, duplicates, or a
            segment without prediction (the message names the file and the record).
    """
    import pycocotools.mask as mask_utils

    from .interactive import (
        CocoSamEvaluator,
        MeanIoUResult,
        coco_sam_iou_gt,
        resize_nearest,
        ritm_iou,
    )

    _check_limit(limit)
    gt = _load_panoptic_gt(ann_file, limit, need_images=False)
    src = str(predictions)
    data = load_json(predictions, what="interactive predictions")
    fix = (
        "write a JSON list of {image_id, segment_id, prompt: 'point'|'box', segmentation "
        "(RLE)} records, one per GT segment and prompt type."
    )
    if not isinstance(data, list):
        raise EvaluationInputError(
            "predictions must be a JSON list of records.", source=src, fix=fix
        )
    by_key: dict[tuple[Any, int, str], tuple[int, dict[str, Any]]] = {}
    kinds: set[str] = set()
    for i, r in enumerate(data):
        where = f"[{i}]"
        require_keys(
            r,
            ("image_id", "segment_id", "prompt", "segmentation"),
            source=src,
            where=where,
            fix=fix,
        )
        if r["prompt"] not in ("point", "box"):
            raise EvaluationInputError(
                f"prompt {r['prompt']!r} is not 'point' or 'box'.",
                source=src,
                record=where,
                fix=fix,
            )
        key = (r["image_id"], r["segment_id"], r["prompt"])
        if key in by_key:
            raise EvaluationInputError(
                f"a second {r['prompt']} prediction for image_id={r['image_id']!r} segment_id="
                f"{r['segment_id']!r} (first at [{by_key[key][0]}]).",
                source=src,
                record=where,
                fix="write one record per segment and prompt type.",
            )
        by_key[key] = (i, r)
        kinds.add(r["prompt"])
    known = {a["image_id"] for a in gt.data["annotations"]}
    for (img_id, _, _), (i, _) in by_key.items():
        if img_id not in known:
            raise EvaluationInputError(
                f"image_id {img_id!r} is not in the ground truth.",
                source=src,
                record=f"[{i}]",
                fix="use the image ids of the annotation file.",
            )
    click_ev = CocoSamEvaluator()
    box_ious: list[float] = []
    used: set[tuple[Any, int, str]] = set()
    for j, ann in enumerate(gt.annotations):
        rec = f"annotations[{j}] (image_id={ann['image_id']!r})"
        gt_ids = read_panoptic_png(
            Path(panoptic_dir) / ann["file_name"], source=gt.source, record=rec
        )
        h, w = gt_ids.shape
        seg_ids, masks = _prompt_segments(gt_ids, ann)
        for sid, m in zip(seg_ids, masks):
            for kind in sorted(kinds):
                key = (ann["image_id"], sid, kind)
                if key not in by_key:
                    raise MissingPredictionError(
                        f"no {kind} prediction for image_id={ann['image_id']!r} segment_id={sid}.",
                        source=src,
                        record="records",
                        fix=fix,
                    )
                used.add(key)
                i, r = by_key[key]
                where = f"[{i}] (image_id={ann['image_id']!r}, segment_id={sid})"
                rle = check_rle(r["segmentation"], height=h, width=w, source=src, record=where)
                p = mask_utils.decode(
                    {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
                ).astype(bool)
                if kind == "box":
                    box_ious.append(ritm_iou(m, p))
                    continue
                g = m
                ts = r.get("test_size")
                if ts is not None:
                    if (
                        not isinstance(ts, (list, tuple))
                        or len(ts) != 2
                        or not all(isinstance(v, int) and v > 0 for v in ts)
                    ):
                        raise EvaluationInputError(
                            f"test_size {ts!r} is not [height, width].",
                            source=src,
                            record=where,
                            fix=fix,
                        )
                    if tuple(ts) != (h, w):
                        g = coco_sam_iou_gt(resize_nearest(m, tuple(ts)), (h, w))
                click_ev.add(p[None], g[None])
    evaluated = {a["image_id"] for a in gt.annotations}
    for key, (i, _) in by_key.items():
        if key[0] in evaluated and key not in used:
            raise EvaluationInputError(
                f"segment_id {key[1]!r} is not a prompted segment of image_id {key[0]!r}.",
                source=src,
                record=f"[{i}]",
                fix="use the ids of the GT segments_info (segments with area > 0).",
            )
    click_r = click_ev.compute()
    box_r = (
        MeanIoUResult(float(np.mean(box_ious)) if box_ious else math.nan, tuple(box_ious))
        if "box" in kinds
        else None
    )
    return EvalRun(
        "interactive",
        {"click": click_r, "box": box_r, "noc": None},
        {**_interactive_metrics(click_r, box_r, None), "images": len(gt.annotations)},
        len(gt.annotations),
        {},
    )


# ------------------------------------------------------------------------------------------------
# Video instance segmentation (YouTube-VIS)
# ------------------------------------------------------------------------------------------------


def _ytvis_gt(
    ann_file: str | os.PathLike, limit: int | None
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(GT restricted to the first ``limit`` videos, the whole file, its name)."""
    src = str(ann_file)
    data = load_json(ann_file, what="YouTube-VIS ground truth")
    fix = "a YouTube-VIS JSON has videos [{id, height, width, file_names}] and categories [{id}]."
    require_keys(data, ("videos", "categories"), source=src, where="top level", fix=fix)
    for i, v in enumerate(data["videos"]):
        require_keys(
            v, ("id", "height", "width", "file_names"), source=src, where=f"videos[{i}]", fix=fix
        )
    videos = _first(data["videos"], limit)
    ids = {v["id"] for v in videos}
    anns = data.get("annotations")
    sub = {**data, "videos": videos}
    if anns is not None:
        sub["annotations"] = [
            a for a in anns if isinstance(a, Mapping) and a.get("video_id") in ids
        ]
    return sub, data, src


def _frames(
    folder: Path, names: Sequence[str], *, source: str, record: str, what: str = "frame"
) -> Iterator[np.ndarray]:
    for t, name in enumerate(names):
        yield _read_rgb(
            _find_file(folder, name, source=source, record=f"{record} frame {t}", what=what)
        )


def run_vis(
    model: Any,
    ann_file: str | os.PathLike,
    video_dir: str | os.PathLike,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    mode: str = "official",
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
    video_options: dict[str, Any] | None = None,
) -> EvalRun:
    """YouTube-VIS AP of ``model`` with ``VideoPredictor.track``.

    A GT file without ``annotations`` (the YouTube-VIS valid / test release) is predicted only:
    ``results.json`` is written for the evaluation server and ``result`` is None.

    Args:
        ann_file: YouTube-VIS JSON; ``video_dir``: the frame folder ``file_names`` are relative to.
        mode: ``"official"`` (clips + video-level scores, the RAP-SAM protocol) or ``"online"``.
        out_dir: Write ``results.json`` (YouTube-VIS results) here.
        video_options: further ``VideoPredictor`` arguments (e.g. ``largest_component``, ``track_nms_iou``;
            default: the model config's ``video`` settings).
        Other arguments as :func:`run_panoptic`.
    """
    from ..predictor.video import VideoPredictor, YouTubeVISWriter
    from .vis_ap import evaluate_vis_ap

    _check_limit(limit)
    gt, _, src = _ytvis_gt(ann_file, limit)
    cats = gt["categories"]
    cmap = match_categories(model.class_names, cats)
    notes = _mapping_notes(model, cmap, cats)
    vp = VideoPredictor(model, mode=mode, **_image_scale_kw(image_scale), **(video_options or {}))
    cat_list = [cmap.get(k, -1) for k in range(len(model.class_names))]
    results: list[dict[str, Any]] = []
    for v in _progress(gt["videos"], progress, "vis", unit="video"):
        rec = f"video_id={v['id']!r}"
        writer = YouTubeVISWriter(v["id"], category_ids=cat_list)
        frames = _frames(Path(video_dir), v["file_names"], source=src, record=rec)
        for idx, fr in vp.track(frames, mode=mode, tasks=("instance",)):
            ins = fr.instances
            if len(ins) and ins.labels is not None:
                import torch

                keep = [int(k) in cmap for k in ins.labels.tolist()]
                ins = ins[torch.tensor(keep, dtype=torch.bool, device=ins.labels.device)]
            writer.add(idx, ins)
        for r in writer.results(num_frames=len(v["file_names"])):
            r.pop("track_id", None)
            results.append(r)
    outputs = []
    if out_dir is not None:
        outputs = [_write_json(Path(out_dir) / "results.json", results)]
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    n = len(gt["videos"])
    if gt.get("annotations") is None:
        notes.append(
            "the annotation file has no 'annotations' (a YouTube-VIS valid/test release): "
            "results.json was written for the evaluation server; no metrics computed."
        )
        return EvalRun("vis", None, {"videos": n}, n, names, outputs, notes)
    r = evaluate_vis_ap(gt, results)
    return EvalRun("vis", r, {**_ap_metrics(r, _VIS_KEYS), "videos": n}, n, names, outputs, notes)


def score_vis(
    ann_file: str | os.PathLike, results: str | os.PathLike, *, limit: int | None = None
) -> EvalRun:
    """YouTube-VIS AP of a saved results JSON (``YTVOSeval`` rules).

    Raises:
        EvaluationInputError: malformed GT or results (unknown video or category, wrong frame
            count or size, bad RLE, bad score), naming the file and the record; a GT file
            without annotations.
    """
    from .io import read_ytvis_results
    from .vis_ap import evaluate_vis_ap, load_ytvis_gt

    _check_limit(limit)
    gt, full, src = _ytvis_gt(ann_file, limit)
    if gt.get("annotations") is None:
        raise EvaluationInputError(
            "the annotation file has no 'annotations', so there is nothing to score against.",
            source=src,
            fix="YouTube-VIS valid/test results are scored by the evaluation server; "
            "evaluate on a split with annotations.",
        )
    videos, cat_ids, _ = load_ytvis_gt({**full, "annotations": gt["annotations"]})
    dets = read_ytvis_results(results, videos=videos, category_ids=cat_ids)
    keep = {v["id"] for v in gt["videos"]}
    dets = [d for d in dets if d["video_id"] in keep]
    r = evaluate_vis_ap(gt, dets)
    names = {c["id"]: str(c.get("name", c["id"])) for c in gt["categories"]}
    n = len(gt["videos"])
    return EvalRun("vis", r, {**_ap_metrics(r, _VIS_KEYS), "videos": n}, n, names)


# ------------------------------------------------------------------------------------------------
# Video panoptic segmentation (VIPSeg)
# ------------------------------------------------------------------------------------------------


@dataclass
class _VipsegVideo:
    video_id: Any
    frames: list[dict[str, Any]]  # per frame annotation: file_name, segments_info


def _vipseg_gt(
    ann_file: str | os.PathLike, limit: int | None
) -> tuple[list[_VipsegVideo], list[dict[str, Any]], str]:
    from .panoptic_quality import _category_map, _check_segments

    src = str(ann_file)
    data = load_json(ann_file, what="VIPSeg ground truth")
    fix = (
        "follow the VIPSeg panoptic JSON layout: videos [{video_id, images}], annotations "
        "[{video_id, annotations: [{file_name, segments_info}]}], categories [{id, isthing}]."
    )
    require_keys(
        data, ("videos", "annotations", "categories"), source=src, where="top level", fix=fix
    )
    _category_map(data["categories"], src)
    per_video: dict[Any, list[dict[str, Any]]] = {}
    for i, a in enumerate(data["annotations"]):
        require_keys(a, ("video_id", "annotations"), source=src, where=f"annotations[{i}]", fix=fix)
        for t, fa in enumerate(a["annotations"]):
            where = f"annotations[{i}] (video_id={a['video_id']!r}) frame {t}"
            require_keys(fa, ("file_name", "segments_info"), source=src, where=where, fix=fix)
            _check_segments(
                fa["segments_info"],
                ("id", "category_id", "iscrowd", "area"),
                source=src,
                record=where,
            )
        per_video[a["video_id"]] = a["annotations"]
    videos = []
    for i, v in enumerate(data["videos"]):
        require_keys(v, ("video_id",), source=src, where=f"videos[{i}]", fix=fix)
        if v["video_id"] not in per_video:
            raise EvaluationInputError(
                f"video {v['video_id']!r} has no annotations entry.",
                source=src,
                record=f"videos[{i}]",
                fix=fix,
            )
        videos.append(_VipsegVideo(v["video_id"], per_video[v["video_id"]]))
    return _first(videos, limit), list(data["categories"]), src


def _vpq_from_videos(
    videos: Iterable[tuple[Any, list[Any]]],
    categories: Sequence[Mapping],
    window_lengths: Sequence[int],
    source: str,
) -> Any:
    """VPQ accumulated video by video (only one video's id maps in memory at a time).

    Equals :func:`~rapsam.evaluation.vpq.vpq_compute` on all videos (it pools TP/FP/FN/IoU per
    window length over videos in the same way).
    """
    from .panoptic_quality import PQStats, _category_map, pq_from_stats
    from .vpq import VPQResult, _prepare_frame, _video_window_stats

    cats = _category_map(categories)
    stats = {n: PQStats() for n in window_lengths}
    for vid, frames in videos:
        prepared = [
            _prepare_frame(fr, cats, source=source, record=f"video {vid!r} frame {t}")
            for t, fr in enumerate(frames)
        ]
        for n in window_lengths:
            _video_window_stats(
                prepared,
                n,
                stats[n],
                gt_area_aliasing=False,
                source=source,
                record=f"video {vid!r}",
            )
    per_window = {
        5 * (n - 1): pq_from_stats(stats[n], cats, empty_group="nan") for n in window_lengths
    }

    def mean(vals: list[float]) -> float:
        return float(sum(vals) / len(vals)) if vals else math.nan

    res = list(per_window.values())
    return VPQResult(
        per_window=per_window,
        window_lengths=tuple(window_lengths),
        vpq=mean([r.all.pq for r in res]),
        vpq_things=mean([r.things.pq for r in res]),
        vpq_stuff=mean([r.stuff.pq for r in res]),
    )


def _usable_windows(
    window_lengths: Sequence[int], videos: Sequence[_VipsegVideo]
) -> tuple[list[int], list[str]]:
    """Window lengths no longer than the longest video (a longer one has no window at all, and
    the reference would divide by zero), and a note naming the dropped ones."""
    wl = [int(n) for n in window_lengths]
    if not wl or any(n < 1 for n in wl):
        raise ValueError(
            f"window lengths must be positive frame counts, got {list(window_lengths)}"
        )
    longest = max((len(v.frames) for v in videos), default=0)
    keep = [n for n in wl if n <= longest] or wl[:1]
    dropped = [n for n in wl if n not in keep]
    notes = []
    if dropped:
        notes.append(
            f"VPQ window lengths {dropped} are longer than the longest video ({longest} frames) "
            f"and were left out; VPQ averages {keep}."
        )
    return keep, notes


def _vpq_metrics(r: Any) -> dict[str, float]:
    out = {"VPQ": 100 * r.vpq, "VPQ_th": 100 * r.vpq_things, "VPQ_st": 100 * r.vpq_stuff}
    for k, pr in r.per_window.items():
        out[f"VPQ@{k // 5 + 1}"] = 100 * pr.all.pq
    return out


def run_vps(
    model: Any,
    ann_file: str | os.PathLike,
    image_dir: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    mode: str = "official",
    window_lengths: Sequence[int] = (1, 2, 4, 6, 8),
    progress: bool = False,
    out_dir: str | os.PathLike | None = None,
) -> EvalRun:
    """VPQ of ``model``'s video panoptic maps (``VideoPredictor.track(tasks=("panoptic",))``).

    Args:
        ann_file: VIPSeg-layout JSON; ``image_dir`` / ``panoptic_dir``: folders with one
            sub-folder of frames / GT PNGs per video.
        window_lengths: VPQ window lengths (VIPSeg: 1, 2, 4, 6, 8).
        out_dir: Write ``vps.json`` + ``vps/<video>/<frame>.png`` (VIPSeg layout) here.
        Other arguments as :func:`run_vis`.
    """
    from ..predictor.video import VideoPredictor
    from .panoptic_quality import PanopticPredictionWriter
    from .vpq import PanopticFrame

    _check_limit(limit)
    videos, cats, src = _vipseg_gt(ann_file, limit)
    window_lengths, wnotes = _usable_windows(window_lengths, videos)
    thing_of = {c["id"]: c["isthing"] == 1 for c in cats}
    cmap = match_categories(model.class_names, cats)
    notes = _mapping_notes(model, cmap, cats) + wnotes
    vp = VideoPredictor(model, mode=mode, **_image_scale_kw(image_scale))
    out_json: list[dict[str, Any]] = []

    def predicted() -> Iterator[tuple[Any, list[PanopticFrame]]]:
        for v in _progress(videos, progress, "vps", unit="video"):
            rec = f"video {v.video_id!r}"
            names = [fa["file_name"] for fa in v.frames]
            frames = _frames(Path(image_dir) / str(v.video_id), names, source=src, record=rec)
            writer = (
                PanopticPredictionWriter(Path(out_dir) / "vps" / str(v.video_id))
                if out_dir is not None
                else None
            )
            out: list[PanopticFrame] = []
            for idx, fr in vp.track(frames, mode=mode, tasks=("instance", "panoptic")):
                fa = v.frames[idx]
                where = f"{rec} frame {idx}"
                gt_ids = read_panoptic_png(
                    Path(panoptic_dir) / str(v.video_id) / fa["file_name"], source=src, record=where
                )
                ids, segs = _panoptic_to_dataset_stable(fr.panoptic, cmap, thing_of)
                out.append(PanopticFrame(gt_ids, fa["segments_info"], ids, segs))
                if writer is not None:
                    writer.add(fa.get("image_id", idx), Path(fa["file_name"]).name, ids, segs)
            if writer is not None:
                out_json.append({"video_id": v.video_id, "annotations": writer.annotations})
            yield v.video_id, out

    r = _vpq_from_videos(predicted(), cats, window_lengths, "<model predictions>")
    outputs = []
    if out_dir is not None:
        path = _write_json(
            Path(out_dir) / "vps.json", {"annotations": out_json, "categories": cats}
        )
        outputs = [path, Path(out_dir) / "vps"]
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    return EvalRun(
        "vps", r, {**_vpq_metrics(r), "videos": len(videos)}, len(videos), names, outputs, notes
    )


def _panoptic_to_dataset_stable(
    res: Any, cmap: Mapping[int, Any], thing_of: Mapping[Any, bool]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Like :func:`_panoptic_to_dataset` but keeps the predictor's video-stable segment ids
    (things: ``num_classes + track id``; stuff: ``class + 1``, where several model classes of one
    dataset category take the id of the lowest one)."""
    src = _np(res.seg_ids).astype(np.int64)
    lut = np.zeros(int(src.max(initial=0)) + 1, np.int64)
    segs: dict[int, dict[str, Any]] = {}
    stuff_id: dict[Any, int] = {}  # category -> id of its lowest model class (the same every frame)
    for k in sorted(cmap):
        stuff_id.setdefault(cmap[k], k + 1)
    for s in res.segments:
        if s.label not in cmap or s.id >= lut.size:
            continue
        cat = cmap[s.label]
        target = int(s.id) if thing_of.get(cat, True) else stuff_id[cat]
        lut[s.id] = target
        segs.setdefault(target, {"id": target, "category_id": cat, "iscrowd": 0})
    ids = lut[src]  # (H, W)
    present = set(np.unique(ids).tolist())
    return ids, [s for k, s in segs.items() if k in present]


def score_vps(
    ann_file: str | os.PathLike,
    panoptic_dir: str | os.PathLike,
    pred_json: str | os.PathLike,
    pred_dir: str | os.PathLike,
    *,
    limit: int | None = None,
    window_lengths: Sequence[int] = (1, 2, 4, 6, 8),
) -> EvalRun:
    """VPQ of saved VIPSeg-layout predictions.

    ``pred_json`` holds ``{"annotations": [{"video_id", "annotations": [{"file_name",
    "segments_info"}, ...]}]}`` with one entry per GT frame in GT order; the PNGs are
    ``pred_dir/<video_id>/<file_name>``.

    Raises:
        EvaluationInputError: a video without prediction, a frame count that differs, malformed
            records or PNGs (the message names the file and the record).
    """
    from .panoptic_quality import _check_segments
    from .vpq import PanopticFrame

    _check_limit(limit)
    videos, cats, src = _vipseg_gt(ann_file, limit)
    window_lengths, notes = _usable_windows(window_lengths, videos)
    psrc = str(pred_json)
    pred = load_json(pred_json, what="video panoptic predictions")
    fix = (
        'write {"annotations": [{"video_id", "annotations": [{"file_name", "segments_info"}]}]} '
        "with one frame entry per GT frame."
    )
    require_keys(pred, ("annotations",), source=psrc, where="top level", fix=fix)
    by_vid: dict[Any, list[dict[str, Any]]] = {}
    for i, a in enumerate(pred["annotations"]):
        require_keys(
            a, ("video_id", "annotations"), source=psrc, where=f"annotations[{i}]", fix=fix
        )
        for t, fa in enumerate(a["annotations"]):
            where = f"annotations[{i}] (video_id={a['video_id']!r}) frame {t}"
            require_keys(fa, ("file_name", "segments_info"), source=psrc, where=where, fix=fix)
            _check_segments(fa["segments_info"], ("id", "category_id"), source=psrc, record=where)
        by_vid[a["video_id"]] = a["annotations"]

    def pairs() -> Iterator[tuple[Any, list[PanopticFrame]]]:
        for v in videos:
            p = by_vid.get(v.video_id)
            if p is None:
                raise MissingPredictionError(
                    f"no prediction for video {v.video_id!r}.",
                    source=psrc,
                    record="annotations",
                    fix=fix,
                )
            if len(p) != len(v.frames):
                raise EvaluationInputError(
                    f"video {v.video_id!r} has {len(p)} predicted frames but {len(v.frames)} GT "
                    "frames.",
                    source=psrc,
                    record=f"video {v.video_id!r}",
                    fix=fix,
                )
            frames = []
            for t, (ga, pa) in enumerate(zip(v.frames, p)):
                where = f"video {v.video_id!r} frame {t}"
                frames.append(
                    PanopticFrame(
                        read_panoptic_png(
                            Path(panoptic_dir) / str(v.video_id) / ga["file_name"],
                            source=src,
                            record=where,
                        ),
                        ga["segments_info"],
                        read_panoptic_png(
                            Path(pred_dir) / str(v.video_id) / pa["file_name"],
                            source=psrc,
                            record=where,
                        ),
                        pa["segments_info"],
                    )
                )
            yield v.video_id, frames

    r = _vpq_from_videos(pairs(), cats, window_lengths, psrc)
    names = {c["id"]: str(c.get("name", c["id"])) for c in cats}
    return EvalRun(
        "vps", r, {**_vpq_metrics(r), "videos": len(videos)}, len(videos), names, notes=notes
    )


# ------------------------------------------------------------------------------------------------
# The functions the trainer uses (dicts of headline numbers)
# ------------------------------------------------------------------------------------------------


def evaluate_panoptic(
    model: Any,
    ann_file: str,
    image_dir: str,
    panoptic_dir: str,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    progress: bool = False,
) -> dict:
    """PQ / SQ / RQ (x100; all, ``_th``, ``_st``) and ``images`` of ``model`` on a COCO panoptic
    split (see :func:`run_panoptic`)."""
    return run_panoptic(
        model,
        ann_file,
        image_dir,
        panoptic_dir,
        image_scale=image_scale,
        limit=limit,
        progress=progress,
    ).metrics


def evaluate_interactive(
    model: Any,
    ann_file: str,
    image_dir: str,
    panoptic_dir: str,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    boxes: bool = True,
    noc: bool = False,
    max_clicks: int = 20,
    progress: bool = False,
) -> dict:
    """COCO-SAM 1-click mIoU (``mIoU_1click``, x100), ``prompts``, box mIoU (``mIoU_box``) and
    (``noc=True``) ``NoC@80/85/90`` + ``mIoU@1/3/5`` (see :func:`run_interactive`)."""
    return run_interactive(
        model,
        ann_file,
        image_dir,
        panoptic_dir,
        image_scale=image_scale,
        limit=limit,
        boxes=boxes,
        noc=noc,
        max_clicks=max_clicks,
        progress=progress,
    ).metrics


def evaluate_vis(
    model: Any,
    ann_file: str,
    video_dir: str,
    *,
    image_scale: Any = "model",
    limit: int | None = None,
    progress: bool = False,
    mode: str = "official",
) -> dict:
    """YouTube-VIS AP / AP50 / AP75 / AR1 / AR10 (x100) and ``videos`` (see :func:`run_vis`)."""
    return run_vis(
        model,
        ann_file,
        video_dir,
        image_scale=image_scale,
        limit=limit,
        mode=mode,
        progress=progress,
    ).metrics


def evaluate_synthetic_val(model: Any, data: Any) -> dict:
    """The numbers tracked during training (on the ``data.val_*`` splits that are set)."""
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassMappingWarning)
        if data.val_panoptic_ann:
            args = (data.val_panoptic_ann, data.val_panoptic_images, data.val_panoptic_masks)
            out.update(evaluate_panoptic(model, *args))
            out.update(evaluate_interactive(model, *args, boxes=False))
        if data.val_video_ann:
            out.update(evaluate_vis(model, data.val_video_ann, data.val_video_dir))
    return out
