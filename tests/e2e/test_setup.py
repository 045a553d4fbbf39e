"""`make setup` (scripts/setup.sh) refuses a disk too small for .venv before pip starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    # a requirement pip could only reach by installing, to show pip never ran
    (root / "requirements.txt").write_text("dlstudio-not-a-real-package==9.9\n")
    return root


def _setup(root: Path, free_gb: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLSTUDIO_SETUP_FREE_GB": free_gb}
    return subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_setup_stops_with_a_clear_message_when_the_disk_is_too_small(tmp_path):
    root = _project_copy(tmp_path)
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    # more than this disk has: setup must stop before pip
    proc = _setup(root, str(free_mb // 1024 + 10))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not enough disk space for .venv" in proc.stderr
    assert "MB free" in proc.stderr and "run make setup again" in proc.stderr
    assert "dlstudio-not-a-real-package" not in proc.stdout + proc.stderr
    assert not (root / ".venv" / ".requirements.sha256").exists()


def test_setup_goes_on_to_pip_when_the_disk_has_room(tmp_path):
    root = _project_copy(tmp_path)
    proc = _setup(root, "0")
    # pip ran (and failed on the made-up package): the check let it through
    assert proc.returncode != 0
    assert "not enough disk space" not in proc.stderr
    assert "dlstudio-not-a-real-package" in proc.stdout + proc.stderr
    assert not (root / ".venv" / ".requirements.sha256").exists()
