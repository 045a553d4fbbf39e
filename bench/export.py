"""Benchmark of the training-data export (``python -m dlstudio_qgis.engine export job.json``).

    .venv/bin/python bench/export.py [--quick] [--out result.json] [--stride 256] [--profile]

On a generated 3-band uint8 GeoTIFF (10,000 x 10,000 pixels; tiled 256 x 256, DEFLATE level 1,
pixel interleaved; cached in bench/.cache/) with 5,000 random rectangles (classes 1 and 2),
it measures, with PASCAL_VOC_rectangles and TIFF chips of 256 x 256:

1. chips per second of the export, end to end as the worker command runs (a subprocess, from
   its start to its exit), with workers=1 (pinned to one CPU) and workers=0 (all cores);
2. the bare limit: reading the very windows the export wrote as chips, in the same order, with
   rasterio and nothing else (one process, the same CPU) -> ratio export / bare (target >= 0.7);
   beside it, not instead of it, the same windows read with the export's own tile reader
   (`engine/tiffread.py`, libdeflate) and nothing else (`bare_read_fast`): how much of the
   export's speed is the decoder;
3. peak memory of the worker's process tree (summed RSS and PSS, polled; each process's own
   peak, VmHWM) on that raster and on one 2x as wide and high with 4x the samples -> ratio
   large / base (target <= 1.2).

Every timed run starts with the raster in the page cache. The JSON goes to stdout (and to
``--out``); progress notes go to stderr. ``--quick`` does the same on 3,000^2 and 6,000^2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib  # noqa: E402
from export_profile import profile_export  # noqa: E402

TARGET_RATIO_ONE_CORE = 0.7
TARGET_MEMORY_RATIO = 1.2
TILE = 256
#: the worker command after the Python executable (the job file is appended)
WORKER = ["-m", "dlstudio_qgis.engine", "export"]
#: before each timed run, wait at most this long for the CPUs to be idle (--wait-quiet)
QUIET = {"limit": 60.0, "waited": 0.0}
#: where this session's exports go (set in main); nothing in it is deleted before the end,
#: because ext4 makes creating files slow for minutes after many were deleted (it skips
#: recently deleted inodes, one by one), which would slow the runs that follow
SESSION: dict = {"dir": benchlib.CACHE / "runs"}


def quiet() -> None:
    QUIET["waited"] += benchlib.wait_quiet(QUIET["limit"])


def note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- the export ----------------------------------------------------------------------------


def make_job(ds: benchlib.Dataset, output: Path, stride: int, workers: int) -> dict:
    return {
        "raster": str(ds.raster),
        "samples": str(ds.samples),
        "classes": [
            {"value": 1, "name": "class_1", "color": "#e41a1c"},
            {"value": 2, "name": "class_2", "color": "#377eb8"},
        ],
        "output": str(output),
        "metadata_format": "PASCAL_VOC_rectangles",
        "image_format": "TIFF",
        "tile_size": [TILE, TILE],
        "stride": [stride, stride],
        "workers": workers,
        "overwrite": True,
    }


def chip_paths(output: Path) -> list[Path]:
    """The image chips in the order map.txt lists them (the order the export wrote them)."""
    lines = (output / "map.txt").read_text(encoding="utf-8").splitlines()
    return [output / line.split()[0].replace("\\", "/") for line in lines if line.strip()]


def planned_windows(job: dict) -> list[tuple[int, int, int, int]]:
    """The windows the export reads, in its order, from its own planner (plan.Planner)."""
    import io

    from dlstudio_qgis.engine.export.job import ExportJob
    from dlstudio_qgis.engine.export.plan import Planner
    from dlstudio_qgis.engine.export.samples import load_samples
    from dlstudio_qgis.engine.export.source import inspect_raster, region_of
    from dlstudio_qgis.engine.protocol import Reporter

    ejob = ExportJob.from_dict(job)
    info = inspect_raster(ejob)
    region = region_of(ejob, info)
    samples = load_samples(ejob, info, region, Reporter(io.StringIO()))
    return [tuple(p.window) for p in Planner(ejob, info, samples, region).plans() if p]


def chip_windows(ds: benchlib.Dataset, output: Path, limit: int | None = None):
    """(col, row, width, height) of the chips in map.txt order, from their georeferencing,
    clipped to the raster (every `step`-th chip when `limit` is given)."""
    import rasterio

    with rasterio.open(ds.raster) as src:
        t, width, height = src.transform, src.width, src.height
    paths = chip_paths(output)
    step = max(1, len(paths) // limit) if limit else 1
    out = {}
    for i in range(0, len(paths), step):
        with rasterio.open(paths[i]) as chip:
            ct, cw, ch = chip.transform, chip.width, chip.height
        col = round((ct.c - t.c) / t.a)
        row = round((ct.f - t.f) / t.e)
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + cw, width), min(row + ch, height)
        out[i] = (c0, r0, c1 - c0, r1 - r0)
    return out, len(paths)


def written_windows(ds: benchlib.Dataset, job: dict, output: Path) -> tuple[list, dict]:
    """The windows the export read: from its planner, checked against the chips it wrote
    (up to 300 of them, spread); from the chips themselves if the planner cannot be used."""
    checked, n_chips = chip_windows(ds, output, limit=300)
    try:
        windows = planned_windows(job)
    except (ImportError, AttributeError, TypeError) as exc:  # the engine's internals moved
        note(f"the export's planner is not usable ({exc}); reading every chip's georeferencing")
        chips, _ = chip_windows(ds, output)
        return [chips[i] for i in sorted(chips)], {"source": "chips' georeferencing"}
    bad = [i for i, w in checked.items() if i >= len(windows) or windows[i] != w]
    info = {
        "source": "the export's planner (plan.Planner.plans), in its order",
        "checked_against_chips": len(checked),
        "mismatches": len(bad),
    }
    if bad or len(windows) != n_chips:
        raise SystemExit(
            f"the planner's {len(windows)} windows do not match the {n_chips} chips written "
            f"(first mismatches at chips {bad[:5]})"
        )
    return windows, info


def run_export(
    ds: benchlib.Dataset, stride: int, workers: int, cpus: set[int] | None, label: str, repeat=1
) -> tuple[dict, Path]:
    """The export as a subprocess, `repeat` times; the fastest run's figures."""
    runs = []
    for i in range(repeat):
        work = SESSION["dir"] / f"{label}-{i + 1}"
        work.mkdir(parents=True)
        output = work / "out"
        job = work / "job.json"
        job.write_text(json.dumps(make_job(ds, output, stride, workers)), encoding="utf-8")
        benchlib.warm(ds.raster)
        quiet()
        argv = [benchlib.python(), *WORKER, str(job)]
        run = benchlib.run_worker(argv, work / "stderr.log", cpus=cpus)
        if run.returncode != 0 or run.result is None:
            raise SystemExit(
                f"export {label} failed (exit {run.returncode}): {run.error}\n{run.stderr_tail}"
            )
        runs.append(run)
    all_seconds = [round(r.seconds, 2) for r in runs]
    best = min(range(repeat), key=lambda i: runs[i].seconds)
    run, work = runs[best], SESSION["dir"] / f"{label}-{best + 1}"
    chips = len(chip_paths(output))
    out = {
        "workers": workers,
        "pinned_cpus": sorted(cpus) if cpus else None,
        "chips": chips,
        "seconds": round(run.seconds, 2),
        "chips_per_s": round(chips / run.seconds, 1),
        "seconds_all_runs": all_seconds,
        "others_cpu_s": run.others_cpu_s,
        "others_cpu_s_all_runs": [r.others_cpu_s for r in runs],
        "cpu_s": run.cpu_s,
        "cpu_sys_s": run.cpu_sys_s,
        "minor_page_faults": run.minor_faults,
        "peak_tree_rss_mb": run.peak_tree_rss_mb,
        "peak_tree_processes": run.peak_tree_processes,
        "peak_tree_pss_mb": run.peak_tree_pss_mb,
        "process_peaks_mb": run.process_peaks_mb,
        "sum_process_peaks_mb": run.sum_process_peaks_mb,
    }
    keys = ("chips", "tiles", "skipped_tiles", "objects", "dropped", "workers", "seconds")
    out["result_line"] = {k: run.result[k] for k in keys if k in run.result}
    note(f"{label}: {chips} chips in {run.seconds:.1f} s ({out['chips_per_s']}/s)")
    return out, work


