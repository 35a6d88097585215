"""The mean-field claims (initlab/claims/theory.py) and the ``phase`` figure, on hand-made runs with known
numbers, each with a negative control; and the quick ``edge_of_chaos`` preset end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab import cli
from initlab.claims import evaluate, load_claims
from initlab.lab.prediction import activation
from initlab.plots import Options
from initlab.plots.phase import fig_phase
from initlab.runs import Run, collect_runs
from initlab.theory import predict as T

load_claims()  # every module registers its claims in the usual order (claims.md lists them in that order)
from initlab.claims import theory as C  # noqa: E402

TANH = activation({"name": "tanh"})
SIGMAS = (1.0, 1.3, 1.76, 2.4, 4.0)


def profile_run(width: int, measured_scale: list[float], predicted: list[float]) -> Run:
    """A run whose step-0 preact variances are ``predicted`` times ``measured_scale`` per layer."""
    layers = np.arange(1, len(predicted) + 1)
    theory = pd.DataFrame(
        {"layer": layers, "quantity": "preact", "mean": 0.0, "variance": predicted, "fan_out": width}
    )
    std = np.sqrt(np.array(predicted) * np.array(measured_scale))
    probes = pd.DataFrame({"step": 0, "layer": layers, "quantity": "preact", "std": std})
    return Run("hand", config={"preset": "edge_of_chaos"}, summary={}, layers=probes, theory=theory)


def test_variance_claim_and_its_negative_control() -> None:
    n = 256
    se = math.sqrt(2 / n)
    predicted = [4.05, 2.7, 2.2, 2.0, 1.9]
    # a random walk of ±2 SE steps around the curve: the profile drifts, each step stays within 2 SE
    walk = np.exp(np.cumsum([1.5 * se, -2 * se * 2, 2 * se * 2, 2 * se * 2, -1 * se * 2]))
    assert C.worst_ratio_error([profile_run(n, list(walk), predicted)]) == pytest.approx(2.0)
    # negative control: the prediction of another σ_w² (first layer off by a factor 4)
    wrong = profile_run(n, [1.0] * 5, predicted)
    wrong.theory = wrong.theory.assign(variance=[p / 4 if i == 0 else p for i, p in enumerate(predicted)])
    value = C.worst_ratio_error([wrong])
    assert value == pytest.approx(math.log(4) / se) and value > C.N_SE
    # a run made before predictions existed: not applicable, with the reason
    old = Run("old", config={}, summary={}, layers=pd.DataFrame(), theory=pd.DataFrame())
    with pytest.raises(C.NotApplicable):
        C.worst_ratio_error([old])


def grid_runs(trained: dict[tuple[float, int], float]) -> list[Run]:
    """Runs over SIGMAS x depths with the given final train accuracies and the theory's χ₁, ξ_c."""
    runs = []
    for (sigma, depth), acc in trained.items():
        s = T.depth_scales(TANH, sigma, 0.05)
        summary = {
            "final_train_accuracy": acc,
            "train_prior_entropy": math.log(10),
            "theory_sigma_w2": sigma,
            "theory_chi_1": s.chi_1,
            "theory_xi_c": None if math.isinf(s.xi_c) else s.xi_c,
        }
        config = {
            "preset": "edge_of_chaos",
            "init": {"name": "meanfield", "sigma_w2": sigma},
            "model": {"depth": depth},
        }
        runs.append(Run(f"{sigma}-{depth}", config=config, summary=summary))
    return runs


def accuracies(deep_winner: float) -> dict[tuple[float, int], float]:
    """Every σ_w² trains at depth 10; at depth 100 only ``deep_winner`` does."""
    return {(s, d): 0.95 if d == 10 or s == deep_winner else 0.1 for s in SIGMAS for d in (10, 100)}


def test_trainability_claims_and_their_negative_controls() -> None:
    near = grid_runs(accuracies(1.76))
    assert C.critical_sigma_w2(C._grid(near)) == pytest.approx(1.76, abs=0.01)
    assert C.eoc_deepest_trainable_near_critical(near) == 0
    assert C.eoc_too_deep_nets_do_not_train(near) == 0  # 100 > 6·ξ_c everywhere but at 1.76
    # negative controls: the deepest trained net far from critical; nets beyond 6·ξ_c that train
    far = grid_runs(accuracies(4.0))
    assert C.eoc_deepest_trainable_near_critical(far) == 2  # 4.0 is two grid steps from 1.76
    assert C.eoc_too_deep_nets_do_not_train(far) == 1
    results = {r.claim.name: r.passed for r in evaluate(far)}
    assert results["eoc_deepest_trainable_near_critical"] is False
    assert results["eoc_too_deep_nets_do_not_train"] is False


def test_phase_figure_draws_the_grid_and_the_theory() -> None:
    runs = grid_runs(accuracies(1.76))
    [(name, fig)] = fig_phase(runs, Options())
    ax = fig.axes[0]
    mesh = ax.collections[0]
    cells = np.asarray(mesh.get_array()).reshape(2, len(SIGMAS))
    np.testing.assert_allclose(cells[0], 0.95)  # depth 10
    np.testing.assert_allclose(cells[1], [0.1, 0.1, 0.95, 0.1, 0.1])  # depth 100
    curve, critical = ax.get_lines()[:2]
    xi = [T.depth_scales(TANH, s, 0.05).xi_c for s in SIGMAS]
    top = ax.get_ylim()[1]
    np.testing.assert_allclose(curve.get_ydata(), np.minimum(6 * np.array(xi), top))
    assert critical.get_xdata()[0] == pytest.approx(1.76, abs=0.01)


def test_phase_figure_draws_into_a_given_axes() -> None:
    from matplotlib.figure import Figure

    from initlab import draw_phase

    ax = Figure().subplots()
    assert draw_phase(grid_runs(accuracies(1.76)), ax=ax) is ax
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_array()).reshape(2, -1)[0], 0.95)


@pytest.mark.slow
def test_quick_edge_of_chaos_preset(tmp_path: Path, monkeypatch) -> None:
    """The quick preset runs (6 nets, about 30 s) and its claims hold."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert cli.main(["run", "-m", "experiment=edge_of_chaos_quick", f"hydra.sweep.dir={sweep}"]) == 0
    results = evaluate(collect_runs([sweep]))
    assert {r.claim.name: r.passed for r in results} == {
        "edge_of_chaos_variances_follow_mean_field": True,
        "eoc_deepest_trainable_near_critical": True,
        "eoc_too_deep_nets_do_not_train": True,
    }
