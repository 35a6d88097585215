"""What a run leaves on disk, and how to read it back.

A run directory holds Hydra's ``.hydra/`` (config.yaml, overrides.yaml, hydra.yaml) and:

* ``metrics.parquet`` -- one row per (step, split): step, epoch, split, loss, reg_loss, accuracy, lr;
* ``layers.parquet``  -- one row per (step, layer, quantity) with the probe statistics;
* ``hists.parquet``   -- one row per (step, layer, quantity): bin edges, counts, under/overflow;
* ``summary.json``    -- status, steps done, divergence step, final metrics, wall time, seed, versions.

The Parquet files grow while the run goes: rows are flushed every few seconds as small part files in
``<name>.parts/`` and merged into ``<name>`` when the run ends, whatever the reason (completed, diverged,
Ctrl-C, SIGTERM). Memory stays flat, a live run can be read, and even a hard-killed run keeps its flushed
parts (:func:`load_run` reads them). ``summary.json`` is replaced atomically (write, then rename).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
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
    """Append-only Parquet log that survives any stop.

    Rows are buffered and flushed when ``max_rows`` have gathered or ``max_seconds`` have passed since the
    last flush. Each flush writes one complete small Parquet file into ``<name>.parts/`` (atomically), so
    a live run can be read while it trains and even a hard-killed run keeps every flushed row.
    :meth:`close` merges the parts, one row group each, into ``<name>`` and removes the folder.
    """

    def __init__(self, path: Path, max_rows: int = 5000, max_seconds: float = 10.0) -> None:
        self.path = Path(path)
        self.parts = parts_dir(self.path)
        self.max_rows, self.max_seconds = max_rows, max_seconds
        self._rows: list[dict[str, Any]] = []
        self._n_parts = 0
        self._last_flush = time.monotonic()

    def append(self, rows: list[dict[str, Any]]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= self.max_rows or time.monotonic() - self._last_flush > self.max_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one part file."""
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        self.parts.mkdir(parents=True, exist_ok=True)
        part = self.parts / f"part-{self._n_parts:06d}.parquet"
        tmp = part.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(self._rows), tmp)
        os.replace(tmp, part)
        self._rows, self._n_parts = [], self._n_parts + 1

    def close(self) -> None:
        """Flush, then merge the parts into the final file (written to a temporary name, then renamed)."""
        self.flush()
        files = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        if not files:
            return
        tables = [pq.read_table(f) for f in files]
        schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
        tmp = self.path.with_suffix(".parquet.tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for table in tables:
                writer.write_table(table.cast(schema))
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


def parts_dir(path: Path) -> Path:
    """Where a :class:`ParquetLog` keeps its flushed parts until the run closes it."""
    return path.with_name(path.name + ".parts")


def _strict(value: Any) -> Any:
    """NaN and ±inf become null, so the file is strict JSON (readable by any JSON parser)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write strict JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_strict(data), indent=2, allow_nan=False) + "\n")
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
        loaded = OmegaConf.load(path / ".hydra" / "config.yaml")
        try:  # presets may use interpolations; resolve them so readers see values
            config = OmegaConf.to_container(loaded, resolve=True)
        except Exception:  # noqa: BLE001 - e.g. a Hydra-only resolver: keep the raw strings
            config = OmegaConf.to_container(loaded, resolve=False)
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
