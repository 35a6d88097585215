"""Claims of Ioffe & Szegedy 2015, "Batch Normalization", Fig. 1 (preset ``bn_sigmoid``).

A 3 x 100 sigmoid MLP from small Gaussian weights, trained on batches of 60, without and with batch norm
before each nonlinearity. (a) The BN net reaches higher test accuracy sooner. (b, c) The input of a sigmoid
in the last hidden layer, shown as its 15/50/85th percentiles over training, drifts in mean and spread
without BN and stays stable with it.

Drift is measured scale-free: the largest move of any of the three percentiles away from its step-0 value,
over all probed steps, divided by the step-0 spread p85 − p15:

    drift = max_t max_{k ∈ {15, 50, 85}} |p_k(t) − p_k(0)| / (p85(0) − p15(0)).

Differences from the paper: the percentiles pool all 100 units of layer 3 over the probed batch (the paper
follows one "typical" sigmoid), so a unit's own mean shift is averaged away: without BN the pooled median
barely moves and the drift is the spread tripling (p85 from 0.5 to 1.5); with BN the spread grows too,
by 1.5x as γ is learnt, and then holds.

Every claim holds in every seed (the runs of one seed: the net with and without BN) to pass.
"""

from __future__ import annotations

import math

from initlab.claims import NotApplicable, claim, final_test_error, one
from initlab.runs import Run

TARGET_ACCURACY = 0.9


def steps_to(run: Run, accuracy: float) -> float:
    """The first evaluated step with test accuracy ≥ ``accuracy`` (inf if never)."""
    errors = run.errors_by_step("test")
    return next((step for step, error in errors.items() if 1.0 - error >= accuracy), math.inf)


def drift(run: Run) -> float:
    """Scale-free drift of the last hidden layer's pre-activation percentiles (see the module doc)."""
    layers = run.layers
    if layers.empty:
        raise NotApplicable(f"{run.path} has no probes")
    depth = int(run.cfg("model.depth"))
    rows = layers[(layers["quantity"] == "preact") & (layers["layer"] == depth)].sort_values("step")
    if rows.empty:
        raise NotApplicable(f"{run.path} has no pre-activation probes of layer {depth}")
    start = rows.iloc[0]
    spread = start["p85"] - start["p15"]
    moves = [(rows[k] - start[k]).abs().max() for k in ("p15", "p50", "p85")]
    return float(max(moves) / spread)


# The paper's net: 3 sigmoid layers from small Gaussian weights (init=normal; init.std is the preset's 0.1).
NET = {"act__name": "sigmoid", "model__depth": 3, "init__name": "normal"}


def _runs(runs: list[Run]) -> tuple[Run, Run]:
    """(the run with batch norm before each sigmoid, the run without) of the paper's net in this seed."""
    bn = one(runs, model__norm="batch", model__norm_position="before", **NET)
    plain = one(runs, model__norm="none", **NET)
    if bn.cfg("init.std") != plain.cfg("init.std"):
        raise NotApplicable(
            f"needs the same init.std with and without BN ({bn.cfg('init.std')} vs {plain.cfg('init.std')})"
        )
    return bn, plain


@claim(
    preset="bn_sigmoid",
    source="Ioffe & Szegedy 2015, Fig. 1(a)",
    text=f"BN reaches {TARGET_ACCURACY:.0%} test accuracy sooner: steps with BN / steps without "
    "(0 if the net without BN never gets there)",
    threshold="< 1",
    passes=lambda v: v < 1,
)
def bn_reaches_accuracy_sooner(runs: list[Run]) -> float:
    bn, plain = _runs(runs)
    with_bn, without = steps_to(bn, TARGET_ACCURACY), steps_to(plain, TARGET_ACCURACY)
    if math.isinf(with_bn):
        return math.inf
    return 0.0 if math.isinf(without) else with_bn / without


@claim(
    preset="bn_sigmoid",
    source="Ioffe & Szegedy 2015, Fig. 1(a)",
    text="BN ends with the higher test accuracy (final accuracy with BN minus without)",
    threshold="> 0",
    passes=lambda v: v > 0,
)
def bn_higher_final_accuracy(runs: list[Run]) -> float:
    bn, plain = _runs(runs)
    return final_test_error(plain) - final_test_error(bn)  # = accuracy with BN − accuracy without


@claim(
    preset="bn_sigmoid",
    source="Ioffe & Szegedy 2015, Fig. 1(b, c)",
    text="the last hidden layer's sigmoid input (15/50/85th percentiles) drifts less with BN "
    "(drift with BN / drift without, drift = largest percentile move / initial 15-85 spread)",
    threshold="< 1",
    passes=lambda v: v < 1,
)
def bn_stabilizes_sigmoid_inputs(runs: list[Run]) -> float:
    bn, plain = _runs(runs)
    return drift(bn) / drift(plain)
