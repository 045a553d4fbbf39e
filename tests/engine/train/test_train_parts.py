"""Parts of training checked in this process: augmentations keep image and target together, the
split, mAP, classification metrics, and every bad input refused before anything is written."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from train_support import train_job

from dlstudio_qgis.engine.protocol import InputError, Reporter
from dlstudio_qgis.engine.train import command
from dlstudio_qgis.engine.train.dataset import DataSpec, dihedral, split
from dlstudio_qgis.engine.train.tasks import (
    ClassificationTask,
    IncompatibleDataError,
    average_precision,
)


@pytest.mark.parametrize("flags", [(t, h, v) for t in (0, 1) for h in (0, 1) for v in (0, 1)])
def test_dihedral_moves_boxes_and_masks_with_the_image(flags):
    image = np.zeros((2, 16, 16), np.float32)
    image[:, 2:6, 9:14] = 1.0  # rows 2-5, columns 9-13
    mask = image[0].astype(np.int64)
    target = {"boxes": np.array([[9, 2, 14, 6]], np.float32), "mask": mask}
    out, moved = dihedral(image, target, *map(bool, flags))
    rows, cols = np.nonzero(out[0])
    assert moved["boxes"][0].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    assert np.array_equal(moved["mask"], out[0].astype(np.int64))


def test_split_is_deterministic_disjoint_and_complete():
    train, val = split(20, 10, seed=0)
    assert len(val) == 2 and sorted(train + val) == list(range(20))
    assert split(20, 10, seed=0) == (train, val) and split(20, 10, seed=1) != (train, val)
    assert split(3, 1, seed=0)[1] and split(1, 50, seed=0) == ([0], [])
    assert split(10, 0, seed=0) == (list(range(10)), [])


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_average_precision_per_class():
    truth = [{"boxes": _boxes([0, 0, 10, 10], [20, 20, 30, 30]), "labels": torch.tensor([1, 1])}]
    perfect = [
        {
            "boxes": _boxes([0, 0, 10, 10], [20, 20, 30, 30]),
            "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([1, 1]),
        }
    ]
    assert average_precision(perfect, truth, 2) == {1: 1.0, 2: None}
    # a false positive ranked first: precision 1/2 at recall 1/2, 2/3 at full recall; VOC's
    # all-point interpolation takes the best precision at any higher recall: 2/3 throughout
    fp_first = [
        {
            "boxes": _boxes([50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]),
            "scores": torch.tensor([0.95, 0.9, 0.8]),
            "labels": torch.tensor([1, 1, 1]),
        }
    ]
    assert average_precision(fp_first, truth, 1)[1] == pytest.approx(2 / 3)
    # half the truth found; a duplicate of a found box is a false positive
    half = [
        {
            "boxes": _boxes([0, 0, 10, 10], [1, 0, 10, 10]),
            "scores": torch.tensor([0.9, 0.5]),
            "labels": torch.tensor([1, 1]),
        }
    ]
    assert average_precision(half, truth, 1)[1] == pytest.approx(0.5)
    # a box at IoU < 0.5 does not count
    off = [
        {
            "boxes": _boxes([5, 5, 15, 15]),
            "scores": torch.tensor([0.9]),
            "labels": torch.tensor([1]),
        }
    ]
    assert average_precision(off, truth, 1)[1] == 0.0


@pytest.mark.parametrize("multi", [False, True])
def test_classification_metrics(multi, one_thread):
    classes = [{"Value": v, "Name": n} for v, n in ((1, "a"), (2, "b"))]
    spec = DataSpec(
        "classification",
        "Labeled_Tiles",
        classes,
        32,
        (32, 32),
        3,
        [0.0] * 3,
        [1.0] * 3,
        [0, 1, 2],
        multi_label=multi,
    )
    task = ClassificationTask(spec, "FEATURE_CLASSIFIER", "RESNET18", {}, pretrained=None)
    logits = torch.tensor([[2.0, -1.0], [2.0, -1.0], [-1.0, 2.0]])
    task.model = lambda x: logits
    if multi:
        target = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    else:
        target = torch.tensor([0, 1, 1])
    out = task.validation_step((torch.zeros(3, 3, 32, 32), target))
    assert np.isfinite(out["loss"])
    m = task.compute_metrics()
    if multi:  # 5 of 6 labels right; F1 a = 1, b = 2 / 3
        assert m["accuracy"] == pytest.approx(5 / 6) and m["f1"] == pytest.approx((1 + 2 / 3) / 2)
    else:  # 2 of 3 right; F1 a = 2 / 3, b = 2 / 3
        assert m["accuracy"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    json.dumps(m)


# --- bad inputs: InputError naming the fix, nothing written ----------------------------------


def _refused(tmp_path, job: dict, match: str, kind=InputError) -> None:
    with pytest.raises(kind, match=match):
        command.run(job, Reporter(io.StringIO()))
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("**/*.checkpoints"))


def test_missing_folder(tmp_path):
    job = train_job(tmp_path, tmp_path / "nowhere")
    _refused(tmp_path, job, "does not exist")


def test_folder_that_is_not_an_export_names_what_it_lacks(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    _refused(
        tmp_path,
        train_job(tmp_path, folder),
        "is not an exported training-data folder: it lacks 'esri_model_definition.emd', "
        "'esri_accumulated_stats.json', 'images/' and 'labels/'. Choose the folder",
    )
    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    _refused(
        tmp_path,
        train_job(tmp_path, folder),
        "Cannot tell the metadata format of .*: it lacks 'esri_model_definition.emd' and "
        "'esri_accumulated_stats.json'. Export the training data again",
    )


def test_folder_without_chips(tmp_path, exports):
    folder = tmp_path / "empty"
    (folder / "images").mkdir(parents=True)
    shutil.copy(exports["Classified_Tiles"] / "esri_model_definition.emd", folder)
    _refused(tmp_path, train_job(tmp_path, folder), "holds no image chips. Export training data")


def test_model_definition_without_classes(tmp_path, exports):
    folder = shutil.copytree(exports["Classified_Tiles"], tmp_path / "noclasses")
    for name in ("esri_model_definition.emd", "esri_accumulated_stats.json"):
        data = json.loads((folder / name).read_text())
        data["Classes"] = []
        (folder / name).write_text(json.dumps(data))
    _refused(tmp_path, train_job(tmp_path, folder), "lists no classes")


def test_model_type_for_another_format(tmp_path, exports):
    job = train_job(tmp_path, exports["Labeled_Tiles"], model_type="FASTERRCNN")
    _refused(
        tmp_path,
        job,
        "FASTERRCNN trains from PASCAL_VOC_rectangles or KITTI_rectangles; "
        "this export is Labeled_Tiles: export again with METADATA_FORMAT=PASCAL_VOC",
        IncompatibleDataError,
    )


def test_unsupported_model_backbone_pair(tmp_path, exports):
    job = train_job(tmp_path, exports["PASCAL_VOC_rectangles"], model_type="YOLOV3")
    _refused(tmp_path, job, "YOLOV3 does not work with backbone RESNET18.*DARKNET53")


def test_existing_output_without_overwrite(tmp_path, exports):
    job = train_job(tmp_path, exports["Classified_Tiles"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.dlpk").write_bytes(b"old")
    with pytest.raises(InputError, match="already exists; set OVERWRITE"):
        command.run(job, Reporter(io.StringIO()))
    assert (tmp_path / "out" / "model.dlpk").read_bytes() == b"old"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.dlpk"]


def test_missing_pretrained_model(tmp_path, exports):
    job = train_job(
        tmp_path, exports["Classified_Tiles"], pretrained_model=str(tmp_path / "none.dlpk")
    )
    _refused(tmp_path, job, "PRETRAINED_MODEL .* does not exist")


def _other_package(tmp_path, model_type="UNET", names=("tree", "water", "field")) -> str:
    """A package of another model's classes (its weights are never reached)."""
    from dlstudio_qgis.engine.train.package_write import write_dlpk

    emd = {
        "Framework": "PyTorch",
        "ModelConfiguration": "DLStudio",
        "ModelType": "ImageClassification",
        "ModelFile": "other.pth",
        "Classes": [{"Value": i + 1, "Name": n} for i, n in enumerate(names)],
        "ModelParameters": {"model_type": model_type, "backbone": "RESNET18"},
    }
    path = tmp_path / "other" / "other.dlpk"
    path.parent.mkdir()
    write_dlpk(path, emd=emd, state_dict={"w": torch.zeros(1)}, history=[], metrics={})
    return str(path)


def test_pretrained_model_of_other_classes(tmp_path, exports):
    package = _other_package(tmp_path)
    job = train_job(tmp_path, exports["Classified_Tiles"], pretrained_model=package)
    _refused(
        tmp_path,
        job,
        r"has 3 classes \(tree, water, field\) and the training data 2 \(building, road\), "
        "with no class name in common",
    )


def test_pretrained_model_of_another_type(tmp_path, exports):
    package = _other_package(tmp_path, "DEEPLAB", ("building", "road"))
    job = train_job(tmp_path, exports["Classified_Tiles"], pretrained_model=package)
    _refused(tmp_path, job, "is a DEEPLAB model on RESNET18; this job trains UNET on RESNET18")


def test_gpu_asked_where_there_is_none(tmp_path, exports, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    job = train_job(tmp_path, exports["Classified_Tiles"], processor_type="GPU")
    _refused(tmp_path, job, "PROCESSOR_TYPE is GPU but .* sees no CUDA GPU")


def test_bad_job_fields(tmp_path, exports):
    job = train_job(tmp_path, exports["Classified_Tiles"], arguments="grids=[4]")
    _refused(tmp_path, job, "UNET does not take the argument")
