"""``curves`` (learning curves; He et al. 2015 Fig. 3, Glorot & Bengio Fig. 11) and ``table`` (final test
error per setting; Glorot & Bengio's Table 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from initlab.plots.common import (
    Options,
    Output,
    Skip,
    caption,
    figure_legend,
    finite,
    has_columns,
    new_figure,
    step_axis,
    styled,
    suptitle,
)
from initlab.plots.style import (
    RANK,
    group_runs,
    legend_entries,
    styles,
)
from initlab.runs import SEED_KEY, Run, natural_key
from initlab.runs.grouping import order_key, varying_keys


@styled
def fig_curves(runs: list[Run], opts: Options) -> list[Output]:
    """Train/test loss and error versus steps, a line per run; diverged runs end with ✕ (He et al. Fig. 3)."""
    usable = [r for r in runs if has_columns(r.metrics, "step", "split", "loss")]
    if not usable:
        raise Skip("no run has metrics (metrics.parquet missing, empty or unreadable)")
    style = styles(runs, opts.color_by)
    group_of = {id(r): g for g, m in group_runs(runs) for r in m}
    fig, axes = new_figure(1, 2, (5.2, 3.8), opts.target)
    ax_loss, ax_err = axes[0]
    handles: dict[str, Any] = {}
    any_diverged = False
    for run in usable:
        group = group_of[id(run)]
        s = style[group]
        diverged = run.summary.get("status") == "diverged" or not np.isfinite(run.metrics["loss"]).all()
        for split, width, alpha in (("test", 2.0, 1.0), ("train", 1.0, 0.6)):
            d = run.metrics[run.metrics["split"] == split].sort_values("step")
            if d.empty:
                continue
            steps = d["step"].to_numpy()
            loss = finite(d["loss"])
            err = 100 * (1 - finite(d["accuracy"])) if "accuracy" in d else np.full(len(d), np.nan)
            for ax, y in ((ax_loss, loss), (ax_err, err)):
                ax.plot(
                    steps,
                    y,
                    color=s["color"],
                    linestyle=s["linestyle"],
                    linewidth=width,
                    alpha=alpha,
                    label=f"{group} ({split})",
                )
                ok = np.isfinite(y)
                if diverged and ok.any():
                    last = np.flatnonzero(ok)[-1]
                    ax.plot(
                        steps[last],
                        y[last],
                        marker="X",
                        markersize=9,
                        color=s["color"],
                        markeredgecolor="black",
                        linestyle="none",
                        label=f"{group} ({split}) diverged",
                    )
                    any_diverged = True
    for text, s in legend_entries(runs, opts.color_by):
        handles[text] = Line2D([], [], color=s["color"], linestyle=s["linestyle"], lw=2)
    seeds = {len(members) for _, members in group_runs(runs)}
    if max(seeds) > 1:  # every seed is a line of its own
        text = f"{seeds.pop()} seeds: one line each" if len(seeds) == 1 else "one line per seed"
        handles[text] = Line2D([], [], linestyle="none")
    handles["test (bold)"] = Line2D([], [], color="0.3", linewidth=2)
    handles["train (thin)"] = Line2D([], [], color="0.3", linewidth=1, alpha=0.6)
    if any_diverged:
        handles["✕ diverged (last finite value)"] = Line2D(
            [], [], marker="X", color="0.5", markeredgecolor="black", linestyle="none"
        )
    ax_loss.set_ylabel("cross-entropy loss (nats)" + (", log scale" if opts.logy else ""))
    if opts.logy:
        ax_loss.set_yscale("log")
    ax_err.set_ylabel("classification error (%)" + (", log scale" if opts.logy else ""))
    if opts.logy:
        ax_err.set_yscale("log")
    ax_loss.set_title("loss")
    ax_err.set_title("error")
    for ax in (ax_loss, ax_err):
        step_axis(ax, runs, opts, probes=False)
    figure_legend(fig, list(handles.values()), list(handles), opts)
    suptitle(fig, "Learning curves: training (thin) and test (bold) loss and error", runs, opts)
    caption(
        fig,
        "Training (thin) and test (bold) cross-entropy and classification error against training steps, one "
        "color per setting; a ✕ marks where a diverged run stopped.",
    )
    return [("curves", fig)]


def _final_test_error(run: Run) -> float | None:
    """Final test error in %: from summary.json, else from the last test row of metrics.parquet."""
    error = run.final_test_error()
    return None if error is None else 100.0 * error


def _table_row(run: Run, extra: Sequence[str]) -> str:
    """A table row's name: activation / init, then any other setting the runs differ in."""
    act = run.value("act") or "?"
    init = run.value("init") or "?"
    return " ".join([f"{act} / {init}", *(f"{k}={run.value(k)}" for k in extra)])


