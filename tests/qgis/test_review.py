"""dlstudio:updateworkunitstatus, dlstudio:reviewsamples and dlstudio:projectstatus."""

from __future__ import annotations

import json

import pytest
from osgeo import ogr
from qgis.core import QgsProcessingException
from qgis_support import (
    ANALYST,
    COLLECTOR,
    ORIGIN,
    OWNER,
    Capture,
    digest,
    rect_wkt,
    run,
    unit_ids_by_name,
    write_vector,
)

from dlstudio_qgis.core import Project

X0, Y1 = ORIGIN
Y0 = Y1 - 200


def statuses(path) -> dict[str, str]:
    return {u.name: u.status.value for u in Project.open(path, OWNER).work_units()}


def sample_statuses(path) -> list[str]:
    return [s.status.value for s in Project.open(path, OWNER).samples()]


@pytest.fixture
def collected(make_project, tmp_path):
    """A project with 2 samples in R2C1 (SW) and 1 in R1C2 (NE), both units marked complete."""
    path = make_project(name="Collected")
    src = write_vector(
        tmp_path / "s.gpkg",
        [
            (rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "building"}),
            (rect_wkt(X0 + 30, Y0 + 10, X0 + 40, Y0 + 20), {"cls": "road"}),
            (rect_wkt(X0 + 150, Y1 - 20, X0 + 160, Y1 - 10), {"cls": "road"}),
        ],
        32611,
        ogr.wkbPolygon,
    )
    run("importsamples", PROJECT=path, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    r = run(
        "updateworkunitstatus",
        PROJECT=path,
        WORK_UNITS="\"status\" = 'in_progress'",
        STATUS="PENDING_REVIEW",
        MODE="WORKFLOW",
        USER=COLLECTOR,
    )
    assert r == {"CHANGED": 2}
    return path


# --- updateworkunitstatus -------------------------------------------------------------------


def test_manual_status_by_ids_and_ranges(make_project):
    path = make_project()
    ids = unit_ids_by_name(path)
    first, last = min(ids.values()), max(ids.values())
    r = run(
        "updateworkunitstatus",
        PROJECT=path,
        WORK_UNITS=f"{first}-{last}",
        STATUS="IN_REVIEW",
        COMMENT="batch",
        USER=ANALYST,
    )
    assert r == {"CHANGED": 4}
    assert set(statuses(path).values()) == {"in_review"}
    r = run(
        "updateworkunitstatus",
        PROJECT=path,
        WORK_UNITS=f"{first},{first}",
        STATUS="IN_REVIEW",
        USER=ANALYST,
    )
    assert r == {"CHANGED": 0}
    history = Project.open(path, OWNER).history("work_unit", first)
    assert history[-1].comment == "batch" and history[-1].user == ANALYST


def test_status_by_expression(make_project):
    path = make_project()
    feedback = Capture()
    r = run(
        "updateworkunitstatus",
        feedback,
        PROJECT=path,
        WORK_UNITS="\"name\" LIKE 'R1%'",
        STATUS="REVIEWED",
        USER=OWNER,
    )
    assert r == {"CHANGED": 2}
    assert statuses(path) == {
        "R1C1": "reviewed",
        "R1C2": "reviewed",
        "R2C1": "queued",
        "R2C2": "queued",
    }
    # an expression matching nothing changes nothing, and says so
    feedback = Capture()
    r = run(
        "updateworkunitstatus",
        feedback,
        PROJECT=path,
        WORK_UNITS="\"status\" = 'in_review'",
        STATUS="QUEUED",
        USER=OWNER,
    )
    assert r == {"CHANGED": 0}
    assert "No work unit matches" in feedback.text


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("", "WORK_UNITS"),
        ("\"status\" = = 'queued'", "neither a list of work unit ids"),
        ("\"state\" = 'queued'", "Field 'state' not found"),
        ("999", "No work unit 999"),
        ("5-3", "runs backwards"),
    ],
)
def test_bad_selections(make_project, selection, message):
    path = make_project()
    before = statuses(path)
    with pytest.raises(QgsProcessingException, match=message):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS=selection,
            STATUS="REVIEWED",
            USER=OWNER,
        )
    assert statuses(path) == before


def test_unknown_status_is_refused(make_project):
    path = make_project()
    with pytest.raises(QgsProcessingException, match="STATUS"):
        run("updateworkunitstatus", PROJECT=path, WORK_UNITS="1", STATUS="DONE", USER=OWNER)


