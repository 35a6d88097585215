"""The doctor's checks: one small named function per finding, reading an :class:`~.examine.Evidence`.

Each returns a :class:`Result` -- the measured value, whether it crosses the threshold, the layers
concerned in the model's own module names, one sentence -- or None where it does not apply (no bounded
activation, no batch norm, no mean-field prediction). Thresholds, their sources and the fixes are the rows of
:data:`initlab.diagnosis.findings.CHECKS`. "Hidden layers" are the layers whose output feeds an activation
module (the probe library's ``act`` rows): for initlab's nets the ``depth`` hidden layers, for a ResNet the
convolutions before a ReLU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from initlab.diagnosis.examine import Evidence

# The total change of a variance over the net that marks a depth beyond Schoenholz et al.'s 6·ξ: a variance
# that changes by r per layer has depth scale ξ = 1/|ln r|, and L > 6·ξ  ⟺  r^L outside [e^−6, e^6].
TRAINABLE_XI = 6.0
SIGNAL_BAND = (math.exp(-TRAINABLE_XI), math.exp(TRAINABLE_XI))
DEAD_SHARE = 0.5  # rule of thumb, above the measured 17–34 % of healthy deep ReLU nets
SATURATED_SHARE = 0.5  # rule of thumb
UPDATE_BAND = (1e-5, 1e-1)  # two orders of magnitude around the rule of thumb 1e-3
BN_SHIFT, BN_LOG_VAR = 0.5, math.log(2.0)  # rule of thumb
GROWTH_SIGMAS = 3.0


@dataclass
class Result:
    """What one check found: the value, whether it is a finding, the layers concerned, one sentence."""

    measured: float
    flagged: bool
    layers: list[str]
    detail: str
    predicted: float | None = None  # the mean-field prediction of the same measure, where there is one
    per_layer: dict[str, float] = field(default_factory=dict)  # for the figure
    predicted_per_layer: dict[str, float] = field(default_factory=dict)  # the mean field's, same layers


def _hidden(ev: Evidence, quantity: str, step: int = 0) -> pd.Series:
    """Variance of ``quantity`` per hidden layer (name-indexed, forward order) at ``step``."""
    rows = ev.layers[ev.layers.step == step] if len(ev.layers) else ev.layers
    if not len(rows):
        return pd.Series(dtype=float)
    hidden = set(rows.layer[rows.quantity == "act"])
    pick = rows[(rows.quantity == quantity) & rows.layer.isin(hidden)].sort_values("layer")
    return pd.Series(pick["std"].to_numpy() ** 2, index=pick["name"].to_numpy(), name=quantity)


def _predicted(ev: Evidence, quantity: str, first: int, last: int) -> float | None:
    rows = ev.theory.get("rows")
    if rows is None or not len(rows):
        return None
    var = rows[rows.quantity == quantity].set_index("layer")["variance"]
    return float(var[last] / var[first]) if first in var and last in var and var[first] > 0 else None


def _band(value: float) -> bool:
    return not (SIGNAL_BAND[0] <= value <= SIGNAL_BAND[1])


def _ratio_result(var: pd.Series, ev: Evidence, quantity: str, down: bool) -> Result | None:
    if len(var) < 2:
        return None
    top, bottom = var.iloc[-1], var.iloc[0]
    with np.errstate(divide="ignore", invalid="ignore"):  # a layer of zeros: the ratio is 0, inf or NaN
        ratio = float(np.float64(bottom) / top) if down else float(np.float64(top) / bottom)
        rel = var / (top if down else bottom)
    per_layer = {str(k): float(v) for k, v in rel.items()}
    flagged = not math.isfinite(ratio) or _band(ratio)
    off = [k for k, v in per_layer.items() if _band(v)] if flagged else []
    n = len(var) - 1
    each = ratio ** (1 / n) if ratio > 0 and math.isfinite(ratio) else math.nan
    ends = (var.index[-1], var.index[0]) if down else (var.index[0], var.index[-1])
    layer_of = {}
    if ev.theory.get("rows") is not None:
        hidden = ev.layers[(ev.layers.step == 0) & (ev.layers.quantity == quantity)]
        layer_of = dict(zip(hidden["name"], hidden["layer"], strict=False))
    predicted, predicted_per_layer = None, {}
    if ends[0] in layer_of and ends[1] in layer_of:
        predicted = _predicted(ev, quantity, int(layer_of[ends[0]]), int(layer_of[ends[1]]))
        ref = int(layer_of[var.index[-1] if down else var.index[0]])
        for name in var.index:
            value = _predicted(ev, quantity, ref, int(layer_of[name])) if name in layer_of else None
            if value is not None:
                predicted_per_layer[str(name)] = value
    text = (
        f"{'toward the input' if down else 'up the net'}: ×{ratio:.3g} from {ends[0]} to {ends[1]} "
        f"over {n} layers, ×{each:.3g} per layer"
    )
    if predicted is not None:
        text += f"; mean-field prediction ×{predicted:.3g}"
    return Result(ratio, flagged, off, text, predicted, per_layer, predicted_per_layer)


# -- the checks --------------------------------------------------------------------------------------------
def forward_signal(ev: Evidence) -> Result | None:
    """Var[s_last]/Var[s_first] of the hidden layers' pre-activations at step 0."""
    return _ratio_result(_hidden(ev, "preact"), ev, "preact", down=False)


def backward_gradient(ev: Evidence) -> Result | None:
    """Var[∂L/∂s_first]/Var[∂L/∂s_last] at step 0: > 1 grows toward the input, < 1 shrinks."""
    return _ratio_result(_hidden(ev, "grad_preact"), ev, "grad_preact", down=True)


def dead_units(ev: Evidence) -> Result | None:
    """Per activation site, the share of units 0 on every example of every late probed batch."""
    late = ev.units[ev.units.step.isin(ev.late)]
    if not len(late):
        return None
    shares, at_init = {}, {}
    for site, group in late.groupby("site", sort=False):
        masks = [m for m in group["dead"] if len(m) == len(group["dead"].iloc[0])]
        shares[site] = float(np.logical_and.reduce([m.numpy() for m in masks]).mean())
    first = ev.units[ev.units.step == ev.units.step.min()]
    at_init = dict(zip(first.site, first.dead_frac, strict=False))
    worst = max(shares, key=shares.__getitem__)
    off = [s for s, v in shares.items() if v > DEAD_SHARE]
    text = (
        f"{shares[worst]:.0%} of {worst}'s units are 0 on every example of the {len(set(late.step))} "
        f"probed batches of steps {min(ev.late)}–{max(ev.late)} ({at_init.get(worst, math.nan):.0%} on "
        f"the batch of step {int(first.step.min())})"
    )
    return Result(shares[worst], bool(off), off, text, per_layer=shares)


def saturated_units(ev: Evidence) -> Result | None:
    """Share of a bounded activation's values past its knee, averaged over the late probed steps."""
    rows = ev.layers[(ev.layers.quantity == "act") & ev.layers.step.isin(ev.late)] if len(ev.layers) else None
    if rows is None or not len(rows) or rows["frac_saturated"].isna().all():
        return None
    share = rows.dropna(subset=["frac_saturated"]).groupby("name", sort=False)["frac_saturated"].mean()
    worst = str(share.idxmax())
    off = [str(k) for k, v in share.items() if v > SATURATED_SHARE]
    text = (
        f"{share[worst]:.0%} of {worst}'s activations sit past the knee, steps {min(ev.late)}–{max(ev.late)}"
    )
    return Result(
        float(share[worst]), bool(off), off, text, per_layer={str(k): float(v) for k, v in share.items()}
    )


def symmetry(ev: Evidence) -> Result | None:
    """The lowest rank of a weight matrix (of at least 2 units and 2 inputs) after training."""
    ranks = ev.ranks[(ev.ranks.units >= 2) & (ev.ranks.inputs >= 2) & (ev.ranks["rank"] >= 0)]
    if not len(ranks):
        return None
    low = ranks.loc[ranks["rank"].idxmin()]
    off = list(ranks.name[ranks["rank"] <= 1])
    text = (
        f"{low['name']} has rank {low['rank']} of {min(low.units, low.inputs)} after {ev.steps_done} "
        f"updates ({low.identical} of its {low.units} units identical)"
    )
    return Result(
        float(low["rank"]),
        bool(off),
        off,
        text,
        per_layer={r.name: r.rank / min(r.units, r.inputs) for r in ranks.itertuples()},
    )


