"""Offline: no download is ever attempted; ImageNet weights come only from the local torch cache,
the first convolution is adapted to the band count, and the log says which backbone got what."""

from __future__ import annotations

import re
import socket
import urllib.request

import pytest
import torch
import torchvision
from model_support import build, train_step
from torchvision.ops.misc import FrozenBatchNorm2d

from dlstudio_qgis.engine.models import backbone_of, build_model, set_backbone_frozen
from dlstudio_qgis.engine.models.backbones import build_backbone
from dlstudio_qgis.engine.models.darknet import Darknet53
from dlstudio_qgis.engine.models.weights import checkpoint_names, checkpoints_dir


def _no_network(*args, **kwargs):
    raise AssertionError("network access attempted")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty TORCH_HOME and every way to download made to fail loudly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    assert checkpoints_dir() == tmp_path / "torch" / "hub" / "checkpoints"
    return tmp_path


def _cache(backbone: str, state: dict) -> str:
    """Save a state dict where torch.hub would have downloaded the backbone's weights."""
    folder = checkpoints_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_names(backbone)[0]
    torch.save(state, path)
    return str(path)


def _seeded(module: torch.nn.Module, seed: int = 3) -> dict:
    """The module's state dict, with reproducible non-default values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    return module.state_dict()


def test_nothing_cached_means_random_weights_and_a_log_line(offline):
    lines = []
    model = build_model("UNET", "RESNET18", 2, 4, 64, log=lines.append)
    assert model.dls_info.weights is None and not model.dls_info.pretrained
    assert any(
        "RESNET18: no ImageNet weights in the local torch cache" in line
        and "resnet18-f37072fd.pth" in line
        and "random" in line
        for line in lines
    ), lines
    assert any("first convolution adapted to 4 bands (randomly initialised)" in x for x in lines)


def test_checkpoint_file_names_are_torchvision_s():
    assert checkpoint_names("RESNET50")[0] == "resnet50-11ad3fa6.pth"  # DEFAULT (V2) first
    assert "resnet50-0676ba61.pth" in checkpoint_names("RESNET50")
    assert checkpoint_names("VGG16_BN") == ["vgg16_bn-6c64b313.pth"]
    assert checkpoint_names("DARKNET53") == ["darknet53.pth"]


@pytest.mark.parametrize(
    ("name", "make", "first_conv"),
    [
        ("RESNET18", lambda: torchvision.models.resnet18(weights=None), "conv1.weight"),
        ("MOBILENET_V2", lambda: torchvision.models.mobilenet_v2(), "features.0.0.weight"),
        ("DARKNET53", Darknet53, "stem.conv.weight"),
    ],
)
def test_cached_weights_are_loaded_and_logged(offline, name, make, first_conv):
    state = _seeded(make())
    path = _cache(name, state)
    lines = []
    rgb = build_backbone(name, 3, log=lines.append)
    assert rgb.weights == path
    assert f"Backbone {name}: ImageNet weights loaded from {path}." in lines
    assert torch.equal(_first_conv(rgb).weight, state[first_conv])
    last_state = [v for k, v in state.items() if k.endswith("weight")][-2]  # a deep layer too
    assert any(torch.equal(p, last_state) for p in rgb.parameters())


def _first_conv(backbone) -> torch.nn.Conv2d:
    return next(m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d))


def test_pretrained_filters_are_spread_over_more_or_fewer_bands(offline):
    state = _seeded(torchvision.models.resnet18(weights=None))
    _cache("RESNET18", state)
    rgb = state["conv1.weight"]
    lines = []
    four = _first_conv(build_backbone("RESNET18", 4, log=lines.append)).weight
    assert four.shape[1] == 4
    assert torch.allclose(four[:, :3], rgb * 0.75)
    assert torch.allclose(four[:, 3], rgb.mean(1) * 0.75)
    assert any("adapted to 4 bands (from the RGB filters)" in line for line in lines)
    one = _first_conv(build_backbone("RESNET18", 1, log=lines.append)).weight
    assert torch.allclose(one[:, 0], rgb.sum(1), atol=1e-6)


def test_vgg_weights_skip_the_classifier_and_old_densenet_keys_load(offline):
    vgg = torchvision.models.vgg11(weights=None)
    vgg.classifier = torch.nn.Sequential()  # the 100M classifier weights play no part
    vgg_state = _seeded(vgg)
    vgg_state["classifier.6.weight"] = torch.zeros(1000, 4096)  # as in the real file: ignored
    _cache("VGG11", vgg_state)
    got = build_backbone("VGG11", 3, log=print)
    assert got.pretrained and torch.equal(_first_conv(got).weight, vgg_state["features.0.weight"])

    dense = _seeded(torchvision.models.densenet121(weights=None))
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    old = {}
    for key, value in dense.items():  # the key style of torchvision's published DenseNet files
        match = pattern.match(key)
        old[f"{match.group(1)}.{match.group(2)}" if match else key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    _cache("DENSENET121", old)
    got = build_backbone("DENSENET121", 3, log=print)
    key = "features.denseblock1.denselayer1.norm1.weight"
    assert got.pretrained
    assert torch.equal(got.stages[1][1].denselayer1.norm1.weight, dense[key])


def test_a_checkpoint_that_does_not_fit_is_an_error(offline):
    _cache("RESNET34", torchvision.models.resnet18(weights=None).state_dict())
    with pytest.raises(ValueError, match="RESNET34: resnet34-b627a593.pth does not fit"):
        build_backbone("RESNET34", 3, log=print)


def test_explicit_file_and_none(offline, tmp_path):
    state = _seeded(torchvision.models.resnet18(weights=None))
    path = tmp_path / "mine.pth"
    torch.save(state, path)
    lines = []
    model = build_model("FASTERRCNN", "RESNET18", 2, 3, 64, pretrained=path, log=lines.append)
    assert model.dls_info.weights == str(path)
    assert torch.equal(_first_conv(backbone_of(model)).weight, state["conv1.weight"])
    _cache("RESNET18", state)
    lines.clear()
    model = build_model(
        "FEATURE_CLASSIFIER", "RESNET18", 2, 3, 64, pretrained=None, log=lines.append
    )
    assert model.dls_info.weights is None
    assert lines == [
        "Backbone RESNET18: random initial weights (pretrained weights not requested)."
    ]
    with pytest.raises(FileNotFoundError):
        build_model("UNET", "RESNET18", 2, 3, 64, pretrained=tmp_path / "missing.pth")


def test_pretrained_detector_backbones_get_frozen_batch_norm(offline):
    _cache("RESNET18", _seeded(torchvision.models.resnet18(weights=None)))
    detector = build_model("RETINANET", "RESNET18", 2, 3, 64, log=print)
    kinds = {type(m) for m in backbone_of(detector).modules()}
    assert FrozenBatchNorm2d in kinds and torch.nn.BatchNorm2d not in kinds
    unet = build_model("UNET", "RESNET18", 2, 3, 64, log=print)
    assert FrozenBatchNorm2d not in {type(m) for m in unet.modules()}


def test_frozen_backbone_stays_put_and_its_state_dict_loads_afresh():
    model = build("UNET", "RESNET18")
    set_backbone_frozen(model)
    backbone = backbone_of(model)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    head_before = model.decoder.classifier.weight.clone()
    train_step(model, "semantic_segmentation", 2, 4, 64)
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, model.decoder.classifier.weight)
    fresh = build("UNET", "RESNET18")
    fresh.load_state_dict(model.state_dict())  # strict: inference rebuilds with build_model
    set_backbone_frozen(model, False)
    assert all(p.requires_grad for p in backbone.parameters())
