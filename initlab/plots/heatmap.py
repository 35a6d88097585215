"""``heatmap``: a layer's activation histograms over training as an image ("colorful dimension")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    each,
    grid_cleanup,
    histogram,
    last_hidden,
    layer_stem,
    new_figure,
    panel_title,
    quantity_rows,
    representatives,
    step_axis,
    styled,
    suptitle,
)
from initlab.plots.style import (
    QUANTITY_TEXT,
)
from initlab.runs import Run


@styled
def fig_heatmap(runs: list[Run], opts: Options) -> list[Output]:
    """A layer's act histogram over time as an image, color = log count (fastai's "colorful dimension")."""
    if not any(not quantity_rows(r.hists, "act").empty for r in runs):
        raise Skip("no run has activation histograms (hists.parquet missing, empty or unreadable)")
    targets: list[int | None] = list(opts.layers) if opts.layers else [None]
    return each(targets, lambda layer: _heatmap(runs, layer, opts), opts, "heatmap")


def _heatmap_grid(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(step edges, value edges, counts[value bin, step]) from one layer's histogram rows.

    Probes keep one bin range per layer for the whole run, so the columns share their edges; rows with other
    edges are re-binned onto the widest range (each bin's count moved to the bin holding its center).
    """
    rows = rows.sort_values("step").drop_duplicates("step", keep="last")
    hists = [(int(r["step"]), *h) for _, r in rows.iterrows() if (h := histogram(r)) is not None]
    if not hists:
        return None
    edges = hists[0][1]
    if any(len(e) != len(edges) or not np.allclose(e, edges) for _, e, _ in hists):
        lo, hi = min(e[0] for _, e, _ in hists), max(e[-1] for _, e, _ in hists)
        edges = np.linspace(lo, hi, len(edges))
    image = np.stack(
        [
            c
            if len(e) == len(edges) and np.allclose(e, edges)
            else np.histogram((e[:-1] + e[1:]) / 2, bins=edges, weights=c)[0]
            for _, e, c in hists
        ],
        axis=1,
    )
    steps = np.array([s for s, _, _ in hists], dtype=float)
    if len(steps) > 1:
        mids = (steps[:-1] + steps[1:]) / 2
        x = np.concatenate([[steps[0] - (mids[0] - steps[0])], mids, [steps[-1] + (steps[-1] - mids[-1])]])
    else:
        x = np.array([steps[0] - 0.5, steps[0] + 0.5])
    return x, edges, image


def _heatmap(runs: list[Run], wanted: int | None, opts: Options) -> Output:
    quantity = "act"
    panels = []
    for name, run in representatives(
        runs, lambda r: not quantity_rows(r.hists, quantity).empty, opts, "heatmap"
    ):
        rows = quantity_rows(run.hists, quantity)
        layer = wanted if wanted is not None else last_hidden(run, rows["layer"].unique())
        grid = _heatmap_grid(rows[rows["layer"] == layer]) if layer is not None else None
        if grid is not None and grid[2].sum() > 0:
            panels.append((name, run, int(layer), grid))
    if not panels:
        raise Skip(f"no usable activation histograms of layer {wanted if wanted is not None else 'last'}")
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(nrows, ncols, (4.4, 3.4), opts.target, sharey=True)
    layers = {layer for _, _, layer, _ in panels}
    where = f"layer {next(iter(layers))}" if len(layers) == 1 else "the last hidden layer"
    vmax = max(2.0, max(float(g[2].max()) for *_, g in panels))
    mesh = None
    for ax, (name, _run, layer, (x, y, image)) in zip(axes.flat, panels, strict=False):
        mesh = ax.pcolormesh(
            x, y, np.ma.masked_less_equal(image, 0), norm=LogNorm(vmin=1, vmax=vmax), cmap="viridis"
        )
        ax.set_title(panel_title(name if len(panels) > 1 else "", layer, layers))
        ax.grid(False)
        step_axis(ax, runs, opts)
    grid_cleanup(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]} (value)")
    fig.colorbar(
        mesh,
        ax=axes.ravel().tolist(),
        label="values per bin (count, log scale)",
        shrink=1.0 if nrows == 1 else 0.6,
    )
    suptitle(fig, f"Activation histogram of {where} over training", runs, opts)
    caption(
        fig,
        f"Each column is the histogram of {where}'s activations at one probed step (color: log count), so "
        "collapse to zero, saturation at the bounds or spreading shows as bands over time.",
    )
    return f"heatmap_act_{layer_stem(layers)}", fig
