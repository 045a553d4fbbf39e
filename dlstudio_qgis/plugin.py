"""The plugin object QGIS loads: registers the Processing provider, a menu, a toolbar and the
dock panels.

Nothing else lives here: the work is in the provider's algorithms (``processing/``), the
docks (``ui/``), the store (``core/``) and the worker (``engine/``).

Icons are loaded by file path (``icons/icon.svg``), not from compiled Qt resources:
``resources.qrc`` only lists them, and no ``resources_rc.py`` is generated, which keeps the
plugin free of pyrcc and Qt5/Qt6-neutral.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

try:  # Qt6 (QGIS 4) has QAction in QtGui; Qt5 in QtWidgets
    from qgis.PyQt.QtGui import QAction
except ImportError:  # pragma: no cover - depends on the Qt version
    from qgis.PyQt.QtWidgets import QAction

PLUGIN_NAME = "dlstudio_qgis"
PROVIDER_ID = "dlstudio"
ICON_PATH = Path(__file__).resolve().parent / "icons" / "icon.svg"
TOOLBAR_OBJECT_NAME = "DeepLearningStudioToolbar"


def tr(text: str) -> str:
    return QCoreApplication.translate("DeepLearningStudio", text)


#: (algorithm name, action text, tooltip) of the menu and toolbar actions.
ACTIONS = (
    ("createproject", "Create Project…", "Create a Deep Learning Studio project on imagery"),
    ("importsamples", "Import Training Samples…", "Import training samples from a layer"),
    ("reviewsamples", "Review Training Samples…", "Approve or reject training samples"),
    ("projectstatus", "Project Status…", "Report a project's progress"),
)


class DLStudioPlugin:
    """Created by ``classFactory``; ``iface`` is None when qgis_process loads the plugin."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.actions: list[QAction] = []
        self.toolbar = None
        self.docks = None
        self.menu_name = tr("&Deep Learning Studio")

    # --- Processing ----------------------------------------------------------------------

    def initProcessing(self) -> None:  # noqa: N802 - the name QGIS calls
        """Register the provider (qgis_process calls only this)."""
        if self.provider is not None:
            return
        from .processing.provider import DlsProvider

        provider = DlsProvider()
        if not QgsApplication.processingRegistry().addProvider(provider):
            raise RuntimeError(f"Could not register the Processing provider '{PROVIDER_ID}'.")
        self.provider = provider

    # --- GUI -----------------------------------------------------------------------------

    def initGui(self) -> None:  # noqa: N802 - the name QGIS calls
        self.initProcessing()
        if self.iface is None:
            return
        icon = QIcon(str(ICON_PATH))
        self.toolbar = self.iface.addToolBar(tr("Deep Learning Studio"))
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        for name, text, tip in ACTIONS:
            action = QAction(icon, tr(text), self.iface.mainWindow())
            action.setObjectName(f"dlstudio_{name}")
            action.setToolTip(tr(tip))
            action.setStatusTip(tr(tip))
            action.triggered.connect(partial(self.run_algorithm, f"{PROVIDER_ID}:{name}"))
            self.iface.addPluginToRasterMenu(self.menu_name, action)
            self.toolbar.addAction(action)
            self.actions.append(action)
        from .ui.docks import DockManager

        self.docks = DockManager(self.iface, self.menu_name)
        self.docks.add()

    def run_algorithm(self, algorithm_id: str, *_checked) -> None:
        """Open the Processing dialog of an algorithm (imported here: Processing is a plugin
        that may load after this one)."""
        import processing

        processing.execAlgorithmDialog(algorithm_id)

    def unload(self) -> None:
        """Remove everything initGui and initProcessing added."""
        if self.docks is not None:
            self.docks.remove()
            self.docks = None
        for action in self.actions:
            if self.iface is not None:
                self.iface.removePluginRasterMenu(self.menu_name, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            if self.iface is not None:
                self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            # the registry owns the provider and deletes it
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
