"""The export's metadata files: the model definition template, the accumulated statistics,
the human-readable summary and the job, with the field names ArcGIS uses where they exist."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from .job import ExportJob
from .plan import Tally
from .source import SourceInfo
from .stats import arcgis_state, summary

MODEL_TYPES = {
    "DETECT_OBJECTS": "ObjectDetection",
    "CLASSIFY_PIXELS": "ImageClassification",
    "CLASSIFY_OBJECTS": "ObjectClassification",
}
MODEL_TYPE_OF_FORMAT = {
    "PASCAL_VOC_rectangles": "ObjectDetection",
    "KITTI_rectangles": "ObjectDetection",
    "RCNN_Masks": "ObjectDetection",
    "Classified_Tiles": "ImageClassification",
    "Labeled_Tiles": "ObjectClassification",
    "MultiLabeled_Tiles": "ObjectClassification",
}
CLASS_ATTRIBUTE = "class_value"
EMD_NAME = "esri_model_definition.emd"
STATS_NAME = "esri_accumulated_stats.json"


def rgb(color: str) -> list[int]:
    """'#rrggbb', '#rgb' or 'r,g,b' as [r, g, b]; grey when unreadable."""
    text = str(color).strip()
    try:
        if text.startswith("#"):
            h = text[1:]
            if len(h) == 3:
                h = "".join(c * 2 for c in h)
            return [int(h[i : i + 2], 16) for i in (0, 2, 4)]
        parts = [int(float(p)) for p in text.split(",")[:3]]
        if len(parts) == 3:
            return [max(0, min(255, p)) for p in parts]
    except ValueError:
        pass
    return [128, 128, 128]


def nodata_json(value):
    """Nodata as JSON holds it: NaN (not JSON) becomes the string "NaN"."""
    return "NaN" if value is not None and value != value else value


def model_type(job: ExportJob) -> str:
    if job.inference_tool:
        key = str(job.inference_tool).strip().upper().replace(" ", "_")
        if key in MODEL_TYPES:
            return MODEL_TYPES[key]
    return MODEL_TYPE_OF_FORMAT[job.metadata_format]


def _class_rows(job: ExportJob) -> list[dict]:
    return [{"Value": c.value, "Name": c.name, "Color": rgb(c.color)} for c in job.classes]


def build_emd(job: ExportJob, info: SourceInfo, bands: list[dict], tally: Tally) -> dict:
    tx, ty = job.tile_size
    multispectral = len(info.bands) != 3 or info.dtype != "uint8"
    return {
        "Framework": "PyTorch",
        "ModelType": model_type(job),
        "ImageHeight": ty,
        "ImageWidth": tx,
        "ChipSize": min(tx, ty),
        "ExtractBands": [b - 1 for b in info.bands],
        "Classes": _class_rows(job),
        "MetaDataMode": job.metadata_format,
        "ImageSpaceUsed": "MAP_SPACE",
        "IsMultispectral": multispectral,
        "AllTilesStats": [
            {k: row[k] for k in ("BandName", "Min", "Max", "Mean", "StdDev")} for row in bands
        ],
        "InputRastersProps": {
            "RasterCount": 1,
            "SensorName": "",
            "BandNames": list(info.band_names),
            "PixelType": info.pixel_type,
            "NoData": nodata_json(info.nodata),
            "CellSize": dict(zip(("x", "y"), info.cell_size, strict=True)),
            "SpatialReference": {"wkt": info.crs_wkt},
        },
        "WellKnownBandNames (FYI, these band names can be used in ExtractBands)": list(
            info.band_names
        ),
        "DLStudio": {
            "ExportJob": job.to_dict(),
            "ExportedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            "NumChips": tally.chips,
            "SourceRaster": info.path,
            "SourceBands": list(info.bands),
        },
    }


def build_accumulated(
    job: ExportJob, info: SourceInfo, bands: list[dict], tally: Tally, moments, pixels
) -> dict:
    tx, ty = job.tile_size
    values = [c.value for c in job.classes]
    lo, hi, total = tally.per_chip
    classes = []
    for c in job.classes:
        row = {
            "ClassValue": c.value, "ClassName": c.name, "Color": rgb(c.color),
            "NumFeatures": tally.objects.get(c.value, 0), "NumImages": tally.images.get(c.value, 0),
        }  # fmt: skip
        if pixels is not None:
            row["NumPixels"] = int(pixels[c.value])
        classes.append(row)
    area_rows = []
    for v in values:
        a = tally.area.get(v)
        n = tally.objects.get(v, 0)
        lo_a, hi_a, mean_a = (a[0], a[1], a[2] / n) if a and n else (None, None, None)
        area_rows.append({"ClassValue": v, "Min": lo_a, "Max": hi_a, "Mean": mean_a})
    cx, cy = info.cell_size
    out = {
        "ClassAttribute": CLASS_ATTRIBUTE,
        "Classes": classes,
        "MetaDataMode": job.metadata_format,
        "NumTiles": tally.chips,
        "NumTilesAsDouble": float(tally.chips),
        "NumSourceTiles": tally.tiles,
        "ImageHeight": ty,
        "ImageWidth": tx,
        "TileSizeX": tx,
        "TileSizeY": ty,
        "StrideX": job.stride[0],
        "StrideY": job.stride[1],
        "NumBands": len(info.bands),
        "Bands": list(info.bands),
        "ImageFormat": job.image_format,
        "PixelType": info.pixel_type,
        "NoData": nodata_json(info.nodata),
        "MinCellSize": {"x": cx, "y": cy},
        "MaxCellSize": {"x": cx, "y": cy},
        "ImageSpaceUsed": "MAP_SPACE",
        "RotationAngle": job.rotation_angle,
        "FeatureStats": {
            "NumImagesTotal": tally.chips,
            "NumImagesPerClass": [tally.images.get(v, 0) for v in values],
            "NumFeaturesPerClass": [tally.objects.get(v, 0) for v in values],
            "NumFeaturesTotal": sum(tally.objects.values()),
            "NumFeaturesDropped": tally.dropped,
            "NumFeaturesPerImage": {
                "Min": lo or 0,
                "Max": hi or 0,
                "Mean": total / tally.chips if tally.chips else 0,
            },  # fmt: skip
            "FeatureAreaPerClass": area_rows,
        },
        "BandStats": bands,
        "BandStatsState": arcgis_state(moments),
    }
    if pixels is not None:
        out["ClassPixelStats"] = {
            "NumImagesTotal": tally.chips,
            "NumImagesPerClass": [tally.images.get(v, 0) for v in values],
            "NumPixelsPerClass": [int(pixels[v]) for v in values],
            "NumPixelsNoData": int(pixels[0]),
        }
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.4f}" if abs(v) < 1e6 else f"{v:.6g}"
    return str(int(v)) if isinstance(v, float) and math.isfinite(v) else str(v)


def stats_text(job: ExportJob, info: SourceInfo, bands, tally: Tally, skipped, seconds) -> str:
    tx, ty = job.tile_size
    lines = [
        "Deep Learning Studio - Export Training Data for Deep Learning",
        "",
        f"Raster:            {info.path}",
        f"CRS:               {info.crs_name}",
        f"Bands exported:    {', '.join(map(str, info.bands))} ({info.dtype})",
        f"Metadata format:   {job.metadata_format}",
        f"Image format:      {job.image_format}",
        f"Tile size:         {tx} x {ty} pixels, stride {job.stride[0]} x {job.stride[1]}",
        f"Rotation angle:    {job.rotation_angle:g}",
        f"Image chips:       {tally.chips} (from {tally.tiles} tiles)",
        f"Tiles skipped:     {skipped} (no object)",
        f"Objects written:   {sum(tally.objects.values())}",
        f"Objects dropped:   {tally.dropped} (less than {job.min_overlap:g} inside a chip)",
        f"Seconds:           {seconds:.1f}",
        "",
        "Class                          objects   chips",
    ]
    for c in job.classes:
        label = f"{c.value} {c.name}"[:30]
        n, m = tally.objects.get(c.value, 0), tally.images.get(c.value, 0)
        lines.append(f"{label:<30} {n:>8} {m:>7}")
    lines += ["", "Band statistics over the chips (nodata excluded)",
              "band  name              min           max           mean          std"]  # fmt: skip
    for row in bands:
        lines.append(
            f"{row['Band']:<5} {str(row['BandName'])[:16]:<16} {_fmt(row['Min']):>13} "
            f"{_fmt(row['Max']):>13} {_fmt(row['Mean']):>13} {_fmt(row['StdDev']):>13}"
        )
    return "\n".join(lines) + "\n"


def _dump(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_metadata(root: Path, job, info, tally, moments, pixels, skipped, seconds) -> None:
    bands = summary(moments, info.bands, info.band_names)
    _dump(root / EMD_NAME, build_emd(job, info, bands, tally))
    _dump(root / STATS_NAME, build_accumulated(job, info, bands, tally, moments, pixels))
    (root / "stats.txt").write_text(
        stats_text(job, info, bands, tally, skipped, seconds), encoding="utf-8"
    )
    _dump(root / "export_job.json", job.to_dict())
