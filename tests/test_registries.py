"""Parity of the registries and conf/: every registry row has its YAML file and every YAML file its row; every
conf/<group>/*.yaml composes and validates; the facts on the rows agree with the files and with torch."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import initlab
import initlab.plots
from initlab.config import OBJECTIVE_DIRECTIONS, config_dir, group_names, group_options, groups, validate
from initlab.lab import data, inits, models, optim
from initlab.lab.models import check_model_data
from initlab.plots.figures import DRAW, FIGURES
from initlab.sweep.objective import WORST

REGISTRIES = {
    "init": inits.INITS,
    "act": models.ACTIVATIONS,
    "model": models.MODELS,
    "data": data.SOURCES,
    "optim": optim.OPTIMIZERS,
}


@pytest.mark.parametrize("group", REGISTRIES)
def test_every_registry_row_has_its_yaml_file_and_every_file_its_row(group: str) -> None:
    assert set(group_names(group)) == set(REGISTRIES[group])
    assert set(REGISTRIES[group]) <= set(group_options(group))  # each row is selectable by its own name


def test_group_names_skip_files_that_only_refine_another_option() -> None:
    assert "kaiming_normal" in group_options("init") and "kaiming_normal" not in group_names("init")


@pytest.mark.parametrize("name", sorted(data.SOURCES))
def test_data_shapes_without_loading_match_the_sizes_of_an_image(make_cfg, name: str) -> None:
    """(n_features, n_classes) from the row; for image sets n_features = C·H·W of the loader's image shape."""
    source, cfg = data.SOURCES[name], make_cfg(f"data={name}").data
    n_features, n_classes = source.shape(cfg)
    if name in ("mnist", "fashion_mnist", "cifar10"):  # the files are not here: the shapes of their papers
        assert (n_features, n_classes) == {"cifar10": (3 * 32 * 32, 10)}.get(name, (28 * 28, 10))
        return
    for key in ("n_train", "n_test"):
        if key in cfg:
            cfg[key] = 20
    loaded = data.load_data(cfg)
    assert (loaded.n_features, loaded.n_classes) == (n_features, n_classes)
    assert (loaded.image_shape is not None) == source.image


def test_objective_directions_have_a_worst_value() -> None:
    assert set(WORST) == set(OBJECTIVE_DIRECTIONS)


@pytest.mark.parametrize("name", sorted(inits.INITS))
def test_a_scheme_takes_a_gain_exactly_when_its_yaml_file_has_one(name: str) -> None:
    cfg = OmegaConf.load(config_dir() / "init" / f"{name}.yaml")
    assert ("gain" in cfg) == inits.INITS[name].takes_gain


@pytest.mark.parametrize(
    ("name", "gain"),
    [
        ("relu", math.sqrt(2)),
        ("tanh", 5 / 3),
        ("sigmoid", 1.0),
        ("selu", 0.75),
        ("linear", 1.0),
        ("elu", 1.0),
    ],
)
def test_activation_rows_carry_torchs_gain(name: str, gain: float) -> None:
    act = OmegaConf.load(config_dir() / "act" / f"{name}.yaml")
    assert models.ACTIVATIONS[name].gain(act) == pytest.approx(gain)


def test_leaky_gains_follow_the_slope_of_the_yaml_file() -> None:
    for name, key in (("leaky_relu", "negative_slope"), ("prelu", "init")):
        act = OmegaConf.load(config_dir() / "act" / f"{name}.yaml")
        assert models.ACTIVATIONS[name].gain(act) == pytest.approx(math.sqrt(2 / (1 + act[key] ** 2)))


@pytest.mark.parametrize("name", sorted(inits.INITS))
def test_sigma_w2_rows_match_what_the_scheme_draws(make_cfg, name: str) -> None:
    """n_in·Var[W] of a 300 -> 200 layer filled by the scheme equals the row's σ_w² (3 % of 60,000 draws)."""
    scheme = inits.INITS[name]
    if scheme.sigma_w2 is None or scheme.fill is None:  # no formula, or torch's own init (no fill to call)
        pytest.skip(f"{name}: no σ_w² row or no fill")
    cfg = make_cfg(f"init={name}", "act=tanh")
    layer = torch.nn.Linear(300, 200)
    torch.manual_seed(0)
    inits.init_linear(layer, cfg.init, cfg.act)
    expected = scheme.sigma_w2(cfg.init, inits.layer_gain(cfg.init, cfg.act), 300, 200)
    measured = 300 * float(layer.weight.detach().double().pow(2).mean())
    assert measured == pytest.approx(expected, rel=0.03, abs=1e-12)


def test_every_preset_has_its_quick_variant_and_every_claim_a_preset() -> None:
    from initlab.claims import load_claims

    # doctor_* presets are single nets for `initlab doctor`, not sweeps to reproduce: no quick variant
    presets = {p for p in group_options("experiment") if not p.startswith("doctor_")}
    full = {p for p in presets if not p.endswith("_quick")}
    assert {f"{p}_quick" for p in full} == presets - full
    assert {c.preset for c in load_claims()} <= full


def test_every_figure_row_is_drawn_by_the_command_and_exported() -> None:
    assert set(DRAW) == {name for name, f in FIGURES.items() if f.draw is not None}
    for f in FIGURES.values():
        if f.draw is not None:
            assert getattr(initlab, f.draw.__name__) is f.draw
            assert getattr(initlab.plots, f.draw.__name__) is f.draw
            assert f.draw.__name__ in initlab.__all__ and f.draw.__name__ in initlab.plots.__all__
        assert f.make.__name__ in initlab.plots.__all__
    assert initlab.draw is initlab.plots.draw


@pytest.mark.slow
def test_every_yaml_file_composes_and_validates() -> None:
    """Each option of each group, alone on top of conf/config.yaml: Hydra composes it, validate() and the
    training stage's data check accept it (about 75 compositions, ~10 s)."""
    refused = []
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        for group in groups():
            for option in group_options(group):
                try:
                    cfg = compose(config_name="config", overrides=[f"{group}={option}"])
                    validate(cfg)
                    check_model_data(cfg)
                    if group == "experiment":  # a preset names itself, its quick variant its full preset
                        assert cfg.preset == option.removesuffix("_quick"), cfg.preset
                except Exception as exc:  # noqa: BLE001 - collect them all
                    refused.append(f"{group}={option}: {type(exc).__name__}: {exc}")
    assert refused == []


@pytest.mark.parametrize("name", sorted(models.ACTIVATIONS))
def test_a_bounded_activation_has_its_saturation_band_in_the_probes(name: str) -> None:
    """The probes know activations by torch type (initlab.probing); a bounded one needs its range and band."""
    from initlab.probing.layers import KIND
    from initlab.probing.stats import BOUNDED_RANGE, SATURATION

    act = OmegaConf.load(config_dir() / "act" / f"{name}.yaml")
    module = models.ACTIVATIONS[name].build(act, 1)
    ends = module(torch.tensor([-1e6, 1e6]))
    if ends.abs().max() > 10:  # unbounded
        assert type(module) not in KIND
        return
    kind = KIND[type(module)]
    lo, hi = BOUNDED_RANGE[kind]
    assert lo <= float(ends.min()) and float(ends.max()) <= hi and kind in SATURATION
