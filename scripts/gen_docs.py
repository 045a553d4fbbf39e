#!/usr/bin/env python3
"""Write docs/algorithms.md from the Processing algorithms' own help.

Starts QGIS offscreen with a throw-away profile, loads the Deep Learning Studio provider and
writes, for every algorithm in workflow order (processing/provider.py ALGORITHMS), its name,
id, group, help text, every parameter (name, label, type, default, help, optional and advanced
flags) and every output. The reference can then never disagree with what the Toolbox and
`qgis_process.bin help` show.

    .venv/bin/python scripts/gen_docs.py                 # what `make docs` runs
    .venv/bin/python scripts/gen_docs.py --output x.md   # somewhere else (the docs test)
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "docs" / "algorithms.md"
QGIS_PYTHON = ("/usr/share/qgis/python", "/usr/share/qgis/python/plugins")

#: Processing parameter type ids -> what the reference calls them
TYPE_NAMES = {
    "string": "text",
    "boolean": "boolean (true/false)",
    "enum": "choice",
    "number": "number",
    "distance": "distance",
    "file": "file",
    "fileDestination": "file to write",
    "folderDestination": "folder to write",
    "raster": "raster layer",
    "rasterDestination": "raster to write",
    "source": "vector features",
    "vector": "vector layer",
    "sink": "vector layer to write",
    "vectorDestination": "vector layer to write",
    "field": "field",
    "extent": "extent (xmin,xmax,ymin,ymax [CRS], or a layer)",
    "crs": "coordinate reference system",
    "expression": "QGIS expression",
}
OUTPUT_TYPE_NAMES = {
    "outputString": "text",
    "outputNumber": "number",
    "outputFile": "file",
    "outputFolder": "folder",
    "outputHtml": "HTML file",
    "outputRaster": "raster layer",
    "outputVector": "vector layer",
    "outputBoolean": "boolean",
    "outputLayer": "layer",
    "outputMultilayer": "layers",
}
GROUP_ORDER = ("project", "deeplearning")


def start_qgis(profile: str):
    """A QgsApplication without a GUI, with the dlstudio provider registered."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for path in (str(REPO), *QGIS_PYTHON):
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    from qgis.core import QgsApplication

    app = QgsApplication([], False, profile)
    QgsApplication.setPrefixPath("/usr", True)
    app.initQgis()
    from dlstudio_qgis.processing.provider import DlsProvider

    provider = DlsProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


# --- formatting ----------------------------------------------------------------------------


def cell(text) -> str:
    """Text safe in a Markdown table cell (one line, no pipes, no HTML, no emphasis)."""
    text = " ".join(str(text).split())
    for char in ("\\", "|", "*"):
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def is_null(value) -> bool:
    if value is None:
        return True
    null = getattr(value, "isNull", None)
    return bool(callable(null) and null())


def number_text(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def default_text(param) -> str:
    value = param.defaultValue()
    if is_null(value) or value == "":
        return ""
    kind = param.type()
    if kind == "enum" and not param.usesStaticStrings():
        options = param.options()
        indexes = value if isinstance(value, list) else [value]
        value = ",".join(options[int(i)] for i in indexes if 0 <= int(i) < len(options))
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, int | float):
        value = number_text(value)
    return f"`{cell(value)}`"


def type_text(param) -> str:
    """The parameter's type, with what it accepts (choices, range, file kind, geometry)."""
    from qgis.core import QgsProcessing, QgsProcessingParameterFile, QgsProcessingParameterNumber

    kind = param.type()
    text = TYPE_NAMES.get(kind, kind)
    if kind == "enum":
        text = (
            ("choices" if param.allowMultiple() else "choice")
            + ": "
            + ", ".join(f"`{cell(o)}`" for o in param.options())
        )
    elif kind == "number":
        integer = param.dataType() == _enum_value(
            QgsProcessingParameterNumber, "Integer", ("Type", "Integer")
        )
        text = "whole number" if integer else "number"
        low, high = param.minimum(), param.maximum()
        limits = []
        if low > -1e300:
            limits.append(f"≥ {number_text(low)}")
        if high < 1e300:
            limits.append(f"≤ {number_text(high)}")
        if limits:
            text += " (" + ", ".join(limits) + ")"
    elif kind == "file":
        folder = param.behavior() == _enum_value(
            QgsProcessingParameterFile, "Folder", ("Behavior", "Folder")
        )
        text = "folder" if folder else "file"
        if not folder and param.extension():
            text += f" (.{param.extension()})"
        elif not folder and param.fileFilter():
            text += f" ({_patterns(param.fileFilter())})"
    elif kind == "fileDestination" and param.fileFilter():
        text += f" ({_patterns(param.fileFilter())})"
    elif kind in ("source", "vector"):
        names = {
            int(_enum_value(QgsProcessing, n, ("SourceType", n))): label
            for n, label in (
                ("TypeVectorPoint", "points"),
                ("TypeVectorLine", "lines"),
                ("TypeVectorPolygon", "polygons"),
                ("TypeVectorAnyGeometry", "any geometry"),
                ("TypeVector", "any, or a table"),
            )
        }
        kinds = [names.get(int(t), str(t)) for t in param.dataTypes()]
        if kinds:
            text += f" ({', '.join(kinds)})"
    elif kind == "field" and param.parentLayerParameterName():
        text = f"field of `{param.parentLayerParameterName()}`"
    return text


