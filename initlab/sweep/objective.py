"""What a job of ``initlab run`` returns to Hydra: the objective a sweeper (Optuna, Ax, ...) optimizes.

The config's ``objective`` node names a number of the run's ``summary.json`` and its direction::

    objective:
      metric: final_test_accuracy   # or final_test_loss, final_train_accuracy, final_train_loss
      direction: maximize           # or minimize

The job returns ``summary[metric]`` when the run completed. A run that diverged, failed, was interrupted or
left no finite value returns the worst value of the direction, −inf when maximizing and +inf when
minimizing: a finite-or-infinite float that Optuna records as a completed, bad trial. Returning None or
NaN instead would make Hydra's Optuna sweeper count a failed trial and, with its default
``max_failure_rate: 0``, stop the whole search.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from initlab.config import OBJECTIVE_DIRECTIONS as DIRECTIONS
from initlab.config import OBJECTIVE_METRICS as METRICS

WORST = {"maximize": -math.inf, "minimize": math.inf}  # one value per direction of DIRECTIONS
SWEEPER_PLUGINS = {"optuna": "hydra_plugins.hydra_optuna_sweeper", "ax": "hydra_plugins.hydra_ax_sweeper"}
SWEEPER_EXTRAS = {"optuna": "initlab[optuna]", "ax": "hydra-ax-sweeper"}


def objective_value(summary: Mapping[str, Any], metric: str, direction: str) -> float:
    """``summary[metric]`` of a completed run; the worst value of ``direction`` for any other run.

    A diverged run counts as the worst although its last evaluation may hold a chance-level accuracy:
    a learning rate that diverges must never look better than one that trains slowly.
    """
    value = summary.get(metric)
    if summary.get("status") != "completed" or not isinstance(value, int | float) or not math.isfinite(value):
        return WORST[direction]
    return float(value)


def returning_objective(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], float]:
    """Wrap Hydra's task function so that the job returns :func:`objective_value` of the run it made."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> float:
        from hydra.core.hydra_config import HydraConfig

        from initlab.runs import read_summary

        task(cfg)  # a single run that fails exits here; a sweep's job returns (its summary says why)
        summary = read_summary(Path(HydraConfig.get().runtime.output_dir))
        objective = cfg.get("objective") or {}
        metric = objective.get("metric", METRICS[0])
        direction = objective.get("direction", DIRECTIONS[0])
        if metric not in METRICS or direction not in DIRECTIONS:  # train() already reported it
            return math.nan
        return objective_value(summary, metric, direction)

    return job


def missing_sweeper(argv: list[str]) -> str | None:
    """The one-line error for ``hydra/sweeper=NAME`` (or an ``hparams_search`` preset, which picks Optuna)
    when NAME's plugin is not installed; None when everything is there."""
    import importlib.util

    wanted = {a.split("=", 1)[1] for a in argv if a.startswith(("hydra/sweeper=", "override hydra/sweeper="))}
    if any(a.startswith("hparams_search=") and not a.endswith("=null") for a in argv):
        wanted.add("optuna")
    for name in sorted(wanted & set(SWEEPER_PLUGINS)):
        try:
            found = importlib.util.find_spec(SWEEPER_PLUGINS[name]) is not None
        except ModuleNotFoundError:  # not even the hydra_plugins namespace
            found = False
        if not found:
            return (
                f"hydra/sweeper={name} needs Hydra's {name} sweeper plugin, which is not installed: "
                f'pip install "{SWEEPER_EXTRAS[name]}"'
            )
    return None
