"""The plugin's settings (QgsSettings), read by the plugin, its Processing algorithms and UI.

``dlstudio/worker_python``: the Python that runs the engine worker
(``python -m dlstudio_qgis.engine``); it needs numpy, rasterio, shapely and torch, which QGIS's
own Python lacks. ``dlstudio/user``: the user name to act as.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qgis.core import QgsSettings

from .core import current_user

WORKER_PYTHON_KEY = "dlstudio/worker_python"
USER_KEY = "dlstudio/user"
WORKER_PYTHON_ENV = "DLSTUDIO_WORKER_PYTHON"
ENGINE_MODULE = "dlstudio_qgis.engine"

#: The plugin's real folder: a profile's symlink resolves to the source checkout.
PLUGIN_DIR = Path(__file__).resolve().parent


def _text(value) -> str:
    """A setting's value as stripped text; None, a null QVariant or NULL become ''."""
    if value is None:
        return ""
    is_null = getattr(value, "isNull", None)
    if callable(is_null) and is_null():
        return ""
    return str(value).strip()


def _get(key: str) -> str:
    return _text(QgsSettings().value(key, ""))


def _set(key: str, value: str | None) -> None:
    settings = QgsSettings()
    if value is None or not str(value).strip():
        settings.remove(key)
    else:
        settings.setValue(key, str(value).strip())


def _venv_python(root: Path) -> Path | None:
    for rel in (".venv/bin/python", ".venv/Scripts/python.exe"):
        candidate = root / rel
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def default_worker_python() -> str:
    """The worker Python when the setting is empty.

    The ``.venv`` that ``make setup`` builds beside the plugin's real folder (a source checkout
    installed by a symlink); else the current interpreter if it is a Python (not the qgis
    binary, which is QGIS's ``sys.executable``); else ``python3`` on PATH.
    """
    venv = _venv_python(PLUGIN_DIR.parent)
    if venv is not None:
        return str(venv)  # not resolved: the venv's python is a symlink that must stay one
    exe = Path(sys.executable or "")
    if exe.name.lower().startswith("python") and os.access(exe, os.X_OK):
        return str(exe)
    found = shutil.which("python3") or shutil.which("python")
    if found:
        return found
    return "python3" if os.name == "nt" else "/usr/bin/python3"


def worker_python() -> str:
    """The setting if set, else $DLSTUDIO_WORKER_PYTHON, else ``default_worker_python()``."""
    from_env = os.environ.get(WORKER_PYTHON_ENV, "").strip()
    return _get(WORKER_PYTHON_KEY) or from_env or default_worker_python()


def set_worker_python(path: str | None) -> None:
    """Store the worker Python; None or '' goes back to the default."""
    _set(WORKER_PYTHON_KEY, path)


def worker_command(command: str, *args: str) -> list[str]:
    """The argv of an engine command: ``[python, -m, dlstudio_qgis.engine, command, ...]``."""
    return [worker_python(), "-m", ENGINE_MODULE, command, *map(str, args)]


def worker_env(base: dict | None = None) -> dict:
    """The worker's environment: it imports the engine from this plugin's folder, whatever
    Python it is, and inherits nothing of QGIS's own Python set-up."""
    env = dict(os.environ if base is None else base)
    for key in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONPATH"] = str(PLUGIN_DIR.parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def user_name() -> str:
    """The user to act as: the setting if set, else core's current_user() ($DLSTUDIO_USER or
    the operating-system user name)."""
    return _get(USER_KEY) or current_user()


def set_user_name(name: str | None) -> None:
    """Store the user name; None or '' goes back to the default."""
    _set(USER_KEY, name)
