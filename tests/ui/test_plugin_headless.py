"""The plugin as qgis_process loads it (``classFactory(None)``, no desktop), and its settings.

Runs in a subprocess with the system Python, which is QGIS's Python: one QgsApplication of its
own, and proof that loading the plugin imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    profile = tmp_path_factory.mktemp("profile")
    env = {k: v for k, v in os.environ.items() if k not in ("DLSTUDIO_USER", "PYTHONPATH")}
    env.update(PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", HOME=str(profile),
               DLSTUDIO_USER="tester")  # fmt: skip
    proc = subprocess.run(
        [PYTHON, str(Path(__file__).with_name("headless_probe.py")), str(profile)],
        capture_output=True, text=True, timeout=180, cwd=REPO, env=env,
    )  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    return json.loads(lines[-1][len("RESULT ") :])


def test_class_factory_gives_a_plugin_that_registers_the_provider(probe):
    assert probe["methods"] == ["initGui", "initProcessing", "unload"]
    assert probe["provider"]
    assert len(probe["algorithms"]) >= 7
    assert probe["providers_after_second_init"] == 1


def test_unload_removes_the_provider(probe):
    assert probe["provider_after_unload"] is False


def test_loading_the_plugin_imports_nothing_heavy(probe):
    assert probe["heavy_modules"] == []


def test_worker_python_setting(probe):
    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists():
        assert probe["worker_default"] == str(venv)
    else:
        assert Path(probe["worker_default"]).name.startswith("python")
    assert probe["worker_set"] == probe["worker_ini"] == "/opt/cuda-env/bin/python"
    assert probe["worker_reset"] == probe["worker_default"]
    assert probe["command"] == [probe["worker_default"], "-m", "dlstudio_qgis.engine", "info"]
    env = probe["env_pythonpath"]
    assert env["PYTHONPATH"] == str(REPO) and "PYTHONHOME" not in env and env["PATH"] == "/bin"


def test_user_name_setting(probe):
    assert probe["user_default"] == "tester"  # core's current_user(): $DLSTUDIO_USER
    assert probe["user_set"] == "carla"
    assert probe["user_reset"] == "tester"
