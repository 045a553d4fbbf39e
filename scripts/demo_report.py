#!/usr/bin/env python3
"""The demo's report (report.html) and the summary it prints, from what demo.sh left behind.

    python3 scripts/demo_report.py DEMO_OUT [--runs N] [--seconds S]

Reads DEMO_OUT/logs/manifest.tsv (which qgis_process log holds which step), the logs, the
project status (status.json), the project's audit trail, the models (.dlpk: their .emd,
loss_graph.png and show_results.png, read with zipfile) and the accuracy tables, and writes
``report.html`` with its pictures in ``figures/`` (the map pictures come from demo_qgis.py).
Prints the summary: the team's figures, the training, the accuracy and where the outputs are.
Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sqlite3
import sys
import zipfile
from html import escape
from pathlib import Path

from demo_html import STYLE, bar_table, figure, table  # type: ignore[import-not-found]

UNIT_LABELS = {"queued": "Queued", "in_progress": "In progress",
               "pending_review": "Pending review", "in_review": "In review",
               "reviewed": "Reviewed"}  # fmt: skip
UNIT_COLORS = {"queued": "#9e9e9e", "in_progress": "#f0ad4e", "pending_review": "#5bc0de",
               "in_review": "#337ab7", "reviewed": "#5cb85c"}  # fmt: skip
SAMPLE_LABELS = {"pending": "Pending approval", "approved": "Approved", "rejected": "Rejected"}
SAMPLE_COLORS = {"pending": "#f0ad4e", "approved": "#5cb85c", "rejected": "#d9534f"}
EPOCH = re.compile(r"epoch (\d+)/(\d+), (.*?), lr [^,]+, ([\d.]+) s")


class Demo:
    """What one demo run left in its output folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.logs: dict[str, dict] = {}
        for line in (out / "logs" / "manifest.tsv").read_text().splitlines():
            key, _, rel = line.partition("\t")
            self.logs[key] = json.loads((out / rel).read_text())
        self.scene = json.loads(
            (out / "logs" / "00_synth-scene.jsonl").read_text().strip().splitlines()[-1]
        )
        self.split = json.loads((out / "reference" / "split.json").read_text())
        self.status = json.loads((out / "status.json").read_text())

    def results(self, key: str) -> dict:
        return self.logs[key]["results"]

    def info(self, key: str) -> list[str]:
        return (self.logs[key].get("log") or {}).get("info", [])

    def history(self) -> dict[str, int]:
        """How many times each action appears in the project's audit trail."""
        con = sqlite3.connect(f"file:{self.out / 'project.gpkg'}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT action, COUNT(*) FROM dls_history GROUP BY action")
            return dict(rows.fetchall())
        finally:
            con.close()

    def model(self, key: str, name: str) -> dict:
        """The trained model: the .emd, its epochs and its pictures, copied to figures/."""
        path = Path(self.results(key)["OUTPUT"])
        with zipfile.ZipFile(path) as z:
            emd = json.loads(next(z.read(n) for n in z.namelist() if n.endswith(".emd")))
            pictures = []
            for member, what in (("loss_graph.png", "loss"), ("show_results.png", "results")):
                if member in z.namelist():
                    target = self.out / "figures" / f"{name}_{what}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(member))
                    pictures.append(target)
        epochs = []
        for line in self.info(key):
            m = EPOCH.match(line)
            if m:
                figures = dict(kv.split(" ", 1) for kv in m.group(3).split(", "))
                epochs.append({"epoch": int(m.group(1)), **figures, "seconds": m.group(4)})
        return {"path": path, "emd": emd, "pictures": pictures, "epochs": epochs,
                "results": self.results(key)}  # fmt: skip

    def rows(self, name: str) -> list[dict]:
        with open(self.out / "results" / name, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))


def number(value, digits: int = 3) -> str:
    if value in (None, ""):
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return escape(str(value))


def rel(demo: Demo, path: Path | str) -> str:
    return Path(path).resolve().relative_to(demo.out).as_posix()


# --- sections --------------------------------------------------------------------------------


