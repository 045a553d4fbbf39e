"""dlstudio:createproject, dlstudio:addmember, and every algorithm on a bad project file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from osgeo import ogr
from qgis.core import QgsProcessingException, QgsSettings, QgsVectorLayer
from qgis_support import (
    ANALYST,
    COLLECTOR,
    ORIGIN,
    OWNER,
    SIZE,
    Capture,
    digest,
    new_context,
    rect_wkt,
    run,
    write_vector,
)

from dlstudio_qgis.core import InferenceTool, Project, Role

CLASSES = "1:building:#ff0000,2:road:#0000ff"


def create(raster, output, **extra):
    params = dict(
        NAME="Roofs",
        INPUT_RASTER=raster,
        INFERENCE_TOOL="DETECT_OBJECTS",
        CLASSES=CLASSES,
        OUTPUT=str(output),
        USER=OWNER,
    )
    params.update(extra)
    return run("createproject", **params)


def test_create_project(tmp_path, raster):
    out = tmp_path / "roofs.gpkg"
    context = new_context()
    feedback = Capture()
    result = run(
        "createproject",
        feedback,
        context,
        NAME="Roofs",
        INPUT_RASTER=raster,
        INFERENCE_TOOL="CLASSIFY_OBJECTS",
        CLASSES=CLASSES,
        SAMPLE_GEOMETRY="POINT",
        OUTPUT=str(out),
        USER=OWNER,
    )
    assert result == {"OUTPUT": str(out)}
    project = Project.open(out, OWNER)
    info = project.info()
    assert info.name == "Roofs"
    assert info.owner == OWNER
    assert info.inference_tool is InferenceTool.CLASSIFY_OBJECTS
    assert info.sample_geometry == "POINT"
    assert info.imagery.crs_authid == "EPSG:32611"
    assert info.imagery.extent == pytest.approx(
        (ORIGIN[0], ORIGIN[1] - SIZE, ORIGIN[0] + SIZE, ORIGIN[1])
    )
    assert (info.imagery.width, info.imagery.height) == (SIZE, SIZE)
    assert info.imagery.source == raster
    assert "UTM zone 11N" in info.imagery.crs_wkt
    assert [(c.value, c.name, c.color) for c in project.classes()] == [
        (1, "building", "#ff0000"),
        (2, "road", "#0000ff"),
    ]
    assert project.members() == {OWNER: Role.OWNER}
    # the GUI loads the two layers of the new file; they open in stock QGIS
    to_load = context.layersToLoadOnCompletion()
    assert set(to_load) == {f"{out}|layername=work_units", f"{out}|layername=training_samples"}
    for uri in to_load:
        layer = QgsVectorLayer(uri, "x", "ogr")
        assert layer.isValid(), uri
        assert layer.crs().authid() == "EPSG:32611"
    assert "Created project 'Roofs'" in feedback.text


def test_create_project_to_temporary_output(raster):
    result = create(raster, "TEMPORARY_OUTPUT")
    assert result["OUTPUT"].endswith(".gpkg")
    assert Project.open(result["OUTPUT"], OWNER).name == "Roofs"


def test_create_refuses_an_existing_file(tmp_path, raster):
    out = tmp_path / "roofs.gpkg"
    create(raster, out)
    before = digest(out)
    with pytest.raises(QgsProcessingException, match="already exists"):
        create(raster, out, NAME="Other")
    assert digest(out) == before
    other = tmp_path / "notes.gpkg"
    other.write_bytes(b"precious")
    with pytest.raises(QgsProcessingException, match="already exists"):
        create(raster, other)
    assert other.read_bytes() == b"precious"


def test_create_refuses_a_raster_without_crs(tmp_path, raster_nocrs):
    out = tmp_path / "nocrs.gpkg"
    with pytest.raises(QgsProcessingException, match="no coordinate reference system") as err:
        create(raster_nocrs, out)
    assert "Assign Projection" in str(err.value) and "gdal_edit.py -a_srs" in str(err.value)
    assert not out.exists()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SAMPLE_GEOMETRY": "POINT"}, "DETECT_OBJECTS samples are POLYGON, not POINT"),
        ({"CLASSES": "1:building,1:road"}, "unique"),
        ({"CLASSES": "building"}, "value:name"),
        ({"CLASSES": "0:nodata"}, "positive integer"),
        ({"CLASSES": "1:a:red"}, "#rrggbb"),
        ({"NAME": "  "}, "needs a name"),
        ({"OUTPUT_EXT": ".sqlite"}, "must end in .gpkg"),
    ],
)
def test_create_validation(tmp_path, raster, extra, message):
    out = tmp_path / ("p" + extra.pop("OUTPUT_EXT", ".gpkg"))
    with pytest.raises(QgsProcessingException, match=message):
        create(raster, out, **extra)
    assert not out.exists()


def test_create_rejects_unknown_enum_value(tmp_path, raster):
    with pytest.raises(QgsProcessingException, match="INFERENCE_TOOL"):
        create(raster, tmp_path / "p.gpkg", INFERENCE_TOOL="SEGMENT_ANYTHING")


def test_default_user_comes_from_the_qgis_setting(tmp_path, raster, monkeypatch):
    settings = QgsSettings()
    settings.setValue("dlstudio/user", "from-settings")
    try:
        out = tmp_path / "p.gpkg"
        create(raster, out, USER="")
        assert Project.open(out).info().owner == "from-settings"
    finally:
        settings.remove("dlstudio/user")
    monkeypatch.setenv("DLSTUDIO_USER", "from-env")
    out = tmp_path / "q.gpkg"
    create(raster, out, USER="")
    assert Project.open(out).info().owner == "from-env"


# --- addmember ----------------------------------------------------------------------------


def test_add_member_added_changed_unchanged(make_project):
    path = make_project(grid=None)
    kw = dict(PROJECT=path, MEMBER="bob", USER=OWNER)
    assert run("addmember", ROLE="collector", **kw) == {"RESULT": "added"}
    assert run("addmember", ROLE="collector", **kw) == {"RESULT": "unchanged"}
    assert run("addmember", ROLE="analyst", **kw) == {"RESULT": "changed"}
    members = Project.open(path, OWNER).members()
    assert members["bob"] is Role.ANALYST
    assert members[ANALYST] is Role.ANALYST and members[COLLECTOR] is Role.COLLECTOR
    # an analyst may configure members too
    assert run("addmember", PROJECT=path, MEMBER="dora", ROLE="collector", USER=ANALYST) == {
        "RESULT": "added"
    }


def test_add_member_refused_for_collector_and_strangers(make_project):
    path = make_project(grid=None)
    before = digest(path)
    with pytest.raises(QgsProcessingException) as err:
        run("addmember", PROJECT=path, MEMBER="eve", ROLE="analyst", USER=COLLECTOR)
    assert f"'{COLLECTOR}' is collector" in str(err.value)
    assert "owner or analyst" in str(err.value)
    with pytest.raises(QgsProcessingException, match="not a member"):
        run("addmember", PROJECT=path, MEMBER="eve", ROLE="analyst", USER="mallory")
    assert "eve" not in Project.open(path, OWNER).members()
    assert digest(path) == before


def test_add_member_owner_role_is_not_an_option(make_project):
    path = make_project(grid=None)
    with pytest.raises(QgsProcessingException, match="ROLE"):
        run("addmember", PROJECT=path, MEMBER="bob", ROLE="owner", USER=OWNER)
    with pytest.raises(QgsProcessingException, match="fixed"):
        run("addmember", PROJECT=path, MEMBER=OWNER, ROLE="analyst", USER=OWNER)


# --- bad project files, for every algorithm ------------------------------------------------


def _bad_files(tmp_path):
    text = tmp_path / "text.gpkg"
    text.write_text("not a database at all\n")
    plain = tmp_path / "plain.gpkg"
    write_vector(plain, [(rect_wkt(0, 0, 1, 1), {"cls": "a"})], 4326, ogr.wkbPolygon)
    return {
        "missing": (tmp_path / "missing.gpkg", "does not exist"),
        "not a GeoPackage": (text, "is not a GeoPackage"),
        "not a project": (plain, "not a Deep Learning Studio project"),
    }


CALLS = {
    "addmember": dict(MEMBER="bob", ROLE="collector"),
    "createworkunits": dict(CELL_SIZE=10),
    "importsamples": None,  # needs an INPUT layer: filled in below
    "updateworkunitstatus": dict(WORK_UNITS="1", STATUS="REVIEWED"),
    "reviewsamples": dict(SAMPLES="1", STATUS="APPROVED"),
    "projectstatus": dict(),
}


@pytest.mark.parametrize("alg", sorted(CALLS))
def test_bad_project_files_are_refused_and_left_alone(tmp_path, alg):
    params = CALLS[alg]
    if params is None:
        samples = write_vector(
            tmp_path / "s.gpkg", [(rect_wkt(0, 0, 1, 1), {"cls": "1"})], 4326, ogr.wkbPolygon
        )
        params = dict(INPUT=samples, CLASS_FIELD="cls")
    for _kind, (path, message) in _bad_files(tmp_path).items():
        before = digest(path) if path.exists() else None
        with pytest.raises(QgsProcessingException, match=message):
            run(alg, PROJECT=str(path), USER=OWNER, **params)
        if before is None:
            assert not path.exists()
        else:
            assert digest(path) == before, f"{alg} changed {path}"
            assert not Path(f"{path}-wal").exists()


def test_project_folder_is_refused(tmp_path):
    folder = tmp_path / "dir.gpkg"
    folder.mkdir()
    with pytest.raises(QgsProcessingException):
        run("projectstatus", PROJECT=str(folder))
    assert os.listdir(folder) == []
