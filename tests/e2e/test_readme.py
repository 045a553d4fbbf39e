"""The README's command examples, run verbatim, so they cannot go stale."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_usage_commands_run(tmp_path):
    blocks = [b for b in shell_blocks((REPO / "README.md").read_text()) if "$Q " in b]
    assert len(blocks) >= 2, "the usage and export examples"
    # inputs the examples name: a raster and a layer of boxes with a `class` field
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "DLSTUDIO_"))}
    env["PYTHONPATH"] = str(REPO)
    subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", "synth-scene", "--output",
         str(tmp_path / "scene.tif"), "--size", "1024"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    (tmp_path / "buildings.geojson").rename(tmp_path / "boxes.geojson")
    config = tmp_path / "qgis"
    subprocess.run(
        ["/usr/bin/python3", str(REPO / "scripts" / "install_plugin.py"), "--profiles-path",
         str(config / "profiles"), "--worker-python", sys.executable],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    env.pop("PYTHONPATH")
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen",
               XDG_RUNTIME_DIR=str(tmp_path))  # fmt: skip
    # the blocks run as one script, so later blocks use the first one's $Q
    script = "set -euo pipefail\n" + "\n".join(blocks).replace(
        "Q=scripts/qgis_process", f"Q={REPO / 'scripts' / 'qgis_process'}"
    )
    run = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "status.html").is_file() and (tmp_path / "status.json").is_file()
    lines = (tmp_path / "training_data" / "map.txt").read_text().splitlines()
    assert lines and all(line.startswith("images/") for line in lines)
    assert "No samples to export" not in run.stdout
