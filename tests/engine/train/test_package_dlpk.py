"""Deep learning packages: the round trip, atomic writes, and every refusal of read_dlpk."""

from __future__ import annotations

import json
import os
import stat
import warnings
import zipfile

import pytest
import torch

from dlstudio_qgis.engine.protocol import InputError
from dlstudio_qgis.engine.train import package
from dlstudio_qgis.engine.train.package import (
    PackageError,
    PackageExistsError,
    UnsafePackageError,
    read_dlpk,
    read_emd,
    read_package,
)
from dlstudio_qgis.engine.train.package_write import write_dlpk

CLASSES = [
    {"Value": 1, "Name": "building", "Color": [255, 0, 0]},
    {"Value": 2, "Name": "road", "Color": [0, 0, 255]},
]
HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "valid_loss": 1.0, "lr": 1e-3},
    {"epoch": 2, "train_loss": 0.5, "valid_loss": 0.6, "lr": 1e-3},
]
METRICS = {"learning_rate": 1e-3, "accuracy": 0.8}


def make_emd(**extra) -> dict:
    emd = {
        "Framework": "PyTorch",
        "ModelConfiguration": "DLStudio",
        "ModelType": "ImageClassification",
        "Classes": CLASSES,
        "ImageHeight": 64,
        "ImageWidth": 64,
        "DLStudio": {"job": {"model_type": "UNET", "backbone": "RESNET18"}},
    }
    emd.update(extra)
    return emd


def make_state(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
        "conv.bias": torch.zeros(4),
        "bn.num_batches_tracked": torch.tensor(7),
    }


def weights_bytes(obj, tmp_path) -> bytes:
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    return path.read_bytes()


