"""The export under cProfile (`bench/export.py --profile`): where the one-core time goes.

`profiled_export.py` wraps the pool's task before the pool forks, so the pool processes are
profiled too; this module runs it and sums the profiles up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import benchlib


def _rows(stats, total: float, key: int, top: int) -> list[dict]:
    """The `top` functions by own time (key 2) or cumulative time (key 3)."""
    items = sorted(stats.stats.items(), key=lambda kv: kv[1][key], reverse=True)[:top]
    return [
        {
            "function": _name(func),
            "calls": nc,
            "own_s": round(tt, 3),
            "cumulative_s": round(ct, 3),
            "own_pct": round(100 * tt / total, 1),
        }
        for func, (_cc, nc, tt, ct, _callers) in items
    ]


def _name(func) -> str:
    file, line, name = func
    return f"{Path(file).name}:{line}({name})" if line else name


def _callees(stats, parent: str) -> list[dict]:
    """What the function named `parent` spends its time on: its direct callees, cumulative."""
    parents = [f for f in stats.stats if f[2] == parent]
    total = sum(stats.stats[f][3] for f in parents) or 1.0
    rows = []
    for func, (_cc, _nc, _tt, _ct, callers) in stats.stats.items():
        for caller, (_c, nc, _t, ct) in callers.items():
            if caller in parents:
                rows.append((ct, nc, func))
    rows.sort(reverse=True)
    return [
        {"function": _name(f), "calls": nc, "cumulative_s": round(ct, 3),
         "pct": round(100 * ct / total, 1)}
        for ct, nc, f in rows
    ]  # fmt: skip


def profile_export(ds: benchlib.Dataset, work: Path, job_dict: dict, cpus, top: int = 20) -> dict:
    """The workers=1 export under cProfile, the pool process included: where the time goes."""
    import pstats

    work.mkdir(parents=True)
    job = work / "job.json"
    job.write_text(json.dumps(job_dict), encoding="utf-8")
    profiles = work / "profiles"
    benchlib.warm(ds.raster)
    script = Path(__file__).resolve().parent / "profiled_export.py"
    argv = [benchlib.python(), str(script), str(job), str(profiles)]
    run = benchlib.run_worker(argv, work / "stderr.log", cpus=cpus)
    if run.returncode != 0:
        raise SystemExit(f"the profiled export failed: {run.error}\n{run.stderr_tail}")
    main = pstats.Stats(str(profiles / "main.prof"))
    pool = pstats.Stats(*[str(p) for p in sorted(profiles.glob("pool-*.prof"))])
    print(f"[bench] profiles written to {profiles}", file=sys.stderr, flush=True)
    return {
        "wall_s_under_profiler": round(run.seconds, 2),
        "main_process": {
            "profiled_s": round(main.total_tt, 2),
            "by_own_time": _rows(main, main.total_tt, 2, 8),
        },
        "pool_processes": {
            "profiled_s": round(pool.total_tt, 2),
            "run_batch_breakdown": _callees(pool, "run_batch")[:12],
            "by_own_time": _rows(pool, pool.total_tt, 2, top),
        },
        "files": str(profiles),
    }
