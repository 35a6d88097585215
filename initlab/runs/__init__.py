"""Run directories, both sides: what one is, how to find them, who writes them, and :class:`Run`, the reader.

Every writer and every reader of run directories -- ``initlab run``, :func:`initlab.run`, sweep jobs,
:func:`initlab.probe`, ``initlab plot``/``check``/``export-tb``/``sweep-index``, :func:`initlab.load_sweep`,
resume -- goes through this package, and it imports nothing of initlab but :mod:`initlab.errors`.

* :mod:`~initlab.runs.layout` -- every file name, :class:`Summary` (``summary.json`` as one typed record)
  and the three rules: :func:`is_run`, :func:`is_job` (what a sweep's index lists) and :func:`is_occupied`
  (whether a directory is taken; :func:`occupant` says by what);
* :mod:`~initlab.runs.lock` -- one run per directory: :func:`~initlab.runs.lock.claim`;
* :mod:`~initlab.runs.write` -- :class:`~initlab.runs.write.RunWriter` (claim, summary, close) and the logs;
* :func:`collect_runs` finds every run under run directories, sweep directories and globs;
* :mod:`initlab.runs.overrides` reads a run's ``key=value`` overrides with Hydra's own parser;
* :class:`Run` (what :func:`load_run` returns) reads each file on first use: a sweep index reads only the
  overrides and ``summary.json`` of its jobs, a figure only the logs it draws;
* labels and seed groups of runs: :mod:`initlab.runs.grouping`.
"""

from initlab.runs.files import (
    BOOKKEEPING_KEYS,
    HIST_COLUMNS,
    NOISE_KEYS,
    SEED_KEY,
    MissingData,
    load_yaml,
    read_parquet,
    with_edges,
)
from initlab.runs.layout import (
    CONFIG_FILE,
    HYDRA_DIR,
    HYDRA_FILE,
    OVERRIDES_FILE,
    SUMMARY_FILE,
    Summary,
    find_jobs,
    find_runs,
    is_job,
    is_occupied,
    is_run,
    natural_key,
    occupant,
    read_summary,
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
    "Summary",
    "collect_runs",
    "find_jobs",
    "find_runs",
    "is_job",
    "is_occupied",
    "is_run",
    "load_run",
    "load_yaml",
    "natural_key",
    "occupant",
    "read_parquet",
    "read_summary",
    "with_edges",
]
