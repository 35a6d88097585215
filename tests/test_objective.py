"""The objective a job returns to a sweeper, and a tiny Optuna search end to end."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from initlab.cli import main
from initlab.config import ConfigError, validate
from initlab.sweep import objective
from initlab.sweep.objective import objective_value


def test_completed_runs_give_their_metric_others_the_worst_value() -> None:
    done = {"status": "completed", "final_test_accuracy": 0.75, "final_test_loss": 0.5}
    assert objective_value(done, "final_test_accuracy", "maximize") == 0.75
    assert objective_value(done, "final_test_loss", "minimize") == 0.5
    # a diverged run's last evaluation (chance level here) must not count: it is the worst
    diverged = {"status": "diverged", "final_test_accuracy": 0.1, "final_test_loss": 2.3}
    assert objective_value(diverged, "final_test_accuracy", "maximize") == -math.inf
    assert objective_value(diverged, "final_test_loss", "minimize") == math.inf
    for summary in (
        {"status": "failed", "error": "boom"},
        {"status": "interrupted", "final_test_accuracy": 0.9},
        {"status": "missing"},
        {"status": "completed", "final_test_accuracy": None},  # NaN is written as null
    ):
        assert objective_value(summary, "final_test_accuracy", "maximize") == -math.inf


def test_a_bad_objective_is_refused_with_the_allowed_values(make_cfg) -> None:
    with pytest.raises(
        ConfigError, match=r"objective.metric=accuracy is not allowed: expected one of final_"
    ):
        validate(make_cfg("objective.metric=accuracy"))
    with pytest.raises(ConfigError, match=r"objective.direction=up is not allowed: expected one of maximize"):
        validate(make_cfg("objective.direction=up"))
    validate(make_cfg("objective.metric=final_test_loss", "objective.direction=minimize"))


def test_a_missing_sweeper_plugin_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if "optuna" in name else real(name, *a)
    )
    assert objective.missing_sweeper(["init=kaiming"]) is None
    for argv in (
        ["-m", "hydra/sweeper=optuna", "optim.lr=interval(0.01,0.1)"],
        ["hparams_search=deep_relu_lr"],
    ):
        assert main(["run", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'pip install "initlab[optuna]"' in err[0], err


@pytest.mark.slow
def test_optuna_search_gets_the_objective_of_every_trial(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "search"
    args = [
        "run",
        "-m",
        "hparams_search=deep_relu_lr",
        "hydra.sweeper.n_trials=4",
        "optim.lr=choice(0.05,1e6)",  # 1e6 diverges
        "model.depth=choice(2,0)",  # 0 fails
        "act=linear",
        "model.width=16",
        "train.steps=20",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "initlab", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    index = pd.read_parquet(sweep / "sweep.parquet")
    assert len(index) == 4  # every trial ran: failed and diverged ones did not stop the search
    assert proc.returncode == (1 if (index.status == "failed").any() else 0)
    assert {"completed", "diverged"} <= set(index.status)  # (the seeded sampler draws both)
    # each finished trial printed what it returned to Optuna
    returned = {
        int(m[1]): float(m[2]) for m in re.finditer(r"^job (\d+) \(.*; objective (\S+)$", proc.stdout, re.M)
    }
    for row in index.itertuples():
        if row.status == "completed":
            assert returned[row.job] == pytest.approx(row.final_test_accuracy)
        elif row.status == "diverged":
            assert returned[row.job] == -math.inf
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    completed = index[index.status == "completed"]
    assert best["best_value"] == pytest.approx(completed.final_test_accuracy.max())
    assert best["best_params"]["optim.lr"] == 0.05
