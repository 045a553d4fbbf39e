"""One process of the race test: make N successful transitions on a shared project file.

Prints a JSON line with the counts of successful transitions it made, by kind.
"""

import json
import random
import sys
import time

from dlstudio_qgis.core import (
    ConcurrentChangeError,
    IllegalTransitionError,
    Project,
    WorkUnitStatus,
)


def main(path: str, user: str, target: int, seed: int) -> None:
    rnd = random.Random(seed)
    project = Project.open(path, user)
    statuses = list(WorkUnitStatus)
    ok, refused, conflicts = 0, 0, 0
    deadline = time.monotonic() + 240
    while ok < target and time.monotonic() < deadline:
        units = project.work_units()
        unit = rnd.choice(units)
        kind = rnd.random()
        try:
            if kind < 0.55:
                # a manual change against the status this process saw (compare-and-set)
                new = rnd.choice([s for s in statuses if s is not unit.status])
                if project.set_work_unit_status([unit.fid], new, expected=unit.status):
                    ok += 1
            elif kind < 0.7:
                ok += project.mark_unit_complete(unit.fid)
            elif kind < 0.85:
                ok += project.open_review(unit.fid)
            else:
                ok += project.finish_review(unit.fid, rnd.choice(["reviewed", "queued"]))
        except ConcurrentChangeError:
            conflicts += 1
        except IllegalTransitionError:
            refused += 1
    print(json.dumps({"user": user, "ok": ok, "refused": refused, "conflicts": conflicts}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
