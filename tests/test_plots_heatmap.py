"""The ``heatmap`` figure (initlab/plots/heatmap.py) from a run with known histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from plot_runs import COUNTS, EDGES, hand_runs, one

from initlab import plots as P
from initlab.runs import RunData


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


def test_heatmap_known_image(hand: list[RunData]) -> None:
    fig = one(P.fig_heatmap(hand[:1], P.Options()), "heatmap_act_layer2")
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    image = np.ma.filled(mesh.get_array(), 0).reshape(4, 2)  # value bins × probed steps
    np.testing.assert_array_equal(image, np.array([COUNTS[2], [c + 10 for c in COUNTS[2]]]).T)
    x, y = mesh.get_coordinates()[0, :, 0], mesh.get_coordinates()[:, 0, 1]
    np.testing.assert_allclose(x, [-5, 5, 15])
    np.testing.assert_allclose(y, EDGES)
