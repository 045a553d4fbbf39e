"""The collect dock's work on one selected sample: picking it on the map, deleting it,
changing its class, editing its shape (the Edit shape tool); each pushed on the undo stack.

A mixin of CollectDock (it uses the dock's session, undo stack, labels and tools).
"""

from __future__ import annotations

from qgis.core import QgsFeatureRequest, QgsGeometry, QgsPointXY, QgsRectangle

from ..core import SampleStatus
from ..core.geometry import to_wkb
from ..processing.base import GEOM_POINT, to_core
from .commands import ChangeClass, DeleteSample, EditShape
from .session import WARNING


class SampleEditsMixin:
    # --- selecting -------------------------------------------------------------------------

    def pick_at(self, point: QgsPointXY, radius: float) -> int | None:
        """Select the sample at a map point (the topmost: the last collected)."""
        self.session.layers()  # forget layers the user removed
        layer = self.session.samples_layer
        if layer is None:
            self.session.report("The training samples layer was removed; reopen the project.",
                                WARNING)  # fmt: skip
            return None
        transform = self.session._transform(True)
        box = QgsRectangle(point.x() - radius, point.y() - radius,
                           point.x() + radius, point.y() + radius)  # fmt: skip
        if not transform.isShortCircuited():
            box = transform.transformBoundingBox(box)
            point = transform.transform(point)
        is_point = layer.geometryType() == GEOM_POINT
        hit = QgsGeometry.fromRect(box) if is_point else QgsGeometry.fromPointXY(point)
        found = [f.id() for f in layer.getFeatures(QgsFeatureRequest().setFilterRect(box))
                 if f.geometry().intersects(hit)]  # fmt: skip
        self.select_sample(max(found) if found else None)
        if self.selected is None:
            self.sample_label.setText("No sample there.")
        return self.selected

    def select_sample(self, fid: int | None) -> None:
        """Select a sample (or none): the layer's selection, the label, the edit tool."""
        project = self.session.project
        found = project.samples(ids=[fid]) if project is not None and fid is not None else []
        sample = found[0] if found else None
        self.selected = None if sample is None else sample.fid
        self._highlight()
        if sample is not None:
            self.sample_label.setText(
                f"Sample {sample.fid}: {self._class_name(sample.class_value)}, "
                f"{sample.status.label}, by {sample.collected_by}."
                + (f" Review comment: {sample.review_comment}" if sample.review_comment else "")
            )
            self.session.set_current_unit(sample.work_unit)
        self._show_in_edit_tool(sample)
        self.update_state()

    def _highlight(self) -> None:
        """The selected sample as the layer's selection; not while editing its shape (the
        selection's fill would hide the imagery under it: the tool's outline shows it)."""
        layer = self.session.samples_layer
        if layer is None:
            return
        editing = self.canvas.mapTool() is self.edit_tool
        ids = [] if self.selected is None or editing else [self.selected]
        if sorted(layer.selectedFeatureIds()) != ids:
            layer.selectByIds(ids)

    def _show_in_edit_tool(self, sample=None) -> None:
        """The edit tool shows the selected sample's shape as the file holds it."""
        if self.canvas.mapTool() is not self.edit_tool:
            return
        if sample is None and self.selected is not None and self.session.project is not None:
            found = self.session.project.samples(ids=[self.selected])
            sample = found[0] if found else None
        if sample is None:
            self.edit_tool.show_sample(None, None)
            return
        geom = QgsGeometry()
        geom.fromWkb(to_wkb(sample.geometry))
        self.edit_tool.show_sample(sample.fid, geom)

    def _selection_changed_on_file(self) -> None:
        """After any change (ours, an undo, another process): forget a deleted selection,
        show the stored shape (unless a drag is under way)."""
        project, fid = self.session.project, self.selected
        if fid is not None and (project is None or not project.samples(ids=[fid])):
            self.selected = None
            self.sample_label.setText("")
            self.update_state()
        self.session.layers()  # forget layers the user removed
        self._highlight()  # reloading the layer dropped its selection
        if not self.edit_tool.dragging:
            self._show_in_edit_tool()

    # --- changing the selected sample ------------------------------------------------------

    def delete_selected(self) -> bool:
        project, fid = self.session.project, self.selected
        if project is None or fid is None:
            return False
        s = project.samples(ids=[fid])
        if not s or self.session.act(project.delete_sample, fid) is None:
            return False
        self.undo_stack.push(DeleteSample(self.session, s[0]))
        self.selected = None
        self.sample_label.setText(f"Sample {fid} deleted.")
        self._show_in_edit_tool()
        self.update_state()
        return True

    def reclass_selected(self) -> bool:
        project, fid, value = self.session.project, self.selected, self.current_class()
        if project is None or fid is None or value is None:
            return False
        old = project.samples(ids=[fid])[0]
        if old.class_value == value:
            return False
        if self.session.act(project.edit_sample, fid, class_value=value) is None:
            return False
        self.undo_stack.push(ChangeClass(self.session, fid, old.class_value, value,
                                         self._class_name(value)))  # fmt: skip
        if old.status is not SampleStatus.PENDING:
            self.session.report(f"Sample {fid} is Pending approval again.")
        return True

    def commit_shape(self, fid: int, geometry: QgsGeometry) -> bool:
        """A shape edited with the Edit shape tool (project CRS) becomes the sample's shape;
        if the core refuses, the reason is reported and the tool shows the stored shape."""
        project = self.session.project
        found = project.samples(ids=[fid]) if project is not None else []
        parts = to_core(geometry) if found else []
        if len(parts) != 1:
            if found:
                self.session.report("An edit must leave one simple shape.", WARNING)
            self._show_in_edit_tool()
            return False
        old = found[0]
        if self.session.act(project.edit_sample, fid, geometry=parts[0]) is None:
            self._show_in_edit_tool()  # the stored shape again
            return False
        new = project.samples(ids=[fid])[0]
        self.undo_stack.push(EditShape(self.session, fid, old.geometry, new.geometry))
        if old.status is not SampleStatus.PENDING:
            self.session.report(f"Sample {fid} is Pending approval again.")
        if new.work_unit != old.work_unit:
            self.session.report(f"Sample {fid} moved to work unit {new.work_unit}.")
        self.session.set_current_unit(new.work_unit)
        self.select_sample(fid)
        return True