def _timed_reads(ds: benchlib.Dataset, windows, cpus, repeat: int, read_all) -> dict:
    """`read_all(windows)` timed `repeat` times on `cpus`, the raster warm; the fastest run."""
    saved = os.sched_getaffinity(0)
    times, others = [], []
    for _ in range(repeat):
        benchlib.warm(ds.raster)
        quiet()
        if cpus:
            os.sched_setaffinity(0, cpus)
        try:
            with benchlib.OthersCpu() as cpu:
                t0 = time.perf_counter()
                read_all(windows)
                times.append(time.perf_counter() - t0)
            others.append(cpu.others())
        finally:
            os.sched_setaffinity(0, saved)
    best = min(range(repeat), key=times.__getitem__)
    dt = times[best]
    return {
        "windows": len(windows),
        "seconds": round(dt, 3),
        "seconds_all_runs": [round(t, 3) for t in times],
        "others_cpu_s": others[best],
        "windows_per_s": round(len(windows) / dt, 1),
        "pinned_cpus": sorted(cpus) if cpus else None,
    }


def bare_read(ds: benchlib.Dataset, windows, cpus: set[int] | None, repeat=1) -> dict:
    """Read the windows with rasterio and do nothing else: the floor of an export's cost.
    A fresh dataset (and GDAL block cache) each time; the fastest of `repeat` runs."""
    import rasterio
    from rasterio.windows import Window

    def read_all(windows) -> None:
        with rasterio.Env(), rasterio.open(ds.raster) as src:
            for c, r, w, h in windows:
                src.read(window=Window(c, r, w, h))

    return _timed_reads(ds, windows, cpus, repeat, read_all)


