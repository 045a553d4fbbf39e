"""The report files of a deep learning package: ``model_metrics.html`` and ``loss_graph.png``.

``history`` has one dict per epoch: ``epoch`` (1-based), ``train_loss``, ``valid_loss`` (None
without validation data), ``lr`` and any per-epoch metrics (shown as more columns).
``metrics`` holds the final figures: numbers (``learning_rate``, ``accuracy``, ``miou`` ...),
per-class figures as ``{class: {metric: value}}`` or a list of rows, and flags such as
``learning_rate_found``.

The graph is drawn with matplotlib (Agg, no pyplot state) where it is installed, else by a
small numpy + zlib plotter, so a worker Python without matplotlib still writes a package.
"""

from __future__ import annotations

import base64
import html
import io
import math
import struct
import zlib
from collections.abc import Mapping

TRAIN_KEYS = ("train_loss", "training_loss", "loss")
VALID_KEYS = ("valid_loss", "validation_loss", "val_loss")
TRAIN_COLOUR, VALID_COLOUR = (31, 119, 180), (255, 127, 14)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.sw{display:inline-block;width:1.2em;height:1em;border:1px solid #888;vertical-align:middle;
margin-right:.4em}
img{max-width:100%}.note{color:#555}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A number for a table: 4 significant digits, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _num_cell(value) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="n">{esc(fmt(value))}</td>' if numeric else f"<td>{esc(fmt(value))}</td>"


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_num_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _first(row: Mapping, keys) -> float | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) if math.isfinite(value) else None
    return None


def learning_rate(history: list[dict], metrics: Mapping) -> float | None:
    lr = metrics.get("learning_rate", metrics.get("lr"))
    if isinstance(lr, int | float) and not isinstance(lr, bool):
        return float(lr)
    for row in reversed(history or []):
        value = _first(row, ("lr", "learning_rate"))
        if value is not None:
            return value
    return None


def _colour(color) -> str | None:
    """'#rrggbb' from [r, g, b] (0-255) or a '#rrggbb' string; None when not a colour."""
    if isinstance(color, str) and len(color) in (4, 7) and color.startswith("#"):
        return color if all(c in "0123456789abcdefABCDEF" for c in color[1:]) else None
    if isinstance(color, list | tuple) and len(color) >= 3:
        try:
            r, g, b = (max(0, min(255, int(round(float(c))))) for c in color[:3])
        except (TypeError, ValueError):
            return None
        return f"#{r:02x}{g:02x}{b:02x}"
    return None


def _model_rows(emd: Mapping, history: list[dict], metrics: Mapping) -> list[list]:
    dls = emd.get("DLStudio") if isinstance(emd.get("DLStudio"), Mapping) else {}
    job = dls.get("job") if isinstance(dls.get("job"), Mapping) else {}
    params = emd.get("ModelParameters") if isinstance(emd.get("ModelParameters"), Mapping) else {}
    model_type = job.get("model_type") or dls.get("model_type")
    backbone = (params.get("backbone") or job.get("backbone") or dls.get("backbone")
                or emd.get("backbone"))  # fmt: skip
    lr = learning_rate(history, metrics)
    lr_text = fmt(lr)
    if lr is not None and (metrics.get("learning_rate_found") or metrics.get("lr_found")):
        lr_text += " (found by a learning-rate range test)"
    config = emd.get("ModelConfiguration")
    if isinstance(config, Mapping):
        config = config.get("Name", "custom")
    rows = [
        ["Model type", model_type or config],
        ["Backbone", backbone],
        ["Model definition type (ModelType)", emd.get("ModelType")],
        ["Model configuration", config],
        ["Framework", emd.get("Framework")],
        ["Chip size", emd.get("ImageWidth") or emd.get("ChipSize")],
        ["Bands", emd.get("ExtractBands")],
        ["Learning rate", lr_text],
        ["Epochs trained", metrics.get("epochs", len(history or []))],
    ]
    for key, label in (("best_epoch", "Best epoch"), ("stopped_early", "Stopped early"),
                       ("seconds", "Training time (s)"), ("device", "Device")):  # fmt: skip
        if metrics.get(key) is not None:
            rows.append([label, metrics[key]])
    return [[k, v] for k, v in rows if v not in (None, "", [])]


def _classes(emd: Mapping) -> str:
    rows = []
    for row in emd.get("Classes") or []:
        if not isinstance(row, Mapping):
            continue
        colour = _colour(row.get("Color"))
        swatch = (f'<span class="sw" style="background:{esc(colour)}"></span>{esc(colour)}'
                  if colour else "–")  # fmt: skip
        rows.append(
            f'<tr><td class="n">{esc(fmt(row.get("Value")))}</td><td>{esc(row.get("Name", ""))}'
            f"</td><td>{swatch}</td></tr>"
        )
    if not rows:
        return '<p class="note">No classes in the model definition.</p>'
    return ("<table><thead><tr><th>Value</th><th>Name</th><th>Colour</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")  # fmt: skip


def _class_names(emd: Mapping) -> dict[str, str]:
    out = {}
    for row in emd.get("Classes") or []:
        if isinstance(row, Mapping) and "Value" in row:
            out[str(row["Value"])] = str(row.get("Name", row["Value"]))
    return out


_SKIP_SCALARS = {"learning_rate", "lr", "learning_rate_found", "lr_found", "epochs",
                 "best_epoch", "stopped_early", "seconds", "device"}  # fmt: skip


