"""Naming and grouping runs: the overrides that differ between runs make their labels, and the runs that
differ only in ``seed`` form one group (one setting). Used by the figures, the claims (one seed group per
check) and the TensorBoard export; it reads runs only through :class:`initlab.runs.Run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from initlab.runs import SEED_KEY, Run, natural_key


def varying_keys(runs: Sequence[Run], ignore: Iterable[str] = ()) -> list[str]:
    """The override keys whose value differs between runs, in the order they were first given."""
    ignore = set(ignore)
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.override_text if k not in keys and k not in ignore]
    return [k for k in keys if len({run.value(k) for run in runs} - {None}) > 1]


def label(run: Run, runs: Sequence[Run], ignore: Iterable[str] = ()) -> str:
    """A run's label: the overrides that differ between ``runs`` (``"init=standard act=tanh"``).

    Keys in ``ignore`` (e.g. ``seed``) are left out. When nothing differs, the label describes the run
    from its config (``"xavier init, tanh"``), falling back to the directory name.
    """
    parts = [f"{k}={v}" for k in varying_keys(runs, ignore) if (v := run.value(k)) is not None]
    if parts:
        return " ".join(parts)
    init, act = run.setting("init.name"), run.setting("act.name")
    if init and act:
        return f"{init} init, {act}"
    return run.path.name


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def order_key(run: Run, keys: Sequence[str], rank: Mapping[str, Sequence[str]] | None = None) -> list[Any]:
    """Sort runs by their swept values: names in ``rank[key]`` in that order, then numbers, then text."""
    out: list[Any] = []
    for key in keys:
        value = run.value(key) or ""
        ranked = list((rank or {}).get(key, ()))
        position = ranked.index(value) if value in ranked else len(ranked)
        number = _as_number(value)
        out.append((position, 0 if number is not None else 1, number or 0.0, natural_key(value)))
    return out


def group_runs(
    runs: Sequence[Run], rank: Mapping[str, Sequence[str]] | None = None
) -> list[tuple[str, list[Run]]]:
    """Runs grouped by their label without ``seed`` (the seeds of one setting), in a stable order."""
    keys = varying_keys(runs, ignore=[SEED_KEY])
    ordered = sorted(runs, key=lambda r: (order_key(r, keys, rank), natural_key(r.value(SEED_KEY) or "")))
    groups: dict[str, list[Run]] = {}
    for run in ordered:
        groups.setdefault(label(run, runs, ignore=[SEED_KEY]), []).append(run)
    return list(groups.items())
