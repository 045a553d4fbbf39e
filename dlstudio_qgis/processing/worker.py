"""Runs an engine command in the worker process and relays what it says to Processing.

``run_engine(command, job, feedback, workdir)`` writes the job file into ``workdir``, starts
``python -m dlstudio_qgis.engine <command> <job.json>`` with the worker Python (the setting
``dlstudio/worker_python``) through ``QgsBlockingProcess``, so that Processing's Cancel
terminates it, turns its JSON lines into progress and log messages as they come, and returns
its result line. An error line becomes a QgsProcessingException with the worker's message; a
worker that dies without one (killed, out of memory, a Python that cannot run the engine) gets
an error naming the exit status, the likely cause, the worker Python and the setting to change,
with the end of what it wrote on stderr.

Standard library and QGIS only: the engine's heavy packages never load in the QGIS process.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import shutil
import signal
import threading
from collections import deque
from pathlib import Path

from qgis.core import QgsBlockingProcess, QgsProcessingException
from qgis.PyQt.QtCore import QProcess

from .. import settings
from ..engine.protocol import parse_line
from .base import tr

STDERR_LINES = 50  # kept for diagnosis
SHOWN_STDERR_LINES = 20  # quoted in an error message
SETTING_HINT = (
    f"the QGIS setting {settings.WORKER_PYTHON_KEY} (Deep Learning Studio settings), or "
    f"${settings.WORKER_PYTHON_ENV}"
)

try:  # Qt6 scoped enums, Qt5 unscoped
    _FAILED_TO_START = QProcess.ProcessError.FailedToStart
    _CRASH_EXIT = QProcess.ExitStatus.CrashExit
except AttributeError:  # pragma: no cover
    _FAILED_TO_START = QProcess.FailedToStart
    _CRASH_EXIT = QProcess.CrashExit


class WorkerCancelled(QgsProcessingException):
    """The user cancelled: the worker was stopped (Processing reports the run as cancelled)."""


def run_engine(command: str, job: dict, feedback, workdir, memory_hint: str = "") -> dict:
    """Run `command` on `job` in the worker; return its result line (a dict).

    Raises QgsProcessingException on an error line, a crash or a worker that cannot start,
    and WorkerCancelled (a QgsProcessingException) when `feedback` is cancelled.
    `memory_hint` says what to lower when the worker is killed as the system's memory ran out.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    job_path = workdir / f"{command}_job.json"
    job_path.write_text(json.dumps(job, indent=2, ensure_ascii=False), encoding="utf-8")

    python = settings.worker_python()
    _check_python(python)
    argv = _with_env(settings.worker_command(command, str(job_path)), settings.worker_env())

    relay = _Relay(feedback)
    stderr = _Lines()
    if feedback is not None and feedback.isCanceled():
        raise WorkerCancelled(tr(f"Cancelled before the {command} worker started."))
    code, status, error = _run_process(argv, feedback, relay, stderr)

    if feedback is not None and feedback.isCanceled():
        raise WorkerCancelled(tr(f"Cancelled: the {command} worker was stopped."))
    if error == _FAILED_TO_START:
        raise QgsProcessingException(
            tr(
                f"The worker Python '{python}' could not be started. Point {SETTING_HINT} at "
                "a Python with numpy, rasterio, shapely and torch (make setup builds one in "
                ".venv)."
            )
        )
    if relay.error is not None:
        _push_traceback(feedback, relay.error)
        raise QgsProcessingException(str(relay.error.get("message") or "The worker failed."))
    crashed = status == _CRASH_EXIT
    if not crashed and code == 0 and relay.result is not None:
        return relay.result
    raise QgsProcessingException(
        _death_message(command, python, code, crashed, stderr.tail + relay.noise, memory_hint)
    )


def _run_process(argv: list[str], feedback, relay: _Lines, stderr: _Lines) -> tuple:
    """Run argv with QgsBlockingProcess; (exit code, exit status, process error).

    The process runs from a helper thread while this thread hands what it writes to `relay`
    and `stderr`, so the feedback is only ever called from the thread that owns it: a
    QgsProcessingMultiStepFeedback passes progress on through a signal that would otherwise
    be queued to this (blocked) thread and arrive only after the run. Cancelling `feedback`
    terminates the process (QgsBlockingProcess listens to its canceled signal).
    """
    inbox: queue.Queue = queue.Queue()
    outcome: list = []

    def work() -> None:
        try:
            process = QgsBlockingProcess(argv[0], argv[1:])
            # QGIS 3.22 calls both handlers (they must be set), and the binding does not keep
            # them alive: these locals do, until run() returns
            on_out = functools.partial(_post, inbox, relay)
            on_err = functools.partial(_post, inbox, stderr)
            process.setStdOutHandler(on_out)
            process.setStdErrHandler(on_err)
            code = process.run(feedback)
            outcome.append((code, process.exitStatus(), process.processError()))
        finally:
            inbox.put(None)

    thread = threading.Thread(target=work, name="dlstudio-worker", daemon=True)
    thread.start()
    while (item := inbox.get()) is not None:
        item[0].feed(item[1])
    thread.join()
    relay.close()
    stderr.close()
    if not outcome:  # pragma: no cover - QgsBlockingProcess raised
        raise QgsProcessingException(tr("The worker process could not be run."))
    return outcome[0]


