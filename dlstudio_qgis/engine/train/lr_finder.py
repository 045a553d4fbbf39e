"""LEARNING_RATE = 0: a learning-rate range test (Smith 2017, fastai's ``lr_find``).

The learning rate grows exponentially from ``start`` to ``end`` over ``steps`` batches while the
(smoothed) training loss is recorded; the chosen rate is where the smoothed loss falls fastest
against log(lr). The model's weights and buffers are restored afterwards, so the test leaves no
trace on the training that follows.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch

DEFAULT_LR = 1e-3  # when the curve says nothing (it never falls)


@dataclass
class LRFinding:
    lr: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed
    steps: int = 0
    fallback: bool = False


def _batches(loader):
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def steepest(lrs: list[float], losses: list[float]) -> float | None:
    """The lr where the loss falls fastest against log(lr), before its minimum; the slope is
    taken over a window of a tenth of the curve on each side, against batch-to-batch noise."""
    n = len(losses)
    if n < 5:
        return None
    w = max(1, n // 10)
    lowest = min(range(n), key=losses.__getitem__)
    best, where = 0.0, None
    for i in range(w, min(lowest, n - 1 - w) + 1):
        rise = losses[i + w] - losses[i - w]
        slope = rise / (math.log(lrs[i + w]) - math.log(lrs[i - w]))
        if slope < best:
            best, where = slope, i
    return lrs[where] if where is not None else None


def find_lr(
    task,
    loader,
    *,
    start: float = 1e-7,
    end: float = 1.0,
    steps: int = 100,
    autocast=None,
    scaler=None,
    log=None,
    progress=None,
) -> LRFinding:
    """Run the range test on `task` (its model on its device); weights are restored after."""
    model = task.model
    saved = copy.deepcopy(model.state_dict())
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=start, weight_decay=1e-2)
    ratio = (end / start) ** (1 / max(1, steps - 1))
    lrs, losses = [], []
    avg, best, beta = 0.0, math.inf, 0.98
    model.train()
    try:
        for i, batch in enumerate(_batches(loader)):
            if i >= steps:
                break
            lr = start * ratio**i
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = task.transfer(batch)
            with autocast() if autocast else _null():
                loss, _ = task.training_step(batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:  # float16 gradients need the trainer's loss scaling
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if progress:
                progress(100.0 * (i + 1) / steps)
            if i > steps // 10 and smooth > 4 * best:  # diverged
                break
    finally:
        model.load_state_dict(saved)
        optimizer.zero_grad(set_to_none=True)
    lr = steepest(lrs, losses)
    finding = LRFinding(lr or DEFAULT_LR, lrs, losses, len(lrs), lr is None)
    if log:
        how = "no falling loss found, the default" if finding.fallback else "steepest descent"
        log(
            f"Learning rate range test ({finding.steps} steps from {start:g} to "
            f"{lrs[-1] if lrs else end:.3g}): learning rate {finding.lr:.3g} ({how})."
        )
    return finding


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
