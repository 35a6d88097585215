"""What a run writes to disk: :class:`RunWriter`, the one owner of a run directory, and its logs.

Every run -- ``initlab run``, :func:`initlab.run`, a sweep's job, :func:`initlab.probe` -- goes through a
:class:`RunWriter`: it claims the directory (:func:`initlab.runs.lock.claim`), writes ``summary.json``
(:class:`~initlab.runs.layout.Summary`, status ``running``) at once, and :meth:`RunWriter.close` writes the
final record and gives the directory back. The file names are :mod:`initlab.runs.layout`'s; the reader is
:mod:`initlab.runs`. A run directory holds Hydra's ``.hydra/`` (config.yaml, overrides.yaml, hydra.yaml) and:

* ``metrics.parquet`` -- one row per (step, split): step, epoch, split, loss, reg_loss, accuracy, lr;
* ``layers.parquet``  -- one row per (step, layer, quantity, param) with the probe statistics (``param``: the
  qualified name of the parameter of ``weight``/``param`` rows, see :mod:`initlab.probing.params`);
* ``hists.parquet``   -- one row per (step, layer, quantity): counts, under/overflow (the bin edges are
  fixed per (layer, quantity) for the whole run and stored once, in ``hist_edges.parquet``; the reader
  joins them back, so ``Run.hists`` has an ``edges`` column per row as before);
* ``hist_edges.parquet`` -- one row per (layer, quantity, param): the bin edges;
* ``summary.json``    -- status, steps done, divergence step, final metrics, wall time, seed, versions;
* ``theory.parquet``  -- the mean-field prediction at step 0 (:mod:`~initlab.theory.predict`), if it applies;
* ``model.pt``        -- with ``train.save_model=true``: the final ``state_dict`` (:func:`save_model`).
* ``mc_dropout.parquet`` -- with ``train.mc_masks=K``: Monte-Carlo dropout averages against the eval-mode
  output on the test examples, written once at the end of training (:mod:`initlab.lab.mc_dropout`).

The Parquet files grow while the run goes: rows are flushed every few seconds as small part files in
``<name>.parts/`` and merged into ``<name>`` when the run ends, whatever the reason (completed, diverged,
Ctrl-C, SIGTERM). Memory stays flat, a live run can be read, and even a hard-killed run keeps its flushed
parts (:func:`initlab.load_run` reads them). ``summary.json`` is replaced atomically (write, then rename).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from initlab.runs.layout import (  # noqa: F401  (the file names, also importable from here)
    CONFIG_FILE,
    HIST_EDGES_FILE,
    HISTS_FILE,
    HYDRA_DIR,
    HYDRA_FILE,
    LAYERS_FILE,
    MC_DROPOUT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OVERRIDES_FILE,
    RUN_FILES,
    SUMMARY_FILE,
    THEORY_FILE,
    Summary,
    parts_dir,
)
from initlab.runs.lock import Claim, claim


class ParquetLog:
    """Append-only Parquet log that survives any stop.

    Rows are buffered and flushed when ``max_rows`` have gathered or ``max_seconds`` have passed since the
    last flush. Each flush writes one complete small Parquet file into ``<name>.parts/`` (atomically), so
    a live run can be read while it trains and even a hard-killed run keeps every flushed row.
    :meth:`close` merges the parts, one row group each, into ``<name>`` (a single part is renamed) and removes
    the folder.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int = 5000,
        max_seconds: float = 10.0,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        """``on_flush``: called after every part written (e.g. :meth:`RunWriter.checkpoint`)."""
        self.path = Path(path)
        self.on_flush = on_flush
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
        self._write_part(pa.Table.from_pylist(self._rows))
        self._rows = []

    def _write_part(self, table: pa.Table) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        part = self.parts / f"part-{self._n_parts:06d}.parquet"
        tmp = part.with_suffix(".tmp")
        # Dictionary encoding pays for the repeated strings; tried on floats it costs more than it saves.
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(table, tmp, use_dictionary=strings)
        os.replace(tmp, part)
        self._n_parts += 1
        if self.on_flush is not None:
            self.on_flush()

    def close(self) -> None:
        """Flush, then merge the parts into the final file (written to a temporary name, then renamed)."""
        self.flush()
        files = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        if not files:
            return
        if len(files) == 1:  # already the whole file
            os.replace(files[0], self.path)
            shutil.rmtree(self.parts)
            return
        tables = [pq.read_table(f) for f in files]
        schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
        tmp = self.path.with_suffix(".parquet.tmp")
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for table in tables:
                    writer.write_table(table.cast(schema))
        except BaseException:  # a full disk, an interrupt: the parts stay, nothing half-written beside them
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


