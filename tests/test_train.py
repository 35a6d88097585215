"""The training loop: penalties, max-norm, the entropy penalty's direction, logs, determinism, divergence."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import METRICS_COLUMNS, SUMMARY_KEYS
from omegaconf import OmegaConf

from initlab.config import ConfigError
from initlab.lab.inits import init_model
from initlab.lab.models import build_model
from initlab.lab.optim import REGULARIZERS, entropy, max_norm_, reg_loss
from initlab.lab.train import train


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "metrics.parquet")


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# --- penalties on known tensors -----------------------------------------------------------------------


@pytest.fixture
def constant_model(make_cfg):
    """A 3 -> 4 -> 2 MLP with every weight 0.5 and every bias 7 (biases must not be penalized)."""
    cfg = make_cfg("model.depth=1", "model.width=4", "init=constant", "init.value=0.5", "init.bias=7")
    model = build_model(3, 2, cfg.model, cfg.act)
    init_model(model.linears(), cfg.init, cfg.act)
    return model


N_WEIGHTS = 3 * 4 + 4 * 2


def test_entropy_of_known_distributions() -> None:
    uniform = torch.zeros(5, 10)
    assert entropy(uniform).item() == pytest.approx(math.log(10))
    p = torch.tensor([0.25, 0.75])  # logits log p give back p
    assert entropy(p.log().unsqueeze(0)).item() == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    )
    assert entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0, abs=1e-6)


def test_regularizer_values(constant_model) -> None:
    logits = torch.tensor([[0.0, math.log(3)]])  # p = (1/4, 3/4)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert REGULARIZERS["l2"](0.1, constant_model, logits).item() == pytest.approx(0.1 * N_WEIGHTS * 0.25)
    assert REGULARIZERS["l1"](0.1, constant_model, logits).item() == pytest.approx(0.1 * N_WEIGHTS * 0.5)
    assert REGULARIZERS["entropy"](0.1, constant_model, logits).item() == pytest.approx(-0.1 * h)


def test_reg_loss_sums_the_configured_penalties(constant_model) -> None:
    logits = torch.zeros(4, 2)  # entropy log 2
    reg = OmegaConf.create({"l2": 0.1, "l1": 0.01, "entropy": 2.0, "max_norm": 3.0})
    expected = 0.1 * N_WEIGHTS * 0.25 + 0.01 * N_WEIGHTS * 0.5 - 2.0 * math.log(2)
    assert reg_loss(reg, constant_model, logits).item() == pytest.approx(expected)
    off = OmegaConf.create({"l2": 0.0, "l1": 0.0, "entropy": 0.0, "max_norm": None})
    assert reg_loss(off, constant_model, logits).item() == 0.0


def test_max_norm_caps_each_units_incoming_weights(constant_model) -> None:
    layer = constant_model.hidden[0].linear  # 4 units with 3 incoming weights each
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0], [0.0, 0.0, -10.0], [1.0, 1.0, 1.0]])
        )
    before = layer.weight.detach().clone()
    max_norm_(constant_model, 2.0)
    norms = layer.weight.norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([2.0, 0.5, 2.0, math.sqrt(3)]), atol=1e-5, rtol=0)
    # Rows are only rescaled, never turned: each row stays parallel to what it was.
    cosine = (layer.weight * before).sum(1) / (norms * before.norm(dim=1))
    torch.testing.assert_close(cosine, torch.ones(4))
    assert constant_model.out.weight.norm(dim=1).max() <= 2.0 + 1e-6  # the read-out layer too


# --- whole runs (tiny Gaussian problems, probes off unless needed) ------------------------------------


def test_run_writes_the_contract_files(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("train.eval_every=5", "train.batch_size=10")
    s = train(cfg, tmp_path)
    assert SUMMARY_KEYS <= set(s) and s == summary(tmp_path)
    assert (
        s["status"] == "completed" and s["steps_done"] == 20 and s["diverged_at"] is None and s["seed"] == 0
    )
    m = metrics(tmp_path)
    assert list(m.columns) == METRICS_COLUMNS
    assert sorted(set(m.step)) == [0, 5, 10, 15, 20]
    assert not m.duplicated(["step", "split"]).any() and set(m.split) == {"train", "test"}
    last = m[m.step == 20].set_index("split")
    assert last.loc["test", "loss"] == pytest.approx(s["final_test_loss"])
    assert last.loc["train", "accuracy"] == pytest.approx(s["final_train_accuracy"])
    assert m.epoch.tolist() == pytest.approx(m.step * 10 / 200)  # batch 10, 200 examples
    assert (m.lr == cfg.optim.lr).all() and (m.reg_loss == 0).all()
    assert (tmp_path / "layers.parquet").is_file() and (tmp_path / "hists.parquet").is_file()
    # the probe's record, as initlab.probe writes it: every parameter of the MLP probed, its layers named
    assert s["param_coverage"] == 1.0 and s["params_left_out"] == {}
    layers = [(r["layer"], r["kind"]) for r in s["probed_layers"]]
    assert layers == [(1, "weight"), (2, "weight"), (3, "weight")]
    assert s["probed_layers"][0]["act"] == "Tanh" and s["probed_layers"][-1]["act"] is None


def test_probes_off_record_no_coverage(make_cfg, tmp_path: Path) -> None:
    s = train(make_cfg("probe=off", "train.steps=2"), tmp_path)
    assert "param_coverage" not in s and "probed_layers" not in s


def test_zero_steps_logs_the_initial_network(make_cfg, tmp_path: Path) -> None:
    s = train(make_cfg("train.steps=0", "probe=off"), tmp_path)
    assert s["status"] == "completed" and s["steps_done"] == 0
    assert metrics(tmp_path).step.tolist() == [0, 0]


def test_same_seed_same_metrics_different_seed_different(make_cfg, tmp_path: Path) -> None:
    # Dropout masks, augmentation noise, batch order and probes all draw random numbers.
    common = ("model.dropout=0.2", "data.augment.noise=0.1", "train.eval_every=5")
    train(make_cfg(*common), tmp_path / "a")
    train(make_cfg(*common), tmp_path / "b")
    train(make_cfg(*common, "seed=1"), tmp_path / "c")
    pd.testing.assert_frame_equal(metrics(tmp_path / "a"), metrics(tmp_path / "b"))
    layers = [pd.read_parquet(tmp_path / d / "layers.parquet") for d in ("a", "b")]
    pd.testing.assert_frame_equal(*layers)
    assert not metrics(tmp_path / "a").equals(metrics(tmp_path / "c"))


def test_probing_does_not_change_the_trajectory(make_cfg, tmp_path: Path) -> None:
    train(make_cfg("probe=every", "model.dropout=0.2", "train.eval_every=5"), tmp_path / "on")
    train(make_cfg("probe=off", "model.dropout=0.2", "train.eval_every=5"), tmp_path / "off")
    pd.testing.assert_frame_equal(metrics(tmp_path / "on"), metrics(tmp_path / "off"))


def test_entropy_penalty_raises_predictive_entropy(make_cfg, tmp_path: Path) -> None:
    # With only the entropy penalty on, the logged reg_loss is −λ·H on each split, so H = −reg_loss/λ.
    # λ = 1e-6 trains like no penalty at all but still lets us read H off the log.
    def entropy_on_test_split(lam: float) -> pd.Series:
        run = tmp_path / str(lam)
        overrides = (
            "probe=off",
            f"reg.entropy={lam}",
            "train.steps=200",
            "train.eval_every=200",
            "optim.lr=0.1",
        )
        train(make_cfg(*overrides), run)
        m = metrics(run)
        return -m[m.split == "test"].set_index("step").reg_loss / lam

    plain, penalized = entropy_on_test_split(1e-6), entropy_on_test_split(1.0)
    assert plain[0] == pytest.approx(penalized[0], rel=1e-4)  # same initial network
    # The penalty holds predictions near uniform (H ≤ ln 10) while the plain run grows confident.
    assert 0 < plain[200] < plain[0] and plain[200] < penalized[200] <= math.log(10)
    assert penalized[200] - plain[200] > 0.3


def test_lsuv_run_records_unit_variances(make_cfg, tmp_path: Path) -> None:
    s = train(make_cfg("init=lsuv", "act=relu", "model.depth=4", "probe=off", "train.steps=1"), tmp_path)
    assert len(s["lsuv_variances"]) == 5 and all(0.9 <= v <= 1.1 for v in s["lsuv_variances"])


# --- divergence and bad configs -----------------------------------------------------------------------

DIVERGING = ("init=normal", "init.std=10", "model.depth=6", "optim.lr=10", "act=relu", "probe=off")


@pytest.mark.parametrize("eval_every", [1, 250])
def test_diverging_run_stops_with_one_row_per_step_and_split(
    make_cfg, tmp_path: Path, eval_every: int
) -> None:
    s = train(make_cfg(*DIVERGING, f"train.eval_every={eval_every}"), tmp_path)
    assert s["status"] == "diverged" and s["diverged_at"] == 1 and s["steps_done"] == 1
    assert summary(tmp_path)["status"] == "diverged"
    m = metrics(tmp_path)
    assert m.step.tolist() == [0, 0, 1, 1]  # the initial net and the last one, each split once
    assert m.lr.dtype == "float64"  # optim.lr=10 is an int in the config; the column stays float


def test_divergence_at_the_first_step(make_cfg, tmp_path: Path) -> None:
    # Weights of std 10⁶ overflow float32 in the first forward pass: nothing is trained.
    s = train(make_cfg("init=normal", "init.std=1e6", "model.depth=6", "act=relu", "probe=off"), tmp_path)
    assert s["status"] == "diverged" and s["diverged_at"] == 0 and s["steps_done"] == 0
    assert metrics(tmp_path).step.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.depth=0", "model.depth=0 is not allowed: expected an integer >= 1"),
        ("model.width=-3", "model.width=-3 is not allowed: expected an integer >= 1"),
        ("model.dropout=1.5", "model.dropout=1.5 is not allowed: expected a probability in [0, 1)"),
        ("optim.lr=0", "optim.lr=0 is not allowed: expected a number > 0"),
        (
            "init.name=foo",
            "init.name=foo is not allowed: expected one of constant, kaiming, lecun, lsuv, meanfield, normal",
        ),
        ("init.gain=-1", "init.gain=-1 is not allowed: expected null or a number > 0"),
        (
            "data.n_train=null",
            "data.n_train=null is not allowed with data=gaussian: expected an integer >= 1",
        ),
        ("optim.nesterov=true", "optim.nesterov=true is not allowed with optim.momentum=0"),
        ("seed=-1", "seed=-1 is not allowed: expected an integer >= 0"),
    ],
)
def test_bad_values_are_refused_before_anything_runs(
    make_cfg, tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        train(make_cfg(override), tmp_path / "run")
    assert str(info.value).startswith(message)
    assert not (tmp_path / "run").exists()


def test_bad_adam_betas_are_refused(make_cfg, tmp_path: Path) -> None:
    for betas in ("[1.5,0.9]", "0.9"):
        with pytest.raises(
            ConfigError, match=r"optim.betas=.* is not allowed: expected a list of two numbers"
        ):
            train(make_cfg("optim=adam", f"optim.betas={betas}"), tmp_path)


def test_a_run_that_fails_mid_training_keeps_its_full_record(make_cfg, tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    real_step = torch.optim.SGD.step

    def failing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise RuntimeError("disk on fire")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", failing_step)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(make_cfg("train.steps=20", "train.eval_every=5", "probe=off", "optim=sgd"), tmp_path)
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["error"] == "RuntimeError: disk on fire"
    assert s["steps_done"] == 7 and s["seed"] == 0 and "wall_seconds" in s
    assert set(metrics(tmp_path)["step"]) == {0, 5}  # what it logged before failing is kept


def test_a_probe_that_fails_to_close_still_leaves_a_summary(make_cfg, tmp_path, monkeypatch) -> None:
    """An error in the probe statistics (computed when the probe closes) is the run's error; an earlier
    error stays the run's error."""
    from initlab.probing import capture

    def broken_table(self, *args, **kwargs):
        raise ValueError("bad statistics")

    monkeypatch.setattr(capture.Captures, "table", broken_table)
    with pytest.raises(ValueError, match="bad statistics"):
        train(make_cfg("train.steps=5", "probe=every"), tmp_path / "a")
    s = summary(tmp_path / "a")
    assert s["status"] == "failed" and s["error"] == "ValueError: bad statistics" and s["steps_done"] == 5
    assert set(metrics(tmp_path / "a")["step"]) >= {0, 5}  # the other logs are closed all the same

    def failing_step(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(torch.optim.SGD, "step", failing_step)
    with pytest.raises(ValueError):
        train(make_cfg("train.steps=5", "probe=every", "optim=sgd"), tmp_path / "b")
    s = summary(tmp_path / "b")
    assert s["status"] == "failed" and s["error"] == "RuntimeError: disk on fire" and s["steps_done"] == 0
