"""Every figure of ``initlab plot`` as a function for notebooks, drawing into a Figure or Axes you give it.

Each ``draw_*`` function takes runs -- a :class:`~initlab.runs.Run` (what :func:`initlab.run` and
:func:`initlab.load_run` return), a path, a sweep table from :func:`initlab.load_sweep` (its ``dir``
column), or a list of these -- and draws one figure with the same code as the command:

* ``fig=``: a Figure or SubFigure to fill with the figure's panels (title and legend included);
* ``ax=``: an Axes (or one Axes per panel, e.g. the two of ``draw_curves``) to draw into, leaving the
  title of your figure alone and putting a figure-wide legend into the last Axes;
* neither: a new Figure (no pyplot), as ``initlab plot`` would save it.

It returns what it drew into: ``fig``, ``ax``, or the new Figure. Parts it had to leave out are warned
about (:class:`UserWarning`), and a figure that cannot be drawn at all raises :class:`~initlab.plots.Skip`
with the reason. :data:`initlab.plots.figures.DRAW` maps the command's figure names to these functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from initlab.plots.common import Options, Output, Skip
from initlab.plots.curves import fig_curves
from initlab.plots.depth import fig_depth
from initlab.plots.heatmap import fig_heatmap
from initlab.plots.hist import hist_figure
from initlab.plots.mc import fig_mc_dropout
from initlab.plots.over_time import fig_percentiles, fig_stats
from initlab.plots.phase import fig_phase
from initlab.plots.style import STYLE
from initlab.plots.weights import fig_weights
from initlab.runs import Run, collect_runs

Runs = Run | str | Path | pd.DataFrame | Iterable[Any]


def as_runs(runs: Runs) -> list[Run]:
    """A list of :class:`Run` from a Run, a path or glob, a sweep table (``dir`` column) or a list of them."""
    if isinstance(runs, Run):
        return [runs]
    if isinstance(runs, str | Path):
        runs = [runs]
    if isinstance(runs, pd.DataFrame):
        if "dir" not in runs.columns:
            raise ValueError("a table of runs needs a 'dir' column (as initlab.load_sweep gives)")
        runs = list(runs["dir"])
    out: list[Run] = []
    notes: list[str] = []
    for item in runs:
        out += [item] if isinstance(item, Run) else collect_runs([item], notes)
    for note in notes:
        warnings.warn(note, stacklevel=3)
    if not out:
        raise Skip("no runs to draw")
    return out


def _draw(
    make: Callable[[list[Run], Options], Output | list[Output]], runs: Runs, fig: Any, ax: Any, **given: Any
) -> Any:
    if fig is not None and ax is not None:
        raise ValueError("pass fig= or ax=, not both")
    opts = Options(target=fig if fig is not None else ax, **given)
    with matplotlib.rc_context(STYLE):
        outputs = make(as_runs(runs), opts)
    for note in opts.notes:
        warnings.warn(note, stacklevel=3)
    _, drawn = outputs[0] if isinstance(outputs, list) else outputs
    return ax if ax is not None else drawn


def draw_hist(
    runs: Runs,
    quantity: str = "act",
    step: int | str = 0,
    layers: list[int] | None = None,
    *,
    fig: Any = None,
    ax: Any = None,
) -> Any:
    """Normalized per-layer histograms of ``quantity`` (act, grad_preact, grad_weight) at ``step``
    (``"last"``: the last probed), one panel per setting (Glorot & Bengio 2010, Figs. 6-8)."""
    return _draw(lambda r, o: hist_figure(r, quantity, step, o), runs, fig, ax, layers=layers)


def draw_stats(
    runs: Runs, layers: list[int] | None = None, xscale: str = "auto", *, fig: Any = None, ax: Any = None
) -> Any:
    """Per-layer mean ± std of the activations over training, 98th percentile as markers (Glorot Fig. 2)."""
    return _draw(fig_stats, runs, fig, ax, layers=layers, xscale=xscale)


def draw_percentiles(
    runs: Runs,
    layer: int | None = None,
    xscale: str = "auto",
    color_by: str | None = None,
    *,
    fig: Any = None,
    ax: Any = None,
) -> Any:
    """15/50/85th percentiles of a layer's pre-activations over training (default: the last hidden
    layer), a panel per setting (Ioffe & Szegedy 2015, Fig. 1b/c)."""
    layers = [layer] if layer is not None else None
    return _draw(fig_percentiles, runs, fig, ax, layers=layers, xscale=xscale, color_by=color_by)


def draw_curves(
    runs: Runs,
    logy: bool = False,
    xscale: str = "auto",
    color_by: str | None = None,
    *,
    fig: Any = None,
    ax: Any = None,
) -> Any:
    """Train/test loss and error over training, a line per run, ✕ where a run diverged (two panels)."""
    return _draw(fig_curves, runs, fig, ax, logy=logy, xscale=xscale, color_by=color_by)


def draw_depth(
    runs: Runs,
    step: int | str = 0,
    layers: list[int] | None = None,
    ref_ratio: float | None = None,
    color_by: str | None = None,
    *,
    fig: Any = None,
    ax: Any = None,
) -> Any:
    """Variance of preact, act and grad_preact versus layer at ``step``, log-y, a line per run."""
    return _draw(
        fig_depth, runs, fig, ax, steps=[step], layers=layers, ref_ratio=ref_ratio, color_by=color_by
    )


def draw_heatmap(
    runs: Runs, layer: int | None = None, xscale: str = "auto", *, fig: Any = None, ax: Any = None
) -> Any:
    """A layer's activation histogram over training as an image (default: the last hidden layer)."""
    layers = [layer] if layer is not None else None
    return _draw(fig_heatmap, runs, fig, ax, layers=layers, xscale=xscale)


def draw_weights(runs: Runs, color_by: str | None = None, *, fig: Any = None, ax: Any = None) -> Any:
    """The final weights' magnitudes |w| (``model.pt``) per log-spaced bin, a panel per layer, a line per
    setting, with the init distribution and 1 % of the init std where the runs probed step 0."""
    return _draw(fig_weights, runs, fig, ax, color_by=color_by)


def draw_mc_dropout(runs: Runs, color_by: str | None = None, *, fig: Any = None, ax: Any = None) -> Any:
    """Test error of Monte-Carlo averaging over k dropout masks against k, with the weight-scaling rule's,
    and the logits' rms z (two panels; runs with ``train.mc_masks``; Srivastava et al. 2014, Fig. 11)."""
    return _draw(fig_mc_dropout, runs, fig, ax, color_by=color_by)


def draw_phase(runs: Runs, *, fig: Any = None, ax: Any = None) -> Any:
    """Final train accuracy over (σ_w², depth) with the 6·ξ_c depth scale and the critical σ_w²
    (Schoenholz et al. 2017, Fig. 5; runs at 2+ values of ``init.sigma_w2`` and of ``model.depth``)."""
    return _draw(fig_phase, runs, fig, ax)