def _enum_value(owner, old_name: str, scoped: tuple):
    """An enum member by its QGIS 3.22 name, else its scoped name (QGIS >= 3.36)."""
    if hasattr(owner, old_name):
        return getattr(owner, old_name)
    obj = owner
    for name in scoped:
        obj = getattr(obj, name)
    return obj


def _patterns(file_filter: str) -> str:
    found = re.findall(r"\*\.[\w.]+", file_filter)
    return ", ".join(dict.fromkeys(f.lstrip("*") for f in found)) or file_filter


def flags_of(param) -> tuple[bool, bool]:
    from dlstudio_qgis.processing.base import FLAG_ADVANCED, FLAG_OPTIONAL

    flags = int(param.flags())
    return bool(flags & int(FLAG_OPTIONAL)), bool(flags & int(FLAG_ADVANCED))


def help_paragraphs(alg) -> list[str]:
    """The algorithm's help as plain paragraphs: HELP where it has one, else shortHelpString."""
    text = getattr(alg, "HELP", "") or ""
    if not text:
        raw = alg.shortHelpString() or ""
        raw = re.split(r"<h3>", raw)[0]  # the parameter list is written below, from the params
        raw = re.sub(r"</p>|<br\s*/?>", "\n\n", raw)
        text = html.unescape(re.sub(r"<[^>]+>", "", raw))
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def parameter_table(params) -> list[str]:
    lines = [
        "| Parameter | Label | Type | Default | Help |",
        "|---|---|---|---|---|",
    ]
    for p in params:
        optional, _ = flags_of(p)
        kind = type_text(p) + (", optional" if optional else "")
        lines.append(
            f"| `{p.name()}` | {cell(p.description())} | {kind} | {default_text(p)} "
            f"| {cell(p.help())} |"
        )
    return lines


def algorithm_section(alg) -> list[str]:
    out = [
        f'<a id="{alg.name()}"></a>',
        "",
        f"## {alg.displayName()}",
        "",
        f"`{alg.id()}` · group *{alg.group()}* · "
        f"`qgis_process.bin help {alg.id()}` shows the same help.",
        "",
    ]
    for para in help_paragraphs(alg):
        out += [cell(para).replace("\\|", "|"), ""]
    params = [p for p in alg.parameterDefinitions()]
    basic = [p for p in params if not flags_of(p)[1]]
    advanced = [p for p in params if flags_of(p)[1]]
    if basic:
        out += ["### Parameters", "", *parameter_table(basic), ""]
    if advanced:
        out += [
            "### Advanced parameters",
            "",
            "Under *Advanced Parameters* in the algorithm's dialog.",
            "",
            *parameter_table(advanced),
            "",
        ]
    outputs = alg.outputDefinitions()
    if outputs:
        out += ["### Outputs", "", "| Output | Label | Type |", "|---|---|---|"]
        for o in outputs:
            kind = OUTPUT_TYPE_NAMES.get(o.type(), o.type())
            out.append(f"| `{o.name()}` | {cell(o.description())} | {kind} |")
        out.append("")
    return out


def render(provider) -> str:
    from dlstudio_qgis.processing.provider import ALGORITHMS

    order = {cls.NAME: i for i, cls in enumerate(ALGORITHMS) if getattr(cls, "NAME", "")}
    algs = sorted(provider.algorithms(), key=lambda a: (order.get(a.name(), 1e9), a.name()))
    groups: dict[str, list] = {}
    for alg in algs:
        groups.setdefault(alg.groupId(), []).append(alg)
    group_ids = sorted(groups, key=lambda g: (GROUP_ORDER + (g,)).index(g))

    out = [
        "# Algorithm reference",
        "",
        "<!-- Generated by scripts/gen_docs.py from the algorithms' own help: do not edit. "
        "Run `make docs` after changing an algorithm. -->",
        "",
        f"Every algorithm of the *{provider.name()}* provider (id `{provider.id()}`), in "
        "workflow order, with the help the Processing Toolbox shows. Run them from the "
        'Toolbox, the graphical modeler, Python (`processing.run("dlstudio:<name>", '
        "{...})`) or headless (`qgis_process.bin run dlstudio:<name> -- NAME=value ...`; "
        "see [the workflow](workflow.md)). Choices are given by their code (`STATUS=APPROVED`), "
        "booleans as `true`/`false`.",
        "",
    ]
    for gid in group_ids:
        out.append(f"- **{groups[gid][0].group()}**")
        for alg in groups[gid]:
            summary = help_paragraphs(alg)[:1]
            first = re.split(r"(?<=\.)\s", summary[0])[0] if summary else ""
            out.append(f"  - [{alg.displayName()}](#{alg.name()}) `{alg.id()}`: {cell(first)}")
    out.append("")
    for gid in group_ids:
        for alg in groups[gid]:
            out += algorithm_section(alg)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the file to write")
    args = parser.parse_args(argv)
    profile = tempfile.mkdtemp(prefix="dls-gen-docs-")
    try:
        app, provider = start_qgis(profile)
        text = render(provider)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        count = len(provider.algorithms())
        print(f"Wrote {args.output} ({count} algorithms).")
        app.exitQgis()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
