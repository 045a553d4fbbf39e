"""The worker's command line: ``python -m dlstudio_qgis.engine <command> [job.json] [options]``.

A command's parameters come from the job file (a JSON object; ``-`` reads stdin), and options
given on the command line override them. Every command module has ``HELP``,
``add_arguments(parser)`` (options default to ``argparse.SUPPRESS`` so that only the ones given
override the job) and ``run(params, reporter) -> dict`` (the result fields). Command modules
import numpy, rasterio or torch inside ``run``, so that building the parser stays cheap and
a missing package is reported as an error line, not a crash at start-up.

Exit status: 0 after a result line, 1 after an error line, 2 for a usage error (also reported
as an error line, kind ``usage``), 130 when cancelled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import IO

from .protocol import (
    PROTOCOL_VERSION,
    Cancelled,
    EngineError,
    InputError,
    Reporter,
    describe_out_of_memory,
    is_out_of_memory,
)

#: command name -> module (imported only when the command runs)
COMMANDS: dict[str, str] = {
    "info": "dlstudio_qgis.engine.info",
    "export": "dlstudio_qgis.engine.export.command",
    "synth-scene": "dlstudio_qgis.engine.synth",
    "train": "dlstudio_qgis.engine.train.command",
    "accuracy": "dlstudio_qgis.engine.accuracy.command",
    "infer": "dlstudio_qgis.engine.infer.command",
}


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


def _module(command: str):
    return importlib.import_module(COMMANDS[command])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dlstudio_qgis.engine",
        description="Deep Learning Studio worker. Writes JSON lines (progress, log, result, "
        "error) on stdout.",
    )
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = _module(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("job", nargs="?", help="job file (JSON object); '-' reads stdin")
        module.add_arguments(p)
    return parser


def load_job(path: str | None, stdin: IO[str] | None = None) -> dict:
    if not path:
        return {}
    try:
        if path == "-":
            text = (stdin or sys.stdin).read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"Cannot read the job file '{path}': {e.strerror or e}.") from None
    try:
        job = json.loads(text)
    except ValueError as e:
        raise InputError(f"The job file '{path}' is not valid JSON: {e}.") from None
    if not isinstance(job, dict):
        raise InputError(f"The job file '{path}' must hold a JSON object.")
    return job


def _on_sigterm(_signum, _frame):
    raise Cancelled("The worker was cancelled.")


def main(argv: list[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run one command; messages go to `stdout` (the real stdout by default)."""
    out = stdout if stdout is not None else sys.stdout
    reporter = Reporter(out)
    # stray prints from libraries must not corrupt the message stream
    saved_stdout = sys.stdout
    if stdout is None:
        sys.stdout = sys.stderr
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    command = None
    try:
        try:
            args = build_parser().parse_args(argv)
        except _UsageError as e:
            reporter.error(str(e), kind="usage")
            print(str(e), file=sys.stderr)
            return 2
        command = args.command
        params = load_job(args.job)
        params.update({k: v for k, v in vars(args).items() if k not in ("command", "job")})
        result = _module(command).run(params, reporter)
        reporter.result(command=command, protocol=PROTOCOL_VERSION, **(result or {}))
        return 0
    except (Cancelled, KeyboardInterrupt):
        reporter.error("The worker was cancelled.", kind="cancelled")
        return 130
    except EngineError as e:
        reporter.error(str(e), kind=e.kind)
        return 1
    except ImportError as e:
        name = getattr(e, "name", None) or str(e)
        reporter.error(
            f"The worker's Python ({sys.executable}) lacks '{name}' ({e}). Point the "
            "Deep Learning Studio worker Python setting at an environment that has it "
            "(make setup builds one).",
            kind="missing_dependency",
        )
        return 1
    except Exception as e:  # report, never die silently
        if is_out_of_memory(e):
            traceback.print_exc(file=sys.stderr)
            reporter.error(
                f"The {command or 'worker'} worker ran out of memory "
                f"({describe_out_of_memory(e)}). Close other programs, or give it smaller "
                "batches, tiles or rasters.",
                kind="memory",
            )
            return 1
        traceback.print_exc(file=sys.stderr)
        reporter.error(
            f"{command or 'worker'} failed: {type(e).__name__}: {e}",
            kind="internal",
            traceback=traceback.format_exc(limit=20),
        )
        return 1
    finally:
        sys.stdout = saved_stdout
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
