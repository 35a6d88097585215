"""``initlab.probe``: the probes in the user's own training loop, on any ``nn.Module``.

::

    probe = initlab.probe(model, "runs/mine", schedule="log", total_steps=1000)  # or every=10, steps=[...]
    for step, (x, y) in enumerate(batches):
        with probe.step(step):          # probes this step's forward and backward pass when scheduled
            loss = loss_fn(model(x), y)
            loss.backward()
        opt.step(); opt.zero_grad()
        probe.log_metrics(step, split="train", loss=loss.item())   # optional: the data of `curves`
    probe.close()                       # or: with initlab.probe(...) as probe:

The directory it writes is a run directory, claimed and closed by a
:class:`~initlab.runs.write.RunWriter` like every run's (a directory that holds a run is refused, unless
``overwrite=True`` and that run is not live): ``layers.parquet`` and ``hists.parquet`` with the same schema
as ``initlab run`` writes (layers found by :mod:`~.hooks`), ``metrics.parquet`` (one row per
:meth:`LoopProbe.log_metrics` call: step, split and the values given), ``summary.json`` (the record of
every run, ``kind`` ``probe``, status ``empty`` when nothing was recorded, plus the parameter coverage and
the probed layers, :meth:`~.probes.Probe.report`) and ``.hydra/config.yaml`` holding the probe settings
(:class:`~.settings.ProbeSettings`), so that
``initlab plot`` and :func:`initlab.load_run` read it like any run. The hooks only read tensors: the
model's trajectory is the same, bit for bit, with or without the probe.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
from torch import nn

from initlab.errors import UserError
from initlab.probing.hooks import unwrap
from initlab.probing.layers import Activations
from initlab.probing.probes import Probe
from initlab.probing.settings import ProbeSettings
from initlab.runs.layout import METRICS_FILE
from initlab.runs.write import RunWriter

WAY_OUT = "choose another run_dir, or pass overwrite=True to replace it"

METRICS_SECONDS = 10.0  # metrics.parquet is rewritten at most this often while the loop runs


def probe_config(
    schedule: str | None = None,
    total_steps: int | None = None,
    every: int | None = None,
    steps: Sequence[int] | None = None,
    **options: Any,
) -> ProbeSettings:
    """:class:`~.settings.ProbeSettings` with the given settings; the schedule follows from what is given
    (``steps`` -> list, ``every`` -> every, else log). Bad values raise :class:`~initlab.errors.UserError`."""
    if schedule is None:
        schedule = "list" if steps is not None else "every" if every is not None else "log"
    given = {"schedule": schedule, **options}
    given.update({k: v for k, v in (("every", every), ("steps", steps)) if v is not None})
    names = ProbeSettings.__dataclass_fields__
    if unknown := set(options) - set(names):
        raise UserError(f"initlab.probe got unknown options {sorted(unknown)}: expected {', '.join(names)}")
    settings = ProbeSettings.from_mapping(given)
    if schedule == "log" and total_steps is None:
        raise UserError("schedule='log' needs total_steps=N (the number of training steps)")
    if total_steps is not None and not (
        isinstance(total_steps, int) and not isinstance(total_steps, bool) and total_steps >= 1
    ):
        raise UserError(f"total_steps={total_steps} is not allowed: expected an integer >= 1")
    if settings.fixed_batch:
        raise UserError("fixed_batch is not allowed in initlab.probe: expected 0 (the loop's own pass)")
    return settings


class LoopProbe(Probe):
    """A :class:`~initlab.probing.probes.Probe` that owns its run directory; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        run_dir: Path,
        cfg: ProbeSettings,
        total_steps: int | None,
        activations: Activations | None = None,
        overwrite: bool = False,
    ) -> None:
        self.writer = RunWriter.open(run_dir, overwrite=overwrite, way_out=WAY_OUT, kind="probe")
        self.run_dir = self.writer.path
        bounded = total_steps is not None or cfg.schedule != "every"
        limit = total_steps if total_steps is not None else max([0, *cfg.steps]) + 1
        try:
            super().__init__(model, cfg, limit, self.run_dir, activations)
            self.writer.write_hydra({"probe": cfg.as_dict()})
        except BaseException:
            self.writer.discard()
            raise
        self.every = None if bounded else cfg.every
        self.steps_done = 0
        self.metrics: list[dict[str, Any]] = []
        self._metrics_written = time.monotonic()
        self._closed = False

    def wants(self, step: int) -> bool:
        return step % self.every == 0 if self.every is not None else step in self.steps

    def step(self, step: int) -> AbstractContextManager[None]:
        """Wrap one training step's forward and backward pass; it is probed when ``step`` is scheduled."""
        self.steps_done = max(self.steps_done, step + 1)
        return self._read_pass(step) if self.wants(step) else nullcontext()

    def log_metrics(self, step: int, split: str = "train", **values: float) -> None:
        """One row of ``metrics.parquet``: ``step``, ``split`` and the values (``loss``, ``accuracy``...)."""
        row = {"step": int(step), "split": str(split), **{k: float(v) for k, v in values.items()}}
        self.metrics.append(row)
        if time.monotonic() - self._metrics_written > METRICS_SECONDS:
            self._write_metrics()

    def _write_metrics(self) -> None:
        self._metrics_written = time.monotonic()
        if not self.metrics:
            return
        tmp = self.run_dir / (METRICS_FILE + ".tmp")
        pd.DataFrame(self.metrics).to_parquet(tmp, index=False)
        os.replace(tmp, self.run_dir / METRICS_FILE)

    def close(self, status: str = "completed", error: str | None = None) -> None:
        """Write every file in full (also called by ``with``; a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.ExitStack() as closing:  # the metrics are written also when the probe fails
                closing.callback(self._write_metrics)
                closing.callback(super().close)
        except BaseException as exc:  # the summary says so, unless an earlier error is its cause
            if status != "failed":
                status, error = _failure(exc)
            raise
        finally:
            if status == "completed" and not self.rows:
                status, error = "empty", self._nothing_recorded()
            self.writer.close(status, steps_done=self.steps_done, error=error, **self.report())

    def _nothing_recorded(self) -> str:
        """Why a probe that closed normally recorded no row."""
        if not any(self.wants(s) for s in range(self.steps_done)):
            return f"no probed step among the {self.steps_done} steps run"
        return "the probed steps recorded nothing: the model has no layer and no parameter (see the warning)"

    def __enter__(self) -> LoopProbe:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close("failed", f"{kind.__name__}: {exc}")


def _failure(exc: BaseException) -> tuple[str, str | None]:
    """The summary's status and error for an exception raised while closing the logs."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None
    return "failed", f"{type(exc).__name__}: {exc}"


