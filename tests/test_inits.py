"""Every initialization scheme against its formula, and LSUV's unit output variance.

A scheme is checked on one freshly initialized ``nn.Linear`` per shape. The measured variance is the mean
of w² (the true mean is 0), whose sampling error is exact: for N independent weights with variance σ² and
kurtosis κ = E[w⁴]/σ⁴,  Var[mean(w²)] = (κ − 1)·σ⁴/N  -- 2σ⁴/N for a normal, (4/5)σ⁴/N for a uniform
(κ = 9/5). Every statistical check allows 5 such standard errors (a false alarm about once in 10⁶),
which is 1-2 % of σ² at these sizes: an off-by-a-gain or fan_in/fan_out mix-up is far outside it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.lab.inits import activation_gain, gain_note, init_linear, init_model, lsuv
from initlab.lab.models import build_model

# (n_in, n_out): wider, narrower and square layers
SHAPES = [(256, 512), (512, 256), (1000, 1000)]
KURTOSIS = {"normal": 3.0, "uniform": 9 / 5}
N_SE = 5

TANH_GAIN2 = (5 / 3) ** 2
RELU_GAIN2 = 2.0

# id: (overrides, expected Var[W] as a function of (n_in, n_out), distribution of the weights)
VARIANCE_CASES = {
    "standard": (["init=standard"], lambda i, o: 1 / (3 * i), "uniform"),
    "lecun_normal": (["init=lecun"], lambda i, o: 1 / i, "normal"),
    "lecun_uniform": (["init=lecun", "init.distribution=uniform"], lambda i, o: 1 / i, "uniform"),
    # Xavier's default gain is 1 whatever the activation (Glorot & Bengio; torch.nn.init.xavier_*_)
    "xavier_tanh": (["init=xavier", "act=tanh"], lambda i, o: 2 / (i + o), "uniform"),
    "xavier_uniform_relu": (["init=xavier_uniform", "act=relu"], lambda i, o: 2 / (i + o), "uniform"),
    "xavier_normal_tanh": (["init=xavier_normal", "act=tanh"], lambda i, o: 2 / (i + o), "normal"),
    "xavier_follows_activation": (
        ["init=xavier", "act=tanh", "init.gain=null"],
        lambda i, o: TANH_GAIN2 * 2 / (i + o),
        "uniform",
    ),
    "xavier_softsign": (["init=xavier", "act=softsign"], lambda i, o: 2 / (i + o), "uniform"),
    "xavier_gain_set": (
        ["init=xavier", "act=tanh", "init.gain=0.5"],
        lambda i, o: 0.25 * 2 / (i + o),
        "uniform",
    ),
    "kaiming_relu": (["init=kaiming", "act=relu"], lambda i, o: RELU_GAIN2 / i, "normal"),
    "kaiming_uniform_relu": (["init=kaiming_uniform", "act=relu"], lambda i, o: RELU_GAIN2 / i, "uniform"),
    "kaiming_fan_out": (
        ["init=kaiming", "act=relu", "init.mode=fan_out"],
        lambda i, o: RELU_GAIN2 / o,
        "normal",
    ),
    "kaiming_uniform_fan_out": (
        ["init=kaiming_uniform", "act=relu", "init.mode=fan_out"],
        lambda i, o: RELU_GAIN2 / o,
        "uniform",
    ),
    "kaiming_leaky": (
        ["init=kaiming", "act=leaky_relu", "act.negative_slope=0.2"],
        lambda i, o: 2 / (1 + 0.2**2) / i,
        "normal",
    ),
    "kaiming_linear": (["init=kaiming", "act=linear"], lambda i, o: 1 / i, "normal"),
    "kaiming_gain_set": (["init=kaiming", "act=relu", "init.gain=3"], lambda i, o: 9 / i, "normal"),
    "normal_std": (["init=normal", "init.std=0.05"], lambda i, o: 0.05**2, "normal"),
    "torch_default": (["init=torch_default"], lambda i, o: 1 / (3 * i), "uniform"),
}


def initialized(make_cfg, overrides: list[str], n_in: int, n_out: int) -> nn.Linear:
    cfg = make_cfg(*overrides)
    layer = nn.Linear(n_in, n_out)
    init_linear(layer, cfg.init, cfg.act)
    return layer


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", VARIANCE_CASES, ids=str)
def test_weight_variance_matches_formula(make_cfg, case: str, shape: tuple[int, int]) -> None:
    overrides, formula, distribution = VARIANCE_CASES[case]
    n_in, n_out = shape
    torch.manual_seed(0)
    w = initialized(make_cfg, overrides, n_in, n_out).weight.detach().double()
    assert w.shape == (n_out, n_in)
    expected, kurtosis, n = formula(n_in, n_out), KURTOSIS[distribution], w.numel()

    measured = w.pow(2).mean().item()
    standard_error = math.sqrt((kurtosis - 1) / n) * expected
    assert abs(measured - expected) < N_SE * standard_error, f"Var[W]={measured:.6g}, expected {expected:.6g}"
    assert abs(w.mean().item()) < N_SE * math.sqrt(expected / n)
    # The fourth moment tells the distributions apart: kurtosis 1.8 vs 3 (its error is ≤ √(24/N) ≈ 0.014).
    assert w.pow(4).mean().item() / measured**2 == pytest.approx(kurtosis, abs=0.15)
    if distribution == "uniform":  # U[-a, a] has a = √3·σ: nothing beyond it
        assert w.abs().max().item() <= math.sqrt(3 * expected) * (1 + 1e-6)


@pytest.mark.parametrize(
    ("overrides", "gain2"),
    [
        (["act=tanh"], 1.0),  # gain 1 by default, whatever the activation
        (["act=relu"], 1.0),
        (["act=tanh", "init.gain=null"], TANH_GAIN2),  # null: the activation's gain
        (["act=relu", "init.gain=null"], RELU_GAIN2),
        (["init.gain=0.7"], 0.49),
    ],
    ids=["tanh", "relu", "tanh_follows", "relu_follows", "gain_set"],
)
@pytest.mark.parametrize("shape", [(512, 256), (256, 256)], ids=["wide", "square"])
def test_orthogonal_rows_are_orthonormal_times_gain(make_cfg, overrides, gain2, shape) -> None:
    # For fan_out <= fan_in the rows of W are orthogonal with norm gain: W Wᵀ = gain² I.
    torch.manual_seed(0)
    n_in, n_out = shape
    w = initialized(make_cfg, ["init=orthogonal", *overrides], n_in, n_out).weight.detach().double()
    torch.testing.assert_close(w @ w.T, gain2 * torch.eye(n_out, dtype=w.dtype), atol=1e-5, rtol=0)


def test_orthogonal_tall_matrix_has_orthonormal_columns(make_cfg) -> None:
    torch.manual_seed(0)
    w = initialized(make_cfg, ["init=orthogonal", "act=linear"], 128, 512).weight.detach().double()
    torch.testing.assert_close(w.T @ w, torch.eye(128, dtype=w.dtype), atol=1e-5, rtol=0)


def test_zeros_and_constant(make_cfg) -> None:
    zero = initialized(make_cfg, ["init=zeros"], 64, 32)
    assert torch.count_nonzero(zero.weight) == 0 and torch.count_nonzero(zero.bias) == 0
    const = initialized(make_cfg, ["init=constant", "init.value=0.3"], 64, 32)
    assert torch.equal(const.weight, torch.full((32, 64), 0.3))


@pytest.mark.parametrize(
    "scheme", ["zeros", "normal", "standard", "lecun", "xavier", "kaiming", "orthogonal", "lsuv"]
)
def test_bias_is_set_to_init_bias(make_cfg, scheme: str) -> None:
    layer = initialized(make_cfg, [f"init={scheme}", "init.bias=0.25"], 64, 32)
    assert torch.equal(layer.bias, torch.full((32,), 0.25))
    assert torch.count_nonzero(initialized(make_cfg, [f"init={scheme}"], 64, 32).bias) == 0  # default: 0


def test_torch_default_keeps_nonzero_uniform_bias(make_cfg) -> None:
    torch.manual_seed(0)
    n_in = 400
    bias = initialized(make_cfg, ["init=torch_default"], n_in, 2000).bias.detach().double()
    bound = 1 / math.sqrt(n_in)  # nn.Linear's bias ~ U[-1/√n_in, 1/√n_in]
    assert bias.abs().max().item() <= bound and torch.count_nonzero(bias) == bias.numel()
    expected = bound**2 / 3
    assert abs(bias.pow(2).mean().item() - expected) < N_SE * math.sqrt(0.8 / bias.numel()) * expected


@pytest.mark.parametrize(
    ("overrides", "gain"),
    [
        (["act=tanh"], 5 / 3),
        (["act=relu"], math.sqrt(2)),
        (["act=leaky_relu", "act.negative_slope=0.2"], math.sqrt(2 / 1.04)),
        (["act=sigmoid"], 1.0),
        (["act=selu"], 3 / 4),
        (["act=softsign"], 1.0),  # torch defines none: 1
        (["act=gelu"], 1.0),
    ],
    ids=["tanh", "relu", "leaky_relu", "sigmoid", "selu", "softsign", "gelu"],
)
def test_activation_gain(make_cfg, overrides, gain) -> None:
    assert activation_gain(make_cfg(*overrides).act) == pytest.approx(gain)


# --- LSUV ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "relu", "selu"])
def test_lsuv_gives_each_layer_unit_output_variance(make_cfg, act: str) -> None:
    cfg = make_cfg("init=lsuv", f"act={act}", "model.depth=5", "model.width=64")
    torch.manual_seed(0)
    model = build_model(32, 10, cfg.model, cfg.act)
    init_model(model.linears(), cfg.init, cfg.act)
    x = 3.0 * torch.randn(500, 32)  # inputs of variance 9: the orthonormal start alone would not give 1

    def output_variances() -> list[float]:
        outputs: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in model.linears()]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        return [o.var().item() for o in outputs]

    assert abs(output_variances()[0] - 1) > 0.5  # the test is not trivial
    reported = lsuv(model, model.linears(), x, tol=cfg.init.tol, max_iter=cfg.init.max_iter)
    measured = output_variances()
    assert len(measured) == 6
    assert all(0.9 <= v <= 1.1 for v in measured), measured
    assert reported == pytest.approx(measured, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "gain"),
    [
        (["init=xavier"], 1.0),
        (["init=xavier_normal"], 1.0),
        (["init=xavier_uniform"], 1.0),
        (["init=orthogonal"], 1.0),
        (["init=kaiming"], None),  # the activation's gain
        (["init=kaiming_uniform"], None),
    ],
)
def test_default_gains(make_cfg, overrides, gain) -> None:
    assert make_cfg("act=relu", *overrides).init.gain == gain


def test_lecun_and_standard_have_no_gain(make_cfg) -> None:
    assert "gain" not in make_cfg("init=lecun").init and "gain" not in make_cfg("init=standard").init


@pytest.mark.parametrize(
    ("overrides", "noted"),
    [
        (["act=selu", "init=kaiming"], True),  # torch's SELU gain 3/4
        (["act=selu", "init=xavier", "init.gain=2"], True),
        (["act=selu", "init=xavier"], False),  # gain 1 keeps the fixed point
        (["act=selu", "init=lecun"], False),
        (["act=relu", "init=kaiming"], False),  # no fixed point to break
    ],
)
def test_gain_note_for_a_broken_fixed_point(make_cfg, overrides, noted) -> None:
    cfg = make_cfg(*overrides)
    note = gain_note(cfg.init, cfg.act)
    assert (note is not None) == noted
    if noted:
        assert note.startswith("initlab: note: init.gain=") and "selu" in note
