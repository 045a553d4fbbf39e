"""dlstudio:detectobjects, classifypixels and classifyobjects: parameters and help, and every
refusal made before a worker starts (nothing written). Real runs: test_infer_runs.py.

The packages refused here are zip files written with zipfile (infer_packages.py); the worker
is replaced by a stand-in that fails the test if it is reached, except where the test is about
the job it would get.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from infer_packages import emd, fake_package
from osgeo import ogr
from qgis.core import QgsApplication, QgsProcessingException
from qgis_support import (
    ANALYST,
    COLLECTOR,
    ORIGIN,
    OWNER,
    Capture,
    rect_wkt,
    utm_to_wgs84,
    write_vector,
)

from dlstudio_qgis import settings
from dlstudio_qgis.core import Project
from dlstudio_qgis.engine.infer.job import ARGUMENTS
from dlstudio_qgis.processing import infersupport
from dlstudio_qgis.processing.base import FLAG_ADVANCED, FLAG_OPTIONAL

X0, Y1 = ORIGIN
Y0 = Y1 - 200
COMMON = ["ARGUMENTS", "PROCESSOR_TYPE", "TRUST_MODEL_CODE", "PROJECT", "USER", "OUTPUT"]
PARAMS = {
    "detectobjects": ["INPUT_RASTER", "MODEL", "ARGUMENTS", "RUN_NMS", "MAX_OVERLAP_RATIO",
                      "EXTENT", *COMMON[1:]],
    "classifypixels": ["INPUT_RASTER", "MODEL", "ARGUMENTS", "EXTENT", *COMMON[1:]],
    "classifyobjects": ["INPUT_RASTER", "INPUT_FEATURES", "MODEL", "ARGUMENTS",
                        "CLASS_LABEL_FIELD", *COMMON[1:]],
}  # fmt: skip
TOOLS = {"detectobjects": "detect_objects", "classifypixels": "classify_pixels",
         "classifyobjects": "classify_objects"}  # fmt: skip
#: a model type that fits each algorithm, and one that fits another (and the tool named)
FITS = {"detectobjects": "SSD", "classifypixels": "UNET", "classifyobjects": "FEATURE_CLASSIFIER"}
WRONG = {
    "detectobjects": ("UNET", "Use Classify pixels (dlstudio:classifypixels)"),
    "classifypixels": ("SSD", "Use Detect objects (dlstudio:detectobjects)"),
    "classifyobjects": ("UNET", "Use Classify pixels (dlstudio:classifypixels)"),
}


def _alg(name):
    alg = QgsApplication.processingRegistry().algorithmById(f"dlstudio:{name}")
    assert alg is not None, f"dlstudio:{name} is not registered"
    return alg


def run(name, **params):
    import processing

    return processing.run(f"dlstudio:{name}", params, feedback=Capture())


@pytest.fixture
def no_worker(monkeypatch):
    """Fails the test if a worker would start; records the calls."""
    calls = []

    def refuse(command, job, feedback, workdir, **options):
        calls.append((command, job))
        raise AssertionError("the worker must not start")

    monkeypatch.setattr(infersupport, "run_engine", refuse)
    return calls


@pytest.fixture
def inputs(tmp_path, raster):
    """The files every run needs, in tmp_path/in (a test checks nothing else appears)."""
    folder = tmp_path / "in"
    folder.mkdir()
    features = write_vector(
        folder / "objects.gpkg",
        [(rect_wkt(X0 + 20, Y0 + 20, X0 + 40, Y0 + 40), {"cls": "a"}),
         (f"POINT({X0 + 100} {Y0 + 100})", {"cls": "b"})],
        32611, ogr.wkbUnknown,
    )  # fmt: skip
    return {"raster": raster, "features": features, "folder": folder}


def _params(name, inputs, model, tmp_path, **extra) -> dict:
    params = {"INPUT_RASTER": inputs["raster"], "MODEL": model}
    if name == "classifyobjects":
        params["INPUT_FEATURES"] = inputs["features"]
    params["OUTPUT"] = str(tmp_path / ("out.tif" if name == "classifypixels" else "out.gpkg"))
    params.update(extra)
    return params


def _files(folder: Path) -> list[str]:
    """What is in `folder`, but the project files (their journals come and go)."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith("project")
    )


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameters_help_and_defaults(name):
    alg = _alg(name)
    assert (alg.group(), alg.groupId()) == ("Deep learning", "deeplearning")
    d = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(d) == PARAMS[name]
    for p in d.values():
        assert len(p.help()) > 30, p.name()
        assert p.name() in alg.shortHelpString()
    advanced = {n for n, p in d.items() if p.flags() & FLAG_ADVANCED}
    assert advanced == {"TRUST_MODEL_CODE", "PROJECT", "USER"}
    optional = {n for n, p in d.items() if p.flags() & FLAG_OPTIONAL}
    assert {"ARGUMENTS", "PROJECT", "USER"} <= optional
    assert "INPUT_RASTER" not in optional and "MODEL" not in optional
    assert d["TRUST_MODEL_CODE"].defaultValue() is False
    assert d["PROCESSOR_TYPE"].options() == ["AUTO", "CPU", "GPU"]
    assert d["PROCESSOR_TYPE"].defaultValue() == "AUTO"
    assert "*.dlpk" in d["MODEL"].fileFilter() and "*.emd" in d["MODEL"].fileFilter()
    # ARGUMENTS lists every argument the tool takes, with its default
    text = d["ARGUMENTS"].help()
    for arg, default in ARGUMENTS[TOOLS[name]].items():
        assert (f"{arg}={default}" if default is not None else f"{arg}:") in text, arg
    outputs = {o.name() for o in alg.outputDefinitions()}
    assert {"OUTPUT", "JOB_ID"} <= outputs