class ColumnarLog(ParquetLog):
    """A :class:`ParquetLog` fed with columns instead of rows: ``append({"step": array, ...})``.

    Each append is a block of equal-length numpy arrays (a 2-D array becomes a list column, one row per
    row); blocks are concatenated and written as one Parquet part every ``max_rows`` rows or
    ``max_seconds``, with no per-row Python objects on the way.
    """

    def __init__(self, path: Path, max_rows: int = 20_000, max_seconds: float = 10.0) -> None:
        super().__init__(path, max_rows, max_seconds)
        self._blocks: list[dict[str, np.ndarray]] = []
        self._n_rows = 0

    def append(self, columns: dict[str, np.ndarray]) -> None:  # type: ignore[override]
        self._blocks.append(columns)
        self._n_rows += len(next(iter(columns.values())))
        if self._n_rows >= self.max_rows or time.monotonic() - self._last_flush > self.max_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._blocks:
            return
        arrays = {}
        for name in self._blocks[0]:
            values = np.concatenate([b[name] for b in self._blocks])
            if values.ndim == 2:
                offsets = np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
                arrays[name] = pa.ListArray.from_arrays(offsets, values.reshape(-1))
            else:
                arrays[name] = pa.array(values)
        self._write_part(pa.table(arrays))
        self._blocks, self._n_rows = [], 0


class ProbeLog:
    """``layers.parquet`` and ``hists.parquet`` of a probe, fed blocks of statistics rows (steps, layers).

    :meth:`append` only keeps the rows (a float64 array, one row per (step, layer, quantity): the
    ``stats`` columns, then ``bins`` histogram counts, underflow and overflow) with the columns that name
    them; every ``max_rows`` rows or ``max_seconds`` the blocks are turned into the two files' columns
    and written as one Parquet part each (see :class:`ParquetLog`).
    """

    def __init__(
        self,
        run_dir: Path,
        stats: tuple[str, ...],
        int_stats: tuple[str, ...],
        bins: int,
        max_rows: int = 20_000,
        max_seconds: float = 10.0,
    ) -> None:
        self.layers = ColumnarLog(Path(run_dir) / LAYERS_FILE, max_rows=1 << 62, max_seconds=math.inf)
        self.hists = ColumnarLog(Path(run_dir) / HISTS_FILE, max_rows=1 << 62, max_seconds=math.inf)
        self.stats, self.int_stats, self.bins = stats, int_stats, bins
        self.max_rows, self.max_seconds = max_rows, max_seconds
        self._blocks: list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]] = []
        self._n_rows = 0
        self._last_flush = time.monotonic()

    def append(self, steps: np.ndarray, names: dict[str, np.ndarray], table: np.ndarray) -> None:
        """Rows of one or more steps: ``steps`` (one per row), ``names`` (``layer``, ``quantity`` and any
        other per-row labels) and ``table``."""
        self._blocks.append((steps, names, table))
        self._n_rows += len(table)
        if self.due():
            self.flush()

    def due(self) -> bool:
        """Whether the next append writes a part: ``max_rows`` rows gathered or ``max_seconds`` passed."""
        return self._n_rows >= self.max_rows or time.monotonic() - self._last_flush > self.max_seconds

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._blocks:
            return
        steps = np.concatenate([s for s, _, _ in self._blocks]).astype(np.int64)
        names = {k: np.concatenate([n[k] for _, n, _ in self._blocks]) for k in self._blocks[0][1]}
        table = np.concatenate([t for _, _, t in self._blocks])
        head, bins = len(self.stats), self.bins
        stats = {s: table[:, j] for j, s in enumerate(self.stats)}
        stats.update({s: stats[s].astype(np.int64) for s in self.int_stats})
        self.layers.append({"step": steps, **names, **stats})
        counts = table[:, head:].astype(np.int64)
        self.hists.append(
            {
                "step": steps,
                "layer": names["layer"],
                "quantity": names["quantity"],
                **({"param": names["param"]} if "param" in names else {}),
                "counts": counts[:, :bins],
                "underflow": counts[:, bins],
                "overflow": counts[:, bins + 1],
                "n_nonfinite": stats["n_nonfinite"],
            }
        )
        self.layers.flush()
        self.hists.flush()
        self._blocks, self._n_rows = [], 0

    def close(self) -> None:
        self.flush()
        self.layers.close()
        self.hists.close()


