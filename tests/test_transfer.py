"""Transfer learning: pretrained loading, head replacement, freezing and parameter groups."""

from __future__ import annotations

import hashlib
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.checkpoint import save_checkpoint
from cnnlab.transfer import (
    add_param_groups,
    freeze,
    freeze_bn_stats,
    load_pretrained,
    param_groups,
    unfreeze,
)


def _tv_resnet18(num_classes: int = 1000, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=num_classes)


def _train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 3) -> None:
    model.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 3, 32, 32, generator=g)
        y = torch.randint(0, 5, (4,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_frozen_backbone_is_bit_identical_after_training_while_head_changes():
    model = _tv_resnet18(num_classes=5)
    frozen = freeze(model, "backbone")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = param_groups(model, head_lr=0.1, backbone_lr=0.01, weight_decay=0.1)
    opt = torch.optim.AdamW(groups)
    _train_steps(model, opt)
    params = dict(model.named_parameters())
    assert len(frozen) == len(params) - 2
    for name in frozen:
        assert torch.equal(params[name], before[name]), name
    assert not torch.equal(params["fc.weight"], before["fc.weight"])
    assert not torch.equal(params["fc.bias"], before["fc.bias"])


def test_optimizer_holds_exactly_the_trainable_parameters():
    model = _tv_resnet18(num_classes=5)
    freeze(model, "until:layer2")
    opt = torch.optim.SGD(param_groups(model, head_lr=0.1, backbone_lr=0.01, weight_decay=1e-4))
    held = [p for g in opt.param_groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(held) == len({id(p) for p in held})  # no parameter twice
    assert {id(p) for p in held} == {id(p) for p in trainable}
    names = {id(p): n for n, p in model.named_parameters()}
    assert not any(names[id(p)].startswith(("conv1.", "bn1.", "layer1.", "layer2.")) for p in held)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["head"]["lr"] == 0.1 and by_name["backbone"]["lr"] == 0.01
    # no decay on biases and norm parameters
    assert all(p.ndim <= 1 for p in by_name["backbone_no_decay"]["params"])
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in by_name["backbone"]["params"])


def test_freeze_until_layer_and_bad_specs():
    model = _tv_resnet18(num_classes=5)
    frozen = freeze(model, "until:layer1")
    assert frozen[0] == "conv1.weight" and frozen[-1].startswith("layer1.1.")
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("layer2."))
    assert freeze(model, "none") == []
    with pytest.raises(ValueError, match=r"no module 'layer9'.*valid top-level layers are conv1"):
        freeze(model, "until:layer9")
    with pytest.raises(ValueError, match="whole model including its head"):
        freeze(model, "until:fc")
    with pytest.raises(ValueError, match="freeze must be one of"):
        freeze(model, "everything")


def test_gradual_unfreeze_adds_groups_that_follow_the_schedule():
    model = _tv_resnet18(num_classes=5)
    freeze(model, "backbone")
    opt = torch.optim.SGD(param_groups(model, head_lr=0.1), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    _train_steps(model, opt, steps=1)
    sched.step()  # the head now runs at 0.05
    conv1 = model.conv1.weight.detach().clone()
    added = add_param_groups(opt, model, unfreeze(model), lr=0.01, scheduler=sched)
    assert {g["name"] for g in added} == {"backbone", "backbone_no_decay"}
    assert [g["lr"] for g in added] == pytest.approx([0.005, 0.005])  # same point of schedule
    _train_steps(model, opt, steps=1)
    sched.step()
    assert not torch.equal(model.conv1.weight, conv1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 0.025, 0.0025, 0.0025])


def test_freeze_bn_stats_keeps_running_statistics_and_eval_mode():
    model = _tv_resnet18(num_classes=5)
    assert freeze_bn_stats(model) == 20
    model.train()
    assert not model.bn1.training and model.layer1[0].bn2.training is False
    before = model.bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32) * 3 + 1)
    assert torch.equal(model.bn1.running_mean, before)
    assert isinstance(model.bn1, nn.BatchNorm2d)
    assert set(model.state_dict()) == set(_tv_resnet18(5).state_dict())


def test_torchvision_state_dict_file_loads_into_cnnlab_resnet18_with_same_outputs(tmp_path):
    from cnnlab.models import create

    reference = _tv_resnet18(seed=3).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create("resnet18", num_classes=1000)
    report = load_pretrained(model, path)
    assert report.skipped == [] and report.missing == [] and report.unused == []
    assert report.imagenet and report.input_size == [3, 224, 224]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=1e-5)


