"""The provider, the algorithms' metadata, and the import rules of the QGIS side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingParameterDefinition

from dlstudio_qgis.processing import ALGORITHMS
from dlstudio_qgis.processing.base import FLAG_ADVANCED, parse_id_list

REPO = Path(__file__).resolve().parents[2]
IDS = [
    "createproject",
    "addmember",
    "createworkunits",
    "importsamples",
    "updateworkunitstatus",
    "reviewsamples",
    "projectstatus",
    "exporttrainingdata",
    "traindeeplearningmodel",
    "detectobjects",
    "classifypixels",
    "classifyobjects",
    "computeaccuracyforobjectdetection",
    "computeaccuracyforpixelclassification",
    "computeaccuracyforobjectclassification",
]
#: the accuracy tools compare layers and rasters: no project, no acting user
NO_PROJECT = {
    "computeaccuracyforobjectdetection",
    "computeaccuracyforpixelclassification",
    "computeaccuracyforobjectclassification",
}
DEEP_LEARNING = {"exporttrainingdata", "traindeeplearningmodel", "detectobjects",
                 "classifypixels", "classifyobjects", *NO_PROJECT}  # fmt: skip
GROUPS = {name: ("Deep learning", "deeplearning") for name in DEEP_LEARNING}
INFER_ADVANCED = {"TRUST_MODEL_CODE", "PROJECT", "USER"}
ADVANCED = {
    "exporttrainingdata": {"MIN_OVERLAP", "WORKERS", "USER"},
    "traindeeplearningmodel": {"PROJECT", "USER", "SEED", "LOADER_WORKERS"},
    "createproject": {"SAMPLE_GEOMETRY", "USER"},
    "updateworkunitstatus": {"MODE", "USER"},
    "detectobjects": INFER_ADVANCED,
    "classifypixels": INFER_ADVANCED,
    "classifyobjects": INFER_ADVANCED,
    "computeaccuracyforobjectdetection": set(),
    "computeaccuracyforpixelclassification": {"WINDOW_SIZE"},
    "computeaccuracyforobjectclassification": set(),
}


def _alg(name):
    alg = QgsApplication.processingRegistry().algorithmById(f"dlstudio:{name}")
    assert alg is not None, f"dlstudio:{name} is not registered"
    return alg


def test_provider_registered():
    provider = QgsApplication.processingRegistry().providerById("dlstudio")
    assert provider is not None
    assert provider.name() == "Deep Learning Studio"
    assert sorted(a.name() for a in provider.algorithms()) == sorted(IDS)
    assert len(ALGORITHMS) == len(IDS) == 15


@pytest.mark.parametrize("name", IDS)
def test_algorithm_metadata(name):
    alg = _alg(name)
    assert (alg.group(), alg.groupId()) == GROUPS.get(name, ("Project", "project"))
    assert alg.displayName()
    help_text = alg.shortHelpString()
    assert len(help_text) > 200
    clone = alg.createInstance()
    assert type(clone) is type(alg) and clone is not alg


@pytest.mark.parametrize("name", IDS)
def test_every_parameter_has_help_and_advanced_flags(name):
    alg = _alg(name)
    params = alg.parameterDefinitions()
    assert params
    names = set()
    for p in params:
        names.add(p.name())
        assert p.name() == p.name().upper(), p.name()
        assert p.description(), p.name()
        assert len(p.help()) > 15, f"{name}: {p.name()} has no help"
        # the help also reaches users of QGIS versions whose dialogs ignore help()
        assert p.name() in alg.shortHelpString()
        advanced = bool(p.flags() & FLAG_ADVANCED)
        assert advanced == (p.name() in ADVANCED.get(name, {"USER"})), p.name()
    if name in NO_PROJECT:
        assert not names & {"USER", "PROJECT"}
        return
    assert "USER" in names
    if name != "createproject":
        assert "PROJECT" in names


def test_user_parameter_is_optional_and_advanced():
    for name in set(IDS) - NO_PROJECT:
        user = _alg(name).parameterDefinition("USER")
        assert user.flags() & QgsProcessingParameterDefinition.FlagOptional
        assert user.flags() & FLAG_ADVANCED


def test_id_list_parsing():
    assert parse_id_list("1,3, 5-8,3") == [1, 3, 5, 6, 7, 8]
    assert parse_id_list("7") == [7]


def test_processing_never_imports_heavy_packages():
    """The QGIS process must not load torch, rasterio or shapely (they are not in its Python)."""
    code = (
        "import sys\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False)\n"
        "import dlstudio_qgis.processing\n"
        "from dlstudio_qgis.processing import DlsProvider\n"
        "p = DlsProvider()\n"
        "heavy = {'torch', 'rasterio', 'shapely', 'torchvision'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
