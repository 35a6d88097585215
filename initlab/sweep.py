"""Sweeps: per-job settings for parallel launchers, and the sweep index ``sweep.parquet``.

``initlab run -m ...`` is a Hydra multirun. The launcher (``hydra/launcher=basic|joblib|submitit_local|
submitit_slurm``) decides where the jobs run; each job writes its own directory ``<sweep dir>/<job num>/``
with ``.hydra/overrides.yaml`` and ``summary.json``. This module adds three things on top:

* :func:`configure_job` -- called by every job of a multirun (from ``initlab.cli._task``): under a parallel
  launcher it gives the job ``cores // parallel jobs`` torch threads (so jobs do not oversubscribe the
  CPUs) and turns its tqdm bar off (bars of parallel jobs would garble each other);
* :class:`SweepCallback` -- a Hydra callback (``hydra.callbacks.sweep_index`` in ``conf/config.yaml``) that
  prints one line per finished job, and when the multirun ends writes the index and prints a summary line;
* :func:`build_index` / ``initlab sweep-index DIR`` -- the index is built from the job directories alone,
  so it can be rebuilt at any time: after cluster jobs finished out of order, or after deleting or
  rerunning some jobs.

The index has one row per job directory, sorted by job number, with these columns:

``job``
    Hydra's job number (``hydra.job.num``).
one column per override, e.g. ``init``, ``act``, ``seed``, ``model.depth``
    the job's value (from ``.hydra/overrides.yaml``), typed: ``model.depth=2`` gives the integer 2.
``status``
    from ``summary.json``: ``completed``, ``diverged``, ``failed``, ``interrupted``, ``running`` (not
    finished, or killed hard), or ``missing`` (the job has no ``summary.json``).
``error``
    why a job failed (null otherwise).
``steps_done``, ``diverged_at``, ``final_{train,test}_{loss,accuracy}``, ``wall_seconds``, ``startup_seconds``
    from ``summary.json`` (null when absent).
``dir``
    the job directory (absolute path), e.g. for ``initlab.load_run(row.dir)``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from initlab.storage import SUMMARY_FILE

INDEX_FILE = "sweep.parquet"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"

# summary.json fields copied into the index, in column order (any other ``final_*`` field is added too).
SUMMARY_COLUMNS = [
    "status",
    "error",
    "steps_done",
    "diverged_at",
    "final_train_loss",
    "final_train_accuracy",
    "final_test_loss",
    "final_test_accuracy",
    "wall_seconds",
    "startup_seconds",
]
INT_COLUMNS = ("job", "steps_done", "diverged_at")
# Statuses of a job that ran to its end; anything else makes `initlab run -m` exit with 1.
OK_STATUSES = ("completed", "diverged")
STATUS_ORDER = ("completed", "diverged", "failed", "interrupted", "running", "missing")


# --------------------------------------------------------------------------------------------------
# Per-job settings under parallel launchers
# --------------------------------------------------------------------------------------------------


def silence_launcher_schema_warning() -> None:
    """Hide Hydra's "validated against ConfigStore schema with the same name" warning for our launchers.

    ``conf/hydra/launcher/{joblib,submitit_local,submitit_slurm}.yaml`` deliberately carry the names of the
    launcher plugins' own configs, so that ``hydra/launcher=joblib`` picks initlab's documented defaults
    (initlab's ``conf/`` comes first on the search path). Hydra 1.3 then merges each file onto the plugin's
    schema of the same name (so types are still checked) and warns that this matching is deprecated, on
    every composition, in every job process. Our files list every field, so they also work without it.
    """
    warnings.filterwarnings(
        "ignore",
        message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema with the same name",
        category=UserWarning,
    )


# Job processes (joblib workers, submitit jobs) import this module when they unpickle the SweepCallback,
# before they compose their job's config.
silence_launcher_schema_warning()


def available_cores() -> int:
    """CPU cores this process may use (joblib's count: respects CPU affinity, cgroup quotas, SLURM)."""
    from joblib import cpu_count

    return cpu_count()


def joblib_workers(launcher: DictConfig | dict[str, Any], cores: int | None = None) -> int:
    """Jobs the joblib launcher runs at once: ``n_jobs``, where -1 means one per core, -2 all but one..."""
    n_jobs = int(launcher.get("n_jobs") or -1)
    return n_jobs if n_jobs > 0 else max(1, (cores or available_cores()) + 1 + n_jobs)


def launcher_kind(launcher: DictConfig | dict[str, Any]) -> str:
    """``basic``, ``joblib``, ``submitit`` or ``other``, from the launcher config's ``_target_``."""
    target = str(launcher.get("_target_", ""))
    if target.endswith("BasicLauncher"):
        return "basic"
    if "joblib" in target:
        return "joblib"
    if "submitit" in target:
        return "submitit"
    return "other"


def threads_per_job(launcher: DictConfig | dict[str, Any], cores: int | None = None) -> int | None:
    """Torch threads for one job of a sweep run by ``launcher``; None: keep torch's default.

    * basic (jobs one after another): torch's default, i.e. all cores;
    * joblib: ``cores // n_jobs`` (``n_jobs`` = -1 means one job per core, -2 all cores but one, as in
      joblib), at least 1;
    * submitit (local or SLURM): the launcher's ``cpus_per_task``, else ``$SLURM_CPUS_PER_TASK``, else 1
      (submitit_local starts every job of the sweep at once).
    """
    kind = launcher_kind(launcher)
    if kind == "joblib":
        cores = cores or available_cores()
        return max(1, cores // joblib_workers(launcher, cores))
    if kind == "submitit":
        cpus = launcher.get("cpus_per_task") or os.environ.get("SLURM_CPUS_PER_TASK")
        return max(1, int(cpus)) if cpus else 1
    return None


def configure_job(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Prepare one job of a multirun: torch threads and progress bar, chosen from the launcher.

    Under a parallel launcher (anything but Hydra's basic one) the job's tqdm bar is turned off; the
    :class:`SweepCallback` prints one line per finished job instead.
    """
    if launcher_kind(hydra_cfg.launcher) == "basic":
        return
    threads = threads_per_job(hydra_cfg.launcher)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    cfg.train.progress = False


# --------------------------------------------------------------------------------------------------
# The sweep index
# --------------------------------------------------------------------------------------------------


@functools.cache
def _override_parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(lines: list[str]) -> dict[str, Any]:
    """``["init=xavier", "model.depth=2"]`` -> ``{"init": "xavier", "model.depth": 2}`` (typed by Hydra).

    Deletions (``~key``) are skipped; lists and dicts are kept as Hydra writes them (``[0.9,0.99]``).
    """
    values: dict[str, Any] = {}
    for override in _override_parser().parse_overrides(lines):
        if override.is_delete():
            continue
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        value = override.value()
        if isinstance(value, list | dict):
            value = override.get_value_element_as_str()
        values[key] = value
    return values


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every job directory below ``sweep_dir`` (a directory holding ``.hydra/overrides.yaml``)."""
    found = (p.parent.parent for p in Path(sweep_dir).rglob("overrides.yaml") if p.parent.name == ".hydra")
    return sorted(p for p in found if ".submitit" not in p.relative_to(sweep_dir).parts)


def _load_yaml(path: Path) -> Any:
    """A YAML file as plain Python objects (PyYAML's C loader: ~15x faster than OmegaConf.load)."""
    import yaml

    with open(path) as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _job_number(job_dir: Path) -> int | None:
    """``hydra.job.num`` from the job's ``.hydra/hydra.yaml`` (else the directory name, if a number)."""
    if (job_dir / HYDRA_FILE).is_file():
        num = ((_load_yaml(job_dir / HYDRA_FILE) or {}).get("hydra") or {}).get("job", {}).get("num")
        if isinstance(num, int):
            return num
    return int(job_dir.name) if job_dir.name.isdigit() else None


def read_summary(job_dir: Path) -> dict[str, Any]:
    """The job's summary.json; ``{"status": "missing", ...}`` when it is absent or unreadable."""
    path = job_dir / SUMMARY_FILE
    if not path.is_file():
        return {"status": "missing", "error": f"no {SUMMARY_FILE}"}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return {"status": "missing", "error": f"{SUMMARY_FILE} unreadable: {exc}"}


def job_row(job_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One job's (override values, index fields)."""
    overrides = parse_overrides([str(line) for line in _load_yaml(job_dir / OVERRIDES_FILE) or []])
    summary = read_summary(job_dir)
    fields: dict[str, Any] = {"job": _job_number(job_dir)}
    fields.update({key: summary.get(key) for key in SUMMARY_COLUMNS})
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
    rows = [job_row(d) for d in job_dirs(sweep_dir)]
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
    index = build_index(sweep_dir)
    tmp = sweep_dir / (INDEX_FILE + ".tmp")
    index.to_parquet(tmp, index=False)
    os.replace(tmp, sweep_dir / INDEX_FILE)
    return index


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
        lines.append(f"  job {row['job']} ({values}): {row['status']}: {error}")
    return lines


# --------------------------------------------------------------------------------------------------
# The Hydra callback
# --------------------------------------------------------------------------------------------------

_last_exit_code = 0  # set by SweepCallback.on_multirun_end, read (and reset) by exit_code()
_running_sweep: Path | None = None  # the sweep directory between on_multirun_start and on_multirun_end


def index_interrupted_sweep() -> Path | None:
    """Index a sweep that Ctrl-C stopped (from what its jobs left on disk); returns the index's path."""
    global _running_sweep
    sweep_dir, _running_sweep = _running_sweep, None
    if sweep_dir is None or not sweep_dir.is_dir():
        return None
    write_index(sweep_dir)
    return sweep_dir / INDEX_FILE


def exit_code() -> int:
    """1 if the last multirun of this process had a job that failed, else 0 (for ``initlab run -m``)."""
    global _last_exit_code
    code, _last_exit_code = _last_exit_code, 0
    return code


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


class SweepCallback(Callback):
    """Prints where a sweep runs, one line per finished job, and writes the sweep index at the end.

    ``on_job_end`` runs inside the job's process (the terminal under basic and joblib, the job's log file
    under submitit); the other two run in the ``initlab run -m`` process.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _running_sweep
        _running_sweep = Path(str(config.hydra.sweep.dir))
        launcher = config.hydra.launcher
        kind = launcher_kind(launcher)
        how = ""
        if kind == "joblib":
            threads = threads_per_job(launcher)
            how = f", {joblib_workers(launcher)} jobs at a time, torch threads per job: {threads}"
        elif kind == "submitit":
            how = f" (job logs in {config.hydra.sweep.dir}/.submitit/)"
        print(f"sweep: {kind} launcher{how}; job directories in {config.hydra.sweep.dir}", flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        summary = read_summary(Path(config.hydra.runtime.output_dir))
        status = summary.get("status")
        if status == "failed":  # initlab.cli._task already printed the error
            return
        where = f"job {config.hydra.job.num} ({' '.join(config.hydra.overrides.task)})"
        text = f"{where}: {status} after {summary.get('steps_done')} steps"
        if summary.get("final_test_accuracy") is not None:
            text += f", test accuracy {summary['final_test_accuracy']:.4f}"
        if summary.get("wall_seconds") is not None:
            text += f", {summary['wall_seconds']:.1f} s"
        print(text, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last_exit_code, _running_sweep
        sweep_dir = Path(str(config.hydra.sweep.dir))
        _running_sweep = None
        if not sweep_dir.is_dir():
            return
        index = write_index(sweep_dir)
        print(summary_line(index, sweep_dir / INDEX_FILE), flush=True)
        for line in describe_failures(index):
            print(line, flush=True)
        _last_exit_code = 1 if len(failures(index)) else 0


# --------------------------------------------------------------------------------------------------
# initlab sweep-index DIR
# --------------------------------------------------------------------------------------------------


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
    if not args.sweep_dir.is_dir():
        print(f"initlab: error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    index = write_index(args.sweep_dir)
    if index.empty:
        print(f"initlab: warning: no job directories (with .hydra/overrides.yaml) in {args.sweep_dir}")
    print(summary_line(index, args.sweep_dir / INDEX_FILE))
    for line in describe_failures(index):
        print(line)
    return 0
