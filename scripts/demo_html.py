"""Small HTML pieces for the demo's report (scripts/demo_report.py). Standard library only."""

from __future__ import annotations

from html import escape

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 1.5em .8em 0}
caption{text-align:left;font-weight:600;padding:.2em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cols{display:flex;flex-wrap:wrap;align-items:flex-start}
.bar{display:inline-block;height:.9em;vertical-align:middle}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ccc}
figcaption{color:#555;font-size:.9em}.note{color:#555}
"""


def _cell(value) -> str:
    text = value if isinstance(value, str) else escape(str(value))
    numeric = isinstance(value, int | float) or (
        isinstance(value, str) and value.replace(".", "", 1).replace("-", "", 1).isdigit()
    )
    return f"<td class='n'>{text}</td>" if numeric else f"<td>{text}</td>"


def table(head: list[str], rows: list[list], caption: str = "") -> str:
    """A table; string cells are HTML (escape them first), numbers are right-aligned."""
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    th = "".join(f"<th>{escape(h)}</th>" for h in head) if any(head) else ""
    thead = f"<thead><tr>{th}</tr></thead>" if th else ""
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table>{cap}{thead}<tbody>{body}</tbody></table>"


def bar_table(caption: str, counts: dict, total: int, labels: dict, colors: dict) -> str:
    """Counts by status, each with a bar of its share in the status's colour."""
    rows = []
    for key, label in labels.items():
        n = int(counts.get(key, 0))
        width = round(160 * n / total) if total else 0
        bar = f"<span class='bar' style='width:{width}px;background:{colors[key]}'></span>"
        rows.append([escape(label), n, bar])
    rows.append(["<b>Total</b>", total, ""])
    return table(["Status", "Count", ""], rows, caption)


def figure(src: str, caption: str) -> str:
    return (
        f"<figure><img src='{escape(src)}' alt='{escape(caption)}'>"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )
