"""The handbook's regularizers, the deterministic part: L1 drives weights to (near) zero, L2 does not.

Preset ``l1_sparsity`` (``conf/experiment/l1_sparsity.yaml``): one ReLU MLP trained with plain SGD three
times per seed -- no penalty, L2 penalty λ₂·Σ‖W‖², L1 penalty λ₁·Σ|W| (the ``penalty`` row) -- with
lr·λ₁·T = σ₀ (L1 can carry a weight of one init std to 0 within the run) and equal penalties at init.

Theory (one weight w, plain SGD with learning rate lr, data gradient g):

* L1: w ← w − lr·(g + λ₁·sign w). Where |g| < λ₁ the penalty wins: w drifts to 0 by lr·(λ₁ − |g|) per
  step, then hops across 0 within ±lr·(λ₁ + |g|). Many weights end in a narrow band around 0.
* L2: w ← (1 − 2·lr·λ₂)·w − lr·g. An unneeded weight (g = 0) shrinks geometrically to (1 − 2·lr·λ₂)^T·w₀
  and never reaches 0: the distribution is the init Gaussian scaled by that factor, so the fraction near 0
  grows only by 1/factor (4 here); the data gradient has no reason to put weights at 0.

"Near zero" is |w| < τ_l = :data:`TAU`·σ_l with σ_l the layer's init std (its step-0 ``weight`` probe,
every value): a Gaussian N(0, σ_l²) holds :data:`GAUSSIAN` = erf(0.01/√2) = 0.80 % of its values there,
whatever the layer. The fraction is taken over every value of every final weight matrix (``model.pt``,
written with ``train.save_model=true``; biases are not penalized and not counted), exactly, no sample.
"""

from __future__ import annotations

import math

import numpy as np

from initlab.claims import NotApplicable, cfg, claim, completed, layer_stat, one
from initlab.runs import Run

SOURCE = "Yandex ML handbook §5.4; Goodfellow et al. 2016 §7.1.2"
TAU = 0.01  # near zero: |w| < 1 % of the layer's init std
GAUSSIAN = math.erf(TAU / math.sqrt(2))  # P(|z| < TAU) for z ~ N(0, 1): 0.80 %
MANY = 10  # "many", by definition: ten times what a Gaussian puts within τ (measured: about 70 times)


def near_zero_fraction(run: Run) -> float:
    """Σ_l #{|w| < TAU·σ_l} / Σ_l n_l over the final weight matrices of ``run`` (a completed run), σ_l its
    step-0 std."""
    weights = list(completed(run).weights.values())
    if not weights:
        raise NotApplicable(f"{run.path} has no final weights (model.pt: train.save_model=true)")
    std0 = layer_stat(run, "weight", "std", 0)
    sizes = layer_stat(run, "weight", "n", 0)
    if [w.size for w in weights] != [int(n) for n in sizes]:
        raise NotApplicable(f"{run.path}: the weights of model.pt do not match the probed layers")
    near = sum(int((np.abs(w) < TAU * s).sum()) for w, s in zip(weights, std0, strict=True))
    return near / sum(w.size for w in weights)


def l2_shrink_bound(run: Run) -> float:
    """The fraction within τ of the init Gaussian shrunk by plain SGD's L2 decay alone over the run:
    P(|z| < TAU / |1 − 2·lr·λ₂|^T), z ~ N(0, 1), T the updates done (1 where the factor underflows to 0)."""
    if cfg(run, "optim.name") != "sgd" or float(cfg(run, "optim.momentum") or 0) != 0:
        raise NotApplicable(f"{run.path}: the decay factor (1 − 2·lr·λ)^T holds for plain SGD only")
    lr, lam = float(cfg(run, "optim.lr")), float(cfg(run, "reg.l2") or 0)
    shrink = abs(1 - 2 * lr * lam) ** int(run.summary.get("steps_done", 0))  # |w_T| = |1 − 2·lr·λ₂|^T·|w₀|
    return math.erf(TAU / shrink / math.sqrt(2)) if shrink > 0 else 1.0


@claim(
    preset="l1_sparsity",
    source=SOURCE,
    text="L1 drives many weights to near zero: percentage of final weights with |w| < 1 % of their "
    "layer's init std",
    threshold=f"> {MANY} × {100 * GAUSSIAN:.2f} % = {100 * MANY * GAUSSIAN:.1f} % ({MANY} times what a "
    "Gaussian holds there)",
    passes=lambda v: v > 100 * MANY * GAUSSIAN,
)
def l1_piles_weights_at_zero(runs: list[Run]) -> float:
    return 100 * near_zero_fraction(one(runs, penalty="l1"))


@claim(
    preset="l1_sparsity",
    source=SOURCE,
    text="L2 does not: its fraction of final weights with |w| < 1 % of the init std, divided by what the "
    "init Gaussian shrunk by the decay alone, (1 − 2·lr·λ₂)^T, holds there",
    threshold="≤ 1 (the data gradient puts no weights at 0; theory: < 1)",
    passes=lambda v: v <= 1,
)
def l2_no_pile_up_at_zero(runs: list[Run]) -> float:
    run = one(runs, penalty="l2")
    return near_zero_fraction(run) / l2_shrink_bound(run)
