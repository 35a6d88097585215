"""Glorot & Bengio 2010, Fig. 4: the folded |a| histogram and the two claims on hand-made histograms.

The claims also run on the quick preset's runs (``tests/test_claims_papers.py``) and fail on untrained nets
(``tests/claim_controls.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab.claims import NotApplicable, evaluate_claim, load_claims
from initlab.claims.glorot import abs_histogram, final_abs_mode
from initlab.runs import Run

CLAIMS = {c.name: c for c in load_claims()}
TANH_CLAIM = CLAIMS["glorot_saturation_tanh_final_peak_saturated"]
SOFTSIGN_CLAIM = CLAIMS["glorot_saturation_softsign_final_peak_at_knee"]


def hist_run(
    act: str,
    counts_by_step: dict[int, np.ndarray],
    edges=None,
    seed: int = 0,
    path="fake",
    status="completed",
) -> Run:
    """A 4-layer standard-init run whose layer-1 activation histogram is ``counts`` at each step."""
    edges = np.linspace(-1, 1, 101) if edges is None else edges
    hists = pd.DataFrame(
        [
            dict(step=step, layer=1, quantity="act", edges=edges, counts=counts, underflow=0, overflow=0)
            for step, counts in counts_by_step.items()
        ]
    )
    config = {"act": {"name": act}, "init": {"name": "standard"}, "model": {"depth": 4}, "seed": seed}
    return Run(Path(path), config=config, overrides=[], summary={"status": status}, hists=hists)


def peaked(center: float, width: float = 0.05, n: int = 4096) -> np.ndarray:
    """Counts over 100 bins of [-1, 1] of values at ±center (half each) spread by ``width``."""
    values = np.random.default_rng(0).normal(center, width, n) * np.repeat([1, -1], n // 2)
    return np.histogram(np.clip(values, -1, 1), bins=np.linspace(-1, 1, 101))[0]


def test_abs_histogram_folds_the_two_signs_into_bins_of_0_1() -> None:
    counts = np.zeros(100)
    counts[[85, 14]] = [30, 10]  # [0.70, 0.72) and [-0.72, -0.70): both |a| in [0.7, 0.8)
    counts[99] = 40  # [0.98, 1]
    counts[50] = 20  # [0, 0.02)
    mass = abs_histogram(hist_run("softsign", {7: counts}), layer=1)
    expected = np.zeros(10)
    expected[[7, 9, 0]] = [0.4, 0.4, 0.2]
    np.testing.assert_allclose(mass, expected, atol=1e-12)


def test_abs_histogram_spreads_a_stored_bin_evenly_across_the_new_edges() -> None:
    # 4 stored bins of width 0.5: [0.5, 1] holds everything, so each 0.1-bin of |a| from 0.5 up gets 1/5
    mass = abs_histogram(hist_run("tanh", {3: np.array([0, 0, 0, 10])}, edges=np.linspace(-1, 1, 5)), layer=1)
    np.testing.assert_allclose(mass, [0, 0, 0, 0, 0, 0.2, 0.2, 0.2, 0.2, 0.2], atol=1e-12)


def test_the_mode_is_read_at_the_last_probed_step() -> None:
    run = hist_run("softsign", {0: peaked(0.05), 5000: peaked(0.73), 100: peaked(0.97)})
    assert final_abs_mode(run) == pytest.approx(0.75)
    assert np.argmax(abs_histogram(run, 1, step=100)) == 9


def test_an_unfinished_run_has_no_end_of_training_histogram() -> None:
    run = hist_run("tanh", {0: peaked(0.05), 700: peaked(0.97)}, status="interrupted")
    with pytest.raises(NotApplicable, match="needs a completed run: fake is interrupted"):
        final_abs_mode(run)


def test_a_histogram_that_does_not_cover_the_range_is_not_applicable() -> None:
    run = hist_run("tanh", {0: np.ones(10)}, edges=np.linspace(-0.5, 0.5, 11))
    with pytest.raises(NotApplicable, match="does not cover"):
        final_abs_mode(run)


def fig4_runs(tanh_center: float, softsign_center: float) -> list[Run]:
    return [
        hist_run(act, {0: peaked(0.1), 3000: peaked(center)}, seed=seed, path=f"{act}{seed}")
        for seed in (0, 1)
        for act, center in (("tanh", tanh_center), ("softsign", softsign_center))
    ]


@pytest.mark.parametrize(
    ("tanh_center", "softsign_center", "tanh_passes", "softsign_passes"),
    [
        (0.97, 0.7, True, True),  # the paper's Fig. 4
        (0.7, 0.97, False, False),  # the two activations' logs exchanged
        (0.05, 0.05, False, False),  # untrained: both still peak at 0
        (0.85, 0.95, False, False),  # tanh short of ±1; softsign in its flat tail
        (0.95, 0.45, True, False),  # softsign still in its near-linear part
        (0.95, 0.85, True, True),  # the end of the knee (softsign after 10,000-20,000 updates)
        (0.95, 0.62, True, True),
    ],
)
def test_fig4_claims_on_hand_made_histograms(
    tanh_center, softsign_center, tanh_passes, softsign_passes
) -> None:
    runs = fig4_runs(tanh_center, softsign_center)
    tanh, softsign = evaluate_claim(TANH_CLAIM, runs), evaluate_claim(SOFTSIGN_CLAIM, runs)
    assert set(tanh.values) == set(softsign.values) == {"0", "1"}
    assert (tanh.passed, softsign.passed) == (tanh_passes, softsign_passes), (tanh.values, softsign.values)
