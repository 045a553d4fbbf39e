"""The review dashboard: progress figures, the queue of units to review, and a keyboard-driven
review of one unit's samples (A approve, R reject with the comment, N next, P previous).

Every figure is derived from the project each time it changes (here or in another process).
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QEvent, Qt
from qgis.PyQt.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core import SampleStatus, WorkUnitStatus
from .figures import dashboard
from .review import ReviewSession
from .session import INFO, ProjectSession
from .widgets import set_ability

OBJECT_NAME = "DeepLearningStudioReviewDock"
KEYS = {Qt.Key.Key_A: "approve", Qt.Key.Key_R: "reject", Qt.Key.Key_N: "next",
        Qt.Key.Key_P: "previous"}  # fmt: skip
W, S = WorkUnitStatus, SampleStatus


def _bar(color: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 100)
    bar.setTextVisible(True)
    bar.setMaximumHeight(16)
    bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {color}; }}")
    return bar


class ReviewDock(QDockWidget):
    def __init__(self, session: ProjectSession, parent=None) -> None:
        super().__init__("DLS Review", parent)
        self.setObjectName(OBJECT_NAME)
        self.session = session
        self.review: ReviewSession | None = None
        self.figures = None
        self.bars: dict[str, tuple[QLabel, QProgressBar]] = {}

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        units_box, samples_box = QGroupBox("Work units"), QGroupBox("Samples")
        for box, keys in ((units_box, W), (samples_box, S)):
            grid = QGridLayout(box)
            for i, s in enumerate(keys):
                label = QLabel(s.label)
                bar = _bar("#888")
                grid.addWidget(label, i, 0)
                grid.addWidget(bar, i, 1)
                self.bars[f"{box.title()}:{s.value}"] = (label, bar)
        self.collectors = QTableWidget(0, 5)
        self.collectors.setHorizontalHeaderLabels(
            ["Collector", "Samples", "Pending", "Approved", "Rejected"]
        )
        self.collectors.verticalHeader().setVisible(False)
        self.collectors.setMaximumHeight(120)

        self.queue = QListWidget()
        self.queue.setMaximumHeight(120)
        self.open_button = QPushButton("Open review")
        self.open_button.setToolTip("Review the selected unit (it becomes In review).")
        self.sample_info = QLabel("Open a unit from the queue to review its samples.")
        self.sample_info.setWordWrap(True)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment for a rejection (R)")
        self.approve_button = QPushButton("Approve (A)")
        self.reject_button = QPushButton("Reject (R)")
        self.prev_button = QPushButton("Previous (P)")
        self.next_button = QPushButton("Next (N)")
        self.finish_reviewed = QPushButton("Finish: Reviewed")
        self.finish_queued = QPushButton("Finish: back to Queued")
        review_box = QGroupBox("Review")
        rl = QVBoxLayout(review_box)
        qrow = QHBoxLayout()
        qrow.addWidget(self.queue, 1)
        qrow.addWidget(self.open_button)
        rl.addLayout(qrow)
        rl.addWidget(self.sample_info)
        rl.addWidget(self.comment)
        steps = QHBoxLayout()
        for b in (self.approve_button, self.reject_button, self.prev_button, self.next_button):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the dock
            steps.addWidget(b)
        rl.addLayout(steps)
        finish = QHBoxLayout()
        finish.addWidget(self.finish_reviewed)
        finish.addWidget(self.finish_queued)
        rl.addLayout(finish)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.summary)
        layout.addWidget(units_box)
        layout.addWidget(samples_box)
        layout.addWidget(self.collectors)
        layout.addWidget(review_box)
        layout.addStretch(1)
        self.setWidget(body)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.open_button.clicked.connect(self.open_selected)
        self.queue.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.approve_button.clicked.connect(lambda: self.step("approve"))
        self.reject_button.clicked.connect(lambda: self.step("reject"))
        self.next_button.clicked.connect(lambda: self.step("next"))
        self.prev_button.clicked.connect(lambda: self.step("previous"))
        self.finish_reviewed.clicked.connect(lambda: self.finish(W.REVIEWED))
        self.finish_queued.clicked.connect(lambda: self.finish(W.QUEUED))
        self.session.canvas.installEventFilter(self)
        session.changed.connect(self.update_figures)
        session.closed.connect(self._closed)
        self.update_figures()

    # --- figures ---------------------------------------------------------------------------

    def update_figures(self) -> None:
        project = self.session.project
        if project is None:
            self.summary.setText("No project open.")
            self.figures = None
        else:
            d = self.figures = dashboard(project)
            total_s = d.sample_bars[0].total
            self.summary.setText(
                f"<b>{d.percent_reviewed:g}%</b> of work units reviewed · <b>{d.approved}</b> "
                f"approved, <b>{d.rejected}</b> rejected of {total_s} samples · "
                f"{d.exportable} ready to export"
            )
            for prefix, bars in (("Work units", d.unit_bars), ("Samples", d.sample_bars)):
                for b in bars:
                    label, bar = self.bars[f"{prefix}:{b.key}"]
                    label.setText(f"{b.label}: {b.count}")
                    bar.setValue(b.percent)
                    bar.setFormat(f"{b.count} / {b.total}")
                    bar.setStyleSheet(f"QProgressBar::chunk {{ background-color: {b.color}; }}")
            self.collectors.setRowCount(len(d.collectors))
            for r, row in enumerate(d.collectors):
                for c, value in enumerate(row):
                    self.collectors.setItem(r, c, QTableWidgetItem(str(value)))
            keep = self.selected_unit()
            self.queue.clear()
            for row in d.queue:
                item = QListWidgetItem(f"{row.name or row.fid} · {row.status.label} · "
                                       f"{row.pending} pending")  # fmt: skip
                item.setData(Qt.ItemDataRole.UserRole, row.fid)
                self.queue.addItem(item)
                if row.fid == keep:
                    self.queue.setCurrentItem(item)
            if self.review is not None:
                self.review.reload()
        self._update_review()

    def selected_unit(self) -> int | None:
        item = self.queue.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    # --- reviewing -------------------------------------------------------------------------

    def open_unit(self, fid: int) -> ReviewSession | None:
        review = ReviewSession(self.session.project, fid)
        if self.session.act(review.open) is None:
            return None
        self.review = review
        self.session.set_current_unit(fid)
        self.update_figures()
        self._zoom()
        self.setFocus()
        return review

    def open_selected(self) -> ReviewSession | None:
        fid = self.selected_unit()
        if fid is None and self.figures is not None and self.figures.queue:
            fid = self.figures.queue[0].fid
        return None if fid is None else self.open_unit(fid)

    def step(self, what: str) -> None:
        """approve, reject (with the comment), next or previous; then zoom to the sample."""
        if self.review is None or self.review.current is None:
            return
        if what in ("approve", "reject"):
            comment = self.comment.text().strip() if what == "reject" else ""
            fn = self.review.approve if what == "approve" else self.review.reject
            if self.session.act(fn, comment) is None:
                return
        else:
            getattr(self.review, what)()
            self._update_review()
        self._zoom()

    def finish(self, status: WorkUnitStatus) -> bool:
        if self.review is None:
            return False
        fid = self.review.unit_id
        if self.session.act(self.review.finish, status) is None:
            return False
        self.review = None
        self.session.report(f"Review of work unit {fid} finished: {status.label}.", INFO)
        self.update_figures()
        return True

    def _zoom(self) -> None:
        if self.review is not None and self.review.current is not None:
            self.session.zoom_to(self.review.current.geometry, buffer=1.5)
            self.session.layers()  # forget layers the user removed
            layer = self.session.samples_layer
            if layer is not None:
                layer.selectByIds([self.review.current.fid])

    def _update_review(self) -> None:
        can = self.session.abilities()
        set_ability(self.open_button, can["review"])
        r = self.review
        active = r is not None and r.current is not None and can["review"].allowed
        for b in (self.approve_button, self.reject_button, self.prev_button, self.next_button):
            b.setEnabled(active)
        done = r is not None and r.done and can["review"].allowed
        self.finish_reviewed.setEnabled(done)
        self.finish_queued.setEnabled(done)
        if r is None:
            self.sample_info.setText(
                "Open a unit from the queue to review its samples."
                if can["review"].allowed
                else can["review"].reason
            )
            return
        s = r.current
        if s is None:
            self.sample_info.setText(f"Work unit {r.unit_id} has no samples.")
        else:
            names = {c.value: c.name for c in self.session.project.classes()}
            self.sample_info.setText(
                f"Unit {r.unit_id}: {r.position()}. Sample {s.fid}: "
                f"<b>{names.get(s.class_value, s.class_value)}</b>, {s.status.label}, by "
                f"{s.collected_by}" + (f" — {s.review_comment}" if s.review_comment else "")
            )
        if r.done:
            suggested = r.suggested_finish()
            self.sample_info.setText(
                self.sample_info.text() + f"<br>Nothing pending: finish as "
                f"<b>{suggested.label}</b>"
                + (f" ({r.rejected_this_round} rejected)." if r.rejected_this_round else ".")
            )

    # --- keys: in the dock, and on the map while a review is open ---------------------------

    def handle_key(self, event) -> bool:
        what = KEYS.get(event.key())
        if what is None or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        if self.review is None:
            return False
        self.step(what)
        return True

    def keyPressEvent(self, e) -> None:  # noqa: N802 - Qt's name
        if not self.handle_key(e):
            super().keyPressEvent(e)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.session.canvas and self.review is not None and \
                event.type() == QEvent.Type.KeyPress:  # fmt: skip
            return self.handle_key(event)
        return False

    def _closed(self) -> None:
        self.review = None
        self.update_figures()

    def cleanup(self) -> None:
        self.session.canvas.removeEventFilter(self)
