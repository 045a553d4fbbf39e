"""The worker as the plugin runs it: ``python -m dlstudio_qgis.engine ...`` in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from engine_helpers import REPO, _env, run_engine

from dlstudio_qgis.engine.protocol import parse_line


def test_info_reports_versions_and_devices():
    run = run_engine("info")
    assert run.rc == 0, run.stderr
    assert all(run.messages), run.stdout
    res = run.last
    assert res["type"] == "result" and res["command"] == "info"
    assert res["python"].count(".") == 2
    for name in ("numpy", "torch", "torchvision", "rasterio"):
        assert name in res["versions"]
    assert res["versions"]["numpy"]  # the worker cannot do anything without numpy
    assert isinstance(res["cuda_available"], bool)
    assert isinstance(res["device_names"], list)
    assert res["device"] in ("cpu", "cuda", "mps")
    if res["cuda_available"]:
        assert res["device_names"]


def test_info_reports_a_missing_package_instead_of_crashing(tmp_path):
    # a module named torch that fails to import shadows the real one
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('broken torch build')\n")
    env = _env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", "info"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    res = parse_line(proc.stdout.splitlines()[-1])
    assert res["versions"]["torch"] is None
    assert "torch" in res["missing"] and "broken torch build" in res["errors"]["torch"]
    assert res["cuda_available"] is False


def test_the_protocol_and_parser_import_nothing_heavy():
    """The QGIS side may import the protocol: no numpy, rasterio or torch behind it."""
    code = (
        "import sys; from dlstudio_qgis.engine import cli, protocol; cli.build_parser(); "
        "print(sorted(m for m in ('numpy', 'rasterio', 'torch', 'shapely') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
        env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_error_line_then_nonzero_exit():
    run = run_engine("synth-scene")  # no output path
    assert run.rc == 1
    assert run.last["type"] == "error" and run.last["kind"] == "input"
    assert "output" in run.last["message"]


def test_usage_error_exit_2():
    run = run_engine("no-such-command")
    assert run.rc == 2 and run.last["kind"] == "usage"


def test_job_file_and_stdin(tmp_path):
    job = {"output": str(tmp_path / "a" / "s.tif"), "size": 128, "seed": 3}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    run = run_engine("synth-scene", path, "--seed", "4")
    assert run.rc == 0, run.stderr
    assert run.last["seed"] == 4 and run.last["width"] == 128
    proc = subprocess.run(
        [sys.executable, "-m", "dlstudio_qgis.engine", "synth-scene", "-"],
        input=json.dumps({**job, "output": str(tmp_path / "b.tif")}),
        capture_output=True, text=True, timeout=300, cwd=REPO, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert parse_line(proc.stdout.splitlines()[-1])["output"] == str(tmp_path / "b.tif")


def test_sigterm_cancels_with_an_error_line(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlstudio_qgis.engine", "synth-scene", "-o",
         tmp_path / "big.tif", "--size", "8192", "--no-overviews"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            msg = parse_line(line)
            if msg and msg["type"] == "progress":
                break
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    msgs = [parse_line(x) for x in rest.splitlines()]
    assert proc.returncode == 130
    assert msgs[-1]["type"] == "error" and msgs[-1]["kind"] == "cancelled"
    assert not (tmp_path / "big.tif").exists()
    assert not list(tmp_path.glob(".*part*"))
