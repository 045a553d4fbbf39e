"""How the worker talks back: one JSON object per line on stdout.

Messages (every one has a ``type``)::

    {"type": "progress", "value": 42.5}                       # percent, 0-100
    {"type": "log", "level": "info", "message": "..."}        # debug/info/warning/error
    {"type": "result", "command": "synth-scene", ...}          # once, on success
    {"type": "error", "message": "...", "kind": "input"}       # once, on failure

After an error line the worker exits with a non-zero status; after a result line, with 0.
Anything else on stdout is not a message (``parse_line`` returns None for it), and the worker
sends stray prints to stderr so they cannot corrupt the stream.

Standard library only, so the QGIS side may import it to read the stream.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from typing import IO, Any

PROTOCOL_VERSION = 1
TYPES = ("progress", "log", "result", "error")
LEVELS = ("debug", "info", "warning", "error")


#: how torch reports a failed allocation in a plain RuntimeError (CUDA raises
#: torch.OutOfMemoryError, a RuntimeError whose text has "out of memory" too)
OUT_OF_MEMORY_TEXTS = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a MemoryError, or a RuntimeError that says an allocation failed."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(t in text for t in OUT_OF_MEMORY_TEXTS)


def describe_out_of_memory(exc: BaseException) -> str:
    """The useful part of an out-of-memory message: how much was asked for."""
    text = str(exc).strip()
    start = text.find("DefaultCPUAllocator")
    if start >= 0:
        text = text[start:].split(" Error code")[0]
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}"


class EngineError(Exception):
    """A failure the worker reports as an error line; ``kind`` tells callers what went wrong."""

    kind = "error"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class InputError(EngineError):
    """A bad job: a missing or invalid parameter, an unreadable input file."""

    kind = "input"


class MissingDependencyError(EngineError):
    """A package the command needs is not installed in the worker's Python."""

    kind = "missing_dependency"


class Cancelled(EngineError):
    """The worker was asked to stop (SIGTERM or Ctrl+C)."""

    kind = "cancelled"


def _default(obj: Any) -> Any:
    """JSON for numpy scalars and arrays, paths and sets, without importing numpy."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "__fspath__"):
        return obj.__fspath__()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _finite(obj: Any) -> Any:
    """Replace NaN and infinities (not JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(message: dict) -> str:
    """One message as one line of JSON (no newline inside, no NaN)."""
    text = json.dumps(message, default=_default, ensure_ascii=False, allow_nan=True)
    if "NaN" in text or "Infinity" in text:
        text = json.dumps(_finite(json.loads(text)), ensure_ascii=False, allow_nan=False)
    return text


def parse_line(line: str | bytes) -> dict | None:
    """The message on a line of worker output, or None when the line is not a message."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") not in TYPES:
        return None
    return message


class Reporter:
    """Writes messages to the stream (stdout by default), one flushed line each.

    Thread-safe; progress is clamped to 0-100 and repeated values are not sent again.
    """

    def __init__(self, stream: IO[str] | None = None, min_step: float = 0.1) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._min_step = min_step
        self._last_progress: float | None = None
        self.finished: str | None = None  # "result" or "error" once sent

    def emit(self, message: dict) -> None:
        line = dumps(message)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def progress(self, value: float) -> None:
        value = round(min(100.0, max(0.0, float(value))), 1)
        last = self._last_progress
        if last is not None and abs(value - last) < self._min_step and value not in (0.0, 100.0):
            return
        if value == last:
            return
        self._last_progress = value
        self.emit({"type": "progress", "value": value})

    def scaled(self, start: float, end: float) -> ProgressRange:
        """A reporter whose progress 0-100 maps to start-end of this one (for a stage)."""
        return ProgressRange(self, start, end)

    def log(self, message: str, level: str = "info") -> None:
        level = level if level in LEVELS else "info"
        self.emit({"type": "log", "level": level, "message": str(message)})

    def info(self, message: str) -> None:
        self.log(message, "info")

    def warning(self, message: str) -> None:
        self.log(message, "warning")

    def result(self, **fields: Any) -> None:
        self.finished = "result"
        self.emit({"type": "result", **fields})

    def error(self, message: str, kind: str = "error", **fields: Any) -> None:
        self.finished = "error"
        self.emit({"type": "error", "message": str(message), "kind": kind, **fields})


class ProgressRange:
    """Maps 0-100 onto a part of a parent reporter's progress; logs pass through."""

    def __init__(self, parent: Reporter, start: float, end: float) -> None:
        self._parent, self._start, self._end = parent, float(start), float(end)

    def progress(self, value: float) -> None:
        value = min(100.0, max(0.0, float(value)))
        self._parent.progress(self._start + (self._end - self._start) * value / 100.0)

    def log(self, message: str, level: str = "info") -> None:
        self._parent.log(message, level)

    def info(self, message: str) -> None:
        self._parent.log(message, "info")

    def warning(self, message: str) -> None:
        self._parent.log(message, "warning")
