"""The project store: one GeoPackage per project (creation, opening, members, lifecycle)."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

from . import schema
from .errors import NotFoundError, PermissionDeniedError, ProjectCompleteError, ValidationError
from .geometry import rectangle, to_gpkg
from .model import (
    HistoryEntry,
    Imagery,
    InferenceTool,
    ProjectClass,
    ProjectInfo,
    current_user,
    now,
    validate_classes,
)
from .roles import Action, Role, require
from .schema import log as _log
from .workflow import WorkflowMixin

JOB_ACTIONS = {"export": Action.EXPORT, "train": Action.TRAIN, "infer": Action.INFER,
               "evaluate": Action.INFER}  # fmt: skip
_JOB_MOVES = {
    "submitted": {"executing", "failed", "cancelled"},
    "executing": {"succeeded", "failed", "cancelled"},
}


class Project(WorkflowMixin):
    """A Deep Learning Studio project file, acted on by one user.

    Every method runs in its own short transaction, so several processes can share the file.
    """

    def __init__(self, path: str | os.PathLike, user: str | None = None) -> None:
        self.path = Path(path)
        self.user = (user or current_user()).strip()
        self.warnings: list[str] = []
        self._info: ProjectInfo | None = None

    # --- creation and opening --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        name: str,
        inference_tool: str | InferenceTool,
        classes: list[ProjectClass],
        imagery: Imagery,
        user: str | None = None,
        sample_geometry: str | None = None,
        overwrite: bool = False,
    ) -> Project:
        """Write a new project file (aside, then moved into place); the creator is its owner."""
        tool = InferenceTool.parse(inference_tool)
        classes = validate_classes(list(classes))
        imagery.validate()
        if not (name or "").strip():
            raise ValidationError("The project needs a name.")
        geom_type = (sample_geometry or tool.sample_geometries()[0]).upper()
        if geom_type not in tool.sample_geometries():
            raise ValidationError(
                f"{tool.value} samples are {' or '.join(tool.sample_geometries())}, "
                f"not {geom_type}."
            )
        path = Path(path)
        if path.suffix.lower() != ".gpkg":
            raise ValidationError(f"Project file '{path}' must end in .gpkg.")
        if path.exists() and not overwrite:
            raise ValidationError(
                f"'{path}' already exists. Choose another file name, or delete it first."
            )
        user = (user or current_user()).strip()
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            cls._write_new(tmp, name.strip(), tool, geom_type, classes, imagery, user)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return cls.open(path, user)

    @staticmethod
    def _write_new(tmp, name, tool, geom_type, classes, imagery, user) -> None:
        srs_id, org, code = _srs_for(imagery)
        con = schema.connect(tmp)
        try:
            con.execute(f"PRAGMA application_id = {schema.GPKG_APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {schema.GPKG_USER_VERSION}")
            con.executescript(schema.GPKG_DDL)
            con.executescript(schema.PROJECT_DDL.replace("{sample_geometry}", geom_type))
            con.execute("BEGIN")
            if srs_id != 4326:
                con.execute(
                    "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)",
                    (imagery.crs_authid or "Project CRS", srs_id, org, code,
                     imagery.crs_wkt, "CRS of the project imagery"),
                )  # fmt: skip
            xmin, ymin, xmax, ymax = imagery.extent
            for table, kind, desc in schema.CONTENTS:
                ext = (xmin, ymin, xmax, ymax, srs_id) if kind == "features" else (None,) * 5
                con.execute(
                    "INSERT INTO gpkg_contents (table_name, data_type, identifier, description,"
                    " min_x, min_y, max_x, max_y, srs_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (table, kind, table, desc, *ext),
                )
            con.executemany(
                "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
                [("work_units", "POLYGON", srs_id), ("training_samples", geom_type, srs_id)],
            )
            t = now()
            con.execute(
                "INSERT INTO dls_project VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "'active', ?, ?)",
                (name, user, tool.value, geom_type, imagery.source, imagery.crs_authid, srs_id,
                 xmin, ymin, xmax, ymax, imagery.width, imagery.height, t,
                 schema.SCHEMA_VERSION),
            )  # fmt: skip
            con.execute("INSERT INTO dls_members VALUES (?, 'owner', ?, ?)", (user, t, user))
            con.executemany(
                "INSERT INTO dls_classes VALUES (?, ?, ?)",
                [(c.value, c.name, c.color) for c in classes],
            )
            # by default the whole imagery extent is one work unit (as in the reference)
            con.execute(
                "INSERT INTO work_units (geom, name, status, updated_at, updated_by) "
                "VALUES (?, 'Whole extent', 'queued', ?, ?)",
                (to_gpkg(rectangle(xmin, ymin, xmax, ymax), srs_id), t, user),
            )
            _log(con, user, "project", "1", "create_project", None, "active", name)
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode = WAL")
        finally:
            con.close()

    @classmethod
    def open(cls, path: str | os.PathLike, user: str | None = None) -> Project:
        """Open an existing project; raises ProjectFileError for anything else."""
        schema.check_project_file(path)
        project = cls(path, user)
        warning = schema.set_journal_mode(path)
        if warning:
            project.warnings.append(warning)
        project.info()
        return project

    # --- reading ---------------------------------------------------------------------------

    def info(self) -> ProjectInfo:
        with schema.reading(self.path) as con:
            return self._load_info(con)

    def _load_info(self, con: sqlite3.Connection) -> ProjectInfo:
        r = con.execute("SELECT * FROM dls_project WHERE id = 1").fetchone()
        wkt = con.execute(
            "SELECT definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (r["srs_id"],)
        ).fetchone()
        imagery = Imagery(
            r["imagery_source"], (r["min_x"], r["min_y"], r["max_x"], r["max_y"]),
            r["raster_width"], r["raster_height"], wkt[0] if wkt else "", r["crs_authid"],
        )  # fmt: skip
        self._info = ProjectInfo(
            r["name"], r["owner"], InferenceTool(r["inference_tool"]), r["sample_geometry"],
            imagery, r["srs_id"], r["status"], r["created_at"], r["schema_version"],
        )  # fmt: skip
        return self._info

    @property
    def name(self) -> str:
        return (self._info or self.info()).name

    def members(self) -> dict[str, Role]:
        with schema.reading(self.path) as con:
            rows = con.execute("SELECT user, role FROM dls_members ORDER BY user").fetchall()
        return {r["user"]: Role(r["role"]) for r in rows}

    def role_of(self, user: str | None = None) -> Role | None:
        with schema.reading(self.path) as con:
            return _role(con, user or self.user)

    def may(self, action: Action, user: str | None = None) -> bool:
        """Whether the user may take the action now (for enabling UI controls)."""
        with schema.reading(self.path) as con:
            try:
                self._require(con, action, user)
            except PermissionDeniedError:
                return False
        return True

    def classes(self) -> list[ProjectClass]:
        with schema.reading(self.path) as con:
            rows = con.execute("SELECT value, name, color FROM dls_classes ORDER BY value")
            return [ProjectClass(*r) for r in rows]

    def history(self, entity: str | None = None, entity_id: object = None) -> list[HistoryEntry]:
        sql, args = "SELECT * FROM dls_history", []
        if entity is not None:
            sql += " WHERE entity = ?"
            args.append(entity)
            if entity_id is not None:
                sql += " AND entity_id = ?"
                args.append(str(entity_id))
        with schema.reading(self.path) as con:
            return [HistoryEntry(*r) for r in con.execute(sql + " ORDER BY id", args)]

    # --- members and classes ---------------------------------------------------------------

    def add_member(self, member: str, role: str | Role) -> str:
        """Add a member or change their role; returns 'added', 'changed' or 'unchanged'."""
        role = Role.parse(role)
        member = (member or "").strip()
        if not member:
            raise ValidationError("Give the member's user name.")
        if role is Role.OWNER:
            raise ValidationError(
                "A project has one owner, the user who created it; add members as analyst "
                "or collector."
            )
        with schema.transaction(self.path) as con:
            self._require(con, Action.CONFIGURE)
            old = _role(con, member)
            if old is Role.OWNER:
                raise ValidationError(f"'{member}' owns the project; the owner's role is fixed.")
            if old is role:
                return "unchanged"
            t = now()
            if old is None:
                con.execute(
                    "INSERT INTO dls_members VALUES (?, ?, ?, ?)",
                    (member, role.value, t, self.user),
                )
            else:
                con.execute("UPDATE dls_members SET role = ? WHERE user = ?", (role.value, member))
            _log(con, self.user, "member", member, "set_role", old and old.value, role.value)
            return "added" if old is None else "changed"

    def remove_member(self, member: str) -> None:
        with schema.transaction(self.path) as con:
            self._require(con, Action.CONFIGURE)
            old = _role(con, member)
            if old is None:
                raise NotFoundError(f"'{member}' is not a member of project '{self.name}'.")
            if old is Role.OWNER:
                raise ValidationError(f"'{member}' owns the project and cannot be removed.")
            con.execute("DELETE FROM dls_members WHERE user = ?", (member,))
            _log(con, self.user, "member", member, "remove", old.value, None)

    def add_class(self, value: int, name: str, color: str) -> None:
        (cls,) = validate_classes([ProjectClass(value, name, color)])
        with schema.transaction(self.path) as con:
            self._require(con, Action.CONFIGURE)
            try:
                con.execute(
                    "INSERT INTO dls_classes VALUES (?, ?, ?)", (cls.value, cls.name, cls.color)
                )
            except sqlite3.IntegrityError:
                raise ValidationError(
                    f"The schema already has a class with value {cls.value} or name "
                    f"'{cls.name}'; pick another."
                ) from None
            _log(con, self.user, "class", str(cls.value), "add_class", None, None, cls.name)

    # --- project lifecycle -----------------------------------------------------------------

    def set_complete(self, complete: bool = True, comment: str = "") -> None:
        """The owner marks the project complete (read-only from then on) or reopens it."""
        new = "complete" if complete else "active"
        with schema.transaction(self.path) as con:
            self._require(con, Action.COMPLETE_PROJECT)
            old = con.execute("SELECT status FROM dls_project WHERE id = 1").fetchone()[0]
            if old == new:
                return
            cur = con.execute(
                "UPDATE dls_project SET status = ? WHERE id = 1 AND status = ?", (new, old)
            )
            assert cur.rowcount == 1  # the IMMEDIATE transaction holds the write lock
            _log(con, self.user, "project", "1", "set_status", old, new, comment)

    def delete(self) -> None:
        """Delete the project file (owner only)."""
        with schema.reading(self.path) as con:
            self._require(con, Action.DELETE_PROJECT)
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            p.unlink(missing_ok=True)

    # --- jobs ------------------------------------------------------------------------------

    def submit_job(self, kind: str, parameters: dict) -> str:
        if kind not in JOB_ACTIONS:
            raise ValidationError(f"Unknown job kind '{kind}'; use one of {sorted(JOB_ACTIONS)}.")
        job_id = uuid.uuid4().hex
        with schema.transaction(self.path) as con:
            self._require(con, JOB_ACTIONS[kind])
            con.execute(
                "INSERT INTO dls_jobs (id, kind, parameters, status, submitted_by, submitted_at)"
                " VALUES (?, ?, ?, 'submitted', ?, ?)",
                (job_id, kind, json.dumps(parameters, sort_keys=True), self.user, now()),
            )
            _log(con, self.user, "job", job_id, kind, None, "submitted")
        return job_id

    def update_job(
        self, job_id: str, status: str, result: dict | None = None, error: str | None = None
    ) -> None:
        """Move a job along submitted -> executing -> succeeded / failed / cancelled."""
        with schema.transaction(self.path) as con:
            row = con.execute(
                "SELECT kind, status FROM dls_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"No job '{job_id}' in project '{self.name}'.")
            self._require(con, JOB_ACTIONS[row["kind"]])
            if status not in _JOB_MOVES.get(row["status"], set()):
                from .errors import IllegalTransitionError

                raise IllegalTransitionError(
                    f"Job {job_id} is {row['status']}; it cannot become {status}."
                )
            col = "started_at" if status == "executing" else "finished_at"
            cur = con.execute(
                f"UPDATE dls_jobs SET status = ?, {col} = ?, result = ?, error = ? "
                "WHERE id = ? AND status = ?",
                (status, now(), json.dumps(result) if result is not None else None, error,
                 job_id, row["status"]),
            )  # fmt: skip
            assert cur.rowcount == 1
            _log(con, self.user, "job", job_id, row["kind"], row["status"], status, error)

    def jobs(self) -> list[dict]:
        with schema.reading(self.path) as con:
            rows = con.execute("SELECT * FROM dls_jobs ORDER BY submitted_at").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["parameters"] = json.loads(d["parameters"])
            d["result"] = json.loads(d["result"]) if d["result"] else None
            out.append(d)
        return out

    # --- permission checks -----------------------------------------------------------------

    def _require(self, con: sqlite3.Connection, action: Action, user: str | None = None) -> Role:
        user = user or self.user
        info = self._load_info(con)
        role = _role(con, user)
        require(user, role, action, info.name)
        if info.status == "complete" and action not in (
            Action.VIEW, Action.COMPLETE_PROJECT, Action.DELETE_PROJECT,
        ):  # fmt: skip
            raise ProjectCompleteError(
                f"Project '{info.name}' is marked complete and takes no more changes. Its owner "
                f"({info.owner}) can reopen it."
            )
        return role


def _role(con: sqlite3.Connection, user: str) -> Role | None:
    row = con.execute("SELECT role FROM dls_members WHERE user = ?", (user,)).fetchone()
    return Role(row[0]) if row else None


def _srs_for(imagery: Imagery) -> tuple[int, str, int]:
    authid = (imagery.crs_authid or "").upper()
    if authid.startswith("EPSG:") and authid[5:].isdigit():
        code = int(authid[5:])
        return code, "EPSG", code
    return schema.CUSTOM_SRS_ID, "NONE", schema.CUSTOM_SRS_ID
