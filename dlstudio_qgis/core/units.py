"""Work units: grids and polygons, statuses by hand and by workflow step, locks."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from . import schema
from .errors import (
    ConcurrentChangeError,
    GeometryError,
    IllegalTransitionError,
    OutsideImageryError,
    PermissionDeniedError,
    ValidationError,
)
from .geometry import Geometry, clip_to_rect, rectangle, to_gpkg, validate
from .model import WorkUnit, now
from .roles import Action, Role
from .rows import _count, _fmt_extent, _ids, _require_units, _unit, _unit_row, select, transition
from .schema import log
from .states import SampleStatus, WorkUnitStatus, workflow_target

W, S = WorkUnitStatus, SampleStatus
LOCK_HOURS = 8
MAX_WORK_UNITS = 100_000
#: the workflow steps a caller can take on units, and the status each leads to
WORKFLOW_EVENTS = {
    "mark_complete": W.PENDING_REVIEW,
    "open_review": W.IN_REVIEW,
    "finish_review": W.REVIEWED,
    "send_back": W.QUEUED,
}


class WorkUnitsMixin:
    """Mixed into Project; relies on its path, user, name, info, _require and _load_info."""

    # --- work units ------------------------------------------------------------------------

    def create_grid_work_units(
        self, cell_width: float, cell_height: float | None = None, units: str = "map"
    ) -> list[int]:
        """Replace the work units by a grid over the imagery, from its top-left corner.

        `units` is "map" (cell size in the project CRS's units) or "pixels".
        """
        info = self.info()
        cw, ch = float(cell_width), float(cell_height or cell_width)
        if units == "pixels":
            px, py = info.imagery.pixel_size
            cw, ch = cw * px, ch * py
        elif units != "map":
            raise ValidationError(f"Cell size units are 'map' or 'pixels', not '{units}'.")
        if not (cw > 0 and ch > 0 and math.isfinite(cw) and math.isfinite(ch)):
            raise ValidationError("The cell size must be a positive number.")
        xmin, ymin, xmax, ymax = info.imagery.extent
        cols = max(1, math.ceil((xmax - xmin) / cw - 1e-9))
        rows = max(1, math.ceil((ymax - ymin) / ch - 1e-9))
        if cols * rows > MAX_WORK_UNITS:
            raise ValidationError(
                f"A cell size of {cell_width} {units} makes {cols * rows} work units (limit "
                f"{MAX_WORK_UNITS}); use a larger cell size."
            )
        cells, names = [], []
        for r in range(rows):
            top = ymax - r * ch
            for c in range(cols):
                left = xmin + c * cw
                cells.append(rectangle(left, max(ymin, top - ch), min(xmax, left + cw), top))
                names.append(f"R{r + 1}C{c + 1}")
        return self.create_work_units(cells, names)

    def create_work_units(
        self, polygons: Iterable[Geometry], names: Sequence[str | None] | None = None
    ) -> list[int]:
        """Replace the work units by polygons clipped to the imagery extent.

        Refused once samples exist, since they are tied to the units they were collected in.
        """
        polygons = list(polygons)
        names = list(names) if names is not None else [None] * len(polygons)
        info = self.info()
        extent = info.imagery.extent
        units: list[tuple[Geometry, str | None]] = []
        for i, (geom, name) in enumerate(zip(polygons, names, strict=True)):
            if geom.is_point:
                raise GeometryError(f"Work unit {i + 1} is a point; work units are polygons.")
            problems = validate(geom)
            if problems:
                raise GeometryError(
                    f"Work unit polygon {i + 1} is invalid ({'; '.join(problems)}). Repair it "
                    "(Processing: Fix geometries) and retry."
                )
            clipped = clip_to_rect(geom, *extent)
            if clipped is not None and clipped.area() > 0:
                units.append((clipped, name))
        if not units:
            raise OutsideImageryError(
                f"None of the {len(polygons)} polygons overlaps the project imagery "
                f"{_fmt_extent(extent)}. Check the layer's CRS and extent."
            )
        t = now()
        with schema.transaction(self.path) as con:
            self._require(con, Action.CONFIGURE)
            n = con.execute("SELECT COUNT(*) FROM training_samples").fetchone()[0]
            if n:
                raise ValidationError(
                    f"Project '{info.name}' already has {n} samples; work units cannot be "
                    "redefined once collection has started. Create a new project instead."
                )
            old = con.execute("SELECT COUNT(*) FROM work_units").fetchone()[0]
            con.execute("DELETE FROM work_units")
            if old:
                log(con, self.user, "work_unit", None, "delete_all", None, None, f"{old} units")
            ids = []
            for geom, name in units:
                cur = con.execute(
                    "INSERT INTO work_units (geom, name, status, updated_at, updated_by) "
                    "VALUES (?, ?, 'queued', ?, ?)",
                    (to_gpkg(geom, info.srs_id), name, t, self.user),
                )
                ids.append(cur.lastrowid)
                log(con, self.user, "work_unit", cur.lastrowid, "create", None, W.QUEUED.value)
            return ids

    def work_units(
        self, status: str | WorkUnitStatus | None = None, ids: Iterable[int] | None = None
    ) -> list[WorkUnit]:
        sql, args = select(
            "work_units", ids, status=None if status is None else W.parse(status).value
        )
        with schema.reading(self.path) as con:
            return [_unit(r) for r in con.execute(sql, args)]

    def work_unit(self, fid: int) -> WorkUnit:
        with schema.reading(self.path) as con:
            return _unit(_unit_row(con, fid))

    def set_work_unit_status(
        self,
        ids: Iterable[int],
        status: str | WorkUnitStatus,
        comment: str = "",
        expected: str | WorkUnitStatus | None = None,
    ) -> list[int]:
        """Set statuses by hand (analysts and owners), all or nothing; returns the changed ids.

        With `expected`, each unit must still be in that status (a compare-and-set against
        what the caller saw), else ConcurrentChangeError and nothing changes.
        """
        status = W.parse(status)
        exp = W.parse(expected) if expected is not None else None
        ids = _ids(ids)
        changed = []
        with schema.transaction(self.path) as con:
            self._require(con, Action.REVIEW)
            _require_units(con, ids)
            for fid in ids:
                cur = W(_unit_row(con, fid)["status"])
                if exp is not None and cur is not exp:
                    raise ConcurrentChangeError(
                        f"Work unit {fid} is now {cur.label}, not {exp.label}: someone changed "
                        "it meanwhile. Refresh and try again."
                    )
                if cur is status:
                    continue
                transition(con, self.user, fid, cur, status, "set_status", comment)
                changed.append(fid)
        return changed

    def assign_work_units(self, ids: Iterable[int], assignee: str | None) -> None:
        """Assign units to a member (analysts and owners); None clears the assignment."""
        ids = _ids(ids)
        with schema.transaction(self.path) as con:
            self._require(con, Action.CONFIGURE)
            if (
                assignee is not None
                and con.execute("SELECT 1 FROM dls_members WHERE user = ?", (assignee,)).fetchone()
                is None
            ):
                raise ValidationError(
                    f"'{assignee}' is not a member of project '{self.name}'; add them first."
                )
            for fid in ids:
                row = _unit_row(con, fid)
                con.execute(
                    "UPDATE work_units SET assignee = ?, lock_expires = NULL, updated_at = ?, "
                    "updated_by = ? WHERE fid = ?",
                    (assignee, now(), self.user, fid),
                )
                log(con, self.user, "work_unit", fid, "assign", row["status"], row["status"],
                    assignee)  # fmt: skip

    def start_next_unit(self) -> WorkUnit | None:
        """Give the acting user the next Queued unit nobody else holds, locked for a while."""
        t = now()
        until = (datetime.now(UTC) + timedelta(hours=LOCK_HOURS)).isoformat(timespec="milliseconds")
        with schema.transaction(self.path) as con:
            self._require(con, Action.COLLECT)
            row = con.execute(
                "SELECT * FROM work_units WHERE status = 'queued' AND (assignee IS NULL "
                "OR assignee = ? OR (lock_expires IS NOT NULL AND lock_expires < ?)) "
                "ORDER BY assignee = ? DESC, fid LIMIT 1",
                (self.user, t, self.user),
            ).fetchone()
            if row is None:
                return None
            con.execute(
                "UPDATE work_units SET assignee = ?, lock_expires = ?, updated_at = ?, "
                "updated_by = ? WHERE fid = ?",
                (self.user, until, t, self.user, row["fid"]),
            )
            log(con, self.user, "work_unit", row["fid"], "assign", "queued", "queued", self.user)
            return _unit(_unit_row(con, row["fid"]))

    def mark_unit_complete(self, fid: int, comment: str = "") -> bool:
        """The collector is done: Queued / In progress -> Pending review.

        Like the other workflow steps, returns False when the unit already was there.
        """
        return bool(self.workflow_units([fid], "mark_complete", comment))

    def open_review(self, fid: int, comment: str = "") -> bool:
        """A reviewer opens a unit: Pending review -> In review."""
        return bool(self.workflow_units([fid], "open_review", comment))

    def finish_review(
        self, fid: int, status: str | WorkUnitStatus = W.REVIEWED, comment: str = ""
    ) -> bool:
        """In review -> Reviewed, or -> Queued to send rejected samples back to the collector."""
        status = W.parse(status)
        if status not in (W.REVIEWED, W.QUEUED):
            raise ValidationError("A review finishes as REVIEWED or QUEUED (sent back).")
        event = "finish_review" if status is W.REVIEWED else "send_back"
        return bool(self.workflow_units([fid], event, comment))

    def workflow_units(self, ids: Iterable[int], event: str, comment: str = "") -> list[int]:
        """Take one workflow step on several units in one transaction, all or nothing.

        `event` is mark_complete, open_review, finish_review or send_back. Units already in
        the step's target status are left alone; returns the ids that changed.
        """
        if event not in WORKFLOW_EVENTS:
            raise ValidationError(
                f"Unknown workflow step '{event}'; use one of {', '.join(WORKFLOW_EVENTS)}."
            )
        ids = _ids(ids)
        target = WORKFLOW_EVENTS[event]
        changed = []
        with schema.transaction(self.path) as con:
            action = Action.COLLECT if event == "mark_complete" else Action.REVIEW
            role = self._require(con, action)
            _require_units(con, ids)
            for fid in ids:
                row = _unit_row(con, fid)
                cur = W(row["status"])
                if cur is target:
                    continue
                if event == "mark_complete":
                    self._check_lock(row, role)
                to = workflow_target(event, cur, fid)
                if event in ("finish_review", "send_back"):
                    pending = _count(con, fid, S.PENDING)
                    if pending:
                        raise IllegalTransitionError(
                            f"Work unit {fid} still has {pending} samples Pending approval; "
                            "approve or reject them before finishing its review."
                        )
                reviewer = self.user if event == "open_review" else None
                transition(con, self.user, fid, cur, to, event, comment, reviewer=reviewer)
                changed.append(fid)
        return changed

    def finish_reviews(self, ids: Iterable[int], send_back_rejected: bool = True) -> dict:
        """Finish the review of those units In review with nothing left Pending approval.

        A unit goes back to Queued when `send_back_rejected` and samples were rejected in
        this review round (since the unit was last opened); else it becomes Reviewed.
        Samples rejected in an earlier round and left so were kept as rejected by the
        reviewer, so they no longer send the unit back. One transaction; returns
        {fid: (new status, rejections this round)} for the units finished.
        """
        ids = _ids(ids)
        done = {}
        with schema.transaction(self.path) as con:
            self._require(con, Action.REVIEW)
            _require_units(con, ids)
            for fid in ids:
                if W(_unit_row(con, fid)["status"]) is not W.IN_REVIEW or _count(
                    con, fid, S.PENDING
                ):
                    continue
                opened = con.execute(
                    "SELECT MAX(at) FROM dls_history WHERE entity = 'work_unit' AND "
                    "entity_id = ? AND to_status = 'in_review'",
                    (str(fid),),
                ).fetchone()[0]
                rejected = con.execute(
                    "SELECT COUNT(*) FROM training_samples WHERE work_unit = ? AND "
                    "status = 'rejected' AND reviewed_at >= ?",
                    (fid, opened or ""),
                ).fetchone()[0]
                to = W.QUEUED if send_back_rejected and rejected else W.REVIEWED
                event = "send_back" if to is W.QUEUED else "finish_review"
                note = f"{rejected} samples rejected" if rejected else ""
                transition(con, self.user, fid, W.IN_REVIEW, to, event, note)
                done[fid] = (to, rejected)
        return done

    # --- internals ---

    def _check_lock(self, unit: sqlite3.Row, role: Role) -> None:
        """Collectors may not work in a unit someone else holds."""
        if role is not Role.COLLECTOR or unit["assignee"] in (None, self.user):
            return
        if unit["lock_expires"] is not None and unit["lock_expires"] < now():
            return
        until = f" until {unit['lock_expires']}" if unit["lock_expires"] else ""
        raise PermissionDeniedError(
            f"Work unit {unit['fid']} is assigned to '{unit['assignee']}'{until}; collect in "
            "your own units (Start next), or ask an analyst to reassign it."
        )

    def _open_review(self, con: sqlite3.Connection, unit: sqlite3.Row) -> None:
        cur = W(unit["status"])
        target = workflow_target("open_review", cur, unit["fid"])
        transition(con, self.user, unit["fid"], cur, target, "open_review", "",
                    reviewer=self.user)  # fmt: skip
