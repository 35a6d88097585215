"""The papers' claims as small functions over logged data, and ``initlab check DIR``.

A claim names its experiment preset (``conf/experiment/<preset>.yaml``; the preset sets the top-level
``preset`` key, so every run knows which one made it), its source (paper, figure), the statement in words,
a measure -- a function from the runs of ONE seed to one number -- the pass condition on that number, and
the rule that turns the per-seed numbers into a verdict:

* ``"every seed"`` (:data:`EVERY_SEED`, the default): the condition holds for the value of every seed;
* ``"effect > 2 standard errors"`` (:data:`TWO_SE`), for statements about means: with n ≥ 2 seeds, mean m
  and standard error s/√n (s: the sample std), the condition holds on the whole interval m ± 2·s/√n (for a
  condition ``v > 0`` that is m > 2·s/√n; for a range, the interval lies inside it).

Thresholds come from the papers and from theory, not from tuning. ``initlab check`` splits a preset's runs
into seed groups (:func:`seed_groups`: through :func:`initlab.runs.grouping.group_runs`, the runs that differ
only in ``seed`` are one setting, and seed group k holds every setting's run with seed k), evaluates every
claim on every seed group, prints a table (value per seed, mean ± std, rule, verdict) and writes it to
``DIR/claims.md``. A measure picks its runs with :func:`one`, which names the settings the claim assumes
(init name and gain, activation, depth, ...): a seed group without such a run skips the claim ("needs
..."), and a seed group with two such runs is an error, never a silent choice.

Claims live in one module per source (``glorot``, ``he``, ``he_conv``, ``ioffe``, ``srivastava``,
``handbook``, ``sparsity``, ``theory``, ...) and register themselves with the :func:`claim` decorator.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initlab.runs import SEED_KEY, MissingData, Run, collect_runs
from initlab.runs.grouping import group_runs

Measure = Callable[[list[Run]], float]

# The runs lack what a claim needs (e.g. a preset run without probes, no run with a setting): the claim is
# skipped. Readers of :class:`initlab.runs.Run` raise the same exception for missing data.
NotApplicable = MissingData

EVERY_SEED = "every seed"
TWO_SE = "effect > 2 standard errors"
RULES = (EVERY_SEED, TWO_SE)


RULES_LEGEND = (
    "Each claim is evaluated on every seed. Rule *every seed*: it passes if the condition holds for every "
    "seed's value. Rule *effect > 2 standard errors*: with n ≥ 2 seeds, it passes if the condition holds on "
    "the whole interval mean ± 2·std/√n."
)


class AmbiguousRuns(ValueError):
    """Several runs of one seed group match what a measure asked for: it must not pick one of them."""


@dataclass(frozen=True)
class Claim:
    preset: str
    source: str
    text: str
    threshold: str
    passes: Callable[[float], bool]
    measure: Measure
    rule: str = EVERY_SEED

    @property
    def name(self) -> str:
        return self.measure.__name__


CLAIMS: list[Claim] = []
MODULES = ("glorot", "he", "ioffe", "srivastava", "handbook", "he_conv", "theory", "sparsity")


def claim(
    preset: str,
    source: str,
    text: str,
    threshold: str,
    passes: Callable[[float], bool],
    *,
    rule: str = EVERY_SEED,
):
    """Register the decorated measure (runs of one seed -> float) as a claim about the runs of ``preset``.

    ``rule``: :data:`EVERY_SEED` (default) or :data:`TWO_SE` (see the module doc).
    """
    if rule not in RULES:
        raise ValueError(f"claim rule {rule!r}: allowed {', '.join(map(repr, RULES))}")

    def register(measure: Measure) -> Measure:
        CLAIMS.append(Claim(preset, source, text, threshold, passes, measure, rule))
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


def _where_text(where: dict[str, Any]) -> str:
    return " ".join(f"{k.replace('__', '.')}={v}" for k, v in where.items())


def select(runs: list[Run], **where: Any) -> list[Run]:
    """Runs whose config matches every ``key=value`` (dots written as double underscores: init__name).

    ``init__gain=None`` matches a run whose gain follows the activation (config value null).
    """
    return [r for r in runs if all(r.cfg(k.replace("__", ".")) == v for k, v in where.items())]


def one(runs: list[Run], **where: Any) -> Run:
    """The single run matching ``where``: NotApplicable ("needs ...") if none, AmbiguousRuns if several.

    Measures see the runs of one seed group, so two matches mean two runs of the same setting and seed
    (e.g. two sweeps checked together, or a setting the claim does not pin): naming more settings in
    ``where`` is the fix, picking one of them silently is not.
    """
    found = select(runs, **where)
    if not found:
        raise NotApplicable(f"needs a run with {_where_text(where)}")
    if len(found) > 1:
        paths = ", ".join(str(r.path) for r in found)
        raise AmbiguousRuns(f"{len(found)} runs with {_where_text(where)} in one seed group: {paths}")
    return found[0]


def completed(run: Run) -> Run:
    """``run`` if it trained to its end (status ``completed``); NotApplicable otherwise. Claims about the
    end of training read the final state only of such runs: a diverged run's weights or an interrupted
    run's last probed step say nothing about where training ends."""
    if run.status != "completed":
        raise NotApplicable(f"needs a completed run: {run.path} is {run.status}")
    return run