def test_specific_parameters():
    detect = {p.name(): p for p in _alg("detectobjects").parameterDefinitions()}
    assert detect["RUN_NMS"].defaultValue() is False
    assert detect["MAX_OVERLAP_RATIO"].defaultValue() == 0
    assert (detect["MAX_OVERLAP_RATIO"].minimum(), detect["MAX_OVERLAP_RATIO"].maximum()) == (0, 1)
    assert "nms_overlap" in detect["RUN_NMS"].help()  # the per-class suppression always runs
    objects = {p.name(): p for p in _alg("classifyobjects").parameterDefinitions()}
    assert objects["CLASS_LABEL_FIELD"].defaultValue() == "class_name"
    assert "ClassLabel" in objects["CLASS_LABEL_FIELD"].help()
    assert "DETECTIONS" in {o.name() for o in _alg("detectobjects").outputDefinitions()}
    assert {"CLASSIFIED", "SKIPPED"} <= {
        o.name() for o in _alg("classifyobjects").outputDefinitions()
    }
    assert "PIXEL_COUNTS" in {o.name() for o in _alg("classifypixels").outputDefinitions()}


# --- refusals ------------------------------------------------------------------------------

PACKAGES = {
    "not a zip": (None, "is not a deep learning package (.dlpk): it is not a zip file"),
    "path escape": (
        (emd(), {"../evil.emd": b"{}"}),
        "its member '../evil.emd' has a '..' component that leaves the package",
    ),
    "code": (
        (emd(InferenceFunction="code.py"), {"code.py": b"import os"}),
        "InferenceFunction names Python code ('code.py')",
    ),
    "missing fields": ((emd(ModelFile=None, Classes=None), {}), "lacks ModelFile, Classes"),
    "TensorFlow": (
        (emd(Framework="TensorFlow"), {}),
        "is for the TensorFlow framework; this plugin loads PyTorch models only",
    ),
    "no weights": ((emd(ModelFile="other.pth"), {}), "lacks its weights 'other.pth'"),
}


