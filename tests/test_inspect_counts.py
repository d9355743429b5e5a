"""cnnlab.inspect.summary on small layers: hand-derived params, MACs, other ops, RF, jump, start.

Each expectation below is derived by hand in its comment (torch-scan style), not read back from
the code under test.
"""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.inspect import ForwardError, summary, trace
from cnnlab.layers import shapes


def _root(s):
    return s.calls[0]


# (id, module, input shape, params, MACs, other ops, rf, jump, start) of the module's output.
CASES = [
    # 8 filters of 3x3x3 + 8 biases = 224; 8*10*10 outputs, 27 MACs each; rf 3, start 0.
    ("conv", nn.Conv2d(3, 8, 3, padding=1), (1, 3, 10, 10), 224, 21600, 0, (3, 3), (1, 1), (0, 0)),
    # groups=2: weight (6, 2, 3, 5) + 6 bias = 186. H: (9+2-2-1)//2+1 = 5; W with dilation 2:
    # k_eff = 2*4+1 = 9, (11+4-8-1)//1+1 = 7; MACs 6*5*7*(2*15) = 6300.
    # start: H ((3-1)/2 - 1)*1 = 0; W ((9-1)/2 - 2) = 2.
    ("conv-groups-dilation-rect",
     nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
     (1, 4, 9, 11), 186, 6300, 0, (3, 9), (2, 1), (0, 2)),
    # depthwise: weight (4, 1, 3, 3) = 36, no bias; out 4x4x4, 9 MACs each = 576; stride 2, p 0:
    # start (3-1)/2 = 1.
    ("depthwise", nn.Conv2d(4, 4, 3, stride=2, groups=4, bias=False), (1, 4, 9, 9), 36, 576, 0,
     (3, 3), (2, 2), (1, 1)),
    # 1-D: out (11-3)//2+1 = 5; 4*5 outputs x 2*3 = 120 MACs; params 4*2*3+4 = 28; start 1.
    ("conv1d", nn.Conv1d(2, 4, 3, stride=2), (1, 2, 11), 28, 120, 0, (3,), (2,), (1,)),
    # 3-D: out 3^3 per filter, 2 filters, 27 MACs each = 1458; params 2*27+2 = 56.
    ("conv3d", nn.Conv3d(1, 2, 3), (1, 1, 5, 5, 5), 56, 1458, 0, (3, 3, 3), (1, 1, 1), (1, 1, 1)),
    # transposed: each of 4*5*5 = 100 inputs scatters 2*3*3 = 18 MACs = 1800; params 4*2*9+2.
    # phases of o+p-t (p=1, t=0..2) divisible by 2: o even -> t=1 only; o odd -> t=0,2 -> inputs
    # 1 and 0, span 1: rf 1+1 = 2; jump 1/2; start (p - (k-1)/2)/s = 0.
    ("conv-transpose", nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
     (1, 4, 5, 5), 74, 1800, 0, (2, 2), (0.5, 0.5), (0, 0)),
    # Linear: 3 rows x 5 outputs x 20 inputs = 300 MACs; 105 params; no spatial path.
    ("linear", nn.Linear(20, 5), (3, 20), 105, 300, 0, None, None, None),
    # max pool k3 s2 p1 on 8x8: out 4x4; 2*16 outputs x 8 comparisons = 256.
    ("maxpool", nn.MaxPool2d(3, 2, 1), (1, 2, 8, 8), 0, 0, 256, (3, 3), (2, 2), (0, 0)),
    # avg pool 2: out 4x4; 2*16 x (3 adds + 1 div) = 128; start 0.5 (centre of pixels 0, 1).
    ("avgpool", nn.AvgPool2d(2), (1, 2, 8, 8), 0, 0, 128, (2, 2), (2, 2), (0.5, 0.5)),
    # adaptive 7 -> 3: windows [0,3) [2,5) [4,7), 9 taps per dim, 81 per map; k_max 3;
    # jump 7/3; unit 0 centred on its window of 3: start 1.
    ("adaptive-avg", nn.AdaptiveAvgPool2d(3), (1, 1, 7, 7), 0, 0, 81, (3, 3), (7 / 3, 7 / 3),
     (1, 1)),
    # global average: 2 maps x 49 taps = 98; rf 1 + 6 = 7, centred at 3.
    ("global-avg", nn.AdaptiveAvgPool2d(1), (1, 2, 7, 7), 0, 0, 98, (7, 7), (7, 7), (3, 3)),
    # adaptive max 4 -> 2: windows of 2, one comparison each: 2*2*... 1 map x 4 outputs x 1.
    ("adaptive-max", nn.AdaptiveMaxPool2d(2), (1, 1, 4, 4), 0, 0, 12, (2, 2), (2, 2), (0.5, 0.5)),
    # batch norm (eval): scale + shift per element: 2 * 2*4*3*3 = 144; gamma, beta = 8 params.
    ("batchnorm", nn.BatchNorm2d(4), (2, 4, 3, 3), 8, 0, 144, (1, 1), (1, 1), (0, 0)),
    # layer norm over 8 features: 4 per element (mean, variance, scale, shift) = 4*2*8.
    ("layernorm", nn.LayerNorm(8), (2, 8), 16, 0, 64, None, None, None),
    ("relu", nn.ReLU(), (1, 3, 4, 4), 0, 0, 48, (1, 1), (1, 1), (0, 0)),
    # nearest upsampling copies: 0; each output unit reads one input unit: rf 1, jump 1/2.
    ("upsample-nearest", nn.Upsample(scale_factor=2), (1, 1, 4, 4), 0, 0, 0, (1, 1), (0.5, 0.5),
     (0, 0)),
    # bilinear: 4 neighbours, one MAC each, per output: 4 * 64 = 256; rf spans 2 input units.
    ("upsample-bilinear", nn.Upsample(scale_factor=2, mode="bilinear"), (1, 1, 4, 4), 0, 256, 0,
     (2, 2), (0.5, 0.5), (0, 0)),
    # LRN size 5: (2*5 + 3) per element = 13 * 1*6*3*3.
    ("lrn", nn.LocalResponseNorm(5), (1, 6, 3, 3), 0, 0, 702, (1, 1), (1, 1), (0, 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    "module, shape, params, macs, ops, rf, jump, start",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_layer_table(module, shape, params, macs, ops, rf, jump, start):
    s = summary(module, shape)
    assert s.totals.params == params
    assert s.totals.macs == macs
    assert s.totals.flops == 2 * macs
    assert s.totals.ops == ops
    assert s.not_counted == {}
    row = _root(s)
    if rf is None:
        assert row.rf is None
    else:
        assert row.rf == pytest.approx(rf)
        assert row.jump == pytest.approx(jump)
        assert row.start == pytest.approx(start)


class Residual(nn.Module):
    """x + conv(x) written with ``+`` and with ``torch.add`` in forward, plus in-place ``+=``."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.style = style

    def forward(self, x):
        y = self.conv(x)
        if self.style == "operator":
            return x + y
        if self.style == "torch.add":
            return torch.add(x, y)
        y += x
        return y


@pytest.mark.parametrize("style", ["operator", "torch.add", "inplace"])
def test_residual_add_is_counted_in_the_block(style):
    s = summary(Residual(style), (1, 2, 5, 5))
    # conv: 2*25 outputs x 18 MACs = 900; the add: 50 additions, charged to the block itself
    assert s.totals.macs == 900
    assert s.totals.ops == 50
    root, conv = s.calls[0], s.calls[1]
    assert (root.ops, conv.ops) == (50, 0)
    # merge rule: identity path (rf 1) and conv path (rf 3) -> the largest, 3
    assert root.rf == (3, 3) and root.start == (0, 0)
    # the in-place add allocates nothing; x + y allocates 50 floats
    assert root.activation_bytes == (0 if style == "inplace" else 50 * 4)


class Branches(nn.Module):
    """Inception-style: 1x1, 3x3 and 5x5 branches concatenated with torch.cat."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(1, 1, 1)
        self.b3 = nn.Conv2d(1, 1, 3, padding=1)
        self.b5 = nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1)


def test_concatenation_takes_the_largest_branch_and_costs_no_arithmetic():
    s = summary(Branches(), (1, 1, 8, 8))
    # 64 outputs per branch x (1 + 9 + 25) MACs
    assert s.totals.macs == 64 * 35
    assert s.totals.ops == 0 and s.not_counted == {}
    assert s.calls[0].rf == (5, 5) and s.calls[0].start == (0, 0)
    assert s.calls[0].output_shapes == [(1, 3, 8, 8)]
    # the concatenation allocates its output: 3*64 floats
    assert s.calls[0].activation_bytes == 3 * 64 * 4


class Functional(nn.Module):
    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return torch.cumsum(x, 1)


def test_functional_ops_are_seen_and_unknown_ops_listed_by_name():
    s = summary(Functional(), (1, 1, 4, 4))
    # max pool of the 8x8 upsampled map: 16 outputs x 3 comparisons
    assert s.totals.ops == 48
    assert s.not_counted == {"cumsum": 1}
    assert "not counted: cumsum (1×)" in str(s)
    assert s.to_dict()["not_counted"] == {"cumsum": 1}


def test_shared_parameters_are_counted_once():
    lin = nn.Linear(4, 4)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    s = summary(net, (2, 4))
    assert s.totals.params == 20
    assert sum(r.params for r in s.rows) == 20
    assert s.calls[1].params == 20 and s.calls[3].params == 0 and s.calls[3].shared == 20
    # both calls do their MACs: 2 x (2 rows x 4 x 4)
    assert s.totals.macs == 64
    assert any("shared parameters counted once" in n for n in s.notes)


def test_frozen_parameters_and_column_sums():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU()))
    for p in net[0].parameters():
        p.requires_grad_(False)
    s = summary(net, (1, 1, 9, 9), depth=1)
    assert (s.totals.trainable, s.totals.frozen) == (38, 20)
    for depth in range(3):
        rows = s.rows_at(depth)
        assert sum(r.params for r in rows) == s.totals.params
        assert sum(r.macs for r in rows) == s.totals.macs
        assert sum(r.ops for r in rows) == s.totals.ops
        assert sum(r.activation_bytes for r in rows) == s.totals.activation_bytes
    assert [r.name for r in s.rows] == ["", "0", "1"]
    assert "Frozen" in str(s)


class TwoInOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(1, 4, 3)

    def forward(self, image, mask, scale=1.0):
        ya, yb = self.a(image), self.b(mask)
        return {"sum": ya + yb * scale, "parts": (ya, yb)}


def test_several_inputs_dict_and_tuple_outputs():
    s = summary(TwoInOut(), [(1, 3, 6, 6), (1, 1, 6, 6)])
    assert s.input_shapes == [(1, 3, 6, 6), (1, 1, 6, 6)]
    assert s.calls[0].output_shapes == [(1, 4, 4, 4)] * 3
    # 2 convs: 64 outputs x 27 and 64 x 9 MACs; then mul and add: 2 x 64
    assert s.totals.macs == 64 * 27 + 64 * 9
    assert s.totals.ops == 128
    kw = summary(TwoInOut(), {"image": (1, 3, 6, 6), "mask": (1, 1, 6, 6)}, scale=2.0)
    assert kw.totals.macs == s.totals.macs
    tensors = summary(TwoInOut(), (torch.zeros(1, 3, 6, 6), torch.zeros(1, 1, 6, 6)))
    assert tensors.totals.macs == s.totals.macs


def test_input_too_small_names_first_layer_and_size():
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(2, 2, 3)), nn.Conv2d(2, 2, 3)
    )
    # 6 -> conv 4 -> pool 2 -> conv: (2 - 3)//1 + 1 = 0
    with pytest.raises(ValueError, match=r"reaches 0 at layer '1\.1' \(Conv2d\).*\(1, 2, 2, 2\)"):
        summary(net, (1, 1, 6, 6))
    # 3 -> conv 1 -> pool 2 on 1 pixel gives 0 at the pool
    with pytest.raises(ValueError, match=r"layer '1\.0' \(MaxPool2d\)"):
        summary(net, (1, 1, 3, 3))


