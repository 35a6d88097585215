"""What a run writes to disk (its reader is :mod:`initlab.runs`).

A run directory holds Hydra's ``.hydra/`` (config.yaml, overrides.yaml, hydra.yaml) and:

* ``metrics.parquet`` -- one row per (step, split): step, epoch, split, loss, reg_loss, accuracy, lr;
* ``layers.parquet``  -- one row per (step, layer, quantity) with the probe statistics;
* ``hists.parquet``   -- one row per (step, layer, quantity): bin edges, counts, under/overflow;
* ``summary.json``    -- status, steps done, divergence step, final metrics, wall time, seed, versions;
* ``theory.parquet``  -- the mean-field prediction at step 0 (:mod:`initlab.theory`), where it applies.

The Parquet files grow while the run goes: rows are flushed every few seconds as small part files in
``<name>.parts/`` and merged into ``<name>`` when the run ends, whatever the reason (completed, diverged,
Ctrl-C, SIGTERM). Memory stays flat, a live run can be read, and even a hard-killed run keeps its flushed
parts (:func:`initlab.load_run` reads them). ``summary.json`` is replaced atomically (write, then rename);
:func:`initlab.train.train` is its one writer.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

METRICS_FILE = "metrics.parquet"
LAYERS_FILE = "layers.parquet"
HISTS_FILE = "hists.parquet"
SUMMARY_FILE = "summary.json"
THEORY_FILE = "theory.parquet"


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
