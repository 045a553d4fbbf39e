"""The support matrix, check_pair's messages, the model arguments and the built model's info."""

from __future__ import annotations

import pytest

from dlstudio_qgis.engine.models import (
    BACKBONES,
    METADATA_FORMATS,
    MODEL_TYPES,
    SUPPORTED,
    TASKS,
    ModelArgumentError,
    UnsupportedModelError,
    backbone_of,
    build_model,
    check_pair,
    default_backbone,
)
from dlstudio_qgis.engine.models import arguments as args
from dlstudio_qgis.engine.models.backbones import Backbone

ISSUE_TYPES = "SSD UNET FEATURE_CLASSIFIER PSPNET RETINANET MASKRCNN YOLOV3 DEEPLAB FASTERRCNN"
ISSUE_BACKBONES = (
    "DARKNET53 DENSENET121 DENSENET161 DENSENET169 DENSENET201 MOBILENET_V2 RESNET18 RESNET34 "
    "RESNET50 RESNET101 RESNET152 VGG11 VGG11_BN VGG13 VGG13_BN VGG16 VGG16_BN VGG19 VGG19_BN"
)
EXPORT_FORMATS = {
    "PASCAL_VOC_rectangles",
    "KITTI_rectangles",
    "Classified_Tiles",
    "RCNN_Masks",
    "Labeled_Tiles",
    "MultiLabeled_Tiles",
}


def test_names_are_the_issue_s():
    assert set(MODEL_TYPES) == set(ISSUE_TYPES.split())
    assert list(BACKBONES) == ISSUE_BACKBONES.split()


def test_support_matrix_is_complete():
    assert set(SUPPORTED) == set(MODEL_TYPES)
    used = {b for fits in SUPPORTED.values() for b in fits}
    assert used == set(BACKBONES)  # every backbone is usable with some model type
    for model_type, fits in SUPPORTED.items():
        assert fits and set(fits) <= set(BACKBONES) and len(set(fits)) == len(fits)
        if model_type == "YOLOV3":
            assert fits == ("DARKNET53",)
        else:
            assert set(fits) == set(BACKBONES) - {"DARKNET53"}, model_type


def test_tasks_and_formats_cover_every_type():
    assert set(TASKS) == set(METADATA_FORMATS) == set(MODEL_TYPES)
    assert {TASKS[t] for t in ("SSD", "RETINANET", "YOLOV3", "FASTERRCNN")} == {"detection"}
    assert TASKS["MASKRCNN"] == "instance_segmentation"
    assert METADATA_FORMATS["MASKRCNN"] == ("RCNN_Masks",)
    assert METADATA_FORMATS["UNET"] == METADATA_FORMATS["DEEPLAB"] == ("Classified_Tiles",)
    assert set(METADATA_FORMATS["FEATURE_CLASSIFIER"]) == {"Labeled_Tiles", "MultiLabeled_Tiles"}
    assert {"PASCAL_VOC_rectangles", "KITTI_rectangles"} == set(METADATA_FORMATS["SSD"])
    assert {f for formats in METADATA_FORMATS.values() for f in formats} == EXPORT_FORMATS


def test_check_pair_normalises_and_defaults():
    assert check_pair("unet", " resnet50 ") == ("UNET", "RESNET50")
    assert check_pair("FASTERRCNN", None) == ("FASTERRCNN", "RESNET34")
    assert check_pair("yolov3", "") == ("YOLOV3", "DARKNET53")
    assert default_backbone("YOLOV3") == "DARKNET53"
    assert default_backbone("SSD") == "RESNET34"


def test_unsupported_pair_lists_the_backbones_that_fit():
    with pytest.raises(UnsupportedModelError) as yolo:
        check_pair("YOLOV3", "RESNET34")
    assert "YOLOV3" in str(yolo.value) and "RESNET34" in str(yolo.value)
    assert "backbones that fit YOLOV3: DARKNET53" in str(yolo.value)
    with pytest.raises(UnsupportedModelError) as unet:
        check_pair("UNET", "DARKNET53")
    listed = str(unet.value).split("backbones that fit UNET: ")[1].split(", ")
    assert listed == list(SUPPORTED["UNET"])
    assert isinstance(unet.value, ValueError)


def test_unknown_names():
    with pytest.raises(UnsupportedModelError, match="Unknown model type 'MARKRCNN'.*MASKRCNN"):
        check_pair("MARKRCNN", "RESNET34")
    with pytest.raises(UnsupportedModelError, match="Unknown backbone 'RESNET35'.*RESNET34"):
        check_pair("UNET", "RESNET35")


def test_build_model_rejects_bad_requests_before_building():
    with pytest.raises(UnsupportedModelError, match="DARKNET53"):
        build_model("YOLOV3", "VGG16", 2, 3, 64)
    with pytest.raises(ValueError, match="chip_size"):
        build_model("UNET", "RESNET18", 2, 3, 16)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("UNET", "RESNET18", 0, 3, 64)
    with pytest.raises(ModelArgumentError, match="ratios"):
        build_model("SSD", "RESNET18", 2, 3, 64, {"ratios": [1.0, 0.5, 2.0]})


def test_model_arguments_read_from_text_and_defaults():
    ssd = args.ssd_config({"GRIDS": "[4, 2]", "zooms": "1.5", "ratios": "[1.0, 0.5]"}, 64)
    assert ssd == {"grids": [4, 2], "zooms": [1.5], "ratios": [(1.0, 0.5)]}
    assert args.ssd_config(None, 64) == {"grids": [4, 2, 1], "zooms": [1.0], "ratios": [(1, 1)]}
    assert args.ssd_config({}, 256)["grids"] == [16, 8, 4, 2, 1]
    assert args.pspnet_config({"use_unet": "False", "pyramid_sizes": "[1, 3]"}) == {
        "pyramid_sizes": [1, 3],
        "use_unet": False,
    }
    assert args.pspnet_config(None) == {"pyramid_sizes": [1, 2, 3, 6], "use_unet": True}
    assert args.retinanet_config({}) == {"scales": [1, 0.8, 0.63], "ratios": [0.5, 1, 2]}
    for bad in ({"zooms": "-1"}, {"grids": "[0]"}, {"ratios": "[[1, 1, 1]]"}, {"zooms": "x"}):
        with pytest.raises(ModelArgumentError):
            args.ssd_config(bad, 64)
    with pytest.raises(ModelArgumentError, match="USE_UNET"):
        args.pspnet_config({"USE_UNET": "maybe"})


def test_model_info_records_what_was_built():
    model = build_model(
        "retinanet", "resnet18", 3, 5, 96, {"SCALES": "[1, 0.5]"}, pretrained=None, log=print
    )
    info = model.dls_info
    assert (info.model_type, info.backbone, info.task) == ("RETINANET", "RESNET18", "detection")
    assert (info.num_classes, info.in_channels, info.chip_size) == (3, 5, 96)
    assert info.arguments == {"scales": [1.0, 0.5], "ratios": [0.5, 1.0, 2.0]}
    assert info.weights is None and not info.pretrained
    assert isinstance(backbone_of(model), Backbone)
    assert info.as_dict()["backbone_path"] == "backbone.body"
