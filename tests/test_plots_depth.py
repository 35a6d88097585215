"""The ``depth`` figure (initlab/plots/depth.py) from runs with known variances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plot_runs import STD, hand_runs, one

from initlab import plots as P
from initlab.runs import RunData


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


def test_depth_known_variances(hand: list[RunData]) -> None:
    fig = one(P.fig_depth(hand, P.Options(steps=[0, "last"])), "depth_step0")
    assert [ax.get_title() for ax in fig.axes[:3]] == [P.QUANTITY_TEXT[q] for q in P.DEPTH_QUANTITIES]
    for ax, quantity in zip(fig.axes, P.DEPTH_QUANTITIES, strict=False):
        assert ax.get_yscale() == "log"
        lines = ax.get_lines()
        assert len(lines) == len(hand)  # one line per run
        for line in lines:
            np.testing.assert_allclose(line.get_xdata(), [1, 2])  # hidden layers
            np.testing.assert_allclose(line.get_ydata(), np.square(STD[quantity][:2]))
    last = one(P.fig_depth(hand, P.Options(steps=["last"])))
    np.testing.assert_allclose(last.axes[0].get_lines()[0].get_ydata(), np.square([2.0, 4.0]))


def test_depth_reference_line(hand: list[RunData]) -> None:
    fig = one(P.fig_depth(hand, P.Options(ref_ratio=0.5)))
    ax = fig.axes[0]
    ref = next(line for line in ax.get_lines() if line.get_linestyle() == ":")
    first = next(line for line in ax.get_lines() if line.get_linestyle() != ":")
    x, y = np.asarray(ref.get_xdata()), np.asarray(ref.get_ydata())
    np.testing.assert_allclose(y, first.get_ydata()[0] * 0.5 ** (x - x[0]))
    assert "reference: × 0.5 per layer" in [t.get_text() for t in fig.legends[0].get_texts()]
