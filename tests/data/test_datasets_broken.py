"""Broken inputs: each case either raises one DatasetFormatError naming the file and the record, or
is skipped, recorded in ``dataset.skipped`` and reported by a single warning (the documented policy
in ``rapsam.data.datasets.base``). Tests work on the small ``val`` split and copy only what they
break."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rapsam.data.datasets import (
    ADE20KSemanticDataset,
    CocoInstancesDataset,
    CocoPanopticDataset,
    DatasetFormatError,
    VIPSegDataset,
    YouTubeVISDataset,
    read_ade_object_info,
)
from rapsam.data.formats import rle_encode

V = "val"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _dump(obj, path: Path) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _quiet(fn, *args, **kw):
    """Build a dataset while recording warnings; return (dataset, warnings)."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = fn(*args, **kw)
    return ds, [w for w in rec if "skipped" in str(w.message) or "dropped" in str(w.message)]


def _pan(synth, ann=None, images=None, pngs=None):
    return CocoPanopticDataset(
        ann or synth.coco_panoptic_json[V],
        images or synth.coco_image_dir[V],
        pngs or synth.coco_panoptic_dir[V],
    )


def _inst(synth, ann=None, images=None):
    return CocoInstancesDataset(
        ann or synth.coco_instances_json[V], images or synth.coco_image_dir[V]
    )


# ------------------------------------------------------------------ malformed / missing JSON


@pytest.mark.parametrize("reader", ["panoptic", "instances", "ytvis", "vipseg"])
def test_malformed_json_is_one_clear_error(synth, tmp_path, reader):
    bad = tmp_path / f"{reader}.json"
    bad.write_text('{"images": [ {"id": 1,, }')
    build = {
        "panoptic": lambda: _pan(synth, ann=bad),
        "instances": lambda: _inst(synth, ann=bad),
        "ytvis": lambda: YouTubeVISDataset(bad, synth.ytvis_video_dir[V]),
        "vipseg": lambda: VIPSegDataset(bad, synth.vipseg_image_dir, synth.vipseg_panoptic_dir),
    }[reader]
    with pytest.raises(
        DatasetFormatError, match=rf"{re.escape(str(bad))}: malformed JSON .*line 1"
    ):
        build()


def test_missing_annotation_file(synth, tmp_path):
    with pytest.raises(DatasetFormatError, match="annotation file not found"):
        _pan(synth, ann=tmp_path / "nope.json")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("annotations"), r"top level: missing required key 'annotations'"),
        (lambda d: d["images"][0].pop("height"), r"images\[0\]: missing required key 'height'"),
        (lambda d: d["images"][0].update(width="64"), r"images\[0\]: 'width' must be int"),
        (lambda d: d["categories"][0].pop("isthing"), r"categories\[0\]: missing .*'isthing'"),
        (lambda d: d["categories"].append(dict(d["categories"][0])), "duplicate category id"),
        (lambda d: d["images"].append(dict(d["images"][0])), r"images\[3\]: duplicate image id"),
        (lambda d: d["annotations"][1].update(image_id=4242), r"annotations\[1\].*not listed"),
        (
            lambda d: d["annotations"][0]["segments_info"][0].update(id=0),
            r"outside \[1, 16777215\]",
        ),
        (
            lambda d: d["annotations"][0]["segments_info"].append(
                dict(d["annotations"][0]["segments_info"][0])
            ),
            "duplicate segment id",
        ),
    ],
)
def test_panoptic_structural_errors(synth, tmp_path, mutate, message):
    data = _json(synth.coco_panoptic_json[V])
    mutate(data)
    path = _dump(data, tmp_path / "p.json")
    with pytest.raises(DatasetFormatError, match=message) as err:
        _pan(synth, ann=path)
    assert str(path) in str(err.value)


# -------------------------------------------------------------------- unknown category ids


def test_unknown_category_panoptic(synth, tmp_path):
    data = _json(synth.coco_panoptic_json[V])
    data["annotations"][1]["segments_info"][2]["category_id"] = 999
    path = _dump(data, tmp_path / "p.json")
    with pytest.raises(DatasetFormatError) as err:
        _pan(synth, ann=path)
    msg = str(err.value)
    assert str(path) in msg and "annotations[1]" in msg and "segments_info[2]" in msg
    assert "unknown category_id 999" in msg and "has ids [1, 2, 3, 5, 8, 100" in msg


