"""``initlab plot``: redraw the papers' figures from what runs left on disk (nothing is retrained).

Usage::

    initlab plot PATH [PATH ...] [--figures hist,curves] [--out DIR] [--format png,pdf]
                 [--steps 0,last] [--layers 1,5] [--xscale auto|linear|log] [--logy]

A PATH is a run directory, a sweep directory (every run directory below it) or a glob. Figures go to
``PATH/figures/`` (for several paths: ``figures/`` in the deepest folder that holds all the runs), next to
an ``index.md`` that embeds each of them with one sentence; the path of every file written is printed.

One module per family of figures -- :mod:`~initlab.plots.hist`, :mod:`~initlab.plots.over_time` (``stats``,
``percentiles``), :mod:`~initlab.plots.curves` (``curves``, ``table``), :mod:`~initlab.plots.depth`,
:mod:`~initlab.plots.heatmap`, :mod:`~initlab.plots.phase`, :mod:`~initlab.plots.weights`,
:mod:`~initlab.plots.mc` (``mc_dropout``) -- on top of :mod:`~initlab.plots.style` (the look) and
:mod:`~initlab.plots.common` (what the figures share); :mod:`~initlab.plots.figures` holds the registry
:data:`FIGURES` (one row per figure); :mod:`~initlab.plots.command` is the command;
:mod:`~initlab.plots.drawing` offers each figure as a function that draws into a given Matplotlib Figure or
Axes (for notebooks). Runs are read through :mod:`initlab.runs` only.

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no pyplot): nothing is shown,
nothing global has to be closed, and importing this package does not change a notebook's backend.
"""

from initlab.plots.command import main, write_figure_index
from initlab.plots.common import Options, Output, Skip
from initlab.plots.curves import fig_curves, fig_table
from initlab.plots.depth import DEPTH_QUANTITIES, fig_depth
from initlab.plots.drawing import (
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
from initlab.plots.figures import DRAW, FIGURES, draw
from initlab.plots.heatmap import fig_heatmap
from initlab.plots.hist import HIST_QUANTITIES, fig_hist
from initlab.plots.mc import fig_mc_dropout
from initlab.plots.over_time import fig_percentiles, fig_stats
from initlab.plots.phase import fig_phase
from initlab.plots.style import ACT_COLORS, INIT_COLORS, QUANTITY_TEXT, group_runs, setup_title, styles
from initlab.plots.weights import fig_weights
from initlab.runs import collect_runs
from initlab.runs.grouping import label, varying_keys

__all__ = [
    "ACT_COLORS",
    "DEPTH_QUANTITIES",
    "DRAW",
    "FIGURES",
    "HIST_QUANTITIES",
    "INIT_COLORS",
    "QUANTITY_TEXT",
    "Options",
    "Output",
    "Skip",
    "collect_runs",
    "draw",
    "draw_curves",
    "draw_depth",
    "draw_heatmap",
    "draw_hist",
    "draw_mc_dropout",
    "draw_percentiles",
    "draw_phase",
    "draw_stats",
    "draw_weights",
    "fig_curves",
    "fig_depth",
    "fig_heatmap",
    "fig_hist",
    "fig_mc_dropout",
    "fig_percentiles",
    "fig_phase",
    "fig_stats",
    "fig_table",
    "fig_weights",
    "group_runs",
    "label",
    "main",
    "setup_title",
    "styles",
    "varying_keys",
    "write_figure_index",
]