def layer_stat(run: Run, quantity: str, stat: str, step: int | None = 0) -> pd.Series:
    """``stat`` of ``quantity`` per layer (index = layer) at ``step`` (None: the last probed step)."""
    return run.layer_stat(quantity, stat, step)


def final_test_error(run: Run) -> float:
    """1 − final test accuracy (NaN for a run without one)."""
    error = run.final_test_error()
    return math.nan if error is None else error


# -- evaluation ----------------------------------------------------------------------------------------
def seed_of(run: Run) -> str:
    """The run's seed as text ("-" for a run without one)."""
    seed = run.cfg(SEED_KEY)
    return "-" if seed is None else str(seed)


def seed_groups(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """(seed, that seed's run of every setting), seeds in order; settings from :func:`group_runs`."""
    groups: dict[str, list[Run]] = {}
    for _, setting in group_runs(runs):
        for run in setting:
            groups.setdefault(seed_of(run), []).append(run)
    numeric = all(s.lstrip("-").isdigit() for s in groups if s != "-")
    return sorted(groups.items(), key=lambda kv: (int(kv[0]) if numeric and kv[0] != "-" else 0, kv[0]))


@dataclass
class Result:
    """A claim's values per seed (None: not applicable in that seed) and its verdict under its rule."""

    claim: Claim
    values: dict[str, float | None] = field(default_factory=dict)
    passed: bool | None = None  # None: not applicable
    note: str = ""

    @property
    def measured(self) -> list[float]:
        return [v for v in self.values.values() if v is not None]

    @property
    def value(self) -> float | None:
        """Mean over the seeds where the claim applied (None if it applied nowhere)."""
        return float(np.mean(self.measured)) if self.measured else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None with fewer than 2)."""
        return float(np.std(self.measured, ddof=1)) if len(self.measured) > 1 else None


def verdict(c: Claim, values: list[float]) -> tuple[bool | None, str]:
    """Apply the claim's rule to its per-seed values: (passed, note); passed None when it cannot decide."""
    if not all(math.isfinite(v) for v in values):
        return False, "a seed gave a non-finite value"
    if c.rule == EVERY_SEED:
        failing = sum(not c.passes(v) for v in values)
        return failing == 0, f"fails in {failing} of {len(values)} seeds" if failing else ""
    if len(values) < 2:
        return None, f"needs ≥ 2 seeds for the rule '{TWO_SE}'"
    mean, se = float(np.mean(values)), float(np.std(values, ddof=1)) / math.sqrt(len(values))
    ok = bool(c.passes(mean - 2 * se) and c.passes(mean + 2 * se))
    return ok, "" if ok else f"mean ± 2 SE = {mean:.4g} ± {2 * se:.3g} is not all on the pass side"


def evaluate_claim(c: Claim, runs: list[Run]) -> Result:
    """Evaluate one claim on every seed group of ``runs`` (the runs of its preset)."""
    result = Result(c)
    skipped: list[tuple[str, str]] = []  # (seed, why)
    for seed, group in seed_groups(runs):
        try:
            result.values[seed] = float(c.measure(group))
        except NotApplicable as exc:
            result.values[seed] = None
            skipped.append((seed, str(exc)))
        except Exception as exc:  # noqa: BLE001 - broken or ambiguous logs: this claim fails, the others run
            result.passed, result.note = False, f"seed {seed}: {type(exc).__name__}: {exc}"
            return result
    if not result.measured:
        result.passed, result.note = None, skipped[0][1] if skipped else "no runs"
        return result
    result.passed, result.note = verdict(c, result.measured)
    if skipped:
        where = "; ".join(f"seed {seed}: {why}" for seed, why in skipped)
        result.note = "; ".join([result.note] * bool(result.note) + [f"skipped in {where}"])
    return result


