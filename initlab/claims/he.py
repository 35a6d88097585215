"""Claims of He, Zhang, Ren & Sun 2015, "Delving Deep into Rectifiers" (preset ``he_deep_relu``).

Forward propagation through a ReLU layer with zero-mean weights (their Eqs. 7-10):

    Var[s^(l+1)] = n_l · Var[W_l] · E[(x^l)²] = ½ · n_l · Var[W_l] · Var[s^l],

since x^l = max(0, s^l) keeps half of a symmetric s^l's second moment. Xavier's n·Var[W] = 1 (their
reading of Glorot & Bengio, gain 1) therefore halves the variance at every layer, 2^(-L) after L layers,
while Kaiming's ½·n·Var[W] = 1 keeps it. Their Fig. 3: a 30-layer ReLU net with Xavier init "completely
stalls" while Kaiming's converges; Fig. 2: at 22 layers both converge, Kaiming's sooner.

The measured per-layer ratio is the geometric mean of Var[s^(l+1)]/Var[s^l] over the hidden layers,
(Var[s^d] / Var[s^1])^(1/(d-1)), from the step-0 probe of the pre-activations.

Every claim names the runs it reads: ReLU, the depth, and the init with its gain ("Xavier" is
``init=xavier`` with gain 1, its default; "Kaiming" is ``init=kaiming`` with the activation's gain, null in
the config). A Xavier run with ReLU's gain √2 would be He's own init, and the claims skip it.

"Stalls", measured over the run: He et al.'s 30-layer Xavier net never converges in their Fig. 3. The
claim reads the Xavier net's test error averaged over every evaluation of the run (steps 0..T), which is
within 10 points of chance only if the net stays near chance for most of the run; a net that sits at
chance for a while and then learns (as the 30-layer MLP does here after several hundred updates at width
256) brings the average down. The quick preset (600 updates) and the full one (1500) measure different
lengths of the same curve; the README reports both.
"""

from __future__ import annotations

from initlab.claims import NotApplicable, claim, final_test_error, layer_stat, one
from initlab.runs import Run

CHANCE_ERROR = 0.9  # digits and the Gaussian task: 10 balanced classes
STALLED = 0.8  # test error at least this: within 10 points of chance
CONVERGED = 0.2  # test error at most this: the task is learnt (a linear model gets ~4 % on digits)


XAVIER = {"init__name": "xavier", "init__gain": 1.0, "act__name": "relu"}
KAIMING = {"init__name": "kaiming", "init__gain": None, "act__name": "relu"}


def variance_ratio_per_layer(run: Run) -> float:
    """Geometric mean over hidden layers of Var[s^(l+1)] / Var[s^l] at step 0."""
    std = layer_stat(run, "preact", "std", step=0)
    depth = int(run.cfg("model.depth"))
    return float((std.loc[depth] / std.loc[1]) ** (2.0 / (depth - 1)))


def errors_by_step(run: Run) -> dict[int, float]:
    """Test error at every evaluated step, in step order."""
    return run.errors_by_step("test")


@claim(
    preset="he_deep_relu",
    source="He et al. 2015, §2.2 (Eq. 10) and Fig. 3",
    text="30 ReLU layers, Xavier init (n·Var[W] = 1): the pre-activation variance halves at every layer "
    "(per-layer ratio at step 0, geometric mean over layers)",
    threshold="within [0.35, 0.65] (theory: 0.5, i.e. 2^-L after L layers)",
    passes=lambda v: 0.35 <= v <= 0.65,
)
def he_xavier_variance_halves(runs: list[Run]) -> float:
    return variance_ratio_per_layer(one(runs, model__depth=30, **XAVIER))


@claim(
    preset="he_deep_relu",
    source="He et al. 2015, §2.2 (Eq. 10)",
    text="30 ReLU layers, Kaiming init (½·n·Var[W] = 1): the pre-activation variance holds "
    "(per-layer ratio at step 0, geometric mean over layers)",
    threshold="within [0.8, 1.25] (theory: 1)",
    passes=lambda v: 0.8 <= v <= 1.25,
)
def he_kaiming_variance_holds(runs: list[Run]) -> float:
    return variance_ratio_per_layer(one(runs, model__depth=30, **KAIMING))


@claim(
    preset="he_deep_relu",
    source="He et al. 2015, Fig. 3",
    text="30 ReLU layers: Kaiming's net converges (final test error)",
    threshold=f"≤ {CONVERGED}",
    passes=lambda v: v <= CONVERGED,
)
def he_30_layers_kaiming_converges(runs: list[Run]) -> float:
    return final_test_error(one(runs, model__depth=30, **KAIMING))


@claim(
    preset="he_deep_relu",
    source="He et al. 2015, Fig. 3",
    text="30 ReLU layers: Xavier's net stalls over the run (its test error averaged over every evaluation "
    "of the run, step 0 to the end)",
    threshold=f"≥ {STALLED} (within 10 points of chance, {CHANCE_ERROR:.0%}; paper: never converges)",
    passes=lambda v: v >= STALLED,
)
def he_30_layers_xavier_stalls(runs: list[Run]) -> float:
    errors = errors_by_step(one(runs, model__depth=30, **XAVIER))
    if not errors:
        raise NotApplicable("needs test evaluations of the 30-layer Xavier run")
    return float(sum(errors.values()) / len(errors))


@claim(
    preset="he_deep_relu",
    source="He et al. 2015, Fig. 2 and §2.3 (the shallower control)",
    text="12 ReLU layers: both inits converge (the larger of the two final test errors)",
    threshold=f"≤ {CONVERGED}",
    passes=lambda v: v <= CONVERGED,
)
def he_12_layers_both_converge(runs: list[Run]) -> float:
    return max(final_test_error(one(runs, model__depth=12, **init)) for init in (XAVIER, KAIMING))
