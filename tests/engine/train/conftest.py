"""Fixtures for the training tests: one synthetic scene and its exports, made once."""

from __future__ import annotations

import pytest
from train_support import export, make_scene


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict:
    """Exports of a 256 x 256 scene in 64-pixel chips, in each format: format -> folder.
    Object formats hold the buildings (10-25 px), the others buildings and roads."""
    folder = tmp_path_factory.mktemp("train_data")
    tif = make_scene(folder)
    objects = {"samples": "buildings", "min_overlap": 0.3, "stride": [32, 32]}
    return {
        "Classified_Tiles": export(folder, tif, "Classified_Tiles", samples="all"),
        "Labeled_Tiles": export(folder, tif, "Labeled_Tiles", samples="all"),
        "MultiLabeled_Tiles": export(folder, tif, "MultiLabeled_Tiles", samples="all"),
        "PASCAL_VOC_rectangles": export(folder, tif, "PASCAL_VOC_rectangles", **objects),
        "KITTI_rectangles": export(folder, tif, "KITTI_rectangles", **objects),
        "RCNN_Masks": export(folder, tif, "RCNN_Masks", **objects),
    }


@pytest.fixture
def one_thread():
    """torch on one thread (much faster on a busy two-core machine); restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
