"""The registry of figures: one row per figure of ``initlab plot``, from which the command's list, its
``--help`` and the notebook functions' table :data:`DRAW` are derived.

A row holds what the command draws (``make``: runs and options to the outputs, see
:mod:`~initlab.plots.common`), the sentence that ``--help`` and ``index.md`` show, what the runs must hold
for the figure to be drawn, and the notebook function of :mod:`~initlab.plots.drawing` that draws the same
figure into a given Figure or Axes (None for a figure that is a table).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from initlab.plots.common import FigureFunction
from initlab.plots.curves import fig_curves, fig_table
from initlab.plots.depth import fig_depth
from initlab.plots.drawing import (
    Runs,
    draw_curves,
    draw_depth,
    draw_heatmap,
    draw_hist,
    draw_mc_dropout,
    draw_percentiles,
    draw_phase,
    draw_stats,
    draw_weights,
)
from initlab.plots.heatmap import fig_heatmap
from initlab.plots.hist import fig_hist
from initlab.plots.mc import fig_mc_dropout
from initlab.plots.over_time import fig_percentiles, fig_stats
from initlab.plots.phase import fig_phase
from initlab.plots.weights import fig_weights


@dataclass(frozen=True)
class Figure:
    """One figure: how the command makes it, its sentence, what it needs, and its notebook function."""

    make: FigureFunction
    description: str
    needs: str
    draw: Callable[..., Any] | None


PROBES = "probes (probe=default)"
FIGURES: dict[str, Figure] = {
    "hist": Figure(
        fig_hist,
        "per-layer normalized histograms of act, grad_preact, grad_weight at --steps",
        PROBES,
        draw_hist,
    ),
    "stats": Figure(
        fig_stats, "per-layer mean ± std of act over training, 98th percentile markers", PROBES, draw_stats
    ),
    "percentiles": Figure(
        fig_percentiles,
        "15/50/85th percentiles of a layer's preact over training, per run",
        PROBES,
        draw_percentiles,
    ),
    "curves": Figure(
        fig_curves,
        "train/test loss and error vs steps, one color per setting, ✕ = diverged",
        "metrics.parquet",
        draw_curves,
    ),
    "depth": Figure(
        fig_depth,
        "variance of preact, act, grad_preact vs layer at --steps, log-y, per run",
        PROBES,
        draw_depth,
    ),
    "heatmap": Figure(
        fig_heatmap,
        "a layer's act histogram over time as an image (x step, y value, log count)",
        PROBES,
        draw_heatmap,
    ),
    "table": Figure(
        fig_table,
        "final test error, mean ± std over seeds: rows act/init, columns data set",
        "completed runs",
        None,
    ),
    "phase": Figure(
        fig_phase,
        "final train accuracy over (sigma_w^2, depth), 6·xi_c, critical sigma_w^2",
        "mean-field predictions at 2+ values of init.sigma_w2 and of model.depth",
        draw_phase,
    ),
    "weights": Figure(
        fig_weights,
        "final |w| per layer on a log axis (model.pt), one line per setting",
        "model.pt (train.save_model=true)",
        draw_weights,
    ),
    "mc_dropout": Figure(
        fig_mc_dropout,
        "test error of averaging k dropout masks vs weight scaling, vs k",
        "mc_dropout.parquet (train.mc_masks=K)",
        draw_mc_dropout,
    ),
}

# The command's figure names -> the notebook functions that draw them.
DRAW: dict[str, Callable[..., Any]] = {name: f.draw for name, f in FIGURES.items() if f.draw is not None}


def draw(name: str, runs: Runs, **options: Any) -> Any:
    """``draw("depth", runs, step="last", ax=ax)``: the figure ``name`` of ``initlab plot`` (:data:`DRAW`)."""
    if name not in DRAW:
        raise ValueError(f"figure {name!r} is not known: expected one of {', '.join(DRAW)}")
    return DRAW[name](runs, **options)