class Empty(nn.Module):
    def forward(self, x):
        return x[:, :, 4:]


def test_silent_empty_spatial_output_is_reported():
    with pytest.raises(ValueError, match="reaches 0"):
        summary(Empty(), (1, 1, 3, 3))


def test_failure_names_layers_restores_mode_and_removes_hooks():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(5, 2))
    net.train()
    net[1].eval()
    with pytest.raises(ForwardError, match=r"'2' \(Linear\).*2 layers ran.*'?1'? -> \(1, 4, 6, 6\)"):
        summary(net, (1, 3, 8, 8))
    assert net.training and not net[1].training and net[0].training
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_summary_runs_in_eval_and_does_not_touch_bn_statistics():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    net.train()
    before = net[1].running_mean.clone(), int(net[1].num_batches_tracked)
    summary(net, torch.randn(4, 1, 6, 6))
    assert torch.equal(net[1].running_mean, before[0])
    assert int(net[1].num_batches_tracked) == before[1]
    assert net.training


@pytest.mark.parametrize(
    "bad", [(), (1, 0, 4), "1x3x4", [1.5, 2], None, {"x": "a"}], ids=str
)
def test_bad_input_size_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="input_size"):
        summary(nn.Conv2d(1, 1, 1), bad)


def test_bad_depth_and_model():
    with pytest.raises(ValueError, match="depth"):
        summary(nn.ReLU(), (1, 2), depth=-1)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        summary("resnet18", (1, 3, 8, 8))