def probe(
    model: nn.Module,
    run_dir: str | Path,
    schedule: str | None = None,
    total_steps: int | None = None,
    every: int | None = None,
    steps: Sequence[int] | None = None,
    activations: Sequence[type[nn.Module] | str] = (),
    overwrite: bool = False,
    **options: Any,
) -> LoopProbe:
    """Probe ``model`` in your own training loop, writing a run directory ``run_dir``.

    A ``run_dir`` that holds a run (live, killed or finished) is refused with a
    :class:`~initlab.runs.lock.DirectoryTaken` naming it; ``overwrite=True`` replaces a run there that is
    not live (its files are removed first).

    ``schedule``: ``log`` (about ``points`` = 30 log-spaced steps up to ``total_steps``, the default),
    ``every`` (every ``every`` steps, for ever unless ``total_steps`` is given) or ``list`` (``steps``);
    step 0 is always probed. ``options``: the other keys of ``conf/probe/default.yaml`` (``points``,
    ``bins``, ``jacobian``, ``unit_distance``, ...). ``activations``: module classes (or class names) of the
    model that are activations besides torch's (``[MyGELU]``); ``nn.Identity`` is never one unless named.
    A ``torch.jit.script`` module is refused here, before the directory is touched.
    """
    cfg = probe_config(schedule, total_steps, every, steps, **options)
    unwrap(model)  # refuses TorchScript
    acts = Activations(activations)
    acts.check_names(unwrap(model))
    return LoopProbe(model, Path(run_dir), cfg, total_steps, acts, overwrite)
