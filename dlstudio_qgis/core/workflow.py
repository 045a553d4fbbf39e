"""Work units, samples and review: every status change is one compare-and-set + one history row."""

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
    NotFoundError,
    OutsideImageryError,
    PermissionDeniedError,
    ValidationError,
)
from .geometry import Geometry, clip_to_rect, from_gpkg, rectangle, to_gpkg, validate
from .model import InferenceTool, ReviewResult, Sample, WorkUnit, now
from .roles import Action, Role
from .schema import log
from .states import SampleStatus, WorkUnitStatus, workflow_target

W, S = WorkUnitStatus, SampleStatus
LOCK_HOURS = 8
MAX_WORK_UNITS = 100_000
_COLLECTABLE = (W.QUEUED, W.IN_PROGRESS)
#: the workflow steps a caller can take on units, and the status each leads to
WORKFLOW_EVENTS = {
    "mark_complete": W.PENDING_REVIEW,
    "open_review": W.IN_REVIEW,
    "finish_review": W.REVIEWED,
    "send_back": W.QUEUED,
}


class WorkflowMixin:
    """Mixed into Project; relies on its path, user, name, _require and _load_info."""

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
        sql, args = "SELECT * FROM work_units WHERE 1 = 1", []
        if status is not None:
            sql += " AND status = ?"
            args.append(W.parse(status).value)
        if ids is not None:
            ids = [int(i) for i in ids]
            sql += f" AND fid IN ({','.join('?' * len(ids))})"
            args += ids
        with schema.reading(self.path) as con:
            return [_unit(r) for r in con.execute(sql + " ORDER BY fid", args)]

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
                _transition(con, self.user, fid, cur, status, "set_status", comment)
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
                _transition(con, self.user, fid, cur, to, event, comment, reviewer=reviewer)
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
                _transition(con, self.user, fid, W.IN_REVIEW, to, event, note)
                done[fid] = (to, rejected)
        return done

    # --- samples ---------------------------------------------------------------------------

    def add_sample(self, geometry: Geometry, class_value: int | str) -> int:
        return self.add_samples([(geometry, class_value)])[0]

    def add_samples(
        self, items: Iterable[tuple[Geometry, int | str]], source: str | None = None
    ) -> list[int]:
        """Collect samples, all or nothing; each goes to the work unit holding its centroid.

        On a border shared by several units the unit with the lowest id wins, so the rule is
        deterministic. The first sample in a Queued unit makes it In progress.
        """
        items = list(items)
        if not items:
            raise ValidationError("No samples to add.")
        info = self.info()
        t = now()
        with schema.transaction(self.path) as con:
            role = self._require(con, Action.COLLECT)
            classes = _class_lookup(con)
            units = _unit_index(con)
            placed, bad, outside = [], [], []
            for i, (geom, cls) in enumerate(items):
                problem = _sample_problem(geom, info.inference_tool, info.sample_geometry)
                if problem:
                    bad.append(f"sample {i + 1}: {problem}")
                    continue
                value = _resolve_class(classes, cls)
                fid = _unit_for(units, geom) if _touches(geom, info.imagery.extent) else None
                if fid is None:
                    outside.append(i + 1)
                    continue
                placed.append((geom, value, fid))
            if bad:
                raise GeometryError(
                    f"{len(bad)} of {len(items)} samples are invalid and nothing was added: "
                    + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
                    + ". Repair them (Processing: Fix geometries) and retry."
                )  # fmt: skip
            if outside:
                raise OutsideImageryError(
                    f"{len(outside)} of {len(items)} samples lie outside the project imagery "
                    f"{_fmt_extent(info.imagery.extent)} or its work units (samples "
                    f"{', '.join(map(str, outside[:10]))}{' ...' if len(outside) > 10 else ''})"
                    "; nothing was added. Check the layer's CRS, or clip it to the imagery."
                )
            for fid in sorted({p[2] for p in placed}):
                self._collect_into(con, units[fid][2], role)
            out = []
            for geom, value, fid in placed:
                cur = con.execute(
                    "INSERT INTO training_samples (geom, class_value, status, work_unit, "
                    "collected_by, collected_at, updated_by, updated_at, source) "
                    "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                    (to_gpkg(geom, info.srs_id), value, fid, self.user, t, self.user, t, source),
                )
                out.append(cur.lastrowid)
                log(con, self.user, "sample", cur.lastrowid, "collect", None, S.PENDING.value)
            return out

    def edit_sample(
        self, fid: int, geometry: Geometry | None = None, class_value: int | str | None = None
    ) -> None:
        """Change a sample's shape or class; a reviewed sample goes back to Pending approval."""
        info = self.info()
        with schema.transaction(self.path) as con:
            role = self._require(con, Action.COLLECT)
            row = self._own_sample(con, fid, role)
            sets, args = ["updated_by = ?", "updated_at = ?"], [self.user, now()]
            units = _unit_index(con)
            unit = row["work_unit"]
            if geometry is not None:
                problem = _sample_problem(geometry, info.inference_tool, info.sample_geometry)
                if problem:
                    raise GeometryError(f"Sample {fid}: {problem}.")
                unit = (
                    _unit_for(units, geometry) if _touches(geometry, info.imagery.extent) else None
                )
                if unit is None:
                    raise OutsideImageryError(
                        f"The new shape of sample {fid} lies outside the imagery's work units."
                    )
                sets += ["geom = ?", "work_unit = ?"]
                args += [to_gpkg(geometry, info.srs_id), unit]
            if class_value is not None:
                sets.append("class_value = ?")
                args.append(_resolve_class(_class_lookup(con), class_value))
            for u in sorted({row["work_unit"], unit}):
                self._collect_into(con, units[u][2], role)
            old = S(row["status"])
            if old is not S.PENDING:
                sets += ["status = 'pending'", "reviewed_by = NULL", "reviewed_at = NULL"]
            cur = con.execute(
                f"UPDATE training_samples SET {', '.join(sets)} WHERE fid = ? AND status = ?",
                (*args, fid, old.value),
            )
            if cur.rowcount != 1:
                raise ConcurrentChangeError(f"Sample {fid} changed meanwhile; refresh and retry.")
            log(con, self.user, "sample", fid, "edit", old.value, S.PENDING.value)

    def delete_sample(self, fid: int) -> None:
        with schema.transaction(self.path) as con:
            role = self._require(con, Action.COLLECT)
            row = self._own_sample(con, fid, role)
            self._collect_into(con, _unit_row(con, row["work_unit"]), role)
            con.execute("DELETE FROM training_samples WHERE fid = ?", (fid,))
            log(con, self.user, "sample", fid, "delete", row["status"], None)

    def samples(
        self,
        status: str | SampleStatus | None = None,
        work_unit: int | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[Sample]:
        sql, args = "SELECT * FROM training_samples WHERE 1 = 1", []
        if status is not None:
            sql += " AND status = ?"
            args.append(S.parse(status).value)
        if work_unit is not None:
            sql += " AND work_unit = ?"
            args.append(int(work_unit))
        if ids is not None:
            ids = [int(i) for i in ids]
            sql += f" AND fid IN ({','.join('?' * len(ids))})"
            args += ids
        with schema.reading(self.path) as con:
            return [_sample(r) for r in con.execute(sql + " ORDER BY fid", args)]

    def review_samples(
        self, ids: Iterable[int], status: str | SampleStatus, comment: str = ""
    ) -> ReviewResult:
        """Approve or reject samples, all or nothing.

        A unit Pending review is opened (In review) by the first of its samples reviewed.
        """
        status = S.parse(status)
        if status is S.PENDING:
            raise ValidationError("Review sets APPROVED or REJECTED; editing resets to pending.")
        ids = _ids(ids)
        changed, unchanged, opened = [], [], []
        with schema.transaction(self.path) as con:
            self._require(con, Action.REVIEW)
            for fid in ids:
                row = con.execute("SELECT * FROM training_samples WHERE fid = ?", (fid,)).fetchone()
                if row is None:
                    raise NotFoundError(f"No sample {fid} in project '{self.name}'.")
                unit = _unit_row(con, row["work_unit"])
                if W(unit["status"]) is W.PENDING_REVIEW:
                    self._open_review(con, unit)
                    opened.append(unit["fid"])
                elif W(unit["status"]) is not W.IN_REVIEW:
                    raise IllegalTransitionError(
                        f"Sample {fid} is in work unit {unit['fid']}, which is "
                        f"{W(unit['status']).label}; samples are reviewed in units Pending "
                        "review or In review. Have the collector mark it complete, or set its "
                        "status by hand."
                    )
                old = S(row["status"])
                if old is status:
                    unchanged.append(fid)
                    continue
                t = now()
                cur = con.execute(
                    "UPDATE training_samples SET status = ?, reviewed_by = ?, reviewed_at = ?, "
                    "review_comment = ? WHERE fid = ? AND status = ?",
                    (status.value, self.user, t, comment or None, fid, old.value),
                )
                if cur.rowcount != 1:
                    raise ConcurrentChangeError(f"Sample {fid} changed meanwhile; retry.")
                log(con, self.user, "sample", fid, "review", old.value, status.value, comment)
                changed.append(fid)
        return ReviewResult(changed, unchanged, opened)

    # --- progress --------------------------------------------------------------------------

    def progress(self) -> dict:
        """Figures derived from the current state (nothing is cached)."""
        with schema.reading(self.path) as con:
            info = self._load_info(con)
            unit_counts = dict.fromkeys((s.value for s in W), 0)
            for r in con.execute("SELECT status, COUNT(*) FROM work_units GROUP BY status"):
                unit_counts[r[0]] = r[1]
            sample_counts = dict.fromkeys((s.value for s in S), 0)
            for r in con.execute("SELECT status, COUNT(*) FROM training_samples GROUP BY status"):
                sample_counts[r[0]] = r[1]
            per_unit = []
            for u in con.execute(
                "SELECT fid, name, status, assignee, reviewer FROM work_units ORDER BY fid"
            ).fetchall():
                counts = dict.fromkeys((s.value for s in S), 0)
                for r in con.execute(
                    "SELECT status, COUNT(*) FROM training_samples WHERE work_unit = ? "
                    "GROUP BY status", (u["fid"],),
                ):  # fmt: skip
                    counts[r[0]] = r[1]
                per_unit.append({**dict(u), "samples": counts})
            per_collector: dict[str, dict[str, int]] = {}
            for r in con.execute(
                "SELECT collected_by, status, COUNT(*) FROM training_samples "
                "GROUP BY collected_by, status"
            ):
                d = per_collector.setdefault(r[0], dict.fromkeys((s.value for s in S), 0))
                d[r[1]] = r[2]
            per_class = {
                r[0]: {"name": r[1], "count": r[2]}
                for r in con.execute(
                    "SELECT c.value, c.name, COUNT(s.fid) FROM dls_classes c LEFT JOIN "
                    "training_samples s ON s.class_value = c.value "
                    "GROUP BY c.value ORDER BY c.value"
                )
            }
            exportable = con.execute(
                "SELECT COUNT(*) FROM training_samples s JOIN work_units u ON s.work_unit = u.fid "
                "WHERE s.status = 'approved' AND u.status = 'reviewed'"
            ).fetchone()[0]
        total_units = sum(unit_counts.values())
        for d in per_collector.values():
            d["total"] = sum(d.values())
        return {
            "project": info.name,
            "inference_tool": info.inference_tool.value,
            "status": info.status,
            "work_units": {"total": total_units, "by_status": unit_counts},
            "samples": {"total": sum(sample_counts.values()), "by_status": sample_counts},
            "percent_reviewed": round(100.0 * unit_counts["reviewed"] / total_units, 1)
            if total_units
            else 0.0,
            "approved": sample_counts["approved"],
            "rejected": sample_counts["rejected"],
            "exportable_samples": exportable,
            "per_unit": per_unit,
            "per_collector": per_collector,
            "per_class": per_class,
        }

    # --- internals -------------------------------------------------------------------------

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

    def _collect_into(self, con: sqlite3.Connection, unit: sqlite3.Row, role: Role) -> None:
        self._check_lock(unit, role)
        cur = W(unit["status"])
        if cur not in _COLLECTABLE:
            workflow_target("collect", cur, unit["fid"])  # raises, with the hint
        # re-read: several samples of one call may land in the same unit
        cur = W(_unit_row(con, unit["fid"])["status"])
        if cur is W.QUEUED:
            _transition(con, self.user, unit["fid"], cur, W.IN_PROGRESS, "collect", "")

    def _open_review(self, con: sqlite3.Connection, unit: sqlite3.Row) -> None:
        cur = W(unit["status"])
        target = workflow_target("open_review", cur, unit["fid"])
        _transition(con, self.user, unit["fid"], cur, target, "open_review", "",
                    reviewer=self.user)  # fmt: skip

    def _own_sample(self, con: sqlite3.Connection, fid: int, role: Role) -> sqlite3.Row:
        row = con.execute("SELECT * FROM training_samples WHERE fid = ?", (fid,)).fetchone()
        if row is None:
            raise NotFoundError(f"No sample {fid} in project '{self.name}'.")
        if role is Role.COLLECTOR and row["collected_by"] != self.user:
            raise PermissionDeniedError(
                f"Sample {fid} was collected by '{row['collected_by']}'; collectors edit only "
                "their own samples. Ask an analyst or the owner."
            )
        return row


def _transition(con, user, fid, frm: W, to: W, action: str, comment: str, reviewer=None) -> None:
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
