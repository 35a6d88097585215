"""``depth``: variance of pre-activations, activations and back-propagated gradients across layers."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    each,
    figure_legend,
    finite,
    has_columns,
    nearest_step,
    new_figure,
    pick_layers,
    quantity_rows,
    step_stem,
    steps_text,
    styled,
    suptitle,
)
from initlab.plots.style import (
    QUANTITY_TEXT,
    group_runs,
    legend_entries,
    styles,
)
from initlab.runs import Run

DEPTH_QUANTITIES = ("preact", "act", "grad_preact")
PREDICTION_TEXT = "dashed: mean-field prediction at step 0"


def _prediction(ax: Any, run: Run, quantity: str, layers: Any, color: Any) -> Any:
    """Draw a run's predicted step-0 variance (``theory.parquet``) as a dashed line; None when it has none."""
    theory = run.theory
    if not has_columns(theory, "quantity", "layer", "variance"):
        return None
    rows = theory[(theory["quantity"] == quantity) & theory["layer"].isin(layers)].sort_values("layer")
    if rows.empty:
        return None
    (line,) = ax.plot(  # no label: the legend has one grey entry for every dashed line
        rows["layer"].to_numpy(),
        rows["variance"].to_numpy(),
        color=color,
        linestyle="--",
        linewidth=1.2,
        alpha=0.8,
    )
    return line


@styled
def fig_depth(runs: list[Run], opts: Options) -> list[Output]:
    """Variance of preact, act and grad_preact versus layer at a step, log-y, a line per run."""
    return each(opts.steps, lambda step: _depth(runs, step, opts), opts, "depth")


def _depth(runs: list[Run], wanted: int | str, opts: Options) -> Output:
    usable = [r for r in runs if has_columns(r.layers, "quantity", "step", "layer", "std")]
    if not usable:
        raise Skip("no run has per-layer statistics (layers.parquet missing, empty or unreadable)")
    style = styles(runs, opts.color_by)
    group_of = {id(r): g for g, m in group_runs(runs) for r in m}
    fig, axes = new_figure(1, len(DEPTH_QUANTITIES), (4.0, 3.6), opts.target)
    legend: dict[str, Any] = {}  # reference lines (the settings' entries come from legend_entries)
    steps_seen = set()
    any_finite = False
    for ax, quantity in zip(axes[0], DEPTH_QUANTITIES, strict=True):
        for run in usable:
            rows = quantity_rows(run.layers, quantity)
            step = nearest_step(rows["step"].unique(), wanted) if not rows.empty else None
            if step is None:
                continue
            steps_seen.add(step)
            rows = rows[rows["step"] == step].sort_values("layer")
            layers = pick_layers(run, rows["layer"].unique(), opts.layers)
            rows = rows[rows["layer"].isin(layers)]
            variance = finite(rows["std"]) ** 2
            any_finite = any_finite or bool(np.isfinite(variance).any())
            group = group_of[id(run)]
            ax.plot(
                rows["layer"].to_numpy(),
                variance,
                marker="o",
                markersize=4,
                color=style[group]["color"],
                linestyle=style[group]["linestyle"],
                label=group,
            )
            if step == 0 and _prediction(ax, run, quantity, layers, style[group]["color"]) is not None:
                legend.setdefault(PREDICTION_TEXT, Line2D([], [], color="0.4", linestyle="--"))
        if opts.ref_ratio is not None and quantity == "preact" and ax.lines:
            x0, y0 = ax.lines[0].get_xdata(), np.asarray(ax.lines[0].get_ydata(), dtype=float)
            if len(x0) and np.isfinite(y0[0]) and y0[0] > 0:
                x = np.arange(min(x0), max(x0) + 1)
                (ref,) = ax.plot(
                    x, y0[0] * opts.ref_ratio ** (x - x[0]), color="0.4", linestyle=":", linewidth=1.5
                )
                legend.setdefault(f"reference: × {opts.ref_ratio:g} per layer", ref)
        if any((np.asarray(line.get_ydata()) > 0).any() for line in ax.lines):
            ax.set_yscale("log")
        shown = [x for line in ax.lines for x in line.get_xdata()]
        if shown:
            ax.set_xlim(min(shown) - 0.5, max(shown) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(QUANTITY_TEXT[quantity])
        ax.set_xlabel("layer index (1 = first hidden layer)")
        ax.set_ylabel("variance (log scale)" if ax.get_yscale() == "log" else "variance (linear scale)")
    if not any_finite:
        raise Skip(f"no finite variance at step {wanted} (missing, or the run had diverged)")
    # no markers in the legend: a marker hides the middle of a short dashed handle, and two line styles
    # (two depths) would look the same; long handles show each dash pattern
    entries = {text: Line2D([], [], **s) for text, s in legend_entries(runs, opts.color_by)}
    figure_legend(fig, [*entries.values(), *legend.values()], [*entries, *legend], opts, handlelength=4.0)
    step_text = steps_text(steps_seen, wanted)
    suptitle(
        fig, f"Variance across depth at {step_text}: does the signal explode, vanish or hold?", runs, opts
    )
    caption(
        fig,
        f"Variance (over units and examples) of the pre-activations, activations and back-propagated "
        f"gradients in each layer at "
        f"{step_text}, one line per run: a straight line up or down means the variance explodes or vanishes."
        + (
            " Dashed, same color: the run's mean-field prediction (theory.parquet)."
            if PREDICTION_TEXT in legend
            else ""
        ),
    )
    return f"depth_{step_stem(steps_seen, wanted)}", fig
