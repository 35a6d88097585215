"""The ``weights`` figure (initlab/plots/weights.py) from hand-written runs with known final weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from initlab import plots as P
from initlab.runs import Run


def run_with(name: str, seed: int, weights: list[np.ndarray], std0: list[float] | None) -> Run:
    layers = pd.DataFrame(
        {
            "step": 0,
            "layer": range(1, len(weights) + 1),
            "quantity": "weight",
            "std": std0 or [0.0] * len(weights),
        }
    )
    return Run(
        f"{name}/{seed}",
        config={"penalty": name, "seed": seed},
        overrides=[f"penalty={name}", f"seed={seed}"],
        summary={"status": "completed"},
        layers=layers if std0 else pd.DataFrame(),
        weights={f"w{i}": w for i, w in enumerate(weights)},
    )


def test_lines_are_the_shares_of_the_pooled_seeds_per_log_bin() -> None:
    a = [np.array([[1e-6, -1e-3], [0.5, -0.5]]), np.array([[0.1, 0.2]])]
    b = [np.array([[1e-3, 1e-3], [-0.5, 0.5]]), np.array([[0.0, 0.2]])]
    c = [np.array([[0.3, 0.3], [0.3, 0.3]]), np.array([[0.3, 0.3]])]
    runs = [run_with("l1", 0, a, [1.0, 0.1]), run_with("l1", 1, b, [1.0, 0.1]), run_with("none", 0, c, None)]
    ((stem, fig),) = P.fig_weights(runs, P.Options())
    assert stem == "weights" and [ax.get_title() for ax in fig.axes[:2]] == ["layer 1", "output layer"]
    edges = np.geomspace(1e-6, 0.5 * 1.05, P.weights.BINS + 1)  # smallest nonzero |w| to the largest
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["penalty=l1"].get_xdata(), np.sqrt(edges[:-1] * edges[1:]))
    pooled = np.abs(np.concatenate([a[0].ravel(), b[0].ravel()]))  # 8 values: both seeds
    np.testing.assert_allclose(lines["penalty=l1"].get_ydata(), np.histogram(pooled, edges)[0] / 8)
    assert lines["penalty=none"].get_ydata().max() == 1.0  # all four at 0.3
    out = {line.get_label(): line for line in fig.axes[1].get_lines()}["penalty=l1"].get_ydata()
    assert out[0] == 0.25  # the exact zero of seed 1 counts in the first bin
    # the init distribution of the runs with a step-0 probe (both σ = 1, then 0.1) and 1 % of σ
    dashed = [line for line in fig.axes[1].get_lines() if line.get_linestyle() == "--"][0]
    want = np.diff([math.erf(e / (0.1 * math.sqrt(2))) for e in edges])
    np.testing.assert_allclose(dashed.get_ydata(), want)
    dotted = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"][0]
    assert dotted.get_xdata()[0] == pytest.approx(0.01)


def test_runs_without_final_weights_are_skipped() -> None:
    run = run_with("none", 0, [], None)
    with pytest.raises(P.Skip, match="model.pt"):
        P.fig_weights([run], P.Options())


def test_no_init_curve_when_the_runs_start_from_different_scales_and_nan_is_left_out() -> None:
    a = [np.array([[0.1, np.nan], [0.2, 0.3]])]
    b = [np.array([[0.1, 0.2], [0.2, 0.3]])]
    runs = [run_with("l1", 0, a, [1.0]), run_with("l2", 0, b, [2.0])]  # init stds 1 and 2: no single init
    ((_, fig),) = P.fig_weights(runs, P.Options())
    styles = [line.get_linestyle() for line in fig.axes[0].get_lines()]
    assert "--" not in styles and ":" not in styles
    l1 = {line.get_label(): line for line in fig.axes[0].get_lines()}["penalty=l1"].get_ydata()
    assert l1.sum() == pytest.approx(1.0)  # shares of the 3 finite values
