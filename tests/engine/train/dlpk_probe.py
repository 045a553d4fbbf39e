"""Run in a subprocess by test_train_all_types.py (torch stays out of the pytest process):
reads packages back with ``read_dlpk``, rebuilds each model from its emd and loads its weights.

    python dlpk_probe.py '["<package.dlpk>", ...]'

Prints, as JSON, one object per package: its emd, members, how many tensors it holds, whether
they are all finite, and the keys that did not fit a model built afresh from the emd.
"""

from __future__ import annotations

import json
import sys

import torch

from dlstudio_qgis.engine.models import build_model
from dlstudio_qgis.engine.train.package import read_dlpk


def probe(path: str) -> dict:
    loaded = read_dlpk(path)
    params = loaded.emd["ModelParameters"]
    model = build_model(
        params["model_type"],
        params["backbone"],
        params["num_classes"],
        params["in_channels"],
        params["arguments"]["chip_size"],
        {k: v for k, v in params["arguments"].items() if k != "chip_size"},
        pretrained=None,
    )
    fit = model.load_state_dict(loaded.state_dict, strict=False)
    return {
        "emd": loaded.emd,
        "members": loaded.members,
        "tensors": len(loaded.state_dict),
        "finite": all(
            bool(torch.isfinite(t).all())
            for t in loaded.state_dict.values()
            if t.is_floating_point()
        ),
        "missing": list(fit.missing_keys),
        "unexpected": list(fit.unexpected_keys),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps([probe(p) for p in json.loads(sys.argv[1])]))
