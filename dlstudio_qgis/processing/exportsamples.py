"""The samples an export sends to the worker, collected in QGIS, and its output folder checks.

A project's Approved samples in Reviewed work units, or a layer's features with their class
field, reprojected to the raster's CRS, repaired (makeValid), split into parts and clipped by
extent, written as a GeoJSON FeatureCollection with `class_value` and `fid` properties.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsProcessingException,
)

from ..core import SampleStatus, WorkUnitStatus
from ..core.geometry import to_wkb
from ..core.model import PALETTE
from ..engine.export.job import ExportClass
from .base import (
    GEOM_POINT,
    all_features,
    count,
    is_null,
    point_parts,
    polygon_parts,
    project_crs,
    tr,
    transform_to_project,
)

S, W = SampleStatus, WorkUnitStatus
#: files that mark a folder as an earlier export (OVERWRITE replaces only such a folder)
EXPORT_MARKERS = ("export_job.json", "map.txt", "esri_model_definition.emd")
OUTSIDE = "outside the raster or EXTENT"


# --- a project's samples -------------------------------------------------------------------


def project_samples(project, crs, area, context, feedback):
    """A project's Approved samples in Reviewed work units, in the raster's CRS, with the
    counts of those left out (by sample status, by work unit status, by extent)."""
    units = {u.fid: u.status for u in project.work_units()}
    classes = project.classes()
    known = {c.value for c in classes}
    pcrs = project_crs(project)
    transform = None if pcrs == crs else QgsCoordinateTransform(
        pcrs, crs, context.transformContext())  # fmt: skip
    samples = project.samples()
    by_status, by_unit, outside = Counter(), Counter(), Counter()
    items, unknown = [], Counter()
    for i, smp in enumerate(samples):
        if feedback.isCanceled():
            break
        feedback.setProgress(100.0 * i / max(1, len(samples)))
        if smp.status is not S.APPROVED:
            by_status[smp.status.label] += 1
            continue
        unit = units.get(smp.work_unit)
        if unit is not W.REVIEWED:
            by_unit[unit.label if unit else "missing"] += 1
            continue
        if smp.class_value not in known:
            unknown[smp.class_value] += 1
            continue
        geom = QgsGeometry()
        geom.fromWkb(to_wkb(smp.geometry))
        parts = _parts(geom, transform, area, outside)
        items += [(p, smp.class_value, smp.fid) for p in parts]
    if unknown:
        schema = ", ".join(f"{c.value}:{c.name}" for c in classes)
        raise QgsProcessingException(
            tr(f"{count(sum(unknown.values()), 'approved sample')} have class values not in the "
               f"project's schema ({', '.join(map(str, sorted(unknown)))}; the schema is "
               f"{schema}). Fix their class, or ask an analyst to add the class.")
        )  # fmt: skip
    n_out = sum(outside.values())
    left = []
    if by_status:
        left.append(f"{sum(by_status.values())} by sample status ({_breakdown(by_status)})")
    if by_unit:
        left.append(f"{sum(by_unit.values())} approved in work units not Reviewed "
                    f"({_breakdown(by_unit)})")  # fmt: skip
    if n_out:
        left.append(f"{n_out} outside the raster or EXTENT")
    summary = f"{len(samples)} samples in project '{project.name}'" + (
        f"; left out {', '.join(left)}" if left else "")  # fmt: skip
    if not items:
        raise QgsProcessingException(
            tr(f"No samples to export: of {summary}. Only Approved samples in Reviewed work "
               "units are exported: review them (dlstudio:reviewsamples) and finish their work "
               "units' review.")
        )  # fmt: skip
    feedback.pushInfo(tr(f"Samples to export: {len(items)}, of {summary}."))
    counts = {"samples": len(samples), "exported": len(items),
              "left_out_by_sample_status": sum(by_status.values()),
              "left_out_by_work_unit_status": sum(by_unit.values()),
              "left_out_by_extent": n_out}  # fmt: skip
    return items, [ExportClass(c.value, c.name, c.color) for c in classes], counts


def _parts(geom, transform, area, skipped: Counter) -> list[QgsGeometry]:
    """`geom` reprojected, repaired and split into parts; none when outside `area`."""
    geom = QgsGeometry(geom)
    if geom.isNull() or geom.isEmpty():
        skipped["without a geometry"] += 1
        return []
    if transform is not None:
        try:
            geom.transform(transform)
        except QgsCsException:
            skipped[OUTSIDE] += 1
            return []
    if geom.type() == GEOM_POINT:
        parts = point_parts(geom)
    else:
        parts, _ = polygon_parts(geom)
        if not parts:
            skipped["with a geometry that could not be repaired"] += 1
            return []
    inside = [p for p in parts if p.intersects(area)]
    if not inside:
        skipped[OUTSIDE] += 1
    for p in inside:
        p.get().dropZValue()
        p.get().dropMValue()
    return inside


def _classes_from_values(values) -> tuple[list[ExportClass], dict]:
    """Classes for a layer's class field: integer values as they are, names numbered 1, 2 ..."""
    distinct = sorted({v for v in values}, key=str)
    ints = {}
    for v in distinct:
        number = v if isinstance(v, int | float) else str(v).strip()
        if isinstance(number, str) and number.lstrip("-").isdigit():
            number = int(number)
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        ints[v] = number
    if all(isinstance(n, int) for n in ints.values()):
        bad = sorted(n for n in set(ints.values()) if n <= 0)
        if bad:
            raise QgsProcessingException(
                tr(f"Class values must be positive integers (0 is no data); the layer has "
                   f"{', '.join(map(str, bad))}.")
            )  # fmt: skip
        numbers = sorted(set(ints.values()))
        classes = [ExportClass(n, f"class_{n}", PALETTE[i % len(PALETTE)])
                   for i, n in enumerate(numbers)]  # fmt: skip
        return classes, ints
    odd = [
        v for v in distinct if isinstance(v, float) and not (math.isfinite(v) and v.is_integer())
    ]
    if odd:
        raise QgsProcessingException(
            tr(f"Class values are positive integers or class names; the layer has {odd[0]}.")
        )
    names = sorted({str(v).strip() for v in distinct}, key=str.lower)
    number = {name: i + 1 for i, name in enumerate(names)}
    classes = [ExportClass(i + 1, name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
    return classes, {v: number[str(v).strip()] for v in distinct}


def write_geojson(path: Path, items) -> None:
    features = [
        {"type": "Feature", "id": i + 1, "geometry": json.loads(geom.asJson()),
         "properties": {"class_value": int(value), "fid": int(fid)}}
        for i, (geom, value, fid) in enumerate(items)
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), "utf-8")


def _breakdown(counter: Counter) -> str:
    return ", ".join(f"{n} {what.lower()}" for what, n in sorted(counter.items()))


def layer_samples(source, index: int, crs, area, context, feedback):
    """A layer's features with their class (field `index`) as samples in the raster's CRS;
    classes from the field's distinct values."""
    transform = transform_to_project(source, crs, context, feedback, "samples", "raster")
    raw, skipped = [], Counter()
    total = source.featureCount() or 0
    for i, feature in enumerate(all_features(source)):
        if feedback.isCanceled():
            break
        if total:
            feedback.setProgress(100.0 * i / total)
        value = feature.attributes()[index]
        if is_null(value) or str(value).strip() == "":
            skipped["without a class value"] += 1
            continue
        parts = _parts(feature.geometry(), transform, area, skipped)
        raw += [(p, value, feature.id()) for p in parts]
    classes, lookup = _classes_from_values([v for _, v, _ in raw])
    items = [(g, lookup[v], fid) for g, v, fid in raw]
    left = ", ".join(f"{count(n, 'feature')} {why}" for why, n in skipped.items())
    if not items:
        raise QgsProcessingException(
            tr(f"No samples to export: the layer has {count(total, 'feature')}"
               + (f"; left out {left}" if left else "") + ".")
        )  # fmt: skip
    if left:
        feedback.pushWarning(tr(f"Left out {left}."))
    feedback.pushInfo(tr(f"Samples to export: {len(items)} (from {count(total, 'feature')})."))
    return (
        items,
        classes,
        {"features": total, **{f"left_out_{k.replace(' ', '_')}": n for k, n in skipped.items()}},
    )


# --- the output folder ---------------------------------------------------------------------


def check_output(output: Path, overwrite: bool) -> None:
    """Refuse a file, a non-empty folder without OVERWRITE, and (even with it) a non-empty
    folder that is not an earlier export; touches nothing."""
    if output.exists() and not output.is_dir():
        raise QgsProcessingException(tr(f"The output '{output}' is a file; give a folder."))
    if not output.is_dir() or not any(output.iterdir()):
        return
    if not overwrite:
        raise QgsProcessingException(
            tr(f"The output folder '{output}' is not empty. Choose an empty or new folder, or "
               "set OVERWRITE to replace an earlier export there.")
        )  # fmt: skip
    if not any((output / name).exists() for name in EXPORT_MARKERS):
        raise QgsProcessingException(
            tr(f"The output folder '{output}' is not empty and holds no earlier export "
               f"({', '.join(EXPORT_MARKERS)}); it is left alone even with OVERWRITE. Choose "
               "an empty or new folder.")
        )  # fmt: skip
