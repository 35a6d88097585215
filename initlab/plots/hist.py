"""``hist``: normalized per-layer histograms at a step (Glorot & Bengio 2010, Figs. 6-8)."""

from __future__ import annotations

import numpy as np

from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    each,
    layer_name,
    nearest_step,
    new_figure,
    normalized,
    outside,
    pick_layers,
    quantity_rows,
    representatives,
    step_stem,
    steps_text,
    styled,
    suptitle,
)
from initlab.plots.style import (
    QUANTITY_TEXT,
    layer_color,
    wrap,
)
from initlab.runs import Run

HIST_QUANTITIES = ("act", "grad_preact", "grad_weight")


@styled
def fig_hist(runs: list[Run], opts: Options) -> list[Output]:
    """Normalized per-layer histograms of act, grad_preact and grad_weight at a step (Glorot & Bengio 6-8)."""
    items = [(q, s) for q in HIST_QUANTITIES for s in opts.steps]
    return each(items, lambda item: hist_figure(runs, item[0], item[1], opts), opts, "hist")


def hist_figure(runs: list[Run], quantity: str, wanted: int | str, opts: Options) -> Output:
    """The histograms of one quantity at one step (the nearest probed step of each run)."""
    panels = representatives(runs, lambda r: not quantity_rows(r.hists, quantity).empty, opts, "hist")
    if not panels:
        raise Skip(f"no run has {quantity} histograms (hists.parquet missing, empty or unreadable)")
    fig, axes = new_figure(len(panels), 1, (7.0, 2.6), opts.target, sharex=True, sharey=True)
    drawn, steps_seen = 0, set()
    for ax, (name, run) in zip(axes[:, 0], panels, strict=True):
        rows = quantity_rows(run.hists, quantity)
        step = nearest_step(rows["step"].unique(), wanted)
        rows = rows[rows["step"] == step]
        output = run.output_layer(rows["layer"].unique())
        n_layers = int(rows["layer"].max())  # the color scale spans this panel's layers
        for layer in pick_layers(run, rows["layer"].unique(), opts.layers):
            row = rows[rows["layer"] == layer].iloc[0]
            hist = normalized(row)
            if hist is None:
                continue
            n_outside = outside(row)
            extra = (
                f" ({100 * n_outside / (n_outside + np.sum(row['counts'])):.0f}% outside range)"
                if n_outside
                else ""
            )
            ax.plot(*hist, color=layer_color(layer, n_layers), label=layer_name(layer, output) + extra)
            drawn += 1
        steps_seen.add(step)
        ax.set_title(wrap(f"{name} — step {step}", 90) if len(panels) > 1 else f"step {step}")
        ax.set_ylabel("fraction of values per bin")
        if ax.lines:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=2 if len(ax.lines) > 8 else 1)
    if not drawn:
        raise Skip(f"no finite {quantity} histogram in the chosen layers at step {wanted}")
    axes[-1, 0].set_xlabel(f"{QUANTITY_TEXT[quantity]} (value)")
    step_text = steps_text(steps_seen, wanted)
    suptitle(
        fig, f"Normalized histograms of the {QUANTITY_TEXT[quantity]} per layer, {step_text}", runs, opts
    )
    caption(
        fig,
        f"Distribution of the {QUANTITY_TEXT[quantity]} in each layer at {step_text} (fraction of values "
        "per bin, one curve per layer, one panel per setting).",
    )
    return f"hist_{quantity}_{step_stem(steps_seen, wanted)}", fig
