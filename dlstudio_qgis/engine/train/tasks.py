"""What training does for each task, in the style of TorchGeo's trainers: a :class:`Task` builds
its model, loss and metrics (``configure_model``, ``configure_loss``, ``configure_metrics``) and
turns a batch into a loss (``training_step``) or into a loss and metric updates
(``validation_step``); :class:`Trainer` runs the loop around it.

- :class:`DetectionTask` (SSD, RETINANET, YOLOV3, FASTERRCNN, MASKRCNN): the model's own
  losses; mAP at IoU 0.5 (VOC all-point AP per class, averaged over the classes present).
- :class:`SegmentationTask` (UNET, PSPNET, DEEPLAB): cross-entropy over background + classes
  (CLASS_BALANCING weights inverse to pixel frequency, FOCAL_LOSS, MIXUP, IGNORE_CLASSES);
  mIoU over the classes, IoU per class, pixel accuracy.
- :class:`ClassificationTask` (FEATURE_CLASSIFIER): cross-entropy, or per-class binary
  cross-entropy for MultiLabeled_Tiles; accuracy and macro F1.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from ..models import METADATA_FORMATS, TASKS, backbone_of, build_model
from ..models.arguments import get as get_argument
from ..protocol import InputError
from .dataset import IGNORE_INDEX, DataSpec


class IncompatibleDataError(InputError):
    """The export's metadata format is not one the model type trains from."""


def check_compatible(model_type: str, metadata_format: str) -> None:
    fits = METADATA_FORMATS[model_type]
    if metadata_format not in fits:
        raise IncompatibleDataError(
            f"{model_type} trains from {' or '.join(fits)}; this export is {metadata_format}: "
            f"export again with METADATA_FORMAT={fits[0]}, or choose a model type for "
            f"{metadata_format} data."
        )


def _flag(arguments: dict, name: str) -> bool:
    value = get_argument(arguments, name, False)
    return value is True or str(value).lower() in ("true", "1", "yes")


