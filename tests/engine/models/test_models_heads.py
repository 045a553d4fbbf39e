"""What each head promises beyond the common interface: anchors from the model arguments, output
sizes, chips that are not multiples of 32, batches of one, no resizing or renormalisation."""

from __future__ import annotations

import pytest
import torch
from model_support import build, exercise, train_step
from torchvision.ops import box_iou

from dlstudio_qgis.engine.models import backbone_of
from dlstudio_qgis.engine.models.ssd import GridAnchors
from dlstudio_qgis.engine.models.yolo import COCO_ANCHORS


def test_ssd_grid_zoom_ratio_anchors():
    anchors = GridAnchors([4, 2, 1], zooms=[1.0, 2.0], ratios=[(1.0, 1.0), (1.0, 0.5)])
    assert anchors.num_anchors_per_location() == [4, 4, 4]
    images = type("ImageList", (), {"tensors": torch.zeros(1, 3, 64, 64), "image_sizes": [0]})
    maps = [torch.zeros(1, 8, g, g) for g in (4, 2, 1)]
    (boxes,) = anchors(images, maps)
    assert boxes.shape == ((16 + 4 + 1) * 4, 4)
    # first cell of the 4x4 grid (16 px): zoom 1 square, zoom 1 half as wide, zoom 2 square...
    assert boxes[0].tolist() == [0.0, 0.0, 16.0, 16.0]
    assert boxes[1].tolist() == [4.0, 0.0, 12.0, 16.0]
    assert boxes[2].tolist() == [-8.0, -8.0, 24.0, 24.0]
    assert boxes[4].tolist() == [16.0, 0.0, 32.0, 16.0]  # next cell to the right
    assert boxes[-4].tolist() == [0.0, 0.0, 64.0, 64.0]  # the 1x1 grid's square


def test_ssd_arguments_as_text_shape_the_model():
    arguments = {"grids": "[4, 2]", "zooms": "[0.7, 1.0]", "ratios": "[[1, 1], [1, 0.5], [0.5, 1]]"}
    model = build("SSD", "RESNET18", arguments=arguments)
    assert model.anchor_generator.num_anchors_per_location() == [6, 6]
    assert len(model.head.classification_head.module_list) == 2
    assert model.dls_info.arguments["grids"] == [4, 2]
    exercise("SSD", "RESNET18", arguments=arguments)


def test_retinanet_scales_and_ratios():
    model = build("RETINANET", "RESNET18", arguments={"SCALES": [1, 0.5], "RATIOS": [1]})
    assert model.anchor_generator.num_anchors_per_location() == [2] * 5
    assert model.anchor_generator.sizes[0] == (32.0, 16.0)  # 4 x stride 8, times each scale
    assert model.anchor_generator.aspect_ratios[0] == (1.0,)


def test_pspnet_without_unet_and_custom_pyramid():
    model = build("PSPNET", "RESNET18", arguments={"USE_UNET": False, "PYRAMID_SIZES": [1, 2]})
    assert not hasattr(model, "decoder") and len(model.ppm.branches) == 2
    assert backbone_of(model).strides[-1] == 8
    exercise("PSPNET", "RESNET18", arguments={"USE_UNET": "false", "PYRAMID_SIZES": "[1, 2]"})


@pytest.mark.parametrize("model_type", ["UNET", "PSPNET", "DEEPLAB"])
def test_segmentation_any_chip_size_and_a_batch_of_one(model_type):
    model = build(model_type, "RESNET18", in_channels=3, num_classes=3, chip=72)
    model.train()
    out = model(torch.randn(1, 3, 72, 72))  # batch norm of pooled 1x1 maps would fail here
    assert out.shape == (1, 3, 72, 72)
    out.mean().backward()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 80, 96)).shape == (2, 3, 80, 96)


def test_deeplab_is_torchvision_s_head_at_output_stride_8():
    model = build("DEEPLAB", "RESNET50")
    assert type(model.classifier).__name__ == "DeepLabHead"
    assert backbone_of(model).strides == [2, 4, 8, 8, 8]


@pytest.mark.parametrize("model_type", ["FASTERRCNN", "RETINANET", "SSD", "MASKRCNN"])
def test_torchvision_detectors_neither_resize_nor_renormalise(model_type):
    model = build(model_type, "MOBILENET_V2", in_channels=5, chip=96)
    x = torch.randn(2, 5, 96, 96)
    images, _ = model.transform(list(x))
    assert torch.allclose(images.tensors[..., :96, :96], x)
    assert images.image_sizes == [(96, 96), (96, 96)]


def test_yolo_anchors_follow_the_chip_size():
    assert build("YOLOV3", "DARKNET53", chip=416).anchors.tolist() == [
        [list(map(float, a)) for a in scale] for scale in COCO_ANCHORS
    ]
    small = build("YOLOV3", "DARKNET53", chip=64).anchors
    assert torch.allclose(small[0, 0], torch.tensor([10.0, 13.0]) * 64 / 416)


def test_yolo_images_of_other_sizes_and_no_boxes():
    model = build("YOLOV3", "DARKNET53", in_channels=3, chip=64)
    model.train()
    images = [torch.randn(3, 64, 64), torch.randn(3, 72, 50)]
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    box = {"boxes": torch.tensor([[5.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([2])}
    losses = model(images, [empty, box])
    assert set(losses) == {"loss_box", "loss_obj", "loss_cls"}
    sum(losses.values()).backward()
    losses = model(images, [empty, empty])
    assert losses["loss_box"] == 0 and losses["loss_obj"] > 0
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert out[1]["boxes"].shape[1] == 4
    if len(out[1]["boxes"]):
        assert out[1]["boxes"][:, 2].max() <= 50 and out[1]["boxes"][:, 3].max() <= 72
    with pytest.raises(ValueError, match="targets"):
        model.train()(images)


def test_a_detector_trains_on_a_chip_with_no_objects():
    model = build("FASTERRCNN", "RESNET18", in_channels=3)
    model.train()
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    losses = model([torch.randn(3, 64, 64)], [empty])
    assert torch.isfinite(sum(losses.values()))


@pytest.mark.slow
@pytest.mark.parametrize(("model_type", "backbone"), [("YOLOV3", "DARKNET53"), ("SSD", "RESNET18")])
def test_custom_detectors_learn_two_boxes(model_type, backbone):
    """A few steps on one batch: the loss falls and eval finds the boxes (encoding matches
    decoding)."""
    model = build(model_type, backbone, in_channels=3)
    x = torch.zeros(2, 3, 64, 64)
    x[0, :, 10:30, 20:44] = 2.0
    x[1, :, 40:60, 8:20] = -2.0
    targets = [
        {"boxes": torch.tensor([[20.0, 10.0, 44.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[8.0, 40.0, 20.0, 60.0]]), "labels": torch.tensor([2])},
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    model.train()
    for _ in range(25):
        optimizer.zero_grad()
        loss = sum(model(list(x), targets).values())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3
    model.eval()
    with torch.no_grad():
        found = model(list(x))
    for det, target in zip(found, targets, strict=True):
        assert len(det["boxes"]) and det["labels"][0] == target["labels"][0]
        assert box_iou(det["boxes"][:1], target["boxes"]).item() > 0.5


def test_train_step_helper_rejects_nothing_unusual():
    """The shared helper itself: a classifier step changes the weights."""
    model = build("FEATURE_CLASSIFIER", "RESNET18")
    before = model.head[-1].weight.clone()
    train_step(model, "classification", 2, 4, 64)
    assert not torch.equal(before, model.head[-1].weight)
