"""Training samples: collection (placed by centroid), edits, review."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

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
from .geometry import Geometry, to_gpkg
from .model import ReviewResult, Sample, now
from .roles import Action, Role
from .rows import (
    _COLLECTABLE,
    _class_lookup,
    _fmt_extent,
    _ids,
    _resolve_class,
    _sample,
    _sample_problem,
    _touches,
    _unit_for,
    _unit_index,
    _unit_row,
    select,
    transition,
)
from .schema import log
from .states import SampleStatus, WorkUnitStatus, workflow_target

W, S = WorkUnitStatus, SampleStatus


class SamplesMixin:
    """Mixed into Project with WorkUnitsMixin (for _check_lock and _open_review)."""

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
                unit = _placed(
                    info, units, geometry, fid,
                    f"The new shape of sample {fid} lies outside the imagery's work units.",
                )  # fmt: skip
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

    def restore_sample(self, sample: Sample) -> int:
        """Put a deleted sample back as it was (undoing a deletion): the same fid, class,
        status, collector and review, so its history goes on under the same id.

        `sample` is the record read before the deletion. The rules of a deletion apply (the
        collect role; collectors only their own samples; its work unit, found again from the
        centroid, takes collecting); the last history row of that fid must be its deletion,
        from the same status (so a restore cannot upgrade a status); the fid must be free.
        """
        fid = int(sample.fid)
        info = self.info()
        with schema.transaction(self.path) as con:
            role = self._require(con, Action.COLLECT)
            if role is Role.COLLECTOR and sample.collected_by != self.user:
                raise PermissionDeniedError(
                    f"Sample {fid} was collected by '{sample.collected_by}'; collectors restore "
                    "only their own samples. Ask an analyst or the owner."
                )
            if con.execute("SELECT 1 FROM training_samples WHERE fid = ?", (fid,)).fetchone():
                raise ConcurrentChangeError(
                    f"Sample {fid} exists; only a deleted sample can be restored."
                )
            last = con.execute(
                "SELECT action, from_status FROM dls_history WHERE entity = 'sample' AND "
                "entity_id = ? ORDER BY id DESC LIMIT 1",
                (str(fid),),
            ).fetchone()
            if last is None or last["action"] != "delete":
                raise NotFoundError(f"Sample {fid} was not deleted; there is nothing to restore.")
            status = S(sample.status)
            if last["from_status"] != status.value:
                raise ValidationError(
                    f"Sample {fid} was {S(last['from_status']).label} when it was deleted, "
                    f"not {status.label}; it is restored only as it was."
                )
            units = _unit_index(con)
            unit = _placed(
                info, units, sample.geometry, fid,
                f"Sample {fid} lies outside the imagery's work units; it cannot be restored.",
            )  # fmt: skip
            value = _resolve_class(_class_lookup(con), sample.class_value)
            self._collect_into(con, units[unit][2], role)
            con.execute(
                "INSERT INTO training_samples (fid, geom, class_value, status, work_unit, "
                "collected_by, collected_at, updated_by, updated_at, reviewed_by, reviewed_at, "
                "review_comment, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fid, to_gpkg(sample.geometry, info.srs_id), value, status.value, unit,
                 sample.collected_by, sample.collected_at, self.user, now(), sample.reviewed_by,
                 sample.reviewed_at, sample.review_comment, sample.source),
            )  # fmt: skip
            log(con, self.user, "sample", fid, "restore", None, status.value)
            return fid

    def samples(
        self,
        status: str | SampleStatus | None = None,
        work_unit: int | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[Sample]:
        sql, args = select(
            "training_samples", ids,
            status=None if status is None else S.parse(status).value,
            work_unit=None if work_unit is None else int(work_unit),
        )  # fmt: skip
        with schema.reading(self.path) as con:
            return [_sample(r) for r in con.execute(sql, args)]

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

    # --- internals ---

    def _collect_into(self, con: sqlite3.Connection, unit: sqlite3.Row, role: Role) -> None:
        self._check_lock(unit, role)
        cur = W(unit["status"])
        if cur not in _COLLECTABLE:
            workflow_target("collect", cur, unit["fid"])  # raises, with the hint
        # re-read: several samples of one call may land in the same unit
        cur = W(_unit_row(con, unit["fid"])["status"])
        if cur is W.QUEUED:
            transition(con, self.user, unit["fid"], cur, W.IN_PROGRESS, "collect", "")

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


def _placed(info, units: dict, geometry: Geometry, fid: int, outside: str) -> int:
    """The work unit one sample's shape goes to; GeometryError or OutsideImageryError(outside)."""
    problem = _sample_problem(geometry, info.inference_tool, info.sample_geometry)
    if problem:
        raise GeometryError(f"Sample {fid}: {problem}.")
    unit = _unit_for(units, geometry) if _touches(geometry, info.imagery.extent) else None
    if unit is None:
        raise OutsideImageryError(outside)
    return unit