class Task:
    """A model and how it learns; subclasses fill in the hooks."""

    monitor = "valid_loss"  # what early stopping and the best epoch look at (lower is better)

    def __init__(
        self,
        spec: DataSpec,
        model_type: str,
        backbone: str,
        arguments: dict,
        pretrained="auto",
        log=None,
        pixel_counts=None,
    ) -> None:
        self.spec, self.model_type, self.backbone = spec, model_type, backbone
        self.arguments = dict(arguments)
        self.pretrained, self.log = pretrained, log
        self.pixel_counts = pixel_counts
        self.device = torch.device("cpu")
        self.model = self.configure_model()
        self.criterion = self.configure_loss()
        self.configure_metrics()

    # --- hooks ------------------------------------------------------------------------------

    @property
    def num_outputs(self) -> int:
        """The num_classes the model is built with."""
        return len(self.spec.classes)

    @property
    def output_names(self) -> list[str]:
        """The name of each output class index (for mapping a pretrained head by name)."""
        return self.spec.names

    def configure_model(self) -> nn.Module:
        return self.build(self.num_outputs, self.pretrained)

    def build(self, num_outputs: int, pretrained=None) -> nn.Module:
        """A model of this task's type with `num_outputs` classes."""
        model_args = {k: v for k, v in self.arguments.items() if k != "chip_size"}
        return build_model(
            self.model_type,
            self.backbone,
            num_outputs,
            self.spec.in_channels,
            self.spec.chip_size,
            model_args,
            pretrained=pretrained,
            log=self.log,
        )

    def configure_loss(self):
        return None

    def configure_metrics(self) -> None:
        """Reset the metric state (called before each validation pass)."""

    def training_step(self, batch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def validation_step(self, batch) -> dict:
        raise NotImplementedError

    def compute_metrics(self) -> dict:
        return {}

    def predict(self, images: torch.Tensor) -> list:
        """Eval-mode predictions per image (for the preview), on the CPU."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------

    def to(self, device: torch.device) -> Task:
        self.device = torch.device(device)
        self.model.to(self.device)
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)
        return self

    def transfer(self, batch):
        images, targets = batch
        images = images.to(self.device, non_blocking=True)
        if isinstance(targets, list):
            targets = [
                {k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets
            ]
        else:
            targets = targets.to(self.device, non_blocking=True)
        return images, targets

    def freeze_backbone(self) -> int:
        """Freeze the backbone's weights (batch norms keep learning); the number frozen."""
        frozen = 0
        for module in backbone_of(self.model).modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            for p in module.parameters(recurse=False):
                if p.requires_grad:
                    p.requires_grad_(False)
                    frozen += p.numel()
        return frozen


@contextlib.contextmanager
def _bn_frozen(model: nn.Module):
    """Train mode (the detectors return losses only there) with batch norms in eval mode."""
    was = model.training
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        model.train(was)


def average_precision(preds: list[dict], gts: list[dict], num_classes: int, iou: float = 0.5):
    """VOC all-point AP at `iou` for labels 1..num_classes: {label: AP, or None without truth}."""
    out = {}
    for c in range(1, num_classes + 1):
        truth = [g["boxes"][g["labels"] == c] for g in gts]
        n_true = sum(len(t) for t in truth)
        if n_true == 0:
            out[c] = None
            continue
        dets = []  # (score, image, box)
        for i, p in enumerate(preds):
            sel = p["labels"] == c
            dets += [
                (float(s), i, b) for s, b in zip(p["scores"][sel], p["boxes"][sel], strict=True)
            ]
        dets.sort(key=lambda d: -d[0])
        used = [torch.zeros(len(t), dtype=torch.bool) for t in truth]
        tp = torch.zeros(len(dets))
        for k, (_, i, box) in enumerate(dets):
            if len(truth[i]) == 0:
                continue
            overlaps = box_iou(box[None].float(), truth[i].float())[0]
            overlaps[used[i]] = -1.0
            j = int(overlaps.argmax())
            if overlaps[j] >= iou:
                used[i][j] = True
                tp[k] = 1.0
        ctp = torch.cumsum(tp, 0)
        recall = torch.cat([torch.zeros(1), ctp / n_true, torch.ones(1)])
        precision = torch.cat(
            [torch.zeros(1), ctp / torch.arange(1, len(dets) + 1), torch.zeros(1)]
        )
        precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
        out[c] = float(((recall[1:] - recall[:-1]) * precision[1:]).sum())
    return out


class DetectionTask(Task):
    @property
    def output_names(self) -> list[str]:
        # torchvision's detectors have the background at 0; YOLOv3 has none
        return (
            self.spec.names if self.model_type == "YOLOV3" else ["__background__", *self.spec.names]
        )

    def configure_metrics(self) -> None:
        self._preds, self._truth = [], []

    def training_step(self, batch):
        images, targets = batch
        losses = self.model(list(images), targets)
        loss = sum(losses.values())
        return loss, {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validation_step(self, batch) -> dict:
        images, targets = batch
        with _bn_frozen(self.model):
            losses = self.model(list(images), targets)
        self.model.eval()
        preds = self.model(list(images))
        for p, t in zip(preds, targets, strict=True):
            self._preds.append(
                {
                    k: p[k].detach().float().cpu() if k != "labels" else p[k].cpu()
                    for k in ("boxes", "scores", "labels")
                }
            )
            self._truth.append({"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu()})
        return {"loss": float(sum(losses.values())), **{k: float(v) for k, v in losses.items()}}

    def compute_metrics(self) -> dict:
        aps = average_precision(self._preds, self._truth, len(self.spec.classes))
        present = [v for v in aps.values() if v is not None]
        return {
            "map": sum(present) / len(present) if present else None,
            "ap_per_class": {self.spec.names[c - 1]: v for c, v in aps.items()},
        }

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list:
        self.model.eval()
        return [
            {k: v.float().cpu() if k != "labels" else v.cpu() for k, v in p.items()}
            for p in self.model(list(images.to(self.device)))
        ]


class SegmentationTask(Task):
    @property
    def num_outputs(self) -> int:
        return len(self.spec.classes) + 1  # index 0: background / no data

    @property
    def output_names(self) -> list[str]:
        return ["background", *self.spec.names]

    def configure_loss(self):
        self.focal = _flag(self.arguments, "focal_loss")
        self.mixup = _flag(self.arguments, "mixup")
        self.weight = None
        if _flag(self.arguments, "class_balancing") and self.pixel_counts is not None:
            counts = torch.as_tensor(self.pixel_counts, dtype=torch.float64).clamp(min=1)
            weight = counts.sum() / counts
            self.weight = (weight / weight.mean()).float()
        return None

    def _loss(self, logits, target):
        weight = self.weight.to(logits.device) if self.weight is not None else None
        ce = F.cross_entropy(
            logits.float(), target, weight=weight, ignore_index=IGNORE_INDEX, reduction="none"
        )
        valid = target != IGNORE_INDEX
        if self.focal:
            plain = F.cross_entropy(
                logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none"
            )
            ce = (1 - torch.exp(-plain)) ** 2 * ce
        return ce[valid].sum() / valid.sum().clamp(min=1)

    def configure_metrics(self) -> None:
        n = self.num_outputs
        self._confusion = torch.zeros((n, n), dtype=torch.int64)

    def training_step(self, batch):
        images, target = batch
        if self.mixup and len(images) > 1:
            lam = float(torch.distributions.Beta(0.4, 0.4).sample())
            lam = max(lam, 1 - lam)
            perm = torch.randperm(len(images), device=images.device)
            logits = self.model(lam * images + (1 - lam) * images[perm])
            loss = lam * self._loss(logits, target) + (1 - lam) * self._loss(logits, target[perm])
        else:
            loss = self._loss(self.model(images), target)
        return loss, {}

    @torch.no_grad()
    def validation_step(self, batch) -> dict:
        images, target = batch
        logits = self.model(images)
        loss = self._loss(logits, target)
        pred = logits.argmax(1)
        valid = target != IGNORE_INDEX
        n = self.num_outputs
        idx = target[valid] * n + pred[valid]
        self._confusion += torch.bincount(idx, minlength=n * n).reshape(n, n).cpu()
        return {"loss": float(loss)}

    def compute_metrics(self) -> dict:
        cm = self._confusion.double()
        inter = cm.diag()
        union = cm.sum(0) + cm.sum(1) - inter
        ious = [float(i / u) if u > 0 else None for i, u in zip(inter, union, strict=True)]
        present = [v for v in ious[1:] if v is not None]
        total = cm.sum()
        return {
            "miou": sum(present) / len(present) if present else None,
            "pixel_accuracy": float(inter.sum() / total) if total > 0 else None,
            "iou_per_class": dict(zip(self.output_names, ious, strict=True)),
        }

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list:
        self.model.eval()
        return list(self.model(images.to(self.device)).argmax(1).cpu())


class ClassificationTask(Task):
    def configure_loss(self):
        if self.spec.multi_label:
            return nn.BCEWithLogitsLoss()
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def configure_metrics(self) -> None:
        n = len(self.spec.classes)
        self._counts = torch.zeros((n, 3), dtype=torch.int64)  # tp, fp, fn per class
        self._right = self._seen = 0

    def training_step(self, batch):
        images, target = batch
        return self.criterion(self.model(images).float(), target), {}

    @torch.no_grad()
    def validation_step(self, batch) -> dict:
        images, target = batch
        logits = self.model(images).float()
        loss = self.criterion(logits, target)
        n = len(self.spec.classes)
        if self.spec.multi_label:
            pred, truth = (logits > 0).cpu(), (target > 0.5).cpu()
            self._right += int((pred == truth).sum())
            self._seen += pred.numel()
        else:
            keep = (target != IGNORE_INDEX).cpu()
            cls, truth_idx = logits.argmax(1).cpu()[keep], target.cpu()[keep]
            self._right += int((cls == truth_idx).sum())
            self._seen += len(cls)
            pred, truth = F.one_hot(cls, n).bool(), F.one_hot(truth_idx, n).bool()
        self._counts[:, 0] += (pred & truth).sum(0)
        self._counts[:, 1] += (pred & ~truth).sum(0)
        self._counts[:, 2] += (~pred & truth).sum(0)
        return {"loss": float(loss)}

    def compute_metrics(self) -> dict:
        tp, fp, fn = self._counts.double().unbind(1)
        denom = 2 * tp + fp + fn
        f1 = [float(2 * t / d) if d > 0 else None for t, d in zip(tp, denom, strict=True)]
        present = [v for v in f1 if v is not None]
        return {
            "accuracy": self._right / self._seen if self._seen else None,
            "f1": sum(present) / len(present) if present else None,
            "f1_per_class": dict(zip(self.spec.names, f1, strict=True)),
        }

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list:
        self.model.eval()
        logits = self.model(images.to(self.device)).float().cpu()
        if self.spec.multi_label:
            return [torch.nonzero(row > 0).flatten() for row in logits]
        return list(logits.argmax(1))


TASK_CLASSES = {
    "detection": DetectionTask,
    "instance_segmentation": DetectionTask,
    "semantic_segmentation": SegmentationTask,
    "classification": ClassificationTask,
}


def make_task(spec: DataSpec, model_type: str, backbone: str, arguments: dict, **kw) -> Task:
    return TASK_CLASSES[TASKS[model_type]](spec, model_type, backbone, arguments, **kw)
