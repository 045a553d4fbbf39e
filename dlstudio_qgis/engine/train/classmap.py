"""PRETRAINED_MODEL's classes against the training data's: which pretrained class each class
of the data takes its head weights from. Standard library only, so that the QGIS side can
refuse a package that does not fit before any worker starts.

Classes are matched by name (case and surrounding spaces aside). When no name is shared and
the counts are equal, they are matched by position (a model whose classes were renamed); when
no name is shared and the counts differ, the package cannot be used: InputError.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import InputError

BACKGROUND = ("background", "__background__")
SEGMENTATION = ("UNET", "PSPNET", "DEEPLAB")
DETECTION = ("SSD", "RETINANET", "FASTERRCNN", "MASKRCNN")


def class_names(emd: dict) -> list[str]:
    """The names of a model definition's Classes (ours and ArcGIS's spellings)."""
    return [str(c.get("Name", c.get("ClassName"))) for c in emd.get("Classes") or []]


def output_names(emd: dict) -> list[str]:
    """The class name of each output index of a packaged model."""
    params = emd.get("ModelParameters") or {}
    if params.get("output_classes"):
        return [str(n) for n in params["output_classes"]]
    names = class_names(emd)
    kind = str(params.get("model_type", "")).upper()
    if kind in SEGMENTATION:
        return ["background", *names]
    if kind in DETECTION:
        return ["__background__", *names]
    return names


def real_classes(names: list[str]) -> list[str]:
    return [n for n in names if n not in BACKGROUND]


def _key(name: str) -> str:
    return name.strip().casefold()


@dataclass
class ClassMatch:
    pairs: dict[str, str]  # class of the data -> class of the pretrained model
    by_position: bool
    new: list[str]  # classes of the data the pretrained model does not have

    def describe(self, package: str) -> str:
        if self.by_position:
            pairs = ", ".join(f"{old} -> {new}" for new, old in self.pairs.items())
            return f"no class names in common, so classes matched by position: {pairs}"
        text = f"classes matched by name: {', '.join(self.pairs) or 'none'}"
        return text + (f"; new: {', '.join(self.new)}" if self.new else "")


def match_classes(pretrained: list[str], data: list[str], package: str) -> ClassMatch:
    """Match the data's classes (no background) with the pretrained model's."""
    old = {_key(n): n for n in pretrained}
    pairs = {n: old[_key(n)] for n in data if _key(n) in old}
    if pairs:
        return ClassMatch(pairs, False, [n for n in data if n not in pairs])
    if len(pretrained) == len(data):
        return ClassMatch(dict(zip(data, pretrained, strict=True)), True, [])
    raise InputError(
        f"PRETRAINED_MODEL '{package}' has {len(pretrained)} classes "
        f"({', '.join(pretrained) or 'none'}) and the training data {len(data)} "
        f"({', '.join(data)}), with no class name in common, so its class layers cannot be "
        "used. Give the classes the pretrained model's names, export the same classes, or "
        "leave PRETRAINED_MODEL empty."
    )


def check_pretrained(emd: dict, model_type: str, backbone: str, classes: list[str], path):
    """The class match of a pretrained model's definition with a job (its model type, backbone
    and the data's class names); InputError when the package cannot be fine-tuned here."""
    params = emd.get("ModelParameters") or {}
    pair = (str(params.get("model_type", "")).upper(), str(params.get("backbone", "")).upper())
    if pair != (model_type.upper(), backbone.upper()):
        raise InputError(
            f"PRETRAINED_MODEL '{path}' is a {pair[0] or '?'} model on {pair[1] or '?'}; this job "
            f"trains {model_type} on {backbone}. Set MODEL_TYPE and BACKBONE to the "
            "package's, or leave PRETRAINED_MODEL empty."
        )
    return match_classes(real_classes(output_names(emd)), real_classes(classes), path)


def index_mapping(old_outputs: list[str], new_outputs: list[str], match: ClassMatch) -> dict:
    """New output index -> pretrained output index (backgrounds with each other)."""
    old_index = {n: i for i, n in enumerate(old_outputs)}
    mapping = {}
    for j, name in enumerate(new_outputs):
        source = name if name in BACKGROUND else match.pairs.get(name)
        if source in old_index:
            mapping[j] = old_index[source]
    return mapping
