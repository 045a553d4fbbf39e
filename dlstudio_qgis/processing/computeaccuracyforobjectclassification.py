"""dlstudio:computeaccuracyforobjectclassification: predicted classes of features against
the reference classes in another field of the same features.

No raster and no heavy package is needed, so this runs in the QGIS process with
engine/accuracy/metrics.py (numpy) and report.py (standard library).
"""

from __future__ import annotations

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingException,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
)

from ..engine.accuracy import metrics
from ..engine.accuracy.report import render_confusion, write_report
from .accuracysupport import (
    SOURCE_VECTOR,
    class_key,
    confusion_table,
    field_index,
    names_from_field,
    pushed_summary,
    report_parameter,
    report_path,
    table_parameter,
    write_table,
)
from .base import NO_GEOMETRY, DeepLearningAlgorithm, count, tr, with_help


class ComputeAccuracyForObjectClassification(DeepLearningAlgorithm):
    NAME = "computeaccuracyforobjectclassification"
    DISPLAY_NAME = "Compute accuracy for object classification"
    HELP = (
        "Judges classified features (e.g. the output of Classify objects) against their "
        "reference classes: a confusion matrix (rows: the reference class; columns: the "
        "predicted class), overall accuracy, Cohen's kappa, and per class precision, recall, "
        "F1 and IoU.\n\n"
        "The predicted and the reference classes are two fields of the same features; they "
        "are compared by value (1, 1.0 and '1' are the same class; names are compared as "
        "written). Features without a reference class are not counted; features without a "
        "predicted class count as misses (column no_class)."
    )

    def initAlgorithm(self, config=None):
        add = self.addParameter
        add(
            with_help(
                QgsProcessingParameterFeatureSource(
                    "INPUT_FEATURES", tr("Classified features"), types=[SOURCE_VECTOR]
                ),
                "Features with a predicted class and a reference class, e.g. the output of "
                "Classify objects with a field of the true classes.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterField(
                    "PREDICTED_FIELD",
                    tr("Predicted class field"),
                    defaultValue="class_value",
                    parentLayerParameterName="INPUT_FEATURES",
                    optional=True,  # QGIS 3.22 refuses a required field left to its default
                ),
                "The field holding the predicted class: class_value (Classify objects' class "
                "values) or a field of class names such as class_name.",
            )
        )
        add(
            with_help(
                QgsProcessingParameterField(
                    "REFERENCE_FIELD",
                    tr("Reference class field"),
                    parentLayerParameterName="INPUT_FEATURES",
                ),
                "The field holding the true class of each feature, in the same terms as "
                "PREDICTED_FIELD (values with values, names with names).",
            )
        )
        add(
            table_parameter(
                "The confusion matrix as a table: a row per reference class, a column "
                "c_<value> per predicted class (no_class: features without one), the row "
                "total, and the class's precision, recall, f1 and iou; a last 'total' row "
                "holds the column totals and the means."
            )
        )
        add(report_parameter())
        for name, label in (
            ("OVERALL_ACCURACY", "Overall accuracy"),
            ("KAPPA", "Kappa"),
            ("MEAN_F1", "Mean F1 score"),
            ("MIOU", "Mean IoU"),
        ):
            self.addOutput(QgsProcessingOutputNumber(name, tr(label)))

    def execute(self, parameters, context, feedback):
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        source = self.parameterAsSource(parameters, "INPUT_FEATURES", context)
        if source is None:
            raise QgsProcessingException(tr("Could not load the features (INPUT_FEATURES)."))
        predicted = self.parameterAsString(parameters, "PREDICTED_FIELD", context)
        reference = self.parameterAsString(parameters, "REFERENCE_FIELD", context)
        p_index = field_index(source, predicted, "PREDICTED_FIELD", "input")
        r_index = field_index(source, reference, "REFERENCE_FIELD", "input")
        if p_index == r_index:
            raise QgsProcessingException(
                tr(
                    f"PREDICTED_FIELD and REFERENCE_FIELD are both '{predicted}'; give the "
                    "field of the true classes as REFERENCE_FIELD."
                )
            )
        report = report_path(self, parameters, context)

        refs, preds, skipped = [], [], 0
        total = source.featureCount() or 0
        request = QgsFeatureRequest().setFlags(NO_GEOMETRY)
        request.setSubsetOfAttributes([p_index, r_index])
        for i, feature in enumerate(source.getFeatures(request)):
            if steps.isCanceled():
                raise QgsProcessingException(tr("Cancelled."))
            if total:
                steps.setProgress(100.0 * i / total)
            attrs = feature.attributes()
            ref = class_key(attrs[r_index])
            if ref is None:
                skipped += 1
                continue
            refs.append(ref)
            preds.append(class_key(attrs[p_index]))
        if not refs:
            raise QgsProcessingException(
                tr(
                    f"No feature has a reference class in '{reference}' "
                    f"({count(skipped, 'feature')} without one), so there is nothing to judge. "
                    "Fill REFERENCE_FIELD (or choose the field that holds the true classes)."
                )
            )
        if skipped:
            steps.pushWarning(
                tr(f"{count(skipped, 'feature')} without a reference class were not counted.")
            )
        if not set(refs) & {p for p in preds if p is not None}:
            steps.pushWarning(
                tr(
                    f"No predicted class in '{predicted}' is also a reference class in "
                    f"'{reference}': are class values being compared with class names? "
                    "Choose fields in the same terms."
                )
            )
        labels, matrix = metrics.confusion_matrix(refs, preds)
        summary = metrics.confusion_summary(labels, matrix)
        names = names_from_field(source, p_index)

        steps.setCurrentStep(1)
        fields, rows = confusion_table(summary, names)
        dest_id = write_table(self, parameters, context, fields, rows)
        if report:
            inputs = {
                "Features": source.sourceName(),
                "Predicted class field": predicted,
                "Reference class field": reference,
                "Features without a reference (not counted)": skipped,
            }
            title = "Object classification accuracy"
            write_report(report, render_confusion(summary, title, inputs, names, "features"))
        pushed_summary(steps, "feature", summary)
        out = {
            "OUTPUT_ACCURACY_TABLE": dest_id,
            "OVERALL_ACCURACY": summary["overall_accuracy"],
            "KAPPA": summary["kappa"],
            "MEAN_F1": summary["mean_f1"],
            "MIOU": summary["miou"],
        }
        if report:
            out["OUTPUT_ACCURACY_REPORT"] = report
        return out
