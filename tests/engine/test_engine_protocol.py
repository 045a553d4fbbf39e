"""The worker's JSON-lines protocol and its command line (in-process, with fake commands)."""

from __future__ import annotations

import io
import json
import sys
import types

import numpy as np
import pytest

from dlstudio_qgis.engine import cli
from dlstudio_qgis.engine.protocol import (
    EngineError,
    InputError,
    Reporter,
    describe_out_of_memory,
    dumps,
    is_out_of_memory,
    parse_line,
)

#: what torch 2.14 raises when an allocation fails (on the CPU under RLIMIT_AS, and on CUDA)
CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 100663296 bytes. Error code 12 (Cannot allocate memory)"
)
CUDA_OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB "
    "of which 1.06 GiB is free. Including non-PyTorch memory, this process has 78.03 GiB memory "
    "in use. Of the allocated memory 76.50 GiB is allocated by PyTorch, and 1.02 GiB is reserved "
    "by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation."
)


def lines(stream: io.StringIO) -> list[dict]:
    out = [parse_line(line) for line in stream.getvalue().splitlines()]
    assert all(out), stream.getvalue()
    return out


def test_each_message_is_one_flushed_json_line():
    s = io.StringIO()
    r = Reporter(s)
    r.progress(10)
    r.log("multi\nline message", "warning")
    r.result(path="/tmp/x", n=np.int64(3), arr=np.arange(2), f=np.float32(0.5))
    raw = s.getvalue().splitlines()
    assert len(raw) == 3
    msgs = [json.loads(x) for x in raw]
    assert msgs[0] == {"type": "progress", "value": 10.0}
    assert msgs[1] == {"type": "log", "level": "warning", "message": "multi\nline message"}
    assert msgs[2] == {"type": "result", "path": "/tmp/x", "n": 3, "arr": [0, 1], "f": 0.5}
    assert r.finished == "result"


def test_progress_is_clamped_and_not_repeated():
    s = io.StringIO()
    r = Reporter(s)
    for v in (-5, 0, 0, 0.01, 50, 50.04, 50.2, 150, 100):
        r.progress(v)
    assert [m["value"] for m in lines(s)] == [0.0, 50.0, 50.2, 100.0]


def test_scaled_progress_maps_onto_a_stage():
    s = io.StringIO()
    r = Reporter(s)
    stage = r.scaled(50, 70)
    stage.progress(0)
    stage.progress(50)
    stage.progress(200)
    stage.log("hello")
    assert [m.get("value") for m in lines(s)] == [50.0, 60.0, 70.0, None]


def test_unknown_log_level_becomes_info_and_error_has_kind():
    s = io.StringIO()
    r = Reporter(s)
    r.log("x", "shout")
    r.error("bad input", kind="input", field="size")
    a, b = lines(s)
    assert a["level"] == "info"
    assert b == {"type": "error", "message": "bad input", "kind": "input", "field": "size"}
    assert r.finished == "error"


def test_nan_is_sent_as_null():
    assert json.loads(dumps({"type": "result", "x": float("nan"), "y": [float("inf"), 1.0]})) == {
        "type": "result", "x": None, "y": [None, 1.0]
    }  # fmt: skip


@pytest.mark.parametrize(
    "line",
    ["", "hello", "{not json", "[1, 2]", '{"type": "other"}', '{"value": 3}', "null"],
)
def test_parse_line_ignores_what_is_not_a_message(line):
    assert parse_line(line) is None


def test_parse_line_reads_bytes_and_whitespace():
    assert parse_line(b'  {"type": "progress", "value": 3}\r\n') == {
        "type": "progress", "value": 3
    }  # fmt: skip