def test_unknown_category_instances(synth, tmp_path):
    data = _json(synth.coco_instances_json[V])
    aid = data["annotations"][0]["id"]
    data["annotations"][0]["category_id"] = 77
    path = _dump(data, tmp_path / "i.json")
    with pytest.raises(
        DatasetFormatError, match=rf"annotations\[0\] \(id={aid}\): unknown category_id 77"
    ):
        _inst(synth, ann=path)


def test_unknown_category_ytvis(synth, tmp_path):
    data = _json(synth.ytvis_json[V])
    data["annotations"][-1]["category_id"] = 0
    path = _dump(data, tmp_path / "y.json")
    n = len(data["annotations"]) - 1
    with pytest.raises(DatasetFormatError, match=rf"annotations\[{n}\] .*unknown category_id 0"):
        YouTubeVISDataset(path, synth.ytvis_video_dir[V])


def test_unknown_category_vipseg(synth, tmp_path):
    data = _json(synth.vipseg_json[V])
    data["annotations"][0]["annotations"][3]["segments_info"][0]["category_id"] = 55
    path = _dump(data, tmp_path / "v.json")
    with pytest.raises(
        DatasetFormatError, match=r"annotations\[0\].*annotations\[3\].*unknown category_id 55"
    ):
        VIPSegDataset(path, synth.vipseg_image_dir, synth.vipseg_panoptic_dir)


# --------------------------------------------------------------------------- missing files


def test_missing_images_are_skipped_counted_and_warned_once(synth, tmp_path):
    images = _copy(synth.coco_image_dir[V], tmp_path / "img")
    gone = sorted(images.iterdir())[:2]
    for p in gone:
        p.unlink()
    ds, warns = _quiet(_pan, synth, images=images)
    assert len(ds) == 1
    assert [(r.reason, Path(r.file).name) for r in ds.skipped] == [
        ("missing image", p.name) for p in gone
    ]
    assert len(warns) == 1 and "skipped 2 record(s) (2 missing image)" in str(warns[0].message)
    ds, warns = _quiet(_inst, synth, images=images)
    assert len(ds) == 1 and len(ds.skipped) == 2 and len(warns) == 1


def test_missing_panoptic_png_is_skipped(synth, tmp_path):
    pngs = _copy(synth.coco_panoptic_dir[V], tmp_path / "pan")
    first = min(pngs.iterdir())
    first.unlink()
    ds, warns = _quiet(_pan, synth, pngs=pngs)
    assert len(ds) == 2 and ds.skipped[0].reason == "missing panoptic PNG"
    assert ds.skipped[0].file == str(first) and len(warns) == 1


def test_image_without_panoptic_record_is_skipped(synth, tmp_path):
    data = _json(synth.coco_panoptic_json[V])
    dropped = data["annotations"].pop(0)
    ds, warns = _quiet(_pan, synth, ann=_dump(data, tmp_path / "p.json"))
    assert len(ds) == 2 and len(warns) == 1
    assert ds.skipped[0].reason == "no panoptic annotation"
    assert ds.skipped[0].record == f"image id={dropped['image_id']!r}"


# -------------------------------------------------------------------------- empty segments


def test_panoptic_zero_area_segment_is_skipped(synth, tmp_path):
    data = _json(synth.coco_panoptic_json[V])
    seg = data["annotations"][0]["segments_info"][1]
    seg["area"] = 0
    ds, warns = _quiet(_pan, synth, ann=_dump(data, tmp_path / "p.json"))
    assert len(ds) == 3 and len(warns) == 1
    assert (
        ds.skipped[0].reason == "empty segment"
        and f"segment id={seg['id']}" in ds.skipped[0].record
    )
    assert seg["id"] not in ds[0].instance_ids.tolist()


