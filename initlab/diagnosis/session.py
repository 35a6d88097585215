"""One consultation: examine, check, suggest, (verify), report -- for any ``nn.Module`` or an initlab config.

:func:`doctor` never touches the caller's model, optimizer or random state: it trains a deep copy with a
new optimizer of the same class and parameter-group settings, on a forked RNG. The batches it drew are kept
and replayed (from the start) by the verification runs, so that before and after see the same data.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from initlab.diagnosis.examine import DEFAULT_STEPS, Batch, Evidence, LossFn, examine
from initlab.diagnosis.findings import run_checks
from initlab.diagnosis.fixes import FIXES, Fix, suggested
from initlab.diagnosis.report import Report
from initlab.errors import UserError

DEFAULT_LR = 0.01  # SGD's learning rate when the caller gives no optimizer


def new_run_dir(run_dir: str | Path | None) -> Path:
    """``run_dir``, or ``outputs/doctor/DATE/TIME``; refused when it exists and is not empty."""
    now = datetime.datetime.now()
    path = (
        Path(run_dir)
        if run_dir is not None
        else Path("outputs/doctor") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}"
    )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(
            f"run_dir={path} is not allowed: it exists and is not empty; expected a new directory"
        )
    return path


def build_report(ev: Evidence, run_dir: Path, subject: str) -> Report:
    """The checks of ``ev`` with each finding's applicable fixes (and their overrides for initlab configs)."""
    results, notes = run_checks(ev)
    for r in results:
        r["suggested"] = [
            {"key": f.key, "text": f.text, "source": str(f.source), "overrides": f.overrides(ev)}
            for f in suggested(r, ev)
        ]
    summary = {
        "steps": ev.steps,
        "steps_done": ev.steps_done,
        "diverged_at": ev.diverged_at,
        "probed": ev.probed,
        "batch_size": ev.batch_size,
        "activations": sorted(ev.activations),
        "theory": {k: v for k, v in ev.theory.get("scales", {}).items()},
        "context": ev.context,
    }
    return Report(
        subject,
        run_dir,
        summary,
        [r for r in results if r["flagged"]],
        [r for r in results if not r["flagged"]],
        notes,
    )


def _verify(report: Report, can: Callable[[Fix], bool], rerun: Callable[[Fix, Path], Evidence]) -> None:
    """Rerun with each suggested fix that can be applied automatically (each fix once, in the order the
    findings suggest them); record every finding's measure before and after each rerun (a fix may cure
    more than the finding that suggested it, or none).

    A finding counts as fixed when its check, run on the rerun, is below its threshold; a check of the
    training (not of the initialized net) counts as not fixed when the rerun diverged.
    """
    from initlab.diagnosis.findings import CHECKS

    checks = {c.key: c for c in CHECKS}
    chosen: dict[str, list[str]] = {}
    for f in report.findings:
        fixes = [FIXES[s["key"]] for s in f["suggested"] if can(FIXES[s["key"]])]
        if not fixes:
            report.notes.append(f"{f['key']}: no suggested fix can be applied automatically to this net")
        for fix in fixes:
            chosen.setdefault(fix.key, []).append(f["key"])
    flagged = [f["key"] for f in report.findings]
    for key, finding_keys in chosen.items():
        where = report.run_dir / "verify" / key
        after = rerun(FIXES[key], where)
        diverged = after.diverged_at is not None
        results = {k: None if diverged and not checks[k].at_init else checks[k].run(after) for k in flagged}
        report.verified.append(
            {
                "fix": key,
                "for": finding_keys,
                "run_dir": str(where),
                "diverged_after": after.diverged_at,
                "before": {f["key"]: f["measured"] for f in report.findings},
                "after": {k: (r.measured if r is not None else None) for k, r in results.items()},
                # None: the check does not apply to the rerun (e.g. no mean field once batch norm is added)
                "flagged_after": {
                    k: r.flagged if r is not None else (True if diverged else None)
                    for k, r in results.items()
                },
            }
        )


# -- any nn.Module ----------------------------------------------------------------------------------------
class Replay:
    """The caller's batches, drawn once and kept: each call of :meth:`stream` yields the kept ones from the
    start, then draws on from where the source stopped (from its start again when a re-iterable source
    runs out; the kept ones again when an iterator does)."""

    def __init__(self, source: Iterable[Batch]) -> None:
        self.source, self.kept = source, list[Batch]()
        self.it: Iterator[Batch] = iter(source)

    def stream(self) -> Iterator[Batch]:
        i = 0
        while True:
            if i < len(self.kept):
                yield self.kept[i]
                i += 1
                continue
            try:
                self.kept.append(next(self.it))
            except StopIteration:
                if not self.kept:
                    return
                if isinstance(self.source, Iterator):
                    self.it = iter(list(self.kept))
                else:
                    self.it = iter(self.source)


