"""``mc_dropout``: Monte-Carlo model averaging over k dropout masks against the weight-scaling rule.

Srivastava et al. 2014, Fig. 11: the test error of the average of k sampled dropout nets falls with k and
meets the weight-scaling rule's (the eval-mode net, a horizontal line) around k ≈ 50. Left panel: that, per
setting (e.g. act=linear, relu), the mean over seeds in bold and each seed thin; the dashed line of the same
color is the eval-mode (weight-scaling) error, mean over seeds. Right panel: the logit-level comparison,
rms over the test logits of (mean of k masks − eval logits) / its Monte-Carlo standard error, on log axes:
√(ν/(ν − 2)), ν = k − 1 (dotted: the rms of a Student t, → 1) where the mask average is exactly the eval
output (a linear net), growing as √(1 + k·b²/s²) where it is biased by b (a nonlinear one). (The claim
``mc_linear_mask_average_is_eval_output`` tests the mean of z² at k = K against its sampling distribution,
:mod:`initlab.claims.srivastava`.) Drawn from each run's ``mc_dropout.parquet`` (``train.mc_masks``,
:mod:`initlab.lab.mc_dropout`) through :meth:`Run.mc_averaging`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from initlab.claims.srivastava import t2_expected
from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    figure_legend,
    new_figure,
    styled,
    suptitle,
)
from initlab.plots.style import group_runs, legend_entries, styles
from initlab.runs import MissingData, Run

MIN_K_Z = 5  # the t statistic of k samples has a finite second moment from k = 4 on: rms z from k = 5


def _table(run: Run) -> pd.DataFrame | None:
    try:
        return run.mc_averaging()
    except MissingData:
        return None


@styled
def fig_mc_dropout(runs: list[Run], opts: Options) -> list[Output]:
    """Test error of Monte-Carlo dropout averaging vs k with the weight-scaling error; rms z vs k."""
    tables = {id(r): t for r in runs if (t := _table(r)) is not None}
    if not tables:
        raise Skip("needs runs trained with train.mc_masks > 0 (mc_dropout.parquet)")
    style = styles(runs, opts.color_by)
    fig, axes = new_figure(1, 2, (5.2, 3.8), opts.target)
    ax_err, ax_z = axes[0]
    left_out = 0
    for name, members in group_runs(runs):
        mine = [tables[id(r)] for r in members if id(r) in tables]
        left_out += len(members) - len(mine)
        if not mine:
            continue
        s = style[name]
        for t in mine:  # each seed, thin
            ax_err.plot(t.index, 100 * t["mc_error"], color=s["color"], linewidth=0.8, alpha=0.35)
        both = pd.concat(mine, keys=range(len(mine)))
        mean = both.groupby(level="k").mean()
        ax_err.plot(
            mean.index,
            100 * mean["mc_error"],
            color=s["color"],
            linestyle=s["linestyle"],
            lw=2,
            marker="o",
            ms=3,
        )
        ax_err.axhline(100 * mean["eval_error"].iloc[0], color=s["color"], linestyle="--", linewidth=1.2)
        z = mean[(mean.index >= MIN_K_Z)]["rms_z"]
        ax_z.plot(z.index, z, color=s["color"], linestyle=s["linestyle"], lw=2, marker="o", ms=3)
    if left_out:
        opts.notes.append(f"mc_dropout: {left_out} run(s) without mc_dropout.parquet left out")
    ks = sorted({k for t in tables.values() for k in t.index if k >= MIN_K_Z})
    ax_z.plot(ks, [t2_expected(k) ** 0.5 for k in ks], color="0.3", linestyle=":", linewidth=1.2)
    for ax in (ax_err, ax_z):
        ax.set_xscale("log")
        ax.set_xlabel("k, number of dropout masks averaged (log scale)")
    ax_z.set_yscale("log")
    ax_z.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_z.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax_z.yaxis.set_minor_formatter(NullFormatter())
    ax_err.set_ylabel("test classification error (%)")
    ax_z.set_ylabel("rms of (mean − eval logits) / SE (log scale)")
    ax_err.set_title("Monte-Carlo averaging (solid) vs weight scaling (dashed)")
    ax_z.set_title("logits: mask average vs eval-mode output")
    handles: dict[str, Any] = {}
    for text, s in legend_entries(runs, opts.color_by):
        handles[text] = Line2D([], [], color=s["color"], linestyle=s["linestyle"], lw=2)
    handles["weight scaling (eval mode)"] = Line2D([], [], color="0.3", linestyle="--", lw=1.2)
    handles["exact average: √(ν/(ν−2)), ν = k−1"] = Line2D([], [], color="0.3", linestyle=":", lw=1.2)
    figure_legend(fig, list(handles.values()), list(handles), opts)
    suptitle(fig, "Dropout: Monte-Carlo model averaging vs the weight-scaling rule", runs, opts)
    seeds = max(len(m) for _, m in group_runs(runs))
    caption(
        fig,
        "Left: test error of the average of k sampled dropout nets (mean probabilities; bold: mean over "
        f"{seeds} seed(s), thin: each seed) against k, dashed: the eval-mode net (weight scaling); right: "
        "rms over the test logits of (mean of k masks − eval-mode logits) / Monte-Carlo standard error, "
        f"k ≥ {MIN_K_Z}; dotted: √(ν/(ν − 2)), ν = k − 1, where the mask average is exactly the eval output "
        "(Srivastava et al. 2014, §7.5 and Fig. 11).",
    )
    return [("mc_dropout", fig)]
