"""The paper presets: each `_quick` preset runs as a sweep and every claim of its paper passes.

Presets (``conf/experiment/``) and claims (``initlab/claims/{glorot,he,ioffe}.py``):

* ``glorot_init``, ``glorot_saturation``, ``glorot_table1`` -- Glorot & Bengio 2010;
* ``he_deep_relu`` -- He et al. 2015;
* ``bn_sigmoid`` -- Ioffe & Szegedy 2015.

Each quick sweep runs in this process (Hydra's basic launcher, one torch thread) and takes 10-20 s.
The small tests at the end check the measures on hand-made logs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from claim_controls import SWAPPED, swap_logs
from hydra import compose, initialize_config_dir

from initlab import cli
from initlab.claims import evaluate, evaluate_claim, he, ioffe, load_claims
from initlab.config import config_dir
from initlab.runs import RunData, collect_runs

PRESETS = ["glorot_init", "glorot_saturation", "glorot_table1", "he_deep_relu", "bn_sigmoid"]


def compose_preset(name: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="config", overrides=[f"experiment={name}"], return_hydra_config=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_quick_variant_is_the_same_experiment_smaller(preset: str) -> None:
    full, quick = compose_preset(preset), compose_preset(f"{preset}_quick")
    assert full.preset == quick.preset == preset  # so the claims of `preset` apply to the quick runs
    assert full.hydra.sweeper.params, "the preset carries its own sweep"
    assert set(quick.hydra.sweeper.params) == set(full.hydra.sweeper.params)
    assert quick.model.width <= full.model.width and quick.train.steps <= full.train.steps
    assert quick.model.width < full.model.width or quick.train.steps < full.train.steps


def test_he_preset_uses_the_default_gains_xavier_one_and_kaiming_relus() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        xavier = compose(config_name="config", overrides=["experiment=he_deep_relu", "init=xavier_normal"])
        kaiming = compose(config_name="config", overrides=["experiment=he_deep_relu", "init=kaiming_normal"])
        other = compose(config_name="config", overrides=["experiment=he_deep_relu", "init=lecun"])
    assert xavier.init.gain == 1.0
    assert kaiming.init.gain is None  # follows the activation: ReLU's √2
    assert other.init.get("gain") is None


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_quick_preset_reproduces_its_claims(preset: str, tmp_path: Path, monkeypatch) -> None:
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    code = cli.main(
        ["run", "-m", f"experiment={preset}_quick", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=basic"]
    )
    assert code == 0
    runs = collect_runs([sweep_dir])
    assert runs and all(r.summary["status"] == "completed" for r in runs)
    results = [r for r in evaluate(runs) if r.claim.preset == preset]
    expected = {c.name for c in load_claims() if c.preset == preset}
    assert expected and {r.claim.name for r in results} == expected
    failed = [
        f"{r.claim.name}: measured {r.values} ({r.note}), pass if {r.claim.threshold}"
        for r in results
        if r.passed is not True
    ]
    assert not failed, "\n".join(failed)
    seeds = {str(r.cfg("seed")) for r in runs}
    assert len(seeds) >= 2 and all(set(r.values) == seeds for r in results)  # every seed is reported
    # negative controls on these runs: an ordering claim fails when two settings' logs are exchanged
    for r in results:
        if r.claim.name in SWAPPED:
            control = evaluate_claim(r.claim, swap_logs(runs, *SWAPPED[r.claim.name]))
            assert control.passed is False, f"{r.claim.name} passed with swapped logs: {control.values}"


# -- the measures on hand-made logs ----------------------------------------------------------------------
def fake_run(config: dict, layers: list[dict] | None = None, metrics: list[dict] | None = None) -> RunData:
    return RunData(
        path=Path("fake"),
        config=config,
        overrides=[],
        summary={},
        layers=pd.DataFrame(layers or []),
        metrics=pd.DataFrame(metrics or []),
    )


def test_variance_ratio_per_layer_is_the_geometric_mean() -> None:
    # Var[s^l] = 2^-(l-1): std = 2^-(l-1)/2; the ratio per layer is exactly 1/2.
    rows = [
        {"step": 0, "layer": layer, "quantity": "preact", "std": 2 ** (-(layer - 1) / 2)}
        for layer in range(1, 6)
    ]
    run = fake_run({"model": {"depth": 4}}, layers=rows)  # layer 5 is the output layer: ignored
    assert he.variance_ratio_per_layer(run) == pytest.approx(0.5)


def test_drift_is_the_largest_percentile_move_over_the_initial_spread() -> None:
    rows = [
        {"step": 0, "layer": 3, "quantity": "preact", "p15": -1.0, "p50": 0.0, "p85": 1.0},
        {"step": 10, "layer": 3, "quantity": "preact", "p15": -1.5, "p50": 0.5, "p85": 2.0},
        {"step": 10, "layer": 2, "quantity": "preact", "p15": -9.0, "p50": 9.0, "p85": 99.0},  # not layer 3
    ]
    run = fake_run({"model": {"depth": 3}}, layers=rows)
    assert ioffe.drift(run) == pytest.approx(1.0 / 2.0)  # p85 moved by 1, initial spread 2


def test_steps_to_accuracy() -> None:
    metrics = [
        {"step": s, "split": split, "accuracy": a}
        for s, a in [(0, 0.1), (100, 0.85), (200, 0.93)]
        for split in ("train", "test")
    ]
    run = fake_run({}, metrics=metrics)
    assert ioffe.steps_to(run, 0.9) == 200
    assert math.isinf(ioffe.steps_to(run, 0.99))
