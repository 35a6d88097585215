"""``model=cnn`` and ``act=prelu``: layout, conv fans in every init scheme, variances at init against He et
al.'s formulas, and the config checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from initlab.config import ConfigError, validate
from initlab.lab.inits import activation_gain, init_model
from initlab.lab.models import build_model
from initlab.probing.hooks import Tracer


def cnn(make_cfg, *overrides: str, shape=(1, 8, 8)) -> nn.Module:
    cfg = make_cfg("model=cnn", "data=digits", *overrides)
    return build_model(shape, 10, cfg.model, cfg.act), cfg


def test_layout_and_shapes(make_cfg) -> None:
    model, _ = cnn(make_cfg, "model.depth=3", "model.channels=5", "act=prelu")
    assert [[n for n, _ in b.named_children()] for b in model.hidden] == [["conv", "act"]] * 3
    assert [tuple(c.weight.shape) for c in model.linears()] == [
        (5, 1, 3, 3),
        (5, 5, 3, 3),
        (5, 5, 3, 3),
        (10, 5),
    ]
    prelu = model.hidden[0].act
    assert isinstance(prelu, nn.PReLU) and prelu.weight.shape == (5,) and torch.all(prelu.weight == 0.25)
    assert model(torch.randn(7, 64)).shape == (7, 10)  # flat inputs, as the loaders give them
    bn, _ = cnn(make_cfg, "model.norm=batch", "model.norm_position=after", "model.dropout=0.2")
    assert [n for n, _ in bn.hidden[0].named_children()] == ["conv", "act", "norm", "dropout"]
    assert isinstance(bn.hidden[0].norm, nn.BatchNorm2d)
    circular, _ = cnn(make_cfg, "model.padding=circular")
    assert circular.hidden[0].conv.padding_mode == "circular" and circular.hidden[0].conv.padding == (1, 1)


# Var[W] of each scheme with n_in = 9·C_in, n_out = 9·C_out (init.gain=1 where the scheme has a gain).
SCHEMES = {
    "standard": lambda n_in, n_out: 1 / (3 * n_in),
    "lecun": lambda n_in, n_out: 1 / n_in,
    "xavier": lambda n_in, n_out: 2 / (n_in + n_out),
    "kaiming": lambda n_in, n_out: 1 / n_in,
    "orthogonal": lambda n_in, n_out: 1 / n_in,  # rows of a square C_out x (9·C_in) matrix: orthonormal
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_uses_the_conv_fan(make_cfg, scheme: str) -> None:
    gain = [] if scheme in ("standard", "lecun") else ["init.gain=1"]
    torch.manual_seed(0)
    model, cfg = cnn(make_cfg, f"init={scheme}", "model.channels=32", "model.depth=2", *gain)
    init_model(model.linears(), cfg.init, cfg.act)
    conv = model.hidden[1].conv.weight  # 32 -> 32 channels: n_in = n_out = 288
    expected = SCHEMES[scheme](9 * 32, 9 * 32)
    if scheme == "orthogonal":  # 32 orthonormal rows of length 288: Var = 32/(32·288) exactly (mean ~0)
        assert (conv.reshape(32, -1).pow(2).sum(1)).tolist() == pytest.approx([1.0] * 32, rel=1e-4)
    assert conv.var().item() == pytest.approx(expected, rel=0.06)
    first = model.hidden[0].conv.weight  # 1 -> 32 channels: n_in = 9, n_out = 288
    if scheme != "orthogonal":
        assert first.var().item() == pytest.approx(SCHEMES[scheme](9, 288), rel=0.2)


def test_prelu_kaiming_gain_is_he_eq_15(make_cfg) -> None:
    """He et al. Eq. 15: ½·(1 + a²)·n·Var[W] = 1."""
    cfg = make_cfg("act=prelu", "act.init=0.25")
    assert activation_gain(cfg.act) ** 2 == pytest.approx(2 / (1 + 0.25**2))
    torch.manual_seed(0)
    model, cfg = cnn(make_cfg, "act=prelu", "init=kaiming", "model.channels=32", "model.depth=2")
    init_model(model.linears(), cfg.init, cfg.act)
    assert model.hidden[1].conv.weight.var().item() == pytest.approx(2 / (1.0625 * 288), rel=0.06)


def second_moments(model: nn.Module, x: torch.Tensor) -> list[float]:
    """E[s²] of every hidden layer's pre-activation on the batch ``x``."""
    tracer = Tracer(model)
    with torch.no_grad(), tracer.trace() as captured:
        model(x)
    return [captured[(p.index, "preact")].pow(2).mean().item() for p in tracer.layers[:-1]]


