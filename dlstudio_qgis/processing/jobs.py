"""How a deep learning job ends: recorded in the project, its leftovers removed."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

from ..core import DLStudioError
from .base import tr


def end_job(project, job_id: str, status: str, feedback, **fields) -> None:
    """Record how the job ended; a failure to record is a warning, not the run's outcome."""
    try:
        project.update_job(job_id, status, **fields)
    except (DLStudioError, sqlite3.Error) as exc:
        feedback.pushWarning(tr(f"Could not record job {job_id} as {status}: {exc}"))


def remove_partials(output: Path, pattern: str, since: float) -> None:
    """Files or folders matching `pattern` beside `output` that this run left (a killed worker
    cannot remove its own): modified since the run started."""
    for partial in output.parent.glob(pattern):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < since - 1:
                continue
            if partial.is_dir() and not partial.is_symlink():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink()
