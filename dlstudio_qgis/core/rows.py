"""Row-level helpers shared by the work unit and sample mixins (inside a transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .errors import (
    ConcurrentChangeError,
    NotFoundError,
    ValidationError,
)
from .geometry import Geometry, from_gpkg, validate
from .model import InferenceTool, Sample, WorkUnit, now
from .schema import log
from .states import SampleStatus, WorkUnitStatus

W, S = WorkUnitStatus, SampleStatus
_COLLECTABLE = (W.QUEUED, W.IN_PROGRESS)


def transition(con, user, fid, frm: W, to: W, action: str, comment: str, reviewer=None) -> None:
    """The one place a work unit's status changes: compare-and-set, then one history row."""
    extra = ", reviewer = ?" if reviewer is not None else ""
    args = [to.value, now(), user] + ([reviewer] if reviewer is not None else [])
    cur = con.execute(
        f"UPDATE work_units SET status = ?, updated_at = ?, updated_by = ?{extra} "
        "WHERE fid = ? AND status = ?",
        (*args, fid, frm.value),
    )
    if cur.rowcount != 1:
        raise ConcurrentChangeError(
            f"Work unit {fid} is no longer {frm.label}: someone changed it meanwhile. Refresh "
            "and try again."
        )
    log(con, user, "work_unit", fid, action, frm.value, to.value, comment)


def select(table: str, ids: Iterable[int] | None = None, **equal) -> tuple[str, list]:
    """`SELECT * FROM table` filtered by `column = value` for each value that is not None and
    by `fid IN ids` when ids are given, in fid order; the SQL and its arguments."""
    sql, args = f"SELECT * FROM {table} WHERE 1 = 1", []
    for column, value in equal.items():
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    if ids is not None:
        ids = [int(i) for i in ids]
        sql += f" AND fid IN ({','.join('?' * len(ids))})"
        args += ids
    return sql + " ORDER BY fid", args


def _require_units(con: sqlite3.Connection, ids: list[int]) -> None:
    """NotFoundError naming every id in `ids` that is not a work unit."""
    known = {r[0] for r in con.execute("SELECT fid FROM work_units")}
    missing = [i for i in ids if i not in known]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise NotFoundError(
            f"No work unit {shown} in this project; nothing changed. Check the ids "
            "(the fid column of the work_units layer)."
        )


def _unit_row(con: sqlite3.Connection, fid: int) -> sqlite3.Row:
    row = con.execute("SELECT * FROM work_units WHERE fid = ?", (int(fid),)).fetchone()
    if row is None:
        raise NotFoundError(f"No work unit {fid} in this project.")
    return row


def _unit(r: sqlite3.Row) -> WorkUnit:
    return WorkUnit(
        r["fid"], r["name"], W(r["status"]), r["assignee"], r["lock_expires"], r["reviewer"],
        r["updated_at"], r["updated_by"], from_gpkg(r["geom"]),
    )  # fmt: skip


def _sample(r: sqlite3.Row) -> Sample:
    return Sample(
        r["fid"], r["class_value"], S(r["status"]), r["work_unit"], r["collected_by"],
        r["collected_at"], r["updated_by"], r["updated_at"], r["reviewed_by"],
        r["reviewed_at"], r["review_comment"], r["source"], from_gpkg(r["geom"]),
    )  # fmt: skip


def _unit_index(con: sqlite3.Connection) -> dict[int, tuple]:
    """fid -> (geometry, bounds, row), in fid order (the border rule relies on it)."""
    out = {}
    for r in con.execute("SELECT * FROM work_units ORDER BY fid"):
        g = from_gpkg(r["geom"])
        out[r["fid"]] = (g, g.bounds(), r)
    return out


def _unit_for(units: dict[int, tuple], geom: Geometry) -> int | None:
    x, y = geom.centroid()
    for fid, (g, (x0, y0, x1, y1), _) in units.items():
        if x0 <= x <= x1 and y0 <= y <= y1 and g.contains_point(x, y):
            return fid
    return None


def _touches(geom: Geometry, extent) -> bool:
    x0, y0, x1, y1 = geom.bounds()
    return x1 >= extent[0] and x0 <= extent[2] and y1 >= extent[1] and y0 <= extent[3]


def _sample_problem(geom: Geometry, tool: InferenceTool, geom_type: str) -> str | None:
    if geom_type == "POINT" and not geom.is_point:
        return "this project's samples are points"
    if geom_type == "POLYGON" and geom.is_point:
        return "this project's samples are polygons, not points"
    problems = validate(geom)
    if problems:
        return "; ".join(problems)
    if tool is InferenceTool.DETECT_OBJECTS and not geom.is_rectangle():
        return "Detect Objects samples are axis-aligned rectangles (use the bounding box)"
    return None


def _class_lookup(con: sqlite3.Connection) -> dict:
    rows = con.execute("SELECT value, name FROM dls_classes").fetchall()
    return {"values": {r[0]: r[1] for r in rows}, "names": {r[1].lower(): r[0] for r in rows}}


def _resolve_class(classes: dict, cls: int | str) -> int:
    """A class value, or a class name (case-insensitive), to its value."""
    key = cls
    if isinstance(cls, str):
        key = int(cls) if cls.strip().lstrip("-").isdigit() else classes["names"].get(cls.lower())
    elif isinstance(cls, float) and cls.is_integer():
        key = int(cls)
    if key not in classes["values"]:
        known = ", ".join(f"{v}:{n}" for v, n in sorted(classes["values"].items()))
        raise ValidationError(
            f"Class '{cls}' is not in the project's schema ({known}). Fix the class field, or "
            "ask an analyst to add the class."
        )
    return key


def _count(con: sqlite3.Connection, unit: int, status: SampleStatus) -> int:
    return con.execute(
        "SELECT COUNT(*) FROM training_samples WHERE work_unit = ? AND status = ?",
        (unit, status.value),
    ).fetchone()[0]


def _ids(ids: Iterable[int]) -> list[int]:
    out = list(dict.fromkeys(int(i) for i in ids))
    if not out:
        raise ValidationError("No ids given.")
    return out


def _fmt_extent(e) -> str:
    return f"({e[0]:.6g}, {e[1]:.6g}) - ({e[2]:.6g}, {e[3]:.6g})"
