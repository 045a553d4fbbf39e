"""The output folder is written as a hidden sibling and moved into place only when complete.

``<parent>/.<name>.partial-<random>`` holds the export while it runs; a failed or cancelled
run removes it, so no folder that looks complete is ever left behind. With overwrite, the old
folder is replaced only at the very end (renamed aside, then removed).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from pathlib import Path

from ..protocol import InputError


@contextlib.contextmanager
def signals_deferred():
    """Ignore SIGTERM and SIGINT for a short critical section (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in saved:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def contains(folder: Path, path: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies inside it (symlinks resolved)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


class Staging:
    def __init__(self, final: str | os.PathLike, overwrite: bool) -> None:
        self.final = Path(final)
        self.overwrite = overwrite
        self.path: Path | None = None

    def create(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        self.path = self.final.parent / f".{self.final.name}.partial-{token}"
        self.path.mkdir()
        return self.path

    def commit(self) -> Path:
        """Move the finished folder into place (replacing the old one with overwrite)."""
        assert self.path is not None
        old = None
        with signals_deferred():
            if self.final.is_dir():
                if not any(self.final.iterdir()):
                    self.final.rmdir()
                elif self.overwrite:
                    old = self.final.parent / f".{self.final.name}.old-{secrets.token_hex(4)}"
                    self.final.rename(old)
                else:
                    raise InputError(
                        f"The output folder '{self.final}' was filled while the export ran; "
                        "choose an empty folder or set OVERWRITE."
                    )
            elif self.final.exists():
                raise InputError(f"The output '{self.final}' is a file; give a folder.")
            self.path.rename(self.final)
            self.path = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        if self.path is not None:
            with signals_deferred():
                for _ in range(3):  # a file a dying worker wrote late can fail one pass
                    shutil.rmtree(self.path, ignore_errors=True)
                    if not self.path.exists():
                        break
            self.path = None
