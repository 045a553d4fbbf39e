"""The training loop in this process, on tensors (no rasterio): a tiny U-Net overfits, early
stopping stops, the learning-rate range test picks a value in its ramp and restores the weights,
checkpoints round-trip and a PRETRAINED_MODEL's head rows follow the classes by name."""

from __future__ import annotations

import io
import json

import pytest
import torch
from torch import nn

from dlstudio_qgis.engine.protocol import InputError, Reporter, parse_line
from dlstudio_qgis.engine.train.checkpoint import Checkpoints, _map_rows, load_pretrained
from dlstudio_qgis.engine.train.dataset import DataSpec
from dlstudio_qgis.engine.train.lr_finder import find_lr
from dlstudio_qgis.engine.train.package_write import write_dlpk
from dlstudio_qgis.engine.train.tasks import SegmentationTask
from dlstudio_qgis.engine.train.trainer import EarlyStopping, Trainer


def seg_spec(names=("building", "road"), size=32, **kw) -> DataSpec:
    classes = [{"Value": i + 1, "Name": n, "Color": [0, 0, 0]} for i, n in enumerate(names)]
    return DataSpec(
        "semantic_segmentation",
        "Classified_Tiles",
        classes,
        size,
        (size, size),
        3,
        [0.0] * 3,
        [1.0] * 3,
        [0, 1, 2],
        **kw,
    )


def messages(stream: io.StringIO) -> list[dict]:
    return [parse_line(line) for line in stream.getvalue().splitlines()]


class Scripted:
    """A linear-regression task whose validation loss follows a script, one value per epoch."""

    def __init__(self, valid_losses=()) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(4, 1)
        self.script, self.passes = list(valid_losses), -1
        x = torch.randn(256, 4)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])[:, None] + 2.0
        self.batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]

    def transfer(self, batch):
        return batch

    def training_step(self, batch):
        x, y = batch
        return ((self.model(x) - y) ** 2).mean(), {}

    def configure_metrics(self):
        self.passes += 1

    def validation_step(self, batch):
        return {"loss": self.script[self.passes]}

    def compute_metrics(self):
        return {}


def test_unet_overfits_two_chips(one_thread):
    torch.manual_seed(0)
    task = SegmentationTask(seg_spec(), "UNET", "RESNET18", {}, pretrained=None)
    images = torch.randn(2, 3, 32, 32)
    masks = (images[:, 0] > 0).long() + (images[:, 1] > 1).long()  # learnable from the pixels
    batches = [(images, masks)]
    stream = io.StringIO()
    trainer = Trainer(
        task,
        batches,
        batches,
        lr=1e-2,
        max_epochs=20,
        reporter=Reporter(stream),
        device=torch.device("cpu"),
        early_stopping=EarlyStopping(enabled=False),
    )
    fit = trainer.fit()
    losses = [r["train_loss"] for r in fit.history]
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0], losses
    assert fit.history[-1]["metrics"]["pixel_accuracy"] > 0.8
    epochs = [m["epoch"] for m in messages(stream) if m["type"] == "log" and "epoch" in m]
    assert [e["epoch"] for e in epochs] == list(range(1, 21))


def test_early_stopping_stops_after_patience_and_keeps_the_best():
    task = Scripted([1.0, 0.8, 0.9, 0.85, 0.95, 0.5])
    stream = io.StringIO()
    trainer = Trainer(
        task,
        task.batches,
        task.batches[:1],
        lr=1e-2,
        max_epochs=6,
        reporter=Reporter(stream),
        device=torch.device("cpu"),
        early_stopping=EarlyStopping(patience=3),
    )
    fit = trainer.fit()
    assert fit.stopped_early and fit.epochs_run == 5 and fit.best_epoch == 2
    assert any("Early stopping after epoch 5" in m.get("message", "") for m in messages(stream))
    # disabled: runs every epoch, still reports the best
    task = Scripted([1.0, 0.8, 0.9, 0.85, 0.95, 0.5])
    fit = Trainer(
        task,
        task.batches,
        task.batches[:1],
        lr=1e-2,
        max_epochs=6,
        reporter=Reporter(io.StringIO()),
        device=torch.device("cpu"),
        early_stopping=EarlyStopping(patience=3, enabled=False),
    ).fit()
    assert not fit.stopped_early and fit.epochs_run == 6 and fit.best_epoch == 6


