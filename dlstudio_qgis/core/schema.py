"""The project GeoPackage: DDL, connections, file checks (WAL, busy timeout, network FS)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from .errors import ProjectFileError, SchemaVersionError

SCHEMA_VERSION = 1
GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10200  # GeoPackage 1.2
BUSY_TIMEOUT_S = 30.0
CUSTOM_SRS_ID = 100000

_NETWORK_FS = {
    "nfs", "nfs4", "cifs", "smbfs", "smb3", "ncpfs", "afs", "9p", "fuse.sshfs", "sshfs",
    "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "lustre", "gpfs", "davfs", "fuse.rclone",
    "fuse.s3fs", "beegfs", "virtiofs", "fuse.gcsfuse",
}  # fmt: skip

WORK_UNIT_STATUSES = ("queued", "in_progress", "pending_review", "in_review", "reviewed")
SAMPLE_STATUSES = ("pending", "approved", "rejected")
JOB_STATUSES = ("submitted", "executing", "succeeded", "failed", "cancelled")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


GPKG_DDL = """
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
INSERT INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system'),
  ('WGS 84 geodetic', 4326, 'EPSG', 4326, 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]', 'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid');
"""  # noqa: E501

PROJECT_DDL = f"""
CREATE TABLE dls_project (
  id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, owner TEXT NOT NULL,
  inference_tool TEXT NOT NULL, sample_geometry TEXT NOT NULL, imagery_source TEXT NOT NULL,
  crs_authid TEXT, srs_id INTEGER NOT NULL,
  min_x DOUBLE NOT NULL, min_y DOUBLE NOT NULL, max_x DOUBLE NOT NULL, max_y DOUBLE NOT NULL,
  raster_width INTEGER NOT NULL, raster_height INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'complete')),
  created_at TEXT NOT NULL, schema_version INTEGER NOT NULL);
CREATE TABLE dls_members (
  user TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('owner', 'analyst', 'collector')),
  added_at TEXT NOT NULL, added_by TEXT NOT NULL);
CREATE TABLE dls_classes (
  value INTEGER PRIMARY KEY CHECK (value > 0), name TEXT NOT NULL UNIQUE, color TEXT NOT NULL);
CREATE TABLE work_units (
  fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom POLYGON, name TEXT,
  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN {_in(WORK_UNIT_STATUSES)}),
  assignee TEXT, lock_expires TEXT, reviewer TEXT,
  updated_at TEXT NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE training_samples (
  fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom {{sample_geometry}},
  class_value INTEGER NOT NULL REFERENCES dls_classes(value),
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {_in(SAMPLE_STATUSES)}),
  work_unit INTEGER NOT NULL REFERENCES work_units(fid),
  collected_by TEXT NOT NULL, collected_at TEXT NOT NULL,
  updated_by TEXT NOT NULL, updated_at TEXT NOT NULL,
  reviewed_by TEXT, reviewed_at TEXT, review_comment TEXT, source TEXT);
CREATE INDEX training_samples_unit ON training_samples(work_unit, status);
CREATE TABLE dls_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT NOT NULL,
  entity TEXT NOT NULL, entity_id TEXT, action TEXT NOT NULL,
  from_status TEXT, to_status TEXT, comment TEXT);
CREATE INDEX dls_history_entity ON dls_history(entity, entity_id);
CREATE TRIGGER dls_history_no_update BEFORE UPDATE ON dls_history
  BEGIN SELECT RAISE(ABORT, 'dls_history is append-only'); END;
CREATE TRIGGER dls_history_no_delete BEFORE DELETE ON dls_history
  BEGIN SELECT RAISE(ABORT, 'dls_history is append-only'); END;
CREATE TABLE dls_jobs (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, parameters TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN {_in(JOB_STATUSES)}),
  submitted_by TEXT NOT NULL, submitted_at TEXT NOT NULL,
  started_at TEXT, finished_at TEXT, result TEXT, error TEXT);
