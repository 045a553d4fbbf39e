"""Export: SIGTERM mid-run cancels cleanly (error line, exit 130, no folder, no workers)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import REPO, _env
from export_support import CLASSES, make_raster, rect, same_folder_state, write_json

from dlstudio_qgis.engine.protocol import parse_line


def processes_running(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_sigterm_cancels_and_removes_the_partial_output(tmp_path):
    raster, _ = make_raster(tmp_path / "big.tif", width=2048, height=2048)
    samples = write_json(tmp_path / "samples.geojson", {
        "type": "FeatureCollection", "features": [rect(100, 100, 140, 140)]})  # fmt: skip
    job = write_json(tmp_path / "cancel_job.json", {
        "raster": str(raster), "samples": str(samples), "classes": CLASSES,
        "output": str(tmp_path / "out"), "tile_size": [64, 64], "stride": [32, 32],
        "output_nofeature_tiles": True, "workers": 2,
    })  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlstudio_qgis.engine", "export", str(job)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            msg = parse_line(line)
            if msg and msg["type"] == "progress" and msg["value"] > 1:
                break
            assert msg is None or msg["type"] != "result", "finished before the cancel"
            assert time.monotonic() < deadline
        assert any((p / "images").is_dir() for p in tmp_path.glob(".out.partial-*"))
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    msgs = [m for m in map(parse_line, rest.splitlines()) if m]
    assert proc.returncode == 130, (proc.returncode, rest[-2000:], err[-2000:])
    assert msgs[-1]["type"] == "error" and msgs[-1]["kind"] == "cancelled", msgs[-3:]
    assert same_folder_state(tmp_path, "out") == [], err[-2000:]
    deadline = time.monotonic() + 20
    while processes_running(str(job)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_running(str(job)) == []  # no worker left behind
