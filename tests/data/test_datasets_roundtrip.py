"""Every reader returns exactly the generator's in-memory ground truth, plus hand-written cases for
the format variants the generator does not produce (YouTube-VIS 2021 polygons, crowd RLE)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO

from rapsam.data import merge_taxonomies
from rapsam.data.datasets import (
    ADE20KSemanticDataset,
    CocoInstancesDataset,
    CocoPanopticDataset,
    ImageSample,
    VideoSample,
    VIPSegDataset,
    YouTubeVISDataset,
)
from rapsam.data.formats import polygons_to_mask, rle_encode
from rapsam.data.synth import ADE_ORDER, CATEGORIES

BY_NAME = {c.name: c for c in CATEGORIES}
SPLITS = ("train", "val")


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean dataset must load without a skip warning
        yield


def _check_common(sample, ds):
    assert sample.labels.dtype == np.int64 and sample.masks.dtype == bool
    n = len(sample)
    assert (
        sample.instance_ids.shape == sample.is_thing.shape == sample.iscrowd.shape == (n,)
        if isinstance(sample, ImageSample)
        else sample.track_ids.shape == (n,)
    )
    assert np.array_equal(sample.is_thing, [ds.thing_flags[k] for k in sample.labels])


def test_coco_panoptic_roundtrip(synth):
    for split in SPLITS:
        ds = CocoPanopticDataset(
            synth.coco_panoptic_json[split],
            synth.coco_image_dir[split],
            synth.coco_panoptic_dir[split],
        )
        truth = [im for im in synth.truth.images if im.split == split]
        assert len(ds) == len(truth) and ds.skipped == []
        assert ds.classes == tuple(c.name for c in CATEGORIES)
        assert ds.category_ids == tuple(c.coco_id for c in CATEGORIES)
        assert ds.thing_flags == tuple(c.is_thing for c in CATEGORIES)
        assert all(ds.category_id_to_index[c] == k for k, c in enumerate(ds.category_ids))
        for i, im in enumerate(truth):
            s = ds[i]
            assert isinstance(s, ImageSample)
            _check_common(s, ds)
            assert s.image_id == im.image_id and s.file_name == im.file_name
            assert s.image.dtype == np.uint8 and np.array_equal(s.image, im.image)
            assert ds.size(i) == s.image_size == (64, 64)
            got = {
                int(k): (ds.classes[lab], m, t)
                for k, lab, m, t in zip(s.instance_ids, s.labels, s.masks, s.is_thing)
            }
            assert set(got) == {seg.segment_id for seg in im.segments}
            for seg in im.segments:
                name, mask, thing = got[seg.segment_id]
                assert name == seg.category and thing == seg.is_thing
                assert np.array_equal(mask, seg.mask)
            assert not s.iscrowd.any()


def test_coco_instances_roundtrip(synth):
    for split in SPLITS:
        ds = CocoInstancesDataset(synth.coco_instances_json[split], synth.coco_image_dir[split])
        truth = [im for im in synth.truth.images if im.split == split]
        assert len(ds) == len(truth)
        assert ds.classes == tuple(c.name for c in CATEGORIES if c.is_thing)
        assert all(ds.thing_flags)
        for i, im in enumerate(truth):
            s = ds[i]
            _check_common(s, ds)
            assert np.array_equal(s.image, im.image)
            things = {seg.ann_id: seg for seg in im.segments if seg.is_thing}
            assert sorted(s.instance_ids.tolist()) == sorted(things)
            for aid, label, mask in zip(s.instance_ids, s.labels, s.masks):
                seg = things[int(aid)]
                assert ds.classes[label] == seg.category
                assert np.array_equal(mask, seg.mask)


def test_ytvis_roundtrip_and_clip_loading(synth):
    for split in SPLITS:
        ds = YouTubeVISDataset(synth.ytvis_json[split], synth.ytvis_video_dir[split])
        truth = [v for v in synth.truth.videos if v.split == split]
        assert len(ds) == len(truth)
        assert sorted(ds.category_ids) == [1, 2, 3, 4, 5]
        for i, v in enumerate(truth):
            s = ds[i]
            assert isinstance(s, VideoSample)
            _check_common(s, ds)
            assert s.video_id == v.video_id and s.file_names == v.ytvis_file_names
            assert ds.num_frames(i) == s.num_frames == 6
            assert all(np.array_equal(a, b) for a, b in zip(s.frames, v.frames))
            things = [tr for tr in v.tracks if tr.is_thing]
            assert s.track_ids.tolist() == [tr.ann_id for tr in things]
            for row, tr in enumerate(things):
                assert ds.classes[s.labels[row]] == tr.category
                assert np.array_equal(s.masks[row], tr.masks)
                assert np.array_equal(s.valid[row], tr.masks.any(axis=(1, 2)))
            clip = ds.load(i, frames=[4, 1])
            assert clip.frame_indices.tolist() == [4, 1]
            assert np.array_equal(clip.masks, s.masks[:, [4, 1]])
            assert np.array_equal(clip.valid, s.valid[:, [4, 1]])
            assert np.array_equal(clip.frames[0], s.frames[4])
            assert clip.file_names == [s.file_names[4], s.file_names[1]]
    with pytest.raises(ValueError, match="num_frames"):
        ds.load(0, frames=[6])


def test_vipseg_roundtrip(synth):
    for split in SPLITS:
        ds = VIPSegDataset(
            synth.vipseg_json[split], synth.vipseg_image_dir, synth.vipseg_panoptic_dir
        )
        truth = [v for v in synth.truth.videos if v.split == split]
        assert len(ds) == len(truth)
        assert ds.category_ids[0] == 0  # 0-based like VIPSeg
        for i, v in enumerate(truth):
            s = ds[i]
            _check_common(s, ds)
            assert s.video_id == v.name and len(s.frames) == 6
            assert all(np.array_equal(a, b) for a, b in zip(s.frames, v.frames))
            assert sorted(s.track_ids.tolist()) == sorted(tr.segment_id for tr in v.tracks)
            for row, sid in enumerate(s.track_ids):
                tr = next(t for t in v.tracks if t.segment_id == sid)
                assert ds.classes[s.labels[row]] == tr.category
                assert s.is_thing[row] == tr.is_thing
                assert np.array_equal(s.masks[row], tr.masks)
                assert np.array_equal(s.valid[row], tr.masks.any(axis=(1, 2)))
            clip = ds.load(i, frames=[5])
            assert np.array_equal(clip.masks[:, 0], s.masks[:, 5])


def test_ade20k_roundtrip(synth):
    flags = [BY_NAME[n].is_thing for n in ADE_ORDER]
    for split in SPLITS:
        ds = ADE20KSemanticDataset(
            synth.ade_image_dir[split],
            synth.ade_ann_dir[split],
            synth.ade_object_info,
            thing_flags=flags,
        )
        assert ds.classes == synth.ade_classes
        assert ds.category_ids == tuple(range(1, 11))
        truth = [im for im in synth.truth.images if im.split == split]
        assert len(ds) == len(truth)
        for i, im in enumerate(truth):  # ADE_<split>_<n> names sort in generation order
            s = ds[i]
            _check_common(s, ds)
            assert s.file_name == im.ade_file_name
            assert np.array_equal(s.image, im.image)
            expect: dict[str, np.ndarray] = {}
            for seg in im.segments:
                expect[seg.category] = expect.get(seg.category, np.zeros((64, 64), bool)) | seg.mask
            assert sorted(ADE_ORDER[k] for k in s.labels) == sorted(expect)
            for label, mask, value in zip(s.labels, s.masks, s.instance_ids):
                assert value == label + 1
                assert np.array_equal(mask, expect[ADE_ORDER[label]])
    # a plain list of names works too, and flags default to stuff
    ds = ADE20KSemanticDataset(
        synth.ade_image_dir["val"], synth.ade_ann_dir["val"], list(synth.ade_classes)
    )
    assert not any(ds.thing_flags) and len(ds) == 3


def test_merge_taxonomies_of_the_synthetic_readers(synth):
    pan = CocoPanopticDataset(
        synth.coco_panoptic_json["train"],
        synth.coco_image_dir["train"],
        synth.coco_panoptic_dir["train"],
    )
    yt = YouTubeVISDataset(synth.ytvis_json["train"], synth.ytvis_video_dir["train"])
    ade = ADE20KSemanticDataset(
        synth.ade_image_dir["train"],
        synth.ade_ann_dir["train"],
        synth.ade_object_info,
        thing_flags=[BY_NAME[n].is_thing for n in ADE_ORDER],
    )
    m = merge_taxonomies([pan, yt, ade])
    assert m.num_things == 5 and len(m.names) == 10
    for ds, mp in zip((pan, yt, ade), m.index_maps):
        for k, name in enumerate(ds.classes):
            canonical = name.split(",")[0]  # "floor, flooring" -> "floor"
            assert m.names[mp[k]] == canonical
    s = yt[0]
    assert [m.names[x] for x in m.remap(1, s.labels)] == [yt.classes[k] for k in s.labels]


# ------------------------------------------------------------- variants written by hand


def test_ytvis_2021_layout_with_polygons_and_string_ids(synth, tmp_path):
    """2021 ships train/instances.json; annotations may hold polygons and omit 'length'."""
    src = json.loads(synth.ytvis_json["train"].read_text())
    frames = tmp_path / "train" / "JPEGImages"
    shutil.copytree(synth.ytvis_video_dir["train"], frames)
    v = src["videos"][0]
    del v["length"]
    poly = [[2.0, 2.0, 30.0, 4.0, 12.0, 25.5]]
    ann = {
        "id": 999,
        "video_id": v["id"],
        "category_id": 2,
        "iscrowd": 0,
        "segmentations": [None, poly] + [None] * 4,
        "areas": [None] * 6,
        "bboxes": [None] * 6,
    }
    src["annotations"].append(ann)
    path = tmp_path / "train" / "instances.json"
    path.write_text(json.dumps(src))
    ds = YouTubeVISDataset(path, frames)
    s = ds[0]
    row = s.track_ids.tolist().index(999)
    assert ds.classes[s.labels[row]] == "ring"
    assert s.valid[row].tolist() == [False, True, False, False, False, False]
    assert np.array_equal(s.masks[row, 1], polygons_to_mask(poly, 64, 64))
    assert not s.masks[row, 0].any()


def test_ytvis_valid_split_without_annotations(synth, tmp_path):
    src = json.loads(synth.ytvis_json["val"].read_text())
    del src["annotations"]
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(src))
    ds = YouTubeVISDataset(path, synth.ytvis_video_dir["val"])
    s = ds[0]
    assert len(s) == 0 and s.masks.shape == (0, 6, 64, 64) and len(s.frames) == 6


def test_coco_instances_polygon_rle_and_crowd_variants(synth, tmp_path):
    im = next(i for i in synth.truth.images if i.split == "val")
    m1 = np.zeros((64, 64), bool)
    m1[5:20, 3:9] = True
    m2 = np.zeros((64, 64), bool)
    m2[40:60, 30:33] = True
    anns = [
        {
            "id": 1,
            "image_id": im.image_id,
            "category_id": 1,
            "iscrowd": 0,
            "area": 10,
            "segmentation": [
                [10.0, 10.0, 40.0, 12.0, 25.0, 40.0],
                [50.0, 50.0, 60.0, 50.0, 55.0, 60.0],
            ],
        },
        {
            "id": 2,
            "image_id": im.image_id,
            "category_id": 2,
            "iscrowd": 1,
            "area": 90,
            "segmentation": rle_encode(m1, compressed=False),
        },
        {
            "id": 3,
            "image_id": im.image_id,
            "category_id": 3,
            "iscrowd": 0,
            "area": 60,
            "segmentation": rle_encode(m2, compressed=True),
        },
        # a degenerate polygon next to a real one: the real one is kept
        {
            "id": 4,
            "image_id": im.image_id,
            "category_id": 3,
            "iscrowd": 0,
            "area": 50,
            "segmentation": [[1.0, 1.0, 2.0, 2.0], [30.0, 30.0, 45.0, 31.0, 40.0, 44.0]],
        },
    ]
    data = {
        "images": [{"id": im.image_id, "file_name": im.file_name, "width": 64, "height": 64}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    ds = CocoInstancesDataset(path, synth.coco_image_dir["val"])
    s = ds[0]
    coco = COCO(str(path))
    assert s.instance_ids.tolist() == [1, 2, 3, 4]
    assert s.iscrowd.tolist() == [False, True, False, False]
    assert s.labels.tolist() == [0, 1, 2, 2]
    for k, aid in enumerate(s.instance_ids):
        if aid == 4:  # pycocotools cannot read the 4-number polygon (it takes it for a box)
            ref = polygons_to_mask([[30.0, 30.0, 45.0, 31.0, 40.0, 44.0]], 64, 64)
        else:
            ref = coco.annToMask(coco.loadAnns([int(aid)])[0]).astype(bool)
        assert np.array_equal(s.masks[k], ref)
    assert np.array_equal(s.masks[1], m1) and np.array_equal(s.masks[2], m2)


def test_image_without_annotations_is_an_empty_sample(synth, tmp_path):
    im = synth.truth.images[0]
    data = {
        "images": [{"id": 5, "file_name": im.file_name, "width": 64, "height": 64}],
        "annotations": [],
        "categories": [{"id": 1, "name": "a"}],
    }
    path = tmp_path / "i.json"
    path.write_text(json.dumps(data))
    s = CocoInstancesDataset(path, synth.coco_image_dir[im.split])[0]
    assert len(s) == 0 and s.masks.shape == (0, 64, 64) and s.image_id == 5


def test_vipseg_finds_jpeg_frames_named_png_in_json(tmp_path):
    from rapsam.data.synth import generate

    p = generate(
        tmp_path / "j",
        images=0,
        videos=1,
        size=32,
        seed=0,
        frames=2,
        val_fraction=0.0,
        image_format="jpg",
    )
    ds = VIPSegDataset(p.vipseg_json["train"], p.vipseg_image_dir, p.vipseg_panoptic_dir)
    s = ds[0]
    assert s.file_names == ["00000000.png", "00000001.png"]  # names as in the JSON
    assert len(s.frames) == 2 and s.frames[0].shape == (32, 32, 3)
    assert np.abs(s.frames[0].astype(int) - p.truth.videos[0].frames[0]).mean() < 6  # JPEG


def test_boolean_isthing_is_accepted(synth, tmp_path):
    data = json.loads(synth.coco_panoptic_json["val"].read_text())
    for c in data["categories"]:
        c["isthing"] = bool(c["isthing"])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    ds = CocoPanopticDataset(path, synth.coco_image_dir["val"], synth.coco_panoptic_dir["val"])
    assert ds.thing_flags == tuple(c.is_thing for c in CATEGORIES)


def test_datasets_pickle_for_dataloader_workers(synth):
    import pickle

    for ds in (
        CocoPanopticDataset(
            synth.coco_panoptic_json["val"],
            synth.coco_image_dir["val"],
            synth.coco_panoptic_dir["val"],
        ),
        VIPSegDataset(synth.vipseg_json["val"], synth.vipseg_image_dir, synth.vipseg_panoptic_dir),
    ):
        clone = pickle.loads(pickle.dumps(ds))
        assert len(clone) == len(ds) and clone.classes == ds.classes
        assert np.array_equal(clone[0].masks, ds[0].masks)
