"""The project dock remembers the last project it opened and reopens it when the plugin starts
(QgsSettings dlstudio/last_project, dlstudio/reopen_last_project); a file that is gone is
forgotten with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from qgis.core import QgsProject, QgsSettings
from qgis_support import COLLECTOR
from ui_support import make_canvas

from dlstudio_qgis.ui import recent
from dlstudio_qgis.ui.projectdock import ProjectDock
from dlstudio_qgis.ui.session import CRITICAL, WARNING, ProjectSession


@pytest.fixture
def start(make_project):
    """Factory: a fresh session and project dock, as when QGIS starts the plugin."""
    made = []
    keys = (recent.LAST_PROJECT_KEY, recent.REOPEN_KEY)
    saved = {k: QgsSettings().value(k) for k in keys if QgsSettings().contains(k)}
    for key in keys:
        QgsSettings().remove(key)

    def make():
        canvas = make_canvas()
        session = ProjectSession(canvas, poll_ms=100000)
        dock = ProjectDock(session)
        made.append((session, dock, canvas))
        return session, dock

    yield make
    for session, _dock, canvas in made:
        session.close()
        canvas.deleteLater()
    for key in keys:
        QgsSettings().remove(key)
    for key, value in saved.items():  # the tests' QgsSettings are the user's: put them back
        QgsSettings().setValue(key, value)
    QgsProject.instance().removeAllMapLayers()


def test_the_last_project_opened_is_reopened_at_the_next_start(start, make_project):
    path = make_project()
    session, dock = start()
    assert dock.reopen_check.isChecked()  # the default
    assert not dock.reopen_last()  # nothing remembered yet
    assert session.open(path, COLLECTOR) is not None
    assert recent.last_project() == str(Path(path).resolve())
    session.close()  # closing does not forget it
    assert recent.last_project() == str(Path(path).resolve())
    # QGIS restarts: a new session and dock
    session2, dock2 = start()
    assert dock2.reopen_last()
    assert session2.project is not None and session2.project.path == Path(path).resolve()
    assert "Test classify_pixels" in dock2.title.text()
    assert session2.units_layer is not None and session2.units_layer.featureCount() == 4
    assert not dock2.reopen_last()  # a project is open: nothing more


def test_the_checkbox_turns_reopening_off(start, make_project):
    path = make_project()
    session, dock = start()
    session.open(path, COLLECTOR)
    dock.reopen_check.setChecked(False)
    assert QgsSettings().value(recent.REOPEN_KEY, True, type=bool) is False
    session2, dock2 = start()
    assert not dock2.reopen_check.isChecked()
    assert not dock2.reopen_last() and session2.project is None
    dock2.reopen_check.setChecked(True)
    assert dock2.reopen_last() and session2.project is not None


def test_a_missing_file_is_forgotten_with_a_message(start, tmp_path):
    gone = tmp_path / "moved away.gpkg"
    recent.remember(str(gone))
    session, dock = start()
    messages = []
    session.message.connect(lambda text, level: messages.append((text, level)))
    assert not dock.reopen_last()
    assert session.project is None and recent.last_project() == ""
    ((text, level),) = messages
    assert level == WARNING and str(gone) in text and "no longer there" in text
    assert dock.title.text().startswith("No project open")


def test_a_file_that_no_longer_opens_is_forgotten(start, tmp_path):
    bad = tmp_path / "notes.gpkg"
    bad.write_text("hello")
    recent.remember(str(bad))
    session, dock = start()
    assert not dock.reopen_last()
    assert session.project is None and recent.last_project() == ""
    text, level = session.last_message
    assert level == CRITICAL and "is not a GeoPackage" in text