def phase(ev: Evidence) -> Result | None:
    """Depth against Schoenholz et al.'s trainable depth 6·ξ_c (mean-field nets only)."""
    scales, depth = ev.theory.get("scales"), ev.theory.get("depth")
    if not scales or not depth:
        return None
    limit = scales["trainable_depth"]
    text = (
        f"χ₁ = {scales['chi_1']:.3g} ({scales['phase']}), ξ_c = {scales['xi_c']:.3g}, so 6·ξ_c = "
        f"{limit:.3g} layers for a net of depth {depth}"
    )
    grads = _hidden(ev, "grad_preact")
    if len(grads) >= 2 and grads.iloc[-1] > 0 and grads.iloc[0] > 0:  # equal widths: χ₁ per layer
        measured = float((grads.iloc[0] / grads.iloc[-1]) ** (1 / (len(grads) - 1)))
        text += f"; measured Var[∂L/∂s] ratio per layer {measured:.3g}"
    return Result(float(limit), depth > limit, ["all hidden layers"] if depth > limit else [], text)


def _update_medians(ev: Evidence) -> pd.Series:
    rows = ev.updates.dropna(subset=["ratio"])
    return rows.groupby("name", sort=False)["ratio"].median() if len(rows) else pd.Series(dtype=float)


def updates_large(ev: Evidence) -> Result | None:
    med = _update_medians(ev)
    if not len(med):
        return None
    off = [str(k) for k, v in med.items() if v > UPDATE_BAND[1]]
    text = f"largest median ‖ΔW‖/‖W‖ per step: {med.max():.2g} ({med.idxmax()})"
    return Result(
        float(med.max()), bool(off), off, text, per_layer={str(k): float(v) for k, v in med.items()}
    )


def updates_small(ev: Evidence) -> Result | None:
    med = _update_medians(ev)
    if not len(med):
        return None
    off = [str(k) for k, v in med.items() if v < UPDATE_BAND[0]]
    text = f"smallest median ‖ΔW‖/‖W‖ per step: {med.min():.2g} ({med.idxmin()})"
    return Result(
        float(med.min()), bool(off), off, text, per_layer={str(k): float(v) for k, v in med.items()}
    )


def batch_norm_stats(ev: Evidence) -> Result | None:
    rows = ev.norms[ev.norms.step.isin(ev.late)]
    if not len(rows):
        return None
    by = rows.groupby("name", sort=False)[["mean_shift", "log_var"]].mean()
    off = [str(k) for k, r in by.iterrows() if r.mean_shift > BN_SHIFT or r.log_var > BN_LOG_VAR]
    worst = str(by.mean_shift.idxmax())
    text = (
        f"{worst}: batch mean {by.mean_shift[worst]:.2f} running σ from the running mean, "
        f"batch variance ×{math.exp(by.log_var[worst]):.2f} (rms) off the running variance"
    )
    return Result(
        float(by.mean_shift.max()),
        bool(off),
        off,
        text,
        per_layer={str(k): float(v) for k, v in by.mean_shift.items()},
    )


def divergence(ev: Evidence) -> Result:
    nonfinite = ev.layers[ev.layers.n_nonfinite > 0] if len(ev.layers) else ev.layers
    if ev.diverged_at is not None:
        return Result(
            float(ev.diverged_at),
            True,
            [],
            f"the loss became {ev.losses[-1]} at step {ev.diverged_at}; training stopped",
        )
    if len(nonfinite):
        first = nonfinite.sort_values("step").iloc[0]
        return Result(
            float(first.step),
            True,
            sorted(set(nonfinite.name)),
            f"non-finite {first.quantity} in {first['name']} at step {first.step}",
        )
    losses = np.asarray(ev.losses, dtype=float)
    q = len(losses) // 4
    if q < 2:
        return Result(math.nan, False, [], f"only {len(losses)} losses: too few to see a trend")
    a, b = losses[:q], losses[-q:]
    se = math.sqrt(a.var(ddof=1) / q + b.var(ddof=1) / q)
    grows = b.mean() - a.mean() > GROWTH_SIGMAS * se
    text = f"mean loss {a.mean():.3g} over the first quarter of the steps, {b.mean():.3g} over the last"
    return Result(float(b.mean() / a.mean()) if a.mean() else math.nan, bool(grows), [], text)
