"""The ``stats`` and ``percentiles`` figures (initlab/plots/over_time.py) from runs with known numbers."""

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


def test_stats_known_numbers(hand: list[RunData]) -> None:
    runs = hand[:1]
    fig = one(P.fig_stats(runs, P.Options()))
    ax = fig.axes[0]
    errorbars = {c.get_label(): c for c in ax.containers}
    mean_line = errorbars["layer 1: mean ± std"].lines[0]
    np.testing.assert_allclose(mean_line.get_xdata(), [0, 10])
    np.testing.assert_allclose(mean_line.get_ydata(), [0.1, 0.2])
    p98 = lines_of(ax)["layer 1: 98th percentile"]
    assert p98.get_linestyle() == "None" and p98.get_marker() == "^"
    np.testing.assert_allclose(p98.get_ydata(), [1.0, 2.0])
    assert "layer 3: mean ± std" not in errorbars  # output layer left out
    assert ax.get_ylabel().startswith("activation")


def test_percentiles_known_numbers_side_by_side(hand: list[RunData]) -> None:
    runs = [r for r in hand if "data=shapeset" in r.overrides and "seed=0" in r.overrides]
    fig = one(P.fig_percentiles(runs, P.Options()), "percentiles_preact_layer2")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["init=standard", "init=xavier"]
    lines = lines_of(panels[0])
    np.testing.assert_allclose(lines["50th percentile (median)"].get_ydata(), [0.02, 0.12])
    np.testing.assert_allclose(lines["15th percentile"].get_ydata(), [-2.0, -3.9])
    np.testing.assert_allclose(lines["85th percentile"].get_ydata(), [2.0, 4.1])
    assert panels[0].get_shared_y_axes().joined(panels[0], panels[1])
    assert one(P.fig_percentiles(runs, P.Options(layers=[1])), "percentiles_preact_layer1")