def test_panoptic_segment_missing_from_png_is_dropped_at_load(synth, tmp_path):
    data = _json(synth.coco_panoptic_json[V])
    data["annotations"][0]["segments_info"][0]["id"] = 123  # listed, with area, but no pixels
    ds, warns = _quiet(_pan, synth, ann=_dump(data, tmp_path / "p.json"))
    assert ds.skipped == [] and warns == []
    with pytest.warns(UserWarning, match="dropped image id=.* segment id=123 .*empty segment"):
        s = ds[0]
    assert (
        123 not in s.instance_ids.tolist()
        and len(s) == len(data["annotations"][0]["segments_info"]) - 1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # later drops are only counted
        ds[0]
    assert [r.reason for r in ds.skipped] == ["empty segment", "empty segment"]


def test_instances_empty_segments(synth, tmp_path):
    data = _json(synth.coco_instances_json[V])
    anns = data["annotations"]
    anns[0]["area"] = 0
    anns[1]["segmentation"] = [[1.0, 2.0, 3.0, 4.0]]  # only a degenerate polygon
    anns[2]["segmentation"] = rle_encode(np.zeros((64, 64), bool))  # RLE with no foreground
    anns[3]["segmentation"] = [[10.2, 10.2, 10.3, 10.2, 10.2, 10.3]]  # rasterises to nothing
    ds, warns = _quiet(_inst, synth, ann=_dump(data, tmp_path / "i.json"))
    assert [r.reason for r in ds.skipped] == ["empty segment"] * 3 and len(warns) == 1
    img_of_3 = anns[3]["image_id"]
    idx = [im["id"] for im in data["images"]].index(img_of_3)  # no image is missing
    with pytest.warns(UserWarning, match=rf"annotation id={anns[3]['id']} .*empty segment"):
        s = ds[idx]
    assert anns[3]["id"] not in s.instance_ids.tolist()
    kept = [aid for i in range(len(ds)) for aid in ds[i].instance_ids.tolist()]
    assert {a["id"] for a in anns[:4]}.isdisjoint(kept)
    assert len(kept) == len(anns) - 4


# ----------------------------------------------------------------------- invalid RLE / polygon


@pytest.mark.parametrize(
    "segmentation, message",
    [
        ({"size": [64, 64], "counts": [10, 5]}, r"invalid RLE: RLE runs sum to 15 .* needs 4096"),
        ({"size": [64, 64], "counts": "0~~"}, r"invalid RLE: .*outside the COCO alphabet"),
        ({"size": [64, 64], "counts": 7}, r"invalid RLE: .*'counts' must be"),
        ({"size": [32, 32], "counts": [1024]}, r"RLE size 32x32 differs from the image size 64x64"),
        ([[1.0, 2.0, 3.0, 4.0, 5.0]], r"invalid polygon segmentation: polygon 0 has an odd number"),
        ([[1.0, 2.0, 3.0, None, 5.0, 6.0]], r"invalid polygon segmentation: .*not a number"),
        ("polygon", r"'segmentation' must be list or dict"),
    ],
)
def test_invalid_segmentation_is_an_error(synth, tmp_path, segmentation, message):
    data = _json(synth.coco_instances_json[V])
    aid = data["annotations"][2]["id"]
    data["annotations"][2]["segmentation"] = segmentation
    path = _dump(data, tmp_path / "i.json")
    with pytest.raises(DatasetFormatError, match=message) as err:
        _inst(synth, ann=path)
    assert f"{path}: annotations[2] (id={aid})" in str(err.value)


def test_instances_annotation_for_unknown_image(synth, tmp_path):
    data = _json(synth.coco_instances_json[V])
    data["annotations"][0]["image_id"] = 31337
    with pytest.raises(DatasetFormatError, match="image_id 31337 is not listed"):
        _inst(synth, ann=_dump(data, tmp_path / "i.json"))


def test_instances_duplicate_annotation_id(synth, tmp_path):
    data = _json(synth.coco_instances_json[V])
    data["annotations"][1]["id"] = data["annotations"][0]["id"]
    with pytest.raises(DatasetFormatError, match=r"annotations\[1\] .*duplicate annotation id"):
        _inst(synth, ann=_dump(data, tmp_path / "i.json"))


# -------------------------------------------------------------------------- mismatched sizes


def test_image_of_another_size_is_an_error_at_load(synth, tmp_path):
    images = _copy(synth.coco_image_dir[V], tmp_path / "img")
    victim = sorted(images.iterdir())[1]
    Image.new("RGB", (48, 64)).save(victim)
    ds = _pan(synth, images=images)
    ds[0]
    with pytest.raises(
        DatasetFormatError, match=rf"{re.escape(str(victim))}: image id=\d+: the image is 64x48"
    ):
        ds[1]
    with pytest.raises(DatasetFormatError, match="the image is 64x48"):
        _inst(synth, images=images)[1]


def test_panoptic_png_of_another_size_or_mode_is_an_error(synth, tmp_path):
    pngs = _copy(synth.coco_panoptic_dir[V], tmp_path / "pan")
    files = sorted(pngs.iterdir())
    Image.new("RGB", (64, 60)).save(files[0])
    Image.new("L", (64, 64)).save(files[1])
    ds = _pan(synth, pngs=pngs)
    with pytest.raises(DatasetFormatError, match="the panoptic PNG is 60x64"):
        ds[0]
    with pytest.raises(DatasetFormatError, match="must be RGB"):
        ds[1]


# ------------------------------------------------------------------------------ YouTube-VIS


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["annotations"][0]["segmentations"].pop(),
            r"5 segmentations for a video of 6 frames",
        ),
        (lambda d: d["videos"][0].update(length=7), r"'length' is 7 but 'file_names' lists 6"),
        (lambda d: d["annotations"][0].update(video_id=99), r"video_id 99 is not listed"),
        (
            lambda d: d["annotations"][0]["segmentations"].__setitem__(
                next(t for t, s in enumerate(d["annotations"][0]["segmentations"]) if s),
                {"size": [64, 64], "counts": [1]},
            ),
            r"frame \d: invalid RLE",
        ),
        (
            lambda d: d["annotations"][0]["segmentations"].__setitem__(0, 5),
            r"frame 0: a segmentation must",
        ),
    ],
)
def test_ytvis_errors(synth, tmp_path, mutate, message):
    data = _json(synth.ytvis_json[V])
    mutate(data)
    path = _dump(data, tmp_path / "y.json")
    with pytest.raises(DatasetFormatError, match=message) as err:
        YouTubeVISDataset(path, synth.ytvis_video_dir[V])
    assert str(path) in str(err.value)


