"""onnxruntime vs eager torch, graph by graph, through the public APIs (``RapSam`` / ``OnnxRapSam``).

Every graph, for ``rapsam_tiny`` with random weights (also with the experimental prompt prior, see
``tiny_prior_model``) and for the trained demo model, at two image
sizes (dynamic H, W) and with 1 and 5 prompts (dynamic N; clicks per prompt K and the vocabulary size
are dynamic too): max abs error <= 1e-3.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rapsam.modeling.rapsam import Prompts
from rapsam.runtime.onnx_spec import GRAPH_IO, GRAPHS, SIDECAR

TOL = 1e-3
SIZES = [(64, 96), (128, 128)]
MODELS = ["tiny", "tiny_prior", "demo"]


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def _features(model, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, *size, generator=g)
    with torch.inference_mode():
        return x, model.extract_features(x)


def _prompts(n: int, size: tuple[int, int]) -> Prompts:
    """n prompts in a (h, w) image a little smaller than the padded input: clicks, negatives, boxes."""
    h, w = size[0] - 5, size[1] - 7
    g = torch.Generator().manual_seed(n)
    pts = torch.rand(1, n, 3, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    if n == 1:
        return Prompts(
            pts[:, :, :1], torch.ones(1, 1, 1, dtype=torch.long), None, torch.tensor([[h, w]])
        )
    labels = torch.tensor([[[1, 1, 0], [1, -1, -1], [-1, -1, -1], [1, 0, -1], [0, -1, -1]]])[:, :n]
    boxes = torch.full((1, n, 4), float("nan"))
    boxes[0, 0] = torch.tensor([2.0, 3.0, w / 2, h / 2])  # clicks + box
    boxes[0, 2] = torch.tensor([w / 4, h / 5, w - 3.0, h - 2.0])  # box only (all clicks padding)
    boxes[0, 4] = torch.tensor([1.0, 1.0, w / 3, h / 3])  # negative click + box
    return Prompts(pts, labels, boxes, torch.tensor([[h, w]]))


@pytest.mark.parametrize("pair", MODELS, indirect=True)
@pytest.mark.parametrize("size", SIZES)
def test_image_encoder(pair, size):
    model, ort_model = pair
    x, ref = _features(model, size)
    got = ort_model.extract_features(x)
    assert got.shape == (1, model.config.neck.hidden_dim, size[0] // 4, size[1] // 4)
    assert max_err(got, ref) <= TOL


@pytest.mark.parametrize("pair", MODELS, indirect=True)
@pytest.mark.parametrize("size", SIZES)
def test_panoptic_decoder(pair, size):
    model, ort_model = pair
    _, feats = _features(model, size, seed=1)
    with torch.inference_mode():
        ref = model.decode(feats, with_objects=True).object_outputs[-1]
    out = ort_model.decode(feats, with_objects=True)
    assert out.prompt_outputs is None and len(out.object_outputs) == 1
    got = out.object_outputs[-1]
    q, k = model.decoder.num_queries, model.num_classes
    assert got.mask_logits.shape == (1, q, size[0] // 4, size[1] // 4)
    assert got.cls_logits.shape == (1, q, k + 1)
    assert max_err(got.mask_logits, ref.mask_logits) <= TOL
    assert max_err(got.cls_logits, ref.cls_logits) <= TOL
    assert max_err(got.iou, ref.iou) <= TOL


@pytest.mark.parametrize("pair", MODELS, indirect=True)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", [1, 5])
def test_prompt_decoder(pair, size, n):
    model, ort_model = pair
    _, feats = _features(model, size, seed=2)
    prompts = _prompts(n, size)
    with torch.inference_mode():
        ref = model.decode(feats, prompts, with_objects=False).prompt_outputs[-1]
    out = ort_model.decode(feats, prompts, with_objects=False)
    assert out.object_outputs is None
    got = out.prompt_outputs[-1]
    assert got.mask_logits.shape == (1, n, size[0] // 4, size[1] // 4)
    assert got.iou.shape == (1, n, 1) and got.cls_logits.shape == (1, n, model.num_classes + 1)
    assert max_err(got.mask_logits, ref.mask_logits) <= TOL
    assert max_err(got.iou, ref.iou) <= TOL
    assert max_err(got.cls_logits, ref.cls_logits) <= TOL


def test_objects_and_prompts_in_one_decode(demo_model, demo_ort):
    _, feats = _features(demo_model, (96, 64), seed=3)
    prompts = _prompts(5, (96, 64))
    with torch.inference_mode():
        ref = demo_model.decode(feats, prompts, with_objects=True)
    got = demo_ort.decode(feats, prompts, with_objects=True)
    assert max_err(got.object_outputs[-1].mask_logits, ref.object_outputs[-1].mask_logits) <= TOL
    assert max_err(got.prompt_outputs[-1].mask_logits, ref.prompt_outputs[-1].mask_logits) <= TOL


def test_batch_of_two_runs_per_image(demo_model, demo_ort):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.inference_mode():
        ref = demo_model(x)
    got = demo_ort(x)
    assert got.features.shape[0] == 2
    assert max_err(got.object_outputs[-1].mask_logits, ref.object_outputs[-1].mask_logits) <= TOL


def test_vocabulary_is_an_input_not_baked_in(tiny_model, tiny_ort):
    """A new vocabulary (other K and P) works without re-exporting, for both decoders."""
    import copy

    model = copy.deepcopy(tiny_model)
    g = torch.Generator().manual_seed(9)
    emb = torch.nn.functional.normalize(
        torch.randn(4, 3, model.classifier.embed_dim, generator=g), dim=-1
    )
    names = ["a", "b", "c", "d"]
    model.set_vocabulary(emb, names, [True, False, True, False])
    ort_model = copy.copy(tiny_ort)
    ort_model.classifier = copy.deepcopy(tiny_ort.classifier)
    ort_model.set_vocabulary(emb, names, [True, False, True, False])
    assert ort_model.class_names == names and ort_model.thing_flags == [True, False, True, False]
    _, feats = _features(model, (64, 64), seed=5)
    prompts = _prompts(5, (64, 64))
    with torch.inference_mode():
        ref = model.decode(feats, prompts)
    got = ort_model.decode(feats, prompts)
    assert got.object_outputs[-1].cls_logits.shape[-1] == 5
    assert max_err(got.object_outputs[-1].cls_logits, ref.object_outputs[-1].cls_logits) <= TOL
    assert max_err(got.prompt_outputs[-1].cls_logits, ref.prompt_outputs[-1].cls_logits) <= TOL
    assert tiny_ort.num_classes == 7  # the shared session's model kept its own vocabulary


def test_model_without_vocabulary_gives_no_class_logits(demo_export, demo_model, tmp_path):
    import shutil

    from rapsam.runtime import OnnxRapSam

    d = tmp_path / "novocab"
    shutil.copytree(demo_export.out_dir, d)
    meta = json.loads((d / SIDECAR).read_text())
    meta.update(vocabulary=None, class_names=[], thing_flags=[])
    (d / SIDECAR).write_text(json.dumps(meta))
    m = OnnxRapSam(d, num_threads=1)
    assert not m.classifier.is_set and m.num_classes == 0
    _, feats = _features(demo_model, (64, 64))
    out = m.decode(feats, _prompts(1, (64, 64)))
    assert out.object_outputs[-1].cls_logits is None and out.prompt_outputs[-1].cls_logits is None
    assert out.object_outputs[-1].mask_logits.shape[1] == demo_model.decoder.num_queries


def test_export_check_and_sidecar(tiny_export, tiny_model):
    r = tiny_export
    assert set(r.files) == set(GRAPHS) and set(r.max_abs_error) == set(GRAPHS)
    assert all(e <= TOL for e in r.max_abs_error.values()), r.max_abs_error
    meta = json.loads((r.out_dir / SIDECAR).read_text())
    assert meta["exporter"]["opset"] == 19 and meta["exporter"]["deform_conv"] == "onnx"
    assert "dynamo" in meta["exporter"]["method"]
    assert (
        meta["config"]["name"] == "rapsam_tiny" and meta["config"]["decoder"]["num_queries"] == 50
    )
    assert (
        meta["class_names"] == tiny_model.class_names
        and meta["thing_flags"] == tiny_model.thing_flags
    )
    assert meta["pixel_mean"] == pytest.approx(list(tiny_model.config.pixel_mean))
    emb = np.load(r.out_dir / meta["vocabulary"])
    np.testing.assert_array_equal(emb, tiny_model.classifier.embeddings().numpy())
    for name in GRAPHS:
        g = meta["graphs"][name]
        assert (r.out_dir / g["file"]).exists()
        assert (tuple(g["inputs"]), tuple(g["outputs"])) == GRAPH_IO[name]


def test_graph_structure(demo_export):
    """Opset 19, DeformConv kept as the ONNX op, no slow Einsum, and symbolic (dynamic) sizes."""
    import onnx

    d = demo_export.out_dir
    ops = {}
    for name in GRAPHS:
        proto = onnx.load(str(d / f"{name}.onnx"))
        assert {o.domain: o.version for o in proto.opset_import}.get("", 0) == 19
        ops[name] = {n.op_type for n in proto.graph.node}
        assert "Einsum" not in ops[name], name
        if name == "image_encoder":
            dims = proto.graph.input[0].type.tensor_type.shape.dim
            assert dims[0].dim_value == 1 and dims[1].dim_value == 3
            assert dims[2].dim_param and dims[3].dim_param  # H, W symbolic
        if name == "prompt_decoder":
            dims = {v.name: v.type.tensor_type.shape.dim for v in proto.graph.input}
            assert dims["points"][1].dim_param and dims["points"][2].dim_param  # N, K symbolic
            assert dims["class_embeddings"][0].dim_param  # vocabulary size symbolic
    assert "DeformConv" in ops["image_encoder"]
