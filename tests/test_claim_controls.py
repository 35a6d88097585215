"""Negative controls: every claim of the papers fails on a small deliberately wrong setup.

The setups are in ``tests/claim_controls.py``; the quick-preset tests show the same claims passing on the
right setups. Each wrong setup is one small sweep of the claim's quick preset (one seed unless the claim's
rule needs more), run in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from claim_controls import SWAPPED, SWAPPED_IN_WRONG_RUNS, WRONG_RUNS, swap_logs

from initlab import cli
from initlab.claims import evaluate_claim, load_claims
from initlab.runs import collect_runs

PAPER_SOURCES = ("glorot", "he", "ioffe", "srivastava", "handbook", "sparsity")
PAPER_MODULES = {f"initlab.claims.{m}" for m in PAPER_SOURCES}
CLAIMS = {c.name: c for c in load_claims() if c.measure.__module__ in PAPER_MODULES}

# One sweep per distinct wrong setup; the claims that share it are checked on the same runs.
SETUPS: dict[tuple[str, tuple[str, ...]], list[str]] = {}
for _name, _setup in WRONG_RUNS.items():
    SETUPS.setdefault(_setup, []).append(_name)


def test_every_claim_has_a_negative_control() -> None:
    assert set(CLAIMS) == set(WRONG_RUNS) | set(SWAPPED)
    assert not set(WRONG_RUNS) & set(SWAPPED) and set(SWAPPED_IN_WRONG_RUNS) <= set(WRONG_RUNS)
    assert all(CLAIMS[name].preset == preset for name, (preset, _) in WRONG_RUNS.items())


def run_sweep(preset: str, overrides: tuple[str, ...], sweep_dir: Path, monkeypatch) -> list:
    seeds = () if any(o.startswith("seed=") for o in overrides) else ("seed=0",)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    args = [f"experiment={preset}_quick", *overrides, *seeds, f"hydra.sweep.dir={sweep_dir}"]
    assert cli.main(["run", "-m", *args, "hydra/launcher=basic"]) == 0
    runs = collect_runs([sweep_dir])
    assert runs and all(r.summary["status"] == "completed" for r in runs)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("setup", list(SETUPS), ids=lambda s: f"{s[0]}:{' '.join(s[1])}")
def test_claims_fail_on_a_wrong_setup(setup, tmp_path, monkeypatch) -> None:
    preset, overrides = setup
    monkeypatch.chdir(tmp_path)
    runs = run_sweep(preset, overrides, tmp_path / "sweep", monkeypatch)
    for name in SETUPS[setup]:
        swap = SWAPPED_IN_WRONG_RUNS.get(name)
        result = evaluate_claim(CLAIMS[name], swap_logs(runs, *swap) if swap else runs)
        print(f"{name}: {result.values} -> {result.passed} ({result.note})")
        assert result.passed is False, f"{name} did not fail: {result.values} ({result.note})"