def test_ytvis_empty_track_and_missing_frame_are_skipped(synth, tmp_path):
    data = _json(synth.ytvis_json[V])
    aid = data["annotations"][0]["id"]
    data["annotations"][0]["segmentations"] = [None] * 6
    path = _dump(data, tmp_path / "y.json")
    ds, warns = _quiet(YouTubeVISDataset, path, synth.ytvis_video_dir[V])
    assert len(ds) == 1 and len(warns) == 1
    assert ds.skipped[0].reason == "empty track" and f"annotation id={aid}" in ds.skipped[0].record
    assert aid not in ds[0].track_ids.tolist()

    frames = _copy(synth.ytvis_video_dir[V], tmp_path / "JPEGImages")
    name = data["videos"][0]["file_names"][3]
    (frames / name).unlink()
    ds, warns = _quiet(YouTubeVISDataset, synth.ytvis_json[V], frames)
    assert len(ds) == 0 and ds.skipped[0].reason == "missing frame"
    assert ds.skipped[0].file.endswith(name) and len(warns) == 1


def test_ytvis_frame_of_another_size_is_an_error(synth, tmp_path):
    frames = _copy(synth.ytvis_video_dir[V], tmp_path / "JPEGImages")
    name = _json(synth.ytvis_json[V])["videos"][0]["file_names"][2]
    Image.new("RGB", (10, 10)).save(frames / name)
    ds = YouTubeVISDataset(synth.ytvis_json[V], frames)
    ds.load(0, frames=[0, 1])  # fine without the bad frame
    with pytest.raises(DatasetFormatError, match=r"video id=\d+: the frame is 10x10"):
        ds[0]


# ----------------------------------------------------------------------------------- VIPSeg


def test_vipseg_segment_changing_category_is_an_error(synth, tmp_path):
    data = _json(synth.vipseg_json[V])
    frames = data["annotations"][0]["annotations"]
    sid = frames[0]["segments_info"][0]["id"]
    cat = frames[0]["segments_info"][0]["category_id"]
    other = next(c["id"] for c in data["categories"] if c["id"] != cat)
    for seg in frames[4]["segments_info"]:
        if seg["id"] == sid:
            seg["category_id"] = other
    path = _dump(data, tmp_path / "v.json")
    with pytest.raises(DatasetFormatError, match=rf"frame id='00000004': segment id {sid} is"):
        VIPSegDataset(path, synth.vipseg_image_dir, synth.vipseg_panoptic_dir)


