"""The probe's settings as a plain dataclass (``conf/probe/default.yaml`` mirrors its defaults) and the
schedules that turn them into probed steps.

The probe library knows no Hydra: ``initlab run`` hands it ``cfg.probe`` (any mapping) through
:meth:`ProbeSettings.from_mapping`, ``initlab.probe`` its keyword arguments. Every value is checked when the
settings are made; a bad one raises :class:`~initlab.errors.UserError` naming it and what is allowed.

Schedules (step 0, the initialized net, is always probed):

* ``log``   about ``points`` steps, log-spaced in [1, total]: ``round(geomspace(1, total, points − 1))``,
  dense early, where most of the action is;
* ``every`` every ``every`` updates: 0, k, 2k, ...;
* ``list``  the explicit ``steps``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab.errors import UserError


def _log_steps(s: ProbeSettings, total: int) -> set[int]:
    steps = np.unique(np.round(np.geomspace(1, max(total, 1), max(s.points - 1, 1)))).astype(int)
    return {int(k) for k in steps if k <= total}


SCHEDULES: dict[str, Callable[[ProbeSettings, int], set[int]]] = {
    "log": _log_steps,
    "every": lambda s, total: set(range(0, total + 1, s.every)),
    "list": lambda s, total: {k for k in s.steps if 0 <= k <= total},
}


def _is_int(v: object, lo: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


# field -> (its check, what is allowed): the facts of each setting on one row.
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "enabled": (lambda v: isinstance(v, bool), "true or false"),
    "schedule": (lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
    "points": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "every": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "steps": (lambda v: all(_is_int(k, 0) for k in v), "a list of integers >= 0"),
    "bins": (lambda v: _is_int(v, 2), "an integer >= 2"),
    "fixed_batch": (lambda v: _is_int(v, 0), "an integer >= 0 (0: probe the training batch)"),
    "jacobian": (lambda v: isinstance(v, bool), "true or false"),
    "jacobian_examples": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "unit_distance": (lambda v: isinstance(v, bool), "true or false"),
}


@dataclass(frozen=True)
class ProbeSettings:
    """When per-layer statistics are taken and what else is computed (see ``conf/probe/default.yaml``)."""

    enabled: bool = True
    schedule: str = "log"  # log | every | list
    points: int = 30  # log: about this many steps, dense early
    every: int = 100  # every: probe every k updates
    steps: tuple[int, ...] = field(default_factory=tuple)  # list: explicit steps
    bins: int = 100  # histogram bins
    fixed_batch: int = 0  # 0: the training step's own batch; N: an extra pass on N fixed test examples
    jacobian: bool = False  # singular values of each layer-to-layer Jacobian (costly)
    jacobian_examples: int = 8  # examples of the probed batch whose Jacobians are decomposed
    unit_distance: bool = False  # pairwise distances between a layer's units' incoming weights

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple):  # a list (YAML, keyword argument): hashable and immutable
            steps = self.steps
            if isinstance(steps, str) or not hasattr(steps, "__iter__"):
                raise UserError(f"probe.steps={steps} is not allowed: expected {CHECKS['steps'][1]}")
            object.__setattr__(self, "steps", tuple(steps))
        for name, (ok, allowed) in CHECKS.items():
            value = getattr(self, name)
            if not ok(value):
                shown = list(value) if isinstance(value, tuple) else value
                raise UserError(f"probe.{name}={shown} is not allowed: expected {allowed}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ProbeSettings:
        """The settings of a mapping (``cfg.probe`` of a composed config, a dict); unknown keys raise."""
        names = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(values) - set(names)):
            raise UserError(f"probe settings {unknown} are not allowed: expected {', '.join(names)}")
        return cls(**{k: _plain(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, Any]:
        """Plain values (``steps`` a list), as ``conf/probe/default.yaml`` writes them."""
        out = dataclasses.asdict(self)
        out["steps"] = list(self.steps)
        return out

    def schedule_steps(self, total_steps: int) -> list[int]:
        """The sorted steps at which to probe: always 0, none above ``total_steps``."""
        return sorted(SCHEDULES[self.schedule](self, total_steps) | {0})


def _plain(value: Any) -> Any:
    """An OmegaConf list node as a list (without importing OmegaConf)."""
    if not isinstance(value, str | bytes | int | float | bool) and hasattr(value, "__iter__"):
        return list(value)
    return value
