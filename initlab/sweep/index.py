"""The sweep index ``sweep.parquet``: one row per job directory of a sweep, built from those alone.

The job directories are those of :func:`initlab.runs.layout.find_jobs`: every run below the sweep
directory (the rule of ``initlab plot`` too) and every directory Hydra set up for a job that never wrote
anything (status ``missing``).

It can be rebuilt at any time (``initlab sweep-index DIR``): after cluster jobs finished out of order, or
after deleting or rerunning some jobs. The job directories are read through :mod:`initlab.runs`.

The index has one row per job directory, sorted by job number, with these columns:

``job``
    Hydra's job number (``hydra.job.num``).
one column per override, e.g. ``init``, ``act``, ``seed``, ``model.depth``
    the job's value (from ``.hydra/overrides.yaml``), typed: ``model.depth=2`` gives the integer 2.
``status``
    from ``summary.json``: ``completed``, ``diverged``, ``failed``, ``interrupted``, ``running`` (a process
    of this machine, or of another one, still trains it), or ``missing`` (the job has no ``summary.json``).
    A ``running`` job whose process (``pid`` on this ``host``) no longer exists was killed hard: it is
    listed ``interrupted``, with that as its error.
``error``
    why a job failed (null otherwise).
``steps_done``, ``diverged_at``, ``final_{train,test}_{loss,accuracy}``, ``wall_seconds``, ``startup_seconds``
    from ``summary.json`` (null when absent).
``dir``
    the job directory (absolute path), e.g. for ``initlab.load_run(row.dir)``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.errors import UserError
from initlab.runs import Run, find_jobs, is_job, read_summary
from initlab.runs.layout import FINISHED, INDEX_FIELDS, INDEX_FILE, Summary

# summary.json fields copied into the index, in column order (any other ``final_*`` field is added too).
SUMMARY_COLUMNS = list(INDEX_FIELDS)
INT_COLUMNS = ("job", "steps_done", "diverged_at")
# Statuses of a job that ran to its end; anything else makes `initlab run -m` exit with 1.
OK_STATUSES = FINISHED
STATUS_ORDER = (*FINISHED, "failed", "interrupted", "running", "missing")


def job_row(job_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One job's (override values, index fields); a job with unreadable ``.hydra`` files is ``missing``."""
    run = Run(job_dir)
    summary = read_summary(job_dir)
    job, overrides, unreadable = None, {}, []
    try:
        job = run.job
    except Exception as exc:  # noqa: BLE001 - corrupt YAML of any kind: list the job, say why
        unreadable.append(exc)
    try:
        overrides = run.override_values
    except Exception as exc:  # noqa: BLE001
        unreadable.append(exc)
    if unreadable:
        reason = "; ".join(f"{type(e).__name__}: {' '.join(str(e).split())[:160]}" for e in unreadable)
        summary = {"status": "missing", "error": f"unreadable .hydra files: {reason}"}
    fields: dict[str, Any] = {"job": job}
    fields.update({key: summary.get(key) for key in SUMMARY_COLUMNS})
    if fields["status"] == "running" and not Summary.from_dict(summary).alive():
        fields.update(status="interrupted", error=f"its process ({summary['pid']}) ended without a status")
    fields.update({k: v for k, v in summary.items() if k.startswith("final_") and k not in fields})
    fields["dir"] = str(job_dir.resolve())
    return overrides, fields


def _uniform_column(values: pd.Series) -> pd.Series:
    """Overrides of one key may mix types (``null,1.0``: fine; ``true,2``: not); mixed ones become text."""

    def kind(v: Any) -> str:
        return "bool" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "text"

    kinds = {kind(v) for v in values.dropna()}
    if len(kinds) <= 1:
        return values
    return values.map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))


def build_index(sweep_dir: str | Path) -> pd.DataFrame:
    """The sweep index of ``sweep_dir``, built from its job directories alone (see the module docstring)."""
    sweep_dir = Path(sweep_dir)
    rows = [job_row(d) for d in find_jobs(sweep_dir)]
    rows.sort(key=lambda r: (r[1]["job"] is None, r[1]["job"] or 0, r[1]["dir"]))
    override_keys: list[str] = []
    for overrides, _ in rows:
        override_keys += [k for k in overrides if k not in override_keys]
    fixed = ["job", *SUMMARY_COLUMNS]
    extra = sorted({k for _, f in rows for k in f if k not in fixed and k != "dir"})
    columns = ["job", *override_keys, *SUMMARY_COLUMNS, *extra, "dir"]
    records = [{**{k: o.get(k) for k in override_keys}, **f} for o, f in rows]
    index = pd.DataFrame.from_records(records, columns=columns)
    for key in override_keys:
        index[key] = _uniform_column(index[key])
    for key in INT_COLUMNS:
        index[key] = index[key].astype("Int64")
    for key in index.columns:
        if key.startswith("final_") or key.endswith("_seconds"):
            index[key] = index[key].astype("float64")
    for key in ("status", "error", "dir"):
        index[key] = index[key].astype("string")
    return index


