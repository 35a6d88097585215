"""Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks from overfitting" (JMLR).

Preset ``dropout`` (``conf/experiment/dropout.yaml``): MLPs of several depths and widths trained with all
hyper-parameters fixed, once without dropout and once with the paper's rates (retain 0.5 hidden, 0.8 input;
PyTorch drop probabilities 0.5 / 0.2), with the max-norm constraint ‖w‖₂ ≤ c in both. Their Fig. 4 shows
the test-error curves of six MNIST nets falling into two separate clusters, dropout below.

Preset ``dropout_retention``: their Fig. 9, the test error against the probability p of retaining a hidden
unit, (a) with n units per layer fixed and (b) with p·n fixed (n = (p·n)/p). Small p underfits with n
fixed; widening the layers by 1/p removes most of it.

Preset ``dropout_mc``: §7.5 and Fig. 11, Monte-Carlo model averaging over k dropout masks against the
weight-scaling rule (the eval-mode net), from each run's ``mc_dropout.parquet`` (``train.mc_masks``,
:mod:`initlab.lab.mc_dropout`). For a net linear between its dropout layers the mask average of the logits is
exactly the eval-mode output (§7.5's theory, linear case): the claim tests that exactness against the
sampling distribution of K masks, not Fig. 11's statement. With ReLUs weight scaling is an approximation
whose test error Fig. 11 shows matched by Monte-Carlo averaging from k ≈ 50 on. That second statement is
not a claim here: at 1000 masks the Monte-Carlo average of the ReLU nets erred slightly *more* than weight
scaling in every seed, by 1 to 4 of 898 test examples (up to 2.0 paired standard errors; README, "What
does not reproduce").

A run's test error here is the mean over the last quarter of its test evaluations (not just the last one),
so that one lucky or unlucky evaluation of a few hundred test examples does not decide a claim. Every claim
is evaluated on the runs of each seed and must hold in every seed.
"""

from __future__ import annotations

import math

import pandas as pd

from initlab.claims import NotApplicable, claim, one
from initlab.runs import Run

SOURCE = "Srivastava et al. 2014, Fig. 4"


def late_test_error(run: Run) -> float:
    """Mean test error over the last quarter of the run's test evaluations (1 − accuracy, a fraction)."""
    return run.late_errors()[1]


# What the comparison assumes: every net has the same max-norm constraint and the same init (He init for ReLU
# nets, the activation's gain), with or without dropout; only dropout differs.
SETTINGS = ("act.name", "init.name", "init.gain", "reg.max_norm", "optim.lr")


def errors_by_architecture(runs: list[Run]) -> dict[tuple[int, int], dict[bool, list[float]]]:
    """(depth, width) -> {with dropout?: [late test error of each run]}, over the runs of one seed.

    NotApplicable if the runs differ in anything of :data:`SETTINGS` or have no max-norm constraint.
    """
    for key in SETTINGS:
        if len({repr(run.cfg(key)) for run in runs}) > 1:
            raise NotApplicable(f"needs the same {key} in every run (only dropout may differ)")
    if not runs[0].cfg("reg.max_norm"):
        raise NotApplicable("needs the max-norm constraint (reg.max_norm) the paper trains with")
    table: dict[tuple[int, int], dict[bool, list[float]]] = {}
    for run in runs:
        arch = (int(run.cfg("model.depth")), int(run.cfg("model.width")))
        dropout = float(run.cfg("model.dropout") or 0) > 0 or float(run.cfg("model.input_dropout") or 0) > 0
        table.setdefault(arch, {False: [], True: []})[dropout].append(late_test_error(run))
    paired = {arch: e for arch, e in table.items() if e[False] and e[True]}
    if not paired:
        raise NotApplicable("no architecture was trained both with and without dropout")
    return paired


@claim(
    preset="dropout",
    source=SOURCE,
    text="The test errors form two separate clusters: every net with dropout beats every net without",
    threshold="> 0: best no-dropout error − worst dropout error, in percentage points",
    passes=lambda v: v > 0,
)
def dropout_clusters_separate(runs: list[Run]) -> float:
    """min(test error without dropout) − max(test error with dropout), in percentage points."""
    table = errors_by_architecture(runs)
    without = [e for errs in table.values() for e in errs[False]]
    with_ = [e for errs in table.values() for e in errs[True]]
    return 100.0 * (min(without) - max(with_))


@claim(
    preset="dropout",
    source="Srivastava et al. 2014, Fig. 4 and Table 9",
    text="Dropout lowers the test error of each architecture by at least a fifth (on average)",
    threshold="≥ 0.20 mean relative reduction (paper: 0.22 in Table 9, max-norm in both; ≈ 0.35 in Fig. 4)",
    passes=lambda v: v >= 0.20,
)
def dropout_relative_reduction(runs: list[Run]) -> float:
    """Mean over architectures of 1 − error(dropout) / error(no dropout)."""
    table = errors_by_architecture(runs)
    ratios = [
        1.0 - (sum(e[True]) / len(e[True])) / (sum(e[False]) / len(e[False]))
        for e in table.values()
        if sum(e[False]) > 0
    ]
    return sum(ratios) / len(ratios) if ratios else math.nan


# -- dropout_retention: Fig. 9, test error against the retention probability p ----------------------------
FIG9 = "Srivastava et al. 2014, Fig. 9"


