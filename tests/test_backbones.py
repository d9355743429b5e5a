"""torchvision:NAME and timm:NAME backbones: build, train, heads, stems, freezing, weights."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.models import create
from cnnlab.transfer import (
    classifier_layer,
    freeze,
    head_prefix,
    load_pretrained,
    param_groups,
    replace_head,
)

timm = pytest.importorskip("timm")

# (name, side, constructor kwargs): each builds and trains one step in about 0.2-2 s here;
# the two largest (28 M and 86 M parameters) are left out of the quick loop.
BACKBONES = [
    ("torchvision:mobilenet_v3_small", 64, {}),
    ("torchvision:efficientnet_b0", 64, {}),
    ("torchvision:regnet_y_400mf", 64, {}),
    pytest.param("torchvision:convnext_tiny", 64, {}, marks=pytest.mark.slow),
    pytest.param("torchvision:vit_b_16", 32, {"image_size": 32}, marks=pytest.mark.slow),
    ("timm:resnet10t", 64, {}),
    ("timm:efficientnet_b0", 64, {}),
]  # vit_b_16 at its patch size 16 x 2


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, groups=None) -> float:
    opt = torch.optim.AdamW(groups if groups is not None else model.parameters(), lr=1e-3)
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("name, side, kwargs", BACKBONES)
def test_build_and_train_one_step(name, side, kwargs):
    torch.manual_seed(0)
    model = create(name, num_classes=3, in_channels=3, **kwargs)
    head = model.get_submodule(classifier_layer(model))
    before = head.weight.detach().clone()
    x, y = torch.randn(2, 3, side, side), torch.tensor([0, 2])
    loss = _step(model, x, y)
    assert loss == loss and loss > 0  # finite
    assert not torch.equal(head.weight, before)  # the step reached the head
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3)
    assert model.num_classes == 3 and model.cnnlab_name == name


@pytest.mark.parametrize("name", ["torchvision:mobilenet_v3_small", "torchvision:squeezenet1_1",
                                  "torchvision:resnet18", "timm:resnet10t"])
def test_head_replacement_for_3_and_1000_classes(name):
    model = create(name, num_classes=10)
    body = {k: v.clone() for k, v in model.state_dict().items()
            if not k.startswith(classifier_layer(model) + ".")}
    x = torch.randn(2, 3, 64, 64)
    for classes in (3, 1000):
        replace_head(model, classes)
        with torch.no_grad():
            assert model.eval()(x).shape == (2, classes)
        assert model.num_classes == classes
        rest = {k: v for k, v in model.state_dict().items() if k in body}
        assert rest.keys() == body.keys()
        assert all(torch.equal(rest[k], body[k]) for k in body)  # only the last layer is new
        built = create(name, num_classes=classes)  # or built with that head directly
        assert built.get_submodule(classifier_layer(built)).weight.shape[0] == classes


def test_classifier_and_head_names_per_library():
    assert classifier_layer(create("torchvision:mobilenet_v3_small")) == "classifier.3"
    assert classifier_layer(create("torchvision:vit_b_16", image_size=32)) == "heads.head"
    assert head_prefix(create("torchvision:vit_b_16", image_size=32)) == "heads"
    assert head_prefix(create("timm:convnext_atto")) == "head.fc"  # timm's get_classifier


@pytest.mark.parametrize("name, stem", [("torchvision:efficientnet_b0", "features.0.0"),
                                        ("torchvision:resnet18", "conv1"),
                                        ("timm:resnet10t", "conv1.0")])
def test_one_channel_stem_is_the_summed_rgb_filters(name, stem):
    torch.manual_seed(3)
    rgb = create(name, num_classes=4).eval()
    torch.manual_seed(3)
    gray = create(name, num_classes=4, in_channels=1).eval()
    w_rgb, w_gray = rgb.get_submodule(stem).weight, gray.get_submodule(stem).weight
    assert w_gray.shape[1] == 1
    if name.startswith("torchvision:"):  # cnnlab adapts the same random init
        torch.testing.assert_close(w_gray, w_rgb.sum(1, keepdim=True), rtol=0, atol=0)
    # Loading the RGB weights adapts the stem the same way; then a gray image through the
    # 1-channel model equals the image repeated on R, G, B through the RGB model.
    report = load_pretrained(gray, _save(rgb, "rgb.pth"), new_head=False)
    assert report.adapted == [f"{stem}.weight"]
    torch.testing.assert_close(gray.get_submodule(stem).weight, w_rgb.sum(1, keepdim=True))
    g = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(g), rgb(g.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


_TMP: list = []


def _save(model: nn.Module, name: str):
    path = _TMP[0] / name
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def _tmp_for_save(tmp_path):
    _TMP[:] = [tmp_path]
    yield


@pytest.mark.parametrize("name, spec", [("torchvision:mobilenet_v3_small", "backbone"),
                                        ("torchvision:mobilenet_v3_small", "until:features.5"),
                                        ("timm:resnet10t", "until:layer2")])
def test_frozen_tensors_stay_bit_identical(name, spec):
    torch.manual_seed(0)
    model = create(name, num_classes=3)
    frozen = set(freeze(model, spec))
    assert frozen and len(frozen) < len(list(model.parameters()))
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    groups = param_groups(model, head_lr=1e-2, backbone_lr=1e-3)
    _step(model, torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0]), groups)
    for n, p in params.items():
        if n in frozen:
            assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in params.items() if n not in frozen)


def test_discriminative_learning_rates_split_timm_head_from_backbone():
    model = create("timm:resnet10t", num_classes=3)
    groups = {g["name"]: g for g in param_groups(model, head_lr=1e-2, backbone_lr=1e-4)}
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    assert {id(p) for g in ("head", "head_no_decay") for p in groups[g]["params"]} == head_ids
    assert groups["head"]["lr"] == 1e-2 and groups["backbone"]["lr"] == 1e-4


def test_unknown_names_list_the_closest(capsys):
    with pytest.raises(ValueError, match="closest names: torchvision:efficientnet_b0"):
        create("torchvision:efficentnet_b0")
    with pytest.raises(ValueError, match="closest names: timm:resnet10t"):
        create("timm:resnet10tt")
    with pytest.raises(ValueError, match="does not accept the argument"):
        create("torchvision:resnet18", no_such_option=1)
    assert main(["models", "--source", "timm", "no_such_net_xyz"]) == 2
    assert "no timm model matches" in capsys.readouterr().err


def test_missing_timm_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'cnnlab\[timm\]'"):
        create("timm:resnet10t")
    assert main(["summary", "timm:resnet10t", "--input", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'cnnlab[timm]'" in err and len(err.strip().splitlines()) == 1


def test_models_lists_other_libraries_with_params_and_macs(capsys):
    import json

    assert main(["models", "--source", "torchvision", "efficientnet_b[01]",
                 "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["torchvision:efficientnet_b0", "torchvision:efficientnet_b1"]
    b0 = create("torchvision:efficientnet_b0", num_classes=1000)
    assert rows["torchvision:efficientnet_b0"]["params"] == sum(p.numel() for p in b0.parameters())
    assert rows["torchvision:efficientnet_b1"]["input"] == [3, 240, 240]  # its weights' crop
    assert 380e6 < rows["torchvision:efficientnet_b0"]["macs"] < 400e6  # 0.39 GMACs (paper)
    assert main(["models", "--source", "torchvision", "regnet_y_400mf", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)  # RegNet cannot be built on the meta device
    assert row["params"] == 4_344_144 and 400e6 < row["macs"] < 403e6
    assert main(["models", "--source", "timm", "resnet10t", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["input"] == [3, 176, 176]  # timm's pretrained_cfg
    assert row["params"] == sum(p.numel() for p in create("timm:resnet10t", 1000).parameters())


def test_input_size_and_normalization_come_from_the_weights_metadata(tmp_path):
    from cnnlab.transfer._sources import pretrained_image_size

    assert pretrained_image_size("torchvision", "torchvision:efficientnet_b1") == 240
    assert pretrained_image_size("torchvision", "torchvision:vit_h_14") == 518
    assert pretrained_image_size("timm", "timm:resnet10t") == 176
    src = create("timm:inception_v3", num_classes=1000)
    path = tmp_path / "inc.pth"
    torch.save(src.state_dict(), path)
    assert pretrained_image_size(path, "timm:inception_v3") == 299
    report = load_pretrained(create("timm:inception_v3", num_classes=1000), path)
    cfg = src.pretrained_cfg
    assert report.input_size == [3, 299, 299]
    assert report.normalization == {"mean": list(cfg["mean"]), "std": list(cfg["std"])}
    assert cfg["mean"] == (0.5, 0.5, 0.5)  # not ImageNet's: really read from the metadata


def test_pretrained_torchvision_goes_through_torchvisions_cache(monkeypatch, tmp_path):
    import urllib.error

    from torchvision.models import MobileNet_V3_Small_Weights

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    model = create("torchvision:mobilenet_v3_small", num_classes=3, in_channels=1)
    with pytest.raises(FileNotFoundError) as info:
        load_pretrained(model, "torchvision")
    cached = (tmp_path / "hub" / "hub" / "checkpoints"
              / MobileNet_V3_Small_Weights.DEFAULT.url.split("/")[-1])  # $TORCH_HOME/hub
    assert cached.name in str(info.value) and str(cached.parent) in str(info.value)
    reference = create("torchvision:mobilenet_v3_small", num_classes=1000)
    cached.parent.mkdir(parents=True, exist_ok=True)  # the failed download made it
    torch.save(reference.state_dict(), cached)
    report = load_pretrained(model, "torchvision")  # torchvision's own loader, from the cache
    assert report.adapted == ["features.0.0.weight"] and report.imagenet
    assert report.input_size == [1, 224, 224]
    assert model.features[1].block[0][0].weight.equal(reference.features[1].block[0][0].weight)
    with pytest.raises(ValueError, match="use --pretrained timm"):
        load_pretrained(create("timm:resnet10t"), "torchvision")


def test_pretrained_timm_goes_through_timms_hub_cache(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub.constants")
    from safetensors.torch import save_file

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    model = create("timm:resnet10t", num_classes=3, in_channels=1)
    with pytest.raises(FileNotFoundError) as info:
        load_pretrained(model, "timm")
    repo = tmp_path / "models--timm--resnet10t.c3_in1k"
    assert f"{repo}/snapshots/REV/model.safetensors" in str(info.value)
    reference = create("timm:resnet10t", num_classes=1000)
    (repo / "snapshots" / "r1").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
              repo / "snapshots" / "r1" / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("r1")
    report = load_pretrained(model, "timm")  # timm's own loader, from the Hub cache
    assert report.adapted == ["conv1.0.weight"] and len(report.skipped) == 2  # the head
    assert report.input_size == [1, 176, 176]
    assert model.layer1[0].conv1.weight.equal(reference.layer1[0].conv1.weight)


def test_a_new_task_replaces_only_the_logits_layer_of_a_deep_head(tmp_path):
    from cnnlab.checkpoint import save_checkpoint

    source = create("torchvision:mobilenet_v3_small", num_classes=3)
    meta = {"model": {"name": "torchvision:mobilenet_v3_small"}, "class_names": ["a", "b", "c"],
            "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}, "input_size": [3, 64, 64]}
    save_checkpoint(tmp_path / "src.safetensors", source, meta)
    target = create("torchvision:mobilenet_v3_small", num_classes=3)
    report = load_pretrained(target, tmp_path / "src.safetensors", class_names=["x", "y", "z"])
    assert sorted(k for k, _ in report.skipped) == ["classifier.3.bias", "classifier.3.weight"]
    assert target.classifier[0].weight.equal(source.classifier[0].weight)  # hidden layer kept
    assert not target.classifier[3].weight.equal(source.classifier[3].weight)