def clone_optimizer(
    opt: torch.optim.Optimizer, source: nn.Module, target: nn.Module, lr_factor: float = 1.0
) -> torch.optim.Optimizer:
    """A new optimizer of ``opt``'s class over ``target``'s parameters, with ``opt``'s group settings."""
    index = {id(p): i for i, p in enumerate(source.parameters())}
    params = list(target.parameters())
    groups = []
    for g in opt.param_groups:
        group = {k: v for k, v in g.items() if k != "params"}
        group["params"] = [params[index[id(p)]] for p in g["params"]]
        if isinstance(group.get("lr"), float | int):
            group["lr"] = group["lr"] * lr_factor
        groups.append(group)
    return type(opt)(groups)


def doctor(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    run_dir: str | Path | None = None,
    verify: bool = False,
    figure: bool = True,
    quiet: bool = False,
) -> Report:
    """Diagnose ``model``: a short probed training of a copy, checks, fixes; returns the :class:`Report`.

    ``batches``: (x, y) pairs (a list, a DataLoader, a generator); ``loss_fn(model(x), y)`` is the loss;
    ``optimizer``: the one you would train with (its class and settings are copied; default: SGD, lr 0.01).
    ``steps``: updates (300). ``run_dir``: where the probes' logs and ``doctor.md``/``.json``/``.png`` go
    (default ``outputs/doctor/DATE/TIME``; never an existing non-empty directory). ``verify``: rerun with
    each suggested fix that can be applied to a copy, every finding before and after. ``quiet``: no print.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UserError(f"steps={steps!r} is not allowed: expected an integer >= 1")
    path = new_run_dir(run_dir)
    pristine = copy.deepcopy(model)
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=DEFAULT_LR)
    data = Replay(batches)
    devices = [torch.cuda.current_device()] if any(p.is_cuda for p in model.parameters()) else []

    def run(fix: Fix | None, where: Path) -> Evidence:
        patient = copy.deepcopy(pristine)
        factor = fix.patch(patient, data.kept[0]) if fix is not None and fix.patch is not None else 1.0
        with torch.random.fork_rng(devices=devices):
            ev = examine(
                patient,
                data.stream(),
                loss_fn,
                clone_optimizer(opt, model, patient, factor),
                where,
                steps,
            )
        ev.context = {
            "model": type(model).__name__,
            "lr": opt.param_groups[0].get("lr"),
            "optimizer": type(opt).__name__,
        }
        return ev

    ev = run(None, path)
    if not data.kept:
        raise UserError("batches yielded no batch: expected (x, y) pairs")
    report = build_report(ev, path, f"{type(model).__name__} ({ev.context['optimizer']}, {steps} updates)")
    if verify:
        _verify(report, lambda fix: fix.patch is not None, lambda fix, where: run(fix, where))
    report.write(figure)
    if not quiet:
        print(report.markdown())
    return report


# -- initlab's own configs --------------------------------------------------------------------------------
def merge(overrides: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``overrides`` with those of ``extra`` replacing any of the same key."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in extra}
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in keys] + list(extra)


def doctor_config(
    overrides: Sequence[str] = (),
    *,
    steps: int = DEFAULT_STEPS,
    run_dir: str | Path | None = None,
    verify: bool = False,
    figure: bool = True,
    quiet: bool = False,
) -> Report:
    """:func:`doctor` for ``initlab run OVERRIDES``: the config's net, data, init, loss and optimizer, and
    the mean-field prediction where it applies; ``verify`` reruns with each fix's overrides."""
    from initlab.api import compose
    from initlab.diagnosis.configured import examine_config

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UserError(f"steps={steps!r} is not allowed: expected an integer >= 1")
    overrides = [str(o) for o in overrides]
    cfg = compose(overrides)  # every check before anything is written
    path = new_run_dir(run_dir)
    ev = examine_config(cfg, path, steps, overrides)
    report = build_report(ev, path, " ".join(overrides) or "the default config")

    def rerun(fix: Fix, where: Path) -> Evidence:
        fixed = merge(overrides, fix.overrides(ev) or [])
        return examine_config(compose(fixed), where, steps, fixed)

    if verify:
        _verify(report, lambda fix: fix.overrides(ev) is not None, rerun)
        for v in report.verified:
            v["overrides"] = FIXES[v["fix"]].overrides(ev)
    report.write(figure)
    if not quiet:
        print(report.markdown())
    return report
