"""The docks in the QGIS window: one session, three tabbed panels (project and work units,
collect, review), their show/hide actions in the plugin's menu."""

from __future__ import annotations

import contextlib

from qgis.PyQt.QtCore import Qt

from .collectdock import CollectDock
from .projectdock import ProjectDock
from .reviewdock import ReviewDock
from .session import ProjectSession

RIGHT = Qt.DockWidgetArea.RightDockWidgetArea


class DockManager:
    def __init__(self, iface, menu_name: str) -> None:
        self.iface = iface
        self.menu_name = menu_name
        self.session = ProjectSession(iface.mapCanvas(), iface=iface)
        window = iface.mainWindow()
        self.project_dock = ProjectDock(self.session, window)
        self.collect_dock = CollectDock(self.session, window)
        self.review_dock = ReviewDock(self.session, window)
        self.docks = [self.project_dock, self.collect_dock, self.review_dock]

    def add(self) -> None:
        for dock in self.docks:
            self.iface.addDockWidget(RIGHT, dock)
        self.tabify()
        # at start-up QGIS restores its window layout after loading plugins: tabify again, and
        # reopen the last project once QGIS has loaded its own (a plugin enabled later: now)
        if self.iface.mainWindow().isVisible():
            self.project_dock.reopen_last()
        else:
            self.iface.initializationCompleted.connect(self.tabify)
            self.iface.initializationCompleted.connect(self.project_dock.reopen_last)
        for dock in self.docks:
            action = dock.toggleViewAction()
            action.setObjectName(f"{dock.objectName()}Toggle")
            self.iface.addPluginToRasterMenu(self.menu_name, action)

    def tabify(self) -> None:
        """The three docks as tabs of one panel, the project dock in front."""
        if not self.docks:
            return
        window = self.iface.mainWindow()
        window.tabifyDockWidget(self.project_dock, self.collect_dock)
        window.tabifyDockWidget(self.collect_dock, self.review_dock)
        self.project_dock.raise_()

    def remove(self) -> None:
        for slot in (self.tabify, self.project_dock.reopen_last):
            with contextlib.suppress(TypeError):  # not connected
                self.iface.initializationCompleted.disconnect(slot)
        self.session._timer.stop()
        self.collect_dock.cleanup()
        self.review_dock.cleanup()
        for dock in self.docks:
            self.iface.removePluginRasterMenu(self.menu_name, dock.toggleViewAction())
            self.iface.removeDockWidget(dock)
            dock.deleteLater()
        self.docks = []
