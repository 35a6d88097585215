"""Resuming a sweep: ``initlab run -m ... hydra.sweep.dir=DIR resume=true`` skips the jobs already done.

Rerunning a multirun into the directory of an earlier one (stopped by Ctrl-C, a time limit, a crash) with
``resume=true``:

* a job whose directory holds a ``completed`` or ``diverged`` run of the **same config** is skipped: its
  files stay as they are, and it returns the earlier run's objective to the sweeper;
* every other job runs: ``failed``, ``interrupted``, ``running`` (killed hard, half-written), ``missing``
  (no ``summary.json``), a directory that never existed, or a finished run of a different config; the old
  run files of its directory (and the lock of a job killed hard) are removed first, so no stale log part
  mixes into the new run;
* at the end the sweep index ``sweep.parquet`` is rebuilt from all job directories, as after any sweep.

"The same config" is the composed config (``.hydra/config.yaml``) minus :data:`IGNORED_KEYS` (``resume``
and display settings such as ``train.progress``). Hydra
rewrites a job's ``.hydra/`` before the job starts, so :func:`snapshot` records every job directory's
earlier config and status in ``DIR/.initlab-resume.json`` (:data:`~initlab.runs.layout.RESUME_FILE`) when
the multirun starts (in the process that launches the jobs, from :class:`~.callback.SweepCallback`); each
job, in whatever process or node the launcher (basic, joblib, submitit) runs it, compares its own config
with that record (:func:`resumable`). ``resume`` itself is left out of labels, indexes and comparisons
(:data:`initlab.runs.NOISE_KEYS`).
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.runs import CONFIG_FILE, find_jobs, load_yaml, read_summary
from initlab.runs.layout import FINISHED, RESUME_FILE
from initlab.runs.lock import clear_run_files
from initlab.runs.write import write_json
from initlab.sweep.session import SESSION, Session

KEEP_STATUSES = FINISHED
# config keys (dotted) that do not change what a run computes: resume itself, and the progress bar
IGNORED_KEYS = ("resume", "train.progress")


def comparable(config: Any) -> Any:
    """A config as plain data, without :data:`IGNORED_KEYS`."""
    if not isinstance(config, dict):
        return config
    config = copy.deepcopy(config)
    for key in IGNORED_KEYS:
        *parents, leaf = key.split(".")
        node = functools.reduce(lambda n, part: n.get(part) if isinstance(n, dict) else None, parents, config)
        if isinstance(node, dict):
            node.pop(leaf, None)
    return config


def _as_loaded(cfg: DictConfig) -> Any:
    """``cfg`` as it reads back from a saved ``config.yaml`` (unresolved, through the same YAML loader)."""
    import yaml

    text = OmegaConf.to_yaml(cfg, resolve=False)
    return comparable(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def snapshot(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Record every job directory's config and status in ``sweep_dir/.initlab-resume.json``; returns it."""
    sweep_dir = Path(sweep_dir)
    record: dict[str, dict[str, Any]] = {}
    for job_dir in find_jobs(sweep_dir):
        config_file = job_dir / CONFIG_FILE
        try:
            config = comparable(load_yaml(config_file)) if config_file.is_file() else None
        except Exception:  # noqa: BLE001 - an unreadable config: the job reruns
            config = None
        status = str(read_summary(job_dir).get("status"))
        record[str(job_dir.resolve())] = {"status": status, "config": config}
    if sweep_dir.is_dir():
        write_json(sweep_dir / RESUME_FILE, record)
    return record


def read_snapshot(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(sweep_dir) / RESUME_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def decide(earlier: dict[str, Any] | None, cfg: DictConfig) -> str:
    """``keep`` (a finished run of the same config), ``rerun`` (anything else there) or ``run`` (nothing)."""
    if not earlier:
        return "run"
    if earlier.get("status") in KEEP_STATUSES and earlier.get("config") == _as_loaded(cfg):
        return "keep"
    return "rerun"


def was_kept(run_dir: str | Path, session: Session = SESSION) -> bool:
    """Whether this process skipped the job of ``run_dir`` because its earlier run was kept."""
    return Path(run_dir).resolve() in session.kept


def resumable(task: Callable[[DictConfig], Any], session: Session = SESSION) -> Callable[[DictConfig], Any]:
    """Wrap Hydra's task function: under ``resume=true`` in a multirun, skip or clean up (see above)."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir).resolve()
        session.kept.discard(run_dir)  # (a sweep run earlier in this process may have kept it)
        if cfg.get("resume") is True and hc.mode != RunMode.MULTIRUN:
            print("initlab: warning: resume=true applies to sweeps (-m); this run trains", file=sys.stderr)
        if cfg.get("resume") is True and hc.mode == RunMode.MULTIRUN:
            earlier = read_snapshot(hc.sweep.dir).get(str(run_dir))
            action = decide(earlier, cfg)
            if action == "keep":
                session.kept.add(run_dir)
                return None
            if action == "rerun":
                why = earlier.get("status") if earlier else "missing"
                if earlier and earlier.get("status") in KEEP_STATUSES:
                    why = "another config"
                print(f"resume: job {hc.job.num}: rerunning (was {why})", file=sys.stderr, flush=True)
                clear_run_files(run_dir, stale_lock=True)
        return task(cfg)

    return job