def team_section(demo: Demo) -> str:
    s = demo.status
    units, samples = s["work_units"], s["samples"]
    history = demo.history()
    collectors = [
        [escape(u), c["total"], c["approved"], c["rejected"]]
        for u, c in sorted(s["per_collector"].items())
    ]
    rounds = {
        "samples collected": history.get("collect", 0),
        "samples reviewed": history.get("review", 0),
        "work units marked complete": history.get("mark_complete", 0),
        "reviews finished": history.get("finish_review", 0),
        "work units sent back to their collector": history.get("send_back", 0),
    }
    return (
        "<h2>1. The team</h2>"
        f"<p>Project <b>{escape(s['project'])}</b> ({escape(s['inference_tool'])}): olivia "
        "(owner) created it and divided the scene into work units; carla and colin "
        "(collectors) drew building boxes, colin some deliberately on empty ground; adam "
        "(analyst) reviewed them, rejected the wrong ones, sent that work unit back, and "
        "reviewed colin's fixes. Every step was a <code>qgis_process</code> run.</p>"
        + figure(
            "figures/team.png",
            "The work units (by status) and the training samples "
            "(by class and status; rejected ones crossed) over the scene, with the "
            "training and held-out areas.",
        )  # fmt: skip
        + "<div class='cols'>"
        + bar_table("Work units", units["by_status"], units["total"], UNIT_LABELS, UNIT_COLORS)
        + bar_table(
            "Samples", samples["by_status"], samples["total"], SAMPLE_LABELS, SAMPLE_COLORS
        )  # fmt: skip
        + "</div><div class='cols'>"
        + table(["Collector", "Collected", "Approved", "Rejected"], collectors, "By collector")
        + table(
            ["From the audit trail", "Count"], [[k, v] for k, v in rounds.items()], "Review rounds"
        )  # fmt: skip
        + "</div>"
        f"<p>{s['percent_reviewed']}% of the work units are reviewed; "
        f"{s['exportable_samples']} samples are exportable (approved, in reviewed units).</p>"
    )


def data_section(demo: Demo) -> str:
    sp = demo.split
    rows = []
    for key, what, fmt in (
        ("export_detector", "Building boxes (the team's approved samples)",
         "PASCAL_VOC_rectangles"),
        ("export_pixels", "Land cover polygons (the scene's buildings, roads and ground)",
         "Classified_Tiles"),
    ):  # fmt: skip
        r = demo.results(key)
        rows.append([what, fmt, r["SAMPLES"], r["CHIPS"], r["OBJECTS"]])
    return (
        "<h2>2. Training data</h2>"
        f"<p>The scene ({demo.scene['width']} × {demo.scene['height']} px, "
        f"{demo.scene['pixel_size']} m pixels, {escape(demo.scene['crs'])}, "
        f"{demo.scene['n_buildings']} buildings, {demo.scene['n_roads']} roads) is split at row "
        f"{sp['row']}: training data comes from the top {sp['row']} rows only; the bottom "
        f"{sp['rows'] - sp['row']} rows are held out for inference and accuracy.</p>"
        + table(["Samples", "Format", "Samples exported", "Chips (256 px)", "Objects"], rows)
    )


def model_section(demo: Demo, key: str, name: str, title: str, metric_names: list[str]) -> str:
    m = demo.model(key, name)
    emd, r = m["emd"], m["results"]
    params = emd.get("ModelParameters", {})
    metrics = json.loads(r.get("METRICS") or "{}")
    facts = [
        ["Model", f"{escape(emd.get('ModelName', ''))} on {escape(params.get('backbone', ''))}"],
        ["Classes", escape(", ".join(c["Name"] for c in emd.get("Classes", [])))],
        ["Chip size", f"{emd.get('ImageWidth')} px"],
        ["Epochs (best)", f"{r['EPOCHS']} ({r['BEST_EPOCH']})"],
        ["Learning rate", number(r["LEARNING_RATE"], 4)],
        ["Validation loss", number(r["VALID_LOSS"])],
        *[[k, number(v)] for k, v in metrics.items() if not isinstance(v, dict)],
        ["Training time", f"{(emd.get('Metrics') or {}).get('seconds', '?')} s on the CPU"],
        ["Package", f"<a href='{rel(demo, m['path'])}'>{escape(rel(demo, m['path']))}</a>"],
    ]
    cols = ["epoch", "train_loss", "valid_loss", *metric_names, "seconds"]
    epochs = [[e.get(c, "") for c in cols] for e in m["epochs"]]
    pictures = "".join(
        figure(
            rel(demo, p),
            "Training and validation loss per epoch"
            if "loss" in p.name
            else "Validation chips: the reference and the model's prediction",
        )  # fmt: skip
        for p in m["pictures"]
    )
    return (
        f"<h3>{escape(title)}</h3><div class='cols'>"
        + table(["", ""], facts, "The model")
        + table(cols, epochs, "Epochs")
        + "</div>"
        + pictures
    )