def _post(inbox: queue.Queue, target, data) -> None:
    inbox.put((target, bytes(data)))


# --- starting ------------------------------------------------------------------------------


def _check_python(python: str) -> None:
    """A clear error for a worker Python that is missing or not executable."""
    if os.sep in python or (os.altsep and os.altsep in python):
        path = Path(python)
        if path.is_file() and os.access(path, os.X_OK):
            return
        problem = "is not executable" if path.is_file() else "does not exist"
    elif shutil.which(python):
        return
    else:
        problem = "is not found on PATH"
    raise QgsProcessingException(
        tr(
            f"The worker Python '{python}' {problem}. The engine (export, training, inference) "
            f"runs in a separate Python with numpy, rasterio, shapely and torch: point "
            f"{SETTING_HINT} at one (make setup builds one in .venv)."
        )
    )


def _with_env(argv: list[str], env: dict) -> list[str]:
    """argv run with `env` instead of this process's environment.

    QgsBlockingProcess (QGIS 3.22) has no way to set the environment, so the difference is
    applied by `env`, which then execs the worker (signals and exit codes stay its own).
    Where there is no `env` (Windows) the worker inherits QGIS's environment.
    """
    base = os.environ
    unset = sorted(k for k in base if k not in env)
    changed = sorted(k for k, v in env.items() if base.get(k) != v)
    if not unset and not changed:
        return argv
    tool = shutil.which("env") if os.name != "nt" else None
    if tool is None or "=" in argv[0]:  # `env` would take a path with '=' for a variable
        return argv
    unsets = [arg for k in unset for arg in ("-u", k)]
    return [tool, *unsets, *(f"{k}={env[k]}" for k in changed), *argv]


# --- reading -------------------------------------------------------------------------------


class _Lines:
    """Bytes in, whole lines out (a partial line waits for its end); keeps the last lines."""

    def __init__(self, keep: int = STDERR_LINES) -> None:
        self._buffer = b""
        self._tail: deque[str] = deque(maxlen=keep)

    @property
    def tail(self) -> list[str]:
        return list(self._tail)

    def feed(self, data) -> None:
        self._buffer += bytes(data)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self.line(line.decode("utf-8", errors="replace").rstrip("\r"))

    def close(self) -> None:
        if self._buffer:
            rest, self._buffer = self._buffer, b""
            self.line(rest.decode("utf-8", errors="replace").rstrip("\r"))

    def line(self, text: str) -> None:
        if text.strip():
            self._tail.append(text)


class _Relay(_Lines):
    """The worker's stdout: progress and log lines go to the feedback as they come."""

    def __init__(self, feedback) -> None:
        super().__init__(keep=SHOWN_STDERR_LINES)
        self.feedback = feedback
        self.result: dict | None = None
        self.error: dict | None = None

    @property
    def noise(self) -> list[str]:
        """What the worker wrote on stdout that was not a message (a crash before start-up)."""
        return self.tail

    def line(self, text: str) -> None:
        message = parse_line(text)
        if message is None:
            super().line(text)
            return
        kind, fb = message["type"], self.feedback
        if kind == "result":
            self.result = message
        elif kind == "error":
            self.error = message
        elif fb is None:
            return
        elif kind == "progress":
            with contextlib.suppress(TypeError, ValueError):
                fb.setProgress(float(message.get("value", 0)))
        elif kind == "log":
            text = str(message.get("message", ""))
            level = message.get("level", "info")
            if level == "warning":
                fb.pushWarning(text)
            elif level == "error":
                fb.reportError(text, False)
            elif level == "debug":
                fb.pushDebugInfo(text)
            else:
                fb.pushInfo(text)


def _push_traceback(feedback, error: dict) -> None:
    if feedback is not None and error.get("traceback"):
        feedback.pushDebugInfo(str(error["traceback"]))


# --- a worker that died --------------------------------------------------------------------


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except (ValueError, AttributeError):
        return f"signal {number}"


def _death_message(
    command: str, python: str, code: int, crashed: bool, lines: list[str], memory_hint: str
) -> str:
    """Why the worker ended without a result or error line, and what to do about it."""
    signum = code if crashed else (code - 128 if 128 < code < 160 else None)
    if signum is not None:
        name = _signal_name(signum)
        what = (
            f"was killed by {name}" if crashed else f"exited with status {code} (killed by {name})"
        )
        if signum == getattr(signal, "SIGKILL", 9):
            cause = (
                "Most often the system ran out of memory and its out-of-memory killer stopped "
                "the worker (or someone killed it). "
                + (memory_hint or "Use fewer WORKERS or smaller tiles.")
                + " A machine with more memory helps too."
            )
        else:
            cause = "Something outside the plugin stopped it, or it crashed."
    elif code == 0:
        what, cause = "ended without a result", "It may have been stopped from outside."
    else:
        what = f"exited with status {code} without reporting an error"
        cause = (
            "It probably crashed or could not load the engine: a Python too old (3.11 or later "
            "is needed), a broken package, or a plugin folder it cannot import. Check it with "
            "`<python> -m dlstudio_qgis.engine info`."
        )
    text = tr(
        f"The {command} worker {what}. {cause} The worker Python is '{python}'; change it with "
        f"{SETTING_HINT}."
    )
    shown = lines[-SHOWN_STDERR_LINES:]
    if shown:
        text += "\n" + tr("Its last output:") + "\n" + "\n".join(shown)
    return text
