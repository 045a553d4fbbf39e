#!/usr/bin/env python3
"""Install the dlstudio_qgis plugin into a QGIS profile and enable it.

Run with the system Python (/usr/bin/python3), which has QGIS's bindings:

    /usr/bin/python3 scripts/install_plugin.py [--profiles-path DIR]
        [--profile NAME] [--worker-python PATH] [--copy]

It links (or copies) <repo>/dlstudio_qgis to
<profiles>/<profile>/python/plugins/dlstudio_qgis, replacing what is there,
and sets in <profiles>/<profile>/QGIS/QGIS3.ini:
    PythonPlugins/dlstudio_qgis = true
    dlstudio/worker_python      = <worker python>
Idempotent.

For a throw-away profile (tests), install with --profiles-path TMP/profiles
and run QGIS or qgis_process with QGIS_CUSTOM_CONFIG_PATH=TMP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

PLUGIN = "dlstudio_qgis"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES = Path.home() / ".local/share/QGIS/QGIS3/profiles"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles-path", type=Path, default=DEFAULT_PROFILES)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--worker-python", default=str(REPO / ".venv/bin/python"))
    ap.add_argument("--copy", action="store_true", help="copy instead of symlink")
    return ap.parse_args(argv)


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", "tests") or n.endswith(".pyc")}


def install_files(src: Path, dest: Path, copy: bool) -> str:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.is_dir():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copytree(src, dest, ignore=_ignore)
        return f"copied {src} -> {dest}"
    os.symlink(src, dest, target_is_directory=True)
    return f"linked {dest} -> {src}"


def write_settings(ini: Path, worker_python: str) -> None:
    from qgis.PyQt.QtCore import QSettings

    ini.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(ini), QSettings.IniFormat)
    settings.setValue(f"PythonPlugins/{PLUGIN}", True)
    settings.setValue("dlstudio/worker_python", worker_python)
    settings.sync()
    if settings.status() != QSettings.NoError:
        raise SystemExit(f"error: could not write {ini}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    src = REPO / PLUGIN
    if not (src / "metadata.txt").is_file():
        print(f"error: {src}/metadata.txt not found", file=sys.stderr)
        return 1
    profile_dir = args.profiles_path.expanduser().resolve() / args.profile
    dest = profile_dir / "python" / "plugins" / PLUGIN
    print(install_files(src, dest, args.copy))

    worker = str(Path(args.worker_python).expanduser().absolute())
    if not os.access(worker, os.X_OK):
        print(f"warning: worker python {worker} is not executable (run `make setup`)")
    ini = profile_dir / "QGIS" / "QGIS3.ini"
    write_settings(ini, worker)
    print(f"set PythonPlugins/{PLUGIN}=true and dlstudio/worker_python={worker} in {ini}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