def detection_section(demo: Demo) -> str:
    r, n = demo.results("accuracy_detector"), demo.results("detect")["DETECTIONS"]
    arguments = demo.logs["detect"].get("inputs", {}).get("ARGUMENTS", "")
    rows = [
        [escape(row["class_name"]), *(number(row[c]) for c in ("precision", "recall", "f1", "ap")),
         *(row[c] for c in ("tp", "fp", "fn", "ground_truth", "detections"))]
        for row in demo.rows("detection_accuracy.csv")
    ]  # fmt: skip
    return (
        "<h3>Buildings detected (SSD) against the ground truth</h3>"
        f"<p>{n} buildings detected in the held-out area ({escape(arguments or 'defaults')})."
        f" mAP <b>{number(r['MAP'])}</b>, "
        f"precision <b>{number(r['PRECISION'])}</b>, recall <b>{number(r['RECALL'])}</b>, "
        f"F1 <b>{number(r['F1'])}</b> (a detection is right when its IoU with a building of "
        "the scene's ground truth is at least 0.5; only objects centred in the held-out area "
        "count). <a href='results/detection_accuracy.html'>The full accuracy report</a>.</p>"
        + table(["Class", "Precision", "Recall", "F1", "AP", "TP", "FP", "FN", "Ground truth",
                 "Detections"], rows)  # fmt: skip
        + figure("figures/detections.png", "The detected buildings (outlined in their class "
                 "colour) and the ground truth (dashed yellow) over the imagery of the held-out "
                 "area.")
        + figure("figures/detections_detail.png", "A detail, at twice the scene's resolution.")
    )  # fmt: skip


def pixel_section(demo: Demo) -> str:
    r = demo.results("accuracy_pixels")
    rows = demo.rows("pixel_accuracy.csv")
    # no_class is there only when some pixels were left unclassified
    predicted = [k for k in rows[0] if k.startswith("c_") or k == "no_class"]
    names = {f"c_{row['class_value']}": row["class_name"] for row in rows if row["class_value"]}
    head = ["Reference \\ predicted", *(names.get(c, c.replace("_", " ")) for c in predicted),
            "Total", "Precision", "Recall", "F1", "IoU"]  # fmt: skip
    body = [
        [escape(row["class_name"]), *(row[c] for c in predicted), row["total"],
         *(number(row[c]) for c in ("precision", "recall", "f1", "iou"))]
        for row in rows
    ]  # fmt: skip
    return (
        "<h3>Land cover classified (UNET) against the reference polygons</h3>"
        f"<p>Overall accuracy <b>{number(r['OVERALL_ACCURACY'])}</b>, kappa "
        f"<b>{number(r['KAPPA'])}</b>, mean IoU <b>{number(r['MIOU'])}</b>, over every pixel "
        "of the held-out area. <a href='results/pixel_accuracy.html'>The full accuracy "
        "report</a>.</p>"
        + table(head, [[escape(str(c)) for c in row] for row in body], "Confusion matrix (pixels)")
        + figure(
            "figures/land_cover.png",
            "The classified land cover over the imagery of the held-out area.",
        )  # fmt: skip
    )


OUTPUTS = [
    ("demo.qgz", "the QGIS project: every layer below, styled (qgis demo.qgz)"),
    ("report.html", "this report"),
    ("scene.tif", "the synthetic scene; buildings.geojson, roads.geojson: its ground truth"),
    ("project.gpkg", "the team's project (work units, samples, members, history, jobs)"),
    ("training_data/", "the building chips (PASCAL_VOC_rectangles)"),
    ("training_pixels/", "the land cover chips (Classified_Tiles)"),
    ("models/", "the trained models (.dlpk)"),
    ("results/", "detections.gpkg, land_cover.tif and the accuracy tables and reports"),
    ("reference/", "the split, the land cover reference and the held-out area"),
    ("status.html", "the project's status report"),
    ("logs/", "one JSON log per qgis_process run"),
]


