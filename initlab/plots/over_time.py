"""Statistics over training: ``stats`` (Glorot & Bengio 2010, Figs. 2-3) and ``percentiles`` (Ioffe &
Szegedy 2015, Fig. 1b/c).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from matplotlib.lines import Line2D

from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    each,
    figure_legend,
    finite,
    grid_cleanup,
    has_columns,
    last_hidden,
    layer_name,
    layer_stem,
    new_figure,
    panel_title,
    pick_layers,
    quantity_rows,
    representatives,
    step_axis,
    styled,
    suptitle,
)
from initlab.plots.style import (
    QUANTITY_TEXT,
    group_runs,
    layer_color,
    styles,
    wrap,
)
from initlab.runs import Run


@styled
def fig_stats(runs: list[Run], opts: Options) -> list[Output]:
    """Per-layer mean ± std of act over training, 98th percentile as markers (Glorot & Bengio Fig. 2/3)."""
    quantity = "act"
    panels = representatives(
        runs, lambda r: has_columns(quantity_rows(r.layers, quantity), "mean", "std"), opts, "stats"
    )
    if not panels:
        raise Skip("no run has activation statistics (layers.parquet missing, empty or unreadable)")
    n_layers = max(int(quantity_rows(r.layers, quantity)["layer"].max()) for _, r in panels)
    fig, axes = new_figure(len(panels), 1, (7.5, 3.0), opts.target, sharex=True, sharey=True)
    for ax, (name, run) in zip(axes[:, 0], panels, strict=True):
        rows = quantity_rows(run.layers, quantity).sort_values("step")
        output = run.output_layer(rows["layer"].unique())
        for layer in pick_layers(run, rows["layer"].unique(), opts.layers):
            d = rows[rows["layer"] == layer]
            color = layer_color(layer, n_layers)
            ax.errorbar(
                d["step"].to_numpy(),
                finite(d["mean"]),
                yerr=finite(d["std"]),
                color=color,
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.2,
                elinewidth=0.8,
                label=f"{layer_name(layer, output)}: mean ± std",
            )
            predicted = _predicted(run, quantity, layer)
            if predicted is not None:  # the run's mean-field prediction at step 0 (theory.parquet)
                ax.errorbar([0], [predicted[0]], yerr=[predicted[1]], color=color, marker="s", markersize=7,
                            markerfacecolor="none", capsize=4, linestyle="none", elinewidth=0.8)  # fmt: skip
            if "p98" in d.columns:
                ax.plot(
                    d["step"].to_numpy(),
                    finite(d["p98"]),
                    linestyle="none",
                    marker="^",
                    markersize=4,
                    color=color,
                    label=f"{layer_name(layer, output)}: 98th percentile",
                )
        if len(panels) > 1:
            ax.set_title(wrap(name, 90))
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]}")
        step_axis(ax, runs, opts)
        handles, labels = ax.get_legend_handles_labels()
        keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if "mean" in lab]
        if keep:
            keep.append((Line2D([], [], color="0.3", marker="^", linestyle="none"), "98th percentile"))
            if not run.theory.empty:
                square = Line2D([], [], color="0.3", marker="s", markerfacecolor="none", linestyle="none")
                keep.append((square, "mean-field prediction, step 0"))
            ax.legend(*zip(*keep, strict=True), loc="center left", bbox_to_anchor=(1.01, 0.5))
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    suptitle(fig, "Activation values per layer during training: mean ± std, 98th percentile", runs, opts)
    caption(
        fig,
        "Mean (points) and standard deviation (error bars) of each layer's activations over training, with "
        "the 98th percentile as triangles: saturation shows as means or percentiles pinned at the bounds."
        + (PREDICTION_NOTE if any(not r.theory.empty for _, r in panels) else ""),
    )
    return [("stats_act", fig)]


PREDICTION_NOTE = " Hollow squares: the mean-field prediction at step 0 (theory.parquet)."


def _predicted(run: Run, quantity: str, layer: int) -> tuple[float, float] | None:
    """(mean, std) the run's ``theory.parquet`` predicts for ``quantity`` of ``layer`` at step 0, or None."""
    theory = run.theory
    if not has_columns(theory, "quantity", "layer", "mean", "variance"):
        return None
    row = theory[(theory["quantity"] == quantity) & (theory["layer"] == layer)]
    return None if row.empty else (float(row["mean"].iloc[0]), float(row["variance"].iloc[0]) ** 0.5)


