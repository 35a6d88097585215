"""Run directories: what one is, how to find them, and :class:`Run`, the reader of what a run left on disk.

Every reader of run directories -- ``initlab plot``, ``initlab check``, the sweep index, the Python API --
goes through this module. The write side lives in :mod:`initlab.runs.write` (file names, Parquet logs,
``summary.json``); this is its mirror image.

* A **run directory** holds ``summary.json`` or ``metrics.parquet`` (:func:`is_run_dir`); a **job
  directory** of a sweep holds ``.hydra/overrides.yaml`` (:func:`job_dirs`).
* :func:`collect_runs` finds every run under run directories, sweep directories and globs.
* :mod:`initlab.runs.overrides` reads a run's ``key=value`` overrides with Hydra's own parser.
* :class:`Run` (what :func:`load_run` returns) reads each file on first use: a sweep index reads only the
  overrides and ``summary.json`` of its jobs, a figure only the logs it draws.
* Labels and seed groups of runs: :mod:`initlab.runs.grouping`.
"""

from initlab.runs.files import (
    BOOKKEEPING_KEYS,
    CONFIG_FILE,
    HIST_COLUMNS,
    HYDRA_DIR,
    HYDRA_FILE,
    NOISE_KEYS,
    OVERRIDES_FILE,
    SEED_KEY,
    SUMMARY_FILE,
    MissingData,
    find_run_dirs,
    is_run_dir,
    job_dirs,
    load_yaml,
    natural_key,
    read_parquet,
    read_summary,
    with_edges,
)
from initlab.runs.run import Run, RunData, collect_runs, load_run

__all__ = [
    "BOOKKEEPING_KEYS",
    "CONFIG_FILE",
    "HIST_COLUMNS",
    "HYDRA_DIR",
    "HYDRA_FILE",
    "NOISE_KEYS",
    "OVERRIDES_FILE",
    "SEED_KEY",
    "SUMMARY_FILE",
    "MissingData",
    "Run",
    "RunData",
    "collect_runs",
    "find_run_dirs",
    "is_run_dir",
    "job_dirs",
    "load_run",
    "load_yaml",
    "natural_key",
    "read_parquet",
    "read_summary",
    "with_edges",
]
