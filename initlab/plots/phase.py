"""``phase``: final training accuracy over (σ_w², depth), with mean-field theory's trainable depth on it.

Schoenholz et al. 2017, Fig. 5: nets train in a region that hugs the critical σ_w² (χ₁ = 1) and is bounded
by about 6·ξ_c layers. The heat map's cells are the runs' hidden-layer σ_w² (``theory_sigma_w2`` in
``summary.json``) and ``model.depth``, colored by the final training accuracy (mean over runs in a cell,
e.g. seeds); the white line is 6·ξ_c at each σ_w² and the dotted one the critical σ_w², where the runs'
χ₁ crosses 1 (interpolated between grid values). Everything comes from what the runs wrote.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from initlab.plots.common import Options, Output, Skip, caption, new_figure, styled, suptitle
from initlab.runs import Run
from initlab.theory import TRAINABLE_XI


def phase_grid(runs: list[Run]) -> pd.DataFrame:
    """Per run with a prediction and a final training accuracy: sigma_w2, depth, accuracy, chi_1, xi_c."""
    rows = []
    for run in runs:
        s = run.summary
        if s.get("theory_sigma_w2") is None or s.get("final_train_accuracy") is None:
            continue
        xi = s.get("theory_xi_c")
        rows.append(
            {
                "sigma_w2": round(float(s["theory_sigma_w2"]), 6),
                "depth": int(run.cfg("model.depth")),
                "accuracy": float(s["final_train_accuracy"]),
                "chi_1": float(s["theory_chi_1"]),
                "xi_c": math.inf if xi is None else float(xi),
            }
        )
    return pd.DataFrame(rows)


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges halfway between sorted grid values (and half a step beyond the ends)."""
    mids = (values[1:] + values[:-1]) / 2
    return np.concatenate([[values[0] - (mids[0] - values[0])], mids, [values[-1] + (values[-1] - mids[-1])]])


@styled
def fig_phase(runs: list[Run], opts: Options) -> list[Output]:
    """Heat map of final train accuracy over (σ_w², depth), 6·ξ_c curve and critical σ_w²."""
    grid = phase_grid(runs)
    if grid.empty or grid["sigma_w2"].nunique() < 2 or grid["depth"].nunique() < 2:
        raise Skip("needs runs with mean-field predictions at 2+ values of sigma_w2 and of model.depth")
    cells = grid.pivot_table(index="depth", columns="sigma_w2", values="accuracy", aggfunc="mean")
    sigmas, depths = cells.columns.to_numpy(dtype=float), cells.index.to_numpy(dtype=float)
    fig, axes = new_figure(1, 1, (6.4, 4.6), opts.target)
    ax = axes[0, 0]
    mesh = ax.pcolormesh(_edges(sigmas), _edges(depths), cells.to_numpy(), cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(mesh, ax=ax, label="final training accuracy")
    for (depth, sigma), acc in cells.stack().items():
        ax.text(
            sigma, depth, f"{acc:.2f}", ha="center", va="center", fontsize=7, color="w" if acc < 0.6 else "k"
        )
    scales = grid.groupby("sigma_w2")[["chi_1", "xi_c"]].first().sort_index()
    top = _edges(depths)[-1]
    trainable = np.minimum(TRAINABLE_XI * scales["xi_c"].to_numpy(), top)
    ax.plot(
        scales.index, trainable, color="w", linewidth=2, marker="o", label=f"{TRAINABLE_XI:g}·ξ_c (theory)"
    )
    chi = scales["chi_1"].to_numpy()
    if chi.min() <= 1.0 <= chi.max():
        critical = float(np.interp(1.0, chi, scales.index.to_numpy()))
        ax.axvline(
            critical, color="w", linestyle=":", linewidth=2, label=f"critical σ_w² ≈ {critical:.2f} (χ₁ = 1)"
        )
    ax.set_ylim(max(0.0, _edges(depths)[0]), top)
    ax.grid(False)
    ax.set_xlabel("σ_w² of the hidden layers")
    ax.set_ylabel("depth (hidden layers)")
    ax.legend(loc="upper right", fontsize=8, facecolor="0.3", labelcolor="w", framealpha=0.8)
    suptitle(fig, "Which nets train? Final training accuracy over (σ_w², depth)", runs)
    caption(
        fig,
        "Final training accuracy (mean over runs in a cell) over the hidden layers' σ_w² and the depth; "
        f"white line: mean-field theory's trainable depth {TRAINABLE_XI:g}·ξ_c; dotted: the critical σ_w² "
        "(χ₁ = 1) (Schoenholz et al. 2017, Fig. 5).",
    )
    return [("phase", fig)]
