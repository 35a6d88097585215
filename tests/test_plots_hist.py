"""The ``hist`` figure (initlab/plots/hist.py) from runs with known histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plot_runs import hand_runs, lines_of, one

from initlab import plots as P
from initlab.runs import RunData


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


def test_hist_known_numbers(hand: list[RunData]) -> None:
    runs = [r for r in hand if "data=shapeset" in r.overrides and "seed=0" in r.overrides]
    fig = one(P.fig_hist(runs, P.Options(steps=[0])), "hist_act_step0")
    assert [ax.get_title() for ax in fig.axes] == ["init=standard — step 0", "init=xavier — step 0"]
    lines = lines_of(fig.axes[0])
    assert set(lines) == {"layer 1", "layer 2 (50% outside range)"}
    np.testing.assert_allclose(lines["layer 1"].get_xdata(), [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(lines["layer 1"].get_ydata(), [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(lines["layer 2 (50% outside range)"].get_ydata(), [0.2, 0.15, 0.1, 0.05])
    # --layers picks layers (the output layer too), --steps picks the step (nearest probed one)
    fig = one(P.fig_hist(runs, P.Options(steps=[9], layers=[3])), "hist_grad_preact_step9")
    line = lines_of(fig.axes[0])["output layer"]
    np.testing.assert_allclose(line.get_ydata(), np.array([10, 10, 15, 15]) / 50)
    assert fig.axes[0].get_title() == "init=standard — step 10"
