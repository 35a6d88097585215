"""The claims framework and `initlab check`, on hand-written run directories with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from initlab import claims
from initlab.cli import main


def write_run(path: Path, preset: str, init: str, accuracy: float) -> None:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(f"preset: {preset}\ninit:\n  name: {init}\n")
    (path / ".hydra" / "overrides.yaml").write_text(f"- init={init}\n")
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
    assert "| xavier beats standard | Toy 2026, Fig. 1 | 0.25 | error ratio < 1 | pass |" in table
    assert "**FAIL**" in table and "claims: 2 passed, 2 failed, 1 skipped" in out


def test_check_without_applicable_claims(tmp_path, registry, capsys) -> None:
    write_run(tmp_path / "0", "toy", "standard", 0.5)
    assert main(["check", str(tmp_path)]) == 2
    assert "no claim applies" in capsys.readouterr().out


def test_check_without_runs(tmp_path, capsys) -> None:
    assert main(["check", str(tmp_path / "nothing")]) == 2
    assert "no runs found" in capsys.readouterr().out