def fig_table(runs: list[Run], opts: Options) -> list[Output]:
    """Final test error per setting (mean ± std over seeds): rows act/init, columns data (Glorot Table 1)."""
    extra = varying_keys(runs, ignore=[SEED_KEY, "data", "act", "init"])
    cells: dict[tuple[str, str], list[float]] = {}
    marks: dict[tuple[str, str], set[str]] = {}
    order: dict[str, Any] = {}
    missing, used = [], []
    for _, members in group_runs(runs):
        for run in members:
            error = _final_test_error(run)
            if error is None:
                missing.append(run.path.name)
                continue
            row, column = _table_row(run, extra), run.value("data") or "?"
            order.setdefault(row, order_key(run, ["act", "init", *extra], RANK))
            cells.setdefault((row, column), []).append(error)
            used.append(run)
            status = run.summary.get("status", "completed")
            if status == "diverged":
                marks.setdefault((row, column), set()).add("†")
            elif status != "completed":
                marks.setdefault((row, column), set()).add("*")
    if not cells:
        raise Skip("no run has a final test accuracy (summary.json and metrics.parquet missing or empty)")
    if missing:
        opts.notes.append(f"table: {len(missing)} run(s) without a test evaluation left out")
    rows = sorted(order, key=lambda r: order[r])
    columns = sorted({c for _, c in cells}, key=natural_key)
    counts = {len(v) for v in cells.values()}
    uniform_n = counts.pop() if len(counts) == 1 else None

    def cell(row: str, column: str) -> tuple[str, float, float, int]:
        values = cells.get((row, column))
        if not values:
            return "–", math.nan, math.nan, 0
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        text = f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"
        if uniform_n is None:
            text += f" (n={len(values)})"
        return text + "".join(sorted(marks.get((row, column), ()))), mean, std, len(values)

    header = "activation / init" + "".join(f" {k}" for k in extra)
    md = [f"| {header} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    csv = ["setup," + ",".join(f"{c}_mean,{c}_std,{c}_n" for c in columns)]
    for row in rows:
        texts, numbers = [], []
        for column in columns:
            text, mean, std, n = cell(row, column)
            texts.append(text)
            numbers += [_csv_number(mean), _csv_number(std), str(n)]
        md.append(f"| {row} | " + " | ".join(texts) + " |")
        csv.append(_csv_text(row) + "," + ",".join(numbers))
    steps = {r.summary.get("steps_done") for r in used}
    after = f" after {steps.pop()} training steps" if len(steps) == 1 and None not in steps else ""
    if uniform_n is None:
        spread = "mean ± sample std over the n runs of each cell"
    elif uniform_n == 1:
        spread = "one run per cell"
    else:
        spread = f"mean ± sample std over {uniform_n} seeds"
    notes = [f"Final test error (%){after}; {spread}."]
    if any("†" in m for m in marks.values()):
        notes.append("† includes a run that diverged (error of the net it stopped with).")
    if any("*" in m for m in marks.values()):
        notes.append("* includes a run that did not finish (interrupted, failed or still running).")
    text = "\n".join(md) + "\n\n" + " ".join(notes) + "\n"
    return [("table.md", text), ("table.csv", "\n".join(csv) + "\n")]


def _csv_number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.10g}"


def _csv_text(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text
