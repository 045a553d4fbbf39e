"""Training-data metadata formats (as ArcGIS names them) and the inference tools they fit.

Shared by the Processing side (to refuse early) and the engine (which decides).
"""

from __future__ import annotations

from .errors import ValidationError
from .model import InferenceTool

METADATA_FORMATS = (
    "PASCAL_VOC_rectangles",
    "KITTI_rectangles",
    "Classified_Tiles",
    "RCNN_Masks",
    "Labeled_Tiles",
    "MultiLabeled_Tiles",
)

FORMATS_FOR_TOOL: dict[InferenceTool, tuple[str, ...]] = {
    InferenceTool.DETECT_OBJECTS: ("PASCAL_VOC_rectangles", "KITTI_rectangles", "RCNN_Masks"),
    InferenceTool.CLASSIFY_PIXELS: ("Classified_Tiles",),
    InferenceTool.CLASSIFY_OBJECTS: ("Labeled_Tiles", "MultiLabeled_Tiles"),
}

IMAGE_FORMATS = ("TIFF", "PNG", "JPEG")


def check_format(metadata_format: str, tool: str | InferenceTool | None) -> str:
    """The canonical format name, or ValidationError naming the formats that fit the tool."""
    by_key = {f.lower(): f for f in METADATA_FORMATS}
    fmt = by_key.get(str(metadata_format).strip().lower())
    if fmt is None:
        raise ValidationError(
            f"Unknown metadata format '{metadata_format}'. Use one of: "
            f"{', '.join(METADATA_FORMATS)}."
        )
    if tool is not None:
        tool = InferenceTool.parse(tool)
        fits = FORMATS_FOR_TOOL[tool]
        if fmt not in fits:
            raise ValidationError(
                f"{fmt} does not fit a {tool.value} project; use {' or '.join(fits)}."
            )
    return fmt
