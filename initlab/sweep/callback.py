"""The Hydra callbacks of ``initlab run`` (the run directory, the sweep index) and per-job settings.

``initlab run -m ...`` is a Hydra multirun. The launcher (``hydra/launcher=basic|joblib|submitit_local|
submitit_slurm``) decides where the jobs run; each job writes its own directory ``<sweep dir>/<job num>/``
with ``.hydra/overrides.yaml`` and ``summary.json``. This module adds three things on top:

* :func:`configure_job` -- called by every job of a multirun (from ``initlab.cli._task``): under a parallel
  launcher it gives the job ``cores // parallel jobs`` torch threads (so jobs do not oversubscribe the
  CPUs) and turns its tqdm bar off (bars of parallel jobs would garble each other);
* :class:`RunDirCallback` -- a Hydra callback (``hydra.callbacks.run_dir``) that claims a single run's
  directory before Hydra writes into it (:func:`initlab.runs.lock.claim`) and hands it to the task through
  the :class:`~initlab.sweep.session.Session`; for a multirun it makes the sweep's directory, refusing one
  that holds an earlier sweep unless ``resume=true`` (:func:`initlab.runs.lock.claim_sweep`);
* :class:`SweepCallback` -- a Hydra callback (``hydra.callbacks.sweep_index`` in ``conf/config.yaml``) that
  prints one line per finished job, and when the multirun ends writes the index ``sweep.parquet``
  (:mod:`initlab.sweep.index`, which also holds ``initlab sweep-index``) and prints a summary line.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from initlab.errors import AbortRun, UserError, one_line_warnings
from initlab.runs import find_jobs, read_summary
from initlab.runs.layout import INDEX_FILE, Summary
from initlab.runs.lock import claim, claim_sweep, is_timestamped
from initlab.sweep import lifeline
from initlab.sweep.index import describe_failures, failures, summary_line, write_index
from initlab.sweep.resume import KEEP_STATUSES, snapshot, was_kept
from initlab.sweep.session import SESSION, Session

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
    :class:`SweepCallback` prints one line per finished job instead. A job in a process of its own ends with
    its launcher (:mod:`initlab.sweep.lifeline`).
    """
    lifeline.watch()
    one_line_warnings()
    if launcher_kind(hydra_cfg.launcher) == "basic":
        return
    threads = threads_per_job(hydra_cfg.launcher)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    cfg.train.progress = False


# --------------------------------------------------------------------------------------------------
# The Hydra callbacks
# --------------------------------------------------------------------------------------------------

JOB_GRACE_SECONDS = 10.0  # how long an interrupted sweep waits for its jobs to record their status


def _still_running(job_dir: Path) -> bool:
    summary = Summary.from_dict(read_summary(job_dir))
    return summary.status == "running" and summary.alive()


def index_interrupted_sweep(session: Session = SESSION) -> Path | None:
    """Index a sweep that Ctrl-C stopped (from what its jobs left on disk); returns the index's path.

    Jobs in other processes (submitit's) got the Ctrl-C too and are still recording their status: the index
    waits for them, up to ``JOB_GRACE_SECONDS``.
    """
    sweep_dir, session.sweep_dir = session.sweep_dir, None
    if sweep_dir is None or not sweep_dir.is_dir():
        return None
    deadline = time.monotonic() + JOB_GRACE_SECONDS
    while time.monotonic() < deadline and any(map(_still_running, find_jobs(sweep_dir))):
        time.sleep(0.1)
    write_index(sweep_dir)
    return sweep_dir / INDEX_FILE


def index_orphaned_job(sweep_dir: Path) -> None:
    """An interrupted job whose launcher died: index its sweep (no one else will), then end its process."""
    if sweep_dir.is_dir():
        write_index(sweep_dir)
    lifeline.finish_orphan()


def swept_keys(config: DictConfig) -> set[str]:
    """The keys a multirun varies: sweep overrides on the command line (``seed=0,1``) and the sweeper's
    ``params`` (what experiment presets sweep)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    keys = {o.key_or_group for o in overrides if o.is_sweep_override()}
    return keys | set(OmegaConf.select(config, "hydra.sweeper.params", default=None) or {})


def job_label(hydra_cfg: DictConfig, session: Session = SESSION) -> str:
    """A job's name for its progress bar: ``job 3: init=kaiming seed=1`` (the values the sweep varies)."""
    swept = session.swept_keys
    values = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+") in swept]
    return " ".join([f"job {hydra_cfg.job.num}:", *values]) if values else f"job {hydra_cfg.job.num}"


def _is_multirun(config: DictConfig) -> bool:
    from hydra.types import RunMode

    return OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN


def _timestamped(config: DictConfig, key: str) -> bool:
    """Whether the directory setting ``hydra.<key>.dir`` is Hydra's ``${now:...}`` default kind."""
    raw = OmegaConf.to_container(config.hydra[key], resolve=False)
    return is_timestamped(str(raw.get("dir", ""))) if isinstance(raw, dict) else False


class RunDirCallback(Callback):
    """Claims a single run's directory before Hydra writes into it; makes a sweep's directory.

    A refusal (the directory is taken, or cannot be made) stops ``initlab run`` with one line and exit
    status 2 (:class:`~initlab.errors.AbortRun`: Hydra turns an ``Exception`` in a callback into a warning).
    """

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or SESSION

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(str(config.hydra.run.dir))
        try:
            claimed = claim(path, "hydra.run.dir", _timestamped(config, "run"))
        except UserError as exc:
            raise AbortRun(str(exc)) from None
        self.session.claim = claimed
        if claimed.path != path:
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.run.dir = str(claimed.path)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(str(config.hydra.sweep.dir))
        try:
            resume = config.get("resume") is True
            made = claim_sweep(path, "hydra.sweep.dir", _timestamped(config, "sweep"), resume)
        except UserError as exc:
            raise AbortRun(str(exc)) from None
        if made != path:  # the jobs compose their config anew: they learn the directory from overrides
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.sweep.dir = str(made)
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={made}")


class SweepCallback(Callback):
    """Prints where a sweep runs, one line per finished job, and writes the sweep index at the end.

    ``on_job_end`` runs inside the job's process (the terminal under basic and joblib, the job's log file
    under submitit); the other two run in the ``initlab run -m`` process.
    """

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or SESSION

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self.session.sweep_dir = Path(str(config.hydra.sweep.dir))
        self.session.swept_keys = swept_keys(config)
        if config.get("resume") is True:  # record what the jobs find before Hydra rewrites their .hydra/
            done = [e for e in snapshot(sweep_dir).values() if e["status"] in KEEP_STATUSES]
            print(f"resume: {len(done)} finished runs in {sweep_dir}; same-config jobs are kept", flush=True)
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
        if was_kept(config.hydra.runtime.output_dir, self.session):
            text = f"{where}: kept ({status} after {summary.get('steps_done')} steps)"
        if summary.get("final_test_accuracy") is not None:
            text += f", test accuracy {summary['final_test_accuracy']:.4f}"
        if summary.get("wall_seconds") is not None:
            text += f", {summary['wall_seconds']:.1f} s"
        if not str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).endswith("BasicSweeper"):
            value = getattr(job_return, "_return_value", None)  # what the sweeper gets
            text += f"; objective {value:.6g}" if isinstance(value, float) else f"; objective {value}"
        print(text, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        self.session.sweep_dir = None
        if not sweep_dir.is_dir():
            return
        index = write_index(sweep_dir)
        print(summary_line(index, sweep_dir / INDEX_FILE), flush=True)
        for line in describe_failures(index):
            print(line, flush=True)
        self.session.exit_code = 1 if len(failures(index)) else 0