def write_index(sweep_dir: str | Path) -> pd.DataFrame:
    """Build the index of ``sweep_dir`` and write it to ``sweep_dir/sweep.parquet`` (atomically)."""
    sweep_dir = Path(sweep_dir)
    with _locked(sweep_dir):  # jobs of a sweep whose launcher died index it themselves, maybe at once
        index = build_index(sweep_dir)
        tmp = sweep_dir / f"{INDEX_FILE}.{os.getpid()}.tmp"
        index.to_parquet(tmp, index=False)
        os.replace(tmp, sweep_dir / INDEX_FILE)
    return index


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a directory (where there is one): the last writer saw every job's summary."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_index(sweep_dir: str | Path) -> pd.DataFrame:
    """Read ``sweep_dir/sweep.parquet`` (run ``initlab sweep-index DIR`` first if it is missing)."""
    return pd.read_parquet(Path(sweep_dir) / INDEX_FILE)


def status_counts(index: pd.DataFrame) -> dict[str, int]:
    """Jobs per status, in a fixed order (completed, diverged, failed, ...), zero counts left out."""
    counts = index["status"].value_counts().to_dict()
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
    return {status: int(counts[status]) for status in order}


def summary_line(index: pd.DataFrame, index_path: Path) -> str:
    """E.g. ``sweep: 8 jobs, 7 completed, 1 failed (see outputs/multirun/.../sweep.parquet)``."""
    parts = [f"{n} {status}" for status, n in status_counts(index).items()]
    return f"sweep: {len(index)} jobs" + "".join(f", {p}" for p in parts) + f" (see {index_path})"


def failures(index: pd.DataFrame) -> pd.DataFrame:
    """The rows of jobs that did not run to their end (status other than completed or diverged)."""
    return index[~index["status"].isin(OK_STATUSES)]


def varying_overrides(index: pd.DataFrame) -> list[str]:
    """Override columns whose value differs between jobs (what the sweep swept)."""
    fixed = {"job", "dir", *SUMMARY_COLUMNS}
    overrides = [c for c in index.columns if c not in fixed and not c.startswith("final_")]
    return [c for c in overrides if index[c].astype("string").nunique(dropna=False) > 1]


def describe_failures(index: pd.DataFrame) -> list[str]:
    """One line per job that did not run to its end: job number, swept values, status and error."""
    swept = varying_overrides(index)
    lines = []
    for _, row in failures(index).iterrows():
        values = " ".join(f"{k}={'null' if pd.isna(row[k]) else row[k]}" for k in swept)
        error = row["error"] if isinstance(row["error"], str) else "no error recorded"
        job = row["job"] if not pd.isna(row["job"]) else f"in {Path(row['dir']).name}/"  # no job number
        lines.append(f"  job {job} ({values}): {row['status']}: {error}")
    return lines


def check_sweep_dir(path: Path) -> None:
    """UserError unless ``path`` is a directory holding job directories (and not a run directory itself)."""
    expected = "expected a sweep directory (outputs/multirun/DATE/TIME) holding job directories"
    if not path.is_dir():
        raise UserError(f"{path} is not a directory: {expected}")
    if is_job(path):
        raise UserError(f"{path} is a run directory, not a sweep directory: {expected}")
    if not find_jobs(path):
        raise UserError(f"{path} holds no job directories (with .hydra/overrides.yaml): {expected}")


def main(argv: list[str]) -> int:
    """Rebuild a sweep directory's sweep.parquet from its job directories."""
    parser = argparse.ArgumentParser(
        prog="initlab sweep-index",
        description=main.__doc__,
        epilog="Columns: job, one per override, status, error, steps_done, diverged_at, final metrics, "
        "wall_seconds, startup_seconds, dir.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory, e.g. outputs/multirun/DATE/TIME")
    args = parser.parse_args(argv)
    check_sweep_dir(args.sweep_dir)
    index = write_index(args.sweep_dir)
    print(summary_line(index, args.sweep_dir / INDEX_FILE))
    for line in describe_failures(index):
        print(line)
    return 0
