"""The Python API for notebooks: train a run in-process, and read a sweep as one table.

* :func:`run` composes the config exactly as ``initlab run`` does (the same ``conf/`` files, Hydra's own
  override grammar and :func:`initlab.config.validate`), trains it with :func:`initlab.lab.train.train`, and
  returns the run directory opened by :func:`initlab.runs.load_run`. A bad value raises the same
  :class:`~initlab.errors.UserError` whose one line the command prints.
* :func:`load_sweep` is the sweep index (:func:`initlab.sweep.index.build_index`) of a directory of runs.

The figures are :mod:`initlab.plots.drawing`; every reader of run directories stays in :mod:`initlab.runs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from initlab.config import ConfigError, config_dir, group_options, groups, validate
from initlab.errors import UserError
from initlab.runs import Run, load_run
from initlab.runs.lock import is_timestamped
from initlab.runs.write import RunWriter

OVERWRITE_WAY_OUT = "choose another run_dir, or pass overwrite=True to replace it"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _composition_error(exc: Exception, overrides: Sequence[str]) -> ConfigError:
    """Hydra's multi-line composition error as the CLI's one line; unknown group options list the allowed."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in groups() and value and value not in group_options(key) and "," not in value:
            return ConfigError(
                f"{key}={value} is not allowed: expected one of {', '.join(group_options(key))}"
            )
    return ConfigError(_one_line(exc))


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config of ``initlab run OVERRIDES`` (with its ``hydra`` node), validated.

    Raises :class:`~initlab.config.ConfigError` (a ``UserError``) for an unknown group option, an unknown
    key, a sweep (``seed=0,1``: use ``initlab run -m``) or a value :func:`~initlab.config.validate` refuses.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = [str(o) for o in overrides]
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise _composition_error(exc, overrides) from None
    validate(cfg)
    from initlab.lab.models import check_model_data  # the options' rows: torch, but nothing is written yet

    check_model_data(cfg)
    return cfg


def run(
    overrides: Sequence[str] | str = (), run_dir: str | Path | None = None, overwrite: bool = False
) -> Run:
    """Train one network in this process, like ``initlab run OVERRIDES``; returns the finished :class:`Run`.

    ``overrides``: Hydra overrides (``["init=kaiming", "act=relu", "model.depth=10"]``, or one string split
    on spaces). ``run_dir``: where the logs go; by default ``hydra.run.dir`` (``outputs/runs/DATE/TIME``
    under the working directory, ``TIME_1``, ... for runs started in the same second), as for the command.
    A ``run_dir`` that holds a run (live, killed or finished) is refused with a
    :class:`~initlab.runs.lock.DirectoryTaken` naming it; ``overwrite=True`` replaces a run there that is
    not live. The directory gets the same ``.hydra/config.yaml`` and ``.hydra/overrides.yaml`` Hydra
    writes, so labels, ``initlab plot`` and ``initlab check`` treat it like any other run. A run that
    diverges or is interrupted (the notebook's stop button) is returned with that ``status``; a run that
    fails raises (and one refused before its first step leaves no directory, as on the command line).
    """
    from initlab.lab.train import train

    overrides = overrides.split() if isinstance(overrides, str) else [str(o) for o in overrides]
    cfg = compose(overrides)  # every check before anything is written
    hydra_node = cfg.hydra
    if run_dir is None:
        raw = OmegaConf.to_container(hydra_node.run, resolve=False).get("dir", "")  # type: ignore[union-attr]
        path, key, timestamped = Path(str(hydra_node.run.dir)), "hydra.run.dir", is_timestamped(str(raw))
    else:
        path, key, timestamped = Path(run_dir), "run_dir", False
    with_hydra = OmegaConf.to_container(cfg, resolve=False)
    del with_hydra["hydra"]  # type: ignore[arg-type, union-attr]
    task_cfg = OmegaConf.create(with_hydra)
    writer = RunWriter.open(
        path, key=key, timestamped=timestamped, overwrite=overwrite, way_out=OVERWRITE_WAY_OUT,
        seed=task_cfg.get("seed"),
    )
    task = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]  # as Hydra does
    try:
        writer.write_hydra(with_hydra, task, _hydra_record(task, writer.path))  # type: ignore[arg-type]
    except BaseException:
        writer.discard()
        raise
    try:
        train(task_cfg, writer)  # closes the writer, whatever happens
    except UserError:  # refused before its first step: leave nothing, as the command does
        writer.discard()
        raise
    return load_run(writer.path)


def _hydra_record(overrides: list[str], path: Path) -> dict[str, Any]:
    """What ``.hydra/hydra.yaml`` needs for readers: the overrides and the output directory."""
    return {
        "hydra": {
            "mode": "RUN",
            "overrides": {"task": list(overrides)},
            "runtime": {"output_dir": str(path.resolve())},
        }
    }


def load_sweep(path: str | Path) -> pd.DataFrame:
    """One row per job directory below ``path`` (a sweep, or any folder of runs made by :func:`run`).

    The columns are those of ``sweep.parquet`` (:mod:`initlab.sweep.index`): ``job``, one per override,
    ``status``, ``error``, final metrics, ``dir`` (open a row with ``initlab.load_run(row.dir)``). Built
    from the job directories themselves, so a sweep still running shows its finished jobs.
    """
    from initlab.sweep.index import build_index

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    return build_index(path)