@pytest.mark.parametrize("case", list(PACKAGES))
@pytest.mark.parametrize("name", list(PARAMS))
def test_bad_packages_refused(name, case, inputs, tmp_path, no_worker):
    spec, message = PACKAGES[case]
    model = inputs["folder"] / "bad.dlpk"
    if spec is None:
        model.write_bytes(b"this is not a zip file")
    else:
        definition, members = spec
        definition["ModelParameters"]["model_type"] = FITS[name]
        fake_package(model, definition, members)
    before = _files(tmp_path)
    with pytest.raises(QgsProcessingException) as err:
        run(name, **_params(name, inputs, str(model), tmp_path))
    assert message in str(err.value)
    if case == "code":
        assert "Set TRUST_MODEL_CODE" in str(err.value)
    assert not no_worker and _files(tmp_path) == before


@pytest.mark.parametrize("name", list(PARAMS))
def test_a_model_for_another_tool_is_refused(name, inputs, tmp_path, no_worker):
    model_type, hint = WRONG[name]
    model = fake_package(inputs["folder"] / "other.dlpk", emd(model_type))
    with pytest.raises(QgsProcessingException) as err:
        run(name, **_params(name, inputs, model, tmp_path))
    assert f"is a {model_type} model" in str(err.value) and hint in str(err.value)
    unknown = fake_package(inputs["folder"] / "odd.dlpk", emd("HOUGH"))
    with pytest.raises(QgsProcessingException, match="'HOUGH'.*which this plugin does not run"):
        run(name, **_params(name, inputs, unknown, tmp_path))
    assert not no_worker and not (tmp_path / "out.tif").exists()
    assert not (tmp_path / "out.gpkg").exists()


@pytest.mark.parametrize("name", list(PARAMS))
def test_band_count_must_fit(name, inputs, tmp_path, no_worker):
    four = fake_package(inputs["folder"] / "four.dlpk", emd(FITS[name], ExtractBands=[0, 1, 2, 3]))
    with pytest.raises(QgsProcessingException) as err:
        run(name, **_params(name, inputs, four, tmp_path))
    assert "reads bands 1, 2, 3, 4 (its ExtractBands), but the raster" in str(err.value)
    assert "has 3 bands" in str(err.value)
    definition = emd(FITS[name], ExtractBands=None)
    definition["ModelParameters"]["in_channels"] = 1
    one = fake_package(inputs["folder"] / "one.dlpk", definition)
    with pytest.raises(QgsProcessingException, match=r"reads 1 bands \(its in_channels\)"):
        run(name, **_params(name, inputs, one, tmp_path))
    assert not no_worker


@pytest.mark.parametrize("name", list(PARAMS))
def test_raster_without_crs_refused(name, inputs, raster_nocrs, tmp_path, no_worker):
    model = fake_package(inputs["folder"] / "m.dlpk", emd(FITS[name]))
    params = _params(name, inputs, model, tmp_path, INPUT_RASTER=raster_nocrs)
    with pytest.raises(QgsProcessingException, match="has no coordinate reference system.*"
                       "Assign one"):  # fmt: skip
        run(name, **params)
    assert not no_worker


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("detectobjects", "threshold=2", "The argument threshold is in [0, 1], not 2"),
        ("detectobjects", "exclude_pad_detections=maybe", "is True or False, not 'maybe'"),
        ("classifypixels", "threshold=0.5", "Classify pixels does not take the argument(s) "
                                            "threshold; it takes padding, batch_size"),
        ("classifypixels", "padding=-3", "padding is a whole number of pixels >= 0"),
        ("classifyobjects", "batch_size=0", "batch_size is a whole number >= 1, not 0"),
        ("classifyobjects", "batch_size", "is not name=value"),
    ],
)  # fmt: skip
def test_invalid_arguments_refused(name, arguments, message, inputs, tmp_path, no_worker):
    model = fake_package(inputs["folder"] / "m.dlpk", emd(FITS[name]))
    with pytest.raises(QgsProcessingException) as err:
        run(name, **_params(name, inputs, model, tmp_path, ARGUMENTS=arguments))
    assert str(err.value).startswith("ARGUMENTS: ") and message in str(err.value)
    assert not no_worker