@styled
def fig_percentiles(runs: list[Run], opts: Options) -> list[Output]:
    """15/50/85th percentiles of one layer's preact over training, a panel per run (Ioffe & Szegedy 1b/c)."""
    quantity = "preact"

    def usable(run: Run) -> bool:
        return has_columns(quantity_rows(run.layers, quantity), "p15", "p50", "p85")

    if not any(usable(r) for r in runs):
        raise Skip("no run has pre-activation percentiles (layers.parquet missing, empty or unreadable)")
    targets: list[int | None] = list(opts.layers) if opts.layers else [None]
    return each(targets, lambda layer: _percentiles(runs, usable, layer, opts), opts, "percentiles")


def _percentiles(runs: list[Run], usable: Callable[[Run], bool], wanted: int | None, opts: Options) -> Output:
    quantity = "preact"
    panels = []
    for name, run in representatives(runs, usable, opts, "percentiles"):
        rows = quantity_rows(run.layers, quantity)
        layer = wanted if wanted is not None else last_hidden(run, rows["layer"].unique())
        if layer in set(rows["layer"].unique()):
            panels.append((name, run, int(layer)))
    if not panels:
        raise Skip(f"no run has layer {wanted}" if wanted is not None else "no run has a hidden layer")
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(nrows, ncols, (4.2, 3.2), opts.target, sharey=True)
    layers = {layer for _, _, layer in panels}
    where = f"layer {next(iter(layers))}" if len(layers) == 1 else "the last hidden layer"
    colors = styles(runs, opts.color_by)
    group_of = {id(r): g for g, members in group_runs(runs) for r in members}
    for ax, (name, run, layer) in zip(axes.flat, panels, strict=False):
        d = quantity_rows(run.layers, quantity)
        d = d[d["layer"] == layer].sort_values("step")
        steps = d["step"].to_numpy()
        color = colors[group_of[id(run)]]["color"]
        ax.fill_between(steps, finite(d["p15"]), finite(d["p85"]), color=color, alpha=0.15, linewidth=0)
        ax.plot(steps, finite(d["p85"]), color=color, linestyle="--", linewidth=1, label="85th percentile")
        ax.plot(steps, finite(d["p50"]), color=color, linewidth=2, label="50th percentile (median)")
        ax.plot(steps, finite(d["p15"]), color=color, linestyle=":", linewidth=1, label="15th percentile")
        ax.set_title(panel_title(name if len(panels) > 1 else "", layer, layers))
        step_axis(ax, runs, opts)
    gray = {"color": "0.3"}
    figure_legend(
        fig,
        [
            Line2D([], [], linestyle="--", linewidth=1, **gray),
            Line2D([], [], linewidth=2, **gray),
            Line2D([], [], linestyle=":", linewidth=1, **gray),
        ],
        ["85th percentile", "50th percentile (median)", "15th percentile"],
        opts,
    )
    grid_cleanup(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]} (value)")
    suptitle(
        fig, f"Pre-activation distribution of {where} over training: 15th, 50th, 85th percentiles", runs, opts
    )
    caption(
        fig,
        f"How the input to the nonlinearity of {where} drifts during training (median with the 15–85% "
        "band), one panel per setting, so runs with and without normalization sit side by side.",
    )
    return f"percentiles_preact_{layer_stem(layers)}", fig
