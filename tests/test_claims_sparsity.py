"""The ``l1_sparsity`` claims (initlab/claims/sparsity.py): the measure on weights whose count is known, the
L2 decay bound, and the quick preset passing every claim (its negative controls: tests/claim_controls.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab import cli
from initlab.claims import NotApplicable, evaluate, load_claims
from initlab.claims.sparsity import GAUSSIAN, TAU, l2_shrink_bound, near_zero_fraction
from initlab.runs import Run, collect_runs


def fake_run(
    weights: dict[str, np.ndarray],
    std0: list[float],
    n: list[int] | None = None,
    status="completed",
    **config,
) -> Run:
    layers = pd.DataFrame(
        {
            "step": 0,
            "layer": range(1, len(std0) + 1),
            "quantity": "weight",
            "std": std0,
            "n": n if n is not None else [w.size for w in weights.values()],
        }
    )
    return Run(
        "fake", config=config, layers=layers, weights=weights, summary={"steps_done": 100, "status": status}
    )


def test_near_zero_fraction_counts_every_weight_against_its_layers_init_std() -> None:
    # layer 1 (init std 1): τ = 0.01, 2 of 4 below; layer 2 (init std 0.1): τ = 0.001, 1 of 2 below
    a = np.array([[0.005, -0.0099], [0.0101, -1.0]])
    b = np.array([[-0.0005, 0.002]])
    run = fake_run({"layers.0.weight": a, "layers.1.weight": b}, [1.0, 0.1])
    assert near_zero_fraction(run) == 3 / 6
    with pytest.raises(NotApplicable, match="do not match"):  # sizes differ from the probed layers'
        near_zero_fraction(fake_run({"w": a, "v": b}, [1.0, 0.1], n=[2, 4]))
    with pytest.raises(NotApplicable, match="model.pt"):
        near_zero_fraction(fake_run({}, [1.0], n=[4]))
    with pytest.raises(
        NotApplicable, match="needs a completed run: fake is diverged"
    ):  # model.pt at divergence
        near_zero_fraction(
            fake_run({"layers.0.weight": a, "layers.1.weight": b}, [1.0, 0.1], status="diverged")
        )


def test_near_zero_fraction_of_a_gaussian_is_erf() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, size=(1000, 1000))
    run = fake_run({"w": w}, [float(w.std())])
    assert near_zero_fraction(run) == pytest.approx(GAUSSIAN, rel=0.02)  # 8,000 expected: ±1.1 % sampling


def test_l2_shrink_bound() -> None:
    sgd = {"optim": {"name": "sgd", "lr": 0.05, "momentum": 0.0}}
    run = fake_run({}, [], reg={"l2": 0.01}, **sgd)  # 100 steps: shrink 0.999^100
    assert l2_shrink_bound(run) == pytest.approx(math.erf(TAU / 0.999**100 / math.sqrt(2)))
    assert l2_shrink_bound(fake_run({}, [], reg={"l2": 0.0}, **sgd)) == pytest.approx(GAUSSIAN)
    momentum = {"optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9}}
    with pytest.raises(NotApplicable, match="plain SGD"):
        l2_shrink_bound(fake_run({}, [], reg={"l2": 0.01}, **momentum))
    # 2·lr·λ > 1: the decay overshoots, |w| is multiplied by |1 − 2·lr·λ| = 0.5 per step (not by −0.5)
    overshoot = {"optim": {"name": "sgd", "lr": 15.0, "momentum": 0.0}}
    assert l2_shrink_bound(fake_run({}, [], reg={"l2": 0.05}, **overshoot)) == 1.0  # 0.5^100·1/0.01 ≫ 1
    # factor exactly 0 (2·lr·λ = 1): every weight is 0 after one step, the bound is the whole mass
    assert l2_shrink_bound(fake_run({}, [], reg={"l2": 0.5}, **{"optim": {**sgd["optim"], "lr": 1.0}})) == 1.0


@pytest.mark.slow
def test_quick_preset_passes_its_claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    sweep = tmp_path / "sweep"
    assert cli.main(["run", "-m", "experiment=l1_sparsity_quick", f"hydra.sweep.dir={sweep}"]) == 0
    runs = collect_runs([sweep])
    assert len(runs) == 6 and all(r.summary["status"] == "completed" for r in runs)
    results = evaluate(runs)
    assert [r.claim.name for r in results] == [c.name for c in load_claims() if c.preset == "l1_sparsity"]
    assert len(results) == 2
    for r in results:
        assert r.passed, f"{r.claim.name}: measured {r.values} ({r.note}); pass if {r.claim.threshold}"
        assert set(r.values) == {"0", "1"}  # every seed
    for seed in (0, 1):  # the preset's rule: equal penalties at init (the realized weights, not E|w|)
        step0 = {
            r.cfg("penalty"): r.metrics.query("step == 0 and split == 'train'")["reg_loss"].item()
            for r in runs
            if r.cfg("seed") == seed
        }
        assert step0["none"] == 0 and step0["l1"] == pytest.approx(step0["l2"], rel=0.03)
