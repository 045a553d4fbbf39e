"""The docks' tables and figures as plain data, derived from the project each time (Qt-free)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import Project, SampleStatus, WorkUnitStatus

W, S = WorkUnitStatus, SampleStatus
ALL = ""  # the filter value that matches everything

UNIT_COLUMNS = ("Id", "Name", "Status", "Assignee", "Pending", "Approved", "Rejected",
                "Last change")  # fmt: skip
UNIT_COLORS = {
    "queued": "#9e9e9e",
    "in_progress": "#f0ad4e",
    "pending_review": "#5bc0de",
    "in_review": "#337ab7",
    "reviewed": "#5cb85c",
}
SAMPLE_COLORS = {"pending": "#f0ad4e", "approved": "#5cb85c", "rejected": "#d9534f"}


@dataclass(frozen=True)
class UnitRow:
    fid: int
    name: str
    status: WorkUnitStatus
    assignee: str
    pending: int
    approved: int
    rejected: int
    updated_at: str
    updated_by: str

    def cells(self) -> tuple:
        """The values of UNIT_COLUMNS."""
        when = self.updated_at[:16].replace("T", " ")
        return (self.fid, self.name, self.status.label, self.assignee, self.pending,
                self.approved, self.rejected, f"{when} ({self.updated_by})")  # fmt: skip


def unit_rows(project: Project) -> list[UnitRow]:
    """One row per work unit with its sample counts by status."""
    counts = {u["fid"]: u["samples"] for u in project.progress()["per_unit"]}
    rows = []
    for u in project.work_units():
        c = counts.get(u.fid, {})
        rows.append(
            UnitRow(u.fid, u.name or "", u.status, u.assignee or "", c.get("pending", 0),
                    c.get("approved", 0), c.get("rejected", 0), u.updated_at, u.updated_by)
        )  # fmt: skip
    return rows


def filter_rows(rows: list[UnitRow], status: str = ALL, assignee: str = ALL) -> list[UnitRow]:
    """Rows with that status value (e.g. 'queued') and assignee ('-' for nobody)."""
    out = rows
    if status:
        out = [r for r in out if r.status.value == status]
    if assignee:
        want = "" if assignee == "-" else assignee
        out = [r for r in out if r.assignee == want]
    return out


def assignees(rows: list[UnitRow]) -> list[str]:
    return sorted({r.assignee for r in rows if r.assignee})


@dataclass(frozen=True)
class Bar:
    key: str
    label: str
    count: int
    total: int
    color: str

    @property
    def percent(self) -> int:
        return round(100 * self.count / self.total) if self.total else 0


@dataclass(frozen=True)
class Dashboard:
    unit_bars: list[Bar]
    sample_bars: list[Bar]
    percent_reviewed: float
    approved: int
    rejected: int
    exportable: int
    collectors: list[tuple[str, int, int, int, int]]  # user, total, pending, approved, rejected
    queue: list[UnitRow]  # units Pending review, then those In review


def dashboard(project: Project, rows: list[UnitRow] | None = None) -> Dashboard:
    """The review dashboard's figures, from the project's current state."""
    p = project.progress()
    nu, ns = p["work_units"]["total"], p["samples"]["total"]
    unit_bars = [Bar(s.value, s.label, p["work_units"]["by_status"][s.value], nu,
                     UNIT_COLORS[s.value]) for s in W]  # fmt: skip
    sample_bars = [Bar(s.value, s.label, p["samples"]["by_status"][s.value], ns,
                       SAMPLE_COLORS[s.value]) for s in S]  # fmt: skip
    collectors = sorted(
        (user, d["total"], d["pending"], d["approved"], d["rejected"])
        for user, d in p["per_collector"].items()
    )
    rows = unit_rows(project) if rows is None else rows
    queue = [r for r in rows if r.status is W.PENDING_REVIEW]
    queue += [r for r in rows if r.status is W.IN_REVIEW]
    return Dashboard(unit_bars, sample_bars, p["percent_reviewed"], p["approved"],
                     p["rejected"], p["exportable_samples"], collectors, queue)  # fmt: skip
