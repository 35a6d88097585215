"""The files of a run directory: their names, how to find run and job directories, how to read them.

The low-level half of :mod:`initlab.runs`: no :class:`~initlab.runs.Run` here, only paths and the readers
that turn a missing or truncated file into an empty frame (and a line in ``problems``) instead of a crash.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.runs.write import METRICS_FILE, SUMMARY_FILE, parts_dir

HYDRA_DIR = ".hydra"
CONFIG_FILE = Path(HYDRA_DIR) / "config.yaml"
OVERRIDES_FILE = Path(HYDRA_DIR) / "overrides.yaml"
HYDRA_FILE = Path(HYDRA_DIR) / "hydra.yaml"

SEED_KEY = "seed"
NOISE_KEYS = ("train.progress", "resume")  # overrides that never distinguish runs in a label
BOOKKEEPING_KEYS = ("resume",)  # overrides that are no setting of the run (left out of override_values)


class MissingData(LookupError):
    """A run lacks what a reader asked for (no probes, no metrics, no such layer or step)."""


# ---------------------------------------------------------------------------------------------------------
# Finding runs


def natural_key(text: str) -> list[Any]:
    """Sort "2" before "10" (job directories are numbered)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def is_run_dir(path: str | Path) -> bool:
    """A run directory has a ``summary.json`` or a ``metrics.parquet``."""
    path = Path(path)
    return (path / SUMMARY_FILE).is_file() or (path / METRICS_FILE).is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` if it is a run directory, else every run directory below it (not descending into runs)."""
    if is_run_dir(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if SUMMARY_FILE in filenames or METRICS_FILE in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=natural_key)
    return found


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every job directory below ``sweep_dir`` (one holding ``.hydra/overrides.yaml``), not submitit's."""
    sweep_dir = Path(sweep_dir)
    found = (p.parent.parent for p in sweep_dir.rglob("overrides.yaml") if p.parent.name == HYDRA_DIR)
    return sorted(p for p in found if ".submitit" not in p.relative_to(sweep_dir).parts)


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


def read_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json; ``{"status": "missing", "error": ...}`` when it is absent or unreadable."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return {"status": "missing", "error": f"no {SUMMARY_FILE}"}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {"status": "missing", "error": f"{SUMMARY_FILE} unreadable: {exc}"}
