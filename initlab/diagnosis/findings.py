"""The doctor's checks: one small named function each, and a registry of rows that carry their facts.

Each row of :data:`CHECKS` names what it measures, the threshold, where the threshold comes from (a paper,
the mean-field theory, a rule of thumb -- labeled as such) and the fixes it suggests (keys of
:data:`initlab.diagnosis.fixes.FIXES`). Its function (:mod:`~initlab.diagnosis.checks`) reads the
:class:`~initlab.diagnosis.examine.Evidence`.

==================  ===================================================================================
forward_signal      Var[s] of the last hidden layer's pre-activations over the first's, at step 0; kept
                    at 1 by ½·n·Var[W] = 1 (He et al. 2015 Eq. 10) or n·Var[W] = 1 (Glorot & Bengio 2010
                    Eqs. 12–13); Xavier with ReLU gives 2^−L. Flagged outside [e^−6, e^6] = [0.0025, 403]:
                    a variance changing by r per layer has the depth scale ξ = 1/|ln r|, and the net is
                    deeper than Schoenholz et al.'s trainable 6·ξ exactly when r^L leaves that band.
backward_gradient   Var[∂L/∂s] of the first hidden layer over the last's (toward the input), step 0;
                    Glorot & Bengio Eq. 14, Figs. 7–8. Same band (ξ_∇ = −1/ln χ₁ for the gradients).
dead_units          the share of a site's units that are 0 on every example of every probed batch of the
                    second half of the run (Lu et al. 2019); flagged above 1/2 (rule of thumb, well above
                    the 17–34 % a healthy Kaiming ReLU net of depth 20–30 shows on one batch of 32).
saturated_units     the share of a bounded activation's values past its knee (tanh |a| > 0.99 where
                    tanh′ = 0.02; sigmoid a < 0.01 or > 0.99; softsign |a| > 0.9), second half of the run
                    (Glorot & Bengio Figs. 2–4); flagged above 1/2 (rule of thumb).
symmetry            the rank of each weight after training; ≤ 1 means every unit of the layer computes
                    the same function (zero/constant init never breaks symmetry: Goodfellow et al. 2016
                    §8.4).
phase               depth against 6·ξ_c, ξ_c = −1/ln χ_c (Schoenholz et al. 2017, Fig. 5); initlab's
                    fully-connected nets only.
updates_large,      the median over probed steps of ‖ΔW‖/‖W‖ per weight against the rule of thumb 1e-3
updates_small       (Karpathy, CS231n notes; no paper gives it), flagged beyond two orders of magnitude
                    (above 1e-1, below 1e-5).
batch_norm_stats    per batch-norm layer, the rms over channels of (μ_B − μ_run)/σ_run and of
                    ln(σ²_B/σ²_run) over the second half (Ioffe & Szegedy 2015 §3.1: inference uses the
                    running averages); flagged above 0.5 and ln 2 (rule of thumb: half a standard deviation,
                    a factor 2 in variance).
divergence          a non-finite loss or probed value, or a loss that grows: the mean of the last quarter
                    of the losses above the first quarter's by more than 3 standard errors.
==================  ===================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from initlab.diagnosis.checks import (
    Result,
    backward_gradient,
    batch_norm_stats,
    dead_units,
    divergence,
    forward_signal,
    phase,
    saturated_units,
    symmetry,
    updates_large,
    updates_small,
)
from initlab.diagnosis.examine import Evidence


@dataclass(frozen=True)
class Source:
    kind: str  # paper | theory | rule of thumb | definition
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    measure: str
    threshold: str
    source: Source
    fixes: tuple[str, ...]
    run: Callable[[Evidence], Result | None]
    at_init: bool = False  # measured on the initialized net (step 0): still valid after a divergence


LN = "rule of thumb"
CHECKS: tuple[Check, ...] = (
    Check(
        "divergence",
        "training diverges",
        "non-finite loss or values; loss of the last quarter vs the first",
        "any non-finite value; growth beyond 3 standard errors",
        Source("definition", "—"),
        ("lower_lr", "kaiming", "xavier"),
        divergence,
        at_init=True,
    ),
    Check(
        "forward_signal",
        "forward signal vanishes or explodes with depth",
        "Var[s] of the last hidden layer / the first's, step 0",
        "outside [e^−6, e^6]",
        Source(
            "theory",
            "depth beyond 6·ξ (Schoenholz et al. 2017, Fig. 5) for the measured rate; per layer "
            "the healthy ratio is 1 (He et al. 2015 Eq. 10; Glorot & Bengio 2010 Eqs. 12–13)",
        ),
        ("kaiming", "xavier", "lsuv", "batch_norm"),
        forward_signal,
        at_init=True,
    ),
    Check(
        "backward_gradient",
        "back-propagated gradients shrink or grow toward the input",
        "Var[∂L/∂s] of the first hidden layer / the last's, step 0",
        "outside [e^−6, e^6]",
        Source(
            "theory",
            "depth beyond 6·ξ_∇ (Schoenholz et al. 2017) for the measured rate; n·Var[W] = 1 "
            "keeps ∂L/∂s (Glorot & Bengio 2010 Eq. 14, Figs. 7–8)",
        ),
        ("kaiming", "xavier", "lsuv"),
        backward_gradient,
        at_init=True,
    ),
    Check(
        "phase",
        "deeper than the trainable depth of its phase",
        "6·ξ_c, the trainable depth (mean field)",
        "6·ξ_c < depth",
        Source("theory", "Schoenholz et al. 2017, Fig. 5; χ₁ = 1 is critical (Poole et al. 2016)"),
        ("critical", "batch_norm"),
        phase,
        at_init=True,
    ),
    Check(
        "dead_units",
        "dead units",
        "share of a layer's units 0 on every example of every probed batch of the second half",
        "> 1/2",
        Source(
            LN,
            "well above the 17–34 % of a healthy Kaiming ReLU net "
            "of depth 20–30 on one batch of 32; Lu et al. 2019",
        ),
        ("lower_lr", "leaky_relu", "positive_bias"),
        dead_units,
    ),
    Check(
        "saturated_units",
        "saturated units",
        "share of tanh/sigmoid/softsign values past the knee (tanh′ < 0.02), second half",
        "> 1/2",
        Source(LN, "half of the layer; the knee from Glorot & Bengio 2010, Figs. 2–4"),
        ("xavier", "batch_norm"),
        saturated_units,
    ),
    Check(
        "symmetry",
        "symmetry never broken",
        "rank of each weight after training",
        "rank ≤ 1",
        Source(
            "theory",
            "identical units stay identical (Goodfellow et al. 2016 §8.4; the handbook, approach №0)",
        ),
        ("kaiming", "xavier"),
        symmetry,
    ),
    Check(
        "updates_large",
        "updates too large",
        "median ‖ΔW‖/‖W‖ per step",
        "> 1e-1",
        Source(LN, "≈ 1e-3 (Karpathy, CS231n notes); no paper gives it"),
        ("lower_lr",),
        updates_large,
    ),
    Check(
        "updates_small",
        "updates too small",
        "median ‖ΔW‖/‖W‖ per step",
        "< 1e-5",
        Source(LN, "≈ 1e-3 (Karpathy, CS231n notes); no paper gives it"),
        ("higher_lr",),
        updates_small,
    ),
    Check(
        "batch_norm_stats",
        "batch-norm statistics differ between training and evaluation",
        "rms of (μ_B − μ_run)/σ_run and of ln(σ²_B/σ²_run), second half",
        "> 0.5 or > ln 2",
        Source(LN, "inference uses the running averages (Ioffe & Szegedy 2015 §3.1)"),
        ("larger_batch", "bn_momentum"),
        batch_norm_stats,
    ),
)


def run_checks(ev: Evidence) -> tuple[list[dict[str, Any]], list[str]]:
    """Every applicable check as a plain dict (what ``doctor.json`` holds), findings first, and notes on
    the checks left out. After a divergence only the checks of the initialized net are kept: what the
    training showed afterwards is its consequence."""
    out, notes = [], []
    for check in CHECKS:
        if ev.diverged_at is not None and not check.at_init:
            notes.append(f"{check.key}: not assessed, the training diverged at step {ev.diverged_at}")
            continue
        result = check.run(ev)
        if result is None:
            continue
        out.append(
            {
                "key": check.key,
                "title": check.title,
                "measure": check.measure,
                "threshold": check.threshold,
                "source": str(check.source),
                "source_kind": check.source.kind,
                "fixes": list(check.fixes),
                **result.__dict__,
            }
        )
    if ev.theory.get("skipped"):
        notes.append(
            f"mean-field prediction: not applicable ({ev.theory['skipped']}); layers are compared "
            "with each other and with the ratio 1"
        )
    elif "rows" not in ev.theory:
        notes.append(
            "mean-field prediction: none for a user's model; layers are compared with each other "
            "and with the ratio 1"
        )
    return sorted(out, key=lambda r: not r["flagged"]), notes
