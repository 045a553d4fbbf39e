"""processing/worker.py: engine commands in real worker subprocesses, as Processing runs them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingMultiStepFeedback
from qgis_support import Capture

from dlstudio_qgis import settings
from dlstudio_qgis.processing.worker import WorkerCancelled, run_engine


@pytest.fixture
def worker_python():
    """Set the worker Python for one test (QgsSettings of the test profile), then restore."""
    saved = settings._get(settings.WORKER_PYTHON_KEY)
    yield settings.set_worker_python
    settings.set_worker_python(saved or None)


def _script(path: Path, body: str) -> str:
    """A tiny executable stand-in for the worker Python."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _engine_children() -> list[int]:
    """Processes started by this one that run the engine (none must outlive a run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"dlstudio_qgis.engine" in cmdline:
            found.append(int(entry.name))
    return found


def test_info_result_and_progress(tmp_path):
    feedback = Capture()
    steps = QgsProcessingMultiStepFeedback(2, feedback)
    steps.setCurrentStep(1)
    result = run_engine("info", {}, steps, tmp_path / "work")
    assert result["type"] == "result" and result["command"] == "info"
    assert result["versions"]["numpy"]  # the worker's Python, not QGIS's, answered
    assert (tmp_path / "work" / "info_job.json").is_file()
    # the worker's progress reached the algorithm's feedback through the multi-step one
    assert feedback.progress() > 50


def test_error_line_is_relayed_verbatim(tmp_path):
    target = tmp_path / "scene.png"
    with pytest.raises(QgsProcessingException) as err:
        run_engine("synth-scene", {"output": str(target)}, Capture(), tmp_path)
    assert str(err.value) == f"The output '{target}' must end in .tif or .tiff."


def test_partial_lines_and_log_levels(tmp_path, worker_python):
    worker_python(
        _script(
            tmp_path / "python",
            """printf '{"type": "log", "level": "warning", '
sleep 0.2
printf '"message": "half a line"}\\n{"type": "progress", "value": 40}\\n'
echo 'not a message'
echo '{"type": "log", "level": "info", "message": "héllo"}'
echo '{"type": "result", "command": "x", "chips": 3}'
""",
        )
    )
    feedback = Capture()
    result = run_engine("x", {}, feedback, tmp_path)
    assert result["chips"] == 3
    assert feedback.warnings == ["half a line"]
    assert feedback.infos == ["héllo"]
    assert feedback.progress() == 40


@pytest.mark.parametrize(
    "body, expected",
    [
        ("kill -9 $$", ["killed by SIGKILL", "out-of-memory"]),
        ("exit 137", ["status 137 (killed by SIGKILL)", "out-of-memory"]),
        ("exit 3", ["status 3 without reporting an error"]),
    ],
)
def test_a_worker_that_dies_is_explained(tmp_path, worker_python, body, expected):
    python = _script(
        tmp_path / "python",
        'echo \'{"type": "progress", "value": 5}\'\necho "about to die" >&2\n' + body + "\n",
    )
    worker_python(python)
    feedback = Capture()
    with pytest.raises(QgsProcessingException) as err:
        run_engine("export", {}, feedback, tmp_path)
    text = str(err.value)
    for part in [*expected, python, settings.WORKER_PYTHON_KEY, "about to die"]:
        assert part in text, text
    assert feedback.progress() == 5


@pytest.mark.parametrize("kind", ["missing", "not executable"])
def test_a_missing_worker_python_is_named(tmp_path, worker_python, kind):
    python = tmp_path / "no-such-env" / "bin" / "python"
    if kind == "not executable":
        python = tmp_path / "python"
        python.write_text("#!/bin/sh\n")
    worker_python(str(python))
    with pytest.raises(QgsProcessingException) as err:
        run_engine("info", {}, Capture(), tmp_path)
    text = str(err.value)
    assert str(python) in text and settings.WORKER_PYTHON_KEY in text
    assert ("does not exist" if kind == "missing" else "is not executable") in text


def test_cancel_stops_the_worker_quickly(tmp_path):
    feedback = Capture()
    timer = threading.Timer(1.5, feedback.cancel)
    timer.start()
    started = time.monotonic()
    job = {"output": str(tmp_path / "big.tif"), "size": 40000, "overviews": False}
    try:
        with pytest.raises(WorkerCancelled, match="Cancelled"):
            run_engine("synth-scene", job, feedback, tmp_path)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 8
    assert _engine_children() == []
