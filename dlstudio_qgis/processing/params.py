"""Small constructors for the parameters the deep learning algorithms share."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
)

from .base import NUMBER_DOUBLE, tr, with_help


def enum_param(name, label, options, default, help_text):
    return with_help(
        QgsProcessingParameterEnum(
            name, tr(label), options=list(options), defaultValue=default, usesStaticStrings=True
        ),
        help_text,
    )


def bool_param(name, label, default, help_text):
    return with_help(
        QgsProcessingParameterBoolean(name, tr(label), defaultValue=default), help_text
    )


def int_param(name, label, default, help_text, minimum=None, advanced=False):
    param = QgsProcessingParameterNumber(name, tr(label), defaultValue=default)
    if minimum is not None:
        param.setMinimum(minimum)
    return with_help(param, help_text, advanced=advanced)


def number_param(name, label, default, help_text, maximum=None):
    param = QgsProcessingParameterNumber(name, tr(label), NUMBER_DOUBLE, default, minValue=0.0)
    if maximum is not None:
        param.setMaximum(maximum)
    return with_help(param, help_text)