def test_collector_may_not_set_statuses_by_hand(make_project):
    path = make_project()
    before = digest(path)
    with pytest.raises(QgsProcessingException) as err:
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS="\"name\" = 'R1C1'",
            STATUS="REVIEWED",
            USER=COLLECTOR,
        )
    assert f"'{COLLECTOR}' is collector" in str(err.value)
    assert "owner or analyst" in str(err.value)
    assert digest(path) == before


def test_workflow_mode(collected):
    path = collected
    assert statuses(path) == {
        "R1C1": "queued",
        "R1C2": "pending_review",
        "R2C1": "pending_review",
        "R2C2": "queued",
    }
    # illegal transition: a Queued unit cannot be opened for review; the whole batch fails
    # before anything changes (R1C2 could have been opened)
    ids = unit_ids_by_name(path)
    with pytest.raises(QgsProcessingException, match="is Queued; cannot open review"):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS=f"{ids['R1C2']},{ids['R1C1']}",
            STATUS="IN_REVIEW",
            MODE="WORKFLOW",
            USER=ANALYST,
        )
    assert statuses(path)["R1C2"] == "pending_review"
    with pytest.raises(QgsProcessingException, match="No work unit 1, 6, 7"):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS="1-100",
            STATUS="REVIEWED",
            MODE="WORKFLOW",
            USER=ANALYST,
        )
    # collectors cannot open reviews
    with pytest.raises(QgsProcessingException, match="is collector"):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS="\"status\" = 'pending_review'",
            STATUS="IN_REVIEW",
            MODE="WORKFLOW",
            USER=COLLECTOR,
        )
    r = run(
        "updateworkunitstatus",
        PROJECT=path,
        WORK_UNITS="\"status\" = 'pending_review'",
        STATUS="IN_REVIEW",
        MODE="WORKFLOW",
        USER=ANALYST,
    )
    assert r == {"CHANGED": 2}
    # finishing needs every sample reviewed first
    with pytest.raises(QgsProcessingException, match="Pending approval"):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS="\"status\" = 'in_review'",
            STATUS="REVIEWED",
            MODE="WORKFLOW",
            USER=ANALYST,
        )
    assert statuses(path)["R2C1"] == "in_review"
    with pytest.raises(QgsProcessingException, match="No workflow step leads to In progress"):
        run(
            "updateworkunitstatus",
            PROJECT=path,
            WORK_UNITS="1",
            STATUS="IN_PROGRESS",
            MODE="WORKFLOW",
            USER=ANALYST,
        )


# --- reviewsamples ------------------------------------------------------------------------


def test_review_auto_finishes_and_sends_back_rejected(collected):
    path = collected
    feedback = Capture()
    # reject one sample of R2C1, approve the other; approve the one of R1C2
    r = run(
        "reviewsamples",
        feedback,
        PROJECT=path,
        SAMPLES='"class_value" = 1',
        STATUS="REJECTED",
        COMMENT="not a building",
        USER=ANALYST,
    )
    assert r == {"CHANGED": 1, "UNCHANGED": 0, "FINISHED_UNITS": ""}
    assert statuses(path)["R2C1"] == "in_review"  # opened by the review, 1 sample still pending
    r = run(
        "reviewsamples",
        feedback,
        PROJECT=path,
        SAMPLES="\"status\" = 'pending'",
        STATUS="APPROVED",
        USER=ANALYST,
    )
    ids = unit_ids_by_name(path)
    assert r["CHANGED"] == 2 and r["UNCHANGED"] == 0
    assert sorted(map(int, r["FINISHED_UNITS"].split(","))) == sorted([ids["R2C1"], ids["R1C2"]])
    st = statuses(path)
    assert st["R2C1"] == "queued"  # sent back: it has a rejected sample
    assert st["R1C2"] == "reviewed"
    assert sorted(sample_statuses(path)) == ["approved", "approved", "rejected"]
    rejected = [s for s in Project.open(path, OWNER).samples() if s.status.value == "rejected"]
    assert rejected[0].review_comment == "not a building" and rejected[0].reviewed_by == ANALYST
    assert "sent back" not in feedback.text or "Queued" in feedback.text