def test_exports_table_json_csv():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2))
    s = summary(net, (1, 1, 5, 5))
    text = str(s)
    assert "FLOPs = 2 × MACs" in text and "Conv2d" in text and "k3 s1 p0" in text
    data = json.loads(s.to_json())
    assert data["totals"]["params"] == 20 + 38
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"]
    assert [r["name"] for r in data["rows"]] == ["", "0", "1", "2", "3"]
    assert data["rows"][1]["rf"] == [3, 3] and data["rows"][4]["rf"] is None
    lines = s.to_csv().splitlines()
    assert lines[0].startswith("name,type,depth,kernel_size")
    assert len(lines) == 6
    assert ",Conv2d,1,3x3,1x1,0x0,1x1,1,1x2x3x3,20," in lines[2]


def test_trace_prints_each_layer_output_shape():
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2))
    buf = io.StringIO()
    rows = trace(net, torch.zeros(1, 1, 28, 28), file=buf)
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert rows[2][2] == [(1, 6, 14, 14)]
    assert "AvgPool2d  output shape: (1, 6, 14, 14)" in buf.getvalue()
    deep = trace(nn.Sequential(nn.Sequential(nn.ReLU())), (1, 2), depth=2, file=io.StringIO())
    assert [r[0] for r in deep] == ["0.0"]


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        if x.sum() > 0:  # needs real values: the shape-only pass cannot decide
            return self.conv(x)
        return x


def test_data_dependent_forward_falls_back_to_a_real_pass():
    s = summary(DataDependent(), torch.ones(1, 1, 5, 5))
    assert s.calls[0].output_shapes == [(1, 1, 3, 3)]
    assert s.totals.macs == 81
    assert summary(DataDependent(), torch.zeros(1, 1, 5, 5)).totals.macs == 0


@settings(max_examples=40, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 3]),
    cin_per_group=st.integers(1, 3),
    cout_per_group=st.integers(1, 3),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    transposed=st.booleans(),
)
def test_conv_counts_match_the_shape_formulas(groups, cin_per_group, cout_per_group, k, s, p, d,
                                              transposed):  # fmt: skip
    """MACs and RF of any conv against cnnlab.layers.shapes (an independent oracle)."""
    cin, cout, size = groups * cin_per_group, groups * cout_per_group, (13, 11)
    if transposed:
        p = tuple(min(pi, (ki - 1) * di) for pi, ki, di in zip(p, k, d))
        net = nn.ConvTranspose2d(cin, cout, k, s, p, groups=groups, dilation=d)
        out = shapes.conv_transpose_output_size(size, k, s, p, 0, d).size
        # every input element meets C_out/groups filters of k_h*k_w taps
        macs = cin * size[0] * size[1] * cout_per_group * k[0] * k[1]
    else:
        if any(di * (ki - 1) + 1 > n + 2 * pi for n, ki, pi, di in zip(size, k, p, d)):
            return  # the window does not fit (covered by the too-small tests)
        net = nn.Conv2d(cin, cout, k, s, p, d, groups=groups)
        out = shapes.conv_output_size(size, k, s, p, d).size
        # every output element is a dot product over C_in/groups channels x k_h*k_w taps
        macs = cout * out[0] * out[1] * cin_per_group * k[0] * k[1]
    result = summary(net, (1, cin, *size))
    assert result.calls[0].output_shapes == [(1, cout, *out)]
    assert result.totals.macs == macs
    assert result.totals.params == sum(t.numel() for t in net.parameters())
    if not transposed:
        assert result.calls[0].rf == tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
        assert result.calls[0].jump == s
        assert result.calls[0].start == tuple(di * (ki - 1) / 2 - pi for ki, pi, di in zip(k, p, d))


def test_multi_head_attention_is_counted():
    # L = S = 4 tokens, batch 2, E = 8, 2 heads. Projections: q, k, v and output, each
    # 2*4 tokens x 8 x 8 = 512 MACs -> 2048; scores and weighted values: 2 x (2*4*4*8) = 512.
    # Softmax over 2 batches x 2 heads x 4 x 4 scores: 3 each = 192.
    s = summary(nn.MultiheadAttention(8, 2, batch_first=True), [(2, 4, 8)] * 3)
    assert s.totals.macs == 2048 + 512
    assert s.totals.ops == 192
    assert s.not_counted == {}
