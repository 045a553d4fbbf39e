"""A batch that does not fit in memory: the train worker, with its address space capped
(memory_probe.py), names a batch size that fits, and that batch size then trains under the
same cap. Nothing is written by the failed runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import REPO, Run, run_engine
from train_support import export, train_job, write_json

PROBE = Path(__file__).with_name("memory_probe.py")
#: MB above the started worker: batch 3 of 256 px UNET RESNET18 chips trains in it, 6 does not
#: (measured: 3 needs 700-800 MB, 6 more than 900, 12 more than 1,200)
ROOM_MB = 900


@pytest.fixture(scope="module")
def big_chips(tmp_path_factory) -> Path:
    """16 chips of 256 px (a 1,024 px scene), so that a batch of them is big."""
    folder = tmp_path_factory.mktemp("memory")
    tif = folder / "scene.tif"
    run = run_engine("synth-scene", "-o", tif, "--size", 1024, "--seed", 3, "--no-overviews")
    assert run.rc == 0, run.stderr
    data = json.loads((folder / "buildings.geojson").read_text())
    for f in data["features"]:
        f["properties"] = {"class_value": f["properties"]["class"]}
    write_json(folder / "buildings_samples.geojson", data)
    return export(folder, tif, "Classified_Tiles", tile_size=[256, 256], stride=[256, 256])


def run_capped(tmp: Path, job: dict, room_mb: float) -> Run:
    path = write_json(tmp / f"job_{job['batch_size']}_{room_mb}.json", job)
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(path), str(room_mb)],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=env,
    )  # fmt: skip
    return Run(proc)


def _nothing_written(job: dict) -> None:
    out = Path(job["output"])
    assert not out.exists()
    left = [p.name for p in out.parent.glob("*")] if out.parent.exists() else []
    assert not [n for n in left if n.endswith((".dlpk", ".partial"))], left


def test_a_batch_too_big_names_one_that_fits_and_it_trains(tmp_path, big_chips):
    job = train_job(tmp_path, big_chips, "big", batch_size=16, validation_percent=25)
    failed = run_capped(tmp_path, job, ROOM_MB)
    assert failed.rc == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    error = failed.last
    assert error["type"] == "error" and error["kind"] == "memory", error
    text = error["message"]
    assert text.startswith("Training UNET on RESNET18 ran out of memory: batches of 12 chips")
    assert "(BATCH_SIZE 16 capped at the training chips) of 256 px" in text
    assert "in the computer's memory (CPU)" in text and "can't allocate memory" in text
    found = re.search(r"Training steps with (\d+) chips? fit: set BATCH_SIZE to (\d+)", text)
    assert found and found[1] == found[2], text
    fits = int(found[2])
    assert 1 <= fits <= 6
    warnings = [m["message"] for m in failed.of("log") if m["level"] == "warning"]
    assert "Out of memory with batches of 12; measuring a batch size that fits." in warnings
    _nothing_written(job)

    job["batch_size"] = fits
    trained = run_capped(tmp_path, job, ROOM_MB)
    assert trained.rc == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert trained.last["type"] == "result" and Path(job["output"]).is_file()


def test_not_even_one_chip_fits(tmp_path, big_chips):
    job = train_job(tmp_path, big_chips, "none", batch_size=4)
    run = run_capped(tmp_path, job, 150)
    assert run.rc == 1 and run.last["kind"] == "memory", run.stdout[-3000:]
    text = run.last["message"]
    assert "batches of 4 chips of 256 px do not fit" in text
    assert (
        "Not even one chip of 256 px fits: lower chip_size in ARGUMENTS (e.g. chip_size=128)"
        in text
    )
    assert "lighter backbone" not in text  # RESNET18 is one
    _nothing_written(job)


def test_a_model_that_cannot_be_built_is_a_memory_error(tmp_path, big_chips):
    job = train_job(tmp_path, big_chips, "tiny", batch_size=4)
    run = run_capped(tmp_path, job, 20)
    assert run.rc == 1 and run.last["kind"] == "memory", run.stdout[-3000:]
    assert run.last["message"].startswith("The train worker ran out of memory (RuntimeError: ")
    _nothing_written(job)
