"""dlstudio:projectstatus: the project's progress as figures, JSON and an HTML summary."""

from __future__ import annotations

import json
from html import escape

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
)

from ..core import SampleStatus, WorkUnitStatus
from .base import DlsAlgorithm, project_parameter, tr, user_parameter, with_help

BAR_PX = 240
UNIT_COLORS = {
    "queued": "#9e9e9e",
    "in_progress": "#f0ad4e",
    "pending_review": "#5bc0de",
    "in_review": "#337ab7",
    "reviewed": "#5cb85c",
}
SAMPLE_COLORS = {"pending": "#f0ad4e", "approved": "#5cb85c", "rejected": "#d9534f"}


class ProjectStatus(DlsAlgorithm):
    NAME = "projectstatus"
    DISPLAY_NAME = "Project status"
    HELP = (
        "Reports the project's progress, derived from its current state: work units per "
        "status, samples per status, the share of work units reviewed, the Approved samples in "
        "Reviewed work units (those that export), and figures per collector, per class and per "
        "work unit.\n\n"
        "Writes them as JSON and as a readable HTML page (both optional), and returns the main "
        "figures as outputs for models and scripts."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        json_out = QgsProcessingParameterFileDestination(
            "OUTPUT_JSON",
            tr("Status (JSON)"),
            fileFilter=tr("JSON files (*.json)"),
            optional=True,
            createByDefault=False,
        )
        self.addParameter(with_help(json_out, "A JSON file with every figure (optional)."))
        html_out = QgsProcessingParameterFileDestination(
            "OUTPUT_HTML",
            tr("Status report (HTML)"),
            fileFilter=tr("HTML files (*.html)"),
            optional=True,
            createByDefault=False,
        )
        self.addParameter(
            with_help(html_out, "A readable HTML summary with bars and tables (optional).")
        )
        self.addParameter(user_parameter())
        for name, desc in (
            ("WORK_UNITS", "Work units"),
            ("SAMPLES", "Samples"),
            ("PERCENT_REVIEWED", "Work units reviewed (%)"),
            ("APPROVED", "Approved samples"),
            ("REJECTED", "Rejected samples"),
            ("PENDING", "Samples pending approval"),
            ("EXPORTABLE", "Exportable samples (Approved, in Reviewed work units)"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(desc)))

    def execute(self, parameters, context, feedback):
        project = self.open_project(parameters, context, feedback)
        progress = project.progress()
        results = {
            "WORK_UNITS": progress["work_units"]["total"],
            "SAMPLES": progress["samples"]["total"],
            "PERCENT_REVIEWED": progress["percent_reviewed"],
            "APPROVED": progress["approved"],
            "REJECTED": progress["rejected"],
            "PENDING": progress["samples"]["by_status"].get("pending", 0),
            "EXPORTABLE": progress["exportable_samples"],
        }
        feedback.pushInfo(
            tr(
                f"{results['WORK_UNITS']} work units, {results['PERCENT_REVIEWED']}% reviewed; "
                f"{results['SAMPLES']} samples ({results['APPROVED']} approved, "
                f"{results['REJECTED']} rejected, {results['PENDING']} pending); "
                f"{results['EXPORTABLE']} exportable."
            )
        )
        json_path = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        if json_path:
            with open(json_path, "w", encoding="utf-8") as fh:
                json.dump(progress, fh, indent=2, sort_keys=False)
            results["OUTPUT_JSON"] = json_path
        html_path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        if html_path:
            with open(html_path, "w", encoding="utf-8") as fh:
                fh.write(render_html(progress, str(project.path)))
            results["OUTPUT_HTML"] = html_path
        return results


def _bar(count: int, total: int, color: str) -> str:
    width = round(BAR_PX * count / total) if total else 0
    cell = f'<td width="{width}" bgcolor="{color}" style="background:{color}">&nbsp;</td>'
    rest = f'<td width="{BAR_PX - width}" style="background:#eee" bgcolor="#eeeeee">&nbsp;</td>'
    return (
        '<table class="bar" cellspacing="0" cellpadding="0"><tr>'
        + (cell if width else "")
        + (rest if width < BAR_PX else "")
        + "</tr></table>"
    )


def _status_table(title: str, by_status: dict, labels: dict, colors: dict) -> str:
    total = sum(by_status.values())
    rows = "".join(
        f'<tr><td>{escape(labels[k])}</td><td align="right">{n}</td>'
        f"<td>{_bar(n, total, colors.get(k, '#777'))}</td></tr>"
        for k, n in by_status.items()
    )
    return (
        f"<h2>{escape(title)} ({total})</h2><table><tr><th>Status</th><th>Count</th><th></th>"
        f"</tr>{rows}</table>"
    )


def render_html(progress: dict, path: str) -> str:
    """A self-contained HTML summary of `Project.progress()`; every value is escaped."""
    unit_labels = {s.value: s.label for s in WorkUnitStatus}
    sample_labels = {s.value: s.label for s in SampleStatus}
    sample_keys = [s.value for s in SampleStatus]
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8">',
        f"<title>{escape(progress['project'])} - status</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{padding:2px 8px;text-align:left}table.bar td{padding:0;height:12px}"
        "tr.row:nth-child(even){background:#f4f4f4}</style></head><body>",
        f"<h1>{escape(progress['project'])}</h1>",
        f"<p>{escape(progress['inference_tool'])} project, {escape(progress['status'])}. "
        f"File: <code>{escape(path)}</code></p>",
        f"<p><b>{progress['percent_reviewed']}%</b> of the work units reviewed; "
        f"<b>{progress['exportable_samples']}</b> samples exportable (Approved, in Reviewed "
        "work units).</p>",
        _bar(
            progress["work_units"]["by_status"].get("reviewed", 0),
            progress["work_units"]["total"],
            UNIT_COLORS["reviewed"],
        ),
        _status_table("Work units", progress["work_units"]["by_status"], unit_labels, UNIT_COLORS),
        _status_table("Samples", progress["samples"]["by_status"], sample_labels, SAMPLE_COLORS),
    ]
    head = "".join(f"<th>{escape(sample_labels[k])}</th>" for k in sample_keys)
    rows = "".join(
        f'<tr class="row"><td>{escape(str(user))}</td>'
        + "".join(f'<td align="right">{c.get(k, 0)}</td>' for k in sample_keys)
        + f'<td align="right">{c.get("total", 0)}</td></tr>'
        for user, c in sorted(progress["per_collector"].items())
    )
    parts.append(
        f"<h2>Per collector</h2><table><tr><th>Collector</th>{head}<th>Total</th></tr>"
        f"{rows or '<tr><td colspan=5>No samples yet.</td></tr>'}</table>"
    )
    rows = "".join(
        f'<tr class="row"><td>{escape(str(value))}</td><td>{escape(str(c["name"]))}</td>'
        f'<td align="right">{c["count"]}</td></tr>'
        for value, c in progress["per_class"].items()
    )
    parts.append(
        f"<h2>Per class</h2><table><tr><th>Value</th><th>Class</th><th>Samples</th></tr>"
        f"{rows}</table>"
    )
    rows = "".join(
        f'<tr class="row"><td align="right">{u["fid"]}</td><td>{escape(str(u["name"] or ""))}</td>'
        f"<td>{escape(unit_labels.get(u['status'], u['status']))}</td>"
        f"<td>{escape(str(u['assignee'] or ''))}</td><td>{escape(str(u['reviewer'] or ''))}</td>"
        + "".join(f'<td align="right">{u["samples"].get(k, 0)}</td>' for k in sample_keys)
        + "</tr>"
        for u in progress["per_unit"]
    )
    parts.append(
        "<h2>Per work unit</h2><table><tr><th>Id</th><th>Name</th><th>Status</th>"
        f"<th>Assignee</th><th>Reviewer</th>{head}</tr>{rows}</table>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