def write_table(path: Path, table: pa.Table) -> None:
    """Write a small Parquet file atomically (a reader sees the old file or the new one)."""
    tmp = Path(path).with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


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


def save_model(path: Path, state: dict[str, Any]) -> None:
    """Write a ``model.state_dict()`` with ``torch.save``, atomically (write, then rename).

    Read back with ``torch.load(path, weights_only=True)`` (:attr:`initlab.runs.Run.weights` does) or
    ``model.load_state_dict(...)`` on a model built from the run's config.
    """
    import torch  # lazily: readers of run directories need no torch

    path = Path(path)
    tmp = path.with_suffix(".pt.tmp")
    torch.save({name: t.detach().cpu() for name, t in state.items()}, tmp)
    os.replace(tmp, path)


CHECKPOINT_SECONDS = 2.0  # a live run's summary.json is at most this old after a log part is written


class RunWriter:
    """One run directory from its claim to its close; the one writer of ``summary.json`` and ``.hydra/``.

    ``RunWriter.open(path)`` claims ``path`` (refused with :class:`~initlab.runs.lock.DirectoryTaken` if a
    run holds it) and writes the :class:`~initlab.runs.layout.Summary` record with status ``running``;
    the run fills :attr:`summary` as it goes; :meth:`close` writes the final record (with ``wall_seconds``)
    and releases the directory, whatever happened. As a context manager an exception closes it
    ``failed`` (``interrupted`` for Ctrl-C) and propagates.
    """

    def __init__(self, claimed: Claim, kind: str = "train", seed: int | None = None) -> None:
        self.claim = claimed
        self.path = claimed.path
        self.summary = Summary(kind=kind, seed=seed)
        self.started = time.perf_counter()
        self.closed = False
        self._written = time.monotonic()
        self.write_summary()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: str = "run_dir",
        timestamped: bool = False,
        overwrite: bool = False,
        way_out: str | None = None,
        kind: str = "train",
        seed: int | None = None,
    ) -> RunWriter:
        """Claim ``path`` (see :func:`~initlab.runs.lock.claim` for ``key``, ``timestamped``, ``overwrite``
        and ``way_out``) and start its record."""
        return cls(claim(path, key, timestamped, overwrite, way_out), kind, seed)

    def write_summary(self) -> None:
        """Write :attr:`summary` to ``summary.json`` (atomically)."""
        write_json(self.path / SUMMARY_FILE, self.summary.to_dict())
        self._written = time.monotonic()

    def checkpoint(self, every: float | None = None) -> None:
        """Rewrite ``summary.json`` (still ``running``) if ``every`` seconds (default
        :data:`CHECKPOINT_SECONDS`) passed since the last write: a run killed hard says how far it got."""
        every = CHECKPOINT_SECONDS if every is None else every
        if not self.closed and time.monotonic() - self._written >= every:
            self.write_summary()

    def write_hydra(
        self,
        config: Mapping[str, Any],
        overrides: Sequence[str] | None = None,
        hydra: Mapping[str, Any] | None = None,
    ) -> None:
        """The ``.hydra/`` files of a run made without Hydra's app, replacing any there: ``config.yaml``,
        and ``overrides.yaml`` and ``hydra.yaml`` when given."""
        import yaml

        shutil.rmtree(self.path / HYDRA_DIR, ignore_errors=True)
        (self.path / HYDRA_DIR).mkdir()
        files = {CONFIG_FILE: config, OVERRIDES_FILE: overrides, HYDRA_FILE: hydra}
        for name, data in files.items():
            if data is not None:
                text = yaml.safe_dump(data if isinstance(data, Mapping) else list(data), sort_keys=False)
                (self.path / name).write_text(text)

    def close(self, status: str | None = None, **fields: Any) -> dict[str, Any]:
        """Write the final record (``status`` and ``fields`` set, ``wall_seconds``) and release the
        directory; returns the record as a dict. A second call only returns it."""
        if not self.closed:
            self.closed = True
            self.summary.update(fields, **({"status": status} if status else {}))
            self.summary.wall_seconds = round(time.perf_counter() - self.started, 3)
            try:
                if self.path.is_dir():
                    self.write_summary()
            finally:
                self.claim.release()
        return self.summary.to_dict()

    def discard(self) -> None:
        """The run was refused before it started: remove what it created, release the directory."""
        self.closed = True
        self.claim.discard()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close(self.summary.status if self.summary.status != "running" else "completed")
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close("failed", error=f"{kind.__name__}: {exc}")
