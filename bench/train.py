"""Benchmark of the training loop: samples per second of our trainer against a bare torch loop
over the same model, batches and device, in the same run.

    .venv/bin/python bench/train.py [--quick] [--device cpu|cuda|auto] [--threads 2]
                                    [--model UNET] [--backbone RESNET18] [--out result.json]

On a synthetic export (``synth-scene`` + ``export``, cached in bench/.cache/train/): 256 chips of
128 x 128 (quick: 32), in the metadata format the model type trains from (Classified_Tiles for
UNET), it measures on one device:

1. trainer: samples/s of ``Trainer._train_epoch`` (trainer.py), the loop the ``train`` command
   runs, over the real ``ChipDataset`` + ``loader`` (dataset.py) with augmentation, the Task's
   ``transfer`` and ``training_step``, AMP and the one-cycle schedule on CUDA, and per-batch
   progress through a real ``Reporter`` (writing to /dev/null); after one warm-up epoch, which
   also fills the dataset's in-memory chip cache as in a real run. No validation, no
   checkpoints, no packaging.
2. bare: the same model type built afresh (``build_model`` via the same Task, same seed and
   arguments, no ImageNet weights for either), the same batches already on the device as
   tensors, the same loss function and optimizer (AdamW), the same batch size and number of
   steps, in a plain ``loss.backward(); opt.step(); opt.zero_grad()`` loop (with autocast and a
   GradScaler on CUDA, as the trainer), and the same loop with ``opt.zero_grad()`` moved
   between the forward and the backward pass, as the trainer has it (on CPU that is some 5%
   faster: the backward pass reuses the freed gradients' memory instead of faulting in fresh
   pages). The faster of the two is the bare limit: ratio = trainer / bare; target >= 0.9.
3. loader: samples/s of iterating the training DataLoader alone (no model), to show that data
   loading is not the bottleneck.

Trainer and bare epochs alternate `--repeat` times (which goes first alternates too); the
fastest of each counts. The JSON goes to stdout (and ``--out``); notes go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib  # noqa: E402

TARGET_RATIO = 0.9
DATA_VERSION = 1
CACHE = benchlib.CACHE / "train"
CLASSES = [
    {"value": 1, "name": "building", "color": "#e6194b"},
    {"value": 2, "name": "road", "color": "#3cb44b"},
]


def note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- the data ------------------------------------------------------------------------------


def _engine(*args) -> None:
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(benchlib.REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [benchlib.python(), "-m", "dlstudio_qgis.engine", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=benchlib.REPO,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"engine {args[0]} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def export_folder(fmt: str, chips: int, chip: int, seed: int) -> tuple[Path, dict]:
    """A synthetic export of about `chips` chips of `chip` pixels in `fmt`, made once (cached)."""
    side = math.ceil(math.sqrt(chips)) * chip
    folder = CACHE / f"{fmt}_{side}px_c{chip}_s{seed}_v{DATA_VERSION}"
    out, meta = folder / "export", folder / "made.json"
    if meta.exists():
        return out, {**json.loads(meta.read_text()), "cached": True}
    benchlib.clear(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    tif = folder / "scene.tif"
    _engine("synth-scene", "-o", tif, "--size", side, "--seed", seed, "--pixel-size", 1.0,
            "--no-overviews")  # fmt: skip
    every = []
    for name in ("buildings", "roads"):
        data = json.loads((folder / f"{name}.geojson").read_text())
        for f in data["features"]:
            f["properties"] = {"class_value": f["properties"]["class"]}
        every += data["features"]
    objects = fmt in ("PASCAL_VOC_rectangles", "KITTI_rectangles", "RCNN_Masks")
    features = [f for f in every if f["properties"]["class_value"] == 1] if objects else every
    samples = folder / "samples.geojson"
    samples.write_text(json.dumps({**data, "features": features}))
    job = {
        "raster": str(tif),
        "samples": str(samples),
        "classes": CLASSES,
        "output": str(out),
        "metadata_format": fmt,
        "tile_size": [chip, chip],
        "stride": [chip, chip],
        "output_nofeature_tiles": not objects,  # every tile (objects: those with one)
        "workers": 0,
    }
    (folder / "export.json").write_text(json.dumps(job))
    _engine("export", folder / "export.json")
    n = len(list((out / "images").iterdir()))
    info = {"scene_px": side, "chips": n, "made_s": round(time.perf_counter() - t0, 1)}
    meta.write_text(json.dumps(info) + "\n")
    return out, {**info, "cached": False}


# --- the three measurements ----------------------------------------------------------------


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loss(task, model, images, targets):
    """The task's loss, written out as a bare loop would (no metrics, no .item())."""
    kind = task.spec.kind
    if kind in ("detection", "instance_segmentation"):
        return sum(model(list(images), targets).values())
    if kind == "semantic_segmentation":
        return task._loss(model(images), targets)
    return task.criterion(model(images).float(), targets)


