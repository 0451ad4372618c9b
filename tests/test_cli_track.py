"""`rapsam track` end to end with the official fixture weights (CLI as a user runs it)."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from rapsam.cli import main

N = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def _frames(n=N, h=48, w=64):
    rng = np.random.default_rng(0)
    bg = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    out = []
    for t in range(n):
        f = bg.copy()
        f[8:24, 4 + 4 * t: 20 + 4 * t] = (230, 40, 40)
        out.append(f)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    import av

    p = tmp_path_factory.mktemp("vid") / "clip.mp4"
    frames = _frames()
    with av.open(str(p), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(5))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "12"}
        for f in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return p


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(_frames(5)):
        Image.fromarray(f).save(d / f"frame{i}.png")
    return d


def _args(files, out, *extra):
    w, c = files
    return ["--weights", str(w), "--model", "rapsam_r18", "--classifier", str(c), "--out", str(out),
            "--image-scale", "64,48", *extra]


def _decoded_frames(path):
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_online_video_writes_everything(official_r18_files, video, tmp_path, capsys):
    from rapsam.evaluation.io import read_ytvis_results

    assert main(["track", str(video), *_args(official_r18_files, tmp_path), "--score-thr", "0"]) == 0
    summary = capsys.readouterr().out
    assert f"track (online): {N} frames in" in summary and "fps)" in summary and "tracks ->" in summary
    recs = json.loads((tmp_path / "results.json").read_text())
    n_tracks = int(summary.split("fps), ")[1].split(" tracks")[0])
    assert len(recs) == n_tracks
    read_ytvis_results(recs, videos={1: {"height": 48, "width": 64, "length": N}},
                       category_ids=range(1, 134))  # valid YouTube-VIS results
    overlay = _decoded_frames(tmp_path / "overlay.mp4")
    assert len(overlay) == N and overlay[0].shape == (48, 64, 3)
    pan = json.loads((tmp_path / "panoptic.json").read_text())
    (vid,) = pan["annotations"]
    assert vid["video_id"] == "clip" and len(vid["annotations"]) == N
    for fr in vid["annotations"]:
        png = np.asarray(Image.open(tmp_path / "panoptic" / "clip" / fr["file_name"])).astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        assert sorted(s["id"] for s in fr["segments_info"]) == sorted(set(np.unique(ids).tolist()) - {0})


def test_official_mode_on_a_folder(official_r18_files, folder, tmp_path, capsys):
    assert main(["track", str(folder), "--mode", "official", "--no-video", "--no-panoptic",
                 *_args(official_r18_files, tmp_path)]) == 0
    assert "track (official): 5 frames" in capsys.readouterr().out
    recs = json.loads((tmp_path / "results.json").read_text())
    # the thing pairs among the top-100 (query, class) pairs, one id each for the whole video
    assert 0 < len(recs) <= 100 and sorted(r["track_id"] for r in recs) == list(range(1, len(recs) + 1))
    assert all(len(r["segmentations"]) == 5 and None not in r["segmentations"] for r in recs)
    assert not (tmp_path / "overlay.mp4").exists() and not (tmp_path / "panoptic").exists()


def test_official_mode_video_post_processing_flags(official_r18_files, folder, tmp_path):
    from pycocotools import mask as mask_utils
    from scipy import ndimage

    plain, tuned = tmp_path / "plain", tmp_path / "tuned"
    base = ["track", str(folder), "--mode", "official", "--no-video", "--no-panoptic"]
    assert main([*base, *_args(official_r18_files, plain)]) == 0
    assert main([*base, "--largest-component", "--track-nms-iou", "0.3", *_args(official_r18_files, tuned)]) == 0
    a = json.loads((plain / "results.json").read_text())
    b = json.loads((tuned / "results.json").read_text())
    assert 0 < len(b) < len(a)  # the random network repeats masks: duplicates go
    fragmented = 0
    for recs, one_region in ((a, False), (b, True)):
        for r in recs:
            for seg in r["segmentations"]:
                m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
                n = ndimage.label(m, ndimage.generate_binary_structure(2, 2))[1]
                assert n <= 1 or not one_region
                fragmented += n > 1
    assert fragmented > 0  # without the option some official masks have several regions


def test_prompted_tracking(official_r18_files, video, tmp_path, capsys):
    args = ["track", str(video), "--prompt", "0,10,15", "--box", "1,30,25,60,45", "--prompt", "2,12,16,1,1",
            "--prompt", "2,40,40,0,1", *_args(official_r18_files, tmp_path)]
    assert main(args) == 0
    assert f"track (prompted): {N} frames" in capsys.readouterr().out
    recs = {r["track_id"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert set(recs) == {1, 2}
    assert recs[2]["segmentations"][0] is None  # object 2 starts at frame 1
    assert len(_decoded_frames(tmp_path / "overlay.mp4")) == N


@pytest.mark.parametrize(
    "extra,msg",
    [
        (["--prompt", f"{N},5,5"], f"frame {N} is outside the video"),
        (["--prompt", "0,500,5"], "outside"),
        (["--prompt", "0,5"], "needs 3-5 numbers"),
        (["--prompt", "0,5,5,0"], "negative click needs an object"),
        (["--box", "0,20,20,10,30"], "x1 > x0"),
        (["--window", "0"], "--window"),
        (["--track-nms-iou", "2"], "--track-nms-iou must be a number in [0, 1] or 'off'"),
        (["--track-nms-iou", "high"], "--track-nms-iou must be a number in [0, 1] or 'off'"),
    ],
)
def test_bad_arguments_exit_nonzero(official_r18_files, video, tmp_path, capsys, extra, msg):
    assert main(["track", str(video), *extra, *_args(official_r18_files, tmp_path)]) == 1
    assert msg in capsys.readouterr().err


def test_bad_sources(official_r18_files, tmp_path, capsys):
    assert main(["track", str(tmp_path / "missing.mp4"), *_args(official_r18_files, tmp_path)]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00garbage" * 50)
    assert main(["track", str(tmp_path / "broken.mp4"), *_args(official_r18_files, tmp_path)]) == 1
    assert "broken.mp4" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["track", str(empty), *_args(official_r18_files, tmp_path)]) == 1
    assert "no image files" in capsys.readouterr().err.lower()
    with pytest.raises(SystemExit) as e:
        main(["track", str(empty), "--mode", "offline"])
    assert e.value.code == 2


def test_ctrl_c_keeps_what_was_tracked(official_r18_files, video, tmp_path, capsys, monkeypatch):
    """A live camera is stopped with Ctrl-C: the frames so far are still written."""
    from rapsam.io.video import VideoWriter

    real = VideoWriter.write
    calls = []

    def write(self, frame):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    assert main(["track", str(video), "--no-panoptic", *_args(official_r18_files, tmp_path)]) == 130
    out = capsys.readouterr().out
    assert "track (online): 3 frames" in out and out.rstrip().endswith("(interrupted)")
    recs = json.loads((tmp_path / "results.json").read_text())
    assert all(len(r["segmentations"]) == 3 for r in recs)
    assert len(_decoded_frames(tmp_path / "overlay.mp4")) == 2
