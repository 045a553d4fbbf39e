"""Noticing changes that other processes make to a project file (Qt-free).

SQLite's ``PRAGMA data_version`` on a connection of our own changes whenever any other
connection commits, whichever process it is in (our own dock's writes too, since the core
opens a connection per call). The file's inode catches a file replaced as a whole.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class ChangeProbe:
    """`changed()` is True once after each commit to the file by anyone."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._con: sqlite3.Connection | None = None
        self._last: tuple = (None, None)
        self._last = self._signature()

    def _signature(self) -> tuple:
        try:
            inode = self.path.stat().st_ino
        except OSError:
            return (None, None)
        if self._con is None or self._inode != inode:
            self.close()
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._con = sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None)
            self._inode = inode
        try:
            version = self._con.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:  # busy: try again at the next poll
            return self._last
        return (inode, version)

    def changed(self) -> bool:
        sig = self._signature()
        if sig == self._last:
            return False
        self._last = sig
        return True

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    _inode: int | None = None
