"""dlstudio:updateworkunitstatus: set the status of work units, by hand or by workflow."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)

from ..core import WorkUnitStatus
from .base import (
    DlsAlgorithm,
    count,
    enum_codes,
    project_parameter,
    select_ids,
    tr,
    user_parameter,
    with_help,
)

W = WorkUnitStatus
MODES = ["MANUAL", "WORKFLOW"]


class UpdateWorkUnitStatus(DlsAlgorithm):
    NAME = "updateworkunitstatus"
    DISPLAY_NAME = "Update work unit status"
    HELP = (
        "Moves work units to a new status. Choose the units by id (1,3,5-8) or with a QGIS "
        "expression on the project's work_units layer, e.g. \"status\" = 'in_progress'.\n\n"
        "MODE=MANUAL (default) sets the status by hand, all or nothing: owners and analysts "
        "may set any status, and every change is recorded in the project's history.\n\n"
        "MODE=WORKFLOW takes the workflow step that leads to the status: PENDING_REVIEW marks "
        "the units complete (collectors may do this in their own units), IN_REVIEW opens their "
        "review, REVIEWED finishes it and QUEUED sends the units back to the collector (from In "
        "review, once no sample is Pending approval). Every unit is checked before any changes. "
        "Units already in the status are left as they are."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterString("WORK_UNITS", tr("Work units")),
                "Work unit ids such as 1,3,5-8, or a QGIS expression on the work_units layer "
                '(fields fid, name, status, assignee, reviewer ...), e.g. "status" = '
                "'pending_review'. Status values are queued, in_progress, pending_review, "
                "in_review, reviewed.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "STATUS", tr("New status"), options=enum_codes(W), usesStaticStrings=True
                ),
                "QUEUED, IN_PROGRESS, PENDING_REVIEW, IN_REVIEW or REVIEWED.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "COMMENT", tr("Comment"), defaultValue="", optional=True
                ),
                "A note recorded in the project's history with each change.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "MODE",
                    tr("Mode"),
                    options=MODES,
                    defaultValue="MANUAL",
                    usesStaticStrings=True,
                ),
                "MANUAL: set the status by hand (owners and analysts). WORKFLOW: take the "
                "workflow step leading to it (PENDING_REVIEW = mark complete, also for "
                "collectors; IN_REVIEW = open review; REVIEWED = finish review; QUEUED = send "
                "back from In review).",
                advanced=True,
            )
        )
        self.addParameter(user_parameter())
        self.addOutput(QgsProcessingOutputNumber("CHANGED", tr("Work units changed")))

    def execute(self, parameters, context, feedback):
        project = self.open_project(parameters, context, feedback)
        status = W.parse(self.parameterAsEnumString(parameters, "STATUS", context))
        comment = self.parameterAsString(parameters, "COMMENT", context) or ""
        mode = self.parameterAsEnumString(parameters, "MODE", context) or "MANUAL"
        text = self.parameterAsString(parameters, "WORK_UNITS", context)
        ids = select_ids(project, "work_units", text, "work unit", context)
        if ids is None:
            feedback.pushWarning(tr(f"No work unit matches '{text}'; nothing changed."))
            return {"CHANGED": 0}
        if mode == "MANUAL":
            changed = project.set_work_unit_status(ids, status, comment)
        else:
            changed = self.workflow(project, ids, status, comment, feedback)
        unchanged = len(ids) - len(changed)
        feedback.pushInfo(
            tr(
                f"{count(len(changed), 'work unit')} set to {status.label}"
                + (f" ({', '.join(map(str, changed))})" if changed else "")
                + (f"; {unchanged} already were." if unchanged else ".")
            )
        )
        return {"CHANGED": len(changed)}

    def workflow(self, project, ids, status, comment, feedback) -> list[int]:
        event = {
            W.PENDING_REVIEW: "mark_complete",
            W.IN_REVIEW: "open_review",
            W.REVIEWED: "finish_review",
            W.QUEUED: "send_back",
        }.get(status)
        if event is None:
            raise QgsProcessingException(
                tr(
                    "No workflow step leads to In progress (collecting a sample does); use "
                    "MODE=MANUAL to set it by hand."
                )
            )
        # one transaction: every unit is checked before any changes
        return project.workflow_units(ids, event, comment)