def craft(path, members) -> str:
    """A zip of (name or ZipInfo, bytes) pairs, written as given (no checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return str(path)


def good_members(tmp_path, emd=None, model="model.pth", emd_name="model.emd"):
    emd = emd if emd is not None else make_emd(ModelFile=model)
    return [(emd_name, json.dumps(emd)), (model, weights_bytes(make_state(), tmp_path))]


# --- writing -------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    out = tmp_path / "sub" / "roofs.dlpk"
    state = make_state()
    path = write_dlpk(
        out,
        emd=make_emd(ModelFile="ignored.pth"),
        state_dict=state,
        history=HISTORY,
        metrics=METRICS,
        preview_png=b"\x89PNG fake",
        extra_files={"notes/readme.txt": b"hello"},
    )
    assert path == out and out.is_file()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert zf.read("show_results.png") == b"\x89PNG fake"
        assert zf.read("loss_graph.png").startswith(b"\x89PNG\r\n\x1a\n")
        assert "road" in zf.read("model_metrics.html").decode()
    assert names[:2] == ["roofs.emd", "roofs.pth"]
    assert {"model_metrics.html", "loss_graph.png", "show_results.png", "notes/readme.txt"} <= set(
        names
    )
    loaded = read_dlpk(out)
    assert loaded.members == names and loaded.path == str(out)
    assert loaded.emd == {**make_emd(), "ModelFile": "roofs.pth"}
    assert loaded.inference_function is None
    assert set(loaded.state_dict) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded.state_dict[key], tensor)
        assert loaded.state_dict[key].dtype == tensor.dtype
    assert not [p for p in out.parent.iterdir() if p.name != "roofs.dlpk"]


def test_emd_values_made_json(tmp_path):
    import numpy as np

    emd = make_emd(Stats={"mean": np.array([1.5, 2.5]), "n": np.int64(3), "bad": float("nan")})
    out = write_dlpk(tmp_path / "m.dlpk", emd=emd, state_dict=make_state(), history=[], metrics={})
    assert read_dlpk(out).emd["Stats"] == {"mean": [1.5, 2.5], "n": 3, "bad": None}


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "m.dlpk"
    write_dlpk(out, emd=make_emd(), state_dict=make_state(0), history=HISTORY, metrics=METRICS)
    with pytest.raises(PackageExistsError, match="OVERWRITE_MODEL") as err:
        write_dlpk(out, emd=make_emd(), state_dict=make_state(1), history=HISTORY, metrics=METRICS)
    assert isinstance(err.value, InputError) and err.value.kind == "input"
    assert torch.equal(read_dlpk(out).state_dict["conv.weight"], make_state(0)["conv.weight"])
    write_dlpk(
        out,
        emd=make_emd(),
        state_dict=make_state(1),
        history=HISTORY,
        metrics=METRICS,
        overwrite=True,
    )
    assert torch.equal(read_dlpk(out).state_dict["conv.weight"], make_state(1)["conv.weight"])


@pytest.mark.parametrize("where", ["writestr", "torch.save"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, where):
    out = tmp_path / "m.dlpk"
    write_dlpk(out, emd=make_emd(), state_dict=make_state(0), history=[], metrics={})
    before = out.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    if where == "writestr":
        monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    else:
        monkeypatch.setattr(torch, "save", boom)
    for target, overwrite in ((tmp_path / "new.dlpk", False), (out, True)):
        with pytest.raises(OSError, match="disk full"):
            write_dlpk(
                target,
                emd=make_emd(),
                state_dict=make_state(1),
                history=HISTORY,
                metrics=METRICS,
                overwrite=overwrite,
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dlpk"]  # no temp file, no new
    assert out.read_bytes() == before  # the old package is intact


def test_write_refuses_bad_input(tmp_path):
    kw = {"history": [], "metrics": {}}
    with pytest.raises(PackageError, match="parameter names mapped to tensors"):
        write_dlpk(tmp_path / "a.dlpk", emd=make_emd(), state_dict={"w": [1, 2]}, **kw)
    with pytest.raises(PackageError, match="must be a .dlpk"):
        write_dlpk(tmp_path / "a.zip", emd=make_emd(), state_dict=make_state(), **kw)
    with pytest.raises(PackageError, match="lacks Classes"):
        write_dlpk(
            tmp_path / "a.dlpk",
            emd={"ModelConfiguration": "x", "ModelType": "y"},
            state_dict=make_state(),
            **kw,
        )
    with pytest.raises(PackageError, match="'..'"):
        write_dlpk(
            tmp_path / "a.dlpk",
            emd=make_emd(),
            state_dict=make_state(),
            extra_files={"../x.txt": b""},
            **kw,
        )
    assert not list(tmp_path.iterdir())


# --- reading: refusals ---------------------------------------------------------------------


def test_not_a_zip_names_the_file(tmp_path):
    path = tmp_path / "fake.dlpk"
    path.write_text("hello")
    with pytest.raises(PackageError, match=r"fake\.dlpk.*not a zip"):
        read_dlpk(path)
    with pytest.raises(PackageError, match="does not exist"):
        read_dlpk(tmp_path / "missing.dlpk")


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.emd", "'..'"),
        ("sub/../../evil.txt", "'..'"),
        ("..\\evil.emd", "'..'"),
        ("/tmp/evil.emd", "absolute path"),
        ("\\evil.emd", "absolute path"),
        ("C:/Windows/evil.dll", "drive letter"),
        ("c:evil.txt", "drive letter"),
        (_symlink("link.pth"), "symbolic link"),
    ],
)
def test_unsafe_member_refused(tmp_path, member, reason):
    path = craft(tmp_path / "bad.dlpk", [*good_members(tmp_path), (member, "/etc/passwd")])
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(UnsafePackageError, match=reason) as err:
            read_dlpk(path)
    finally:
        os.chdir(cwd)
    assert "Nothing was extracted" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dlpk", "w.pth"]
    assert not (tmp_path.parent / "evil.emd").exists()


def test_duplicate_member_refused(tmp_path):
    members = good_members(tmp_path)
    path = craft(tmp_path / "dup.dlpk", [*members, members[1]])
    with pytest.raises(UnsafePackageError, match="same name"):
        read_dlpk(path)


def test_size_limits(tmp_path, monkeypatch):
    zeros = bytes(4 * 1024 * 1024)  # compresses about 1000 times
    path = craft(tmp_path / "bomb.dlpk", [*good_members(tmp_path), ("pad.bin", zeros)])
    monkeypatch.setattr(package, "MAX_RATIO_FROM", 1024 * 1024)
    with pytest.raises(UnsafePackageError, match="zip bomb"):
        read_dlpk(path)
    monkeypatch.setattr(package, "MAX_RATIO_FROM", 64 * 1024 * 1024)
    read_dlpk(path)  # under the size where the ratio counts
    monkeypatch.setattr(package, "MAX_MEMBER_BYTES", 1024 * 1024)
    with pytest.raises(UnsafePackageError, match="pad.bin.*uncompressed"):
        read_dlpk(path)
    monkeypatch.setattr(package, "MAX_MEMBER_BYTES", 2 * 1024**3)
    monkeypatch.setattr(package, "MAX_TOTAL_BYTES", 1024 * 1024)
    with pytest.raises(UnsafePackageError, match="uncompressed"):
        read_dlpk(path)


def test_exactly_one_emd_at_the_root(tmp_path):
    members = good_members(tmp_path)
    two = craft(tmp_path / "two.dlpk", [*members, ("other.emd", members[0][1])])
    with pytest.raises(PackageError, match=r"exactly one .*found model\.emd, other\.emd"):
        read_dlpk(two)
    nested = craft(tmp_path / "nested.dlpk", [("sub/model.emd", members[0][1]), members[1]])
    with pytest.raises(PackageError, match=r"at its root; found sub/model\.emd"):
        read_dlpk(nested)
    none = craft(tmp_path / "none.dlpk", [members[1]])
    with pytest.raises(PackageError, match="found none"):
        read_dlpk(none)


def test_emd_must_be_json_with_required_fields(tmp_path):
    weights = weights_bytes(make_state(), tmp_path)
    bad = craft(tmp_path / "bad.dlpk", [("m.emd", "{not json"), ("model.pth", weights)])
    with pytest.raises(PackageError, match=r"'m\.emd' in .* not valid JSON"):
        read_dlpk(bad)
    emd = make_emd(ModelFile="model.pth")
    del emd["ModelConfiguration"], emd["Classes"]
    missing = craft(tmp_path / "miss.dlpk", [("m.emd", json.dumps(emd)), ("model.pth", weights)])
    with pytest.raises(PackageError, match="lacks ModelConfiguration, Classes; a model defin"):
        read_dlpk(missing)
    emd = make_emd(ModelFile="model.pth", Classes=[{"Name": "x"}])
    no_value = craft(tmp_path / "nv.dlpk", [("m.emd", json.dumps(emd)), ("model.pth", weights)])
    with pytest.raises(PackageError, match="needs a Value and a Name"):
        read_dlpk(no_value)


def test_only_pytorch(tmp_path):
    emd = make_emd(Framework="TensorFlow", ModelFile="model.pb")
    path = craft(tmp_path / "tf.dlpk", [("m.emd", json.dumps(emd)), ("model.pb", b"\x00")])
    with pytest.raises(PackageError, match=r"TensorFlow framework; .* PyTorch models only"):
        read_dlpk(path)


def test_model_file_must_be_in_the_package(tmp_path):
    emd = make_emd(ModelFile="elsewhere.pth")
    path = craft(tmp_path / "m.dlpk", good_members(tmp_path, emd=emd))
    with pytest.raises(PackageError, match=r"lacks its weights 'elsewhere\.pth'.*model\.pth"):
        read_dlpk(path)
    emd = make_emd(ModelFile="../model.pth")
    path = craft(tmp_path / "up.dlpk", good_members(tmp_path, emd=emd))
    with pytest.raises(UnsafePackageError, match="'..'"):
        read_dlpk(path)


class Custom:
    """An ordinary object: pickled by its class, which weights_only does not allow."""

    def __init__(self):
        self.value = 1


class Payload:
    """Pickles as a call: what a malicious .pth does."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_pickle_needing_code_refused(tmp_path):
    pwned = tmp_path / "pwned"
    for name, obj in (
        ("payload", {"w": Payload(str(pwned))}),
        ("custom", {"w": torch.zeros(1), "extra": Custom()}),
    ):
        emd = make_emd(ModelFile="model.pth")
        path = craft(
            tmp_path / f"{name}.dlpk",
            [("m.emd", json.dumps(emd)), ("model.pth", weights_bytes(obj, tmp_path))],
        )
        with pytest.raises(
            UnsafePackageError,
            match=r"need code to load \(a pickled object, "
            r"not a state dict\); this package is refused",
        ):
            read_dlpk(path)
    assert not pwned.exists()


