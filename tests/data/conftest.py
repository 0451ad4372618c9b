"""Fixture of the data tests: one small synthetic dataset per session, ground truth in memory."""

from __future__ import annotations

import pytest

from rapsam.data.synth import SynthPaths, generate


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthPaths:
    """12 images (9 train, 3 val) and 4 videos (3 train, 1 val) of 6 frames at 64 px.

    Tests must not modify these files; copy what a test breaks into its own ``tmp_path``.
    """
    out = tmp_path_factory.mktemp("synth") / "data"
    return generate(out, images=12, videos=4, size=64, seed=7, frames=6, val_fraction=0.25)
