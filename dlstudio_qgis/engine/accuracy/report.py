"""HTML accuracy reports: self-contained pages in the style of model_metrics.html.

Standard library only (the QGIS side writes the object classification report with it).
The confusion matrix is a table whose cells are shaded by their share of the reference
class's row: green on the diagonal (right), red elsewhere (confused).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from ..train.report import _CSS, esc, fmt

_EXTRA_CSS = """
table.cm td{min-width:3.2em}table.cm td.n{text-align:center}
.big{font-size:1.25em;font-weight:600}
"""


def _cells(row: Sequence) -> str:
    out = []
    for value in row:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        out.append(f'<td class="n">{esc(fmt(value))}</td>' if numeric
                   else f"<td>{esc(fmt(value))}</td>")  # fmt: skip
    return "".join(out)


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{_cells(row)}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str, inputs: Mapping | None) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [[k, v] for k, v in (inputs or {}).items() if v not in (None, "")]
    facts.append(["Computed", when])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><h2>Inputs</h2>{table(['Input', 'Value'], facts)}{body}"
        "</body></html>\n"
    )


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def render_detection(result: Mapping, title: str = "", inputs: Mapping | None = None) -> str:
    """The report of an object detection assessment (the engine's detection result)."""
    s = result["summary"]
    headline = (
        f'<p class="big">mAP {esc(fmt(s["map"]))} &middot; precision {esc(_pct(s["precision"]))}'
        f" &middot; recall {esc(_pct(s['recall']))} &middot; F1 {esc(fmt(s['f1']))}</p>"
        f'<p class="note">A detection is a true positive when its IoU with a ground-truth '
        f"object of its class, not yet matched, is at least {esc(fmt(result.get('min_iou')))}"
        " (detections are matched by decreasing confidence). AP is the PASCAL VOC all-point "
        "average precision; mAP is its mean over the classes with ground truth. Precision, "
        "recall and F1 of the whole are micro averages (over all objects).</p>"
    )
    headers = ["Value", "Class", "Ground truth", "Detections", "True positives",
               "False positives", "False negatives", "Precision", "Recall", "F1", "AP"]  # fmt: skip
    rows = [[c["value"], c.get("name", c["value"]), c["ground_truth"], c["detections"], c["tp"],
             c["fp"], c["fn"], c["precision"], c["recall"], c["f1"], c["ap"]]
            for c in result["classes"]]  # fmt: skip
    rows.append(["", "all (mAP)", s["ground_truth"], s["detections"], s["tp"], s["fp"], s["fn"],
                 s["precision"], s["recall"], s["f1"], s["map"]])  # fmt: skip
    notes = []
    masked = result.get("masked_out") or {}
    if any(masked.values()):
        notes.append(f"Outside the mask (not counted): {masked.get('detections', 0)} detections, "
                     f"{masked.get('ground_truth', 0)} ground-truth objects.")  # fmt: skip
    for what, skipped in (result.get("skipped") or {}).items():
        for why, n in (skipped or {}).items():
            notes.append(f"Skipped {n} {what.replace('_', ' ')} {why}.")
    body = headline + "<h2>Per class</h2>" + table(headers, rows)
    if notes:
        body += "<h2>Notes</h2>" + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    return _page(title or "Object detection accuracy", body, inputs)


def _shade(count: int, row_total: int, diagonal: bool) -> str:
    if not count or not row_total:
        return ""
    alpha = 0.12 + 0.78 * count / row_total
    rgb = "44,160,44" if diagonal else "214,39,40"
    return f' style="background:rgba({rgb},{alpha:.2f})"'


def confusion_html(summary: Mapping, names: Mapping | None = None,
                   unit: str = "pixels") -> str:  # fmt: skip
    """The confusion matrix as a shaded table (rows: reference; columns: predicted)."""
    labels, matrix = summary["labels"], summary["matrix"]
    names = {str(k): v for k, v in (names or {}).items()}

    def name(v) -> str:
        text = names.get(str(v), str(v))
        return text if text == str(v) else f"{text} ({v})"

    show_none = bool(summary.get("no_class"))
    cols = [esc(name(v)) for v in labels] + (["no class"] if show_none else [])
    head = ("<tr><th>Reference \\ predicted</th>" + "".join(f"<th>{c}</th>" for c in cols)
            + "<th>Total</th><th>Recall</th></tr>")  # fmt: skip
    body = []
    for i, (value, row) in enumerate(zip(labels, matrix, strict=True)):
        total = sum(row)
        shown = row if show_none else row[:-1]
        cells = "".join(f'<td class="n"{_shade(c, total, i == j)}>{c}</td>'
                        for j, c in enumerate(shown))  # fmt: skip
        recall = summary["classes"][i]["recall"]
        body.append(f"<tr><th>{esc(name(value))}</th>{cells}<td class=\"n\">{total}</td>"
                    f'<td class="n">{esc(_pct(recall))}</td></tr>')  # fmt: skip
    col_totals = [sum(r[j] for r in matrix) for j in range(len(labels) + 1)]
    shown = col_totals if show_none else col_totals[:-1]
    body.append("<tr><th>Total</th>" + "".join(f'<td class="n">{c}</td>' for c in shown)
                + f'<td class="n">{summary["total"]}</td><td></td></tr>')  # fmt: skip
    precision = [c["precision"] for c in summary["classes"]]
    body.append("<tr><th>Precision</th>" + "".join(f'<td class="n">{esc(_pct(p))}</td>'
                                                  for p in precision)
                + ("<td></td>" if show_none else "") + "<td></td><td></td></tr>")  # fmt: skip
    note = f'<p class="note">Counts of {esc(unit)}; shading: share of the reference row.</p>'
    return f'<table class="cm"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>{note}'


def render_confusion(summary: Mapping, title: str, inputs: Mapping | None = None,
                     names: Mapping | None = None, unit: str = "pixels") -> str:  # fmt: skip
    """The report of a classification assessment (pixels or objects)."""
    headline = (
        f'<p class="big">Overall accuracy {esc(_pct(summary["overall_accuracy"]))} &middot; '
        f"kappa {esc(fmt(summary['kappa']))} &middot; mIoU {esc(fmt(summary['miou']))}</p>"
        f'<p class="note">{summary["correct"]} of {summary["total"]} {esc(unit)} have the '
        "reference class. Kappa is Cohen's kappa (agreement beyond chance); mIoU is the mean "
        "intersection over union of the classes.</p>"
    )
    names = names or {}
    rows = [[c["value"], names.get(str(c["value"]), c.get("name", c["value"])), c["reference"],
             c["predicted"], c["correct"], c["precision"], c["recall"], c["f1"], c["iou"]]
            for c in summary["classes"]]  # fmt: skip
    rows.append(["", "mean", "", "", "", summary["mean_precision"], summary["mean_recall"],
                 summary["mean_f1"], summary["miou"]])  # fmt: skip
    per_class = table(["Value", "Class", "Reference", "Predicted", "Correct", "Precision",
                       "Recall", "F1", "IoU"], rows)  # fmt: skip
    body = (headline + "<h2>Confusion matrix</h2>" + confusion_html(summary, names, unit)
            + "<h2>Per class</h2>" + per_class)  # fmt: skip
    return _page(title, body, inputs)


def write_report(path: str | os.PathLike, text: str) -> str:
    """Write `text` to `path` through a temporary file, so no half report is ever left."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