@pytest.mark.parametrize("scaled", [False, True])
def test_lr_finder_picks_a_rate_in_the_ramp_and_restores_the_weights(scaled):
    """Also with loss scaling, as on CUDA with float16 (GradScaler runs on the CPU too)."""
    task = Scripted()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    logs = []
    scaler = torch.amp.GradScaler("cpu") if scaled else None
    found = find_lr(
        task, task.batches, start=1e-5, end=10.0, steps=60, log=logs.append, scaler=scaler
    )
    if scaled:
        assert scaler.get_scale() > 1  # it did scale the loss
    assert 1e-5 <= found.lr <= 10.0 and not found.fallback
    assert found.lrs[0] == pytest.approx(1e-5) and len(found.lrs) == len(found.losses) <= 60
    assert min(found.losses) < found.losses[0]  # the loss fell somewhere on the ramp
    after = task.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "Learning rate range test" in logs[0]


def test_checkpoint_round_trip_and_another_jobs_checkpoint(tmp_path):
    task = Scripted([1.0, 0.9])
    trainer = Trainer(
        task,
        task.batches,
        task.batches[:1],
        lr=1e-2,
        max_epochs=2,
        reporter=Reporter(io.StringIO()),
        device=torch.device("cpu"),
        checkpoints=Checkpoints(tmp_path, "hash-a"),
    )
    trainer.fit()
    last, best = Checkpoints(tmp_path, "hash-a").load()
    assert last["epoch"] == 2 and len(last["history"]) == 2 and last["lr"] == 1e-2
    assert best is not None and set(best) == set(task.model.state_dict())
    assert last["scheduler"]["last_epoch"] == 2 * len(task.batches)
    warnings = []
    assert (
        Checkpoints(tmp_path, "hash-b", lambda m, level="info": warnings.append(m)).load() is None
    )
    assert "of another job" in warnings[0]


def test_map_rows_for_each_head_layout():
    mapping = {0: 0, 1: 2}  # new class 0 <- old 0, new 1 <- old 2, new 2 fresh
    old = torch.arange(3 * (5 + 3), dtype=torch.float32)[:, None]  # YOLO: 3 x (5 + 3 classes)
    new = torch.full((3 * (5 + 3),), -1.0)[:, None]
    out = _map_rows("head.0.weight", old, new, 3 * (5 + 4), mapping, 3, 3)
    assert out[:8, 0].tolist() == [0, 1, 2, 3, 4, 5, 7, -1]
    old = torch.arange(4 * 3, dtype=torch.float32)[:, None]  # Faster R-CNN's bbox_pred
    out = _map_rows(
        "roi_heads.box_predictor.bbox_pred.weight",
        old,
        torch.full((4 * 3,), -1.0)[:, None],
        4 * 4,
        mapping,
        3,
        3,
    )
    assert out[:, 0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1]


def _package(tmp_path, task, model_type="UNET") -> str:
    emd = {
        "Framework": "PyTorch",
        "ModelConfiguration": "DLStudio",
        "ModelType": "Pixel",
        "ModelFile": "x.pth",
        "Classes": task.spec.classes,
        "ModelParameters": {
            "model_type": model_type,
            "backbone": "RESNET18",
            "output_classes": task.output_names,
        },
    }
    path = tmp_path / f"{model_type}.dlpk"
    write_dlpk(path, emd=emd, state_dict=task.model.state_dict(), history=[], metrics={})
    return str(path)