@pytest.mark.parametrize("name", ["detectobjects", "classifypixels"])
def test_extent_off_the_raster_refused(name, inputs, tmp_path, no_worker):
    model = fake_package(inputs["folder"] / "m.dlpk", emd(FITS[name]))
    far = f"{X0 + 1000},{X0 + 1100},{Y0},{Y0 + 100} [EPSG:32611]"
    with pytest.raises(QgsProcessingException, match="does not overlap the raster"):
        run(name, **_params(name, inputs, model, tmp_path, EXTENT=far))
    assert not no_worker and _files(tmp_path) == ["in", *(f"in/{n}" for n in _in(inputs))]


def _in(inputs) -> list[str]:
    return sorted(p.name for p in inputs["folder"].iterdir())


def test_output_and_field_names_checked(inputs, tmp_path, no_worker):
    model = fake_package(inputs["folder"] / "m.dlpk", emd("UNET"))
    with pytest.raises(QgsProcessingException, match="must be a GeoTIFF: give a name ending"):
        run("classifypixels", **_params("classifypixels", inputs, model, tmp_path,
                                        OUTPUT=str(tmp_path / "out.png")))  # fmt: skip
    model = fake_package(inputs["folder"] / "f.dlpk", emd("FEATURE_CLASSIFIER"))
    with pytest.raises(QgsProcessingException, match="CLASS_LABEL_FIELD cannot be 'Confidence'"):
        run("classifyobjects", **_params("classifyobjects", inputs, model, tmp_path,
                                         CLASS_LABEL_FIELD="Confidence"))  # fmt: skip
    with pytest.raises(QgsProcessingException, match="does not exist"):
        run("detectobjects", **_params("detectobjects", inputs, str(tmp_path / "no.dlpk"),
                                       tmp_path))  # fmt: skip
    assert not no_worker and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("name", list(PARAMS))
def test_collector_refused_with_project(name, make_project, inputs, tmp_path, no_worker):
    project = make_project(grid=None)
    model = fake_package(inputs["folder"] / "m.dlpk", emd(FITS[name]))
    with pytest.raises(QgsProcessingException, match="'carl' is collector.*owner or analyst"):
        run(name, **_params(name, inputs, model, tmp_path, PROJECT=project, USER=COLLECTOR))
    assert not no_worker and Project.open(project, OWNER).jobs() == []


# --- the job the worker gets ---------------------------------------------------------------