def write_report(demo: Demo, runs: int, seconds: int) -> Path:
    outputs = [[f"<a href='{name}'>{name}</a>", escape(what)] for name, what in OUTPUTS]
    body = (
        f"<h1>Deep Learning Studio demo: {escape(demo.status['project'])}</h1>"
        f"<p class='note'>{runs} qgis_process runs in {seconds} s, on the CPU.</p>"
        + team_section(demo)
        + data_section(demo)
        + "<h2>3. Training</h2>"
        + model_section(demo, "train_detector", "detector", "Building detector", ["map"])
        + model_section(
            demo, "train_pixels", "land_cover", "Land cover classifier", ["miou", "pixel_accuracy"]
        )  # fmt: skip
        + "<h2>4. Results in the held-out area</h2>"
        + detection_section(demo)
        + pixel_section(demo)
        + "<h2>5. Outputs</h2>"
        + table(["File", "What"], outputs)
    )
    path = demo.out / "report.html"
    path.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Deep Learning "
        f"Studio demo</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        encoding="utf-8",
    )
    return path


def summary(demo: Demo, runs: int, seconds: int) -> str:
    s, out, sp = demo.status, demo.out, demo.split
    units, samples = s["work_units"], s["samples"]
    unit_n, sample_n = units["by_status"], samples["by_status"]
    det, pix = demo.results("accuracy_detector"), demo.results("accuracy_pixels")
    d_map = json.loads(demo.results("train_detector")["METRICS"]).get("map")
    p_miou = json.loads(demo.results("train_pixels")["METRICS"]).get("miou")
    x, found = demo.results("export_detector"), demo.results("detect")["DETECTIONS"]
    lines = [
        f"Summary of '{s['project']}' ({s['inference_tool']}):",
        f"  work units      {units['total']}: {unit_n['reviewed']} reviewed "
        f"({s['percent_reviewed']}%)",
        f"  samples         {samples['total']}: {sample_n['approved']} approved, "
        f"{sample_n['rejected']} rejected, {sample_n['pending']} pending",
        *(
            f"  {u:<15} {c['total']} collected: {c['approved']} approved, {c['rejected']} rejected"
            for u, c in sorted(s["per_collector"].items())
        ),
        f"  training data   {x['CHIPS']} chips with {x['OBJECTS']} buildings from the top "
        f"{sp['row']} rows (the bottom {sp['rows'] - sp['row']} are held out)",
        f"  detector        SSD RESNET18, {demo.results('train_detector')['EPOCHS']} epochs on "
        f"the CPU: validation mAP {number(d_map)}",
        f"  land cover      UNET RESNET18, {demo.results('train_pixels')['EPOCHS']} epochs on "
        f"the CPU: validation mIoU {number(p_miou)}",
        "",
        "Accuracy in the held-out area (against the scene's ground truth):",
        f"  buildings       {found} detected: mAP {number(det['MAP'])}, precision "
        f"{number(det['PRECISION'])}, recall {number(det['RECALL'])}, F1 {number(det['F1'])} "
        "(IoU >= 0.5)",
        f"  land cover      overall accuracy {number(pix['OVERALL_ACCURACY'])}, kappa "
        f"{number(pix['KAPPA'])}, mean IoU {number(pix['MIOU'])}",
        "",
        f"{runs} qgis_process runs in {seconds} s. Outputs in {out}:",
        "  report.html     the report: team, training, loss plots, accuracy, pictures",
        f"  demo.qgz        the QGIS project, every layer styled:  qgis {out / 'demo.qgz'}",
        "  models/         buildings_ssd.dlpk, land_cover_unet.dlpk",
        "  results/        detections.gpkg, land_cover.tif, accuracy tables and reports",
        "  project.gpkg, training_data/, training_pixels/, status.html, logs/",
    ]
    return "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=0)
    args = ap.parse_args(argv)
    demo = Demo(args.out.resolve())
    write_report(demo, args.runs, args.seconds)
    print(summary(demo, args.runs, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
