"""PRETRAINED_MODEL's classes against the data's (engine/train/classmap.py, standard library)."""

from __future__ import annotations

import pytest

from dlstudio_qgis.engine.protocol import InputError
from dlstudio_qgis.engine.train.classmap import (
    check_pretrained,
    index_mapping,
    match_classes,
    output_names,
)


def test_names_match_whatever_their_order_and_case():
    match = match_classes(["building", "Road "], ["road", "tree", "BUILDING"], "p.dlpk")
    assert match.pairs == {"road": "Road ", "BUILDING": "building"}
    assert match.new == ["tree"] and not match.by_position
    assert match.describe("p.dlpk") == "classes matched by name: road, BUILDING; new: tree"
    outputs_old = ["__background__", "building", "Road "]
    outputs_new = ["__background__", "road", "tree", "BUILDING"]
    assert index_mapping(outputs_old, outputs_new, match) == {0: 0, 1: 2, 3: 1}


def test_renamed_classes_of_the_same_count_match_by_position():
    match = match_classes(["building", "road"], ["Gebäude", "Straße"], "p.dlpk")
    assert match.by_position and match.pairs == {"Gebäude": "building", "Straße": "road"}
    assert match.describe("p.dlpk") == (
        "no class names in common, so classes matched by position: building -> Gebäude, "
        "road -> Straße"
    )
    # YOLO and the classifier have no background output
    assert index_mapping(["building", "road"], ["Gebäude", "Straße"], match) == {0: 0, 1: 1}


def test_other_classes_of_another_count_are_refused():
    with pytest.raises(InputError) as err:
        match_classes(["tree", "water", "field"], ["building", "road"], "/m/old.dlpk")
    assert str(err.value) == (
        "PRETRAINED_MODEL '/m/old.dlpk' has 3 classes (tree, water, field) and the training "
        "data 2 (building, road), with no class name in common, so its class layers cannot be "
        "used. Give the classes the pretrained model's names, export the same classes, or "
        "leave PRETRAINED_MODEL empty."
    )


def test_model_type_and_backbone_must_be_the_jobs():
    emd = {"ModelParameters": {"model_type": "deeplab", "backbone": "resnet18"}, "Classes": []}
    with pytest.raises(InputError, match="is a DEEPLAB model on RESNET18; this job trains UNET"):
        check_pretrained(emd, "UNET", "RESNET18", ["building"], "p.dlpk")
    emd["ModelParameters"]["model_type"] = "UNET"
    emd["Classes"] = [{"Value": 1, "Name": "building"}]
    assert check_pretrained(emd, "UNET", "RESNET18", ["building"], "p.dlpk").pairs == {
        "building": "building"
    }


def test_output_names_of_a_package_without_them():
    classes = [{"Value": 1, "Name": "a"}, {"Value": 2, "ClassName": "b"}]
    for model_type, first in (
        ("UNET", ["background"]),
        ("SSD", ["__background__"]),
        ("YOLOV3", []),
    ):
        emd = {"ModelParameters": {"model_type": model_type}, "Classes": classes}
        assert output_names(emd) == [*first, "a", "b"]
    emd["ModelParameters"]["output_classes"] = ["x", "y"]
    assert output_names(emd) == ["x", "y"]
