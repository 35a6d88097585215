"""Claims of mean-field theory (Poole et al. 2016; Schoenholz et al. 2017), checked against the runs' own
predictions (``theory.parquet`` and the depth scales in ``summary.json``, written by every run where the
theory applies; :mod:`initlab.theory.predict`).

Layer by layer (presets ``edge_of_chaos``, ``he_deep_relu``, ``self_normalizing``, ``glorot_init``): one
finite net random-walks around the mean-field curve (its layer-l variance inherits the sampling error of all
layers below), so the claim compares the *per-layer ratios* v_l/v_(l−1) of measured and predicted
pre-activation variances (and the first layer's variance itself: its input is the fixed data). Given the
layer below, a layer's n units are independent and the relative standard error of their mean square is at
most √(2/n); a ratio of two layers' variances has at most √(2/n_l) + √(2/n_(l−1)). The claim holds if every
ratio of every run lies within 5 such standard errors. (Its power grows with the width: at width 32 a
prediction for σ_w² = 4 instead of 1 is 5.5 standard errors off in the first layer, at width 256 15.)

Trainability (preset ``edge_of_chaos``, Schoenholz et al. Fig. 5): a net *trains* when its final training
accuracy is at least halfway from chance, e^(−H(p)) of the class prior p (1/K for K balanced classes), to
1. The deepest trainable nets sit at the grid point nearest the critical σ_w² (χ₁ = 1, from the runs' own
χ₁) or next to it; nets deeper than 6·ξ_c do not train.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from initlab.claims import NotApplicable, cfg, claim
from initlab.runs import Run
from initlab.theory import TRAINABLE_XI

N_SE = 5.0
SCHOENHOLZ = "Schoenholz et al. 2017"


def preact_ratio_errors(run: Run) -> pd.Series:
    """Per layer, in standard errors: layer 1 |ln(v_1/p_1)| over √(2/n_1); layer l ≥ 2
    |ln(v_l/v_(l−1)) − ln(p_l/p_(l−1))| over √(2/n_l) + √(2/n_(l−1)) (v measured, p predicted)."""
    theory = run.theory
    if theory.empty:
        reason = run.summary.get("theory_skipped", "no theory.parquet (a run made before predictions)")
        raise NotApplicable(f"{run.path}: {reason}")
    pred = theory[theory.quantity == "preact"].set_index("layer").sort_index()
    measured = run.layer_stat("preact", "std", step=0) ** 2
    log_gap = np.log(measured.reindex(pred.index)) - np.log(pred["variance"])
    se = np.sqrt(2.0 / pred["fan_out"])
    steps = log_gap.diff().fillna(log_gap)  # layer 1: its own gap (the input is fixed, not a random layer)
    errors = (steps / (se + se.shift().fillna(0.0))).abs()
    if errors.isna().any():
        raise NotApplicable(f"{run.path}: step-0 preact probes missing for some layers")
    return errors


def worst_ratio_error(runs: list[Run]) -> float:
    """The largest per-layer ratio error (in standard errors) over every run with a prediction."""
    errors = []
    for run in runs:
        try:
            errors.append(float(preact_ratio_errors(run).max()))
        except NotApplicable:
            continue
    if not errors:
        raise NotApplicable("no run has a mean-field prediction (theory.parquet)")
    return max(errors)


TEXT = (
    "the measured step-0 pre-activation variances follow the mean-field prediction layer by layer "
    "(largest deviation, over all runs and layers, of the first layer's variance and of each per-layer "
    "ratio v_l/v_(l−1) from the predicted one, in standard errors √(2/n_l) + √(2/n_(l−1)))"
)
THRESHOLD = f"≤ {N_SE:g} (sampling error of n units at that width)"


def _ratio_claim(preset: str, source: str) -> None:
    def measure(runs: list[Run]) -> float:
        return worst_ratio_error(runs)

    measure.__name__ = f"{preset}_variances_follow_mean_field"
    claim(preset=preset, source=source, text=TEXT, threshold=THRESHOLD, passes=lambda v: v <= N_SE)(measure)


_ratio_claim("edge_of_chaos", f"{SCHOENHOLZ}, Eq. 3 (Poole et al. 2016)")
_ratio_claim(
    "he_deep_relu", "He et al. 2015, Eq. 10 as the mean-field recursion (ReLU: q^l = σ_w²·q^(l−1)/2)"
)
_ratio_claim("self_normalizing", "Klambauer et al. 2017 (SELU fixed point) as the mean-field recursion")
_ratio_claim("glorot_init", "Glorot & Bengio 2010, Eq. 5 generalized by the mean-field recursion")


# -- trainability -----------------------------------------------------------------------------------------
def trained(run: Run) -> bool:
    """Final training accuracy at least halfway from chance, e^(−H(p)) (1/K for K balanced classes), to 1."""
    acc = run.summary.get("final_train_accuracy")
    entropy = run.summary.get("train_prior_entropy")
    if acc is None:
        raise NotApplicable(f"{run.path} has no final_train_accuracy")
    n_classes = int(cfg(run, "data.n_classes", 10) or 10)
    chance = 1.0 / n_classes if entropy is None else math.exp(-entropy)
    return acc >= (chance + 1.0) / 2.0


def _grid(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        if run.summary.get("theory_chi_1") is None:
            continue
        xi = run.summary.get("theory_xi_c")
        rows.append(
            {
                "sigma_w2": float(cfg(run, "init.sigma_w2")),
                "depth": int(cfg(run, "model.depth")),
                "trained": trained(run),
                "accuracy": float(run.summary["final_train_accuracy"]),
                "chi_1": float(run.summary["theory_chi_1"]),
                "xi_c": math.inf if xi is None else float(xi),
            }
        )
    if not rows:
        raise NotApplicable("no run with a mean-field prediction and a final training accuracy")
    return pd.DataFrame(rows)


def critical_sigma_w2(grid: pd.DataFrame) -> float:
    """σ_w² where χ₁ = 1, linearly interpolated between the grid's σ_w² (χ₁ grows with σ_w²)."""
    chi = grid.groupby("sigma_w2")["chi_1"].first().sort_index()
    return float(np.interp(1.0, chi.to_numpy(), chi.index.to_numpy()))


