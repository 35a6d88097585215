"""Claims of the Yandex ML handbook's chapter "Training subtleties" (§5.4) and the papers it builds on.

Four presets (``conf/experiment/<preset>.yaml``):

``symmetry``          approach №0: zero or constant init never breaks the symmetry between a layer's units.
``regularizers``      L2 / decoupled weight decay / L1 penalties, the confidence penalty, input noise and
                      rotation augmentation against no regularization, on 300 training digits (no claims:
                      see below).
``weight_decay``      the L2 penalty λ‖W‖² is weight decay 2λ under plain SGD, not under Adam (AdamW).
                      (L1 puts weights near zero where L2 does not: ``l1_sparsity``, :mod:`.sparsity`.)
``self_normalizing``  SELU with LeCun normal init keeps mean 0 and variance 1 through 32 layers
                      (Klambauer et al. 2017); tanh and ReLU with the same init drift.
``lsuv``              layer-sequential unit-variance init (Mishkin & Matas 2016) against its orthonormal
                      start alone.

Every claim is evaluated on the runs of each seed and names the settings it reads (init name and gain,
activation, depth); it passes if it holds in every seed unless its ``rule`` says "effect > 2 standard
errors".

What did not reproduce at this scale (``regularizers``, 3 seeds, test error averaged over the last quarter
of training; no regularization: 4.1 %): the L2 penalty (5.1 %), the L1 penalty (5.2 %) and ±15° rotations
(4.8 %) *widen* the train–test error gap, decoupled weight decay leaves it unchanged (4.3 %) and the
confidence penalty narrows it by less than the seed-to-seed spread (4.0 %). Input noise narrows it on
average (6 seeds: −0.69 ± 0.34 points, mean ± standard error) but widens it in seed 3 (+0.11), and at the
quick preset's size (4 seeds) the effect is −0.47 ± 0.52: not a claim either. "The penalties keep the
weights smaller" is not a claim: a penalty on ‖W‖ cannot fail to shrink W at these strengths.
"""

from __future__ import annotations

import math

import numpy as np

from initlab.claims import NotApplicable, cfg, claim, layer_stat, one
from initlab.runs import Run

HANDBOOK = "Yandex ML handbook §5.4"


# -- shared helpers -------------------------------------------------------------------------------------
def hidden_layers(run: Run) -> int:
    """The number of hidden layers (the output layer is ``depth + 1`` in the probes)."""
    return int(cfg(run, "model.depth"))


# -- symmetry ---------------------------------------------------------------------------------------------
def prior_entropy(run: Run) -> float:
    """H(p) = −Σ_k p_k ln p_k of the class frequencies of the training examples the run evaluated.

    Logged by the run itself (``train_prior_entropy`` in summary.json). The loss of a net whose prediction q
    ignores the input is H(p) + KL(p‖q) ≥ H(p) (equality at q = p); for K balanced classes H(p) = ln K.
    """
    value = run.summary.get("train_prior_entropy")
    if value is None:
        raise NotApplicable(f"{run.path} has no train_prior_entropy in summary.json")
    return float(value)


def final_train_loss(run: Run) -> float:
    loss = run.summary.get("final_train_loss")
    if loss is None:
        raise NotApplicable(f"{run.path} did not finish")
    return float(loss)


@claim(
    preset="symmetry",
    source=HANDBOOK + ", approach №0",
    text="Zero init learns nothing but the class prior: its training loss ends at the prior's entropy H(p)",
    threshold="0 ≤ final train loss − H(p) ≤ 0.01 nats (it cannot go below H(p))",
    passes=lambda v: -1e-4 <= v <= 0.01,
)
def zeros_loss_at_prior_entropy(runs: list[Run]) -> float:
    """Final training loss of the zero-init run minus the entropy of the training labels, in nats.

    With W = 0 and b = 0 every hidden output is tanh(0) = 0, so ∂L/∂W = 0 in every layer and only the output
    bias moves: the softmax converges to the class frequencies p and the loss to H(p).
    """
    run = one(runs, init__name="zeros", act__name="tanh")
    return final_train_loss(run) - prior_entropy(run)