def bare_read_fast(ds: benchlib.Dataset, windows, cpus: set[int] | None, repeat=1) -> dict:
    """The same windows read with the export's tile reader (`tiffread.FastTiffReader`, whose
    tiles libdeflate inflates) and nothing else, as the export reads them: into a fresh
    pixel-interleaved buffer each. A fresh reader (and tile cache) each time; the fastest of
    `repeat` runs. Not the bare limit (issue 3 defines that as rasterio's read): it says how
    much of the export's speed comes from the decoder."""
    import numpy as np

    from dlstudio_qgis.engine.tiffread import FastTiffReader

    bands = (1, 2, 3)
    probe, why = FastTiffReader.probe(ds.raster, bands)
    if probe is None:
        return {"available": False, "why": why}

    def read_all(windows) -> None:
        reader = FastTiffReader.open(ds.raster, bands)
        for c, r, w, h in windows:
            reader.read((c, r, w, h), np.empty((h, w, len(bands)), reader.dtype))
        reader.close()

    timed = _timed_reads(ds, windows, cpus, repeat, read_all)
    return {"available": True, "decoder": probe.decoder_name, **timed}


# --- the benchmark -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3,000^2 and 6,000^2 (a smoke run)")
    ap.add_argument("--size", type=int, help="base raster side in pixels (10,000; quick 3,000)")
    ap.add_argument("--stride", type=int, default=256, help="chip stride in pixels (256)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--memory-workers",
        choices=("1", "all"),
        default="all",
        help="the worker count of the base vs large memory comparison (all)",
    )
    ap.add_argument(
        "--repeat", type=int, help="timed runs of each kind; the fastest counts (3; quick 1)"
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        help="before each timed run, wait up to this many seconds for idle CPUs (60; quick 0)",
    )
    ap.add_argument("--no-large", action="store_true", help="skip the 2x raster (no memory ratio)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the one-core runs")
    ap.add_argument("--profile", action="store_true", help="also cProfile a workers=1 export")
    ap.add_argument(
        "--work-dir",
        type=Path,
        default=benchlib.CACHE / "runs",
        help="where the exports write (bench/.cache/runs; e.g. /dev/shm to leave the disk out)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the export outputs")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = ap.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    QUIET["limit"] = args.wait_quiet if args.wait_quiet is not None else (0 if args.quick else 60)
    SESSION["dir"] = args.work_dir.resolve() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        return run(args)
    finally:  # a failed run leaves no outputs behind either
        if not args.keep:
            benchlib.clear(SESSION["dir"])


