"""The ``hist`` figure (initlab/plots/hist.py) from runs with known histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plot_runs import CONFIG, hand_runs, lines_of, one, write_run

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
    fig = one(P.fig_hist(runs, P.Options(steps=[9], layers=[3])), "hist_grad_preact_step10")  # as drawn
    line = lines_of(fig.axes[0])["output layer"]
    np.testing.assert_allclose(line.get_ydata(), np.array([10, 10, 15, 15]) / 50)
    assert fig.axes[0].get_title() == "init=standard — step 10"


def test_hist_colors_span_each_panels_layers(tmp_path: Path) -> None:
    """A shallow panel beside a deep one uses its own color scale (dark first layer to light last layer),
    not the deepest run's, so its few lines can be told apart."""
    from initlab.plots.style import layer_color

    write_run(tmp_path / "a", ["init=standard"])
    deep = write_run(
        tmp_path / "b", ["init=xavier"], config={**CONFIG, "model": {**CONFIG["model"], "depth": 5}}
    )
    hists = pd.read_parquet(deep / "hists.parquet")
    extra = hists[hists["layer"] == 2].assign(layer=lambda f: f["layer"] + 2)  # layers 4 and 5: hidden too
    pd.concat([hists, extra, extra.assign(layer=5), extra.assign(layer=6)]).to_parquet(deep / "hists.parquet")
    fig = one(P.fig_hist(P.collect_runs([tmp_path]), P.Options(steps=[0])), "hist_act_step0")
    shallow, deeper = (
        {line.get_label().split(" (")[0]: line.get_color() for line in ax.get_lines()} for ax in fig.axes
    )
    assert shallow == {"layer 1": layer_color(1, 3), "layer 2": layer_color(2, 3)}
    assert deeper["layer 1"] == layer_color(1, 6) and deeper["layer 5"] == layer_color(5, 6)