@claim(
    preset="symmetry",
    source=HANDBOOK + ", approach №0",
    text="Zero and constant init keep the units of every hidden layer identical throughout training",
    threshold="largest distance between two units' incoming weights < 1e-6 at every probed step "
    "(random init: ≈ 3)",
    passes=lambda v: v < 1e-6,
)
def constant_units_stay_identical(runs: list[Run]) -> float:
    """max over the zeros/constant runs, hidden layers and probed steps of the ``unit_distance`` max."""
    worst = -math.inf
    for name in ("zeros", "constant"):
        run = one(runs, init__name=name, act__name="tanh")
        rows = run.layers
        if rows.empty or "unit_distance" not in set(rows.quantity):
            raise NotApplicable(f"{run.path} has no unit_distance probes (probe.unit_distance=true)")
        rows = rows[(rows.quantity == "unit_distance") & (rows.layer <= hidden_layers(run))]
        worst = max(worst, float(rows["max"].max()))
    return worst


@claim(
    preset="symmetry",
    source=HANDBOOK + ", approach №0",
    text="A random init breaks the symmetry and learns: its training loss falls well below H(p)",
    threshold="final train loss − H(p) < −0.1 nats (ten times the zero-init tolerance, the other way)",
    passes=lambda v: v < -0.1,
)
def random_init_beats_prior(runs: list[Run]) -> float:
    """Final training loss of the Xavier-init (gain 1) tanh run minus H(p), in nats."""
    run = one(runs, init__name="xavier", init__gain=1.0, act__name="tanh")
    return final_train_loss(run) - prior_entropy(run)


# -- weight decay: L2 penalty vs decay, the deterministic part ------------------------------------------
FLOAT_TOLERANCE = 1e-5  # relative: ~100 float32 roundings (2^-23 ≈ 1.2e-7) accumulated over the run


def _penalty_runs(runs: list[Run], optimizer: str) -> tuple[Run, Run]:
    """(the L2-penalty run, the weight-decay run) of ``optimizer`` in this seed, with decay = 2λ."""
    l2 = one(runs, penalty="l2", optim__name=optimizer, **{"optim__weight_decay": 0.0})
    decay = one(runs, penalty="decay", optim__name=optimizer, **{"reg__l2": 0.0})
    lam, wd = float(cfg(l2, "reg.l2")), float(cfg(decay, "optim.weight_decay"))
    if not math.isclose(wd, 2 * lam):
        raise NotApplicable(f"needs weight decay = 2λ (got λ = {lam:g}, decay {wd:g})")
    if optimizer == "sgd" and float(cfg(l2, "optim.momentum") or 0) != float(
        cfg(decay, "optim.momentum") or 0
    ):
        raise NotApplicable("needs the same optim.momentum in both runs")
    return l2, decay


def loss_curve_difference(a: Run, b: Run) -> float:
    """max over evaluations of |test loss(a) − test loss(b)| / |test loss(a)| (same evaluated steps)."""
    la, lb = (run.curve("test").set_index("step")["loss"] for run in (a, b))
    if la.empty or not la.index.equals(lb.index):
        raise NotApplicable(f"needs test-loss curves at the same steps in {a.path} and {b.path}")
    return float(((la - lb).abs() / la.abs()).max())


@claim(
    preset="weight_decay",
    source=HANDBOOK + "; Goodfellow et al. 2016 §7.1.1",
    text="Plain SGD: the L2 penalty λ‖W‖² and weight decay 2λ give the same trajectory (largest relative "
    "difference of the test loss over the run)",
    threshold=f"< {FLOAT_TOLERANCE:g} (float tolerance; theory: 0, since ∂(λ‖W‖²)/∂W = 2λW)",
    passes=lambda v: v < FLOAT_TOLERANCE,
)
def sgd_l2_is_weight_decay(runs: list[Run]) -> float:
    return loss_curve_difference(*_penalty_runs(runs, "sgd"))