def test_review_finish_reviewed_and_leave(collected):
    path = collected
    ids = unit_ids_by_name(path)
    r = run(
        "reviewsamples",
        PROJECT=path,
        SAMPLES=f'"work_unit" = {ids["R1C2"]}',
        STATUS="APPROVED",
        FINISH="LEAVE",
        USER=OWNER,
    )
    assert r == {"CHANGED": 1, "UNCHANGED": 0, "FINISHED_UNITS": ""}
    assert statuses(path)["R1C2"] == "in_review"
    r = run(
        "reviewsamples",
        PROJECT=path,
        SAMPLES=f'"work_unit" = {ids["R2C1"]}',
        STATUS="REJECTED",
        FINISH="REVIEWED",
        USER=OWNER,
    )
    assert r == {"CHANGED": 2, "UNCHANGED": 0, "FINISHED_UNITS": str(ids["R2C1"])}
    assert statuses(path)["R2C1"] == "reviewed"
    # approving again is unchanged; R1C2 is still In review, so AUTO finishes it now
    r = run(
        "reviewsamples",
        PROJECT=path,
        SAMPLES=f'"work_unit" = {ids["R1C2"]}',
        STATUS="APPROVED",
        USER=OWNER,
    )
    assert r == {"CHANGED": 0, "UNCHANGED": 1, "FINISHED_UNITS": str(ids["R1C2"])}


def test_review_refusals(collected, make_project):
    path = collected
    before = sample_statuses(path)
    with pytest.raises(QgsProcessingException, match="is collector"):
        run("reviewsamples", PROJECT=path, SAMPLES="1-3", STATUS="APPROVED", USER=COLLECTOR)
    with pytest.raises(QgsProcessingException, match="No sample 99"):
        run("reviewsamples", PROJECT=path, SAMPLES="1,99", STATUS="APPROVED", USER=ANALYST)
    with pytest.raises(QgsProcessingException, match="STATUS"):
        run("reviewsamples", PROJECT=path, SAMPLES="1", STATUS="PENDING", USER=ANALYST)
    assert sample_statuses(path) == before
    # samples in a unit that is still being collected cannot be reviewed
    other = make_project()
    src = write_vector(
        other.replace(".gpkg", "_s.gpkg"),
        [(rect_wkt(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20), {"cls": "1"})],
        32611,
        ogr.wkbPolygon,
    )
    run("importsamples", PROJECT=other, INPUT=src, CLASS_FIELD="cls", USER=COLLECTOR)
    with pytest.raises(QgsProcessingException, match="In progress; samples are reviewed"):
        run("reviewsamples", PROJECT=other, SAMPLES="1", STATUS="APPROVED", USER=ANALYST)


# --- projectstatus ------------------------------------------------------------------------


def test_project_status_outputs(collected, tmp_path):
    path = collected
    run("reviewsamples", PROJECT=path, SAMPLES='"class_value" = 1', STATUS="REJECTED", USER=OWNER)
    run("reviewsamples", PROJECT=path, SAMPLES='"class_value" = 2', STATUS="APPROVED", USER=OWNER)
    # the project name is user input: it must come out escaped
    Project.open(path, OWNER)  # still readable
    js, html = tmp_path / "status.json", tmp_path / "status.html"
    r = run("projectstatus", PROJECT=path, OUTPUT_JSON=str(js), OUTPUT_HTML=str(html))
    assert r["WORK_UNITS"] == 4 and r["SAMPLES"] == 3
    assert r["APPROVED"] == 2 and r["REJECTED"] == 1 and r["PENDING"] == 0
    # R1C2 Reviewed (1 approved); R2C1 sent back to Queued: 1 approved sample not exportable
    assert r["EXPORTABLE"] == 1
    assert r["PERCENT_REVIEWED"] == 25.0
    assert r["OUTPUT_JSON"] == str(js) and r["OUTPUT_HTML"] == str(html)
    data = json.loads(js.read_text())
    assert data == json.loads(json.dumps(Project.open(path, OWNER).progress()))
    assert data["work_units"]["by_status"] == {
        "queued": 3,
        "in_progress": 0,
        "pending_review": 0,
        "in_review": 0,
        "reviewed": 1,
    }
    assert data["per_collector"][COLLECTOR]["total"] == 3
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    assert "<h1>Collected</h1>" in text
    assert "25.0%" in text
    for label in ("Queued", "Reviewed", "Pending approval", "Approved", "Rejected"):
        assert label in text
    assert f"<td>{COLLECTOR}</td>" in text
    assert "Per work unit" in text and "R2C1" in text


def test_project_status_escapes_html(make_project, tmp_path):
    path = make_project(name="<script>alert('x')</script> & co", grid=None)
    html = tmp_path / "s.html"
    r = run("projectstatus", PROJECT=path, OUTPUT_HTML=str(html))
    assert "OUTPUT_JSON" not in r
    text = html.read_text()
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in text
