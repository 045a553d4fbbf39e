"""Tiny real packages for the inference tests: a 256 px synthetic scene, exported and trained
for one epoch with the real engine commands (made once per session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "train"))
from train_support import export, make_scene, run_train, train_job  # noqa: E402

PACKAGES = {  # model type: (metadata format, samples)
    "UNET": ("Classified_Tiles", "all"),
    "FASTERRCNN": ("PASCAL_VOC_rectangles", "buildings"),
    "MASKRCNN": ("RCNN_Masks", "buildings"),
    "FEATURE_CLASSIFIER": ("Labeled_Tiles", "buildings"),
}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """{"scene": tif, "folder": ..., model type: .dlpk path}."""
    folder = tmp_path_factory.mktemp("infer")
    tif = make_scene(folder)
    out = {"scene": tif, "folder": folder}
    for model_type, (fmt, samples) in PACKAGES.items():
        data = export(folder, tif, fmt, samples=samples)
        job = train_job(folder, data, name=model_type.lower(), model_type=model_type)
        run = run_train(folder, job)
        assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
        out[model_type] = Path(job["output"])
    return out
