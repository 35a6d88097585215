"""The dropout, symmetry, weight_decay, self_normalizing and lsuv presets: each quick variant runs and passes
every claim registered for its preset (initlab/claims/srivastava.py and initlab/claims/handbook.py).

Each quick sweep runs in this process through ``initlab run -m experiment=NAME_quick`` (a few seconds to
~20 s on one core), then ``initlab.claims.evaluate`` checks the claims on the runs it left on disk.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from claim_controls import SWAPPED, swap_logs
from hydra import compose, initialize_config_dir

from initlab import cli
from initlab.claims import evaluate, evaluate_claim, load_claims
from initlab.claims.handbook import prior_entropy
from initlab.config import config_dir
from initlab.lab import shapeset
from initlab.lab.train import train
from initlab.runs import RunData, collect_runs

PRESETS = ("dropout", "dropout_retention", "symmetry", "weight_decay", "self_normalizing", "lsuv")


def run_quick(preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sweep_dir = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    code = cli.main(["run", "-m", f"experiment={preset}_quick", f"hydra.sweep.dir={sweep_dir}"])
    assert code == 0
    return sweep_dir


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_quick_preset_passes_its_claims(preset, tmp_path, monkeypatch):
    runs = collect_runs([run_quick(preset, tmp_path, monkeypatch)])
    assert runs and all(r.summary["status"] == "completed" for r in runs)
    assert {r.config["preset"] for r in runs} == {preset}  # the quick variant keeps the base name
    results = evaluate(runs)
    expected = [c.name for c in load_claims() if c.preset == preset]
    assert 1 <= len(expected) <= 5  # the mean-field variance claim adds one to self_normalizing
    assert [r.claim.name for r in results] == expected
    for r in results:
        assert r.passed, f"{r.claim.name}: measured {r.values} ({r.note}); pass if {r.claim.threshold}"
    seeds = {str(r.cfg("seed")) for r in runs}
    assert len(seeds) >= 2 and all(set(r.values) == seeds for r in results)  # every seed is reported
    for r in results:  # negative controls on these runs: exchanging two settings' logs makes it fail
        if r.claim.name in SWAPPED:
            control = evaluate_claim(r.claim, swap_logs(runs, *SWAPPED[r.claim.name]))
            assert control.passed is False, f"{r.claim.name} passed with swapped logs: {control.values}"


def test_prior_entropy_of_shapeset_is_not_ln_k(tmp_path):
    """Shapeset's classes are unbalanced (1/6, 1/9, 1/18), so H(p) < ln 9; the run logs H(p) of the training
    labels it evaluates, and the claims read it from summary.json."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(
            config_name="config", overrides=["experiment=symmetry_quick", "init=zeros", "train.steps=1"]
        )
    summary = train(cfg, tmp_path)
    _, labels = shapeset.generate(cfg.data.n_train, cfg.data.seed)
    p = np.bincount(labels[: cfg.train.eval_examples], minlength=9) / len(labels[: cfg.train.eval_examples])
    assert summary["train_prior_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    run = RunData(path=tmp_path, config={}, overrides=[], summary=summary)
    assert prior_entropy(run) == summary["train_prior_entropy"] < math.log(9) - 0.05
