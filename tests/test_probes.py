"""Probes: statistics against numpy, signal-propagation identities at step 0, and the logging contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from initlab import load_run
from initlab.config import config_dir
from initlab.lab.train import train
from initlab.probing import probes
from initlab.probing.capture import tensor_stats
from initlab.probing.probes import Probe
from initlab.probing.stats import PERCENTILES, STATS, sample_stride

TINY = [
    "data=gaussian",
    "data.dim=32",
    "data.n_train=300",
    "data.n_test=400",
    "model.width=64",
    "model.depth=3",
    "train.steps=40",
    "train.eval_every=10",
    "train.progress=false",
]


def make_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("config", overrides=[*TINY, *overrides])


def test_stats_match_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000).astype(np.float32)
    x[:250] = 0.0
    lo, hi, bins = -2.0, 2.0, 40
    v = tensor_stats(torch.from_numpy(x), lo, hi, bins, lambda a: a.abs() > 1.5).numpy()
    stats = dict(zip(STATS, v[: len(STATS)], strict=True))
    assert stats["mean"] == pytest.approx(x.mean(), abs=1e-6)
    assert stats["std"] == pytest.approx(x.std(ddof=1), rel=1e-5)
    assert stats["min"] == x.min() and stats["max"] == x.max()
    for p, key in zip(PERCENTILES, ("p02", "p15", "p50", "p85", "p98"), strict=True):
        assert stats[key] == pytest.approx(np.quantile(x, p), abs=1e-5)
    assert stats["frac_zero"] == pytest.approx(0.05)
    assert stats["frac_saturated"] == pytest.approx(np.mean(np.abs(x) > 1.5))
    assert stats["n"] == 5000 and stats["n_nonfinite"] == 0
    counts, _ = np.histogram(x, bins=bins, range=(lo, hi))
    np.testing.assert_array_equal(v[len(STATS) : len(STATS) + bins], counts)
    assert v[-2] == np.sum(x < lo) and v[-1] == np.sum(x > hi)


def test_stats_skip_nonfinite_values() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, math.inf, -math.inf, math.nan])
    v = tensor_stats(x, 0.0, 4.0, 4, None).numpy()
    stats = dict(zip(STATS, v[: len(STATS)], strict=True))
    assert stats["mean"] == pytest.approx(2.0) and stats["std"] == pytest.approx(1.0)
    assert (stats["min"], stats["max"], stats["p50"]) == (1.0, 3.0, 2.0)
    assert stats["n"] == 6 and stats["n_nonfinite"] == 3
    assert math.isnan(stats["frac_saturated"])
    assert v[len(STATS) : len(STATS) + 4].sum() == 3 and v[-2] == 0 and v[-1] == 0


def test_percentiles_of_large_tensors_use_an_even_subsample() -> None:
    n = 1_000_001
    x = torch.linspace(-1, 1, n)
    v = tensor_stats(x, -1.0, 1.0, 10, None).numpy()
    # The sample is a linspace with `stride` times the spacing: its quantiles are off by at most that.
    tol = sample_stride(n) * 2 / (n - 1)
    assert v[STATS.index("p50")] == pytest.approx(0.0, abs=tol)
    assert v[STATS.index("p98")] == pytest.approx(0.96, abs=tol)
    assert v[STATS.index("n")] == n and v[STATS.index("n_sample")] == len(range(0, n, sample_stride(n)))


def step0(run_dir, layer: int, quantity: str) -> pd.Series:
    layers = load_run(run_dir).layers
    row = layers[(layers.step == 0) & (layers.layer == layer) & (layers.quantity == quantity)]
    assert len(row) == 1
    return row.iloc[0]


def test_first_layer_preact_variance_is_fan_in_times_weight_variance(tmp_path) -> None:
    """He et al. Eq. 7: Var[y] = n_in·Var[w]·E[x²]; with kaiming_normal/relu Var[w] = 2/n_in, E[x²] = 1."""
    cfg = make_cfg(
        "init=kaiming_normal", "act=relu", "model.bias=false", "probe.fixed_batch=400", "train.steps=1"
    )
    train(cfg, tmp_path)
    w = step0(tmp_path, 1, "weight")
    pre = step0(tmp_path, 1, "preact")
    expected = w["fan_in"] * w["std"] ** 2 * 1.0  # the loader standardizes inputs: E[x²] = 1
    assert w["std"] ** 2 == pytest.approx(2 / 32, rel=0.1)
    assert pre["std"] ** 2 + pre["mean"] ** 2 == pytest.approx(expected, rel=0.15)
    # ReLU zeroes the negative half of a symmetric pre-activation: half the units are off at init.
    assert step0(tmp_path, 1, "act")["frac_zero"] == pytest.approx(0.5, abs=0.05)
    assert step0(tmp_path, 2, "act")["frac_zero"] == pytest.approx(0.5, abs=0.05)


def test_probes_do_not_change_the_trajectory(tmp_path) -> None:
    """Bit-for-bit identical metrics with probes off, on every step, and on a fixed extra batch."""
    common = ["model.dropout=0.3", "model.input_dropout=0.1", "model.norm=batch", "data.augment.noise=0.1"]
    runs = {
        "off": make_cfg(*common, "probe=off"),
        "every": make_cfg(*common, "probe=every"),
        "fixed": make_cfg(*common, "probe=every", "probe.fixed_batch=50"),
    }
    metrics = {}
    for name, cfg in runs.items():
        train(cfg, tmp_path / name)
        metrics[name] = load_run(tmp_path / name).metrics
    pd.testing.assert_frame_equal(metrics["off"], metrics["every"], check_exact=True)
    pd.testing.assert_frame_equal(metrics["off"], metrics["fixed"], check_exact=True)
    layers = load_run(tmp_path / "every").layers
    assert sorted(layers.step.unique()) == list(range(40))  # training-pass probes: steps 0..steps-1
    quantities = {"weight", "preact", "act", "grad_preact", "grad_weight", "param", "grad_param"}
    assert set(layers.quantity) == quantities
    assert set(layers.layer) == {1, 2, 3, 4}
    assert sorted(load_run(tmp_path / "fixed").layers.step.unique()) == list(range(41))


def test_steps_described_together_log_what_step_by_step_logs(tmp_path, monkeypatch) -> None:
    """Every-step probes computed in batches of steps write the same files as one step at a time."""
    cfg = make_cfg("probe=every", "model.norm=batch", "act=tanh")
    train(cfg, tmp_path / "batched")
    monkeypatch.setattr(probes, "BATCH_STEPS", 1)
    train(cfg, tmp_path / "single")
    batched, single = load_run(tmp_path / "batched"), load_run(tmp_path / "single")
    pd.testing.assert_frame_equal(batched.layers, single.layers, check_exact=True)
    pd.testing.assert_frame_equal(
        batched.hists.drop(columns=["counts", "edges"]), single.hists.drop(columns=["counts", "edges"])
    )
    assert all(np.array_equal(a, b) for a, b in zip(batched.hists.counts, single.hists.counts, strict=True))
    assert sorted(batched.layers.step.unique()) == list(range(40))


def test_layer_and_hist_contract(tmp_path) -> None:
    cfg = make_cfg("act=tanh", "probe.bins=20")
    train(cfg, tmp_path)
    run = load_run(tmp_path)
    expected = {"step", "layer", "name", "quantity", "fan_in", "fan_out", *STATS}
    assert expected <= set(run.layers.columns)
    first = run.layers[(run.layers.layer == 1) & (run.layers.step == 0)]
    assert set(first.fan_in) == {32} and set(first.fan_out) == {64} and set(first.name) == {"hidden.0.linear"}
    act = run.layers[(run.layers.quantity == "act") & (run.layers.layer <= 3)]
    assert act.frac_saturated.notna().all()
    assert run.layers[run.layers.quantity == "weight"].frac_saturated.isna().all()
    h = run.hists
    assert {"step", "layer", "quantity", "edges", "counts", "underflow", "overflow", "n_nonfinite"} <= set(
        h.columns
    )
    # tanh outputs are binned over [-1, 1]; counts + under/overflow account for every finite value.
    row = h[(h.quantity == "act") & (h.layer == 1) & (h.step == 0)].iloc[0]
    assert row.edges[0] == -1.0 and row.edges[-1] == 1.0 and len(row.edges) == 21
    n = first[first.quantity == "act"].n.iloc[0]
    assert sum(row.counts) + row.underflow + row.overflow == n
    # The binning range of a quantity stays fixed for the whole run.
    w = h[(h.quantity == "weight") & (h.layer == 2)]
    assert len({(e[0], e[-1]) for e in w.edges}) == 1


def test_interrupted_run_keeps_its_probes(tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    original = Probe.record

    def record_then_interrupt(self, step: int) -> None:
        original(self, step)
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(Probe, "record", record_then_interrupt)
    summary = train(make_cfg("probe=every"), tmp_path)
    assert summary["status"] == "interrupted"
    run = load_run(tmp_path)
    assert sorted(run.layers.step.unique()) == [0, 1, 2, 3, 4]
    assert not run.metrics.empty and run.summary["status"] == "interrupted"


def test_diverging_run_records_probes_up_to_divergence(tmp_path) -> None:
    cfg = make_cfg(
        "init=normal",
        "init.std=3",
        "model.depth=8",
        "act=relu",
        "optim.lr=1",
        "probe=every",
        "train.steps=200",
    )
    with pytest.warns(UserWarning, match="non-finite"):
        summary = train(cfg, tmp_path)
    assert summary["status"] == "diverged"
    stop = summary["diverged_at"]
    assert stop is not None and stop < 200
    run = load_run(tmp_path)
    assert run.layers.step.max() == stop
    last = run.layers[run.layers.step == stop]
    assert last.n_nonfinite.sum() > 0


def test_jacobian_singular_values(tmp_path) -> None:
    """With a linear activation J = W; an orthogonal W has every singular value equal to its gain."""
    train(
        make_cfg("act=linear", "init=orthogonal", "init.gain=0.7", "probe.jacobian=true", "train.steps=1"),
        tmp_path / "orth",
    )
    jac = load_run(tmp_path / "orth").layers.query("quantity == 'jacobian' and step == 0")
    assert sorted(jac.layer) == [2, 3]
    assert jac["min"].min() == pytest.approx(0.7, abs=1e-4) and jac["max"].max() == pytest.approx(
        0.7, abs=1e-4
    )
    # tanh at a small scale: f' ≈ 1, so the mean singular value is close to that of W itself.
    train(
        make_cfg("act=tanh", "init=orthogonal", "init.gain=0.05", "probe.jacobian=true", "train.steps=1"),
        tmp_path / "tanh",
    )
    jac = load_run(tmp_path / "tanh").layers.query("quantity == 'jacobian' and step == 0")
    assert jac["mean"].to_numpy() == pytest.approx(0.05, rel=0.01)


def test_unit_distance_is_zero_only_without_symmetry_breaking(tmp_path) -> None:
    for init in ("constant", "xavier"):
        train(make_cfg(f"init={init}", "probe.unit_distance=true", "train.steps=5"), tmp_path / init)
    const = load_run(tmp_path / "constant").layers.query("quantity == 'unit_distance' and layer <= 3")
    xavier = load_run(tmp_path / "xavier").layers.query("quantity == 'unit_distance' and layer <= 3")
    assert (const["max"] < 1e-6).all()
    assert (xavier["max"] > 0.5).all()
    assert const["n"].iloc[0] == 64 * 63 // 2


@pytest.mark.slow
def test_logs_survive_a_hard_kill_and_merge_on_close(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "initlab",
        "run",
        *TINY,
        "train.steps=1000000",
        "train.eval_every=5",
        f"hydra.run.dir={run_dir}",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    parts = run_dir / "metrics.parquet.parts"
    deadline = time.monotonic() + 60
    while len(list(parts.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = load_run(run_dir)
    assert run.summary["status"] == "running"  # never finished: the summary says so
    assert len(run.metrics) >= 6 and set(run.metrics.split) == {"train", "test"}
    # A run that ends normally leaves single files and no parts.
    train(make_cfg(), tmp_path / "done")
    assert (tmp_path / "done" / "layers.parquet").is_file()
    assert not list((tmp_path / "done").glob("*.parts"))
