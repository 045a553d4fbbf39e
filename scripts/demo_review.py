#!/usr/bin/env python3
"""The demo reviewer's eyes: which pending samples are right, which are wrong.

    python scripts/demo_review.py PROJECT.gpkg BUILDINGS.geojson approve|reject|empty-units

Prints the ids of the samples Pending approval that the reviewer approves (a box that matches
a building of the scene's ground truth, IoU >= 0.5) or rejects (any other), as an id list for
dlstudio:reviewsamples (``1-40,42``), or with ``empty-units`` the work units Pending review
that hold no sample (nothing to review, so the reviewer opens and finishes them by hand);
prints nothing when there are none. It only reads the
project (through the Qt-free core), so any Python 3.11 runs it; the review itself is done by
``qgis_process run dlstudio:reviewsamples``, as the reviewer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlstudio_qgis.core import Project  # noqa: E402


def iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def bounds(ring: list) -> tuple:
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def id_list(ids: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3,5'."""
    out, ids = [], sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[2] not in ("approve", "reject", "empty-units"):
        print(__doc__, file=sys.stderr)
        return 2
    project = Project.open(argv[0], user="demo-reader")
    if argv[2] == "empty-units":
        units = project.work_units(status="pending_review")
        print(id_list([u.fid for u in units if not project.samples(work_unit=u.fid)]))
        return 0
    truth = [
        bounds(f["geometry"]["coordinates"][0])
        for f in json.loads(Path(argv[1]).read_text())["features"]
    ]
    approve, reject = [], []
    for sample in project.samples(status="pending"):
        b = sample.geometry.bounds()
        good = any(iou(b, t) >= 0.5 for t in truth)
        (approve if good else reject).append(sample.fid)
    print(id_list(approve if argv[2] == "approve" else reject))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
