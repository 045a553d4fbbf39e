"""Runs ``train`` as the worker does, with the address space capped (RLIMIT_AS) a given number
of MB above what the imported engine uses, so that big batches fail to allocate as they do on
a machine whose memory is full.

    python memory_probe.py job.json BUDGET_MB
"""

from __future__ import annotations

import resource
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402, F401 - loaded before the cap, as in a worker that has started
import torch  # noqa: E402
import torchvision  # noqa: E402, F401

from dlstudio_qgis.engine import cli  # noqa: E402
from dlstudio_qgis.engine.train import command, memory, report, tasks, trainer  # noqa: E402, F401


def warm_up() -> None:
    """OpenBLAS allocates its buffers at its first call, and spins forever when that fails
    (numpy's dot in matplotlib's layout hung under the cap): make them, and a figure, first."""
    np.ones((64, 64)) @ np.ones((64, 64))
    figure = plt.figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    figure.tight_layout()
    plt.close(figure)


def vm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


if __name__ == "__main__":
    job, budget_mb = sys.argv[1], float(sys.argv[2])
    torch.set_num_threads(1)
    warm_up()
    cap = vm_bytes() + int(budget_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.exit(cli.main(["train", job]))