@claim(
    preset="weight_decay",
    source="Loshchilov & Hutter 2019 (AdamW); " + HANDBOOK,
    text="Adam: the L2 penalty λ‖W‖² and decoupled weight decay 2λ (AdamW) give different trajectories "
    "(largest relative difference of the test loss over the run)",
    threshold=f"> {100 * FLOAT_TOLERANCE:g}, a hundred times the float tolerance (Adam rescales the "
    "penalty's gradient, not the decoupled decay)",
    passes=lambda v: v > 100 * FLOAT_TOLERANCE,
)
def adam_l2_is_not_weight_decay(runs: list[Run]) -> float:
    return loss_curve_difference(*_penalty_runs(runs, "adamw"))


# -- self-normalizing networks -----------------------------------------------------------------------------
KLAMBAUER = "Klambauer et al. 2017, Theorem 1"


SNN_NET = {"init__name": "lecun", "init__distribution": "normal", "model__depth": 32}


def step0_act(runs: list[Run], act: str, stat: str) -> np.ndarray:
    """``stat`` of every hidden layer's activations at step 0, for the LeCun-normal run of ``act``."""
    run = one(runs, act__name=act, **SNN_NET)
    values = layer_stat(run, "act", stat, 0)
    return values[values.index <= hidden_layers(run)].to_numpy()


def step0_preact_variance(runs: list[Run], act: str) -> np.ndarray:
    """Var[s^l] of every hidden layer l = 1..L at step 0, for the LeCun-normal run of ``act``."""
    run = one(runs, act__name=act, **SNN_NET)
    std = layer_stat(run, "preact", "std", 0)
    return (std[std.index <= hidden_layers(run)] ** 2).to_numpy()


