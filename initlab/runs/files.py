"""Reading the files of a run directory (their names and the rules are :mod:`initlab.runs.layout`'s).

The low-level half of :mod:`initlab.runs`: no :class:`~initlab.runs.Run` here, only the readers that turn a
missing or truncated file into an empty frame (and a line in ``problems``) instead of a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from initlab.runs.layout import parts_dir

SEED_KEY = "seed"
NOISE_KEYS = ("train.progress", "resume")  # overrides that never distinguish runs in a label
BOOKKEEPING_KEYS = ("resume",)  # overrides that are no setting of the run (left out of override_values)


class MissingData(LookupError):
    """A run lacks what a reader asked for (no probes, no metrics, no such layer or step)."""


# ---------------------------------------------------------------------------------------------------------
# Reading files


def load_yaml(path: Path) -> Any:
    """A YAML file as plain Python objects (PyYAML's C loader: ~15x faster than OmegaConf.load)."""
    import yaml

    with open(path) as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_parquet(path: Path, problems: list[str] | None = None) -> pd.DataFrame:
    """Read a log file, or the parts of a run still training (or killed); unreadable or missing: empty."""
    parts = sorted(parts_dir(path).glob("part-*.parquet")) if not path.exists() else []
    if not path.exists() and not parts:
        return pd.DataFrame()
    try:
        if parts:
            return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a truncated file raises various pyarrow errors
        if problems is not None:
            problems.append(f"{path}: unreadable ({type(exc).__name__}: {exc})")
        return pd.DataFrame()


HIST_COLUMNS = (
    "step",
    "layer",
    "quantity",
    "param",
    "edges",
    "counts",
    "underflow",
    "overflow",
    "n_nonfinite",
)


def with_edges(hists: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """``hists`` with the ``edges`` of its (layer, quantity[, param]) in every row, columns in
    :data:`HIST_COLUMNS` order; frames that already hold edges (older runs) or cannot be joined are returned
    as they are. ``param`` (the qualified name of a per-parameter row) joins where both have it."""
    if hists.empty or "edges" in hists or edges.empty:
        return hists
    on = ["layer", "quantity", *(["param"] if "param" in hists and "param" in edges else [])]
    joined = hists.merge(edges[[*on, "edges"]], on=on, how="left")
    order = [c for c in HIST_COLUMNS if c in joined] + [c for c in joined if c not in HIST_COLUMNS]
    return joined[order]
