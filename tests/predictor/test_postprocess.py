"""Official panoptic / instance post-processing on the 8 crafted cases of the official fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rapsam.predictor.postprocess import (
    instance_scores,
    instance_topk,
    panoptic_keep,
    panoptic_postprocess,
    semantic_scores,
)
from rapsam.structures import PanopticResult, Segment, masks_to_boxes
from tests.conftest import _gen, load_case

THINGS = [i < 80 for i in range(133)]


@pytest.fixture(scope="module")
def cases():
    d, meta = load_case("postprocess_cases")
    return d, meta


def _official_map(raw, num_classes=133):
    segs = [Segment(i + 1, l, "", s, t, 0, (0, 0, 0, 0)) for i, (l, s, t) in enumerate(zip(raw.labels, raw.scores, raw.is_thing))]
    return PanopticResult(raw.seg_ids, segs).official_map(num_classes).numpy()


@pytest.mark.parametrize("case", range(8))
def test_panoptic_matches_official(cases, case):
    d, meta = cases
    cls = torch.from_numpy(d[f"case{case}_mask_cls"])
    pred = torch.from_numpy(d[f"case{case}_mask_pred"])
    idx, scores, labels = panoptic_keep(cls, 0.8)
    info = meta["cases"][case]
    assert len(idx) == info["n_kept_by_score"]
    raw = panoptic_postprocess(scores, labels, pred[idx], THINGS, 0.8, True, idx)
    ours = _official_map(raw)
    ref = d[f"case{case}_pan_seg"]
    np.testing.assert_array_equal(ours, ref)
    assert sorted(np.unique(ours).tolist()) == sorted(set(info["pan_ids"]) | ({133} if (ref == 133).any() else set()))


@pytest.mark.parametrize("case", range(8))
def test_instances_match_official(cases, case):
    d, _ = cases
    g = _gen()
    cls = torch.from_numpy(d[f"case{case}_mask_cls"])
    pred = torch.from_numpy(d[f"case{case}_mask_pred"])
    cls_scores, labels, queries = instance_topk(cls, THINGS, 100)
    masks, scores = instance_scores(pred[queries], cls_scores)
    ref_keys = list(zip(d[f"case{case}_ins_query"].tolist(), d[f"case{case}_ins_labels"].tolist()))
    ours = {(q, l): i for i, (q, l) in enumerate(zip(queries.tolist(), labels.tolist()))}
    assert set(ours) == set(ref_keys)
    ref_masks = g.unpack_bool(d[f"case{case}_ins_masks_bits"], d[f"case{case}_ins_masks_shape"])
    boxes = masks_to_boxes(masks)
    for j, key in enumerate(ref_keys):
        i = ours[key]
        assert scores[i].item() == pytest.approx(float(d[f"case{case}_ins_scores"][j]), rel=1e-5, abs=1e-7)
        np.testing.assert_array_equal(masks[i].numpy(), ref_masks[j])
        np.testing.assert_array_equal(boxes[i].numpy(), d[f"case{case}_ins_bboxes"][j])


def test_hand_made_logits():
    """Thresholds, the overlap rule and the painting order on a 1x4 image."""
    big = 20.0
    # classes: 0 thing, 1 stuff; K = 2 -> logits (Q, 3)
    cls = torch.tensor([
        [big, 0, 0],      # q0: thing, score ~1 -> kept
        [0, big, 0],      # q1: stuff, kept
        [0, 0, big],      # q2: background -> dropped
        [1.0, 0, 0],      # q3: thing with score < 0.8 -> dropped
        [big, 0, 0],      # q4: thing, but hidden behind q0 -> dropped by the overlap rule
    ])
    m = torch.tensor([
        [[big, big, -big, -big]],
        [[-big, -big, big, big]],
        [[big, big, big, big]],
        [[big, big, big, big]],
        [[big, big, big, -big]],
    ])
    idx, scores, labels = panoptic_keep(cls, 0.8)
    assert idx.tolist() == [0, 1, 4]
    raw = panoptic_postprocess(scores, labels, m[idx], [True, False], 0.8, True, idx)
    assert raw.seg_ids.tolist() == [[1, 1, 2, 2]]
    assert raw.labels == [0, 1] and raw.is_thing == [True, False] and raw.queries == [0, 1]
    # q4 owns pixel 2 by argmax? no: q0 and q4 tie on pixels 0-1 (first wins), q1 beats q4 on pixel 2
    sem = semantic_scores(cls, m)
    assert sem.shape == (2, 1, 4)


def test_empty_inputs():
    cls = torch.zeros(3, 5)
    cls[:, -1] = 10  # all background
    idx, scores, labels = panoptic_keep(cls)
    raw = panoptic_postprocess(scores, labels, torch.zeros(0, 4, 4), [True] * 4, queries=idx)
    assert raw.seg_ids.sum() == 0 and raw.labels == []
    assert masks_to_boxes(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4)
