"""The package's ``show_results.png``: a few validation chips, ground truth above and the
trained model's predictions below (masks blended, boxes drawn, class names written), drawn with
PIL and numpy only (torchvision needs PIL, so every worker Python has it)."""

from __future__ import annotations

import io

import numpy as np
import torch

CHIPS = 4
MIN_PANEL = 160  # pixels: small chips are enlarged
SCORE = 0.3  # detections drawn at or above this score
GAP = 4


def _rgb(image: torch.Tensor, spec) -> np.ndarray:
    """(H, W, 3) uint8 from a normalised (C, H, W) chip: first three bands, 2-98 % stretch."""
    a = image.numpy() * np.asarray(spec.std)[:, None, None] + np.asarray(spec.mean)[:, None, None]
    a = a[:3] if a.shape[0] >= 3 else np.repeat(a[:1], 3, axis=0)
    lo, hi = np.percentile(a, 2), np.percentile(a, 98)
    a = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return (a.transpose(1, 2, 0) * 255).astype(np.uint8)


def _colours(spec) -> list[tuple[int, int, int]]:
    palette = [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
    ]
    out = []
    for i, c in enumerate(spec.classes):
        color = c.get("Color")
        ok = isinstance(color, list | tuple) and len(color) >= 3
        out.append(tuple(int(v) for v in color[:3]) if ok else palette[i % len(palette)])
    if len(set(out)) < len(out):  # the export gave every class the same colour
        out = [palette[i % len(palette)] for i in range(len(out))]
    return out


def _panel(rgb: np.ndarray, target, spec, colours, scale: int):
    from PIL import Image, ImageDraw

    if spec.kind == "semantic_segmentation":
        mask = np.asarray(target)
        over = rgb.astype(np.float32)
        for i, colour in enumerate(colours, 1):
            sel = mask == i
            over[sel] = 0.5 * over[sel] + 0.5 * np.asarray(colour, np.float32)
        rgb = over.astype(np.uint8)
    img = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    if spec.kind in ("detection", "instance_segmentation"):
        scores = target.get("scores")
        for k, (box, label) in enumerate(zip(target["boxes"], target["labels"], strict=True)):
            if scores is not None and float(scores[k]) < SCORE:
                continue
            colour = colours[(int(label) - 1) % len(colours)]
            draw.rectangle([float(v) * scale for v in box], outline=colour, width=2)
    elif spec.kind == "classification":
        labels = target.tolist() if hasattr(target, "tolist") else target
        if isinstance(labels, float | int):
            labels = [int(labels)]
        elif spec.multi_label and labels and isinstance(labels[0], float):  # a multi-hot truth
            labels = [i for i, v in enumerate(labels) if v > 0.5]
        labels = [int(i) for i in labels if 0 <= int(i) < len(spec.classes)]
        for i in labels[:1]:
            draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=colours[i], width=4)
        text = ", ".join(spec.names[i] for i in labels) or "-"
        draw.rectangle(draw.textbbox((6, 6), text), fill=(0, 0, 0))
        draw.text((6, 6), text, fill=(255, 255, 255))
    return img


def render_preview(task, dataset, spec) -> bytes | None:
    """PNG bytes, or None when there is nothing to show."""
    from PIL import Image

    n = min(CHIPS, len(dataset))
    if n == 0:
        return None
    items = [dataset[i] for i in range(n)]
    images = torch.stack([it[0] for it in items])
    preds = task.predict(images)
    if spec.kind == "detection" or spec.kind == "instance_segmentation":
        preds = [{k: v for k, v in p.items() if k in ("boxes", "labels", "scores")} for p in preds]
    colours = _colours(spec)
    size = spec.chip_size
    scale = max(1, -(-MIN_PANEL // size))
    side = size * scale
    sheet = Image.new("RGB", (n * side + (n - 1) * GAP, 2 * side + GAP), (255, 255, 255))
    for i, ((image, truth), pred) in enumerate(zip(items, preds, strict=True)):
        rgb = _rgb(image, spec)
        sheet.paste(_panel(rgb, truth, spec, colours, scale), (i * (side + GAP), 0))
        sheet.paste(_panel(rgb, pred, spec, colours, scale), (i * (side + GAP), side + GAP))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
