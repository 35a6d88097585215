"""The claims framework and `initlab check`, on hand-written run directories with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from initlab import claims
from initlab.cli import main
from initlab.runs import collect_runs


def write_run(path: Path, preset: str, init: str, accuracy: float, seed: int | None = None) -> None:
    (path / ".hydra").mkdir(parents=True)
    seed_line = "" if seed is None else f"seed: {seed}\n"
    (path / ".hydra" / "config.yaml").write_text(f"preset: {preset}\n{seed_line}init:\n  name: {init}\n")
    overrides = f"- init={init}\n" + ("" if seed is None else f"- seed={seed}\n")
    (path / ".hydra" / "overrides.yaml").write_text(overrides)
    (path / "summary.json").write_text(json.dumps({"status": "completed", "final_test_accuracy": accuracy}))
    layers = pd.DataFrame(
        {"step": [0, 0, 0], "layer": [1, 2, 3], "quantity": ["act"] * 3, "std": [1.0, 0.5, 0.25]}
    )
    layers.to_parquet(path / "layers.parquet")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> list[claims.Claim]:
    """An empty claim registry holding only what a test registers."""
    fresh: list[claims.Claim] = []
    monkeypatch.setattr(claims, "CLAIMS", fresh)
    monkeypatch.setattr(claims, "MODULES", ())
    return fresh


def test_check_evaluates_registered_claims_and_writes_markdown(tmp_path, registry, capsys) -> None:
    write_run(tmp_path / "0", "toy", "standard", 0.60)
    write_run(tmp_path / "1", "toy", "xavier", 0.90)
    write_run(tmp_path / "2", "other", "xavier", 0.10)

    @claims.claim("toy", "Toy 2026, Fig. 1", "xavier beats standard", "error ratio < 1", lambda v: v < 1)
    def error_ratio(runs):
        x = claims.final_test_error(claims.one(runs, init__name="xavier"))
        s = claims.final_test_error(claims.one(runs, init__name="standard"))
        return x / s

    @claims.claim(
        "toy", "Toy 2026, Fig. 2", "std halves per layer", "ratio in [0.4, 0.6]", lambda v: 0.4 <= v <= 0.6
    )
    def std_ratio(runs):
        std = claims.layer_stat(claims.one(runs, init__name="standard"), "act", "std")
        return float((std.iloc[1:].to_numpy() / std.iloc[:-1].to_numpy()).mean())

    @claims.claim("toy", "Toy 2026, Fig. 3", "an impossible claim", "value > 1", lambda v: v > 1)
    def impossible(runs):
        return 0.0

    @claims.claim("toy", "Toy 2026", "needs jacobians", "any", lambda v: True)
    def needs_jacobian(runs):
        return float(claims.layer_stat(runs[0], "jacobian", "mean").mean())

    @claims.claim("toy", "Toy 2026", "reads a missing column", "any", lambda v: True)
    def broken(runs):
        return float(runs[0].metrics["no_such_column"].mean())

    @claims.claim("absent", "Nobody", "not in these runs", "any", lambda v: True)
    def absent(runs):
        raise AssertionError("must not be evaluated")

    code = main(["check", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1  # one claim fails
    results = {
        r.claim.name: r
        for r in claims.evaluate([__import__("initlab").load_run(tmp_path / d) for d in "012"])
    }
    assert results["error_ratio"].value == pytest.approx(0.1 / 0.4) and results["error_ratio"].passed
    assert results["std_ratio"].value == pytest.approx(0.5) and results["std_ratio"].passed
    assert results["impossible"].passed is False
    assert results["needs_jacobian"].passed is None and "no jacobian probes" in results["needs_jacobian"].note
    assert results["broken"].passed is False and "KeyError" in results["broken"].note
    assert "absent" not in results
    table = (tmp_path / "claims.md").read_text()
    assert (
        "| xavier beats standard | Toy 2026, Fig. 1 | -: 0.25 | 0.25 (n=1) | every seed "
        "| error ratio < 1 | pass |" in table
    )
    assert "**FAIL**" in table and "claims: 2 passed, 2 failed, 1 skipped" in out


def test_check_without_applicable_claims(tmp_path, registry, capsys) -> None:
    write_run(tmp_path / "0", "toy", "standard", 0.5)
    assert main(["check", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == "initlab check: error: no claim applies to these runs (presets: toy)\n"
    assert captured.out == ""


def test_check_without_runs(tmp_path, capsys) -> None:
    assert main(["check", str(tmp_path / "nothing")]) == 2
    captured = capsys.readouterr()
    assert "initlab check: error: no runs found" in captured.err and captured.out == ""


def test_check_with_claims_skipped_is_incomplete(tmp_path, registry, capsys) -> None:
    """No claim failed, but one was skipped in a seed and one needs more seeds: exit 3, said last."""
    seeded_sweep(tmp_path, {0: (0.5, 0.7)})
    register_gap(claims.TWO_SE)  # one seed: the rule needs two

    assert main(["check", str(tmp_path)]) == claims.EXIT_INCOMPLETE == 3
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "claims: 0 passed, 0 failed, 1 skipped; incomplete: see the skipped rows (exit status 3)"


def test_check_decided_on_some_seeds_only_is_incomplete(tmp_path, registry, capsys) -> None:
    seeded_sweep(tmp_path, {0: (0.5, 0.7), 1: (0.5, 0.6)})
    (tmp_path / "3").rename(tmp_path / "seed1-xavier-moved")  # seed 1's xavier run: not a run any more
    (tmp_path / "seed1-xavier-moved" / "summary.json").unlink()
    register_gap(claims.EVERY_SEED)

    code = main(["check", str(tmp_path)])
    last = capsys.readouterr().out.splitlines()[-1]
    assert code == 3 and last.startswith(
        "claims: 1 passed, 0 failed, 0 skipped (1 decided on only some seeds)"
    )


def test_check_all_passed_is_zero_and_a_failure_wins_over_skips(tmp_path, registry, capsys) -> None:
    seeded_sweep(tmp_path, {0: (0.5, 0.7), 1: (0.5, 0.6)})
    register_gap(claims.EVERY_SEED)
    assert main(["check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "claims: 1 passed, 0 failed, 0 skipped"

    @claims.claim("toy", "Toy 2026", "never measurable", "any", lambda v: True)
    def never(runs):
        raise claims.NotApplicable("no such probes")

    @claims.claim("toy", "Toy 2026", "wrong", "> 1", lambda v: v > 1)
    def wrong(runs):
        return 0.0

    assert main(["check", str(tmp_path)]) == 1


def seeded_sweep(tmp_path: Path, accuracies: dict[int, tuple[float, float]]) -> list:
    """A toy sweep: per seed, a standard and a xavier run with the given (standard, xavier) accuracies."""
    job = 0
    for seed, (standard, xavier) in accuracies.items():
        for init, accuracy in (("standard", standard), ("xavier", xavier)):
            write_run(tmp_path / str(job), "toy", init, accuracy, seed=seed)
            job += 1
    return collect_runs([tmp_path])


def register_gap(rule: str) -> None:
    @claims.claim("toy", "Toy 2026", "xavier beats standard", "> 0", lambda v: v > 0, rule=rule)
    def gap(runs):  # error(standard) − error(xavier) in one seed
        error = claims.final_test_error
        return error(claims.one(runs, init__name="standard")) - error(claims.one(runs, init__name="xavier"))


def test_every_seed_rule_reports_each_seed_and_fails_if_one_seed_fails(tmp_path, registry, capsys) -> None:
    runs = seeded_sweep(tmp_path, {0: (0.5, 0.7), 1: (0.5, 0.6), 2: (0.6, 0.5)})
    register_gap(claims.EVERY_SEED)
    (result,) = claims.evaluate(runs)
    assert result.values == pytest.approx({"0": 0.2, "1": 0.1, "2": -0.1})
    assert result.value == pytest.approx(0.2 / 3) and result.std == pytest.approx(0.1527525, rel=1e-6)
    assert result.passed is False and result.note == "fails in 1 of 3 seeds"
    assert main(["check", str(tmp_path)]) == 1
    row = (tmp_path / "claims.md").read_text().splitlines()[-1]
    assert (
        "| 0: 0.2, 1: 0.1, 2: -0.1 | 0.06667 ± 0.15 (n=3) | every seed | > 0 | **FAIL** (fails in 1 of" in row
    )


def test_two_standard_errors_rule(tmp_path, registry) -> None:
    # Differences 0.2, 0.1, -0.1: mean 0.067, SE 0.088 -> 2 SE interval crosses 0: fails.
    runs = seeded_sweep(tmp_path / "a", {0: (0.5, 0.7), 1: (0.5, 0.6), 2: (0.6, 0.5)})
    register_gap(claims.TWO_SE)
    (result,) = claims.evaluate(runs)
    assert result.passed is False and "mean ± 2 SE = 0.06667 ± 0.176" in result.note
    # Differences 0.2, 0.1, 0.15: mean 0.15, SE 0.029: passes although no single seed decides.
    runs = seeded_sweep(tmp_path / "b", {0: (0.5, 0.7), 1: (0.5, 0.6), 2: (0.45, 0.6)})
    (result,) = claims.evaluate(runs)
    assert result.passed is True and result.value == pytest.approx(0.15)
    # One seed cannot give a standard error: skipped, not passed.
    (result,) = claims.evaluate(seeded_sweep(tmp_path / "c", {0: (0.5, 0.7)}))
    assert result.passed is None and "needs ≥ 2 seeds" in result.note


def test_one_refuses_to_pick_one_of_several_runs(tmp_path, registry) -> None:
    # Two sweeps of the same setting and seed checked together: the claim fails and says why.
    runs = seeded_sweep(tmp_path / "a", {0: (0.5, 0.7)}) + seeded_sweep(tmp_path / "b", {0: (0.5, 0.9)})
    register_gap(claims.EVERY_SEED)
    (result,) = claims.evaluate(runs)
    assert result.passed is False and "AmbiguousRuns: 2 runs with init.name=standard" in result.note
    with pytest.raises(claims.NotApplicable, match="needs a run with init.name=kaiming"):
        claims.one(runs, init__name="kaiming")


def test_seed_groups_hold_every_setting_once_per_seed(tmp_path) -> None:
    runs = seeded_sweep(tmp_path, {2: (0.5, 0.7), 10: (0.5, 0.6), 1: (0.6, 0.5)})
    groups = claims.seed_groups(runs)
    assert [seed for seed, _ in groups] == ["1", "2", "10"]
    for seed, group in groups:
        assert sorted(r.cfg("init.name") for r in group) == ["standard", "xavier"]
        assert {str(r.cfg("seed")) for r in group} == {seed}


def test_claim_rule_is_checked() -> None:
    with pytest.raises(ValueError, match="claim rule 'most seeds'"):
        claims.claim("toy", "Toy", "text", "> 0", lambda v: v > 0, rule="most seeds")


def test_a_seed_without_the_setting_is_skipped_and_named(tmp_path, registry) -> None:
    runs = seeded_sweep(tmp_path, {0: (0.5, 0.7), 1: (0.5, 0.6)})
    write_run(tmp_path / "9", "toy", "standard", 0.5, seed=2)  # seed 2 has no xavier run
    register_gap(claims.EVERY_SEED)
    (result,) = claims.evaluate(collect_runs([tmp_path]))
    assert result.values == pytest.approx({"0": 0.2, "1": 0.1, "2": None})
    assert result.passed is True and result.note == "skipped in seed 2: needs a run with init.name=xavier"
    assert len(runs) == 4
