"""Shared helpers for the benchmarks in ``bench/``: the machine, a cached synthetic dataset,
running an engine worker command as a subprocess while measuring its time, CPU and memory.

Needs the worker's packages (numpy, rasterio) and psutil; never imports qgis.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"

#: bump when the generated data changes, so that cached files are rebuilt
DATA_VERSION = 1
CRS = "EPSG:32611"
ORIGIN = (666000.0, 4005000.0)  # top-left corner, metres (as synth-scene)
PIXEL = 0.3  # metres
BLOCK = 256
#: samples per pixel: 5,000 rectangles on 10,000 x 10,000 pixels
SAMPLE_DENSITY = 5000 / 1e8
MIN_SIDE, MAX_SIDE = 8, 64  # rectangle sides, pixels


# --- the machine ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    import numpy
    import psutil
    import rasterio
    import shapely

    mem = psutil.virtual_memory().total
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "shapely": shapely.__version__,
        "psutil": psutil.__version__,
    }


def busy_percent(seconds: float = 2.0) -> float:
    """How busy the CPUs are (percent of all cores) over `seconds`: others' load, before a run."""
    import psutil

    return round(psutil.cpu_percent(interval=seconds), 1)


def wait_quiet(limit: float, threshold: float = 5.0) -> float:
    """Wait (at most `limit` seconds) until the CPUs are idle, so that a timed run is not
    sharing them with another job; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and busy_percent(1.0) > threshold:
        pass
    return round(time.monotonic() - t0, 1)


class OthersCpu:
    """CPU seconds that processes other than `own` (this process and a child tree whose CPU
    time is given at the end) used meanwhile: a run's contamination by other jobs."""

    def __enter__(self) -> OthersCpu:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._sys0, self._me0 = self._busy(), sum(self._me.cpu_times()[:2])
        return self

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    def __exit__(self, *exc) -> None:
        self.system = self._busy() - self._sys0
        self.me = sum(self._me.cpu_times()[:2]) - self._me0

    def others(self, child_cpu: float = 0.0) -> float:
        return round(max(0.0, self.system - self.me - child_cpu), 2)


# --- the dataset ---------------------------------------------------------------------------


@dataclass
class Dataset:
    raster: Path
    samples: Path
    size: int
    n_samples: int
    raster_bytes: int
    generated_s: float | None  # how long making it took (when it was made; None if unknown)
    cached: bool


def _content(rows: slice, cols: slice, seed: int, band_phase):
    """A smooth, image-like pattern with some noise (so that DEFLATE has real work to do)."""
    import numpy as np

    y = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
    x = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :]
    rng = np.random.default_rng([seed, rows.start, cols.start])
    noise = rng.integers(0, 16, size=(3, y.shape[0], x.shape[1]), dtype=np.uint8)
    out = np.empty((3, y.shape[0], x.shape[1]), dtype=np.uint8)
    for b, (fx, fy, ph) in enumerate(band_phase):
        v = 120.0 + 50.0 * np.sin(x * fx + ph) * np.cos(y * fy) + 30.0 * np.sin((x + y) * fx / 7)
        out[b] = v.astype(np.uint8)
    out += noise
    return out


