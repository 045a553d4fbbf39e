"""Runs INSIDE the QGIS desktop (``qgis --code desktop_probe.py``), started by
test_plugin_desktop.py: checks the loaded plugin, opens one of its dialogs, takes a screenshot,
unloads the plugin, checks nothing is left, writes a JSON result and quits QGIS.

Paths come from the environment: DLS_UI_RESULT (the JSON), DLS_UI_SHOT (main window PNG),
DLS_UI_DIALOG_SHOT (the algorithm dialog PNG).
"""

import json
import os
import traceback

import qgis.utils
from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDialog, QToolBar

try:
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

PLUGIN = "dlstudio_qgis"
RESULT = os.environ["DLS_UI_RESULT"]
SHOT = os.environ["DLS_UI_SHOT"]
DIALOG_SHOT = os.environ["DLS_UI_DIALOG_SHOT"]
iface = qgis.utils.iface
state = {"result": {}, "tries": 0}


def our_actions():
    window = iface.mainWindow()
    return sorted(
        a.objectName()
        for a in window.findChildren(QAction)
        if a.objectName().startswith("dlstudio_")
    )


def raster_menu():
    return [a.text() for a in iface.rasterMenu().actions() if a.text()]


def toolbar():
    bar = iface.mainWindow().findChild(QToolBar, "DeepLearningStudioToolbar")
    return None if bar is None else {"visible": bar.isVisible(), "actions": len(bar.actions())}


def snapshot():
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("dlstudio")
    return {
        "loaded": PLUGIN in qgis.utils.plugins,
        "active": PLUGIN in qgis.utils.active_plugins,
        "provider": provider is not None,
        "provider_name": provider.name() if provider else None,
        "algorithms": sorted(a.id() for a in provider.algorithms()) if provider else [],
        "actions": our_actions(),
        "raster_menu": raster_menu(),
        "toolbar": toolbar(),
    }


def write_and_quit():
    with open(RESULT, "w", encoding="utf-8") as f:
        json.dump(state["result"], f, indent=1)
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(200, iface.actionExit().trigger)
    QTimer.singleShot(8000, lambda: QgsApplication.exit(0))  # if something held the exit
    QTimer.singleShot(15000, lambda: os._exit(3))


def open_dialog():
    """The dialog the action opened (the algorithm dialog is not always application-modal)."""
    widget = QApplication.activeModalWidget()
    if widget is not None:
        return widget
    dialogs = [
        w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()
    ]
    return dialogs[-1] if dialogs else None


def close_dialog():
    """Record and close the algorithm dialog the action opened."""
    widget = open_dialog()
    if widget is None and state["tries"] < 40:
        state["tries"] += 1
        QTimer.singleShot(250, close_dialog)
        return
    if widget is not None:
        state["result"]["dialog"] = {"title": widget.windowTitle(), "class": type(widget).__name__}
        widget.grab().save(DIALOG_SHOT)
        widget.reject()


def main():
    res = state["result"]
    try:
        res["before"] = snapshot()
        res["window"] = [iface.mainWindow().width(), iface.mainWindow().height()]
        iface.mainWindow().grab().save(SHOT)
        action = iface.mainWindow().findChild(QAction, "dlstudio_createproject")
        if action is not None:
            QTimer.singleShot(500, close_dialog)
            action.trigger()  # blocks in the dialog's exec until close_dialog rejects it
        res["unload_ok"] = bool(qgis.utils.unloadPlugin(PLUGIN))
    except Exception:
        res["error"] = traceback.format_exc()
        write_and_quit()
        return
    # back in the event loop first, so the deleteLater()s of unload() run
    QTimer.singleShot(500, after_unload)


def after_unload():
    try:
        state["result"]["after"] = snapshot()
    except Exception:
        state["result"]["error"] = traceback.format_exc()
    write_and_quit()


# let the main window show and paint first
QTimer.singleShot(3000, main)
