"""Srivastava et al. 2014, "Dropout: a simple way to prevent neural networks from overfitting" (JMLR).

Preset ``dropout`` (``conf/experiment/dropout.yaml``): MLPs of several depths and widths trained with all
hyper-parameters fixed, once without dropout and once with the paper's rates (retain 0.5 hidden, 0.8 input;
PyTorch drop probabilities 0.5 / 0.2), with the max-norm constraint ‖w‖₂ ≤ c in both. Their Fig. 4 shows
the test-error curves of six MNIST nets falling into two separate clusters, dropout below.

A run's test error here is the mean over the last quarter of its test evaluations (not just the last one),
so that one lucky or unlucky evaluation of a few hundred test examples does not decide a claim. Both claims
are evaluated on the runs of each seed (every architecture with and without dropout) and must hold in every
seed.
"""

from __future__ import annotations

import math

from initlab.claims import NotApplicable, claim
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
