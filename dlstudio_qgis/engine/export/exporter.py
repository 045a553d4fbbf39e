"""The export from start to end: check everything, plan, write on the pool, move into place.

Nothing is written before every input check has passed; everything is written into a hidden
staging folder that becomes the output folder only when the export is complete.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..protocol import EngineError, InputError
from .chips import IMAGE_EXT, label_raster_ext, open_fast_reader
from .job import ExportJob
from .labels import LabelContext, label_path
from .metadata import EMD_NAME, write_metadata
from .plan import Planner
from .pool import WorkerPool, default_workers
from .samples import load_samples, release_memory
from .source import inspect_raster, region_of
from .staging import Staging, contains, signals_deferred
from .worker import Batch, WorkerConfig

MAX_BATCH_CHIPS = 32


def _check_output_safe(job: ExportJob) -> None:
    out = Path(job.output)
    inputs = {"raster": job.raster, "samples": job.samples}
    if isinstance(job.project, dict) and job.project.get("path"):
        inputs["project"] = str(job.project["path"])
    for key, path in inputs.items():
        if contains(out, path):
            raise InputError(
                f"The output folder '{out}' holds the input {key} '{path}'; choose another "
                "output folder (an export with overwrite replaces its output folder)."
            )


def _batches(planner: Planner, per_batch: int, map_file, ctx: LabelContext) -> Iterator[Batch]:
    tiles, covered, chips, seq = [], 0, 0, 0
    for plan in planner.plans():
        covered += 1
        if plan is not None:
            tiles.append(plan)
            chips += len(plan.chips)
            for chip in plan.chips:
                map_file.write(f"images/{chip.name}.{ctx.image_ext} {label_path(ctx, chip.name)}\n")
        if chips >= per_batch:
            yield Batch(seq, tiles, covered, ctx)
            tiles, covered, chips, seq = [], 0, 0, seq + 1
    if covered:
        yield Batch(seq, tiles, covered, ctx)


def _write(job, info, planner, candidates, per_batch, pool, reporter, started) -> Path:
    """Write everything into the staging folder, then move it into place; its final path."""
    from .stats import combine

    staging = Staging(job.output, job.overwrite)
    root = staging.create()
    try:
        (root / "images").mkdir()
        (root / "labels").mkdir()
        ctx = LabelContext(
            root=root, fmt=job.metadata_format, width=job.tile_size[0],
            height=job.tile_size[1], depth=len(info.bands),
            image_ext=IMAGE_EXT[job.image_format],
            raster_ext=label_raster_ext(job.image_format),
        )  # fmt: skip
        state = {"done": 0, "chips": 0, "moments": {}, "pixels": None}

        def on_result(result, covered: int) -> None:
            state["done"] += covered
            state["chips"] += result.chips
            if result.moments is not None:
                state["moments"][result.seq] = result.moments
            if result.pixels is not None:
                p = state["pixels"]
                state["pixels"] = result.pixels if p is None else p + result.pixels
            reporter.progress(95.0 * state["done"] / max(1, candidates))

        with open(root / "map.txt", "w", encoding="utf-8") as map_file:
            try:
                pool.run(_batches(planner, per_batch, map_file, ctx), on_result)
            except OSError as exc:
                raise EngineError(f"Writing the export failed: {exc}", kind="io") from exc
        tally = planner.tally
        if tally.chips == 0:
            raise InputError(
                f"No chip holds an object: each of the {tally.dropped} object parts met was cut "
                f"by the tile edges with less than MIN_OVERLAP ({job.min_overlap:g}) inside. "
                "Lower MIN_OVERLAP or use larger tiles."
            )
        # merged in batch order: the same bits whatever the completion order
        moments = combine(state["moments"][seq] for seq in sorted(state["moments"]))
        skipped = planner.grid_tiles - tally.tiles
        write_metadata(
            root, job, info, tally, moments, state["pixels"], skipped,
            time.monotonic() - started,
        )  # fmt: skip
        return staging.commit()
    except BaseException:
        with signals_deferred():  # a second SIGTERM must not interrupt the clean-up
            pool.terminate()
            staging.discard()
        raise


def export(job: ExportJob, reporter) -> dict:
    started = time.monotonic()
    job.check_output()
    _check_output_safe(job)
    info = inspect_raster(job)
    region = region_of(job, info)
    workers = max(1, job.workers or default_workers())
    fast, reading = open_fast_reader(info.path, info.bands, info.dtype)
    if fast is not None:
        fast.close()  # each worker opens its own, after the fork
    config = WorkerConfig(info=info, parent_pid=os.getpid(), fast_tiff=fast is not None)
    # the pool forks before the samples are read: its processes do not carry them
    with WorkerPool(config, workers) as pool:
        samples = load_samples(job, info, region, reporter)
        release_memory()  # what reading them left: the main process stays the size of its data
        planner = Planner(job, info, samples, region)
        candidates = planner.candidates()
        per_batch = max(1, min(MAX_BATCH_CHIPS, math.ceil(
            candidates * len(planner.angles) / (workers * 8))))  # fmt: skip
        reporter.info(
            f"Exporting {job.metadata_format} chips of {job.tile_size[0]} x {job.tile_size[1]} "
            f"pixels from {info.path} ({info.width} x {info.height}, bands "
            f"{', '.join(map(str, info.bands))}, {info.dtype}): {len(samples)} samples, "
            f"{planner.grid_tiles} {'samples in the region' if planner.labeled else 'tiles'}, "
            f"{candidates} to look at, {len(planner.angles)} chip(s) each, {workers} worker(s); "
            f"{reading}."
        )
        reporter.progress(0)
        final = _write(job, info, planner, candidates, per_batch, pool, reporter, started)
    tally = planner.tally
    skipped = planner.grid_tiles - tally.tiles
    reporter.progress(100)
    seconds = round(time.monotonic() - started, 2)
    objects = {str(c.value): tally.objects.get(c.value, 0) for c in job.classes}
    reporter.info(
        f"Wrote {tally.chips} chips ({tally.tiles} tiles, {sum(objects.values())} objects, "
        f"{tally.dropped} dropped by min_overlap, {skipped} tiles skipped) in {seconds} s "
        f"to {final}."
    )
    return {
        "output": str(final),
        "chips": tally.chips,
        "tiles": tally.tiles,
        "objects": sum(objects.values()),
        "dropped": tally.dropped,
        "objects_per_class": objects,
        "skipped_tiles": skipped,
        "seconds": seconds,
        "chips_per_second": round(tally.chips / seconds, 1) if seconds > 0 else None,
        "metadata_format": job.metadata_format,
        "image_format": job.image_format,
        "emd": str(final / EMD_NAME),
        "workers": workers,
    }
