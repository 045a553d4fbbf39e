"""Progress figures, always derived from the current state (nothing is cached)."""

from __future__ import annotations

from . import schema
from .states import SampleStatus, WorkUnitStatus

W, S = WorkUnitStatus, SampleStatus


class ProgressMixin:
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
