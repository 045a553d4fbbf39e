"""Run the export as the worker command does, under cProfile in every process.

    .venv/bin/python bench/profiled_export.py job.json PROFILE_DIR

Writes PROFILE_DIR/main.prof (the main process: samples, plan, labels order, waiting) and
PROFILE_DIR/pool-<pid>.prof (each pool process: reading, writing chips and labels). The pool's
task function is wrapped before the pool forks, so the workers run the profiled one.
`bench/export.py --profile` runs this and summarises the profiles.
"""

from __future__ import annotations

import cProfile
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    job, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)

    from dlstudio_qgis.engine.cli import main as cli_main
    from dlstudio_qgis.engine.export import worker

    original = worker.run_batch
    state: dict = {}

    def run_batch(batch):
        prof = state.get("prof")
        if prof is None:
            prof = state["prof"] = cProfile.Profile()
        prof.enable()
        try:
            return original(batch)
        finally:
            prof.disable()
            prof.dump_stats(folder / f"pool-{os.getpid()}.prof")

    # pickled by reference: the name must lead to this wrapper (in the forked pool too)
    run_batch.__module__, run_batch.__qualname__ = original.__module__, original.__qualname__
    worker.run_batch = run_batch

    prof = cProfile.Profile()
    prof.enable()
    try:
        return cli_main(["export", job])
    finally:
        prof.disable()
        prof.dump_stats(folder / "main.prof")


if __name__ == "__main__":
    sys.exit(main())