"""

#: (table, data_type, description)
CONTENTS = (
    ("work_units", "features", "Work units: the areas sample collectors label"),
    ("training_samples", "features", "Training samples"),
    ("dls_project", "attributes", "Deep Learning Studio project"),
    ("dls_members", "attributes", "Project members and roles"),
    ("dls_classes", "attributes", "Class schema"),
    ("dls_history", "attributes", "Audit history of every change"),
    ("dls_jobs", "attributes", "Export, training and inference jobs"),
)


def network_filesystem(path: str | os.PathLike) -> str | None:
    """The network file system type `path` lies on, or None (Linux /proc/mounts, Windows)."""
    real = os.path.realpath(os.fspath(path))
    if os.name == "nt":  # pragma: no cover - Windows only
        import ctypes

        drive = os.path.splitdrive(real)[0] + "\\"
        if real.startswith("\\\\") or ctypes.windll.kernel32.GetDriveTypeW(drive) == 4:
            return "network drive"
        return None
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            mounts = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return None
    best, fstype = "", None
    for mnt, typ in mounts:
        mnt = mnt.replace("\\040", " ")
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, typ
    return fstype if fstype in _NETWORK_FS else None


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), with the busy timeout."""
    con = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    con.execute("PRAGMA foreign_keys = ON")
    return con


@contextmanager
def transaction(path: str | os.PathLike):
    """An IMMEDIATE (write-locking) transaction: committed on success, rolled back on error."""
    con = connect(path)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()


@contextmanager
def reading(path: str | os.PathLike):
    con = connect(path)
    try:
        con.execute("BEGIN")
        yield con
        con.execute("COMMIT")
    finally:
        con.close()


def check_project_file(path: str | os.PathLike) -> None:
    """Raise ProjectFileError unless `path` is a project this plugin can open; changes nothing.

    Reads through a read-only connection so a foreign file is never switched to WAL.
    """
    p = Path(path)
    if not p.exists():
        raise ProjectFileError(
            f"Project file '{p}' does not exist. Check the path, or create a project "
            "with dlstudio:createproject."
        )
    if not p.is_file():
        raise ProjectFileError(f"Project path '{p}' is a folder; give the project's .gpkg file.")
    with open(p, "rb") as fh:
        head = fh.read(100)
    app_id = int.from_bytes(head[68:72], "big") if len(head) >= 72 else 0
    if not head.startswith(b"SQLite format 3\x00") or app_id != GPKG_APPLICATION_ID:
        raise ProjectFileError(
            f"'{p}' is not a GeoPackage. Give the .gpkg file that dlstudio:createproject made."
        )
    uri = p.resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        row = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='dls_project'"
        ).fetchone()
        if row is None:
            raise ProjectFileError(
                f"'{p}' is a GeoPackage but not a Deep Learning Studio project (it has no "
                "dls_project table). Create a project with dlstudio:createproject."
            )
        row = con.execute("SELECT schema_version FROM dls_project WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ProjectFileError(f"'{p}' cannot be read as a project: {exc}.") from exc
    finally:
        con.close()
    if row is None:
        raise ProjectFileError(f"'{p}' has an empty dls_project table; the file is damaged.")
    if row[0] > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"'{p}' was written by a newer Deep Learning Studio (schema version {row[0]}; this "
            f"plugin reads up to {SCHEMA_VERSION}). Update the plugin to open it."
        )


def set_journal_mode(path: str | os.PathLike) -> str | None:
    """WAL on local disks; the rollback journal and a warning on a network file system."""
    fs = network_filesystem(path)
    con = connect(path)
    try:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if fs is None and mode != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        elif fs is not None and mode == "wal":
            con.execute("PRAGMA journal_mode = DELETE")
    finally:
        con.close()
    if fs is None:
        return None
    return (
        f"The project file is on a network file system ({fs}). SQLite's write-ahead log does "
        "not work there, so the project uses the slower rollback journal, and file locking "
        "depends on the server: concurrent edits may be lost. Keep the file on a local disk, "
        "or move the team to PostgreSQL/PostGIS."
    )


def log(con, user, entity, entity_id, action, from_status, to_status, comment=None) -> None:
    """Append one row to the audit history (inside the caller's transaction)."""
    from .model import now

    con.execute(
        "INSERT INTO dls_history (at, user, entity, entity_id, action, from_status, to_status,"
        " comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (now(), user, entity, None if entity_id is None else str(entity_id), action,
         from_status, to_status, comment or None),
    )  # fmt: skip