def test_weights_must_be_a_state_dict(tmp_path):
    emd = json.dumps(make_emd(ModelFile="model.pth"))
    as_list = craft(
        tmp_path / "l.dlpk",
        [("m.emd", emd), ("model.pth", weights_bytes([torch.zeros(2)], tmp_path))],
    )
    with pytest.raises(PackageError, match="hold a list, not a state dict"):
        read_dlpk(as_list)
    damaged = craft(tmp_path / "d.dlpk", [("m.emd", emd), ("model.pth", b"garbage" * 10)])
    with pytest.raises(PackageError, match="cannot be read as PyTorch weights"):
        read_dlpk(damaged)
    # a training checkpoint that holds the state dict under "model" is read
    ckpt = {"model": make_state(), "epoch": 3, "best": 0.5}
    nested = craft(
        tmp_path / "c.dlpk", [("m.emd", emd), ("model.pth", weights_bytes(ckpt, tmp_path))]
    )
    assert set(read_dlpk(nested).state_dict) == set(make_state())


def test_inference_code_needs_trust_and_never_runs(tmp_path):
    flag = tmp_path / "ran"
    code = f"open({str(flag)!r}, 'w').write('code ran')\n"
    emd = make_emd(ModelFile="model.pth", InferenceFunction="MyDetector.py")
    path = craft(
        tmp_path / "code.dlpk", [*good_members(tmp_path, emd=emd), ("MyDetector.py", code)]
    )
    with pytest.raises(
        UnsafePackageError,
        match=r"InferenceFunction names Python code "
        r"\('MyDetector\.py'\).*trust",
    ):
        read_dlpk(path)
    loaded = read_dlpk(path, trust_code=True)
    assert loaded.inference_function == "MyDetector.py"
    assert loaded.code == {"MyDetector.py": code.encode()}
    assert not flag.exists()
    emd = make_emd(ModelFile="model.pth", InferenceFunction="absent.py")
    absent = craft(tmp_path / "absent.dlpk", good_members(tmp_path, emd=emd))
    with pytest.raises(PackageError, match="does not hold"):
        read_dlpk(absent, trust_code=True)


