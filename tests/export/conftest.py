"""Shared exports for the ONNX tests: each model is exported once per session (an export is the slow
part: tens of seconds on a 2-core machine), then every test reads the same directories.

* ``demo_export``: the bundled demo model, exported through the CLI exactly as a user runs it
  (``python -m rapsam.cli export onnx --weights demo --out DIR``, a subprocess started when the first
  test needing an export runs, so it overlaps with ``tiny_export``); the CLI test checks its output.
* ``tiny_export``: ``rapsam_tiny`` with random weights (seed 123) and a random 7-class vocabulary,
  through the Python API, without onnxscript's graph optimizer (``optimize=False``).

The tests need the ``onnx`` extra (onnx, onnxscript, onnxruntime); CI installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

for _mod in ("onnx", "onnxscript", "onnxruntime"):
    if os.environ.get("RAPSAM_REQUIRE_EXTRAS") == "1":
        __import__(_mod)  # CI installs the 'onnx' extra: a failed import is a failure, not a skip
    else:
        pytest.importorskip(_mod)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliExport:
    out_dir: Path
    rc: int
    stdout: str


@pytest.fixture(scope="session")
def demo_model():
    import rapsam

    return rapsam.build_model(weights="demo")


@pytest.fixture(scope="session")
def _demo_export_process(tmp_path_factory):
    """Start ``rapsam export onnx --weights demo`` in a subprocess (a real CLI run), so that it runs
    alongside the in-process ``tiny_export`` on a machine with a free core."""
    out = tmp_path_factory.mktemp("demo_onnx") / "export"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "rapsam.cli", "export", "onnx", "--weights", "demo", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def demo_export(_demo_export_process, tiny_export) -> CliExport:
    # tiny_export first: it runs in this process while the subprocess exports the demo model
    proc, out = _demo_export_process
    stdout, stderr = proc.communicate(timeout=1800)
    return CliExport(out, proc.returncode, stdout + stderr)


@pytest.fixture(scope="session")
def tiny_model():
    import rapsam

    torch.manual_seed(123)
    model = rapsam.build_model("rapsam_tiny")
    g = torch.Generator().manual_seed(5)
    emb = torch.nn.functional.normalize(
        torch.randn(7, 2, model.classifier.embed_dim, generator=g), dim=-1
    )
    model.set_vocabulary(emb, [f"c{i}" for i in range(7)], [i < 4 for i in range(7)])
    return model


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory, _demo_export_process):
    from rapsam.export import export_onnx

    out = tmp_path_factory.mktemp("tiny_onnx") / "export"
    # optimize=False: covers the un-optimised graphs too, and saves about a quarter of the export time
    return export_onnx(tiny_model, out, source="random:rapsam_tiny:seed123", optimize=False)


@pytest.fixture(scope="session")
def tiny_prior_model(tiny_model):
    """``tiny_model`` plus the experimental click-distance prompt prior with random non-zero weights,
    so that the prior changes the outputs the prompt graph must reproduce."""
    import dataclasses

    from rapsam.models import _build

    cfg = tiny_model.config
    dec = dataclasses.replace(cfg.decoder, prompt_prior=True)
    model = _build(dataclasses.replace(cfg, decoder=dec))
    res = model.load_state_dict(tiny_model.state_dict(), strict=False)
    assert not res.unexpected_keys and all(k.startswith("prompt_prior.") for k in res.missing_keys), res
    g = torch.Generator().manual_seed(5)  # tiny_model's vocabulary
    emb = torch.nn.functional.normalize(torch.randn(7, 2, model.classifier.embed_dim, generator=g), dim=-1)
    model.set_vocabulary(emb, tiny_model.class_names, tiny_model.thing_flags)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for lin in model.prompt_prior.weights:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.05)
            lin.bias.copy_(torch.rand(lin.bias.shape, generator=g) * 4)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_prior_ort(tiny_prior_model, tmp_path_factory):
    from rapsam.export import export_onnx
    from rapsam.runtime import OnnxRapSam

    out = tmp_path_factory.mktemp("tiny_prior_onnx") / "export"
    export_onnx(tiny_prior_model, out, source="random:rapsam_tiny+prompt_prior", optimize=False)
    return OnnxRapSam(out, num_threads=1)


@pytest.fixture(scope="session")
def demo_ort(demo_export):
    from rapsam.runtime import OnnxRapSam

    assert demo_export.rc == 0, demo_export.stdout
    return OnnxRapSam(demo_export.out_dir, num_threads=1)


@pytest.fixture(scope="session")
def tiny_ort(tiny_export):
    from rapsam.runtime import OnnxRapSam

    return OnnxRapSam(tiny_export.out_dir, num_threads=1)


@pytest.fixture
def pair(request):
    """(torch model, OnnxRapSam) for the parametrised model name ("tiny" or "demo")."""
    name = request.param
    return request.getfixturevalue(f"{name}_model"), request.getfixturevalue(f"{name}_ort")
