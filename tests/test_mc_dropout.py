"""Monte-Carlo dropout averaging (``train.mc_masks``, ``initlab/mc_dropout.py``) and its claims.

The statistic is checked on hand-built nets whose mask average is known: a linear layer (exactly the
eval-mode output, rms z ≈ 1), a square after dropout (E[(m·x/q)²] = x²/q ≠ x²: rms z far above 1), and a
linear net with batch norm (which must stay in eval mode). End to end: the option changes nothing of the
training run, and the quick preset passes its claims while the same claim fails on the nonlinear net.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from claim_controls import SWAPPED, swap_logs
from matplotlib.figure import Figure
from torch import nn

import initlab
from initlab import cli
from initlab.claims import evaluate, evaluate_claim, load_claims, srivastava
from initlab.config import ConfigError, validate
from initlab.lab.mc_dropout import k_grid, mc_dropout_table
from initlab.lab.train import train
from initlab.plots import Options, Skip
from initlab.plots.mc import fig_mc_dropout
from initlab.runs import MissingData, Run, collect_runs, load_run
from initlab.runs.write import MC_DROPOUT_FILE


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def _data(n: int = 200, d: int = 20, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen), torch.randint(0, classes, (n,), generator=gen)


def test_k_grid_is_one_two_five_up_to_k() -> None:
    assert k_grid(1000) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    assert k_grid(30) == [1, 2, 5, 10, 20, 30]
    assert k_grid(1) == [1]


def test_mask_average_of_a_linear_layer_is_the_eval_output() -> None:
    torch.manual_seed(0)
    x, y = _data()
    table = mc_dropout_table(nn.Sequential(nn.Dropout(0.5), nn.Linear(20, 5)), x, y, 400, seed=0)
    last = table.set_index("k").loc[400]
    # 1000 logits, each (m_K − e)/SE ~ t with 399 degrees of freedom: mean z² = 1 ± ~0.1
    assert 0.9 < last["rms_z"] < 1.1
    assert last["mean_abs_diff"] < last["mean_se"]  # E|N(0, SE²)| = 0.8 SE
    # the claim's test: mean t² within 2 standard errors of ν/(ν − 2), ν = 399
    assert abs(last["z2_mean"] - srivastava.t2_expected(400)) <= 2 * last["z2_se"]
    # per example: between √(2/1000) (1000 independent t²) and √(2/200) (an example's 5 logits one t²)
    assert 0.045 < last["z2_se"] < 0.1
    assert list(table["k"]) == k_grid(400) and (table["n_examples"] == 200).all()
    assert table["eval_error"].nunique() == 1


def test_z2_is_the_mean_t2_over_logits_with_its_standard_error_over_examples() -> None:
    x, y = _data()
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(20, 5))
    k = 50
    row = mc_dropout_table(model, x, y, k, seed=7).set_index("k").loc[k]
    torch.manual_seed(7)  # the same masks, drawn again by hand
    with torch.no_grad():
        e = model.eval()(x).double()
        z = torch.stack([model.train()(x).double() for _ in range(k)])
    t2 = ((z.mean(0) - e) / (z.std(0, unbiased=True) / k**0.5)) ** 2  # (examples, logits)
    per_example = t2.mean(1)
    assert row["z2_mean"] == pytest.approx(float(t2.mean()), rel=1e-9)
    assert row["z2_se"] == pytest.approx(float(per_example.std() / 200**0.5), rel=1e-9)
    assert row["rms_z"] == pytest.approx(row["z2_mean"] ** 0.5)


def test_a_nonlinearity_after_dropout_biases_the_mask_average() -> None:
    x, y = _data()
    table = mc_dropout_table(nn.Sequential(nn.Dropout(0.5), Square()), x, y, 400, seed=0)
    # E[(m·x/q)²] = x²/q = 2x², the eval output x²: a bias of x² against a standard error of x²/√400
    last = table.set_index("k").loc[400]
    assert last["rms_z"] > 10
    assert last["z2_mean"] - srivastava.t2_expected(400) > 100 * last["z2_se"]


def test_batch_norm_stays_in_eval_mode_and_modes_are_restored() -> None:
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 5))
    model.train()
    model(x * 3 + 1)  # running statistics that differ from the batch's own
    running = model[1].running_mean.clone()
    table = mc_dropout_table(model, x, y, 200, seed=0)
    # eval-mode BN is affine, so the net is linear between its masks: exact (batch statistics would not be)
    assert 0.85 < table.set_index("k").loc[200, "rms_z"] < 1.15
    assert torch.equal(model[1].running_mean, running)
    assert model.training and all(m.training for m in model.modules())


def test_the_table_depends_on_the_seed_only_and_leaves_the_random_state_alone() -> None:
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Dropout(0.3), nn.Linear(20, 5))
    state = torch.get_rng_state()
    first = mc_dropout_table(model, x, y, 20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    pd.testing.assert_frame_equal(first, mc_dropout_table(model, x, y, 20, seed=3))
    assert not first.equals(mc_dropout_table(model, x, y, 20, seed=4))


@pytest.mark.parametrize("value", [-1, 1.5, "x"])
def test_bad_mc_masks_is_refused_in_one_line(value, make_cfg) -> None:
    cfg = make_cfg()
    cfg.train.mc_masks = value
    expected = rf"^train.mc_masks={value} is not allowed: expected an integer >= 0 \(0: off\)$"
    with pytest.raises(ConfigError, match=expected):
        validate(cfg)


def test_mc_masks_without_dropout_is_refused_in_one_line(make_cfg) -> None:
    validate(make_cfg("model.dropout=0.5", "train.mc_masks=5"))  # hidden dropout only: fine
    validate(make_cfg("model.input_dropout=0.2", "train.mc_masks=5"))  # input dropout only: fine
    validate(make_cfg("train.mc_masks=0"))  # off: no dropout needed
    expected = (
        r"^train.mc_masks=5 is not allowed with model.dropout=0.0 and model.input_dropout=0.0: "
        r"expected train.mc_masks=0 or a dropout rate > 0$"
    )
    with pytest.raises(ConfigError, match=expected):
        validate(make_cfg("model.dropout=0.0", "model.input_dropout=0.0", "train.mc_masks=5"))


def test_the_command_refuses_mc_masks_without_dropout_before_training(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    args = [
        "run",
        "data=gaussian",
        "model.dropout=0",
        "train.mc_masks=10",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "initlab: error: train.mc_masks=10 is not allowed with model.dropout=0 and model.input_dropout=0.0: "
        "expected train.mc_masks=0 or a dropout rate > 0"
    ]
    assert not (tmp_path / "run").exists()


def test_mc_masks_leaves_the_training_run_unchanged(make_cfg, tmp_path: Path) -> None:
    overrides = ("model.dropout=0.5", "model.input_dropout=0.2", "probe=off", "train.eval_every=5")
    runs = {}
    for masks in (0, 30):
        cfg = make_cfg(*overrides, f"train.mc_masks={masks}")
        summary = train(cfg, tmp_path / str(masks))
        assert summary["status"] == "completed"
        runs[masks] = load_run(tmp_path / str(masks))
    pd.testing.assert_frame_equal(runs[0].metrics, runs[30].metrics)
    assert runs[0].summary["final_test_loss"] == runs[30].summary["final_test_loss"]
    assert not (tmp_path / "0" / MC_DROPOUT_FILE).exists()
    with pytest.raises(MissingData, match="train.mc_masks"):
        runs[0].mc_averaging()
    table = runs[30].mc_averaging()
    assert list(table.index) == k_grid(30) and (table["n_masks"] == 30).all()
    assert table["eval_error"].iloc[0] == pytest.approx(1 - runs[30].summary["final_test_accuracy"])
    assert (table["n_examples"] == 100).all()  # the test split's first eval_examples (TINY_DATA: 100)


def _fake_run(
    act: str, rms_z: float, k_max: int = 100, dropout: float = 0.5, seed: int = 0, z2_se: float = 0.02
) -> Run:
    ks = k_grid(k_max)
    table = pd.DataFrame(
        {
            "k": ks,
            "mc_error": 0.1,
            "eval_error": 0.05,
            "rms_z": [rms_z] * len(ks),
            "z2_mean": [rms_z**2] * len(ks),
            "z2_se": z2_se,
            "n_masks": k_max,
        }
    )
    config = {"act": {"name": act}, "model": {"dropout": dropout, "input_dropout": 0.0}, "seed": seed}
    overrides = [f"act={act}", f"seed={seed}"]
    return Run(Path(f"fake-{act}-{seed}"), config=config, overrides=overrides, summary={}, mc_dropout=table)


def test_t2_expected_is_the_second_moment_of_student_t() -> None:
    assert srivastava.t2_expected(1000) == pytest.approx(999 / 997)
    assert srivastava.t2_expected(6) == pytest.approx(5 / 3)
    torch.manual_seed(0)
    draws = torch.distributions.StudentT(9.0).sample((400_000,)).double()  # ν = 9: 9/7
    assert float((draws**2).mean()) == pytest.approx(srivastava.t2_expected(10), rel=0.03)


def test_the_linear_claim_is_the_deviation_of_mean_t2_from_theory_in_standard_errors() -> None:
    measure = srivastava.mc_linear_mask_average_is_eval_output
    claim = MC_CLAIMS["mc_linear_mask_average_is_eval_output"]
    expected = 99 / 97  # ν/(ν − 2) at K = 100
    value = measure([_fake_run("relu", 7.0), _fake_run("linear", 1.0)])
    assert value == pytest.approx((1.0 - expected) / 0.02)  # -1.03 SE: passes
    assert claim.passes(value)
    biased = measure([_fake_run("linear", 1.03)])  # z2 = 1.0609: +2.0 SE above 1.0206
    assert biased == pytest.approx((1.03**2 - expected) / 0.02) and not claim.passes(biased)
    assert not claim.passes(measure([_fake_run("linear", 0.97)]))  # too little scatter fails too
    assert claim.passes(measure([_fake_run("linear", 1.03, z2_se=0.04)]))  # within 2 of a wider SE
    with pytest.raises(MissingData, match="dropout"):
        measure([_fake_run("linear", 1.0, dropout=0.0)])
    with pytest.raises(MissingData, match="train.mc_masks >= 30"):
        measure([_fake_run("linear", 1.0, k_max=20)])
    with pytest.raises(MissingData, match="act.name=linear"):
        measure([_fake_run("relu", 1.0)])


def test_the_figure_draws_error_and_rms_z_against_k_and_skips_runs_without_the_file() -> None:
    runs = [_fake_run(act, z, seed=s) for act, z in (("linear", 1.0), ("relu", 5.0)) for s in (0, 1)]
    [(name, fig)] = fig_mc_dropout(runs, Options())
    assert name == "mc_dropout" and len(fig.axes) == 2
    ax_err, ax_z = fig.axes
    assert ax_err.get_xscale() == "log" and ax_z.get_yscale() == "log"
    curves = [line for line in ax_z.get_lines() if line.get_marker() == "o"]  # one per setting
    assert sorted(float(line.get_ydata()[0]) for line in curves) == [1.0, 5.0]
    assert all(list(line.get_xdata()) == [5, 10, 20, 50, 100] for line in curves)  # k >= 5
    [theory] = [line for line in ax_z.get_lines() if line.get_linestyle() == ":"]  # exact: rms of a t
    assert list(theory.get_xdata()) == [5, 10, 20, 50, 100]
    assert list(theory.get_ydata()) == pytest.approx(
        [2**0.5, (9 / 7) ** 0.5, (19 / 17) ** 0.5, (49 / 47) ** 0.5, (99 / 97) ** 0.5]
    )
    assert initlab.plots.draw_mc_dropout is initlab.plots.DRAW["mc_dropout"]  # exported with the others
    assert "fig_mc_dropout" in initlab.plots.__all__
    axes = Figure().subplots(1, 2)
    assert initlab.draw("mc_dropout", runs, ax=axes) is axes and axes[1].get_yscale() == "log"
    bare = Run(Path("bare"), config={}, overrides=[], summary={}, mc_dropout=pd.DataFrame())
    with pytest.raises(Skip, match="train.mc_masks"):
        fig_mc_dropout([bare], Options())


# -- the claims on the quick preset -----------------------------------------------------------------------
MC_CLAIMS = {c.name: c for c in load_claims() if c.preset == "dropout_mc"}


@pytest.mark.slow
def test_quick_preset_passes_and_the_linear_claim_fails_on_the_nonlinear_net(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    sweep = tmp_path / "sweep"
    args = ["run", "-m", "experiment=dropout_mc_quick", f"hydra.sweep.dir={sweep}", "hydra/launcher=basic"]
    assert cli.main(args) == 0
    runs = collect_runs([sweep])
    assert len(runs) == 4 and all(r.summary["status"] == "completed" for r in runs)
    results = {r.claim.name: r for r in evaluate(runs) if r.claim.preset == "dropout_mc"}
    assert set(results) == set(MC_CLAIMS)
    for result in results.values():
        assert result.passed is True, f"{result.claim.name}: {result.values} ({result.note})"
        assert set(result.values) == {"0", "1"}
    name = "mc_linear_mask_average_is_eval_output"
    control = evaluate_claim(MC_CLAIMS[name], swap_logs(runs, *SWAPPED[name]))
    assert control.passed is False, f"{name} passed on the ReLU net's logs: {control.values}"
    assert all(v > srivastava.MAX_Z2_DEVIATION for v in control.values.values())
