"""cnnlab.inspect on whole models: torchvision's published figures and the cnnlab model zoo.

Models are built on the ``meta`` device (no weight initialization, no compute): shapes, parameter
counts, MACs and receptive fields are exact there, and one test checks that a real CPU model
gives the same summary. The empirical receptive field needs real arithmetic; it runs on a thin
input (tall in H, narrow in W) so the central unit's field fits in H at a fraction of the cost.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from cnnlab import models
from cnnlab.inspect import receptive_field, summary

pytestmark = pytest.mark.usefixtures("one_thread")


# torchvision's published figures: parameters and GFLOPS (which are multiply-adds, i.e. MACs).
PUBLISHED = {
    "resnet18": (11_689_512, 1.81),
    "resnet50": (25_557_032, 4.09),
    "vgg11": (132_863_336, 7.61),
    "vgg16": (138_357_544, 15.47),
    "alexnet": (61_100_840, 0.71),
    "googlenet": (6_624_904, 1.50),
    "mobilenet_v2": (3_504_872, 0.30),
}
# published analytic receptive fields of branch-free nets (last conv/pool stage)
PUBLISHED_RF = {"alexnet": 195, "vgg11": 150, "vgg16": 212}


def _torchvision(name: str, device: str = "meta") -> torch.nn.Module:
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    with torch.device(device):
        return torchvision.models.get_model(name, weights=None, **kwargs)


@pytest.fixture(scope="module")
def torchvision_summaries():
    return {name: summary(_torchvision(name), (1, 3, 224, 224)) for name in PUBLISHED}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_torchvision_params_exact_and_macs_within_2_percent(torchvision_summaries, name):
    s = torchvision_summaries[name]
    params, gmacs = PUBLISHED[name]
    assert s.totals.params == params
    assert s.totals.trainable == params and s.totals.frozen == 0
    assert s.totals.macs / 1e9 == pytest.approx(gmacs, rel=0.02)
    assert s.totals.flops == 2 * s.totals.macs
    assert s.not_counted == {}
    # ReLU, batch norm, pooling and residual adds are counted too, apart from MACs
    assert s.totals.ops > 0


@pytest.mark.parametrize("name", list(PUBLISHED_RF))
def test_torchvision_published_receptive_fields(torchvision_summaries, name):
    row = torchvision_summaries[name].receptive_field
    # AdaptiveAvgPool2d at 224 input is the identity (7x7 -> 7x7, 6x6 -> 6x6)
    assert row.name == "avgpool" and row.rf_exact
    assert row.rf == (PUBLISHED_RF[name],) * 2
    assert row.jump == (32, 32)


def test_residual_and_inception_models_report_their_last_block(torchvision_summaries):
    assert torchvision_summaries["resnet18"].receptive_field.name == "layer4"
    assert torchvision_summaries["resnet18"].receptive_field.rf == (435, 435)
    assert torchvision_summaries["resnet50"].receptive_field.rf == (427, 427)
    assert torchvision_summaries["googlenet"].receptive_field.name == "inception5b"


def test_real_cpu_model_gives_the_same_summary_as_meta():
    torch.manual_seed(0)
    cpu_model = _torchvision("resnet18", "cpu")
    real = summary(cpu_model, (1, 3, 64, 64), depth=10, compute=True)
    shape_only = summary(cpu_model, (1, 3, 64, 64), depth=10)  # default: meta stand-ins
    meta = summary(_torchvision("resnet18"), (1, 3, 64, 64), depth=10)
    keys = [(r.name, r.output_shapes, r.params, r.macs, r.ops, r.activation_bytes, r.rf, r.start)
            for r in real.rows]  # fmt: skip
    for other in (shape_only, meta):
        assert other.totals == real.totals
        assert [
            (r.name, r.output_shapes, r.params, r.macs, r.ops, r.activation_bytes, r.rf, r.start)
            for r in other.rows
        ] == keys


@pytest.mark.slow
@pytest.mark.parametrize("name", models.list_models())
def test_zoo_summary(name):
    with torch.device("meta"):
        net = models.create(name)
    s = summary(net, (2, 3, 96, 96))
    distinct = {id(p): p for p in net.parameters()}.values()
    assert s.totals.params == sum(p.numel() for p in distinct)
    assert s.not_counted == {}
    assert s.calls[0].output_shapes == [(2, 10)]
    assert s.totals.macs > 0 and s.totals.activation_bytes > 0
    assert s.receptive_field is not None
    assert sum(r.macs for r in s.rows) == s.totals.macs


# (model, options, layer, thin input (1, C, H, W) whose H holds the central unit's field, RF in
# H). The receptive field does not depend on widths, so MobileNetV2 runs at width_mult 0.25;
# AlexNet's adaptive pooling at a non-224 input is a resampling, so its features are measured.
EMPIRICAL = [
    ("torchvision:resnet18", {}, None, (1, 3, 448, 32), 435),
    ("torchvision:resnet50", {}, None, (1, 3, 448, 32), 427),
    ("simple_cnn_bn", {}, None, (1, 3, 64, 32), 14),
    ("lenet5", {}, None, (1, 3, 28, 28), 16),
    ("alexnet", {}, "features", (1, 3, 256, 64), 195),
    ("nin", {}, None, (1, 3, 224, 96), 195),
    ("googlenet", {}, None, (1, 3, 416, 32), 379),
    ("mobilenet_v2", {"width_mult": 0.25}, None, (1, 3, 512, 32), 491),
    ("shufflenet_v1", {}, None, (1, 3, 576, 32), 527),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, options, layer, size, expected", EMPIRICAL, ids=[e[0] for e in EMPIRICAL]
)
def test_analytic_receptive_field_equals_gradient_support(name, options, layer, size, expected):
    if name.startswith("torchvision:"):
        net = _torchvision(name.split(":")[1])
    else:
        with torch.device("meta"):
            net = models.create(name, **options)
    rf = receptive_field(net, size, layer=layer, dtype=torch.float32)
    assert not rf.clipped_dims[0], "the input must hold the whole field in H"
    assert rf.size[0] == rf.analytic_size[0] == expected
    assert rf.box[0] == rf.analytic_box[0]
    assert rf.agrees
