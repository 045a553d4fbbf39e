"""Stepping through one work unit's samples in review (Qt-free; the review dock drives it).

Opening makes the unit In review (core: open_review). Approve and Reject act on the current
sample through the core and move on to the next sample still Pending approval; Next and
Previous step without reviewing. When nothing is pending the review can finish as Reviewed,
or go back to Queued so the collector fixes what was rejected.
"""

from __future__ import annotations

from ..core import Project, SampleStatus, ValidationError, WorkUnitStatus
from ..core.model import Sample

W, S = WorkUnitStatus, SampleStatus


class ReviewSession:
    def __init__(self, project: Project, unit_id: int) -> None:
        self.project = project
        self.unit_id = int(unit_id)
        self.samples: list[Sample] = []
        self.index = 0
        self.opened_at = ""

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> ReviewSession:
        """Pending review -> In review (a unit already In review is resumed)."""
        self.project.open_review(self.unit_id)
        opened = [
            h.at for h in self.project.history("work_unit", self.unit_id)
            if h.to_status == W.IN_REVIEW.value
        ]  # fmt: skip
        self.opened_at = opened[-1] if opened else ""
        self.reload()
        self.index = self._next_pending(-1, wrap=False)
        if self.index is None:
            self.index = 0
        return self

    def reload(self) -> None:
        """Re-read the unit's samples (another reviewer may have changed some), keeping the
        current sample when it still exists."""
        keep = self.current.fid if self.current else None
        self.samples = self.project.samples(work_unit=self.unit_id)
        fids = [s.fid for s in self.samples]
        self.index = fids.index(keep) if keep in fids else min(self.index, max(0, len(fids) - 1))

    # --- reading ---------------------------------------------------------------------------

    @property
    def current(self) -> Sample | None:
        return self.samples[self.index] if 0 <= self.index < len(self.samples) else None

    @property
    def pending(self) -> int:
        return sum(s.status is S.PENDING for s in self.samples)

    @property
    def done(self) -> bool:
        """Nothing left Pending approval: the review can be finished."""
        return self.pending == 0

    @property
    def rejected_this_round(self) -> int:
        return sum(
            s.status is S.REJECTED and (s.reviewed_at or "") >= self.opened_at for s in self.samples
        )

    def suggested_finish(self) -> WorkUnitStatus:
        """Queued (back to the collector) when samples were rejected in this round."""
        return W.QUEUED if self.rejected_this_round else W.REVIEWED

    def position(self) -> str:
        if not self.samples:
            return "no samples"
        return f"sample {self.index + 1} of {len(self.samples)}, {self.pending} pending"

    # --- stepping --------------------------------------------------------------------------

    def next(self) -> Sample | None:
        if self.samples:
            self.index = (self.index + 1) % len(self.samples)
        return self.current

    def previous(self) -> Sample | None:
        if self.samples:
            self.index = (self.index - 1) % len(self.samples)
        return self.current

    def approve(self, comment: str = "") -> Sample | None:
        return self._review(S.APPROVED, comment)

    def reject(self, comment: str = "") -> Sample | None:
        return self._review(S.REJECTED, comment)

    def finish(self, status: WorkUnitStatus | str | None = None, comment: str = "") -> W:
        """End the review: REVIEWED, or QUEUED to send it back (default: suggested_finish)."""
        if not self.done:
            raise ValidationError(
                f"{self.pending} samples are still Pending approval in work unit "
                f"{self.unit_id}; approve or reject them first."
            )
        target = W.parse(status) if status is not None else self.suggested_finish()
        self.project.finish_review(self.unit_id, target, comment)
        return target

    # --- internals ---

    def _review(self, status: SampleStatus, comment: str) -> Sample | None:
        sample = self.current
        if sample is None:
            raise ValidationError(f"Work unit {self.unit_id} has no samples to review.")
        self.project.review_samples([sample.fid], status, comment)
        self.reload()
        nxt = self._next_pending(self.index, wrap=True)
        if nxt is not None:
            self.index = nxt
        return self.current

    def _next_pending(self, start: int, wrap: bool) -> int | None:
        n = len(self.samples)
        for step in range(1, n + 1):
            i = start + step
            if i >= n and not wrap:
                return None
            i %= n
            if self.samples[i].status is S.PENDING:
                return i
        return None
