"""The command line of ``initlab plot``: argparse ``type=`` callables for its options, and the checks of
the options against the runs found (a step no run was probed at, a layer no run logged, a colour key the
runs do not differ in, an output folder that cannot be written), each said in one line."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from initlab.errors import UserError
from initlab.plots.style import FORMATS
from initlab.runs import SEED_KEY, Run
from initlab.runs.grouping import varying_keys


def format_list(text: str) -> list[str]:
    formats = split(text.lower())
    if not formats or any(f not in FORMATS for f in formats):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return formats


def steps_option(text: str) -> list[int | str]:
    """``--steps``: integers >= 0 and ``last`` (also ``final``, ``end``)."""
    steps: list[int | str] = [
        "last" if p in ("last", "final", "end") else int(p) if p.isdigit() else p for p in split(text)
    ]
    if not steps or any(isinstance(s, str) and s != "last" for s in steps):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: expected integers >= 0 or last, e.g. 0,last"
        )
    return list(dict.fromkeys(steps))


def layers_option(text: str) -> list[int]:
    parts = split(text)
    if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected integers >= 1, e.g. 1,5")
    return [int(p) for p in parts]


def ratio(text: str) -> float:
    """``--ref-ratio``: the reference line's factor per layer, a finite number > 0 (a variance ratio)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected a number > 0, e.g. 0.5")
    return value


class Parser(argparse.ArgumentParser):
    """argparse, with a bad command line as one :class:`UserError` line instead of usage and exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def check_color_by(key: str | None, runs: Sequence[Run]) -> None:
    """``--color-by`` must name a key the runs differ in (seeds excepted)."""
    keys = varying_keys(runs, ignore=[SEED_KEY])
    if key is not None and key not in keys:
        allowed = (
            f"a key these runs differ in: {', '.join(keys)}"
            if keys
            else "nothing: these runs differ in no key"
        )
        raise UserError(f"--color-by {key!r} is not allowed: expected {allowed}")


def unwritable(out: Path) -> str:
    """Why the figures cannot be written to ``out`` ("" if they can), said before anything is drawn."""
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        return f"--out {out}: {existing} is not a directory"
    if not os.access(existing, os.W_OK):
        return f"cannot write the figures to {out} ({existing} is read-only for this user): use --out DIR"
    return ""


def existing_layers(layers: list[int] | None, runs: Sequence[Run]) -> tuple[list[int] | None, str]:
    """The ``--layers`` some run logged, and a message naming those none did ("" if all exist)."""
    logged = {
        int(x)
        for run in runs
        for frame in (run.layers, run.hists)
        if "layer" in frame
        for x in frame["layer"]
    }
    if layers is None or not logged:
        return layers, ""
    missing = [x for x in layers if x not in logged]
    message = (
        f"--layers {','.join(map(str, missing))}: no run logged such a layer "
        f"(they have layers {min(logged)}..{max(logged)}; the last one is the output layer)"
    )
    return [x for x in layers if x in logged], message if missing else ""


def reachable_steps(steps: list[int | str], runs: Sequence[Run]) -> tuple[list[int | str], list[str]]:
    """The ``--steps`` some run was probed at or after; a message for each step after every run's last."""
    probed = [
        int(frame["step"].max())
        for run in runs
        for frame in (run.layers, run.hists)
        if "step" in frame.columns and not frame.empty
    ]
    if not probed:
        return steps, []
    last = max(probed)
    beyond = [s for s in steps if s != "last" and int(s) > last]
    messages = [
        f"--steps {s}: no run was probed at or after step {s} (the last probed step is {last}; "
        "--steps last picks each run's last one)"
        for s in beyond
    ]
    return [s for s in steps if s not in beyond], messages
