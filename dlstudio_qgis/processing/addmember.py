"""dlstudio:addmember: add a member to a project, or change their role."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterString,
)

from .base import DlsAlgorithm, project_parameter, tr, user_parameter, with_help

ROLES = ["analyst", "collector"]


class AddMember(DlsAlgorithm):
    NAME = "addmember"
    DISPLAY_NAME = "Add project member"
    HELP = (
        "Adds a user to the project with a role, or changes the role of a member. Analysts "
        "configure the project, review samples and run export, training and inference; "
        "collectors collect samples in work units and mark them complete. The owner is the user "
        "who created the project; their role is fixed.\n\n"
        "Owners and analysts may add members. RESULT says whether the member was added, their "
        "role changed, or nothing changed."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(project_parameter())
        self.addParameter(
            with_help(
                QgsProcessingParameterString("MEMBER", tr("Member user name")),
                "The member's user name: their QGIS setting dlstudio/user, or their "
                "operating-system user name.",
            )
        )
        self.addParameter(
            with_help(
                QgsProcessingParameterEnum(
                    "ROLE",
                    tr("Role"),
                    options=ROLES,
                    defaultValue="collector",
                    usesStaticStrings=True,
                ),
                "analyst (configure, review, export, train, infer) or collector (collect "
                "samples and mark work units complete).",
            )
        )
        self.addParameter(user_parameter())
        self.addOutput(
            QgsProcessingOutputString("RESULT", tr("Result (added, changed, unchanged)"))
        )

    def execute(self, parameters, context, feedback):
        project = self.open_project(parameters, context, feedback)
        member = self.parameterAsString(parameters, "MEMBER", context)
        role = self.parameterAsEnumString(parameters, "ROLE", context)
        result = project.add_member(member, role)
        feedback.pushInfo(tr(f"'{member.strip()}' as {role}: {result}."))
        return {"RESULT": result}
