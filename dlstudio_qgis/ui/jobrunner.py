"""Starting the long jobs from the docks, never on the UI thread.

Either the algorithm's Processing dialog, pre-filled from the project and shown without
blocking QGIS (it runs the algorithm as a task and shows its log); or straight away as a
QgsProcessingAlgRunnerTask in QGIS's task manager, whose messages the dock shows (training:
epoch, loss and ETA).
"""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .jobs import parse_epoch


class _Feedback(QgsProcessingFeedback):
    """Relays the algorithm's messages (from the task's thread) as a Qt signal."""

    line = pyqtSignal(str)

    def pushInfo(self, info):  # noqa: N802 - QGIS's name
        super().pushInfo(info)
        self.line.emit(info)

    def pushWarning(self, warning):  # noqa: N802
        super().pushWarning(warning)
        self.line.emit(warning)

    def reportError(self, error, fatalError=False):  # noqa: N802
        super().reportError(error, fatalError)
        self.line.emit(error)


class JobRunner(QObject):
    """One background job at a time per runner; `status` carries what the dock shows."""

    status = pyqtSignal(str)
    progress = pyqtSignal(float)
    finished = pyqtSignal(bool, dict)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.lines: list[str] = []
        self.results: dict | None = None
        self.ok: bool | None = None
        self.dialogs: list = []

    @property
    def running(self) -> bool:
        return self.task is not None

    def start(self, algorithm_id: str, parameters: dict) -> bool:
        """Run the algorithm as a task; False (and a status) when it cannot start."""
        if self.task is not None:
            self.status.emit("A job is already running; wait for it or cancel it.")
            return False
        alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if alg is None:
            self.status.emit(f"The algorithm {algorithm_id} is not available.")
            return False
        self.lines, self.results, self.ok = [], None, None
        self._context = QgsProcessingContext()
        self._context.setProject(QgsProject.instance())
        self._feedback = _Feedback()
        self._feedback.line.connect(self._on_line)
        self._feedback.progressChanged.connect(self.progress.emit)
        self.task = QgsProcessingAlgRunnerTask(alg, parameters, self._context, self._feedback)
        self.task.executed.connect(self._on_done)
        self.status.emit(f"{alg.displayName()}: started (see the task manager).")
        QgsApplication.taskManager().addTask(self.task)
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self._feedback.cancel()
            self.task.cancel()

    def _on_line(self, text: str) -> None:
        self.lines.append(text)
        epoch = parse_epoch(text)
        self.status.emit(epoch.text() if epoch is not None else text.splitlines()[0][:200])

    def _on_done(self, ok: bool, results: dict) -> None:
        self.ok, self.results, self.task = bool(ok), dict(results or {}), None
        if not ok:
            last = next((x for x in reversed(self.lines) if x.strip()), "see the log")
            self.status.emit(f"Failed: {last[:300]}")
        else:
            self.status.emit("Finished.")
        self.finished.emit(self.ok, self.results)

    # --- the Processing dialog -------------------------------------------------------------

    def open_dialog(self, algorithm_id: str, parameters: dict, parent=None):
        """The algorithm's dialog, pre-filled, shown without blocking; None if missing."""
        alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if alg is None:
            self.status.emit(f"The algorithm {algorithm_id} is not available.")
            return None
        dialog = alg.createCustomParametersWidget(parent)
        if not dialog:
            from processing.gui.AlgorithmDialog import AlgorithmDialog

            dialog = AlgorithmDialog(alg, parent=parent)
        dialog.setParameters(parameters)
        dialog.show()
        self.dialogs = [d for d in self.dialogs if _alive(d)] + [dialog]
        return dialog


def _alive(widget) -> bool:
    try:
        return widget.isVisible()
    except RuntimeError:  # deleted on the C++ side
        return False
