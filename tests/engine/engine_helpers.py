"""Helpers for the engine tests: run the worker as the plugin does, in a subprocess.

The pytest process imports numpy at most; rasterio and torch stay in subprocesses, because
the same pytest run may import qgis (two GDALs in one process do not mix).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dlstudio_qgis.engine.protocol import parse_line

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("raster_probe.py")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class Run:
    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.rc = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.messages = [parse_line(line) for line in proc.stdout.splitlines()]

    @property
    def last(self) -> dict:
        return self.messages[-1]

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m and m["type"] == kind]


def run_engine(*args: str, timeout: float = 300) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_env(),
    )  # fmt: skip
    return Run(proc)


def probe(tif: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(tif)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
