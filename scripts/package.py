#!/usr/bin/env python3
"""Build dist/dlstudio_qgis-<version>.zip, installable with QGIS's Plugin Manager.

The zip holds one top folder, dlstudio_qgis/, with the plugin files; caches,
compiled files and tests are left out. The version is the `version=` key of
dlstudio_qgis/metadata.txt.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

PLUGIN = "dlstudio_qgis"
REPO = Path(__file__).resolve().parent.parent
EXCLUDED_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def read_version(metadata: Path) -> str:
    for line in metadata.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*version\s*=\s*(\S+)\s*$", line)
        if m:
            return m.group(1)
    raise SystemExit(f"error: no version= line in {metadata}")


def plugin_files(src: Path) -> list[Path]:
    files = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in EXCLUDED_DIRS for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in EXCLUDED_SUFFIXES:
            files.append(path)
    return files


def build(out_dir: Path = REPO / "dist") -> Path:
    src = REPO / PLUGIN
    version = read_version(src / "metadata.txt")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN}-{version}.zip"
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files(src):
            zf.write(path, f"{PLUGIN}/{path.relative_to(src).as_posix()}")
    tmp.replace(target)
    return target


def main() -> int:
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
