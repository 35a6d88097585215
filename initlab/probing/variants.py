"""The probe variants: on a fixed batch (:class:`FixedBatchProbe`), off (:class:`NullProbe`), and
:func:`make_probe`, the one ``initlab run`` asks for (the probe itself is :class:`~.probes.Probe`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from initlab.probing.layers import Activations
from initlab.probing.probes import Probe
from initlab.probing.settings import ProbeSettings


class FixedBatchProbe(Probe):
    """Probes an extra forward/backward pass, ``loss_of(model)``, on fixed examples instead of the training
    pass (Glorot & Bengio measured on 300 fixed test examples); it leaves no trace on the training run."""

    def __init__(
        self,
        model: nn.Module,
        settings: ProbeSettings,
        total_steps: int,
        run_dir: Path,
        loss_of: Callable[[nn.Module], Tensor],
        activations: Activations | None = None,
    ) -> None:
        super().__init__(model, settings, total_steps, run_dir, activations)
        self.model, self.loss_of = model, loss_of

    @staticmethod
    def last_step(total_steps: int) -> int:
        return total_steps  # the net after the last update can be probed too

    def step(self, step: int) -> AbstractContextManager[None]:
        if step in self.steps:
            self.probe_fixed_batch(self.model, self.loss_of, step)
        return nullcontext()

    def finish(self, steps_done: int, diverged: bool) -> None:
        if not diverged and steps_done in self.steps:
            self.probe_fixed_batch(self.model, self.loss_of, steps_done)

    def probe_fixed_batch(self, model: nn.Module, loss_of: Callable[[nn.Module], Tensor], step: int) -> None:
        """An extra forward/backward pass (``loss_of(model)``) that leaves no trace on the training run."""
        buffers = [b.detach().clone() for b in model.buffers()]
        devices = (
            [torch.cuda.current_device()]
            if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters())
            else []
        )
        with torch.random.fork_rng(devices=devices):
            grads = [p.grad for p in model.parameters()]
            for p in model.parameters():
                p.grad = None
            with self.capture():
                loss_of(model).backward()
            self.record(step)
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)


class NullProbe:
    """Probes off: the same interface, doing nothing."""

    def step(self, step: int) -> AbstractContextManager[None]:
        return nullcontext()

    def finish(self, steps_done: int, diverged: bool) -> None:
        pass

    def close(self) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return {}


def make_probe(
    model: nn.Module,
    cfg: ProbeSettings | Mapping[str, Any],
    total_steps: int,
    run_dir: Path,
    fixed_loss: Callable[[nn.Module], Tensor] | None,
    activations: Activations | None = None,
) -> Probe | NullProbe:
    """The probe ``cfg`` asks for (``cfg.probe`` of ``initlab run``): off, on the training pass, or on a fixed
    batch (``fixed_batch``). ``activations``: by default those of initlab's own nets, whose ``act=linear``
    is ``nn.Identity``."""
    settings = cfg if isinstance(cfg, ProbeSettings) else ProbeSettings.from_mapping(cfg)
    activations = activations or Activations([nn.Identity])
    if not settings.enabled:
        return NullProbe()
    if settings.fixed_batch:
        assert fixed_loss is not None, "probe.fixed_batch needs the loss of the fixed batch"
        return FixedBatchProbe(model, settings, total_steps, run_dir, fixed_loss, activations)
    return Probe(model, settings, total_steps, run_dir, activations)
