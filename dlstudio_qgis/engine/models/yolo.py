"""YOLOv3 (Redmon & Farhadi 2018) in plain torch, with torchvision's calling convention.

Darknet-53's stages at strides 8, 16 and 32 feed three heads through the usual top-down path
(five-convolution blocks, 1x1 lateral, upsampling, concatenation). Three anchors per scale:
the COCO anchors of the paper scaled from 416 pixels to the chip size.

``model(images, targets)`` in train mode returns {"loss_box", "loss_obj", "loss_cls"}; in eval
mode a list of {"boxes" (x1, y1, x2, y2 pixels), "labels" (1..num_classes), "scores"} per image,
after per-class NMS (torchvision.ops.batched_nms). ``images`` is a list of (C, H, W) tensors or
an (N, C, H, W) tensor, already normalised; sizes that are not multiples of 32 are padded.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou

from .backbones import Backbone
from .darknet import conv_bn_leaky

#: (width, height) of the anchors at strides 8, 16, 32, for 416-pixel images
COCO_ANCHORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
STRIDES = (8, 16, 32)


def _five(c_in: int, c: int) -> nn.Sequential:
    return nn.Sequential(
        conv_bn_leaky(c_in, c, 1),
        conv_bn_leaky(c, c * 2, 3),
        conv_bn_leaky(c * 2, c, 1),
        conv_bn_leaky(c, c * 2, 3),
        conv_bn_leaky(c * 2, c, 1),
    )


class YOLOv3(nn.Module):
    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        chip_size: int,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.45,
        detections_per_img: int = 100,
        ignore_thresh: float = 0.5,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.ignore_thresh = ignore_thresh
        c3, c4, c5 = backbone.channels[2:]
        out = 3 * (5 + num_classes)
        self.block5, self.head5 = _five(c5, 512), self._head(512, out)
        self.lateral5 = conv_bn_leaky(512, 256, 1)
        self.block4, self.head4 = _five(c4 + 256, 256), self._head(256, out)
        self.lateral4 = conv_bn_leaky(256, 128, 1)
        self.block3, self.head3 = _five(c3 + 128, 128), self._head(128, out)
        anchors = torch.tensor(COCO_ANCHORS, dtype=torch.float32) * (chip_size / 416.0)
        self.register_buffer("anchors", anchors, persistent=False)  # (scale, anchor, wh)

    @staticmethod
    def _head(c: int, out: int) -> nn.Sequential:
        final = nn.Conv2d(c * 2, out, 1)
        with torch.no_grad():  # objectness starts near 1%: a stable start for the BCE
            final.bias.view(3, -1)[:, 4].fill_(-math.log(99.0))
        return nn.Sequential(conv_bn_leaky(c, c * 2, 3), final)

    def _predict(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw outputs per scale (strides 8, 16, 32), each (N, 3, H, W, 5 + classes)."""
        f3, f4, f5 = self.backbone(x)[2:]
        y5 = self.block5(f5)
        up = F.interpolate(self.lateral5(y5), size=f4.shape[-2:], mode="nearest")
        y4 = self.block4(torch.cat([up, f4], 1))
        up = F.interpolate(self.lateral4(y4), size=f3.shape[-2:], mode="nearest")
        y3 = self.block3(torch.cat([up, f3], 1))
        preds = []
        for y, head in ((y3, self.head3), (y4, self.head4), (y5, self.head5)):
            p = head(y)
            n, _, h, w = p.shape
            preds.append(p.view(n, 3, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2))
        return preds

    @staticmethod
    def _batch(images) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Stack the images, zero-padded right and bottom to a multiple of 32."""
        sizes = [tuple(img.shape[-2:]) for img in images]
        h = math.ceil(max(s[0] for s in sizes) / 32) * 32
        w = math.ceil(max(s[1] for s in sizes) / 32) * 32
        first = images[0]
        x = first.new_zeros((len(images), first.shape[-3], h, w))
        for i, img in enumerate(images):
            x[i, :, : img.shape[-2], : img.shape[-1]] = img
        return x, sizes

    def _boxes(self, p: torch.Tensor, scale: int) -> torch.Tensor:
        """Decoded (x1, y1, x2, y2) pixel boxes of one scale's predictions."""
        _, _, h, w, _ = p.shape
        ys, xs = torch.meshgrid(
            torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij"
        )
        grid = torch.stack([xs, ys], -1).to(p.dtype).view(1, 1, h, w, 2)
        centre = (torch.sigmoid(p[..., :2]) + grid) * STRIDES[scale]
        size = torch.exp(p[..., 2:4].clamp(-10.0, 10.0)) * self.anchors[scale].view(1, 3, 1, 1, 2)
        return torch.cat([centre - size / 2, centre + size / 2], dim=-1)

    def forward(self, images, targets=None):
        x, sizes = self._batch(images)
        preds = self._predict(x)
        if self.training:
            if targets is None:
                raise ValueError("In training mode, targets should be passed")
            return self._loss(preds, targets, x.shape[-2:])
        return self._detect(preds, sizes)

    def _gather(self, targets, device) -> torch.Tensor:
        """All targets as rows (image, class 0.., x1, y1, x2, y2)."""
        rows = [torch.zeros((0, 6), device=device)]
        for i, t in enumerate(targets):
            boxes = t["boxes"].to(device, torch.float32).reshape(-1, 4)
            labels = t["labels"].to(device, torch.float32).reshape(-1, 1) - 1
            index = torch.full_like(labels, float(i))
            rows.append(torch.cat([index, labels, boxes], dim=1))
        return torch.cat(rows)

    def _loss(self, preds, targets, image_hw) -> dict[str, torch.Tensor]:
        gt = self._gather(targets, preds[0].device)
        image, cls, xyxy = gt[:, 0].long(), gt[:, 1].long(), gt[:, 2:]
        wh = (xyxy[:, 2:] - xyxy[:, :2]).clamp(min=1.0)
        centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        anchors = self.anchors.view(9, 2)
        inter = torch.min(wh[:, None], anchors[None]).prod(-1)
        best = (inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)).argmax(1)
        area = float(image_hw[0] * image_hw[1])
        zero = sum(p.sum() for p in preds) * 0.0
        loss_box, loss_obj, loss_cls = zero, zero, zero
        for scale, p in enumerate(preds):
            n, _, h, w, _ = p.shape
            with torch.no_grad():  # no objectness penalty where a prediction already fits a box
                decoded = self._boxes(p, scale)
                ignore = torch.zeros(p.shape[:4], dtype=torch.bool, device=p.device)
                for i in range(n):
                    mine = image == i
                    if mine.any():
                        iou = box_iou(decoded[i].reshape(-1, 4), xyxy[mine]).amax(1)
                        ignore[i] = (iou > self.ignore_thresh).view(3, h, w)
            obj_target = torch.zeros(p.shape[:4], device=p.device)
            sel = (best // 3) == scale
            if sel.any():
                b, a = image[sel], best[sel] % 3
                cell = centre[sel] / STRIDES[scale]
                gi = cell[:, 0].long().clamp(0, w - 1)
                gj = cell[:, 1].long().clamp(0, h - 1)
                ps = p[b, a, gj, gi]
                txy = (cell - torch.stack([gi, gj], 1)).clamp(0.0, 1.0)
                twh = torch.log(wh[sel] / self.anchors[scale][a])
                weight = (2.0 - wh[sel].prod(1) / area)[:, None]
                bce_xy = F.binary_cross_entropy_with_logits(ps[:, :2], txy, reduction="none")
                loss_box = loss_box + (weight * bce_xy).sum()
                loss_box = loss_box + 0.5 * (weight * (ps[:, 2:4] - twh) ** 2).sum()
                onehot = F.one_hot(cls[sel], self.num_classes).to(ps.dtype)
                loss_cls = loss_cls + F.binary_cross_entropy_with_logits(
                    ps[:, 5:], onehot, reduction="sum"
                )
                obj_target[b, a, gj, gi] = 1.0
                ignore[b, a, gj, gi] = False
            keep = ~ignore
            loss_obj = loss_obj + F.binary_cross_entropy_with_logits(
                p[..., 4][keep], obj_target[keep], reduction="sum"
            )
        n = preds[0].shape[0]
        return {"loss_box": loss_box / n, "loss_obj": loss_obj / n, "loss_cls": loss_cls / n}

    @torch.no_grad()
    def _detect(self, preds, sizes) -> list[dict[str, torch.Tensor]]:
        results = []
        for i, (h, w) in enumerate(sizes):
            boxes, scores = [], []
            for scale, p in enumerate(preds):
                boxes.append(self._boxes(p[i : i + 1], scale).reshape(-1, 4))
                obj = torch.sigmoid(p[i, ..., 4]).reshape(-1, 1)
                scores.append(obj * torch.sigmoid(p[i, ..., 5:]).reshape(-1, self.num_classes))
            boxes, scores = torch.cat(boxes), torch.cat(scores)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            index, label = (scores > self.score_thresh).nonzero(as_tuple=True)
            box, score = boxes[index], scores[index, label]
            ok = ((box[:, 2] - box[:, 0]) > 1e-2) & ((box[:, 3] - box[:, 1]) > 1e-2)
            box, score, label = box[ok], score[ok], label[ok]
            top = score.argsort(descending=True)[:1000]
            box, score, label = box[top], score[top], label[top]
            keep = batched_nms(box, score, label, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": box[keep], "labels": label[keep] + 1, "scores": score[keep]})
        return results
