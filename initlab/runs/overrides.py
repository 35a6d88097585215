"""A run's ``key=value`` overrides (``.hydra/overrides.yaml``), read with Hydra's own parser.

Hydra's grammar covers quoting, ``+key``/``++key``, deletions (``~key``), lists and sweeps; reading it with
``OverridesParser`` rather than splitting on ``=`` keeps initlab's view of a run's settings the one Hydra had.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


@functools.cache
def _override_parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _parsed(lines: Sequence[str]) -> list[Any]:
    """Hydra's ``Override`` objects of ``lines``, deletions (``~key``) left out."""
    return [o for o in _override_parser().parse_overrides([str(x) for x in lines]) if not o.is_delete()]


def _key(override: Any) -> str:
    return override.key_or_group + (f"@{override.package}" if override.package else "")


def parse_overrides(lines: Sequence[str]) -> dict[str, Any]:
    """``["init=xavier", "model.depth=2"]`` -> ``{"init": "xavier", "model.depth": 2}`` (typed by Hydra).

    ``+key``/``++key`` count as ``key``; deletions (``~key``) are skipped; lists and dicts are kept as Hydra
    writes them (``[0.9,0.99]``).
    """
    values: dict[str, Any] = {}
    for override in _parsed(lines):
        value = override.value()
        if isinstance(value, list | dict):
            value = override.get_value_element_as_str()
        values[_key(override)] = value
    return values


def override_texts(lines: Sequence[str]) -> dict[str, str]:
    """``key -> value`` exactly as written (``optim.lr=1e-3`` gives ``"1e-3"``), for labels."""
    return {_key(o): o.input_line.split("=", 1)[1] for o in _parsed(lines)}
