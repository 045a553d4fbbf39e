"""Several processes transition one project file at once: nothing is lost or illegal."""

import json
import os
import subprocess
import sys
from pathlib import Path

from dlstudio_qgis.core import WorkUnitStatus

from .conftest import as_user

PROCESSES = 4
TRANSITIONS_EACH = 200
STATUS_ACTIONS = {"set_status", "mark_complete", "open_review", "finish_review", "send_back"}


def test_concurrent_transitions_lose_nothing(project):
    project.create_grid_work_units(50)  # 16 units: enough contention, some spread
    for i in range(PROCESSES):
        project.add_member(f"analyst{i}", "analyst")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    worker = Path(__file__).with_name("race_worker.py")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                str(project.path),
                f"analyst{i}",
                str(TRANSITIONS_EACH),
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in range(PROCESSES)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] >= TRANSITIONS_EACH for r in results), results

    history = [h for h in project.history("work_unit") if h.action in STATUS_ACTIONS]
    # every successful transition wrote exactly one history row, and nothing else did
    assert len(history) == sum(r["ok"] for r in results)
    for r in results:
        mine = [h for h in history if h.user == r["user"]]
        assert len(mine) == r["ok"]
    # replaying each unit's history from Queued reaches its current status, with no gaps
    units = {u.fid: u for u in as_user(project, "olivia").work_units()}
    for fid, unit in units.items():
        current = WorkUnitStatus.QUEUED.value
        for h in project.history("work_unit", fid):
            if h.action in STATUS_ACTIONS:
                assert h.from_status == current, (fid, h)
                current = h.to_status
        assert unit.status.value == current
    counts = project.progress()["work_units"]
    assert sum(counts["by_status"].values()) == counts["total"] == len(units) == 16
