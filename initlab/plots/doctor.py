"""The doctor's figure: every per-layer check on the layers, its threshold, the layers it flags in red.

One panel per check that measures layer by layer (:mod:`initlab.diagnosis.findings`): the forward
variance and the back-propagated gradient variance relative to the first (last) hidden layer with the band
[e^−6, e^6], the share of dead and of saturated units with the line 1/2, the update size ‖ΔW‖/‖W‖ with the
band [1e-5, 1e-1] around the rule of thumb 1e-3, the batch-norm mean shift, and the rank of each weight
relative to its smaller dimension. Drawn from a :class:`~initlab.diagnosis.report.Report` (its
``doctor.json`` holds the same values).
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from initlab.plots.style import STYLE

# check key -> (y label, log scale, threshold lines)
PANELS: dict[str, tuple[str, bool, tuple[float, ...]]] = {
    "forward_signal": ("Var[s_l] / Var[s_first]", True, (2.4788e-3, 403.43)),
    "backward_gradient": ("Var[∂L/∂s_l] / Var[∂L/∂s_last]", True, (2.4788e-3, 403.43)),
    "dead_units": ("share of units dead", False, (0.5,)),
    "saturated_units": ("share of values saturated", False, (0.5,)),
    "updates_large": ("median ‖ΔW‖/‖W‖ per step", True, (1e-5, 1e-3, 1e-1)),
    "batch_norm_stats": ("rms (μ_B − μ_run)/σ_run", False, (0.5,)),
    "symmetry": ("rank / min(units, inputs)", False, ()),
}


def draw_doctor(report: Any, fig: Figure | None = None) -> Figure:
    """The figure of a report (``report.findings`` and ``report.passed``)."""
    checks = {r["key"]: r for r in [*report.findings, *report.passed] if r.get("per_layer")}
    if checks.get("updates_small", {}).get("flagged"):  # one panel for both update checks
        checks["updates_large"] = checks["updates_small"]
    keys = [k for k in PANELS if k in checks]
    with matplotlib.rc_context(STYLE):
        n = max(len(keys), 1)
        cols = 2 if n > 1 else 1
        rows = (n + cols - 1) // cols
        fig = fig or Figure(figsize=(6.2 * cols, 2.9 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, key in zip(axes, keys, strict=False):
            _panel(ax, checks[key], *PANELS[key])
        for ax in axes[len(keys) :]:
            ax.set_visible(False)
        state = (
            "no finding"
            if report.clean
            else f"{len(report.findings)} finding(s): " + ", ".join(f["key"] for f in report.findings)
        )
        fig.suptitle(f"initlab doctor: {report.subject}\n{state}")
    return fig


def _panel(ax: Any, check: dict[str, Any], label: str, log: bool, lines: tuple[float, ...]) -> None:
    names = list(check["per_layer"])
    values = [check["per_layer"][n] for n in names]
    flagged = set(check["layers"])
    colors = ["#d62728" if n in flagged else "#1f77b4" for n in names]
    xs = range(len(names))
    ax.plot(xs, values, color="0.6", lw=1, zorder=1)
    ax.scatter(xs, values, c=colors, s=18, zorder=2)
    predicted = check.get("predicted_per_layer") or {}
    if predicted:
        ax.plot(
            [i for i, n in enumerate(names) if n in predicted],
            [predicted[n] for n in names if n in predicted],
            color="0.2",
            ls=":",
            lw=1.2,
            label="mean-field prediction",
            zorder=1,
        )
        ax.legend(loc="best")
    for y in lines:
        ax.axhline(y, color="0.3", ls="--", lw=0.8)
    if log:
        ax.set_yscale("log")
    else:  # shares and ranks from 0, so that a line near 1 does not look like a fall
        finite = [v for v in values if math.isfinite(v)]
        ax.set_ylim(0, max([1.05, *(1.1 * v for v in finite)]))
    step = max(1, len(names) // 12)
    ax.set_xticks(list(xs)[::step], names[::step], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel(label)
    mark = "FINDING" if check["flagged"] else "ok"
    ax.set_title(f"{check['title']} ({mark})", color="#d62728" if check["flagged"] else "black")