def write_raster(path: Path, size: int, seed: int) -> None:
    """A size x size x 3 uint8 GeoTIFF, tiled 256 x 256, DEFLATE (level 1), pixel interleaved,
    written window by window (strips of 1,024 rows), so memory stays bounded."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL, PIXEL),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "zlevel": 1,
        "interleave": "pixel",
        "photometric": "rgb",
        "num_threads": "all_cpus",
        "bigtiff": "if_safer",
    }
    phases = [(0.011, 0.007, 0.0), (0.013, 0.005, 1.0), (0.009, 0.011, 2.0)]
    tmp = path.with_name(f".{path.name}.part")
    strip = 4 * BLOCK
    with rasterio.open(tmp, "w", **profile) as ds:
        for r0 in range(0, size, strip):
            r1 = min(size, r0 + strip)
            data = _content(slice(r0, r1), slice(0, size), seed, phases)
            ds.write(data, window=Window(0, r0, size, r1 - r0))
    os.replace(tmp, path)


def write_samples(path: Path, size: int, seed: int) -> int:
    """Random (seeded) axis-aligned rectangles, class 1 or 2, spread over the raster; GeoJSON in
    the raster's CRS with an integer `class_value`. Returns how many."""
    import numpy as np

    n = max(1, round(SAMPLE_DENSITY * size * size))
    rng = np.random.default_rng([seed, size, 7])
    w = rng.uniform(MIN_SIDE, MAX_SIDE, n)
    h = rng.uniform(MIN_SIDE, MAX_SIDE, n)
    c0 = rng.uniform(0, size - w)
    r0 = rng.uniform(0, size - h)
    cls = rng.integers(1, 3, n)
    ox, oy = ORIGIN
    feats = []
    for i in range(n):
        x0, x1 = ox + c0[i] * PIXEL, ox + (c0[i] + w[i]) * PIXEL
        y1, y0 = oy - r0[i] * PIXEL, oy - (r0[i] + h[i]) * PIXEL
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        feats.append(
            {
                "type": "Feature",
                "id": i + 1,
                "properties": {"id": i + 1, "class_value": int(cls[i])},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[round(x, 3), round(y, 3)] for x, y in ring]],
                },
            }
        )
    epsg = CRS.split(":")[1]
    fc = {
        "type": "FeatureCollection",
        "name": "bench_samples",
        "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
        "features": feats,
    }
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(fc, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return n


def dataset(size: int, seed: int = 0, cache: Path = CACHE) -> Dataset:
    """The raster and samples for `size`, generated once and then taken from the cache."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"raster_{size}_s{seed}_v{DATA_VERSION}"
    raster, samples, meta = (cache / f"{stem}{ext}" for ext in (".tif", ".geojson", ".json"))
    if raster.exists() and samples.exists() and meta.exists():
        info = json.loads(meta.read_text())
        gen = info.get("generated_s")
        return Dataset(raster, samples, size, info["n_samples"], raster.stat().st_size, gen, True)
    t0 = time.perf_counter()
    write_raster(raster, size, seed)
    n = write_samples(samples, size, seed)
    dt = time.perf_counter() - t0
    info = {"size": size, "seed": seed, "n_samples": n, "generated_s": round(dt, 2)}
    meta.write_text(json.dumps(info) + "\n")
    return Dataset(raster, samples, size, n, raster.stat().st_size, round(dt, 2), False)


def warm(path: Path) -> None:
    """Read a file once so that the page cache holds it (every timed run starts warm)."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


# --- running a worker ----------------------------------------------------------------------


def _hwm(pid: int) -> int:
    """VmHWM of a process in bytes: its peak RSS since its last exec (exact, no sampling)."""
    with open(f"/proc/{pid}/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages divided among the processes sharing them)."""
    with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
        for line in fh:
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    return 0


class TreeRss:
    """Polls a process and its descendants (a thread): the peak of their summed RSS, and the
    last VmHWM (own peak RSS) read of every process.

    The child list (and the summed PSS) is refreshed less often than the RSS is read, to keep
    the poller light on a small machine. Forked children share pages, so a sum of RSS over
    processes overcounts; the PSS sum does not.
    (getrusage/wait4 ru_maxrss cannot be used: Linux carries the parent's RSS across fork
    and exec into the child's ru_maxrss.)
    """

    def __init__(self, pid: int, interval: float = 0.02, refresh: float = 0.2) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval, self.refresh = interval, refresh
        self.peak = 0
        self.peak_processes = 0
        self.hwm: dict[int, int] = {}  # pid -> VmHWM bytes
        self.peak_pss = 0  # the peak of the summed PSS, read at each child-list refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ps = self._psutil
        procs = [self.root]
        last = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last >= self.refresh:
                with contextlib.suppress(ps.Error):
                    procs = [self.root, *self.root.children(recursive=True)]
                last = now
                pss = 0
                for p in procs:
                    with contextlib.suppress(OSError):
                        pss += _pss(p.pid)
                self.peak_pss = max(self.peak_pss, pss)
            total = 0
            for p in procs:
                with contextlib.suppress(ps.Error, OSError):
                    total += p.memory_info().rss
                    self.hwm[p.pid] = max(self.hwm.get(p.pid, 0), _hwm(p.pid))  # 0 once a zombie
            if total > self.peak:
                self.peak, self.peak_processes = total, len(procs)
            self._stop.wait(self.interval)


@dataclass
class Run:
    seconds: float
    returncode: int
    result: dict | None
    error: dict | None
    peak_tree_rss_mb: float  # the peak of the summed RSS (polled every 20 ms)
    peak_tree_processes: int
    peak_tree_pss_mb: float  # the peak of the summed PSS (read every 0.2 s)
    process_peaks_mb: list[float]  # VmHWM of every process of the tree, main first
    cpu_s: float  # user + system of the tree
    cpu_sys_s: float  # system (kernel) part of cpu_s
    minor_faults: int  # page faults of the tree (fresh memory being mapped)
    others_cpu_s: float  # CPU seconds other processes used meanwhile (contention)
    messages: int
    stderr_tail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def max_process_rss_mb(self) -> float:
        return max(self.process_peaks_mb, default=0.0)

    @property
    def sum_process_peaks_mb(self) -> float:
        """An upper bound of the tree's peak (every process at its own peak at once)."""
        return round(sum(self.process_peaks_mb), 1)


def run_worker(argv: list[str], log: Path, cpus: set[int] | None = None, env=None) -> Run:
    """Run a worker command (JSON lines on stdout); time it end to end, from start to exit.

    With `cpus`, the process is pinned to them as soon as it exists (before it imports
    anything or starts a pool, whose processes inherit the affinity)."""
    from dlstudio_qgis.engine.protocol import parse_line

    messages: list[dict] = []
    with open(log, "wb") as err, OthersCpu() as others:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=err, env=env)
        if cpus:
            os.sched_setaffinity(proc.pid, cpus)

        def read():
            for line in proc.stdout:
                msg = parse_line(line)
                if msg is not None:
                    messages.append(msg)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        with TreeRss(proc.pid) as rss:
            _, status, usage = os.wait4(proc.pid, 0)
            dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join()
        proc.stdout.close()
    result = next((m for m in messages if m["type"] == "result"), None)
    error = next((m for m in messages if m["type"] == "error"), None)
    tail = "" if proc.returncode == 0 else log.read_text(errors="replace")[-2000:]
    peaks = [rss.hwm[pid] for pid in rss.hwm]  # insertion order: the main process first
    return Run(
        seconds=dt,
        returncode=proc.returncode,
        result=result,
        error=error,
        peak_tree_rss_mb=round(rss.peak / 2**20, 1),
        peak_tree_processes=rss.peak_processes,
        peak_tree_pss_mb=round(rss.peak_pss / 2**20, 1),
        process_peaks_mb=[round(p / 2**20, 1) for p in peaks],
        cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        cpu_sys_s=round(usage.ru_stime, 2),
        minor_faults=usage.ru_minflt,
        others_cpu_s=others.others(usage.ru_utime + usage.ru_stime),
        messages=len(messages),
        stderr_tail=tail,
    )


def create_cost(folder: Path, n: int = 300) -> float:
    """Microseconds to create (and write 1 KiB to) one file in a new folder under `folder`.

    The files are kept: deleting them would slow the next creations (see export.py)."""
    probe = folder / f"probe-{time.time_ns()}"
    probe.mkdir(parents=True)
    data = b"x" * 1024
    t0 = time.perf_counter()
    for i in range(n):
        with open(probe / f"{i:06d}", "wb") as fh:
            fh.write(data)
    return round((time.perf_counter() - t0) / n * 1e6, 1)


def clear(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def python() -> str:
    """The worker's Python: this one (run the bench with .venv/bin/python)."""
    return sys.executable
