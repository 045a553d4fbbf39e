"""Fixtures for the engine tests (helpers in engine_helpers.py)."""

from __future__ import annotations

import pytest
from engine_helpers import probe, run_engine


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> dict:
    """A 768x640 scene, seed 7: the run, its result and its probe."""
    folder = tmp_path_factory.mktemp("scene")
    tif = folder / "scene.tif"
    run = run_engine("synth-scene", "-o", tif, "--width", 768, "--height", 640, "--seed", 7)
    assert run.rc == 0, run.stderr
    return {"run": run, "result": run.last, "tif": tif, "probe": probe(tif)}
