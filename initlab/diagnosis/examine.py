"""The doctor's examination: a short probed training of a copy of the model, and what it leaves behind.

:func:`examine` trains ``steps`` updates (300 by default) with the caller's loss and optimizer settings,
probing the training pass at :func:`probe_steps` -- dense at the start (log-spaced: 0, 1, 2, 4, ...) and
four more spread over the second half, so that a unit found dead there was dead for a while -- with the
probe library (:func:`initlab.probe`, writing ``layers.parquet`` into the run directory) and the doctor's
own hooks (:mod:`~initlab.diagnosis.watch`) on the same passes. A non-finite loss stops it (``diverged``).
Everything it found is an :class:`Evidence`, which the findings (:mod:`~initlab.diagnosis.findings`) read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from initlab.diagnosis.watch import Watch, rank_report, update_sizes
from initlab.runs import load_run

LossFn = Callable[[Any, Any], Tensor]
Batch = tuple[Any, Any]
DEFAULT_STEPS = 300


def probe_steps(steps: int) -> list[int]:
    """0, about ten log-spaced steps up to ``steps`` − 1, and four evenly over the second half."""
    last = max(steps - 1, 0)
    early = np.round(np.geomspace(1, max(last, 1), 10)) if last >= 1 else []
    late = np.round(np.linspace(steps / 2, last, 4)) if last >= 2 else []
    return sorted({s for s in (0, *(int(v) for v in early), *(int(v) for v in late)) if s < max(steps, 1)})


@dataclass
class Evidence:
    """What one examination measured (all frames empty when nothing was probed)."""

    layers: pd.DataFrame  # layers.parquet: step, layer, name, quantity, mean, std, ..., frac_saturated
    units: pd.DataFrame  # step, site, kind, units, dead_frac, dead (bool array)
    norms: pd.DataFrame  # step, name, mean_shift, log_var
    updates: pd.DataFrame  # step, name, ratio
    ranks: pd.DataFrame  # name, units, inputs, rank, identical (after the last step)
    losses: list[float]
    steps: int  # updates asked for
    steps_done: int
    diverged_at: int | None
    probed: list[int]
    batch_size: int | None
    activations: set[str]
    theory: dict[str, Any] = field(default_factory=dict)  # initlab's own nets: the mean-field prediction
    context: dict[str, Any] = field(default_factory=dict)  # what was examined (overrides, model class)

    @property
    def late(self) -> list[int]:
        """The probed steps of the second half of the training done (at least the last one)."""
        done = [s for s in self.probed if s < max(self.steps_done, 1)]
        half = [s for s in done if s >= self.steps_done / 2]
        return half or done[-1:]


def _rows_with_dead(units: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(units, columns=["step", "site", "kind", "units", "dead"])
    frame["dead_frac"] = [float(d.float().mean()) if len(d) else 0.0 for d in frame["dead"]]
    return frame


def batch_size(batch: Batch) -> int | None:
    x = batch[0]
    return int(len(x)) if hasattr(x, "__len__") else None


def examine(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    run_dir: Path,
    steps: int = DEFAULT_STEPS,
    after_step: Callable[[], None] | None = None,
) -> Evidence:
    """Train ``model`` for ``steps`` updates on ``batches`` ((x, y) pairs) with ``loss_fn(model(x), y)``;
    return the :class:`Evidence`. The probe library's run directory is ``run_dir``; ``after_step`` is called
    after every update."""
    from initlab.probing.loop import probe as make_probe

    probed = probe_steps(steps)
    watch, updates, losses = Watch(model), [], []
    diverged_at: int | None = None
    first: Batch | None = None
    with warnings.catch_warnings(), make_probe(model, run_dir, steps=probed, total_steps=steps) as probe:
        # a diverging net's non-finite values are the divergence finding, not a warning
        warnings.filterwarnings("ignore", message=".*non-finite values.*")
        model.train()
        for step, batch in zip(range(steps), batches, strict=False):
            first = first or batch
            x, y = batch
            optimizer.zero_grad(set_to_none=True)
            wanted = step in probed
            with probe.step(step), watch.watch(step) if wanted else nullcontext():
                loss = loss_fn(model(x), y)
                loss.backward()
            value = float(loss.detach())
            losses.append(value)
            probe.log_metrics(step, loss=value)
            if not math.isfinite(value):
                diverged_at = step
                probe.close("diverged")
                break
            with update_sizes(model, step, updates) if wanted and step > 0 else nullcontext():
                optimizer.step()
            if after_step is not None:  # a constraint of the training (initlab's max-norm projection)
                after_step()
    done = len(losses) - (diverged_at is not None)
    run = load_run(run_dir)
    return Evidence(
        layers=run.layers,
        units=_rows_with_dead(watch.units),
        norms=pd.DataFrame(watch.norms, columns=["step", "name", "mean_shift", "log_var"]),
        updates=pd.DataFrame(updates, columns=["step", "name", "ratio"]),
        ranks=pd.DataFrame(rank_report(model), columns=["name", "units", "inputs", "rank", "identical"]),
        losses=losses,
        steps=steps,
        steps_done=done,
        diverged_at=diverged_at,
        probed=[s for s in probed if s < len(losses)],
        batch_size=batch_size(first) if first is not None else None,
        activations=watch.kinds,
    )
