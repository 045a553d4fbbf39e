"""The project dock: open or create a project, who you are, the work units, the long jobs.

It remembers the last project opened and reopens it when the plugin starts (recent.py).
"""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import jobs, recent
from .jobrunner import JobRunner
from .session import WARNING, ProjectSession
from .unitspanel import UnitsPanel
from .widgets import set_ability

OBJECT_NAME = "DeepLearningStudioProjectDock"


class ProjectDock(QDockWidget):
    def __init__(self, session: ProjectSession, parent=None) -> None:
        super().__init__("DLS Project", parent)
        self.setObjectName(OBJECT_NAME)
        self.session = session
        self.runner = JobRunner(self)
        self.wizard = None

        self.title = QLabel("No project open")
        self.title.setWordWrap(True)
        self.who = QLabel()
        self.who.setWordWrap(True)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a project file (.gpkg).")
        self.new_button = QPushButton("New…")
        self.new_button.setToolTip("Create a project with the wizard.")
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Close the project and remove its layers.")
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.new_button)
        top.addWidget(self.close_button)
        top.addStretch(1)
        self.reopen_check = QCheckBox("Reopen at start")
        self.reopen_check.setToolTip(
            "Reopen the last project opened here when QGIS starts (if the file still exists)."
        )
        self.reopen_check.setChecked(recent.reopen_enabled())
        top.addWidget(self.reopen_check)

        self.units = UnitsPanel(session)
        units_box = QGroupBox("Work units")
        QVBoxLayout(units_box).addWidget(self.units)

        self.export_button = QPushButton("Export training data…")
        self.export_button.setToolTip("Open Export training data, pre-filled from the project.")
        self.train_button = QPushButton("Train model…")
        self.train_button.setToolTip("Open Train deep learning model, pre-filled from the project.")
        self.train_now = QPushButton("Train in background")
        self.train_now.setToolTip(
            "Train with the pre-filled settings as a task (see the task manager); the epoch, "
            "loss and ETA show below."
        )
        self.infer_button = QPushButton("Run inference…")
        self.infer_button.setToolTip("Open the inference tool of this project, pre-filled.")
        self.cancel_job = QPushButton("Cancel")
        self.cancel_job.setEnabled(False)
        self.job_status = QLabel("No job running.")
        self.job_status.setWordWrap(True)
        self.job_progress = QProgressBar()
        self.job_progress.setRange(0, 100)
        self.job_progress.setValue(0)
        jobs_box = QGroupBox("Deep learning")
        jl = QVBoxLayout(jobs_box)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.export_button)
        row1.addWidget(self.train_button)
        row1.addWidget(self.infer_button)
        row2.addWidget(self.train_now)
        row2.addWidget(self.cancel_job)
        row2.addStretch(1)
        for w in (row1, row2):
            jl.addLayout(w)
        jl.addWidget(self.job_progress)
        jl.addWidget(self.job_status)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(top)
        layout.addWidget(self.title)
        layout.addWidget(self.who)
        layout.addWidget(units_box, 1)
        layout.addWidget(jobs_box)
        self.setWidget(body)

        self.open_button.clicked.connect(self.choose_project)
        self.new_button.clicked.connect(self.new_project)
        self.close_button.clicked.connect(session.close)
        self.export_button.clicked.connect(self.open_export)
        self.train_button.clicked.connect(self.open_train)
        self.train_now.clicked.connect(self.start_training)
        self.infer_button.clicked.connect(self.open_inference)
        self.cancel_job.clicked.connect(self.runner.cancel)
        self.runner.status.connect(self.job_status.setText)
        self.runner.progress.connect(lambda v: self.job_progress.setValue(int(v)))
        self.runner.finished.connect(self._job_finished)
        self.reopen_check.toggled.connect(recent.set_reopen_enabled)
        session.opened.connect(self._remember)
        session.changed.connect(self.update_state)
        session.closed.connect(self.update_state)
        self.update_state()

    # --- state -----------------------------------------------------------------------------

    def update_state(self) -> None:
        project = self.session.project
        if project is None:
            self.title.setText("No project open. Open a project file or create one.")
            self.who.setText("")
        else:
            info = project.info()
            self.title.setText(
                f"<b>{info.name}</b> · {info.inference_tool.value.replace('_', ' ').title()}"
                f" · samples {info.sample_geometry.lower()}s"
                + (" · <i>complete</i>" if info.status == "complete" else "")
            )
            role = self.session.role()
            self.who.setText(
                f"You are <b>{project.user}</b>, "
                + (f"<b>{role.value}</b>." if role else "<b>not a member</b> (view only).")
            )
        self.close_button.setEnabled(project is not None)
        can = self.session.abilities()
        set_ability(self.export_button, can["export"])
        set_ability(self.train_button, can["train"])
        set_ability(self.infer_button, can["infer"])
        if self.runner.running:
            self.train_now.setEnabled(False)
        else:
            set_ability(self.train_now, can["train"])

    # --- opening ---------------------------------------------------------------------------

    def choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a Deep Learning Studio project", "", "GeoPackage (*.gpkg *.GPKG)"
        )
        if path:
            self.session.open(path)

    def _remember(self) -> None:
        if self.session.project is not None:
            recent.remember(str(Path(self.session.project.path).resolve()))

    def reopen_last(self) -> bool:
        """Reopen the last project (the plugin starts), if the setting says so and nothing is
        open; a file gone (or no longer a project) is forgotten, with a message."""
        path = recent.last_project()
        if not path or not recent.reopen_enabled() or self.session.project is not None:
            return False
        if not Path(path).is_file():
            recent.forget()
            self.session.report(
                f"The last project, {path}, is no longer there; it is forgotten. Open a "
                "project with Open…", WARNING,
            )  # fmt: skip
            return False
        if self.session.open(path) is None:
            recent.forget()  # the session said why
            return False
        return True

    def new_project(self) -> None:
        from .wizard import ProjectWizard

        self.wizard = ProjectWizard(self.session, self)
        self.wizard.show()

    # --- long jobs -------------------------------------------------------------------------

    def open_export(self):
        params = jobs.export_parameters(self.session.project)
        return self.runner.open_dialog(jobs.EXPORT_ALG, params, self)

    def open_train(self):
        params = jobs.train_parameters(self.session.project)
        return self.runner.open_dialog(jobs.TRAIN_ALG, params, self)

    def open_inference(self):
        project = self.session.project
        return self.runner.open_dialog(
            jobs.inference_algorithm(project), jobs.inference_parameters(project), self
        )

    def start_training(self, parameters: dict | None = None) -> bool:
        params = parameters or jobs.train_parameters(self.session.project)
        started = self.runner.start(jobs.TRAIN_ALG, params)
        self.cancel_job.setEnabled(started)
        self.update_state()
        return started

    def _job_finished(self, ok: bool, results: dict) -> None:
        self.cancel_job.setEnabled(False)
        if ok:
            self.job_progress.setValue(100)
            out = results.get("OUTPUT")
            self.job_status.setText(f"Finished: {out}" if out else "Finished.")
        self.session.refresh()
        self.update_state()