def tanh_variance_map(q: float, nodes: int = 101) -> float:
    """E[tanh(√q·z)²], z ~ N(0, 1) (Gauss-Hermite quadrature): Var[s^(l+1)] from Var[s^l] = q under
    Var[W] = 1/n_in and zero biases (the mean-field recurrence of Poole et al. 2016)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return float((w * np.tanh(np.sqrt(q) * x) ** 2).sum() / w.sum())


@claim(
    preset="self_normalizing",
    source=KLAMBAUER,
    text="SELU + LeCun normal init keeps every layer's activation mean within ±0.1 of 0 (32 layers)",
    threshold="largest absolute mean over layers ≤ 0.1 (the theorem's domain μ ∈ [−0.1, 0.1])",
    passes=lambda v: v <= 0.1,
)
def selu_mean_stays_zero(runs: list[Run]) -> float:
    return float(np.abs(step0_act(runs, "selu", "mean")).max())


@claim(
    preset="self_normalizing",
    source=KLAMBAUER,
    text="SELU + LeCun normal init keeps every layer's activation variance near 1 (32 layers)",
    threshold="the variance farthest from 1 (in ratio) lies in [0.8, 1.5] (the theorem's domain for ν)",
    passes=lambda v: 0.8 <= v <= 1.5,
)
def selu_variance_stays_one(runs: list[Run]) -> float:
    variances = step0_act(runs, "selu", "std") ** 2
    return float(variances[np.argmax(np.abs(np.log(variances)))])


@claim(
    preset="self_normalizing",
    source="He et al. 2015, Eq. 10 (ReLU with LeCun's Var[W] = 1/n_in)",
    text="With the same init ReLU halves the pre-activation variance at every layer (per-layer ratio, "
    "geometric mean over the 32 layers)",
    threshold="within [0.4, 0.6] (theory: ½·n·Var[W] = ½)",
    passes=lambda v: 0.4 <= v <= 0.6,
)
def relu_lecun_halves_variance(runs: list[Run]) -> float:
    variance = step0_preact_variance(runs, "relu")
    return float((variance[-1] / variance[0]) ** (1.0 / (len(variance) - 1)))


@claim(
    preset="self_normalizing",
    source="Poole et al. 2016 (mean-field recurrence); Klambauer et al. 2017, §2",
    text="With the same init tanh has no fixed point at variance 1: Var[s^L] follows the recurrence "
    "q_(l+1) = E[tanh(√q_l·z)²] from the measured q_1 to ≈ 1/(2L) (measured / predicted at layer 32)",
    threshold="within [0.8, 1.25] (theory: 1)",
    passes=lambda v: 0.8 <= v <= 1.25,
)
def tanh_variance_follows_mean_field(runs: list[Run]) -> float:
    variance = step0_preact_variance(runs, "tanh")
    q = float(variance[0])
    for _ in range(len(variance) - 1):
        q = tanh_variance_map(q)
    return float(variance[-1] / q)


# -- LSUV -------------------------------------------------------------------------------------------------
MISHKIN = "Mishkin & Matas 2016, Algorithm 1"
EARLY_STEPS = 100  # "a faster start": the evaluations up to this step (the orthonormal ReLU net's plateau)


def lsuv_run(runs: list[Run]) -> Run:
    return one(runs, init__name="lsuv", act__name="relu")


def orthonormal_run(runs: list[Run], depth: int) -> Run:
    return one(runs, init__name="orthogonal", init__gain=1.0, act__name="relu", model__depth=depth)


@claim(
    preset="lsuv",
    source=MISHKIN,
    text="LSUV's unit variance holds on held-out examples: each layer's step-0 pre-activation variance ≈ 1",
    threshold="largest distance of Var from 1 over layers < init.tol = 0.1, on a fixed batch of test "
    "examples the rescaling never saw",
    passes=lambda v: v < 0.1,
)
def lsuv_variance_on_held_out_batch(runs: list[Run]) -> float:
    """max over layers (output layer included) of |std² − 1| of ``preact`` at step 0 of the LSUV ReLU run.

    LSUV measured the variance on the first ``init.batch_size`` training examples; the probe with
    ``probe.fixed_batch`` reads test examples the rescaling never saw.
    """
    run = lsuv_run(runs)
    if not cfg(run, "probe.fixed_batch"):
        raise NotApplicable(f"needs a fixed held-out probe batch (probe.fixed_batch) in {run.path}")
    variance = layer_stat(run, "preact", "std", 0) ** 2
    return float((variance - 1.0).abs().max())


def early_test_error(run: Run) -> float:
    """Mean test error over the evaluations at steps 1..EARLY_STEPS."""
    errors = [e for step, e in run.errors_by_step("test").items() if 0 < step <= EARLY_STEPS]
    if not errors:
        raise NotApplicable(f"needs test evaluations between steps 1 and {EARLY_STEPS} in {run.path}")
    return float(np.mean(errors))


@claim(
    preset="lsuv",
    source="Mishkin & Matas 2016, Fig. 3 and Table 3 (LSUV converges faster than its orthonormal start)",
    text="ReLU: LSUV starts faster than the orthonormal start alone (mean test error over steps "
    f"1-{EARLY_STEPS}, LSUV minus orthonormal, percentage points)",
    threshold="< 0",
    passes=lambda v: v < 0,
)
def lsuv_starts_faster(runs: list[Run]) -> float:
    lsuv = lsuv_run(runs)
    return 100.0 * (early_test_error(lsuv) - early_test_error(orthonormal_run(runs, hidden_layers(lsuv))))


@claim(
    preset="lsuv",
    source="He et al. 2015, Eq. 10 (why LSUV rescales)",
    text="The orthonormal start alone loses half the variance per ReLU layer: ½·n·Var[w] = ½",
    threshold="per-layer variance ratio (geometric mean over the hidden layers) in [0.4, 0.6]",
    passes=lambda v: 0.4 <= v <= 0.6,
)
def orthonormal_relu_halves_variance(runs: list[Run]) -> float:
    """(Var_L / Var_1)^(1/(L−1)) of the step-0 pre-activations of the orthonormal (gain 1) ReLU run.

    With an orthogonal W (gain 1), E‖Wx‖² = ‖x‖², and ReLU keeps half the second moment of a symmetric
    pre-activation, so each layer multiplies the variance by about ½.
    """
    run = one(runs, init__name="orthogonal", init__gain=1.0, act__name="relu")
    depth = hidden_layers(run)
    variance = layer_stat(run, "preact", "std", 0) ** 2
    return float((variance[depth] / variance[1]) ** (1.0 / (depth - 1)))
