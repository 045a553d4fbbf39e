"""model_metrics.html and loss_graph.png: content, escaping, and a PNG that decodes."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from dlstudio_qgis.engine.train import report

EMD = {
    "Framework": "PyTorch",
    "ModelConfiguration": "DLStudio",
    "ModelType": "ImageClassification",
    "ImageWidth": 64,
    "ExtractBands": [0, 1, 2],
    "Classes": [
        {"Value": 1, "Name": "building", "Color": [255, 0, 0]},
        {"Value": 2, "Name": "<script>alert('x')</script>", "Color": [0, 128, 255]},
    ],
    "DLStudio": {"job": {"model_type": "UNET", "backbone": "RESNET18"}},
}
HISTORY = [
    {"epoch": e, "train_loss": 1.0 / e, "valid_loss": 1.1 / e + 0.05, "lr": 0.003, "dice": e / 10}
    for e in range(1, 6)
]
METRICS = {
    "learning_rate": 0.003,
    "learning_rate_found": True,
    "accuracy": 0.8125,
    "miou": float("nan"),
    "per_class": {"1": {"precision": 0.9, "recall": 0.75}, "2": {"precision": 0.5, "recall": 0.25}},
    "best_epoch": 5,
}


def test_html_content():
    page = report.render_html(EMD, HISTORY, METRICS)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>Model metrics: UNET</title>" in page
    for text in ("RESNET18", "ImageClassification", "building", "#ff0000", "#0080ff",
                 "0.003 (found by a learning-rate range test)", "0.8125", "precision"):  # fmt: skip
        assert text in page, text
    # one row per epoch, with the extra per-epoch metric as a column
    assert page.count("<tr>") >= len(HISTORY) + 1
    assert "<th>dice</th>" in page and '<td class="n">0.5</td>' in page
    # per-class metrics name their classes; NaN shows as a dash
    assert '<td>building</td><td class="n">0.9</td>' in page
    assert '<td>miou</td><td class="n">–</td>' in page
    assert "src=" not in page  # no external files: self-contained


def test_html_escapes_everything():
    emd = {**EMD, "ModelType": "<b>bold</b>"}
    metrics = {"note <i>": "a & b", "per_class": {"<x>": {"f1": 0.5}}}
    history = [{"epoch": 1, "train_loss": 0.5, "<col>": '"quoted"'}]
    page = report.render_html(emd, history, metrics)
    for raw in ("<script>", "<b>bold", "<i>", "<x>", "<col>", '"quoted"'):
        assert raw not in page, raw
    for escaped in ("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;", "&lt;b&gt;bold",
                    "a &amp; b", "&lt;x&gt;", "&quot;quoted&quot;"):  # fmt: skip
        assert escaped in page, escaped
    # a colour that is not a colour never reaches the style attribute
    bad = {**EMD, "Classes": [{"Value": 1, "Name": "a", "Color": "red;background:url(x)"}]}
    assert "url(x)" not in report.render_html(bad, [], {})


def test_html_embeds_the_graph_and_copes_with_nothing():
    png = report.loss_png(HISTORY)
    assert "data:image/png;base64," in report.render_html(EMD, HISTORY, METRICS, png)
    page = report.render_html({}, [], {})
    assert "No epochs were trained" in page and "No final metrics" in page
    assert "No classes" in page


def _decode(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()
    return np.asarray(img.convert("RGB"))


def _has_colour(rgb: np.ndarray, colour, tol=40) -> int:
    return int((np.abs(rgb.astype(int) - colour).sum(axis=2) < tol).sum())


@pytest.mark.parametrize("plotter", ["matplotlib", "plain"])
def test_loss_png_decodes_to_a_graph(plotter, monkeypatch, tmp_path):
    if plotter == "plain":  # a worker Python without matplotlib
        monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    data = report.loss_png(HISTORY)
    (tmp_path / f"loss_{plotter}.png").write_bytes(data)
    rgb = _decode(data)
    assert rgb.shape == (400, 640, 3)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 3
    assert _has_colour(rgb, report.TRAIN_COLOUR) > 200
    assert _has_colour(rgb, report.VALID_COLOUR) > 200
    # the falling training loss: its pixels sit higher (smaller row) on the left
    mask = np.abs(rgb.astype(int) - report.TRAIN_COLOUR).sum(axis=2) < 40
    rows, cols = np.nonzero(mask)
    left, right = cols < np.median(cols), cols > np.median(cols)
    assert rows[left].mean() < rows[right].mean()


@pytest.mark.parametrize("plotter", ["matplotlib", "plain"])
def test_loss_png_edge_cases(plotter, monkeypatch):
    if plotter == "plain":
        monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    for history in ([], [{"epoch": 1, "train_loss": 0.7, "valid_loss": None}],
                    [{"epoch": 1, "loss": float("nan")}]):  # fmt: skip
        rgb = _decode(report.loss_png(history))
        assert rgb.shape == (400, 640, 3)
    one = _decode(report.loss_png([{"epoch": 1, "train_loss": 0.7, "valid_loss": None}]))
    assert _has_colour(one, report.TRAIN_COLOUR) > 10  # a single epoch still shows a marker
    assert _has_colour(one, report.VALID_COLOUR) == 0
