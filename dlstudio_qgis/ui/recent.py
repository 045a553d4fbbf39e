"""The last project the Project dock opened, kept in QgsSettings so that the plugin reopens it
when QGIS starts.

``dlstudio/last_project``: the path of the last project file opened (from the dock, the
wizard, or at start-up). ``dlstudio/reopen_last_project``: whether to reopen it when the plugin
starts (default true; a checkbox in the Project dock).
"""

from __future__ import annotations

from qgis.core import QgsSettings

LAST_PROJECT_KEY = "dlstudio/last_project"
REOPEN_KEY = "dlstudio/reopen_last_project"


def last_project() -> str:
    value = QgsSettings().value(LAST_PROJECT_KEY, "", type=str)
    return (value or "").strip()


def remember(path: str) -> None:
    QgsSettings().setValue(LAST_PROJECT_KEY, str(path))


def forget() -> None:
    QgsSettings().remove(LAST_PROJECT_KEY)


def reopen_enabled() -> bool:
    return bool(QgsSettings().value(REOPEN_KEY, True, type=bool))


def set_reopen_enabled(on: bool) -> None:
    QgsSettings().setValue(REOPEN_KEY, bool(on))
