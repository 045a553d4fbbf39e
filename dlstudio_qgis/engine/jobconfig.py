"""What every worker job config shares: a version, a kind, known fields, JSON in and out.

Standard library only, so the QGIS side can build jobs without the engine's heavy imports.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from .protocol import InputError


class JobConfig:
    """Mixed into a frozen dataclass with a `version` field; subclasses set the class
    attributes and implement `from_dict` (calling `_prepare` first) and `validate`."""

    KIND = ""  # the `kind` written into the job file
    WHAT = ""  # how messages name it, e.g. "export job"
    VERSION = 1
    REQUIRED: tuple[str, ...] = ()

    @classmethod
    def _prepare(cls, data: dict) -> tuple[dict, int]:
        """A copy of `data` without version/kind, checked for version, unknown and missing
        fields; and the version."""
        data = dict(data)
        version = int(data.pop("version", cls.VERSION))
        if version > cls.VERSION:
            raise InputError(
                f"{cls.WHAT.capitalize()} version {version} is newer than this worker reads "
                f"({cls.VERSION}); update the plugin in the worker's Python."
            )
        data.pop("kind", None)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"Unknown {cls.WHAT} fields: {', '.join(sorted(unknown))}.")
        for key in cls.REQUIRED:
            if key not in data:
                raise InputError(f"The {cls.WHAT} lacks '{key}'.")
        return data, version

    @classmethod
    def load(cls, path: str | os.PathLike):
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.KIND
        return d
