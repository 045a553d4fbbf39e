"""The training loop: AdamW with a one-cycle schedule, mixed precision on CUDA, early stopping,
a checkpoint after every epoch (RESUME), and JSON-lines progress through the Reporter.

Every epoch ends with one ``log`` message that carries, besides its readable ``message``, an
``epoch`` object (epoch, train loss and its parts, validation loss and metrics, learning rate,
seconds, elapsed, ETA): the protocol lets messages carry extra fields, and a reader that does
not know them still has the message.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..protocol import Cancelled, EngineError, InputError
from .checkpoint import Checkpoints
from .memory import autocast

PATIENCE = 5  # epochs without improvement before early stopping (ArcGIS's default)
MIN_DELTA = 1e-4  # relative improvement that counts
LOG_EVERY_S = 30.0  # a progress log line at most this often within an epoch
MAX_BAD_STEPS = 10  # consecutive non-finite losses before giving up


def resolve_device(processor_type: str) -> torch.device:
    cuda = torch.cuda.is_available()
    if processor_type == "GPU" and not cuda:
        raise InputError(
            f"PROCESSOR_TYPE is GPU but the worker's torch {torch.__version__} sees no CUDA GPU. "
            "Set PROCESSOR_TYPE to CPU or AUTO, or point the worker Python setting at an "
            "environment with a CUDA build of torch."
        )
    return torch.device("cuda" if cuda and processor_type != "CPU" else "cpu")


class EarlyStopping:
    """Stops after `patience` epochs without a `min_delta` (relative) improvement (lower is
    better); `enabled` False only tracks the best epoch."""

    def __init__(self, patience: int = PATIENCE, min_delta: float = MIN_DELTA, enabled=True):
        self.patience, self.min_delta, self.enabled = patience, min_delta, enabled
        self.best, self.best_epoch, self.bad = math.inf, 0, 0

    def update(self, value: float | None, epoch: int) -> bool:
        """True when `value` is the best so far."""
        if value is None or not math.isfinite(value):
            self.bad += 1
            return False
        if value < self.best - abs(self.best) * self.min_delta or self.best_epoch == 0:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.enabled and self.bad >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad = state["best"], state["best_epoch"], state["bad"]


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_weights: dict
    epochs_run: int
    resumed_from: int | None
    stopped_early: bool
    best_metrics: dict = field(default_factory=dict)


def _cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class Trainer:
    def __init__(
        self,
        task,
        train_loader,
        val_loader,
        *,
        lr: float,
        max_epochs: int,
        reporter,
        device: torch.device,
        checkpoints: Checkpoints | None = None,
        early_stopping: EarlyStopping | None = None,
        progress_range=(0.0, 100.0),
        stop_after_epoch: int | None = None,
        extra_state: dict | None = None,
    ):
        self.task, self.train_loader, self.val_loader = task, train_loader, val_loader
        self.lr, self.max_epochs, self.reporter, self.device = lr, max_epochs, reporter, device
        self.checkpoints = checkpoints
        self.early = early_stopping or EarlyStopping()
        self.p0, self.p1 = progress_range
        self.stop_after_epoch = stop_after_epoch
        self.extra_state = extra_state or {}  # saved with each checkpoint (e.g. the lr finding)
        self.amp = device.type == "cuda"
        params = [p for p in task.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
        self.steps_per_epoch = max(1, len(train_loader))
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=lr,
            total_steps=max_epochs * self.steps_per_epoch,
            pct_start=0.3,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def autocast(self):
        return autocast(self.device)

    # --- reporting ---------------------------------------------------------------------------

    def _progress(self, epoch: int, fraction: float) -> None:
        done = (epoch - 1 + fraction) / self.max_epochs
        self.reporter.progress(self.p0 + (self.p1 - self.p0) * done)

    def _emit_epoch(self, record: dict) -> None:
        metrics = {k: v for k, v in record["metrics"].items() if not isinstance(v, dict)}
        parts = [
            f"epoch {record['epoch']}/{self.max_epochs}",
            f"train_loss {_short(record['train_loss'])}",
            f"valid_loss {_short(record['valid_loss'])}",
            *(f"{k} {_short(v)}" for k, v in metrics.items()),
            f"lr {record['lr']:.3g}",
            f"{record['seconds']:.1f} s",
            f"ETA {record['eta_s']:.0f} s",
        ]
        message = ", ".join(parts)
        emit = getattr(self.reporter, "emit", None)
        if emit is None:
            self.reporter.log(message)
        else:
            emit({"type": "log", "level": "info", "message": message, "epoch": record})

    # --- the loop ----------------------------------------------------------------------------

    def _resume(self, state: dict) -> tuple[int, list[dict]]:
        self.task.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.early.load_state_dict(state["early_stopping"])
        return int(state["epoch"]), list(state["history"])

    def _train_epoch(self, epoch: int) -> dict:
        model, task = self.task.model, self.task
        model.train()
        total, parts, n, bad = 0.0, {}, 0, 0
        last_log = time.monotonic()
        for i, batch in enumerate(self.train_loader):
            batch = task.transfer(batch)
            with self.autocast():
                loss, named = task.training_step(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                bad += 1
                if bad >= MAX_BAD_STEPS or not self.amp:
                    raise EngineError(
                        f"Training diverged at epoch {epoch}: the loss is {value}. Lower "
                        f"LEARNING_RATE (it was {self.lr:.3g}) or check the training data.",
                        kind="diverged",
                    )
            else:
                bad = 0
                total += value
                n += 1
                for k, v in named.items():
                    parts[k] = parts.get(k, 0.0) + v
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self._progress(epoch, 0.9 * (i + 1) / self.steps_per_epoch)
            if time.monotonic() - last_log > LOG_EVERY_S:
                last_log = time.monotonic()
                self.reporter.log(
                    f"epoch {epoch}/{self.max_epochs}, batch {i + 1}/"
                    f"{self.steps_per_epoch}, loss {total / max(1, n):.4g}"
                )
        return {
            "loss": total / n if n else None,
            "parts": {k: v / max(1, n) for k, v in parts.items()},
        }

    @torch.no_grad()
    def _validate(self, epoch: int) -> tuple[float | None, dict]:
        task = self.task
        task.model.eval()
        task.configure_metrics()
        total, n = 0.0, 0
        count = max(1, len(self.val_loader))
        for i, batch in enumerate(self.val_loader):
            with self.autocast():
                out = task.validation_step(task.transfer(batch))
            if math.isfinite(out["loss"]):
                total, n = total + out["loss"], n + 1
            self._progress(epoch, 0.9 + 0.1 * (i + 1) / count)
        return (total / n if n else None), task.compute_metrics()

    def fit(self, resume: tuple[dict, dict | None] | None = None) -> FitResult:
        start, history, resumed_from = 0, [], None
        best_weights = None
        if resume is not None:
            start, history = self._resume(resume[0])
            best_weights = resume[1]
            resumed_from = start
            self.reporter.log(
                f"Resuming from the checkpoint of epoch {start} "
                f"(best epoch so far: {self.early.best_epoch})."
            )
        began = time.monotonic()
        done_before = sum(r["seconds"] for r in history)
        epoch = start
        for epoch in range(start + 1, self.max_epochs + 1):
            t0 = time.monotonic()
            train = self._train_epoch(epoch)
            valid_loss, metrics = self._validate(epoch)
            seconds = time.monotonic() - t0
            elapsed = done_before + time.monotonic() - began
            per_epoch = elapsed / max(1, epoch)
            record = {
                "epoch": epoch,
                "train_loss": train["loss"],
                "train_losses": train["parts"],
                "valid_loss": valid_loss,
                "metrics": metrics,
                "lr": self.scheduler.get_last_lr()[0],
                "seconds": seconds,
                "elapsed_s": elapsed,
                "eta_s": per_epoch * (self.max_epochs - epoch),
            }
            history.append(record)
            improved = self.early.update(valid_loss, epoch)
            if improved:
                best_weights = _cpu_copy(self.task.model.state_dict())
            if self.checkpoints is not None:
                self.checkpoints.save(
                    self._state(epoch, history), best_weights if improved else None
                )
            self._emit_epoch(record)
            if self.stop_after_epoch is not None and epoch >= self.stop_after_epoch:
                raise Cancelled(f"Stopped after epoch {epoch} (test hook).")
            if self.early.stop:
                self.reporter.log(
                    f"Early stopping after epoch {epoch}: the validation loss "
                    f"has not improved for {self.early.bad} epochs (best: epoch "
                    f"{self.early.best_epoch})."
                )
                break
        best_epoch = self.early.best_epoch or epoch
        if best_weights is None:
            best_weights = _cpu_copy(self.task.model.state_dict())
        best_metrics = next((r["metrics"] for r in history if r["epoch"] == best_epoch), {})
        return FitResult(
            history, best_epoch, best_weights, epoch, resumed_from, self.early.stop, best_metrics
        )

    def _state(self, epoch: int, history: list[dict]) -> dict:
        return {
            "epoch": epoch,
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.amp else None,
            "early_stopping": self.early.state_dict(),
            "history": history,
            "lr": self.lr,
            **self.extra_state,
        }
