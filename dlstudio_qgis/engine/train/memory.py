"""Out of memory while training: an error that names a batch size that fits.

When a training step does not fit (a CUDA out-of-memory, the CPU allocator's "can't allocate
memory", a Python MemoryError), the worker measures what does: it runs two training steps
(weights, gradients, AdamW's moments and activations, as the trainer holds them) with half
the batch, then half again, down to one chip, and names the first that fitted. The probe runs
only on that failure path, after the failed run's tensors have been freed.
"""

from __future__ import annotations

import contextlib
import gc

import torch

from .. import protocol
from ..protocol import EngineError

#: oneDNN's answer when it cannot allocate its scratch space (or for other reasons, so it
#: counts as memory only while measuring after an out-of-memory)
_ONEDNN_FAILED = "could not create a primitive"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the ways torch and Python report an allocation that failed."""
    return isinstance(exc, torch.OutOfMemoryError) or protocol.is_out_of_memory(exc)


def autocast(device: torch.device):
    """Mixed precision (float16) on CUDA, where it saves memory and time; nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _NotMeasurable(Exception):
    """A smaller batch failed for another reason than memory (e.g. batch normalisation of one
    chip), so no size can be named."""


def _steps_fit(task, dataset, size: int, device: torch.device) -> bool:
    """Two training steps in the trainer's order, so that the peak holds what it holds there:
    the weights, their gradients, AdamW's two moments and one batch's activations."""
    from .dataset import collate

    model = task.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=0.0)
    try:
        batch = task.transfer(collate([dataset[i % len(dataset)] for i in range(size)]))
        for _ in range(2):
            with autocast(device):
                loss, _ = task.training_step(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return True
    except Exception as exc:  # anything but memory ends the probe
        if is_out_of_memory(exc) or _ONEDNN_FAILED in str(exc):
            return False
        raise _NotMeasurable(f"{type(exc).__name__}: {exc}") from None
    finally:
        batch = loss = optimizer = None
        model.zero_grad(set_to_none=True)
        free_memory(device)


def largest_batch_that_fits(
    task, dataset, device: torch.device, failed: int, log=None
) -> int | None:
    """The largest of failed/2, failed/4, ... 1 for which two training steps fit; 0 when
    not even one chip fits; None when that cannot be measured."""
    size = failed // 2
    try:
        while size >= 1:
            if _steps_fit(task, dataset, size, device):
                return size
            if log:
                log(f"A batch of {_chips(size)} does not fit either.")
            size //= 2
    except _NotMeasurable as exc:
        if log:
            log(f"No batch size could be measured: a batch of {_chips(size)} failed ({exc}).")
        return None
    return 0


def _chips(n: int) -> str:
    return f"{n} chip" if n == 1 else f"{n} chips"


def _where(device: torch.device) -> str:
    if device.type != "cuda":
        return "in the computer's memory (CPU)"
    props = torch.cuda.get_device_properties(device)
    return f"in the memory of the GPU ({props.name}, {props.total_memory / 2**30:.1f} GiB)"


#: backbones with the fewest weights and activations, per the registry's families
LIGHT_BACKBONES = ("RESNET18", "MOBILENET_V2")


def memory_error(job, chip_size: int, batch: int, fits: int | None, device, cause: str):
    """The EngineError (kind "memory") that tells the user what to change."""
    capped = f" (BATCH_SIZE {job.batch_size} capped at the training chips)"
    what = (
        f"Training {job.model_type} on {job.backbone} ran out of memory: batches of {batch} "
        f"chips{capped if batch < job.batch_size else ''} of {chip_size} px do not fit "
        f"{_where(device)}."
    )
    smaller = f"lower chip_size in ARGUMENTS (e.g. chip_size={max(32, chip_size // 2)})"
    if fits:
        fix = f"Training steps with {_chips(fits)} fit: set BATCH_SIZE to {fits}, or {smaller}."
    elif fits == 0:
        options = [smaller]
        light = [b for b in LIGHT_BACKBONES if b != job.backbone]
        if job.backbone not in LIGHT_BACKBONES:
            options.append(f"choose a lighter backbone ({' or '.join(light)})")
        if device.type == "cuda":
            options.append("set PROCESSOR_TYPE to CPU")
        options.append("use a machine with more memory")
        fix = (
            f"Not even one chip of {chip_size} px fits: {', '.join(options[:-1])} or {options[-1]}."
        )
    else:
        fix = f"Set BATCH_SIZE to {max(1, batch // 2)} or lower, or {smaller}."
    other = " Other programs using the GPU take from it too." if device.type == "cuda" else ""
    return EngineError(f"{what} {fix}{other} ({cause})", kind="memory")
