"""What a run leaves on disk, and how to read it back.

A run directory holds Hydra's ``.hydra/`` (config.yaml, overrides.yaml, hydra.yaml) and:

* ``metrics.parquet`` -- one row per (step, split): step, epoch, split, loss, reg_loss, accuracy, lr;
* ``layers.parquet``  -- one row per (step, layer, quantity) with the probe statistics;
* ``hists.parquet``   -- one row per (step, layer, quantity): bin edges, counts, under/overflow;
* ``summary.json``    -- status, steps done, divergence step, final metrics, wall time, seed, versions.

The Parquet files are appended to one row group at a time while the run goes, so memory stays flat and a
run stopped by Ctrl-C, SIGTERM or divergence keeps every row written before it stopped (the file is
closed on the way out). ``summary.json`` is replaced atomically (write, then rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import OmegaConf

METRICS_FILE = "metrics.parquet"
LAYERS_FILE = "layers.parquet"
HISTS_FILE = "hists.parquet"
SUMMARY_FILE = "summary.json"


class ParquetLog:
    """Append-only Parquet file: each :meth:`append` writes one row group to disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: pq.ParquetWriter | None = None

    def append(self, rows: pd.DataFrame | list[dict[str, Any]]) -> None:
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        if frame.empty:
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        else:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


@dataclass
class RunData:
    """Everything one run logged, as pandas objects. Missing files give empty frames."""

    path: Path
    config: dict[str, Any]
    overrides: list[str]
    summary: dict[str, Any]
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    hists: pd.DataFrame = field(default_factory=pd.DataFrame)
    problems: list[str] = field(default_factory=list)  # files that exist but could not be read


def read_parquet(path: Path, problems: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file; a missing or unreadable (half-written) file gives an empty frame."""
    if not path.exists():
        return pd.DataFrame()
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a truncated file raises various pyarrow errors
        if problems is not None:
            problems.append(f"{path}: unreadable ({type(exc).__name__}: {exc})")
        return pd.DataFrame()


def is_run_dir(path: Path) -> bool:
    """A run directory has a summary.json or a metrics file next to Hydra's .hydra/ folder."""
    path = Path(path)
    return (path / SUMMARY_FILE).is_file() or (path / METRICS_FILE).is_file()


def load_run(path: str | Path) -> RunData:
    """Load a run directory: ``load_run("outputs/runs/...").layers`` is a DataFrame of probe statistics."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    problems: list[str] = []
    config: dict[str, Any] = {}
    overrides: list[str] = []
    if (path / ".hydra" / "config.yaml").is_file():
        config = OmegaConf.to_container(OmegaConf.load(path / ".hydra" / "config.yaml"), resolve=False)
    if (path / ".hydra" / "overrides.yaml").is_file():
        overrides = list(OmegaConf.to_container(OmegaConf.load(path / ".hydra" / "overrides.yaml")) or [])
    summary: dict[str, Any] = {}
    if (path / SUMMARY_FILE).is_file():
        try:
            summary = json.loads((path / SUMMARY_FILE).read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{path / SUMMARY_FILE}: unreadable ({exc})")
    return RunData(
        path=path,
        config=config,
        overrides=overrides,
        summary=summary,
        metrics=read_parquet(path / METRICS_FILE, problems),
        layers=read_parquet(path / LAYERS_FILE, problems),
        hists=read_parquet(path / HISTS_FILE, problems),
        problems=problems,
    )