def retention_error(runs: list[Run], retain: float, scaling: str) -> float:
    """Late test error (%) of the run with hidden retention ``retain`` (PyTorch drop 1 − p) under ``scaling``.

    ``scaling`` is ``fixed_n`` (Fig. 9a) or ``fixed_pn`` (Fig. 9b); the net is the preset's ReLU/He-init one.
    """
    run = one(
        runs,
        scaling=scaling,
        model__dropout=round(1.0 - retain, 6),
        act__name="relu",
        init__name="kaiming",
        init__gain=None,
    )
    return 100.0 * late_test_error(run)


@claim(
    preset="dropout_retention",
    source=FIG9 + "(a)",
    text="Fixed n: retaining only 10 % of the hidden units underfits (late test error at p = 0.1 minus at "
    "p = 0.5, percentage points)",
    threshold="> 0 (paper: the error rises steeply below p ≈ 0.4)",
    passes=lambda v: v > 0,
)
def low_retention_underfits(runs: list[Run]) -> float:
    return retention_error(runs, 0.1, "fixed_n") - retention_error(runs, 0.5, "fixed_n")


@claim(
    preset="dropout_retention",
    source=FIG9 + "(b)",
    text="Fixed p·n: widening the layers to n = (p·n)/p lowers the error at p = 0.1 (error with p·n fixed "
    "minus error with n fixed, percentage points)",
    threshold="< 0 (paper: at small p the fixed-p·n nets err much less)",
    passes=lambda v: v < 0,
)
def fixed_pn_helps_low_retention(runs: list[Run]) -> float:
    return retention_error(runs, 0.1, "fixed_pn") - retention_error(runs, 0.1, "fixed_n")


# -- dropout_mc: §7.5 / Fig. 11, Monte-Carlo model averaging against the weight-scaling rule -----------------
MC_THEORY = "Srivastava et al. 2014, §7.5 (theory, linear case)"
MIN_MASKS = 30  # enough masks for the sample std and a finite variance of t² (ν = K − 1 > 4)
MAX_Z2_DEVIATION = 2.0  # standard errors: the rule "within 2 SE" of the theory's value


def t2_expected(k: int) -> float:
    """E[t²] = ν/(ν − 2) of a Student-t with ν = k − 1 degrees of freedom (the t statistic of k samples)."""
    nu = k - 1
    return nu / (nu - 2)


def mc_table(run: Run) -> tuple[int, pd.Series]:
    """(K, the mc_dropout.parquet row at k = K) of a run trained with dropout and ``train.mc_masks=K``."""
    if not (float(run.cfg("model.dropout") or 0) > 0 or float(run.cfg("model.input_dropout") or 0) > 0):
        raise NotApplicable("needs a net trained with dropout (model.dropout or model.input_dropout > 0)")
    table = run.mc_averaging()
    k = int(table.index.max())
    return k, table.loc[k]


@claim(
    preset="dropout_mc",
    source=MC_THEORY + ": E_m[W·(m⊙x)/q] = W·x",
    text="Linear net: the mean logits over K dropout masks scatter about the eval-mode (weight-scaling) "
    "logits as sampling alone predicts: the mean over the test logits of t² = ((mean − eval) / SE)² "
    "minus E[t²] = ν/(ν−2), ν = K − 1, in standard errors of that mean",
    threshold=f"|·| ≤ {MAX_Z2_DEVIATION:g} (theory: 0 ± 1 where the mask average is exact; a bias b adds "
    "K·b²/s² to t²)",
    passes=lambda v: abs(v) <= MAX_Z2_DEVIATION,
)
def mc_linear_mask_average_is_eval_output(runs: list[Run]) -> float:
    """(z2_mean − ν/(ν − 2)) / z2_se at k = K of the act=linear net, ν = K − 1.

    Theory: a linear net (identity activations, no norm or eval-mode batch norm) is multilinear in its
    independent masks, so the mask average of its logits is exactly the eval-mode output e. The mean m of K
    sampled logits then has expectation e, and t = (m − e)/(s/√K), s the sample std of the K samples, is
    Student-t with ν = K − 1 degrees of freedom (normal samples; the mean of K masks is close to normal by
    the central limit theorem), whose second moment is E[t²] = ν/(ν − 2). ``z2_mean`` is the mean of t² over
    the test logits, ``z2_se`` its standard error from the spread over test examples (examples have
    independent masks; an example's logits are correlated), so under exactness
    (z2_mean − ν/(ν − 2)) / z2_se is ≈ N(0, 1) and the rule is |·| ≤ 2 in every seed. A bias b of the
    mask average adds K·b²/s² to E[t²], which for K = 1000 masks is far beyond 2 standard errors
    (:mod:`initlab.lab.mc_dropout`).
    """
    k, row = mc_table(one(runs, act__name="linear"))
    if k < MIN_MASKS:
        raise NotApplicable(f"needs train.mc_masks >= {MIN_MASKS} (the standard error's sample std)")
    if "z2_mean" not in row.index:
        raise NotApplicable("needs z2_mean and z2_se in mc_dropout.parquet (rerun with train.mc_masks)")
    return float((row["z2_mean"] - t2_expected(k)) / row["z2_se"])