def test_new_class_count_replaces_the_head_and_reports_it(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": _tv_resnet18().state_dict()}, path)  # wrapped dicts work too
    model = _tv_resnet18(num_classes=7, seed=1)
    head_before = model.fc.weight.detach().clone()
    report = load_pretrained(model, path)
    assert [k for k, _ in report.skipped] == ["fc.weight", "fc.bias"]
    assert "new head" in report.skipped[0][1] and "(1000, 512)" in report.skipped[0][1]
    assert torch.equal(model.fc.weight, head_before)
    assert torch.equal(model.conv1.weight, _tv_resnet18().conv1.weight)
    assert "skipped fc.weight" in report.summary()


def test_one_channel_model_gets_the_summed_rgb_filters_exactly(tmp_path):
    reference = _tv_resnet18().eval()
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    torch.manual_seed(5)
    gray_model = torchvision.models.resnet18()
    gray_model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    report = load_pretrained(gray_model, path)
    assert report.adapted == ["conv1.weight"]
    assert report.normalization["mean"] == [pytest.approx(sum((0.485, 0.456, 0.406)) / 3)]
    gray = torch.rand(2, 1, 48, 48)
    with torch.no_grad():  # a gray image == the same image replicated to R, G, B
        torch.testing.assert_close(
            gray_model.eval()(gray), reference(gray.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4
        )


def test_cnnlab_checkpoint_and_run_directory_sources(tmp_path):
    source = nn.Sequential()
    source.add_module("body", nn.Conv2d(1, 4, 3))
    source.add_module("head", nn.Linear(4, 3))
    meta = {
        "model": {"name": "x"},
        "class_names": ["a", "b", "c"],
        "normalization": {"mean": [0.2], "std": [0.3]},
        "input_size": [1, 16, 16],
    }
    save_checkpoint(tmp_path / "run" / "best.safetensors", source, meta)
    target = nn.Sequential()
    target.add_module("body", nn.Conv2d(1, 4, 3))
    target.add_module("head", nn.Linear(4, 6))
    report = load_pretrained(target, tmp_path / "run")
    assert report.loaded == ["body.weight", "body.bias"]
    assert report.normalization == {"mean": [0.2], "std": [0.3]}
    assert report.input_size == [1, 16, 16] and report.class_names == ["a", "b", "c"]
    assert not report.imagenet
    assert torch.equal(target.body.weight, source.body.weight)
    report = load_pretrained(target, tmp_path / "run" / "best.safetensors")
    assert len(report.loaded) == 2


def test_pretrained_image_size_per_source(tmp_path):
    from safetensors.torch import save_file

    from cnnlab.transfer._sources import pretrained_image_size

    net = nn.Sequential(nn.Conv2d(1, 4, 3))
    save_checkpoint(tmp_path / "run" / "best.safetensors", net, {"input_size": [1, 16, 16]})
    save_checkpoint(tmp_path / "wide.safetensors", net, {"input_size": [1, 16, 24]})
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    save_file(net.state_dict(), str(tmp_path / "plain.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    assert pretrained_image_size("torchvision") == pretrained_image_size("torchvision:V2") == 224
    assert pretrained_image_size(tmp_path / "run") == 16  # a cnnlab run: its training size
    assert pretrained_image_size(tmp_path / "run" / "best.safetensors") == 16
    assert pretrained_image_size(tmp_path / "plain.pth") == 224  # bare state dicts: ImageNet
    assert pretrained_image_size(tmp_path / "plain.safetensors") == 224
    assert pretrained_image_size(tmp_path / "wide.safetensors") is None  # not square
    assert pretrained_image_size(tmp_path / "broken.safetensors") is None  # reported later
    assert pretrained_image_size(tmp_path / "missing.pth") is None
    assert pretrained_image_size(tmp_path / "empty-dir-is-no-run") is None


def test_a_fitting_head_is_replaced_when_the_classes_differ(tmp_path):
    def net():
        m = nn.Sequential()
        m.add_module("body", nn.Conv2d(1, 4, 3))
        m.add_module("head", nn.Linear(4, 3))
        return m

    source = net()
    meta = {"model": {"name": "x"}, "class_names": ["0", "1", "2"]}
    save_checkpoint(tmp_path / "best.safetensors", source, meta)
    target = net()
    report = load_pretrained(target, tmp_path / "best.safetensors", class_names=["7", "8", "9"])
    assert [k for k, _ in report.skipped] == ["head.weight", "head.bias"]
    assert not torch.equal(target.head.weight, source.head.weight)
    report = load_pretrained(target, tmp_path / "best.safetensors", class_names=["0", "1", "2"])
    assert torch.equal(target.head.weight, source.head.weight)  # same task: keep the head
    report = load_pretrained(net(), tmp_path / "best.safetensors", new_head=True)
    assert len(report.skipped) == 2


def test_bad_sources_give_clear_errors(tmp_path):
    model = _tv_resnet18(num_classes=5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(model, tmp_path / "nope.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"weights": nn.Linear(2, 2)}, evil)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="not allowed to be unpickled|not a loadable"):
        load_pretrained(model, evil)
    other = tmp_path / "other.pth"
    torch.save(nn.Linear(3, 3).state_dict(), other)
    with pytest.raises(ValueError, match="does not fit ResNet"):
        load_pretrained(model, other)
    with pytest.raises(ValueError, match="torchvision has no ImageNet weights for model 'nonet'"):
        load_pretrained(model, "torchvision", arch="nonet")


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """torch.hub with its cache in tmp_path and every download failing like a machine offline."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_torchvision_source_offline_names_the_file_and_folder(offline_hub):
    from cnnlab.models import create

    model = create("resnet18", num_classes=5)  # the architecture is recognised from the zoo
    with pytest.raises(FileNotFoundError) as info:
        load_pretrained(model, "torchvision")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message and str(offline_hub) in message
    assert "Offline, place the file" in message
    assert list(offline_hub.iterdir()) == []  # no partial download left behind


def test_torchvision_source_loads_a_file_placed_in_the_cache(offline_hub):
    # torch.hub checks the SHA-256 prefix in the file name ("f37072fd") only while downloading;
    # a file already in the cache is loaded as it is. So a random-init state dict placed under
    # the exact name goes through torchvision's real loading code, offline.
    reference = _tv_resnet18(seed=7).eval()
    offline_hub.mkdir(parents=True)
    cached = offline_hub / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), cached)
    assert not hashlib.sha256(cached.read_bytes()).hexdigest().startswith("f37072fd")
    model = _tv_resnet18(num_classes=1000, seed=8)
    report = load_pretrained(model, "torchvision", arch="resnet18")
    assert len(report.loaded) == len(reference.state_dict()) and report.imagenet
    assert report.normalization == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=0)