# --- the command line, with fake commands ---------------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    """Register a command 'fake' whose run() is what the test sets."""
    module = types.ModuleType("dls_fake_command")
    module.HELP = "a fake command"
    module.add_arguments = lambda p: p.add_argument("--n", type=int, default=cli.argparse.SUPPRESS)
    module.run = lambda params, reporter: {"params": params}
    monkeypatch.setitem(sys.modules, "dls_fake_command", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", "dls_fake_command")
    return module


def test_result_merges_job_file_and_options(fake, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"n": 1, "name": "x"}))
    out = io.StringIO()
    assert cli.main(["fake", str(job), "--n", "5"], stdout=out) == 0
    (msg,) = lines(out)
    assert msg["type"] == "result" and msg["command"] == "fake" and msg["protocol"] == 1
    assert msg["params"] == {"n": 5, "name": "x"}


@pytest.mark.parametrize(
    ("exc", "kind", "rc"),
    [
        (InputError("size must be positive"), "input", 1),
        (EngineError("out of luck", kind="gpu"), "gpu", 1),
        (ModuleNotFoundError("No module named 'torch'", name="torch"), "missing_dependency", 1),
        (ZeroDivisionError("division by zero"), "internal", 1),
        (MemoryError(), "memory", 1),
        (RuntimeError(CPU_OOM), "memory", 1),
        (KeyboardInterrupt(), "cancelled", 130),
    ],
)
def test_failures_end_with_one_error_line_and_nonzero_status(fake, exc, kind, rc):
    def run(params, reporter):
        reporter.progress(10)
        raise exc

    fake.run = run
    out = io.StringIO()
    assert cli.main(["fake"], stdout=out) == rc
    msgs = lines(out)
    assert [m["type"] for m in msgs] == ["progress", "error"]
    assert msgs[-1]["kind"] == kind
    assert msgs[-1]["message"]
    if kind == "missing_dependency":
        assert "torch" in msgs[-1]["message"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (MemoryError(), True),
        (RuntimeError(CPU_OOM), True),
        (RuntimeError(CUDA_OOM), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"), False),
        (ValueError("out of memory"), False),  # only allocators' errors count
    ],
)
def test_out_of_memory_is_told_from_other_failures(exc, expected):
    assert is_out_of_memory(exc) is expected


def test_an_out_of_memory_message_keeps_what_was_asked_for():
    assert describe_out_of_memory(RuntimeError(CPU_OOM)) == (
        "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate "
        "100663296 bytes."
    )
    cuda = describe_out_of_memory(RuntimeError(CUDA_OOM))
    assert cuda.startswith("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0")
    assert len(cuda) <= len("RuntimeError: ") + 300


def test_an_allocator_failure_names_memory_and_the_command(fake):
    def run(params, reporter):
        raise RuntimeError(CPU_OOM)

    fake.run = run
    out = io.StringIO()
    assert cli.main(["fake"], stdout=out) == 1
    (msg,) = lines(out)
    assert msg["kind"] == "memory"
    assert msg["message"].startswith("The fake worker ran out of memory (RuntimeError: Default")
    assert "you tried to allocate 100663296 bytes" in msg["message"]
    assert "smaller" in msg["message"]


def test_usage_errors_are_reported_with_status_2(fake):
    for argv in (["nope"], [], ["fake", "--n", "many"]):
        out = io.StringIO()
        assert cli.main(argv, stdout=out) == 2
        (msg,) = lines(out)
        assert msg["type"] == "error" and msg["kind"] == "usage"


def test_bad_job_files_are_input_errors(fake, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    for path in (bad, broken, tmp_path / "missing.json"):
        out = io.StringIO()
        assert cli.main(["fake", str(path)], stdout=out) == 1
        (msg,) = lines(out)
        assert msg["kind"] == "input" and str(path) in msg["message"]


def test_stray_prints_go_to_stderr(fake, capsys):
    def run(params, reporter):
        print("chatty library output")
        return {"ok": True}

    fake.run = run
    assert cli.main(["fake"]) == 0
    captured = capsys.readouterr()
    assert "chatty" in captured.err
    assert [parse_line(x)["type"] for x in captured.out.splitlines()] == ["result"]
    assert sys.stdout is not sys.stderr
