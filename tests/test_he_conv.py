"""The ``he_conv`` preset (He et al. 2015 on plain conv nets): its config, its measures, negative controls,
and (slow) the quick sweep, whose claims must hold for every seed."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from initlab import cli
from initlab.claims import evaluate, he_conv, load_claims
from initlab.config import config_dir
from initlab.lab.train import train
from initlab.runs import Run, collect_runs


def compose_preset(*overrides: str, hydra: bool = True):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def test_preset_is_a_plain_conv_net_with_the_papers_gains() -> None:
    xavier = compose_preset("experiment=he_conv", "init=xavier_normal")
    kaiming = compose_preset("experiment=he_conv", "init=kaiming_normal", "act=prelu")
    assert xavier.model.name == "cnn" and xavier.model.norm == "none" and xavier.data.name == "digits"
    assert xavier.init.gain == 1.0 and kaiming.init.gain is None  # Kaiming follows PReLU's Eq. 15 gain
    quick = compose_preset("experiment=he_conv_quick")
    assert quick.preset == xavier.preset == "he_conv"
    assert set(quick.hydra.sweeper.params) == set(xavier.hydra.sweeper.params)
    assert quick.train.steps < xavier.train.steps
    assert str(he_conv.DEEP) in str(xavier.hydra.sweeper.params["model.depth"]).split(",")


def fake(
    init: str, depth: int, layers: list[dict] | None = None, errors: dict[int, float] | None = None
) -> Run:
    metrics = [{"step": s, "split": "test", "accuracy": 1 - e} for s, e in (errors or {}).items()]
    return Run(
        Path(f"fake-{init}"),
        config={"init": {"name": init}, "act": {"name": "relu"}, "model": {"depth": depth}, "seed": 0},
        overrides=[],
        summary={},
        layers=pd.DataFrame(layers or []),
        metrics=pd.DataFrame(metrics),
    )


def test_second_moment_ratio_is_the_mean_of_layer_to_layer_ratios() -> None:
    # E[s²] = 1, 0.5, 0.5, 0.125 over 4 conv layers (std² + mean²), then the output layer (ignored).
    moments = [1.0, 0.5, 0.5, 0.125, 99.0]
    rows = [
        {"step": 0, "layer": i + 1, "quantity": "preact", "std": (0.75 * m) ** 0.5, "mean": (0.25 * m) ** 0.5}
        for i, m in enumerate(moments)
    ]
    assert he_conv.second_moment_ratio(fake("xavier", 4, rows)) == pytest.approx((0.5 + 1.0 + 0.25) / 3)


def test_leaves_chance_and_its_negative_control() -> None:
    late = fake("xavier", 10, errors={0: 0.9, 50: 0.85, 100: 0.79})
    never = fake("xavier", 10, errors={0: 0.9, 50: 0.9, 100: 0.88})
    early = fake("kaiming", 10, errors={0: 0.9, 50: 0.7, 100: 0.3})
    assert he_conv.leaves_chance_at(late) == 100 and he_conv.leaves_chance_at(never) == 150
    assert he_conv.he_conv_deep_xavier_leaves_chance_later([late, early]) == 50
    # Negative control: the nets leave chance at the same evaluation: the claim fails.
    claim = next(c for c in load_claims() if c.name == "he_conv_deep_xavier_leaves_chance_later")
    same = fake("xavier", 10, errors={0: 0.9, 50: 0.7})
    assert not claim.passes(claim.measure([same, early]))


@pytest.mark.slow
def test_variance_claim_fails_for_xavier_with_relus_gain(tmp_path: Path) -> None:
    """Negative control: Xavier with ReLU's gain √2 is Kaiming's init for square conv layers, so the
    'halves at every layer' claim must fail on it (while Kaiming's 'holds' claim passes on it)."""
    cfg = compose_preset(
        "experiment=he_conv",
        "init=xavier_normal",
        "init.gain=null",
        f"model.depth={he_conv.DEEP}",
        "train.steps=1",
        "train.eval_examples=50",
        hydra=False,
    )
    train(cfg, tmp_path)
    run = Run(tmp_path, config={**_plain(cfg), "init": {"name": "xavier"}})
    ratio = he_conv.second_moment_ratio(run)
    assert 0.8 <= ratio <= 1.25
    claim = next(c for c in load_claims() if c.name == "he_conv_xavier_variance_halves")
    assert not claim.passes(claim.measure([run]))


def _plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.slow
def test_quick_preset_reproduces_its_claims_for_every_seed(tmp_path: Path, monkeypatch) -> None:
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])
    code = cli.main(
        ["run", "-m", "experiment=he_conv_quick", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=basic"]
    )
    assert code == 0
    runs = collect_runs([sweep_dir])
    assert len(runs) == 8 and all(r.summary["status"] == "completed" for r in runs)
    expected = {c.name for c in load_claims() if c.preset == "he_conv"}
    failed = []
    for seed in (0, 1):
        results = [
            r for r in evaluate([r for r in runs if r.cfg("seed") == seed]) if r.claim.preset == "he_conv"
        ]
        assert {r.claim.name for r in results} == expected
        failed += [
            f"seed {seed} {r.claim.name}: {r.value} ({r.note})" for r in results if r.passed is not True
        ]
    assert not failed, "\n".join(failed)
