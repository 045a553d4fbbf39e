"""Undoable sample edits: each is a core call and its reverse, pushed on the collect dock's
QUndoStack once the first call has succeeded.

Undoing an added sample deletes it; undoing a deletion restores the same sample (its id,
class, status and review: `Project.restore_sample`); undoing a class change sets the old class
back; undoing a shape edit sets the old shape back. An edit of a reviewed sample makes it
Pending approval, and so does its undo (the core audits every edit). If the core refuses an
undo or redo (someone reviewed the unit meanwhile, say), the message says why and the command
is dropped from the stack.
"""

from __future__ import annotations

try:  # Qt6 (QGIS 4) has the undo framework in QtGui; Qt5 in QtWidgets
    from qgis.PyQt.QtGui import QUndoCommand
except ImportError:  # pragma: no cover - depends on the Qt version
    from qgis.PyQt.QtWidgets import QUndoCommand

from ..core import Geometry
from ..core.model import Sample
from .session import ProjectSession


class _SampleCommand(QUndoCommand):
    def __init__(self, session: ProjectSession, text: str) -> None:
        super().__init__(text)
        self.session = session
        self._done_once = True  # the first redo (from push) was done before pushing

    def redo(self) -> None:
        if self._done_once:
            self._done_once = False
            return
        self._run(self.do)

    def undo(self) -> None:
        self._run(self.undo_it)

    def _run(self, fn) -> None:
        if self.session.project is None or self.session.act(fn) is None:
            self.setObsolete(True)

    def do(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def undo_it(self):  # pragma: no cover - abstract
        raise NotImplementedError


class AddSample(_SampleCommand):
    def __init__(self, session, fid: int, geometry: Geometry, class_value: int, name: str):
        super().__init__(session, f"Add {name} sample")
        self.fid, self.geometry, self.class_value = fid, geometry, class_value

    def do(self):
        self.fid = self.session.project.add_sample(self.geometry, self.class_value)
        return self.fid

    def undo_it(self):
        self.session.project.delete_sample(self.fid)
        return True


class DeleteSample(_SampleCommand):
    def __init__(self, session, sample: Sample):
        super().__init__(session, f"Delete sample {sample.fid}")
        self.sample = sample  # as it was before the deletion

    def do(self):
        self.session.project.delete_sample(self.sample.fid)
        return True

    def undo_it(self):
        return self.session.project.restore_sample(self.sample)


class _EditSample(_SampleCommand):
    """An `edit_sample` of one field (`KEY`): redo sets `new`, undo sets `old` back."""

    KEY = ""

    def __init__(self, session, fid: int, old, new, text: str):
        super().__init__(session, text)
        self.fid, self.old, self.new = fid, old, new

    def do(self):
        self.session.project.edit_sample(self.fid, **{self.KEY: self.new})
        return True

    def undo_it(self):
        self.session.project.edit_sample(self.fid, **{self.KEY: self.old})
        return True


class ChangeClass(_EditSample):
    KEY = "class_value"

    def __init__(self, session, fid: int, old: int, new: int, name: str):
        super().__init__(session, fid, old, new, f"Make sample {fid} {name}")


class EditShape(_EditSample):
    KEY = "geometry"

    def __init__(self, session, fid: int, old: Geometry, new: Geometry):
        super().__init__(session, fid, old, new, f"Edit the shape of sample {fid}")
