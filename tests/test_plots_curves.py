"""The ``curves`` and ``table`` figures (initlab/plots/curves.py) from runs with known accuracies."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plot_runs import hand_runs, one

from initlab import plots as P
from initlab.runs import RunData


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


def test_curves_known_numbers_and_colors(hand: list[RunData]) -> None:
    fig = one(P.fig_curves(hand, P.Options(logy=True)))
    loss_ax, err_ax = fig.axes[:2]
    assert loss_ax.get_yscale() == "log" and "nats" in loss_ax.get_ylabel() and "%" in err_ax.get_ylabel()
    test_err = [line for line in err_ax.get_lines() if line.get_label().endswith("(test)")]
    assert len(test_err) == len(hand)
    finals = sorted(float(line.get_ydata()[-1]) for line in test_err)
    np.testing.assert_allclose(finals, sorted(100 * (1 - r.summary["final_test_accuracy"]) for r in hand))
    # one color per init, from the fixed palette, the same in every figure
    depth = one(P.fig_depth(hand, P.Options()))
    for ax in (err_ax, depth.axes[0]):
        for line in ax.get_lines():
            init = "standard" if "init=standard" in line.get_label() else "xavier"
            assert line.get_color() == P.INIT_COLORS[init]
    # the legend lists what differs once: colors (init), line styles (data), not every combination
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["init=standard", "init=xavier", "data=mnist", "data=shapeset",
                     "2 seeds: one line each", "test (bold)", "train (thin)"]  # fmt: skip
    handles = dict(zip(texts, legend.legend_handles, strict=True))
    assert handles["init=xavier"].get_color() == P.INIT_COLORS["xavier"]
    assert handles["data=mnist"].get_linestyle() != handles["data=shapeset"].get_linestyle()


def test_color_by_another_swept_key(hand: list[RunData]) -> None:
    fig = one(P.fig_curves(hand, P.Options(color_by="data", logy=True)))
    err_ax = fig.axes[1]
    assert err_ax.get_yscale() == "log"
    colors: dict[str, set[str]] = {}
    for line in err_ax.get_lines():
        data = next(part for part in line.get_label().split() if part.startswith("data="))
        colors.setdefault(data, set()).add(line.get_color())
    assert len(colors) == 2 and all(len(c) == 1 for c in colors.values())  # one color per data set
    assert len(set.union(*colors.values())) == 2


def test_table_known_numbers(hand: list[RunData]) -> None:
    files = dict(P.fig_table(hand, P.Options()))
    md, csv = files["table.md"], files["table.csv"]
    assert md.splitlines()[:4] == [
        "| activation / init | mnist | shapeset |",
        "|---|---:|---:|",
        "| tanh / standard | 2.00 ± 1.41 | 15.00 ± 7.07 |",
        "| tanh / xavier | 1.00 ± 0.71 | 10.00 ± 7.07 |",
    ]
    assert "mean ± sample std over 2 seeds" in md and "after 10 training steps" in md
    frame = pd.read_csv(io.StringIO(csv)).set_index("setup")
    assert frame.loc["tanh / standard", "shapeset_mean"] == pytest.approx(15.0)
    assert frame.loc["tanh / xavier", "mnist_std"] == pytest.approx(np.std([0.5, 1.5], ddof=1))
    assert (frame[["mnist_n", "shapeset_n"]] == 2).all().all()
