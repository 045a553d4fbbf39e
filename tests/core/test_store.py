"""Creating and opening project files, and refusing files that are not projects."""

import sqlite3

import pytest

from dlstudio_qgis.core import (
    SCHEMA_VERSION,
    Imagery,
    Project,
    ProjectFileError,
    SchemaVersionError,
    ValidationError,
    parse_classes,
)
from dlstudio_qgis.core.schema import network_filesystem

from .conftest import dump, imagery, make_project


def test_new_project_is_a_geopackage_with_the_tables(tmp_path):
    p = make_project(tmp_path / "p.gpkg")
    con = sqlite3.connect(p.path)
    app_id = con.execute("PRAGMA application_id").fetchone()[0]
    contents = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents"))
    geoms = dict(con.execute("SELECT table_name, geometry_type_name FROM gpkg_geometry_columns"))
    srs = con.execute("SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys "
                      "WHERE srs_id = 32611").fetchone()  # fmt: skip
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    con.close()
    assert app_id == 0x47504B47
    assert contents == {
        "work_units": "features", "training_samples": "features", "dls_project": "attributes",
        "dls_members": "attributes", "dls_classes": "attributes", "dls_history": "attributes",
        "dls_jobs": "attributes",
    }  # fmt: skip
    assert geoms == {"work_units": "POLYGON", "training_samples": "POLYGON"}
    assert srs == ("EPSG", 32611)
    assert mode == "wal"
    info = p.info()
    assert (info.owner, info.schema_version, info.status) == ("olivia", SCHEMA_VERSION, "active")
    assert p.members() == {"olivia": "owner"}
    assert [c.name for c in p.classes()] == ["building", "road"]
    # the whole imagery is one work unit until the project is divided
    (unit,) = p.work_units()
    assert unit.geometry.bounds() == info.imagery.extent


def test_sample_geometry_follows_the_inference_tool(tmp_path):
    pts = make_project(tmp_path / "o.gpkg", tool="CLASSIFY_OBJECTS", sample_geometry="POINT")
    assert pts.info().sample_geometry == "POINT"
    with pytest.raises(ValidationError, match="POLYGON"):
        make_project(tmp_path / "d.gpkg", tool="DETECT_OBJECTS", sample_geometry="POINT")


def test_custom_crs_is_stored_with_its_definition(tmp_path):
    img = Imagery("a.tif", (0, 0, 10, 10), 10, 10, 'PROJCS["Custom Albers"]', None)
    p = Project.create(tmp_path / "c.gpkg", name="c", inference_tool="CLASSIFY_PIXELS",
                       classes=parse_classes("1:water"), imagery=img, user="u")  # fmt: skip
    assert p.info().srs_id == 100000
    assert p.info().imagery.crs_wkt == 'PROJCS["Custom Albers"]'


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crs": ""}, "no coordinate reference system"),
        ({"classes": "1:a,1:b"}, "unique"),
        ({"classes": "0:nodata"}, "positive"),
        ({"classes": "1:a:red"}, "#rrggbb"),
        ({"classes": "building"}, "value:name"),
        ({"tool": "SEGMENT"}, "DETECT_OBJECTS"),
        ({"name": " "}, "needs a name"),
        ({"file": "p.sqlite"}, ".gpkg"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(tmp_path, change, message):
    img = imagery()
    if "crs" in change:
        img = Imagery(img.source, img.extent, img.width, img.height, change["crs"], None)
    path = tmp_path / change.get("file", "p.gpkg")
    with pytest.raises(ValidationError, match=message):
        Project.create(
            path, name=change.get("name", "n"), inference_tool=change.get("tool", "DETECT_OBJECTS"),
            classes=parse_classes(change.get("classes", "1:a")) if "classes" in change
            else parse_classes("1:a"), imagery=img, user="u",
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_create_does_not_overwrite_unless_asked(tmp_path):
    path = tmp_path / "p.gpkg"
    make_project(path).add_member("adam", "analyst")
    with pytest.raises(ValidationError, match="already exists"):
        make_project(path)
    assert "adam" in Project.open(path, "olivia").members()
    make_project(path, overwrite=True)
    assert "adam" not in Project.open(path, "olivia").members()
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".part")] == []


def test_open_refuses_missing_foreign_and_newer_files(tmp_path):
    with pytest.raises(ProjectFileError, match="does not exist"):
        Project.open(tmp_path / "nope.gpkg")
    text = tmp_path / "notes.gpkg"
    text.write_text("hello")
    with pytest.raises(ProjectFileError, match="not a GeoPackage"):
        Project.open(text)
    # a GeoPackage that is not a project: refused, and not switched to WAL
    other = tmp_path / "other.gpkg"
    con = sqlite3.connect(other)
    con.execute("PRAGMA application_id = 1196444487")
    con.execute("CREATE TABLE roads (fid INTEGER PRIMARY KEY)")
    con.close()
    before = other.read_bytes()
    with pytest.raises(ProjectFileError, match="not a Deep Learning Studio project"):
        Project.open(other)
    assert other.read_bytes() == before
    # a project from a newer schema
    newer = make_project(tmp_path / "newer.gpkg").path
    con = sqlite3.connect(newer)
    con.execute("UPDATE dls_project SET schema_version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    snapshot = dump(newer)
    with pytest.raises(SchemaVersionError, match="newer Deep Learning Studio"):
        Project.open(newer)
    assert dump(newer) == snapshot


def test_history_is_append_only(project):
    con = sqlite3.connect(project.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM dls_history")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE dls_history SET user = 'mallory'")
    con.close()


def test_network_filesystem_detection(tmp_path, monkeypatch):
    assert network_filesystem(tmp_path) is None
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/share {tmp_path} nfs4 rw 0 0\n/dev/vda / ext4 rw 0 0\n")
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(mounts if path == "/proc/mounts" else path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    assert network_filesystem(tmp_path / "p.gpkg") == "nfs4"
    p = make_project(tmp_path / "p.gpkg")
    assert any("network file system (nfs4)" in w for w in p.warnings)
    con = sqlite3.connect(p.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_members_roles_and_ownership(project):
    assert project.add_member("adam", "analyst") == "unchanged"
    assert project.add_member("carla", "analyst") == "changed"
    with pytest.raises(ValidationError, match="one owner"):
        project.add_member("adam", "owner")
    with pytest.raises(ValidationError, match="owner's role is fixed"):
        project.add_member("olivia", "analyst")
    with pytest.raises(ValidationError, match="Unknown role 'boss'"):
        project.add_member("bob", "boss")
    project.remove_member("colin")
    assert set(project.members()) == {"olivia", "adam", "carla"}
    actions = [(h.entity_id, h.action, h.from_status, h.to_status)
               for h in project.history("member")]  # fmt: skip
    assert ("carla", "set_role", "collector", "analyst") in actions
    assert ("colin", "remove", "collector", None) in actions


def test_jobs_move_through_their_statuses(project):
    job = project.submit_job("train", {"model": "UNET", "epochs": 2})
    project.update_job(job, "executing")
    project.update_job(job, "succeeded", result={"dlpk": "/x.dlpk"})
    (j,) = project.jobs()
    assert (j["status"], j["parameters"]["epochs"], j["result"]["dlpk"]) == (
        "succeeded",
        2,
        "/x.dlpk",
    )
    assert j["started_at"] and j["finished_at"]
    from dlstudio_qgis.core import IllegalTransitionError

    with pytest.raises(IllegalTransitionError, match="succeeded"):
        project.update_job(job, "executing")
    with pytest.raises(ValidationError, match="Unknown job kind"):
        project.submit_job("dance", {})
