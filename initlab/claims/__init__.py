"""The papers' claims as small functions over logged data, and ``initlab check DIR``.

A claim names its experiment preset (``conf/experiment/<preset>.yaml``; the preset sets the top-level
``preset`` key, so every run knows which one made it), its source (paper, figure), the statement in words,
a measure -- a function from the preset's runs to one number -- and the pass condition on that number.
Thresholds come from the papers and from theory, not from tuning. ``initlab check`` evaluates every claim
whose preset appears among the runs, prints a table and writes it to ``DIR/claims.md``.

Claims live in one module per source (``glorot``, ``he``, ``he_conv``, ``ioffe``, ``srivastava``,
``handbook``, ``theory``) and register themselves with the :func:`claim` decorator.
"""

from __future__ import annotations

import argparse
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.runs import MissingData, Run, collect_runs

Measure = Callable[[list[Run]], float]

# The runs lack what a claim needs (e.g. a preset run without probes, no run with a setting): the claim is
# skipped. Readers of :class:`initlab.runs.Run` raise the same exception for missing data.
NotApplicable = MissingData


@dataclass(frozen=True)
class Claim:
    preset: str
    source: str
    text: str
    threshold: str
    passes: Callable[[float], bool]
    measure: Measure

    @property
    def name(self) -> str:
        return self.measure.__name__


CLAIMS: list[Claim] = []
MODULES = ("glorot", "he", "he_conv", "ioffe", "srivastava", "handbook", "theory")


def claim(preset: str, source: str, text: str, threshold: str, passes: Callable[[float], bool]):
    """Register the decorated measure as a claim about the runs of ``preset``."""

    def register(measure: Measure) -> Measure:
        CLAIMS.append(Claim(preset, source, text, threshold, passes, measure))
        return measure

    return register


def load_claims() -> list[Claim]:
    """Import every claims module (each registers its claims once) and return the registry."""
    for module in MODULES:
        try:
            importlib.import_module(f"initlab.claims.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"initlab.claims.{module}":
                raise
    return CLAIMS


# -- helpers for measures ------------------------------------------------------------------------------
def cfg(run: Run, key: str, default: Any = None) -> Any:
    """A dotted config value of a run, e.g. ``cfg(run, "init.name")``."""
    return run.cfg(key, default)


def select(runs: list[Run], **where: Any) -> list[Run]:
    """Runs whose config matches every ``key=value`` (dots written as double underscores: init__name)."""
    return [r for r in runs if all(r.cfg(k.replace("__", ".")) == v for k, v in where.items())]


def one(runs: list[Run], **where: Any) -> Run:
    """The first run matching ``where`` (the runs are in a stable order); NotApplicable if none."""
    found = select(runs, **where)
    if not found:
        raise NotApplicable(f"no run with {where}")
    return found[0]


def layer_stat(run: Run, quantity: str, stat: str, step: int | None = 0) -> pd.Series:
    """``stat`` of ``quantity`` per layer (index = layer) at ``step`` (None: the last probed step)."""
    return run.layer_stat(quantity, stat, step)


def final_test_error(run: Run) -> float:
    """1 − final test accuracy (NaN for a run without one)."""
    error = run.final_test_error()
    return math.nan if error is None else error


# -- evaluation ----------------------------------------------------------------------------------------
@dataclass
class Result:
    claim: Claim
    value: float | None
    passed: bool | None  # None: not applicable
    note: str = ""


def evaluate(runs: list[Run]) -> list[Result]:
    """Evaluate every claim whose preset made some of ``runs``."""
    presets = {cfg(r, "preset") for r in runs}
    results = []
    for c in load_claims():
        if c.preset not in presets:
            continue
        mine = [r for r in runs if cfg(r, "preset") == c.preset]
        try:
            value = float(c.measure(mine))
        except NotApplicable as exc:
            results.append(Result(c, None, None, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - broken or partial logs: this claim fails, the others run
            results.append(Result(c, None, False, f"{type(exc).__name__}: {exc}"))
            continue
        results.append(Result(c, value, bool(math.isfinite(value) and c.passes(value))))
    return results


def to_markdown(results: list[Result]) -> str:
    lines = ["| claim | source | measured | pass if | result |", "|---|---|---|---|---|"]
    for r in results:
        value = "n/a" if r.value is None else f"{r.value:.4g}"
        verdict = {True: "pass", False: "**FAIL**", None: f"skipped ({r.note})"}[r.passed]
        if r.passed is False and r.note:
            verdict += f" ({r.note})"
        cells = [r.claim.text, r.claim.source, value, r.claim.threshold, verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``initlab check DIR [DIR ...]``: evaluate the claims that apply; exit 1 if one fails."""
    parser = argparse.ArgumentParser(prog="initlab check", description=main.__doc__)
    parser.add_argument("paths", nargs="+", help="sweep or run directories (or globs)")
    parser.add_argument("--out", type=Path, help="where to write claims.md (default: the first path)")
    args = parser.parse_args(argv)
    notes: list[str] = []
    runs = collect_runs(args.paths, notes)
    for note in notes:
        print(f"initlab check: {note}")
    if not runs:
        print(f"initlab check: error: no runs found in {' '.join(args.paths)}")
        return 2
    results = evaluate(runs)
    if not results:
        presets = sorted({str(cfg(r, "preset")) for r in runs})
        print(f"initlab check: no claim applies to these runs (presets: {', '.join(presets) or 'none'})")
        return 2
    table = to_markdown(results)
    print(table, end="")
    out = args.out or Path(args.paths[0])
    if out.is_dir():
        out = out / "claims.md"
    out.write_text("# Claims checked\n\n" + table)
    print(f"wrote {out}")
    failed = sum(r.passed is False for r in results)
    passed = sum(r.passed is True for r in results)
    print(f"claims: {passed} passed, {failed} failed, {len(results) - passed - failed} skipped")
    return 1 if failed else 0