def bytecode_as_installed() -> str:
    """Let the workers use cached bytecode, as an installed plugin does: a shell that sets
    PYTHONDONTWRITEBYTECODE makes every export compile the engine again (~70 ms a run)."""
    import compileall

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(benchlib.REPO / "dlstudio_qgis"), quiet=1)
    return "compiled once before the timed runs (as an installed plugin has it)"


def run(args) -> int:
    t_start = time.perf_counter()
    bytecode = bytecode_as_installed()
    load_before = [round(x, 2) for x in os.getloadavg()]
    busy_before = benchlib.busy_percent()
    size = args.size or (3000 if args.quick else 10000)
    cpus_all = os.sched_getaffinity(0)
    one = None if args.no_pin else {max(cpus_all)}
    phases: dict[str, float] = {}
    session = SESSION["dir"]
    create_us = {"start": benchlib.create_cost(session)}

    def phase(name: str, t0: float) -> None:
        phases[name] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    base = benchlib.dataset(size, args.seed)
    phase("dataset_base", t0)
    note(f"base raster {size}^2: {'cached' if base.cached else f'{base.generated_s} s'}")
    large = None
    if not args.no_large:
        t0 = time.perf_counter()
        large = benchlib.dataset(2 * size, args.seed)
        phase("dataset_large", t0)
        note(f"large raster {2 * size}^2: {'cached' if large.cached else f'{large.generated_s} s'}")

    t0 = time.perf_counter()
    one_core, work1 = run_export(base, args.stride, 1, one, "base_w1", args.repeat)
    phase("export_base_workers1", t0)

    t0 = time.perf_counter()
    job1 = json.loads((work1 / "job.json").read_text(encoding="utf-8"))
    windows, windows_info = written_windows(base, job1, work1 / "out")
    phase("derive_windows", t0)
    t0 = time.perf_counter()
    bare = {**bare_read(base, windows, one, args.repeat), "windows_from": windows_info}
    phase("bare_read", t0)
    note(f"bare read: {bare['windows']} windows in {bare['seconds']} s")
    t0 = time.perf_counter()
    bare_fast = bare_read_fast(base, windows, one, args.repeat)
    phase("bare_read_fast", t0)
    if bare_fast["available"]:
        note(f"bare read, fast reader: {bare_fast['windows']} windows in {bare_fast['seconds']} s")

    t0 = time.perf_counter()
    all_cores, _ = run_export(base, args.stride, 0, None, "base_wall", args.repeat)
    phase("export_base_workers_all", t0)

    memory = None
    if large is not None:
        mem_workers = 1 if args.memory_workers == "1" else 0
        t0 = time.perf_counter()
        big, _ = run_export(
            large, args.stride, mem_workers, one if mem_workers == 1 else None, "large"
        )
        phase("export_large", t0)
        ref = one_core if mem_workers == 1 else all_cores
        ratio = big["peak_tree_rss_mb"] / ref["peak_tree_rss_mb"]
        memory = {
            "workers": mem_workers,
            "base": {"size": size, "samples": base.n_samples, **_mem(ref)},
            "large": {"size": 2 * size, "samples": large.n_samples, **_mem(big)},
            "large_export": {k: big[k] for k in ("chips", "seconds", "chips_per_s", "cpu_s")},
            "ratio_peak_tree_rss": round(ratio, 3),
            "ratio_peak_tree_pss": round(big["peak_tree_pss_mb"] / ref["peak_tree_pss_mb"], 3),
            "ratio_largest_process": round(
                max(big["process_peaks_mb"]) / max(ref["process_peaks_mb"]), 3
            ),
            "target": TARGET_MEMORY_RATIO,
            "meets_target": ratio <= TARGET_MEMORY_RATIO,
        }

    profile = None
    if args.profile:
        t0 = time.perf_counter()
        work = SESSION["dir"] / "profile"
        profile = profile_export(base, work, make_job(base, work / "out", args.stride, 1), one)
        phase("profile", t0)

    create_us["end"] = benchlib.create_cost(session)
    if profile is not None:  # keep the (small) profiles after the outputs are removed
        last = benchlib.CACHE / "last_profile"
        benchlib.clear(last)
        shutil.copytree(Path(profile["files"]), last)
        profile["files"] = str(last)
    t0 = time.perf_counter()
    if not args.keep:
        benchlib.clear(session)
    phase("remove_outputs", t0)

    ratio = one_core["chips_per_s"] / bare["windows_per_s"]
    if bare_fast["available"]:
        bare_fast["ratio_export_to_this_one_core"] = round(
            one_core["chips_per_s"] / bare_fast["windows_per_s"], 3
        )
        bare_fast["speedup_over_bare_read"] = round(
            bare_fast["windows_per_s"] / bare["windows_per_s"], 2
        )
    report = {
        "benchmark": "export",
        "mode": "quick" if args.quick else "full",
        "machine": {
            **benchlib.machine(),
            "loadavg_at_start": load_before,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "cpu_busy_pct_before": busy_before,
            **(
                {"warning": "other processes used the CPU at the start: timings are unreliable"}
                if busy_before > 10
                else {}
            ),
        },
        "settings": {
            "raster": {
                "size": [size, size],
                "bands": 3,
                "dtype": "uint8",
                "tiling": [benchlib.BLOCK, benchlib.BLOCK],
                "compression": "DEFLATE level 1, no predictor, pixel interleaved",
                "bytes": base.raster_bytes,
            },
            "generation_s": {
                "base": base.generated_s,
                "large": large.generated_s if large else None,
                "from_cache": base.cached and (large is None or large.cached),
            },
            "samples": base.n_samples,
            "sample_shapes": f"axis-aligned rectangles, {benchlib.MIN_SIDE}-{benchlib.MAX_SIDE} "
            "px a side, classes 1 and 2, seeded",
            "metadata_format": "PASCAL_VOC_rectangles",
            "image_format": "TIFF",
            "tile_size": [TILE, TILE],
            "stride": [args.stride, args.stride],
            "page_cache": "warm (the raster is read once before every timed run)",
            "output_folder": str(args.work_dir),
            "file_create_us": create_us,
            "bytecode": bytecode,
            "timing": "export: subprocess start to exit; bare: the read loop only; the "
            f"fastest of {args.repeat} run(s); others_cpu_s: CPU other processes used meanwhile",
        },
        "throughput": {
            "export_workers_1": one_core,
            "export_workers_all": {**all_cores, "cores": len(cpus_all)},
            "bare_read": bare,
            "bare_read_fast": bare_fast,
            "ratio_export_to_bare_one_core": round(ratio, 3),
            "target": TARGET_RATIO_ONE_CORE,
            "meets_target": ratio >= TARGET_RATIO_ONE_CORE,
            "speedup_all_cores": round(all_cores["chips_per_s"] / one_core["chips_per_s"], 2),
        },
        "memory": memory,
        "phases_s": {
            **phases,
            "waiting_for_idle_cpus": round(QUIET["waited"], 1),
            "total": round(time.perf_counter() - t_start, 2),
        },
    }
    if bare["windows"] != one_core["chips"]:
        report["throughput"]["warning"] = "bare windows differ from the chips written"
    if profile is not None:
        report["profile"] = profile
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


def _mem(run: dict) -> dict:
    keys = ("peak_tree_rss_mb", "peak_tree_pss_mb", "peak_tree_processes", "process_peaks_mb")
    return {k: run[k] for k in keys}


if __name__ == "__main__":
    sys.exit(main())
