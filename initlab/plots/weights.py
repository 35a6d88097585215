"""``weights``: the distribution of the final weights' magnitudes |w| on a log scale, per layer.

Read from ``model.pt`` (runs with ``train.save_model=true``, e.g. the ``l1_sparsity`` preset): one panel per
weight matrix, one line per setting (its seeds pooled), the share of its weights in each of :data:`BINS`
log-spaced bins of |w| (shared by all panels; values below the first edge, exact zeros included, count in
the first bin; non-finite values are left out). Where the runs have a step-0 ``weight`` probe and share
one init scale (step-0 stds within 5 % of each other), each panel also shows the init distribution
-- |w| of N(0, σ²), σ the layer's step-0 std: P(a ≤ |w| < b) = erf(b/σ√2) − erf(a/σ√2) -- dashed in
gray, and 1 % of σ dotted: the "near zero" of the ``l1_sparsity`` claims (:mod:`initlab.claims.sparsity`).

The L1 penalty shows as a second peak far left, at about lr·λ₁ (plain SGD: a weight whose data gradient
is below λ₁ is carried to 0 and hops across it by lr·λ₁ per step); L2 shifts the whole distribution left
by its decay factor, without a peak at 0 (Goodfellow et al. 2016 §7.1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from initlab.claims.sparsity import TAU
from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    figure_legend,
    grid_cleanup,
    new_figure,
    styled,
    suptitle,
)
from initlab.plots.style import group_runs, legend_entries, styles
from initlab.runs import MissingData, Run

BINS = 60
DECADES = 7  # the bins span at most this many powers of ten below the largest |w|
INIT_TEXT = "init: |w| of N(0, σ²), σ = step-0 std"
TAU_TEXT = f"{100 * TAU:g} % of the init std"


def _init_std(run: Run) -> list[float] | None:
    """The step-0 std of every weight layer (its probe), or None without one."""
    try:
        return [float(s) for s in run.layer_stat("weight", "std", 0)]
    except MissingData:
        return None


def _edges(runs: list[Run]) -> np.ndarray:
    """:data:`BINS` + 1 log-spaced edges from the smallest nonzero |w| (at most :data:`DECADES` below the
    largest) to just above the largest |w| of all runs."""
    values = np.concatenate([np.abs(w).ravel() for r in runs for w in r.weights.values()])
    values = values[np.isfinite(values)]
    if not (values > 0).any():
        raise Skip("no finite nonzero weight in model.pt")
    hi = float(values.max()) * 1.05
    lo = max(float(values[values > 0].min()), hi * 10.0**-DECADES)
    return np.geomspace(lo, hi, BINS + 1)


@styled
def fig_weights(runs: list[Run], opts: Options) -> list[Output]:
    """Share of the final weights per log-spaced bin of |w|, a panel per layer, a line per setting."""
    usable = [r for r in runs if r.weights]
    if not usable:
        raise Skip("no run has final weights (model.pt: train.save_model=true)")
    edges = _edges(usable)
    centers = np.sqrt(edges[:-1] * edges[1:])
    n_layers = max(len(r.weights) for r in usable)
    style = styles(usable, opts.color_by)
    ncols = min(n_layers, 3)
    fig, axes = new_figure(math.ceil(n_layers / ncols), ncols, (4.0, 3.2), opts.target, sharey=True)
    legend: dict[str, Any] = {}
    for name, members in group_runs(usable):
        for layer, ax in enumerate(axes.flat[:n_layers]):
            values = [
                np.abs(list(r.weights.values())[layer]).ravel() for r in members if len(r.weights) > layer
            ]
            if not values:
                continue
            pooled = np.concatenate(values)
            pooled = np.clip(pooled[np.isfinite(pooled)], edges[0], edges[-1])
            share = np.histogram(pooled, edges)[0] / max(pooled.size, 1)
            ax.plot(centers, share, label=name, linewidth=1.4, **style[name])
    for layer, ax in enumerate(axes.flat[:n_layers]):
        stds = [s[layer] for s in map(_init_std, usable) if s is not None and len(s) > layer]
        std = float(np.mean(stds)) if stds and max(stds) <= 1.05 * min(stds) else None  # one init only
        if std is not None and std > 0:
            init = np.diff([math.erf(e / (std * math.sqrt(2))) for e in edges])
            legend[INIT_TEXT] = ax.plot(centers, init, color="0.5", linestyle="--", linewidth=1.0)[0]
            legend[TAU_TEXT] = ax.axvline(TAU * std, color="0.3", linestyle=":", linewidth=1.2)
        ax.set_xscale("log")
        ax.set_title("output layer" if layer == n_layers - 1 else f"layer {layer + 1}")
        ax.set_xlabel("|w| (log scale)")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of the layer's weights")
    grid_cleanup(axes, n_layers)
    entries = [(text, Line2D([], [], **s)) for text, s in legend_entries(usable, opts.color_by)]
    entries += list(legend.items())
    figure_legend(fig, [h for _, h in entries], [t for t, _ in entries], opts)
    suptitle(fig, "Final weight magnitudes: does the penalty pile weights up at zero?", usable, opts)
    caption(
        fig,
        "Share of each layer's final weights (model.pt) per log-spaced bin of |w|, one line per setting "
        "(seeds pooled; the first bin also counts smaller values and exact zeros)"
        + (
            f"; dashed gray: the init distribution, dotted: {TAU_TEXT} (the l1_sparsity claims' near zero)"
            if legend
            else ""
        )
        + ". A penalty that drives weights to zero (L1) leaves a peak far below the init scale.",
    )
    return [("weights", fig)]