def test_detect_job_and_streamed_output(inputs, tmp_path, monkeypatch, make_project):
    """The job (ARGUMENTS with defaults, EXTENT given in EPSG:4326 in the raster's CRS, a
    trusted package), what is streamed into the output, and the project's record; a stand-in
    worker writes two detections."""
    project = make_project(grid=None)
    model = fake_package(
        inputs["folder"] / "coded.dlpk",
        emd("SSD", InferenceFunction="code.py"),
        {"code.py": b"# would run only if trusted"},
    )
    seen = {}

    def worker(command, job, feedback, workdir, **options):
        seen.update(command=command, job=job, workdir=Path(workdir))
        lines = [
            {"type": "Feature", "geometry": json.loads(_square(X0 + 60, Y0 + 60, 10)),
             "properties": {"class_value": 1, "class_name": "building", "confidence": 0.9}},
            {"type": "Feature", "geometry": json.loads(_square(X0 + 120, Y0 + 80, 6)),
             "properties": {"class_value": 2, "class_name": "road", "confidence": 0.55}},
        ]  # fmt: skip
        Path(job["output"]).write_text("".join(json.dumps(x) + "\n" for x in lines))
        return {"type": "result", "tool": "detect_objects", "detections": 2, "chips": 4}

    monkeypatch.setattr(infersupport, "run_engine", worker)
    (lon0, lat0), (lon1, lat1) = utm_to_wgs84([(X0 + 50, Y0 + 50), (X0 + 150, Y0 + 150)])
    result = run(
        "detectobjects",
        **_params("detectobjects", inputs, model, tmp_path, ARGUMENTS="threshold=0.3;",
                  EXTENT=f"{lon0},{lon1},{lat0},{lat1} [EPSG:4326]", RUN_NMS=True,
                  MAX_OVERLAP_RATIO=0.4, PROCESSOR_TYPE="CPU", TRUST_MODEL_CODE=True,
                  PROJECT=project, USER=ANALYST),
    )  # fmt: skip
    job = seen["job"]
    assert seen["command"] == "infer" and job["kind"] == "infer"
    assert job["tool"] == "detect_objects" and job["raster"] == inputs["raster"]
    assert job["model"] == model and job["trust_code"] is True
    assert job["arguments"] == {**ARGUMENTS["detect_objects"], "threshold": 0.3}
    assert (job["run_nms"], job["max_overlap_ratio"], job["processor_type"]) == (True, 0.4, "CPU")
    xmin, ymin, xmax, ymax = job["extent"]
    for got, want in zip(
        (xmin, ymin, xmax, ymax), (X0 + 50, Y0 + 50, X0 + 150, Y0 + 150), strict=True
    ):
        assert got == pytest.approx(want, abs=1.5)
    assert not seen["workdir"].exists()  # removed after the run

    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(result["OUTPUT"], "out", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32611"
    rows = [(f["class_value"], f["class_name"], f["confidence"]) for f in layer.getFeatures()]
    assert rows == [(1, "building", 0.9), (2, "road", 0.55)]
    assert result["DETECTIONS"] == 2 and result["JOB_ID"]
    (rec,) = Project.open(project, OWNER).jobs()
    assert (rec["kind"], rec["status"], rec["submitted_by"]) == ("infer", "succeeded", ANALYST)
    assert rec["id"] == result["JOB_ID"] and rec["result"]["detections"] == 2


def _square(x, y, half) -> str:
    ring = [[x - half, y - half], [x + half, y - half], [x + half, y + half],
            [x - half, y + half], [x - half, y - half]]  # fmt: skip
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def test_a_failing_worker_is_recorded_and_leaves_nothing(inputs, tmp_path, monkeypatch,
                                                         make_project):  # fmt: skip
    project = make_project(grid=None)
    model = fake_package(inputs["folder"] / "m.dlpk", emd("UNET"))
    out = tmp_path / "out.tif"

    def worker(command, job, feedback, workdir, **options):
        Path(f"{tmp_path}/.out.tif.4242.partial").write_bytes(b"half a raster")  # killed
        raise QgsProcessingException("The model could not be loaded: bad weights.")

    monkeypatch.setattr(infersupport, "run_engine", worker)
    before = _files(tmp_path)
    with pytest.raises(QgsProcessingException, match="bad weights"):
        run("classifypixels", **_params("classifypixels", inputs, model, tmp_path,
                                        PROJECT=project, USER=OWNER))  # fmt: skip
    assert _files(tmp_path) == before and not out.exists()
    (rec,) = Project.open(project, OWNER).jobs()
    assert rec["status"] == "failed" and "bad weights" in rec["error"]


def test_a_worker_killed_for_memory_names_a_smaller_batch(inputs, tmp_path):
    """The system's out-of-memory killer leaves the worker no word: the message names the
    batch size to try (a real worker process that SIGKILLs itself)."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nkill -9 $$\n")
    python.chmod(0o755)
    saved = settings._get(settings.WORKER_PYTHON_KEY)
    settings.set_worker_python(str(python))
    model = fake_package(inputs["folder"] / "m.dlpk", emd("UNET"))
    try:
        with pytest.raises(QgsProcessingException) as err:
            run("classifypixels", **_params("classifypixels", inputs, model, tmp_path,
                                            ARGUMENTS="batch_size=8"))  # fmt: skip
    finally:
        settings.set_worker_python(saved or None)
    text = str(err.value)
    assert "The infer worker was killed by SIGKILL" in text and "out-of-memory killer" in text
    assert "Lower batch_size in ARGUMENTS (it was 8; try 4). A machine with more memory" in text
    assert not (tmp_path / "out.tif").exists()
