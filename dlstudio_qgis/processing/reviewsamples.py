"""dlstudio:reviewsamples: approve or reject training samples, and finish the reviews."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)

from ..core import SampleStatus, WorkUnitStatus
from .base import (
    DlsAlgorithm,
    count,
    project_parameter,
    select_ids,
    tr,
    user_parameter,
    with_help,
)

S, W = SampleStatus, WorkUnitStatus
STATUSES = ["APPROVED", "REJECTED"]
FINISH = ["LEAVE", "AUTO", "REVIEWED"]


class ReviewSamples(DlsAlgorithm):
    NAME = "reviewsamples"
    DISPLAY_NAME = "Review training samples"
    HELP = (
        "Approves or rejects training samples, all or nothing. Choose them by id (1,3,5-8) or "
        "with a QGIS expression on the project's training_samples layer, e.g. "
        '"work_unit" = 3 AND "class_value" = 1. Samples are reviewed in work units Pending '
        "review (the first review opens them: In review) or In review. Owners and analysts "
        "review.\n\n"
        "FINISH decides what happens to the work units touched once none of their samples is "
        "Pending approval any more: AUTO (default) finishes the review, sending a unit back to "
        "Queued when samples were rejected in this review round (since the unit was opened), "
        "so the collector fixes them, else marking it Reviewed; "
        "REVIEWED marks them Reviewed even with rejected samples (those are not exported); "
        "LEAVE keeps them In review."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterString("SAMPLES", tr("Samples")),
                "Sample ids such as 1,3,5-8, or a QGIS expression on the training_samples "
                "layer (fields fid, class_value, status, work_unit, collected_by ...), e.g. "
                '"work_unit" = 3. Status values are pending, approved, rejected.',
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "STATUS", tr("Review"), options=STATUSES, usesStaticStrings=True
                ),
                "APPROVED or REJECTED.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterString(
                    "COMMENT", tr("Comment"), defaultValue="", optional=True
                ),
                "A review comment stored with each sample (say why a sample is rejected).",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "FINISH",
                    tr("Finish the work units' review"),
                    options=FINISH,
                    defaultValue="AUTO",
                    usesStaticStrings=True,
                ),
                "For each work unit touched with no sample left Pending approval: AUTO "
                "finishes its review (Queued if samples were rejected in this review round, else "
                "Reviewed); "
                "REVIEWED marks it Reviewed even with rejected samples; LEAVE keeps it In review.",
            )
        )
        self.addParameter(user_parameter())
        self.addOutput(QgsProcessingOutputNumber("CHANGED", tr("Samples changed")))
        self.addOutput(QgsProcessingOutputNumber("UNCHANGED", tr("Samples already so")))
        self.addOutput(QgsProcessingOutputString("FINISHED_UNITS", tr("Work units finished (ids)")))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        project = self.open_project(parameters, context, steps)
        status = S.parse(self.parameterAsEnumString(parameters, "STATUS", context))
        comment = self.parameterAsString(parameters, "COMMENT", context) or ""
        finish = self.parameterAsEnumString(parameters, "FINISH", context) or "AUTO"
        text = self.parameterAsString(parameters, "SAMPLES", context)
        ids = select_ids(project, "training_samples", text, "sample", context)
        if ids is None:
            steps.pushWarning(tr(f"No sample matches '{text}'; nothing changed."))
            return {"CHANGED": 0, "UNCHANGED": 0, "FINISHED_UNITS": ""}

        result = project.review_samples(ids, status, comment)
        steps.pushInfo(
            tr(
                f"{count(len(result.changed), 'sample')} {status.label.lower()}, "
                f"{len(result.unchanged)} already were."
            )
        )
        if result.opened_units:
            steps.pushInfo(
                tr(f"Opened the review of work units {', '.join(map(str, result.opened_units))}.")
            )
        finished = {}
        steps.setCurrentStep(1)
        if finish != "LEAVE":
            units = sorted({smp.work_unit for smp in project.samples(ids=ids)})
            finished = project.finish_reviews(units, send_back_rejected=finish == "AUTO")
            for fid, (target, rejected) in finished.items():
                steps.pushInfo(
                    tr(
                        f"Work unit {fid}: review finished, now {target.label}"
                        + (f" ({count(rejected, 'sample')} rejected)." if rejected else ".")
                    )
                )
        return {
            "CHANGED": len(result.changed),
            "UNCHANGED": len(result.unchanged),
            "FINISHED_UNITS": ",".join(map(str, sorted(finished))),
        }
