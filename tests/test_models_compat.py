"""Weight compatibility with torchvision: same parameter count, strict state-dict load, same outputs.

No downloads: torchvision models are built without weights. Both models are built on the meta
device (no memory, no init cost); torchvision's is then materialized with random values and ours
loads (shares) its tensors, so the big VGGs cost one fill instead of two slow random inits.
Outputs are compared at each network's smallest accepted input (or 64x64 where that is smaller
than the default head needs): weight compatibility does not depend on the input size.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.models import create

# cnnlab name -> torchvision builder kwargs (googlenet: no aux heads, no input transform).
CASES: dict[str, dict] = {
    "alexnet": {},
    **{f"vgg{d}{bn}": {} for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "googlenet": {"aux_logits": False, "transform_input": False, "init_weights": True},
    "resnet18": {},
    "resnet34": {},
    "resnet50": {},
    "resnet101": {},
    "mobilenet_v2": {},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _build_pair(name: str, tv_kwargs: dict, **ours_kwargs) -> tuple[nn.Module, nn.Module]:
    with torch.device("meta"):
        tv = torchvision.models.get_model(name, weights=None, num_classes=1000, **tv_kwargs)
        ours = create(name, num_classes=1000, **ours_kwargs)
    return tv, ours


def _randomize(model: nn.Module, seed: int = 0) -> None:
    """Materialize ``model`` on the CPU with random weights and batch-norm statistics.

    Weights get std sqrt(1 / fan_in) (activations stay O(1) through deep nets); BN scale, shift,
    mean and variance are random too, so a swapped BN buffer would change the output. Values come
    from one random period-1,000,003 pattern, read at a new offset for each tensor and tiled over
    big ones: fast, and no two rows of a weight repeat.
    """
    model.to_empty(device="cpu")
    period = 1_000_003
    base = torch.randn(2 * period, generator=torch.Generator().manual_seed(seed))
    offset = 0
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                t.fill_(1)  # num_batches_tracked
                continue
            n, flat = t.numel(), t.view(-1)
            if n <= period:
                flat.copy_(base[offset : offset + n])
            else:  # tile in place: no temporary copies of a 100M-entry VGG weight
                for start in range(0, n, period):
                    flat[start : start + period].copy_(base[: min(period, n - start)])
            offset = (offset + 7919 * n) % period
            if name.endswith("running_var"):
                t.abs_().add_(0.5)
            elif name.endswith(("running_mean", "bias")):
                t.mul_(0.1)
            elif t.ndim == 1:  # BN weight
                t.mul_(0.1).add_(1)
            else:
                t.div_(math.sqrt(t[0].numel()))  # std sqrt(1 / fan_in)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_same_parameters_and_strict_load(name: str) -> None:
    tv, ours = _build_pair(name, CASES[name])
    assert _num_params(ours) == _num_params(tv)
    tv_shapes = {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == tv_shapes
    ours.load_state_dict(tv.state_dict(), strict=True)
    tv.load_state_dict(ours.state_dict(), strict=True)  # and back


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_same_outputs_with_torchvision_weights(name: str) -> None:
    tv, ours = _build_pair(name, CASES[name])
    _randomize(tv)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)  # shares tv's tensors
    tv.eval()
    ours.eval()
    size = max(ours.min_input_size, 32)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv(x)
        actual = ours(x)
    assert actual.shape == (2, 1000)
    assert expected.abs().max() > 1e-3  # a meaningful comparison, not of two zero vectors
    assert (actual - expected).abs().max().item() <= 1e-5


def test_googlenet_aux_heads_match_torchvision() -> None:
    tv_kwargs = {"aux_logits": True, "transform_input": False, "init_weights": True}
    tv, ours = _build_pair("googlenet", tv_kwargs, aux_logits=True)
    assert _num_params(ours) == _num_params(tv)
    _randomize(tv)
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 64, 64)
    ours.eval()
    tv.eval()
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max().item() <= 1e-5
    ours.train()
    out = ours(x)
    assert [t.shape for t in out] == [(2, 1000)] * 3  # logits, aux2, aux1 as torchvision
