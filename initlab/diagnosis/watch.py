"""What the doctor measures beside the probe library: per-unit activity, batch-norm statistics, update sizes.

The probes (:mod:`initlab.probing`) log per-layer statistics of every value of a tensor. Three findings need
a finer or different view, read here by hooks of the doctor's own, on the same training pass the probe
reads (no extra pass, nothing written into the model):

* **units** -- for every call of an activation module (:func:`initlab.probing.hooks.is_activation`), which
  of its units are exactly 0 on every example of the batch (a dead ReLU unit: Lu et al. 2019). A unit is
  the feature axis: axis 1 of a 2-D output (batch, features) and of an image's 4-D/5-D output (batch,
  channels, ...), the last axis of a 3-D output (batch, time, features: attention blocks and RNNs).
* **batch norm** -- for every ``_BatchNorm`` module in training mode, its input's per-channel batch mean
  and variance against the running averages it will use at evaluation (Ioffe & Szegedy 2015 §3.1), as
  d_c = (μ_B,c − μ_run,c)/√(σ²_run,c + ε) and ln((σ²_B,c + ε)/(σ²_run,c + ε)), their root mean square
  over channels. The running averages are read before the module updates them.
* **updates** -- ‖ΔW‖/‖W‖ of every weight of two or more dimensions over one optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from initlab.probing.hooks import is_activation, is_layer


def unit_axis(t: Tensor) -> int:
    """The feature axis of an activation output (see the module docstring)."""
    return -1 if t.ndim == 3 else 1 if t.ndim >= 2 else 0


def dead_mask(t: Tensor) -> Tensor:
    """True for the units that are exactly 0 on every example (and position) of ``t``."""
    axis = unit_axis(t) % max(t.ndim, 1)
    alive = (t.detach() != 0).movedim(axis, 0).reshape(t.shape[axis], -1).any(dim=1)
    return ~alive


def bn_discrepancy(x: Tensor, module: nn.modules.batchnorm._BatchNorm) -> tuple[float, float]:
    """(rms_c d_c, rms_c ln var ratio) of a batch ``x`` against ``module``'s running statistics."""
    dims = [d for d in range(x.ndim) if d != 1]
    xf = x.detach().float()
    mean, var = xf.mean(dim=dims), xf.var(dim=dims, unbiased=False)
    run_mean, run_var = module.running_mean.float(), module.running_var.float()  # type: ignore[union-attr]
    eps = float(module.eps)
    shift = (mean - run_mean) / (run_var + eps).sqrt()
    log_ratio = ((var + eps) / (run_var + eps)).log()
    return float(shift.pow(2).mean().sqrt()), float(log_ratio.pow(2).mean().sqrt())


class Watch:
    """The doctor's own hooks on a model; :meth:`watch` one pass, then read :attr:`units` and :attr:`norms`.

    ``units``: one dict per activation call and watched step (step, site, units, dead); ``norms``: one per
    batch-norm module and watched step (step, name, mean_shift, log_var). Sites are the activation
    module's name, with ``#k`` for its (k+1)-th call in the pass (a shared ``nn.ReLU``).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {m: n or type(m).__name__ for n, m in model.named_modules()}
        self.units: list[dict[str, Any]] = []
        self.norms: list[dict[str, Any]] = []
        self.kinds: set[str] = set()  # class names of the activation modules seen

    @contextmanager
    def watch(self, step: int) -> Iterator[None]:
        calls: dict[nn.Module, int] = {}

        def on_act(module: nn.Module, args: Any, out: Any) -> None:
            if not isinstance(out, Tensor) or out.ndim < 2 or not out.is_floating_point():
                return
            k = calls.get(module, 0)
            calls[module] = k + 1
            site = self.names[module] + (f"#{k}" if k else "")
            dead = dead_mask(out)
            self.kinds.add(type(module).__name__)
            self.units.append(
                {
                    "step": step,
                    "site": site,
                    "kind": type(module).__name__,
                    "units": int(dead.numel()),
                    "dead": dead.cpu(),
                }
            )

        def on_norm(module: nn.Module, args: Any) -> None:
            x = args[0] if args else None
            if not module.training or not isinstance(x, Tensor) or module.running_mean is None:
                return
            shift, log_var = bn_discrepancy(x, module)  # type: ignore[arg-type]
            self.norms.append(
                {"step": step, "name": self.names[module], "mean_shift": shift, "log_var": log_var}
            )

        handles = []
        for module in self.model.modules():
            if is_activation(module) and not isinstance(module, nn.Identity):
                handles.append(module.register_forward_hook(on_act))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                handles.append(module.register_forward_pre_hook(on_norm))
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def weights(model: nn.Module) -> dict[str, Tensor]:
    """Every weight of two or more dimensions, by its module's name (the probe library's layers)."""
    return {name or type(m).__name__: m.weight for name, m in model.named_modules() if is_layer(m)}


@contextmanager
def update_sizes(model: nn.Module, step: int, into: list[dict[str, Any]]) -> Iterator[None]:
    """Around ``optimizer.step()``: append ‖ΔW‖/‖W‖ of every weight to ``into`` (one row per weight)."""
    ws = weights(model)
    before = {n: w.detach().clone() for n, w in ws.items()}
    yield
    for name, w in ws.items():
        norm = float(before[name].norm())
        change = float((w.detach() - before[name]).norm())
        into.append({"step": step, "name": name, "ratio": change / norm if norm > 0 else math.nan})


def rank_report(model: nn.Module) -> list[dict[str, Any]]:
    """Per weight: its shape as a matrix (units × inputs), rank, and the size of the largest group of
    identical units (rows equal to within 1e-6 of the row norm) -- symmetry that was never broken."""
    rows = []
    for name, w in weights(model).items():
        m = w.detach().float().reshape(w.shape[0], -1).cpu()
        rank = int(torch.linalg.matrix_rank(m)) if torch.isfinite(m).all() else -1
        scale = float(m.norm(dim=1).max()) or 1.0
        head = m[:512]
        same = (torch.cdist(head, head) <= 1e-6 * scale).sum(dim=1)
        rows.append(
            {
                "name": name,
                "units": m.shape[0],
                "inputs": m.shape[1],
                "rank": rank,
                "identical": int(same.max()) if len(head) else 0,
            }
        )
    return rows
