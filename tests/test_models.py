"""The MLP's layout (the probes rely on it), its activations, normalization and dropout."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.config import group_options
from initlab.lab.models import ACTIVATIONS, build_model, make_activation

# The function each act option must compute, written out independently of torch.nn modules.
REFERENCE = {
    "relu": lambda x: torch.where(x > 0, x, 0.0),
    "tanh": torch.tanh,
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "softsign": lambda x: x / (1 + x.abs()),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": torch.selu,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
    "silu": lambda x: x / (1 + torch.exp(-x)),
    "linear": lambda x: x,
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),  # the slope in conf/act/leaky_relu.yaml
    "prelu": lambda x: torch.where(x > 0, x, 0.25 * x),  # the initial slope in conf/act/prelu.yaml
}


def test_every_activation_option_has_a_reference() -> None:
    assert set(group_options("act")) == set(REFERENCE) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_computes_its_function(make_cfg, name: str) -> None:
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    act = make_activation(make_cfg(f"act={name}").act).double()
    torch.testing.assert_close(act(x), REFERENCE[name](x))


def test_selu_constants() -> None:
    # Klambauer et al. 2017: λ = 1.0507..., α = 1.6733...
    x = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    torch.testing.assert_close(
        torch.selu(x), torch.tensor([lam * alpha * (math.exp(-1) - 1), lam * 2.0]).double()
    )


def test_leaky_relu_slope_comes_from_config(make_cfg) -> None:
    act = make_activation(make_cfg("act=leaky_relu", "act.negative_slope=0.3").act)
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    torch.testing.assert_close(act(x), torch.tensor([-0.6, -0.15, 0.0, 1.5]))


def block_layout(model: nn.Module) -> list[list[str]]:
    return [[name for name, _ in block.named_children()] for block in model.hidden]


def test_plain_mlp_layout(make_cfg) -> None:
    cfg = make_cfg("model.depth=3", "model.width=16")
    model = build_model(7, 4, cfg.model, cfg.act)
    assert block_layout(model) == [["linear", "act"]] * 3
    assert isinstance(model.input_dropout, nn.Identity)
    shapes = [tuple(layer.weight.shape) for layer in model.linears()]
    assert shapes == [(16, 7), (16, 16), (16, 16), (4, 16)]  # forward order, read-out last
    assert model.linears()[-1] is model.out
    assert model(torch.randn(5, 7)).shape == (5, 4)
    assert all(layer.bias is not None for layer in model.linears())
    no_bias = make_cfg("model.bias=false")
    assert all(layer.bias is None for layer in build_model(7, 4, no_bias.model, no_bias.act).linears())


@pytest.mark.parametrize(
    ("overrides", "layout", "norm_type"),
    [
        (["model.norm=batch"], ["linear", "norm", "act"], nn.BatchNorm1d),
        (["model.norm=batch", "model.norm_position=after"], ["linear", "act", "norm"], nn.BatchNorm1d),
        (["model.norm=layer"], ["linear", "norm", "act"], nn.LayerNorm),
        (["model.norm=layer", "model.norm_position=after"], ["linear", "act", "norm"], nn.LayerNorm),
        (["model.dropout=0.3"], ["linear", "act", "dropout"], None),
        (["model.norm=batch", "model.dropout=0.3"], ["linear", "norm", "act", "dropout"], nn.BatchNorm1d),
        (
            ["model.norm=batch", "model.norm_position=after", "model.dropout=0.3"],
            ["linear", "act", "norm", "dropout"],
            nn.BatchNorm1d,
        ),
    ],
)
def test_norm_and_dropout_placement(make_cfg, overrides, layout, norm_type) -> None:
    cfg = make_cfg("model.depth=2", "model.bn_momentum=0.25", "model.bn_eps=0.001", *overrides)
    model = build_model(5, 3, cfg.model, cfg.act)
    assert block_layout(model) == [layout, layout]
    for block in model.hidden:
        assert isinstance(block.act, nn.Tanh)
        if norm_type is not None:
            assert isinstance(block.norm, norm_type)
            assert block.norm.eps == 0.001
            if norm_type is nn.BatchNorm1d:
                assert block.norm.momentum == 0.25 and block.norm.num_features == cfg.model.width
        if "dropout" in layout:
            assert isinstance(block.dropout, nn.Dropout) and block.dropout.p == 0.3
    assert model(torch.randn(4, 5)).shape == (4, 3)


def test_input_dropout(make_cfg) -> None:
    cfg = make_cfg("model.input_dropout=0.2")
    model = build_model(5, 3, cfg.model, cfg.act)
    assert isinstance(model.input_dropout, nn.Dropout) and model.input_dropout.p == 0.2
    assert block_layout(model)[0] == ["linear", "act"]  # hidden dropout stays off


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_inverted_dropout_scales_survivors_in_training_and_is_identity_in_eval(make_cfg, p: float) -> None:
    cfg = make_cfg(f"model.dropout={p}", f"model.input_dropout={p}")
    model = build_model(5, 3, cfg.model, cfg.act)
    x = torch.ones(200_000)
    torch.manual_seed(0)
    for dropout in (model.hidden[0].dropout, model.input_dropout):
        model.train()
        y = dropout(x)
        kept = y != 0
        torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / (1 - p)))  # survivors × 1/(1−p)
        dropped = 1 - kept.float().mean().item()
        assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / x.numel())
        model.eval()
        assert torch.equal(dropout(x), x)


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_eval(make_cfg) -> None:
    cfg = make_cfg("model.norm=batch", "model.bn_momentum=0.5", "act=linear")
    model = build_model(5, 3, cfg.model, cfg.act)
    torch.manual_seed(0)
    x = 10 + 3 * torch.randn(64, 5)
    block = model.hidden[0]
    z = block.linear(x).detach()
    out = block.norm(z)  # training mode; γ = 1, β = 0 at the start
    torch.testing.assert_close(out.mean(0), torch.zeros(cfg.model.width), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(cfg.model.width), atol=1e-3, rtol=0)
    # Eval mode: running averages, moved halfway (momentum 0.5) from (0, 1) towards this batch's statistics.
    model.eval()
    mean, var = 0.5 * z.mean(0), 0.5 + 0.5 * z.var(0)
    torch.testing.assert_close(block.norm(z), (z - mean) / torch.sqrt(var + cfg.model.bn_eps))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_activation_trains_in_both_models(make_cfg, tmp_path, act: str, model: str) -> None:
    """Each activation trains a few steps in both models; the mlp's mean-field prediction is written too
    (``act=prelu`` failed here: the theory ran the run's float32 PReLU on float64 quadrature nodes)."""
    from initlab.lab.train import train

    picks = ("model=cnn", "data=digits") if model == "cnn" else ()
    summary = train(make_cfg(*picks, f"act={act}", "train.steps=2"), tmp_path / "run")
    assert summary["status"] == "completed" and summary["steps_done"] == 2
    if model == "mlp":
        assert summary["theory_phase"] in ("ordered", "critical", "chaotic")
        assert summary["theory_chi_1"] > 0
    else:
        assert "mlp" in summary["theory_skipped"]


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_theory_command_for_every_activation(act: str, capsys) -> None:
    from initlab.cli import main

    assert main(["theory", "--format", "csv", f"act={act}", "model.depth=2", "model.width=32"]) == 0
    assert capsys.readouterr().out.count("\n") == 4  # header + 2 hidden layers + the output layer


def test_prelu_mean_field_map_is_he_eq_15() -> None:
    """PReLU with slope a: E[φ(√q·z)²] = ½·(1 + a²)·q (He et al. 2015, Eq. 15), from the float32 module."""
    from initlab.lab.prediction import activation
    from initlab.theory.meanfield import q_map

    prelu = activation({"name": "prelu", "init": 0.25})
    assert q_map(prelu, 2.0, 0.0, 3.0) == pytest.approx((1 + 0.25**2) * 3.0, rel=1e-9)
