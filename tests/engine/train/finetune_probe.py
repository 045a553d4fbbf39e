"""Run in a subprocess by test_train_all_types.py: the output-class tensors of a package and of
the package fine-tuned from it (those whose shapes differ), row by row.

    python finetune_probe.py <pretrained.dlpk> <fine_tuned.dlpk>

Prints JSON: {key: {"old": [[first values of each row]], "new": [[...]]}}.
"""

from __future__ import annotations

import json
import sys

import torch

from dlstudio_qgis.engine.train.package import read_dlpk

FIRST = 8  # values kept of each row


def rows(tensor: torch.Tensor) -> list[list[float]]:
    return tensor.reshape(tensor.shape[0], -1)[:, :FIRST].tolist()


if __name__ == "__main__":
    old, new = (read_dlpk(p).state_dict for p in sys.argv[1:3])
    out = {
        key: {"old": rows(old[key]), "new": rows(value)}
        for key, value in new.items()
        if key in old and old[key].shape != value.shape
    }
    print(json.dumps(out))