@claim(
    preset="edge_of_chaos",
    source=f"{SCHOENHOLZ}, Fig. 5",
    text="the deepest trainable nets sit near the critical σ_w² (χ₁ = 1): grid steps between the σ_w² "
    "with the deepest trained net (ties: higher mean training accuracy) and the grid point nearest the "
    "critical σ_w²",
    threshold="≤ 1",
    passes=lambda v: v <= 1,
)
def eoc_deepest_trainable_near_critical(runs: list[Run]) -> float:
    grid = _grid(runs)
    sigmas = np.sort(grid["sigma_w2"].unique())
    if len(sigmas) < 3:
        raise NotApplicable("fewer than 3 values of init.sigma_w2")
    per = {  # σ_w² -> (deepest trained depth, mean accuracy): compared in that order
        sigma: (int(g.loc[g.trained, "depth"].max()) if g.trained.any() else 0, float(g.accuracy.mean()))
        for sigma, g in grid.groupby("sigma_w2")
    }
    best = max(per, key=per.__getitem__)
    nearest = int(np.argmin(np.abs(sigmas - critical_sigma_w2(grid))))
    return float(abs(int(np.searchsorted(sigmas, best)) - nearest))


@claim(
    preset="edge_of_chaos",
    source=f"{SCHOENHOLZ}, §5 and Fig. 5",
    text=f"nets deeper than {TRAINABLE_XI:g}·ξ_c do not train (how many of them reach a training accuracy "
    "halfway from chance to 1)",
    threshold="0 (fails also when no run is that deep)",
    passes=lambda v: v == 0,
)
def eoc_too_deep_nets_do_not_train(runs: list[Run]) -> float:
    grid = _grid(runs)
    deep = grid[grid.depth > TRAINABLE_XI * grid.xi_c]
    if deep.empty:
        return math.nan
    return float(deep.trained.sum())