def evaluate(runs: list[Run]) -> list[Result]:
    """Evaluate every claim whose preset made some of ``runs``, on every seed group."""
    presets = {cfg(r, "preset") for r in runs}
    return [
        evaluate_claim(c, [r for r in runs if cfg(r, "preset") == c.preset])
        for c in load_claims()
        if c.preset in presets
    ]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def to_markdown(results: list[Result]) -> str:
    lines = [
        "| claim | source | value per seed | mean ± std | rule | pass if | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per_seed = ", ".join(f"{seed}: {_number(v)}" for seed, v in r.values.items()) or "n/a"
        spread = _number(r.value) + ("" if r.std is None else f" ± {r.std:.2g}") + f" (n={len(r.measured)})"
        verdict_text = {True: "pass", False: "**FAIL**", None: f"skipped: {r.note}"}[r.passed]
        if r.passed is not None and r.note:
            verdict_text += f" ({r.note})"
        claim_ = r.claim
        cells = [claim_.text, claim_.source, per_seed, spread, claim_.rule, claim_.threshold, verdict_text]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# exit statuses of ``initlab check`` (2 is also argparse's, for a bad command line)
EXIT_PASSED, EXIT_FAILED, EXIT_NOTHING, EXIT_INCOMPLETE = 0, 1, 2, 3


def incomplete(result: Result) -> bool:
    """A claim not decided on all of its seeds: skipped (its runs lack what it needs, or one seed where the
    rule needs several), or skipped in some seeds."""
    return result.passed is None or any(v is None for v in result.values.values())


def main(argv: list[str]) -> int:
    """``initlab check DIR [DIR ...]``: evaluate the claims that apply and write claims.md.

    Exit status: 0 every claim passed on every seed; 1 a claim failed; 3 none failed but the check is
    incomplete (a claim skipped, or skipped in some seeds); 2 no runs, no claim applies, or a bad command
    line.
    """
    parser = argparse.ArgumentParser(
        prog="initlab check",
        description=main.__doc__.split("\n\n")[0],
        epilog="exit status: 0 all passed, 1 a claim failed, 3 incomplete (claims skipped), "
        "2 nothing to check",
    )
    parser.add_argument("paths", nargs="+", help="sweep or run directories (or globs)")
    parser.add_argument("--out", type=Path, help="where to write claims.md (default: the first path)")
    args = parser.parse_args(argv)
    notes: list[str] = []
    runs = collect_runs(args.paths, notes)
    for note in notes:
        print(f"initlab check: {note}", file=sys.stderr)
    if not runs:
        print(f"initlab check: error: no runs found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_NOTHING
    results = evaluate(runs)
    if not results:
        presets = sorted({str(cfg(r, "preset")) for r in runs})
        print(
            f"initlab check: error: no claim applies to these runs (presets: {', '.join(presets) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_NOTHING
    table = to_markdown(results)
    print(table, end="")
    out = args.out or Path(args.paths[0])
    if out.is_dir():
        out = out / "claims.md"
    try:
        out.write_text("# Claims checked\n\n" + RULES_LEGEND + "\n\n" + table)
        print(f"wrote {out}")
    except OSError as exc:
        print(f"initlab check: warning: {out} not written ({exc.strerror or exc})", file=sys.stderr)
    failed = sum(r.passed is False for r in results)
    passed = sum(r.passed is True for r in results)
    partial = sum(incomplete(r) and r.passed is not None for r in results)
    counts = f"claims: {passed} passed, {failed} failed, {len(results) - passed - failed} skipped"
    if partial:
        counts += f" ({partial} decided on only some seeds)"
    if failed:
        print(counts)
        return EXIT_FAILED
    if any(map(incomplete, results)):
        print(f"{counts}; incomplete: see the skipped rows (exit status {EXIT_INCOMPLETE})")
        return EXIT_INCOMPLETE
    print(counts)
    return EXIT_PASSED