def test_pretrained_model_maps_classes_by_name(tmp_path, one_thread):
    old = SegmentationTask(seg_spec(("building", "road")), "UNET", "RESNET18", {}, pretrained=None)
    new = SegmentationTask(seg_spec(("road", "tree")), "UNET", "RESNET18", {}, pretrained=None)
    head = "decoder.classifier.weight"
    fresh = new.model.state_dict()[head].clone()
    logs = []
    info = load_pretrained(new, _package(tmp_path, old), logs.append)
    w_old, w_new = old.model.state_dict()[head], new.model.state_dict()[head]
    assert torch.equal(w_new[0], w_old[0]) and torch.equal(w_new[1], w_old[2])  # bg, road
    assert torch.equal(w_new[2], fresh[2])  # tree: new
    body = "backbone.stages.0.0.weight"
    assert torch.equal(new.model.state_dict()[body], old.model.state_dict()[body])
    assert info["matched"] == ["road"] and "new: tree" in logs[0]
    with pytest.raises(InputError, match="is a DEEPLAB model on RESNET18; this job trains UNET"):
        load_pretrained(new, _package(tmp_path, old, "DEEPLAB"), logs.append)


def test_renamed_classes_load_by_position(tmp_path, one_thread):
    old = SegmentationTask(seg_spec(("building", "road")), "UNET", "RESNET18", {}, pretrained=None)
    new = SegmentationTask(seg_spec(("Gebäude", "Straße")), "UNET", "RESNET18", {}, pretrained=None)
    logs = []
    info = load_pretrained(new, _package(tmp_path, old), logs.append)
    head = "decoder.classifier.weight"
    assert torch.equal(new.model.state_dict()[head], old.model.state_dict()[head])
    assert info["matched"] == ["Gebäude", "Straße"]
    assert "matched by position: building -> Gebäude, road -> Straße" in logs[0]


def test_pretrained_model_may_be_a_bare_emd(tmp_path, one_thread):
    """The dialog offers .emd files too: a model definition with its weights beside it."""
    import zipfile

    old = SegmentationTask(seg_spec(("building", "road")), "UNET", "RESNET18", {}, pretrained=None)
    new = SegmentationTask(seg_spec(("building", "road")), "UNET", "RESNET18", {}, pretrained=None)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(_package(tmp_path, old)) as zf:
        zf.extractall(folder)
    emd = next(folder.glob("*.emd"))
    info = load_pretrained(new, str(emd), lambda _m: None)
    assert info["matched"] == ["building", "road"]
    head = "decoder.classifier.weight"
    assert torch.equal(new.model.state_dict()[head], old.model.state_dict()[head])


def test_segmentation_loss_options_and_metrics(one_thread):
    task = SegmentationTask(
        seg_spec(),
        "UNET",
        "RESNET18",
        {"class_balancing": True, "focal_loss": "true", "mixup": True},
        pretrained=None,
        pixel_counts=[900, 90, 10],
    )
    assert task.focal and task.mixup and task.weight[2] > task.weight[1] > task.weight[0]
    images, masks = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    masks[0, :4] = -100  # ignored pixels
    loss, _ = task.training_step((images, masks))
    assert torch.isfinite(loss)
    # metrics on a known prediction: a model that always answers class 1
    task.model = lambda x: torch.tensor([0.0, 5.0, 0.0])[None, :, None, None].expand(
        len(x), 3, *x.shape[-2:]
    )
    task.configure_metrics()
    target = torch.tensor([[[1, 1], [0, 2]]])
    task.validation_step((torch.zeros(1, 3, 2, 2), target))
    m = task.compute_metrics()
    assert m["pixel_accuracy"] == 0.5 and m["iou_per_class"]["building"] == 0.5
    assert m["iou_per_class"]["road"] == 0.0 and m["miou"] == 0.25
    json.dumps(m)
