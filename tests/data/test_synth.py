"""The synthetic generator: determinism, scene content, and the written formats checked with the
reference tools (pycocotools ``COCO``, panopticapi) rather than with our own readers."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pytest
from panopticapi.evaluation import pq_compute_single_core
from panopticapi.utils import rgb2id
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from rapsam.data.datasets import read_ade_object_info
from rapsam.data.synth import ADE_ORDER, CATEGORIES, META_FILE, generate, main, register

BY_NAME = {c.name: c for c in CATEGORIES}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _small(out: Path, seed: int, **kw):
    args = {"images": 4, "videos": 2, "size": 48, "seed": seed, "frames": 3, "val_fraction": 0.25}
    args.update(kw)
    return generate(out, **args)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(tmp_path):
    _small(tmp_path / "a", seed=3)
    _small(tmp_path / "b", seed=3)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 40
    assert [k for k in a if a[k] != b[k]] == []


def test_different_seed_gives_different_data(tmp_path):
    _small(tmp_path / "a", seed=3)
    _small(tmp_path / "b", seed=4)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    images = [k for k in a if k.startswith("coco/images/")]
    assert images and all(a[k] != b.get(k) for k in images)
    assert a["coco/annotations/panoptic_train.json"] != b["coco/annotations/panoptic_train.json"]
    assert a["ytvis/train.json"] != b["ytvis/train.json"]


def test_adding_items_keeps_earlier_ones(tmp_path):
    p4 = _small(tmp_path / "a", seed=5, images=3, val_fraction=0.0)
    p6 = _small(tmp_path / "b", seed=5, images=5, val_fraction=0.0)
    for x, y in zip(p4.truth.images, p6.truth.images):
        assert np.array_equal(x.image, y.image)


# --------------------------------------------------------------------------- scene content


def test_image_truth_is_a_valid_panoptic_partition(synth):
    assert {im.split for im in synth.truth.images} == {"train", "val"}
    assert sum(im.split == "val" for im in synth.truth.images) == 3  # round(12 * 0.25)
    n_things = n_stuff = 0
    for im in synth.truth.images:
        assert im.image.shape == (64, 64, 3) and im.image.dtype == np.uint8
        ids = [s.segment_id for s in im.segments]
        assert len(set(ids)) == len(ids) and all(0 < i < 2**24 for i in ids)
        cover = np.zeros((64, 64), int)
        for s in im.segments:
            assert s.mask.any()
            cover += s.mask
            assert s.is_thing == BY_NAME[s.category].is_thing
        assert cover.max() == 1  # segments never overlap
        n_things += sum(s.is_thing for s in im.segments)
        n_stuff += sum(not s.is_thing for s in im.segments)
    assert n_things >= 12 and n_stuff >= 12
    # panoptic ids use the green and blue channels too
    assert any(s.segment_id >= 65536 for im in synth.truth.images for s in im.segments)


def test_some_images_have_void_pixels(synth):
    voids = [(~np.any([s.mask for s in im.segments], axis=0)).sum() for im in synth.truth.images]
    assert any(v > 0 for v in voids)


def test_videos_have_motion_entering_leaving_and_occlusion(tmp_path):
    p = _small(tmp_path / "v", seed=11, images=0, videos=6, size=64, frames=8)
    things = [tr for v in p.truth.videos for tr in v.tracks if tr.is_thing]
    present = [tr.masks.any(axis=(1, 2)) for tr in things]
    assert any(pr.any() and not pr.all() for pr in present)  # enters or leaves
    moving = [tr for tr in things if tr.masks.all(axis=0).sum() < tr.masks.any(axis=0).sum()]
    assert len(moving) >= len(things) // 2
    for v in p.truth.videos:
        assert len(v.frames) == 8
        stack = np.stack([tr.masks for tr in v.tracks])  # (N, T, H, W)
        assert stack.sum(axis=0).max() <= 1  # one owner per pixel per frame
        sids = [tr.segment_id for tr in v.tracks]
        assert len(set(sids)) == len(sids)

    # occlusion: in some frame two things share a boundary (their visible regions touch)
    def grow(m):
        g = m.copy()
        g[1:] |= m[:-1]
        g[:-1] |= m[1:]
        g[:, 1:] |= m[:, :-1]
        g[:, :-1] |= m[:, 1:]
        return g

    touching = 0
    for v in p.truth.videos:
        tt = [tr for tr in v.tracks if tr.is_thing]
        for i, a in enumerate(tt):
            for b in tt[i + 1 :]:
                touching += sum((grow(a.masks[t]) & b.masks[t]).any() for t in range(8))
    assert touching > 0


# ----------------------------------------------------------------------- COCO via pycocotools


def test_instances_json_loads_in_pycocotools_and_decodes_to_truth(synth):
    kinds = set()
    for split in ("train", "val"):
        coco = COCO(str(synth.coco_instances_json[split]))
        truth = {
            s.ann_id: s
            for im in synth.truth.images
            if im.split == split
            for s in im.segments
            if s.is_thing
        }
        assert sorted(coco.getAnnIds()) == sorted(truth)
        assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {
            c.name for c in CATEGORIES if c.is_thing
        }
        for ann in coco.loadAnns(coco.getAnnIds()):
            seg = truth[ann["id"]]
            assert np.array_equal(coco.annToMask(ann).astype(bool), seg.mask)
            assert ann["iscrowd"] == 0 and ann["area"] == seg.mask.sum()
            assert coco.loadCats(ann["category_id"])[0]["name"] == seg.category
            s = ann["segmentation"]
            kinds.add("polygon" if isinstance(s, list) else type(s["counts"]).__name__)
    assert kinds == {"polygon", "str", "list"}  # polygons, compressed and uncompressed RLE


def test_panoptic_json_and_pngs_follow_the_coco_panoptic_format(synth):
    for split in ("train", "val"):
        data = json.loads(synth.coco_panoptic_json[split].read_text())
        cats = {c["id"]: c for c in data["categories"]}
        assert {c["name"]: bool(c["isthing"]) for c in cats.values()} == {
            c.name: c.is_thing for c in CATEGORIES
        }
        truth = {im.image_id: im for im in synth.truth.images if im.split == split}
        assert {i["id"] for i in data["images"]} == set(truth)
        for ann in data["annotations"]:
            im = truth[ann["image_id"]]
            png = np.asarray(Image.open(synth.coco_panoptic_dir[split] / ann["file_name"]))
            ids = rgb2id(png.astype(np.uint32))
            assert {s["id"] for s in ann["segments_info"]} == {s.segment_id for s in im.segments}
            for info in ann["segments_info"]:
                seg = next(s for s in im.segments if s.segment_id == info["id"])
                assert np.array_equal(ids == info["id"], seg.mask)
                assert info["area"] == seg.mask.sum()
                box = mask_utils.toBbox(
                    mask_utils.encode(np.asfortranarray(seg.mask.astype(np.uint8)))
                )
                assert info["bbox"] == [int(v) for v in box]
                assert cats[info["category_id"]]["name"] == seg.category
        # panopticapi's own PQ code validates JSON <-> PNG consistency; GT vs GT scores 1.0
        stat = pq_compute_single_core(
            0,
            [(a, a) for a in data["annotations"]],
            str(synth.coco_panoptic_dir[split]),
            str(synth.coco_panoptic_dir[split]),
            cats,
        )
        res, _ = stat.pq_average(cats, isthing=None)
        assert res["pq"] == pytest.approx(1.0)


def test_semantic_pngs_hold_contiguous_labels_and_255_void(synth):
    order = [c.name for c in CATEGORIES]
    for im in synth.truth.images:
        sem = np.asarray(Image.open(synth.coco_semseg_dir[im.split] / f"{im.image_id:012d}.png"))
        expect = np.full((64, 64), 255, np.uint8)
        for s in im.segments:
            expect[s.mask] = order.index(s.category)
        assert sem.dtype == np.uint8 and np.array_equal(sem, expect)


# ---------------------------------------------------------------------- YouTube-VIS / VIPSeg


def test_ytvis_json_schema_and_rles(synth):
    for split in ("train", "val"):
        data = json.loads(synth.ytvis_json[split].read_text())
        assert set(data) >= {"videos", "annotations", "categories"}
        vids = {v.video_id: v for v in synth.truth.videos if v.split == split}
        assert {v["id"] for v in data["videos"]} == set(vids)
        for v in data["videos"]:
            assert v["length"] == len(v["file_names"]) == 6
            assert all((synth.ytvis_video_dir[split] / f).is_file() for f in v["file_names"])
        names = {c["id"]: c["name"] for c in data["categories"]}
        for ann in data["annotations"]:
            tr = next(t for t in vids[ann["video_id"]].tracks if t.ann_id == ann["id"])
            assert names[ann["category_id"]] == tr.category
            assert len(ann["segmentations"]) == len(ann["areas"]) == len(ann["bboxes"]) == 6
            for t, seg in enumerate(ann["segmentations"]):
                if not tr.masks[t].any():
                    assert seg is None and ann["areas"][t] is None and ann["bboxes"][t] is None
                    continue
                rle = seg if isinstance(seg["counts"], str) else mask_utils.frPyObjects(seg, 64, 64)
                assert np.array_equal(mask_utils.decode(rle).astype(bool), tr.masks[t])
                assert ann["areas"][t] == tr.masks[t].sum()


def test_vipseg_ids_are_track_ids_across_frames(synth):
    data = json.loads(synth.vipseg_json["train"].read_text())
    assert min(c["id"] for c in data["categories"]) == 0  # VIPSeg ids start at 0
    for vid, va in zip(data["videos"], data["annotations"]):
        assert vid["video_id"] == va["video_id"]
        truth = next(v for v in synth.truth.videos if v.name == vid["video_id"])
        for t, fa in enumerate(va["annotations"]):
            png = np.asarray(
                Image.open(synth.vipseg_panoptic_dir / vid["video_id"] / fa["file_name"])
            )
            ids = rgb2id(png.astype(np.uint32))
            for tr in truth.tracks:
                assert np.array_equal(ids == tr.segment_id, tr.masks[t])
            listed = {s["id"] for s in fa["segments_info"]}
            assert listed == {tr.segment_id for tr in truth.tracks if tr.masks[t].any()}


# --------------------------------------------------------------------------------- ADE20K


def test_ade_annotations_and_object_info(synth):
    assert read_ade_object_info(synth.ade_object_info) == list(synth.ade_classes)
    assert "floor, flooring" in synth.ade_classes
    for im in synth.truth.images:
        png = Image.open(synth.ade_ann_dir[im.split] / (Path(im.ade_file_name).stem + ".png"))
        assert png.mode == "L"
        expect = np.zeros((64, 64), np.uint8)
        for s in im.segments:
            expect[s.mask] = ADE_ORDER.index(s.category) + 1
        assert np.array_equal(np.asarray(png), expect)


# ---------------------------------------------------------------------------- API and CLI


def test_jpeg_option_writes_jpeg_images(tmp_path):
    p = _small(tmp_path / "j", seed=1, image_format="jpg")
    files = list(p.coco_image_dir["train"].iterdir())
    assert files and all(f.suffix == ".jpg" for f in files)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG"
    assert all(f.suffix == ".png" for f in p.coco_panoptic_dir["train"].iterdir())


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"size": 8}, "size"),
        ({"images": -1}, "images"),
        ({"frames": 1}, "frames"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"image_format": "bmp"}, "image_format"),
    ],
)
def test_invalid_arguments(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x", **kw)


def test_cli_subcommand_and_overwrite_rules(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="rapsam")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli"
    argv = [
        "synth",
        "--out",
        str(out),
        "--images",
        "3",
        "--videos",
        "1",
        "--size",
        "32",
        "--seed",
        "2",
        "--frames",
        "2",
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    meta = json.loads((out / META_FILE).read_text())
    assert meta["params"]["images"] == 3 and meta["params"]["seed"] == 2
    assert (
        len(list((out / "coco/images/train").iterdir()))
        + len(list((out / "coco/images/val").iterdir()))
        == 3
    )
    # a second run into the same folder needs --overwrite
    assert args.func(parser.parse_args(argv)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert args.func(parser.parse_args(argv + ["--overwrite", "--images", "2"])) == 0
    n = len(list((out / "coco/images/train").iterdir())) + len(
        list((out / "coco/images/val").iterdir())
    )
    assert n == 2  # stale files from the first run are gone
    # never deletes a folder it did not write
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["--out", str(other), "--overwrite"]) == 2
    assert (other / "keep.txt").exists()


def test_generator_is_fast(tmp_path):
    start = time.process_time()
    generate(tmp_path / "f", images=40, videos=4, size=128, seed=0, frames=10, keep_truth=False)
    cpu = time.process_time() - start
    assert cpu < 15.0, f"generating 40 images + 4x10 frames at 128 px took {cpu:.1f} s of CPU"