def test_arcgis_style_emd_accepted(tmp_path):
    emd = {
        "Framework": "PyTorch",
        "ModelConfiguration": "_unet",
        "ModelFile": ".\\model.pth",
        "ModelType": "ImageClassification",
        "InferenceFunction": "[Functions]System\\DeepLearning\\ArcGISLearn\\"
        "ArcGISImageClassifier.py",
        "ArcGISLearnVersion": "1.9.1",
        "ImageHeight": 256,
        "ImageWidth": 256,
        "ExtractBands": [0, 1, 2],
        "ModelParameters": {"backbone": "resnet34", "backend": "pytorch"},
        "NormalizationStats": {"band_min_values": [0, 0, 0]},
        "SupportsVariableTileSize": True,
        "Classes": [{"Value": 1, "Name": "tree", "Color": [0, 255, 0]}],
    }
    path = craft(
        tmp_path / "arc.dlpk",
        [
            ("arc.emd", json.dumps(emd, indent=4)),
            ("model.pth", weights_bytes(make_state(), tmp_path)),
            ("ModelCharacteristics/loss_graph.png", b"png"),
        ],
    )
    loaded = read_dlpk(path)
    assert loaded.emd == emd and loaded.inference_function is None
    assert set(loaded.state_dict) == set(make_state())


# --- a bare .emd ---------------------------------------------------------------------------


def test_read_emd_with_weights_beside(tmp_path):
    (tmp_path / "model.pth").write_bytes(weights_bytes(make_state(), tmp_path))
    emd_path = tmp_path / "model.emd"
    emd_path.write_text(json.dumps(make_emd(ModelFile="model.pth")))
    loaded = read_emd(emd_path)
    assert loaded.members == ["model.emd", "model.pth"]
    assert torch.equal(loaded.state_dict["conv.weight"], make_state()["conv.weight"])
    assert read_package(emd_path).emd == loaded.emd
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "m.emd").write_text(json.dumps(make_emd(ModelFile="../model.pth")))
    with pytest.raises(UnsafePackageError, match="'..'"):
        read_emd(inner / "m.emd")
    (inner / "m.emd").write_text(json.dumps(make_emd(ModelFile="gone.pth")))
    with pytest.raises(PackageError, match="not beside it"):
        read_package(inner / "m.emd")


def test_read_emd_code_needs_trust(tmp_path):
    (tmp_path / "model.pth").write_bytes(weights_bytes(make_state(), tmp_path))
    (tmp_path / "infer.py").write_text("raise SystemExit('ran')\n")
    emd_path = tmp_path / "model.emd"
    emd_path.write_text(json.dumps(make_emd(ModelFile="model.pth", InferenceFunction="infer.py")))
    with pytest.raises(UnsafePackageError, match="names Python code"):
        read_emd(emd_path)
    loaded = read_emd(emd_path, trust_code=True)
    assert loaded.inference_function == "infer.py" and b"SystemExit" in loaded.code["infer.py"]