@pytest.mark.parametrize(
    ("act", "init", "gain", "ratio"),
    [
        ("relu", "xavier", "init.gain=1", 0.5),  # n·Var[W] = 1: E[s²] halves per layer (He et al. Eq. 10)
        ("relu", "kaiming", "init.gain=null", 1.0),  # ½·n·Var[W] = 1
        ("prelu", "kaiming", "init.gain=null", 1.0),  # ½·(1 + a²)·n·Var[W] = 1 (Eq. 15)
        ("prelu", "xavier", "init.gain=1", (1 + 0.25**2) / 2),
    ],
)
def test_conv_variance_ratio_at_init_matches_he_et_al(make_cfg, act, init, gain, ratio) -> None:
    """E[(s^(l+1))²] / E[(s^l)²] = ½·(1 + a²)·n·Var[W] with n = 9·C (a = 0 for ReLU), in expectation over
    the weights: the mean of the ratios of 9 consecutive layer pairs in 4 nets. Circular padding gives
    every output its n inputs, as Eq. 10 assumes. (Standard error of the mean: ~3 % of the ratio.)"""
    ratios = []
    for seed in range(4):
        torch.manual_seed(seed)
        model, cfg = cnn(
            make_cfg,
            f"act={act}",
            f"init={init}",
            gain,
            "model.channels=64",
            "model.depth=10",
            "model.padding=circular",
            "model.bias=false",
        )
        init_model(model.linears(), cfg.init, cfg.act)
        v = second_moments(model, torch.randn(32, 64))
        ratios += [b / a for a, b in zip(v, v[1:], strict=False)]
    assert sum(ratios) / len(ratios) == pytest.approx(ratio, rel=0.1)


def test_zero_padding_loses_variance_at_the_border(make_cfg) -> None:
    """With zero padding, border pixels of an 8x8 map see 4 or 6 of 9 inputs: the ratio drops below 1."""
    torch.manual_seed(0)
    model, cfg = cnn(
        make_cfg, "act=relu", "init=kaiming", "model.channels=32", "model.depth=10", "model.bias=false"
    )
    init_model(model.linears(), cfg.init, cfg.act)
    v = second_moments(model, torch.randn(32, 64))
    assert (v[-1] / v[0]) ** (1 / 9) < 0.95


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.depth=0"], "model.depth=0 is not allowed: expected an integer >= 1"),
        (["model.channels=0"], "model.channels=0 is not allowed: expected an integer >= 1"),
        (["model.padding=mirror"], "model.padding=mirror is not allowed: expected one of zeros, circular"),
        (["model.norm=layer"], "model.norm=layer is not allowed with model=cnn: expected none or batch"),
        (["act.init=x"], "act.init=x is not allowed: expected a number"),
    ],
)
def test_config_errors(make_cfg, overrides, message) -> None:
    extra = ["act=prelu"] if overrides[0].startswith("act.") else []
    cfg = make_cfg("model=cnn", "data=digits", *extra, *overrides)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


@pytest.mark.slow
def test_cnn_on_gaussian_data_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "initlab", "run", "model=cnn", "data=gaussian", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "initlab: error: model=cnn is not allowed with data=gaussian: "
        "expected an image data set (cifar10, digits, fashion_mnist, mnist, shapeset)"
    )
    assert not list(tmp_path.glob("*.parquet"))


def test_image_shape_of_the_data(make_cfg) -> None:
    from initlab.lab.data import load_data

    assert load_data(make_cfg("data=digits").data).input_shape == (1, 8, 8)
    assert load_data(make_cfg().data).input_shape == (16,)


def test_cnn_on_gaussian_data_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    import initlab
    from initlab.theory_cli import compose_config

    message = "model=cnn is not allowed with data=gaussian: expected an image data set (cifar10, digits"
    with pytest.raises(ConfigError, match=re.escape(message)):
        initlab.run(["model=cnn", "data=gaussian"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose_config(["model=cnn", "data=gaussian"])