def test_vipseg_missing_files_and_records_are_skipped(synth, tmp_path):
    data = _json(synth.vipseg_json[V])
    name = data["videos"][0]["video_id"]
    images = _copy(synth.vipseg_image_dir / name, tmp_path / "img" / name).parent
    pans = _copy(synth.vipseg_panoptic_dir / name, tmp_path / "pan" / name).parent
    assert len(VIPSegDataset(synth.vipseg_json[V], images, pans)) == 1

    (pans / name / "00000002.png").unlink()
    ds, warns = _quiet(VIPSegDataset, synth.vipseg_json[V], images, pans)
    assert len(ds) == 0 and ds.skipped[0].reason == "missing panoptic PNG" and len(warns) == 1

    (images / name / "00000001.png").unlink()
    ds, _ = _quiet(VIPSegDataset, synth.vipseg_json[V], images, pans)
    assert ds.skipped[0].reason == "missing frame"

    del data["annotations"][0]["annotations"][5]
    ds, _ = _quiet(
        VIPSegDataset,
        _dump(data, tmp_path / "v.json"),
        synth.vipseg_image_dir,
        synth.vipseg_panoptic_dir,
    )
    assert len(ds) == 0 and ds.skipped[0].reason == "frame without panoptic annotation"


def test_vipseg_frame_annotation_for_unknown_frame(synth, tmp_path):
    data = _json(synth.vipseg_json[V])
    data["annotations"][0]["annotations"][2]["image_id"] = "99999999"
    with pytest.raises(DatasetFormatError, match="image_id is not a frame of this video"):
        VIPSegDataset(
            _dump(data, tmp_path / "v.json"), synth.vipseg_image_dir, synth.vipseg_panoptic_dir
        )


# ----------------------------------------------------------------------------------- ADE20K


def _ade(synth, images=None, anns=None, classes=None, **kw):
    return ADE20KSemanticDataset(
        images or synth.ade_image_dir[V],
        anns or synth.ade_ann_dir[V],
        classes if classes is not None else synth.ade_object_info,
        **kw,
    )


def test_ade_missing_annotation_is_skipped(synth, tmp_path):
    anns = _copy(synth.ade_ann_dir[V], tmp_path / "ann")
    victim = min(anns.iterdir())
    victim.unlink()
    ds, warns = _quiet(_ade, synth, anns=anns)
    assert len(ds) == 2 and ds.skipped[0].reason == "missing annotation" and len(warns) == 1
    assert ds.skipped[0].file == str(victim)


def test_ade_bad_annotation_pngs_are_errors(synth, tmp_path):
    anns = _copy(synth.ade_ann_dir[V], tmp_path / "ann")
    files = sorted(anns.iterdir())
    Image.fromarray(np.full((64, 64), 11, np.uint8)).save(files[0])  # value 11 > 10 classes
    Image.new("RGB", (64, 64)).save(files[1])
    Image.new("L", (32, 64)).save(files[2])
    ds = _ade(synth, anns=anns)
    with pytest.raises(
        DatasetFormatError, match=rf"{re.escape(str(files[0]))}: .*pixel value 11 is beyond the 10"
    ):
        ds[0]
    with pytest.raises(DatasetFormatError, match="single-channel"):
        ds[1]
    with pytest.raises(DatasetFormatError, match="the annotation is 64x32"):
        ds[2]


def test_ade_folder_and_class_list_errors(synth, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no images"):
        _ade(synth, images=tmp_path / "empty")
    with pytest.raises(DatasetFormatError, match="image folder not found"):
        _ade(synth, images=tmp_path / "missing")
    bad = tmp_path / "objectInfo150.txt"
    bad.write_text("Index\tName\n1\twall\n")
    with pytest.raises(DatasetFormatError, match="'Idx' and 'Name'"):
        read_ade_object_info(bad)
    bad.write_text("Idx\tName\n1\twall\n3\tsky\n")
    with pytest.raises(DatasetFormatError, match="without gaps"):
        read_ade_object_info(bad)
    with pytest.raises(ValueError, match="thing_flags has 2 entries for 10 classes"):
        _ade(synth, thing_flags=[True, False])
    with pytest.raises(ValueError, match="classes is empty"):
        _ade(synth, classes=[])


def test_ade_object_info_csv_variant(tmp_path):
    p = tmp_path / "objectInfo150.csv"
    p.write_text("Idx,Ratio,Train,Val,Stuff,Name\n2,0.1,1,1,1,building;edifice\n1,0.2,1,1,1,wall\n")
    assert read_ade_object_info(p) == ["wall", "building;edifice"]