def _metrics(emd: Mapping, metrics: Mapping) -> str:
    names = _class_names(emd)
    scalars, parts = [], []
    for key, value in (metrics or {}).items():
        if key in _SKIP_SCALARS:
            continue
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):  # per class: {class: {metric: value}}
            columns = list(dict.fromkeys(k for v in value.values() for k in v))
            rows = [[names.get(str(c), c), *(v.get(k) for k in columns)] for c, v in value.items()]
            parts.append(f"<h3>{esc(_label(key))}</h3>" + _table(["Class", *columns], rows))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            rows = [[v.get(k) for k in columns] for v in value]
            parts.append(f"<h3>{esc(_label(key))}</h3>" + _table(columns, rows))
        elif isinstance(value, Mapping):
            scalars.extend([f"{_label(key)}: {_label(k)}", v] for k, v in value.items())
        else:
            scalars.append([_label(key), value])
    out = _table(["Metric", "Value"], scalars) if scalars else ""
    out += "".join(parts)
    return out or '<p class="note">No final metrics were recorded.</p>'


def _label(key) -> str:
    return str(key).replace("_", " ")


def _epochs(history: list[dict]) -> str:
    if not history:
        return '<p class="note">No epochs were trained.</p>'
    columns = list(dict.fromkeys(k for row in history for k in row))
    if "epoch" in columns:
        columns.remove("epoch")
    columns.insert(0, "epoch")
    rows = [[row.get("epoch", i + 1), *(row.get(k) for k in columns[1:])]
            for i, row in enumerate(history)]  # fmt: skip
    return _table([_label(c) for c in columns], rows)


def render_html(
    emd: Mapping, history: list[dict], metrics: Mapping, loss_graph_png: bytes | None = None
) -> str:
    """A self-contained model_metrics.html (the loss graph, when given, is embedded)."""
    emd, history, metrics = emd or {}, list(history or []), metrics or {}
    title = "Model metrics"
    model_name = _model_rows(emd, history, metrics)
    if model_name:
        title += f": {fmt(model_name[0][1])}"
    graph = ""
    if loss_graph_png:
        data = base64.b64encode(loss_graph_png).decode("ascii")
        graph = ('<h2>Training and validation loss</h2><img alt="Training and validation loss '
                 f'per epoch" src="data:image/png;base64,{data}">')  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<h2>Model</h2>{_table(['Property', 'Value'], model_name)}"
        f"<h2>Classes</h2>{_classes(emd)}"
        f"<h2>Final metrics</h2>{_metrics(emd, metrics)}"
        f"{graph}"
        f"<h2>Per epoch</h2>{_epochs(history)}"
        "</body></html>\n"
    )


# --- the loss graph ------------------------------------------------------------------------


def _series(history: list[dict]) -> tuple[list[float], list, list]:
    xs, train, valid = [], [], []
    for i, row in enumerate(history or []):
        epoch = row.get("epoch", i + 1)
        xs.append(float(epoch) if isinstance(epoch, int | float) else float(i + 1))
        train.append(_first(row, TRAIN_KEYS))
        valid.append(_first(row, VALID_KEYS))
    return xs, train, valid


def loss_png(history: list[dict], size: tuple[int, int] = (640, 400)) -> bytes:
    """The training and validation losses per epoch as a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return _plain_png(history, size)
    xs, train, valid = _series(history)
    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for values, label, colour in ((train, "Training loss", TRAIN_COLOUR),
                                  (valid, "Validation loss", VALID_COLOUR)):  # fmt: skip
        points = [(x, y) for x, y in zip(xs, values, strict=True) if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label,
                    markersize=6 if len(points) <= 20 else 3,
                    color=tuple(c / 255 for c in colour))  # fmt: skip
            drawn = True
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "No losses were recorded", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss")
    ax.set_title("Training and validation loss")
    epochs = sorted({int(x) for x in xs if float(x).is_integer()})
    if epochs and len(epochs) <= 15 and len(epochs) == len(set(xs)):
        ax.set_xticks(epochs)
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _plain_png(history: list[dict], size: tuple[int, int]) -> bytes:
    """The graph without matplotlib: axes, the two series as lines with markers; no text."""
    import numpy as np

    w, h = size
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 50, w - 20, 20, h - 40
    img[top:bottom + 1, left] = img[bottom, left:right + 1] = (0, 0, 0)  # fmt: skip
    xs, train, valid = _series(history)
    values = [v for v in train + valid if v is not None]
    if xs and values:
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(values), max(values)
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
        if y1 == y0:
            y0, y1 = y0 - abs(y0 or 1) * 0.1, y1 + abs(y1 or 1) * 0.1

        def px(x, y):
            return (left + 5 + (x - x0) / (x1 - x0) * (right - left - 10),
                    bottom - 5 - (y - y0) / (y1 - y0) * (bottom - top - 10))  # fmt: skip

        for series, colour in ((train, TRAIN_COLOUR), (valid, VALID_COLOUR)):
            points = [px(x, y) for x, y in zip(xs, series, strict=True) if y is not None]
            for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
                n = int(max(abs(bx - ax), abs(by - ay))) + 1
                for t in np.linspace(0.0, 1.0, n + 1):
                    cx, cy = int(round(ax + (bx - ax) * t)), int(round(ay + (by - ay) * t))
                    img[max(cy - 1, 0):cy + 1, max(cx - 1, 0):cx + 1] = colour  # fmt: skip
            for cx, cy in points:
                cx, cy = int(round(cx)), int(round(cy))
                img[max(cy - 3, 0):cy + 4, max(cx - 3, 0):cx + 4] = colour  # fmt: skip
    return encode_png(img)


def encode_png(rgb) -> bytes:
    """An 8-bit RGB array (H, W, 3) as PNG bytes."""
    import numpy as np

    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))  # fmt: skip
