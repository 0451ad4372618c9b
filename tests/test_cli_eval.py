"""`rapsam eval` end to end: saved predictions and the model on synthetic data in the standard layouts.

Predictions mode: the ground truth copied as predictions must score 100 on every task, and a known
perturbation must score lower. Model mode runs the random-weight fixture model (low numbers, but the
whole pipeline, the files it writes and their re-scoring are checked). Malformed files must end in
one error line naming the file and the record (exit 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rapsam.cli import main
from rapsam.commands.evaluate import resolve_data
from rapsam.data.synth import CATEGORIES, generate
from rapsam.evaluation import encode_mask, id2rgb, rgb2id

BY_NAME = {c.name: c for c in CATEGORIES}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """2 train + 2 val images (64 px), 1 train + 1 val video (5 frames)."""
    root = tmp_path_factory.mktemp("synth_eval")
    return generate(root, images=4, videos=2, size=64, seed=7, frames=5, val_fraction=0.5)


def _eval(*args: str) -> int:
    return main(["eval", *args])


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())["metrics"]


def _val_images(synth):
    return [im for im in synth.truth.images if im.split == "val"]


def _val_videos(synth):
    return [v for v in synth.truth.videos if v.split == "val"]


# ------------------------------------------------------------------------------- predictions
def _panoptic_predictions(synth, out: Path, drop_first_thing: bool = False) -> Path:
    """GT panoptic JSON + PNGs copied as predictions (optionally one thing segment removed)."""
    gt = json.loads(synth.coco_panoptic_json["val"].read_text())
    shutil.copytree(synth.coco_panoptic_dir["val"], out / "panoptic")
    anns = gt["annotations"]
    if drop_first_thing:
        ann = anns[0]
        things = {c.coco_id for c in CATEGORIES if c.is_thing}
        seg = next(s for s in ann["segments_info"] if s["category_id"] in things)
        png = out / "panoptic" / ann["file_name"]
        ids = rgb2id(np.asarray(Image.open(png)))
        ids[ids == seg["id"]] = 0
        Image.fromarray(id2rgb(ids)).save(png)
        ann["segments_info"] = [s for s in ann["segments_info"] if s["id"] != seg["id"]]
    (out / "panoptic.json").write_text(json.dumps({"annotations": anns}))
    return out


def test_panoptic_predictions_perfect_and_perturbed(synth, tmp_path, capsys):
    perfect = _panoptic_predictions(synth, tmp_path / "perfect")
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--predictions", str(perfect),
                 "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    assert m["PQ"] == pytest.approx(100) and m["SQ"] == pytest.approx(100)
    assert m["PQ_th"] == pytest.approx(100) and m["PQ_st"] == pytest.approx(100)
    text = capsys.readouterr().out
    assert "circle (1)" in text and "Things" in text and "PQ 100.0" in text  # per-class table
    # the JSON file itself: its PNG folder is found next to it
    assert _eval("--task", "panoptic", "--data", str(synth.coco_panoptic_json["val"]),
                 "--predictions", str(perfect / "panoptic.json"), "--out", str(tmp_path / "o3"),
                 "--no-per-class") == 0
    assert _metrics(tmp_path / "o3")["PQ"] == pytest.approx(100)
    assert "circle (1)" not in capsys.readouterr().out
    worse = _panoptic_predictions(synth, tmp_path / "worse", drop_first_thing=True)
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--predictions", str(worse),
                 "--out", str(tmp_path / "o2")) == 0
    w = _metrics(tmp_path / "o2")
    assert w["PQ_th"] < 100 and w["RQ_th"] < 100 and w["PQ_st"] == pytest.approx(100)
    # the same numbers as the metric layer on the same files
    from rapsam.evaluation import pq_compute

    ref = pq_compute(synth.coco_panoptic_json["val"], synth.coco_panoptic_dir["val"],
                     worse / "panoptic.json", worse / "panoptic")
    assert w["PQ"] == pytest.approx(100 * ref.all.pq, abs=1e-9)


def _instance_results(synth, keep_every: int = 1) -> list[dict]:
    recs = []
    for im in _val_images(synth):
        things = [s for s in im.segments if s.is_thing]
        for k, s in enumerate(things):
            if k % keep_every:
                continue
            recs.append({"image_id": im.image_id, "category_id": BY_NAME[s.category].coco_id,
                         "segmentation": encode_mask(s.mask), "score": 1.0 - 0.01 * k})
    return recs


def test_instance_predictions_perfect_and_perturbed(synth, tmp_path):
    (tmp_path / "perfect.json").write_text(json.dumps(_instance_results(synth)))
    assert _eval("--task", "instance", "--data", str(synth.root), "--predictions",
                 str(tmp_path / "perfect.json"), "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    assert m["AP"] == pytest.approx(100) and m["AP50"] == pytest.approx(100)
    assert m["AP75"] == pytest.approx(100)
    assert {"APs", "APm", "APl"} <= set(m)
    (tmp_path / "half.json").write_text(json.dumps(_instance_results(synth, keep_every=2)))
    assert _eval("--task", "instance", "--data", str(synth.root), "--predictions",
                 str(tmp_path / "half.json"), "--out", str(tmp_path / "o2")) == 0
    assert _metrics(tmp_path / "o2")["AP"] < m["AP"]


def test_semantic_predictions_ade_and_coco_layouts(synth, tmp_path):
    # ADE20K layout (found first under the root): value v = class v - 1, 0 = ignored
    perfect = tmp_path / "ade"
    perfect.mkdir()
    for p in sorted(synth.ade_ann_dir["val"].glob("*.png")):
        a = np.asarray(Image.open(p)).astype(np.int64)
        Image.fromarray(np.where(a == 0, 255, a - 1).astype(np.uint8)).save(perfect / p.name)
    assert _eval("--task", "semantic", "--data", str(synth.root), "--predictions", str(perfect),
                 "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    assert m["mIoU"] == pytest.approx(100) and m["aAcc"] == pytest.approx(100)
    rec = json.loads((tmp_path / "o1" / "metrics.json").read_text())
    assert rec["data"]["kind"] == "ade20k"
    # a block predicted as "no class" (255) costs accuracy (it is not ignored)
    worse = tmp_path / "ade_worse"
    shutil.copytree(perfect, worse)
    first = min(worse.glob("*.png"))
    a = np.asarray(Image.open(first)).copy()
    a[:32] = 255
    Image.fromarray(a).save(first)
    assert _eval("--task", "semantic", "--data", str(synth.root), "--predictions", str(worse),
                 "--out", str(tmp_path / "o2")) == 0
    w = _metrics(tmp_path / "o2")
    assert w["aAcc"] < 100 and w["mIoU"] < 100
    # COCO panoptic_semseg layout through the annotation file (contiguous labels, 255 = void)
    assert _eval("--task", "semantic", "--data", str(synth.coco_panoptic_json["val"]),
                 "--predictions", str(synth.coco_semseg_dir["val"]), "--out",
                 str(tmp_path / "o3")) == 0
    assert _metrics(tmp_path / "o3")["mIoU"] == pytest.approx(100)


def _interactive_records(synth, empty_first: bool = False) -> list[dict]:
    recs = []
    for im in _val_images(synth):
        for s in im.segments:
            for kind in ("point", "box"):
                m = s.mask.copy()
                if empty_first and not recs:
                    m[:] = False
                recs.append({"image_id": im.image_id, "segment_id": s.segment_id, "prompt": kind,
                             "segmentation": encode_mask(m)})
    return recs


def test_interactive_predictions_perfect_and_perturbed(synth, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(_interactive_records(synth)))
    assert _eval("--task", "interactive", "--data", str(synth.root), "--predictions",
                 str(tmp_path / "p.json"), "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    n = sum(len(im.segments) for im in _val_images(synth))
    assert m["mIoU_1click"] == pytest.approx(100) and m["mIoU_box"] == pytest.approx(100)
    assert m["prompts"] == n
    (tmp_path / "w.json").write_text(json.dumps(_interactive_records(synth, empty_first=True)))
    assert _eval("--task", "interactive", "--data", str(synth.root), "--predictions",
                 str(tmp_path / "w.json"), "--out", str(tmp_path / "o2")) == 0
    w = _metrics(tmp_path / "o2")
    assert w["mIoU_1click"] == pytest.approx(100 * (n - 1) / n)  # pooled over prompts
    assert w["mIoU_box"] == pytest.approx(100)


def _vis_results(synth, drop_first: bool = False) -> list[dict]:
    out = []
    for v in _val_videos(synth):
        for tr in v.tracks:
            if not tr.is_thing or not tr.masks.any():
                continue
            if drop_first and not out:
                drop_first = False
                continue
            segs = [encode_mask(m) if m.any() else None for m in tr.masks]
            out.append({"video_id": v.video_id, "category_id": BY_NAME[tr.category].ytvis_id,
                        "score": 0.9, "segmentations": segs})
    return out


def test_vis_predictions_perfect_and_perturbed(synth, tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.json").write_text(json.dumps(_vis_results(synth)))
    assert _eval("--task", "vis", "--data", str(synth.root), "--predictions", str(d),
                 "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    assert len(_val_videos(synth)) == 1
    for k in ("AP", "AP50", "AP75", "AR10"):
        assert m[k] == pytest.approx(100)
    # AR1: one detection per video and category finds 1 of that category's n tracks
    per_cat: dict[str, int] = {}
    for v in _val_videos(synth):
        for tr in v.tracks:
            if tr.is_thing and tr.masks.any():
                per_cat[tr.category] = per_cat.get(tr.category, 0) + 1
    assert m["AR1"] == pytest.approx(100 * np.mean([1 / n for n in per_cat.values()]))
    (tmp_path / "w.json").write_text(json.dumps(_vis_results(synth, drop_first=True)))
    assert _eval("--task", "vis", "--data", str(synth.ytvis_json["val"]), "--predictions",
                 str(tmp_path / "w.json"), "--out", str(tmp_path / "o2")) == 0
    assert _metrics(tmp_path / "o2")["AP"] < m["AP"]


def _vps_predictions(synth, out: Path, drop: bool = False) -> Path:
    gt = json.loads(synth.vipseg_json["val"].read_text())
    (out / "vps").mkdir(parents=True)
    for v in gt["videos"]:
        shutil.copytree(synth.vipseg_panoptic_dir / v["video_id"], out / "vps" / v["video_id"])
    if drop:  # remove one thing from the middle frame of the first video
        va = gt["annotations"][0]
        fa = va["annotations"][2]
        things = {c.vipseg_id for c in CATEGORIES if c.is_thing}
        seg = next(s for s in fa["segments_info"] if s["category_id"] in things)
        png = out / "vps" / va["video_id"] / fa["file_name"]
        ids = rgb2id(np.asarray(Image.open(png)))
        ids[ids == seg["id"]] = 0
        Image.fromarray(id2rgb(ids)).save(png)
        fa["segments_info"] = [s for s in fa["segments_info"] if s["id"] != seg["id"]]
    (out / "vps.json").write_text(json.dumps({"annotations": gt["annotations"]}))
    return out


def test_vps_predictions_perfect_and_perturbed(synth, tmp_path, capsys):
    perfect = _vps_predictions(synth, tmp_path / "perfect")
    assert _eval("--task", "vps", "--data", str(synth.root), "--predictions", str(perfect),
                 "--out", str(tmp_path / "o1")) == 0
    m = _metrics(tmp_path / "o1")
    assert m["VPQ"] == pytest.approx(100) and m["VPQ@1"] == pytest.approx(100)
    assert "VPQ@8" not in m  # videos have 5 frames: windows 6 and 8 are left out, with a note
    assert "left out" in capsys.readouterr().err
    worse = _vps_predictions(synth, tmp_path / "worse", drop=True)
    assert _eval("--task", "vps", "--data", str(synth.root), "--predictions", str(worse),
                 "--windows", "1,2", "--out", str(tmp_path / "o2")) == 0
    w = _metrics(tmp_path / "o2")
    assert set(w) >= {"VPQ", "VPQ@1", "VPQ@2"} and "VPQ@4" not in w
    assert w["VPQ_th"] < 100 and w["VPQ@2"] < 100


# ------------------------------------------------------------------------------- model mode
def _model_args(files, out, *extra):
    w, c = files
    return ["--weights", str(w), "--model", "rapsam_r18", "--classifier", str(c), "--out", str(out),
            "--image-scale", "64,64", "--limit", "1", *extra]


def test_model_panoptic_writes_rescorable_predictions(official_r18_files, synth, tmp_path, capsys):
    out = tmp_path / "pan"
    assert _eval("--task", "panoptic", "--data", str(synth.root),
                 *_model_args(official_r18_files, out)) == 0
    m = _metrics(out)
    assert {"PQ", "SQ", "RQ", "PQ_th", "PQ_st"} <= set(m) and m["images"] == 1
    assert all(0 <= m[k] <= 100 for k in ("PQ", "SQ", "RQ"))
    pred = json.loads((out / "panoptic.json").read_text())
    assert len(pred["annotations"]) == 1
    ann = pred["annotations"][0]
    ids = rgb2id(np.asarray(Image.open(out / "panoptic" / ann["file_name"])))
    assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids)) - {0})
    gt_cats = {c.coco_id for c in CATEGORIES}
    assert all(s["category_id"] in gt_cats for s in ann["segments_info"])
    # the COCO-named fixture vocabulary only shares the stuff names with the synthetic classes
    assert "no model class" in capsys.readouterr().err
    again = tmp_path / "again"
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--predictions", str(out),
                 "--limit", "1", "--out", str(again)) == 0
    assert _metrics(again) == pytest.approx(m, nan_ok=True)


def test_model_instance_with_run_time_classes(official_r18_files, synth, synth_classifier,
                                              tmp_path):
    out = tmp_path / "inst"
    assert _eval("--task", "instance", "--data", str(synth.root), "--classes",
                 str(synth_classifier), *_model_args(official_r18_files, out)) == 0
    m = _metrics(out)
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(m)
    recs = json.loads((out / "instances.json").read_text())
    things = {c.coco_id for c in CATEGORIES if c.is_thing}
    assert recs and {r["category_id"] for r in recs} <= things  # mapped to the dataset's ids
    assert {r["image_id"] for r in recs} == {_val_images(synth)[0].image_id}
    again = tmp_path / "again"
    assert _eval("--task", "instance", "--data", str(synth.root), "--predictions",
                 str(out / "instances.json"), "--limit", "1", "--out", str(again)) == 0
    assert _metrics(again) == pytest.approx(m)


def test_model_semantic(official_r18_files, synth, tmp_path):
    out = tmp_path / "sem"
    assert _eval("--task", "semantic", "--data", str(synth.root),
                 *_model_args(official_r18_files, out)) == 0
    m = _metrics(out)
    assert {"mIoU", "aAcc", "mAcc"} <= set(m)
    pngs = sorted((out / "semantic").glob("*.png"))
    assert len(pngs) == 1
    p = np.asarray(Image.open(pngs[0]))
    assert p.shape == (64, 64) and set(np.unique(p)) <= set(range(10)) | {255}
    again = tmp_path / "again"
    assert _eval("--task", "semantic", "--data", str(synth.root), "--predictions", str(out),
                 "--limit", "1", "--out", str(again)) == 0
    assert _metrics(again) == pytest.approx(m, nan_ok=True)


def test_model_interactive(official_r18_files, synth, tmp_path, capsys):
    out = tmp_path / "int"
    assert _eval("--task", "interactive", "--data", str(synth.root), "--max-clicks", "3",
                 *_model_args(official_r18_files, out)) == 0
    m = _metrics(out)
    n = len(_val_images(synth)[0].segments)
    assert m["prompts"] == n
    assert {"mIoU_1click", "mIoU_box", "NoC@85", "NoC@90", "mIoU@1", "mIoU@3"} <= set(m)
    assert 1 <= m["NoC@85"] <= 3 and "mIoU@5" not in m  # only 3 clicks were made
    recs = json.loads((out / "interactive.json").read_text())
    assert sorted(r["prompt"] for r in recs) == ["box"] * n + ["point"] * n
    assert "multi-click (RITM NoC)" in capsys.readouterr().out
    again = tmp_path / "again"
    assert _eval("--task", "interactive", "--data", str(synth.root), "--predictions", str(out),
                 "--limit", "1", "--out", str(again)) == 0
    a = _metrics(again)
    assert a["mIoU_1click"] == pytest.approx(m["mIoU_1click"])
    assert a["mIoU_box"] == pytest.approx(m["mIoU_box"])


@pytest.fixture(scope="module")
def synth_classifier(tmp_path_factory):
    """A classifier for the synthetic class names (hashing text encoder, D of rapsam_r18)."""
    from rapsam.models import get_config
    from rapsam.vocab import Vocabulary
    from rapsam.vocab.classifier import build_classifier_file
    from rapsam.vocab.encoders import HashingEncoder

    dim = get_config("rapsam_r18").decoder.embed_dim
    vocab = Vocabulary.from_names([c.name for c in CATEGORIES], [c.is_thing for c in CATEGORIES])
    path = tmp_path_factory.mktemp("vocab") / "synth.safetensors"
    build_classifier_file(vocab, HashingEncoder(dim)).save(path)
    return path


# ------------------------------------------------------------------------------- errors
def test_malformed_panoptic_prediction_names_file_and_record(synth, tmp_path, capsys):
    d = _panoptic_predictions(synth, tmp_path / "p")
    data = json.loads((d / "panoptic.json").read_text())
    del data["annotations"][1]["segments_info"]
    (d / "panoptic.json").write_text(json.dumps(data))
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--predictions", str(d),
                 "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert str(d / "panoptic.json") in err and "annotations[1]" in err and "segments_info" in err


def test_png_segment_mismatch_names_record(synth, tmp_path, capsys):
    d = _panoptic_predictions(synth, tmp_path / "p")
    data = json.loads((d / "panoptic.json").read_text())
    data["annotations"][0]["segments_info"].pop()
    (d / "panoptic.json").write_text(json.dumps(data))
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--predictions", str(d),
                 "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    img_id = data["annotations"][0]["image_id"]
    assert "present in the PNG but not in segments_info" in err and f"image_id={img_id}" in err


def test_corrupt_rle_in_instance_results(synth, tmp_path, capsys):
    recs = _instance_results(synth)
    recs[2]["segmentation"]["counts"] = recs[2]["segmentation"]["counts"][:-3] + "~~~"
    (tmp_path / "r.json").write_text(json.dumps(recs))
    assert _eval("--task", "instance", "--data", str(synth.root), "--predictions",
                 str(tmp_path / "r.json"), "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "r.json") in err and "results[2]" in err and "RLE" in err


def test_truncated_annotation_file(synth, tmp_path, capsys):
    bad = tmp_path / "panoptic_val.json"
    bad.write_text(synth.coco_panoptic_json["val"].read_text()[:200])
    assert _eval("--task", "panoptic", "--data", str(bad), "--masks",
                 str(synth.coco_panoptic_dir["val"]), "--predictions",
                 str(_panoptic_predictions(synth, tmp_path / "p")), "--out",
                 str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid JSON" in err


@pytest.mark.parametrize("case", ["frames", "prompt", "semantic_rgb", "vps_missing"])
def test_other_malformed_predictions(synth, tmp_path, capsys, case):
    if case == "frames":
        recs = _vis_results(synth)
        recs[0]["segmentations"] = recs[0]["segmentations"][:-1]
        (tmp_path / "r.json").write_text(json.dumps(recs))
        args, want = ["--task", "vis", "--predictions", str(tmp_path / "r.json")], "results[0]"
    elif case == "prompt":
        recs = _interactive_records(synth)
        recs[3]["prompt"] = "scribble"
        (tmp_path / "r.json").write_text(json.dumps(recs))
        args, want = ["--task", "interactive", "--predictions", str(tmp_path / "r.json")], "[3]"
    elif case == "semantic_rgb":
        d = tmp_path / "sem"
        shutil.copytree(synth.coco_semseg_dir["val"], d)
        first = min(d.glob("*.png"))
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(first)
        args = ["--task", "semantic", "--data", str(synth.coco_panoptic_json["val"]),
                "--predictions", str(d)]
        want = first.stem
    else:
        d = _vps_predictions(synth, tmp_path / "v")
        (d / "vps.json").write_text(json.dumps({"annotations": []}))
        args, want = ["--task", "vps", "--predictions", str(d)], "no prediction for video"
    if "--data" not in args:
        args += ["--data", str(synth.root)]
    assert _eval(*args, "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and want in err


def test_unknown_task_is_a_usage_error(synth, capsys):
    with pytest.raises(SystemExit) as e:
        _eval("--task", "depth", "--data", str(synth.root))
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_nothing_found_lists_the_places_looked(tmp_path, capsys):
    assert _eval("--task", "vis", "--data", str(tmp_path), "--predictions", "x.json",
                 "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert "no vis annotations" in err and str(tmp_path / "ytvis" / "valid.json") in err
    assert str(tmp_path / "valid" / "instances.json") in err


def test_bad_limit(synth, tmp_path, capsys):
    assert _eval("--task", "panoptic", "--data", str(synth.root), "--limit", "0",
                 "--predictions", str(tmp_path), "--out", str(tmp_path / "o")) == 1
    assert "--limit must be >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------- data layouts
def _touch(*paths: Path) -> None:
    for p in paths:
        if p.suffix:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("{}")
        else:
            p.mkdir(parents=True, exist_ok=True)


def test_resolve_coco_layout(tmp_path):
    r = tmp_path
    _touch(r / "annotations/panoptic_val2017.json", r / "val2017", r / "annotations/panoptic_val2017",
           r / "annotations/instances_val2017.json", r / "annotations/panoptic_semseg_val2017",
           r / "annotations/panoptic_train2017.json", r / "train2017")
    s = resolve_data("panoptic", str(r))
    assert (s.kind, s.ann, s.images, s.masks) == (
        "coco_panoptic", r / "annotations/panoptic_val2017.json", r / "val2017",
        r / "annotations/panoptic_val2017")
    assert resolve_data("instance", str(r)).ann == r / "annotations/instances_val2017.json"
    sem = resolve_data("semantic", str(r))
    assert sem.kind == "coco_semseg" and sem.masks == r / "annotations/panoptic_semseg_val2017"
    tr = resolve_data("interactive", str(r), split="train")
    assert tr.ann == r / "annotations/panoptic_train2017.json" and tr.images == r / "train2017"
    # an annotation file given directly: same sibling folders; explicit folders win
    f = resolve_data("panoptic", str(r / "annotations/panoptic_val2017.json"), images="/x")
    assert f.images == Path("/x") and f.masks == r / "annotations/panoptic_val2017"


def test_resolve_video_and_ade_layouts(tmp_path):
    y19, y21, vip, ade = (tmp_path / n for n in ("y19", "y21", "vip", "ade"))
    _touch(y19 / "valid.json", y19 / "valid/JPEGImages", y21 / "valid/instances.json",
           y21 / "valid/JPEGImages", vip / "panoptic_gt_VIPSeg_val.json", vip / "images",
           vip / "panomasksRGB", ade / "objectInfo150.txt", ade / "images/validation",
           ade / "annotations/validation")
    assert resolve_data("vis", str(y19)).images == y19 / "valid/JPEGImages"
    s21 = resolve_data("vis", str(y21))
    assert s21.ann == y21 / "valid/instances.json" and s21.images == y21 / "valid/JPEGImages"
    v = resolve_data("vps", str(vip))
    assert (v.images, v.masks) == (vip / "images", vip / "panomasksRGB")
    a = resolve_data("semantic", str(ade))
    assert (a.kind, a.images, a.masks) == ("ade20k", ade / "images/validation",
                                           ade / "annotations/validation")
    with pytest.raises(ValueError, match="needs a JSON annotation file"):
        resolve_data("panoptic", str(ade / "objectInfo150.txt"))


def test_model_vis_with_video_post_processing_flags(official_r18_files, synth, tmp_path, capsys, monkeypatch):
    from rapsam.predictor.video import VideoPredictor

    made = []
    real_init = VideoPredictor.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append((self.largest_component, self.track_nms_iou))

    monkeypatch.setattr(VideoPredictor, "__init__", spy)
    data = ["--task", "vis", "--data", str(synth.root)]
    assert _eval(*data, *_model_args(official_r18_files, tmp_path / "a")) == 0
    assert _eval(*data, "--largest-component", "--track-nms-iou", "0.3", *_model_args(official_r18_files, tmp_path / "b")) == 0
    assert _eval(*data, "--no-largest-component", "--track-nms-iou", "off", *_model_args(official_r18_files, tmp_path / "c")) == 0
    assert made == [(False, None), (True, 0.3), (False, None)]  # official weights: off unless asked
    assert _metrics(tmp_path / "b")["videos"] == 1
    assert _eval(*data, "--track-nms-iou", "5", *_model_args(official_r18_files, tmp_path / "bad")) == 1
    assert "--track-nms-iou must be a number in [0, 1] or 'off'" in capsys.readouterr().err
