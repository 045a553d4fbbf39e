"""The plugin in the real QGIS desktop, under Xvfb: it loads from a fresh profile, registers its
provider, menu and toolbar, opens an algorithm dialog, and unloads without leaving anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLUGIN = "dlstudio_qgis"
MENU_ALGS = {"createproject", "importsamples", "reviewsamples", "projectstatus"}
TIMEOUT = 240

# no skips: `make setup` installs QGIS and Xvfb, so their absence is a failure to report
pytestmark = pytest.mark.xvfb


def install_plugin(profiles: Path, profile: str) -> None:
    """Install and enable the plugin in <profiles>/<profile> with the project's installer."""
    script = REPO / "scripts" / "install_plugin.py"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.run(
        [python, str(script), "--profiles-path", str(profiles), "--profile", profile],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ini = profiles / profile / "QGIS" / "QGIS3.ini"
    # quiet first start: no plugin repository fetch, no news feed (nothing to reach offline)
    with ini.open("a", encoding="utf-8") as f:
        f.write("\n[app]\nplugin_installer\\checkOnStart=false\n"
                "plugin_installer\\checkOnStartLastDate=2100-01-01T00:00:00\n"
                "\n[core]\nNewsFeed\\https%3A%2F%2Ffeed.qgis.org\\disabled=true\n")  # fmt: skip
    assert (profiles / profile / "python" / "plugins" / PLUGIN / "metadata.txt").is_file()


def run_desktop(root: Path, probe: Path, env: dict, log: Path, timeout: float):
    """Start the QGIS desktop under Xvfb on the profile "test" in `root`, running `probe`;
    kill it after `timeout` s. Returns the process and what it wrote."""
    cmd = [
        "xvfb-run", "-a", "-s", "-screen 0 1600x1000x24",
        "qgis", "--profiles-path", str(root), "--profile", "test",
        "--nologo", "--noversioncheck", "--code", str(probe),
    ]  # fmt: skip
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc, log.read_text(errors="replace")


@pytest.fixture(scope="module")
def desktop(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("desktop")
    install_plugin(root / "profiles", "test")
    out = {"result": root / "result.json", "shot": root / "main_window.png",
           "dialog_shot": root / "dialog.png", "log": root / "qgis.log"}  # fmt: skip
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)  # a real X display (Xvfb), not offscreen
    env.update(
        DLS_UI_RESULT=str(out["result"]), DLS_UI_SHOT=str(out["shot"]),
        DLS_UI_DIALOG_SHOT=str(out["dialog_shot"]), HOME=str(root),
        XDG_RUNTIME_DIR=str(root), QGIS_CUSTOM_CONFIG_PATH=str(root),
    )  # fmt: skip
    proc, log_text = run_desktop(root, HERE / "desktop_probe.py", env, out["log"], TIMEOUT)
    assert out["result"].is_file(), (
        f"QGIS wrote no result (rc {proc.returncode}):\n{log_text[-4000:]}"
    )
    result = json.loads(out["result"].read_text())
    return {**out, "data": result, "rc": proc.returncode, "log_text": log_text}


def test_the_probe_ran_without_error(desktop):
    assert "error" not in desktop["data"], desktop["data"]["error"]


def test_plugin_loads_with_provider_menu_and_toolbar(desktop):
    before = desktop["data"]["before"]
    assert before["loaded"] and before["active"], before
    assert before["provider"], before
    algs = {a.split(":", 1)[1] for a in before["algorithms"]}
    assert all(a.startswith("dlstudio:") for a in before["algorithms"])
    assert len(algs) >= 7 and algs >= MENU_ALGS, before["algorithms"]
    assert before["actions"] == sorted(f"dlstudio_{a}" for a in MENU_ALGS)
    assert any("Deep Learning Studio" in t.replace("&", "") for t in before["raster_menu"])
    assert before["toolbar"] == {"visible": True, "actions": 4}


def test_menu_action_opens_the_algorithm_dialog(desktop):
    dialog = desktop["data"].get("dialog")
    assert dialog, "the Create Project action opened no dialog"
    assert "project" in dialog["title"].lower(), dialog
    assert desktop["dialog_shot"].is_file()


def test_unload_leaves_nothing_behind(desktop):
    data = desktop["data"]
    assert data["unload_ok"]
    after = data["after"]
    assert not after["loaded"] and not after["active"], after
    assert not after["provider"] and after["algorithms"] == []
    assert after["actions"] == []
    assert not any("Deep Learning Studio" in t.replace("&", "") for t in after["raster_menu"])
    assert after["toolbar"] is None


def test_main_window_screenshot_is_a_real_image(desktop):
    from qgis.PyQt.QtGui import QImage

    image = QImage(str(desktop["shot"]))
    assert not image.isNull()
    assert image.width() >= 800 and image.height() >= 500
    colors = {image.pixel(x, y) for x in range(0, image.width(), 17)
              for y in range(0, image.height(), 13)}  # fmt: skip
    assert len(colors) > 20, "the screenshot is (nearly) a single colour"


def test_no_python_errors_in_the_log(desktop):
    text = desktop["log_text"]
    assert "Traceback" not in text, text[-4000:]
    assert "dlstudio" not in text.lower() or "error" not in text.lower(), text[-4000:]
