"""Helpers for the model tests: synthetic batches, one training step, output checks."""

from __future__ import annotations

import math

import torch

from dlstudio_qgis.engine.models import TASKS, build_model

BATCH = 2


def synthetic_targets(num_classes: int, chip: int, masks: bool, seed: int = 0) -> list[dict]:
    """Two boxes per image (one small, one large), labels 1..num_classes."""
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(BATCH):
        boxes = []
        for size in (chip // 8, chip // 3):
            x, y = torch.randint(0, chip - size, (2,), generator=g).tolist()
            boxes.append([x, y, x + size, y + size])
        boxes = torch.tensor(boxes, dtype=torch.float32)
        target = {
            "boxes": boxes,
            "labels": torch.randint(1, num_classes + 1, (len(boxes),), generator=g),
        }
        if masks:
            m = torch.zeros((len(boxes), chip, chip), dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                m[k, y1:y2, x1:x2] = 1
            target["masks"] = m
        targets.append(target)
    return targets


def train_step(model, task: str, num_classes: int, in_channels: int, chip: int) -> float:
    """Forward in train mode, backward, one SGD step; returns the (finite) loss."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn((BATCH, in_channels, chip, chip), generator=g)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3)
    optimizer.zero_grad()
    if task in ("detection", "instance_segmentation"):
        targets = synthetic_targets(num_classes, chip, task == "instance_segmentation")
        losses = model(list(x), targets)
        assert isinstance(losses, dict) and losses, losses
        loss = sum(losses.values())
    else:
        out = model(x)
        if task == "classification":
            assert out.shape == (BATCH, num_classes)
            loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, num_classes - 1]))
        else:
            assert out.shape == (BATCH, num_classes, chip, chip)
            labels = torch.randint(0, num_classes, (BATCH, chip, chip), generator=g)
            loss = torch.nn.functional.cross_entropy(out, labels)
    assert math.isfinite(loss.item()), loss
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    optimizer.step()
    return loss.item()


def check_eval(model, task: str, num_classes: int, in_channels: int, chip: int) -> None:
    """An eval forward has the task's output structure."""
    model.eval()
    x = torch.randn((BATCH, in_channels, chip, chip))
    with torch.no_grad():
        if task in ("detection", "instance_segmentation"):
            out = model(list(x))
            assert isinstance(out, list) and len(out) == BATCH
            for det in out:
                n = det["boxes"].shape[0]
                assert det["boxes"].shape == (n, 4)
                assert det["labels"].shape == (n,) and det["scores"].shape == (n,)
                if n:
                    assert det["labels"].min() >= 1 and det["labels"].max() <= num_classes
                    assert det["boxes"].min() >= 0 and det["boxes"].max() <= chip
                if task == "instance_segmentation":
                    assert det["masks"].shape == (n, 1, chip, chip)
        else:
            out = model(x)
            shape = (BATCH, num_classes) if task == "classification" else None
            shape = shape or (BATCH, num_classes, chip, chip)
            assert out.shape == shape and torch.isfinite(out).all()


def lighten(model) -> None:
    """Test speed only: fewer sampled RoIs and detections for the R-CNNs (same code paths)."""
    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        heads.fg_bg_sampler.batch_size_per_image = 64
        heads.detections_per_img = 10
        model.rpn._post_nms_top_n = {"training": 200, "testing": 100}


def build(
    model_type: str,
    backbone: str,
    in_channels: int = 4,
    num_classes: int = 2,
    chip: int = 64,
    arguments: dict | None = None,
):
    """A model with random weights (seeded), lightened for the tests."""
    torch.manual_seed(0)
    model = build_model(
        model_type,
        backbone,
        num_classes,
        in_channels,
        chip,
        arguments,
        pretrained=None,
        log=lambda message: None,
    )
    lighten(model)
    return model


def exercise(
    model_type: str,
    backbone: str,
    in_channels: int = 4,
    num_classes: int = 2,
    chip: int = 64,
    arguments: dict | None = None,
) -> float:
    """Build with no weights, one training step, one eval forward; returns the loss."""
    model = build(model_type, backbone, in_channels, num_classes, chip, arguments)
    task = TASKS[model_type]
    loss = train_step(model, task, num_classes, in_channels, chip)
    check_eval(model, task, num_classes, in_channels, chip)
    return loss