class Bare:
    """A plain training loop over batches already on the device."""

    def __init__(self, task, batches, lr: float, device) -> None:
        import torch

        self.task, self.model, self.batches, self.device = task, task.model, batches, device
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
        self.amp = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def step(self, images, targets, zero_first: bool = False) -> None:
        import torch

        ctx = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with ctx:
            loss = bare_loss(self.task, self.model, images, targets)
        if zero_first:
            self.opt.zero_grad(set_to_none=True)
        if self.amp:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        if not zero_first:
            self.opt.zero_grad(set_to_none=True)

    def epoch(self, zero_first: bool = False) -> None:
        for images, targets in self.batches:
            self.step(images, targets, zero_first)
        sync(self.device)

    def epoch_zero_first(self) -> None:
        """The same, with zero_grad between the forward and the backward pass (as the trainer
        does): on CPU the freed gradients' memory is then reused by the backward pass instead
        of fresh pages being faulted in, which is some 5% faster."""
        self.epoch(zero_first=True)


def to_device(batch, device):
    images, targets = batch
    images = images.to(device)
    if isinstance(targets, list):
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    else:
        targets = targets.to(device)
    return images, targets


def profile_epoch(fn, top: int = 25) -> dict:
    """cProfile of one call: the top functions by own time, and the engine's by cumulative."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, name), (_, calls, own, cum, _) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({name})",
                "engine": "dlstudio_qgis" in file,
                "calls": calls,
                "own_s": round(own, 4),
                "cumulative_s": round(cum, 4),
            }
        )
    by_own = sorted(rows, key=lambda r: -r["own_s"])[:top]
    ours = sorted((r for r in rows if r["engine"]), key=lambda r: -r["cumulative_s"])[:top]
    return {"top_own_time": by_own, "engine_cumulative": ours}


def run(args) -> dict:
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    import torch

    from dlstudio_qgis.engine.export.reader import read_export
    from dlstudio_qgis.engine.models import METADATA_FORMATS, SUPPORTED, TASKS, check_pair
    from dlstudio_qgis.engine.protocol import Reporter
    from dlstudio_qgis.engine.train import dataset as ds
    from dlstudio_qgis.engine.train.tasks import make_task
    from dlstudio_qgis.engine.train.trainer import Trainer

    phases["import_s"] = time.perf_counter() - t0
    backbone = args.backbone
    if not backbone:  # RESNET18 where it fits (YOLOV3: DARKNET53)
        fits = SUPPORTED.get(args.model.upper(), ())
        backbone = "RESNET18" if "RESNET18" in fits else None
    model_type, backbone = check_pair(args.model, backbone)
    fmt = METADATA_FORMATS[model_type][0]
    if args.threads:
        torch.set_num_threads(args.threads)
    want = args.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: torch {torch.__version__} sees no CUDA GPU")
    device = torch.device(want)

    t = time.perf_counter()
    folder, made = export_folder(fmt, args.chips, args.chip_size, args.seed)
    phases["data_s"] = time.perf_counter() - t
    note(f"export {folder} ({made['chips']} chips; {'cached' if made['cached'] else 'made'})")

    data = read_export(folder)
    spec = ds.make_spec(data, TASKS[model_type], {})
    everything = list(range(len(data.chips)))
    train_ds = ds.ChipDataset(data, spec, everything, augment=True)
    cuda = device.type == "cuda"
    loader = ds.loader(train_ds, args.batch_size, train=True, workers=args.workers, cuda=cuda)
    steps = len(loader)
    samples = sum(len(b) for b in _batch_sizes(loader))  # one epoch's samples (drop_last aware)

    def fresh_task():
        torch.manual_seed(args.seed)
        return make_task(spec, model_type, backbone, {}, pretrained=None, log=lambda m: None).to(
            device
        )

    sink = open(os.devnull, "w")  # noqa: SIM115 (closed at the end)
    reporter = Reporter(sink)
    epochs = 1 + args.repeat + (1 if args.profile else 0)
    trainer = Trainer(
        fresh_task(),
        loader,
        loader,
        lr=args.lr,
        max_epochs=epochs,
        reporter=reporter,
        device=device,
    )
    epoch_no = iter(range(1, epochs + 1))

    def trainer_epoch() -> None:
        trainer._train_epoch(next(epoch_no))
        sync(device)

    busy_before = benchlib.busy_percent(1.0)
    note(f"{model_type}/{backbone} on {device}: warm-up epoch ({steps} steps of {args.batch_size})")
    t = time.perf_counter()
    trainer_epoch()  # warm-up: reads every chip once (then the dataset's cache holds them)
    phases["trainer_warmup_s"] = time.perf_counter() - t

    # the bare loop's batches: one epoch of the same loader (augmented, shuffled), on the device
    t = time.perf_counter()
    batches = [to_device(b, device) for b in loader]
    sync(device)
    bare = Bare(fresh_task(), batches, args.lr, device)
    bare.epoch()  # warm-up (on CPU the first few steps of a model are several times slower)
    phases["bare_setup_s"] = time.perf_counter() - t

    times = {"trainer": [], "bare": [], "bare_zero_grad_first": [], "loader": []}
    with benchlib.OthersCpu() as others:
        for r in range(args.repeat):
            kinds = [
                ("trainer", trainer_epoch),
                ("bare", bare.epoch),
                ("bare_zero_grad_first", bare.epoch_zero_first),
            ]
            for name, fn in kinds if r % 2 == 0 else kinds[::-1]:  # alternate the order
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in loader:
                pass
            times["loader"].append(time.perf_counter() - t)
            note(
                f"repeat {r + 1}/{args.repeat}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
            )
    profile = None
    if args.profile:
        note("profiling one trainer epoch")
        profile = profile_epoch(trainer_epoch)
    sink.close()

    best = {k: min(v) for k, v in times.items()}
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    rate = {k: samples / v for k, v in best.items()}
    limit = max(rate["bare"], rate["bare_zero_grad_first"])  # the bare limit: the faster one
    ratio = rate["trainer"] / limit
    bare_median = min(median["bare"], median["bare_zero_grad_first"])
    # with loader_workers=0 the loading runs in the training process, one batch after another
    expected = samples / (samples / limit + best["loader"])
    result = {
        "benchmark": "train",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else benchlib._cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "model_type": model_type,
        "backbone": backbone,
        "metadata_format": fmt,
        "chips": len(train_ds),
        "chip_size": spec.chip_size,
        "batch_size": args.batch_size,
        "steps_per_epoch": steps,
        "samples_per_epoch": samples,
        "loader_workers": args.workers,
        "amp": cuda,
        "repeat": args.repeat,
        "samples_per_s_trainer": round(rate["trainer"], 2),
        "samples_per_s_bare": round(limit, 2),
        "ratio": round(ratio, 3),
        "ratio_of_medians": round(bare_median / median["trainer"], 3),
        "samples_per_s_bare_zero_grad_last": round(rate["bare"], 2),
        "samples_per_s_bare_zero_grad_first": round(rate["bare_zero_grad_first"], 2),
        "ratio_to_zero_grad_last": round(rate["trainer"] / rate["bare"], 3),
        "samples_per_s_loader": round(rate["loader"], 1),
        "loader_over_trainer": round(rate["loader"] / rate["trainer"], 1),
        "samples_per_s_bare_plus_loading": round(expected, 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "seconds_all_runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "data": {"folder": str(folder), **made},
        "cpu_busy_pct_before": busy_before,
        "others_cpu_s": others.others(),
    }
    if busy_before > 10:
        result["warning"] = f"other processes kept the CPUs {busy_before}% busy before the run"
    if profile:
        result["profile_trainer_epoch"] = profile
    return result


def _batch_sizes(loader):
    """The batch lengths of one epoch without loading anything (from the sampler)."""
    n, b = len(loader.dataset), loader.batch_size
    full, rest = divmod(n, b)
    sizes = [range(b)] * full
    if rest and not loader.drop_last:
        sizes.append(range(rest))
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 chips, one repeat (a smoke run)")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    ap.add_argument("--threads", type=int, help="torch CPU threads (torch's default)")
    ap.add_argument("--model", default="UNET", help="model type (UNET)")
    ap.add_argument("--backbone", help="backbone (RESNET18; YOLOV3: DARKNET53)")
    ap.add_argument("--chips", type=int, help="about this many chips (256; quick 32)")
    ap.add_argument("--chip-size", dest="chip_size", type=int, default=128)
    ap.add_argument("--batch-size", dest="batch_size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0, the default)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeat", type=int, help="timed epochs of each kind; the fastest counts (3; quick 1)"
    )
    ap.add_argument("--profile", action="store_true", help="also cProfile one trainer epoch")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = ap.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.chips = args.chips or (32 if args.quick else 256)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
