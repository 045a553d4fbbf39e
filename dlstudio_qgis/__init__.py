"""Deep Learning Studio for QGIS (SPDX-License-Identifier: GPL-2.0-or-later).

QGIS calls ``classFactory`` to load the plugin (``iface`` is None under qgis_process, which
only calls ``initProcessing``). Nothing else happens at import time, so importing the core or
the engine does not pull in the plugin's Qt code.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import DLStudioPlugin

    return DLStudioPlugin(iface)
