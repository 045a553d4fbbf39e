"""`make package` builds a zip that installs like Plugin Manager's "Install from ZIP"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYS_PYTHON = "/usr/bin/python3"


def test_package_zip_installs_and_loads(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import package
    finally:
        sys.path.remove(str(REPO / "scripts"))
    zip_path = package.build(tmp_path / "dist")
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        metadata = zf.read("dlstudio_qgis/metadata.txt").decode()
        zf.extractall(tmp_path / "unpacked")
    assert (
        zip_path.name
        == f"dlstudio_qgis-{package.read_version(REPO / 'dlstudio_qgis' / 'metadata.txt')}.zip"
    )
    assert all(n.startswith("dlstudio_qgis/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {"dlstudio_qgis/__init__.py", "dlstudio_qgis/icons/icon.svg"} <= set(names)
    assert "hasProcessingProvider=yes" in metadata

    # Plugin Manager unpacks the zip into the profile's plugins folder and enables it
    config = tmp_path / "config"
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    shutil.copytree(tmp_path / "unpacked" / "dlstudio_qgis", plugins / "dlstudio_qgis")
    settings = (
        "from qgis.PyQt.QtCore import QSettings; import sys; "
        "s = QSettings(sys.argv[1], QSettings.IniFormat); "
        "s.setValue('PythonPlugins/dlstudio_qgis', True); s.sync()"
    )
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    subprocess.run([SYS_PYTHON, "-c", settings, str(ini)], check=True, timeout=60)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "PYTHONPATH"))}
    env.update(QGIS_CUSTOM_CONFIG_PATH=str(config), QT_QPA_PLATFORM="offscreen")
    env.setdefault("XDG_RUNTIME_DIR", str(tmp_path))
    out = subprocess.run(
        ["qgis_process.bin", "--json", "list"], env=env, capture_output=True, text=True,
        timeout=120, check=True, cwd=tmp_path,
    )  # fmt: skip
    listing = json.loads(out.stdout[out.stdout.index("{") :])
    provider = listing["providers"]["dlstudio"]
    assert len(provider["algorithms"]) == 15
    assert "dlstudio:createproject" in provider["algorithms"]
    # the repository is not importable from there (no PYTHONPATH, cwd elsewhere), so the
    # algorithms came from the unpacked copy: removing it makes them disappear
    shutil.rmtree(plugins / "dlstudio_qgis")
    out = subprocess.run(
        ["qgis_process.bin", "--json", "list"], env=env, capture_output=True, text=True,
        timeout=120, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert "dlstudio" not in json.loads(out.stdout[out.stdout.index("{") :])["providers"]
