"""Per-layer probes: what Glorot & Bengio (2010) and Ioffe & Szegedy (2015) measured inside their nets.

For every hidden layer l (1 = first) and the output layer (l = depth + 1), at the scheduled steps:

==================  ===========================================================================
``weight``          the layer's weights W_l (after ``step`` updates)
``preact``          the input of the nonlinearity (after batch norm when it sits before it);
                    for the output layer, the logits
``act``             the nonlinearity's output, before dropout; for the output layer, softmax(logits)
``grad_preact``     the back-propagated gradient ∂L/∂preact (Glorot & Bengio's ∂Cost/∂s, Fig. 7)
``grad_weight``     ∂L/∂W_l (their Fig. 8)
==================  ===========================================================================

Two more quantities are opt-in (``probe.jacobian``, ``probe.unit_distance``), stored like the others:

==================  ===========================================================================
``jacobian``        layer l (2..depth): the singular values of J = ∂z^l/∂z^(l-1) = diag(f'(s^l))·W_l
                    for the first ``jacobian_examples`` examples of the probed batch; ``mean`` is
                    Glorot & Bengio's "average singular value" (≈0.5 standard, ≈0.8 normalized init).
                    Batch/layer norm inside the block is ignored (J of the linear→activation path).
``unit_distance``   the Euclidean distances between the incoming weight vectors of every pair of
                    units of the layer (first 512 units); ``max`` = 0 means the units are identical:
                    symmetry was never broken (zero or constant init).
==================  ===========================================================================

Statistics of each: mean, std, min, max, percentiles p02 p15 p50 p85 p98 (Ioffe & Szegedy's Fig. 1 bands
are 15/50/85), ``frac_zero`` (dead ReLU units), ``frac_saturated`` (``act`` of tanh: |a| > 0.99, sigmoid:
a < 0.01 or a > 0.99, softsign: |a| > 0.9; NaN elsewhere), ``n`` (values) and ``n_nonfinite`` (inf/NaN,
left out of every other statistic). Percentiles are exact up to 8,192 values and taken on an evenly
strided subsample of that size above it (weight matrices); all other statistics use every value.

Histograms: ``bins`` equal bins over a range fixed per (layer, quantity) for the whole run, so that
histograms of different steps are comparable (and stack into a heat map): [0, 1] or [-1, 1] for the
``act`` of sigmoid / tanh, softsign and for softmax outputs; otherwise the first probe's [min, max]
widened by half its span on each side. Values outside the range are counted in ``underflow`` and
``overflow``; with the stored edges a plot redraws the papers' normalized histograms exactly.

When: step 0 (the initialized net) and a schedule from ``conf/probe/``: ``log`` (about ``points`` steps,
log-spaced, dense early), ``every`` k steps, or an explicit ``list``. A probe at step s reads the real
training step that performs update s+1 (its forward and backward pass, no extra pass); with
``fixed_batch: N`` it instead runs one extra forward/backward pass on N fixed test examples, with the random
state, batch-norm buffers and gradients restored afterwards, so the training trajectory is unchanged either
way. All statistics of a step are computed on the tensors' device and moved to the CPU in one transfer
(the first probe needs one more, for the histogram ranges).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from initlab.models import MLP
from initlab.storage import HISTS_FILE, LAYERS_FILE, ParquetLog

QUANTITIES = ("weight", "preact", "act", "grad_preact", "grad_weight", "jacobian", "unit_distance")
PERCENTILES = (0.02, 0.15, 0.50, 0.85, 0.98)
STATS = (
    "mean",
    "std",
    "min",
    "max",
    "p02",
    "p15",
    "p50",
    "p85",
    "p98",
    "frac_zero",
    "frac_saturated",
    "n",
    "n_nonfinite",
)
MAX_QUANTILE_VALUES = 8_192

SATURATION: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": lambda a: a.abs() > 0.99,
    "sigmoid": lambda a: (a < 0.01) | (a > 0.99),
    "softsign": lambda a: a.abs() > 0.9,
}
BOUNDED_RANGE: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
}


def _log_steps(cfg: DictConfig, total: int) -> set[int]:
    """About ``points`` − 1 log-spaced steps in [1, total]: dense early, where most of the action is."""
    steps = np.unique(np.round(np.geomspace(1, max(total, 1), max(cfg.points - 1, 1)))).astype(int)
    return {int(s) for s in steps if s <= total}


SCHEDULES: dict[str, Callable[[DictConfig, int], set[int]]] = {
    "log": _log_steps,
    "every": lambda cfg, total: set(range(0, total + 1, cfg.every)),
    "list": lambda cfg, total: {int(s) for s in cfg.steps if 0 <= int(s) <= total},
}


def schedule(cfg: DictConfig, total_steps: int) -> list[int]:
    """The sorted steps at which to probe (``cfg.schedule``), always 0, none above ``total_steps``."""
    return sorted(SCHEDULES[cfg.schedule](cfg, total_steps) | {0})


def stats_batch(
    tensors: list[Tensor],
    ranges: list[tuple[float, float]],
    bins: int,
    saturated: list[Callable[[Tensor], Tensor] | None],
) -> Tensor:
    """One row per tensor, on their device: the :data:`STATS`, ``bins`` counts, underflow, overflow.

    Moments, extremes, fractions and histograms use every value; the percentiles of all tensors come
    from one batched ``nanquantile`` over evenly strided subsamples of at most ``MAX_QUANTILE_VALUES``.
    """
    flat = [t.detach().reshape(-1).float() for t in tensors]
    subs = [v[:: max(1, math.ceil(v.numel() / MAX_QUANTILE_VALUES))] for v in flat]
    # One sort per size class (powers of two), NaN-padded, so small tensors are not padded to large ones.
    size_class: dict[int, list[int]] = {}
    for i, sub in enumerate(subs):
        size_class.setdefault(max(sub.numel(), 1).bit_length(), []).append(i)
    q: list[Tensor] = [torch.empty(0)] * len(subs)
    probs = torch.tensor(PERCENTILES, device=flat[0].device)
    for members in size_class.values():
        padded = torch.nn.utils.rnn.pad_sequence([subs[i] for i in members], True, math.nan)
        padded = torch.where(torch.isfinite(padded), padded, math.nan)
        for i, row in zip(members, torch.nanquantile(padded, probs, dim=1).T, strict=True):
            q[i] = row
    rows = []
    for v, (lo, hi), sat, qs in zip(flat, ranges, saturated, q, strict=True):
        fin = torch.isfinite(v)
        n_fin = fin.sum()
        nf = n_fin.clamp(min=1).float()
        vz = torch.where(fin, v, 0.0)
        mean = vz.sum() / nf
        var = torch.where(fin, v - mean, 0.0).pow(2).sum() / (nf - 1).clamp(min=1)
        vmin = torch.where(fin, v, math.inf).min()
        vmax = torch.where(fin, v, -math.inf).max()
        frac_zero = (v == 0).sum() / nf
        frac_sat = (sat(v) & fin).sum() / nf if sat is not None else torch.full_like(mean, math.nan)
        n = torch.full_like(mean, float(v.numel()))
        parked = torch.where(fin, v, lo - (hi - lo))  # non-finite values land outside the histogram range
        hist = torch.histc(parked, bins=bins, min=lo, max=hi)
        outside = torch.stack([((v < lo) & fin).sum(), ((v > hi) & fin).sum()]).float()
        head = torch.stack([mean, var.sqrt(), vmin, vmax, *qs, frac_zero, frac_sat, n, n - n_fin.float()])
        rows.append(torch.cat([head.float(), hist.float(), outside]))
    return torch.stack(rows)


def tensor_stats(
    x: Tensor, lo: float, hi: float, bins: int, saturated: Callable[[Tensor], Tensor] | None
) -> Tensor:
    """The statistics row of one tensor (see :func:`stats_batch`)."""
    return stats_batch([x], [(lo, hi)], bins, [saturated])[0]


@dataclass
class ProbedLayer:
    index: int  # 1 = first hidden layer, depth + 1 = output layer
    name: str  # module path of the linear layer
    linear: nn.Linear
    act: nn.Module | None  # the activation module (None for the output layer)


class Probe:
    """Hooks that capture a model's per-layer tensors at scheduled steps and log their statistics."""

    def __init__(self, model: MLP, act_name: str, cfg: DictConfig, total_steps: int, run_dir: Path) -> None:
        self.cfg = cfg
        self.act_name = act_name
        # A training-pass probe at step s needs the pass of update s+1: the last probe-able step is steps-1.
        last = total_steps if cfg.fixed_batch else max(total_steps - 1, 0)
        self.steps = set(schedule(cfg, last))
        self.layers = [
            ProbedLayer(i + 1, f"hidden.{i}.linear", block.linear, block.act)
            for i, block in enumerate(model.hidden)
        ]
        self.layers.append(ProbedLayer(len(model.hidden) + 1, "out", model.out, None))
        self.ranges: dict[tuple[int, str], tuple[float, float]] = {}
        self.layers_log = ParquetLog(run_dir / LAYERS_FILE)
        self.hists_log = ParquetLog(run_dir / HISTS_FILE)
        self._captured: dict[tuple[int, str], Tensor] = {}
        self._warned = False

    def wants(self, step: int) -> bool:
        return step in self.steps

    # -- capture ---------------------------------------------------------------------------------------
    def _keep(self, layer: int, quantity: str, t: Tensor) -> None:
        self._captured[(layer, quantity)] = t.detach()

    def _hook(self, layer: int, output: bool) -> Callable:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
            pre = out if output else inputs[0]
            self._keep(layer, "preact", pre)
            self._keep(layer, "act", torch.softmax(out.detach(), dim=-1) if output else out)
            if pre.requires_grad:
                pre.register_hook(lambda g: self._keep(layer, "grad_preact", g))

        return hook

    @contextmanager
    def capture(self) -> Iterator[None]:
        """While active, forward/backward passes record every layer's tensors."""
        handles = [
            (p.linear if p.act is None else p.act).register_forward_hook(self._hook(p.index, p.act is None))
            for p in self.layers
        ]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def probe_fixed_batch(self, model: nn.Module, loss_of: Callable[[Tensor], Tensor], step: int) -> None:
        """An extra forward/backward pass (``loss_of(model)``) that leaves no trace on the training run."""
        buffers = [b.detach().clone() for b in model.buffers()]
        devices = (
            [torch.cuda.current_device()]
            if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters())
            else []
        )
        with torch.random.fork_rng(devices=devices), self.capture():
            grads = [p.grad for p in model.parameters()]
            for p in model.parameters():
                p.grad = None
            loss_of(model).backward()
            self.record(step)
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)

    # -- statistics ------------------------------------------------------------------------------------
    def _tensors(self) -> dict[tuple[int, str], Tensor]:
        out = dict(self._captured)
        for p in self.layers:
            out[(p.index, "weight")] = p.linear.weight.detach()
            if p.linear.weight.grad is not None:
                out[(p.index, "grad_weight")] = p.linear.weight.grad.detach()
            if self.cfg.get("unit_distance", False):
                w = p.linear.weight.detach()[:512]
                out[(p.index, "unit_distance")] = torch.pdist(w.float()) if len(w) > 1 else w.new_zeros(1)
            if self.cfg.get("jacobian", False) and p.act is not None and p.index > 1:
                out[(p.index, "jacobian")] = self._jacobian_singular_values(p)
        return out

    def _jacobian_singular_values(self, p: ProbedLayer) -> Tensor:
        """Singular values of diag(f'(s))·W for the first examples of the captured pre-activations."""
        pre = self._captured.get((p.index, "preact"))
        if pre is None:
            return p.linear.weight.new_full((1,), math.nan)
        s = pre[: self.cfg.get("jacobian_examples", 8)].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (slope,) = torch.autograd.grad(p.act(s).sum(), s)  # f'(s), elementwise activations
        jac = slope.unsqueeze(-1) * p.linear.weight.detach().unsqueeze(0)
        return torch.linalg.svdvals(jac.float()).reshape(-1)

    def _set_ranges(self, tensors: dict[tuple[int, str], Tensor]) -> None:
        todo = []
        for key in tensors:
            layer, quantity = key
            if key in self.ranges:
                continue
            if quantity == "act" and layer == len(self.layers):
                self.ranges[key] = (0.0, 1.0)
            elif quantity == "act" and self.act_name in BOUNDED_RANGE:
                self.ranges[key] = BOUNDED_RANGE[self.act_name]
            else:
                todo.append(key)
        if not todo:
            return
        ext = (
            torch.stack(
                [
                    torch.stack(
                        [
                            torch.where(torch.isfinite(v), v, math.inf).min(),
                            torch.where(torch.isfinite(v), v, -math.inf).max(),
                        ]
                    )
                    for v in (tensors[k].reshape(-1).float() for k in todo)
                ]
            )
            .cpu()
            .tolist()
        )
        for key, (lo, hi) in zip(todo, ext, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                lo, hi = -1.0, 1.0
            span = hi - lo
            if span <= 0:
                span = max(abs(lo), 1e-12)
            self.ranges[key] = (lo - span / 2, hi + span / 2)

    def record(self, step: int) -> None:
        """Compute and append the statistics of everything captured for ``step`` (then forget it)."""
        tensors = self._tensors()
        self._captured = {}
        self._set_ranges(tensors)
        bins = self.cfg.bins
        keys = sorted(tensors, key=lambda k: (k[0], QUANTITIES.index(k[1])))
        saturation = SATURATION.get(self.act_name)
        rows = (
            stats_batch(
                [tensors[k] for k in keys],
                [self.ranges[k] for k in keys],
                bins,
                [saturation if k[1] == "act" and k[0] < len(self.layers) else None for k in keys],
            )
            .cpu()
            .numpy()
        )
        by_index = {p.index: p for p in self.layers}
        layer_rows, hist_rows = [], []
        for (layer, quantity), values in zip(keys, rows, strict=True):
            p = by_index[layer]
            stats = dict(zip(STATS, values[: len(STATS)].tolist(), strict=True))
            stats["n"], stats["n_nonfinite"] = int(stats["n"]), int(stats["n_nonfinite"])
            if stats["n_nonfinite"] == stats["n"]:
                stats.update({s: math.nan for s in STATS if s not in ("n", "n_nonfinite")})
            layer_rows.append(
                {
                    "step": step,
                    "layer": layer,
                    "name": p.name,
                    "quantity": quantity,
                    "fan_in": p.linear.in_features,
                    "fan_out": p.linear.out_features,
                    **stats,
                }
            )
            lo, hi = self.ranges[(layer, quantity)]
            counts = values[len(STATS) :]
            hist_rows.append(
                {
                    "step": step,
                    "layer": layer,
                    "quantity": quantity,
                    "edges": np.linspace(lo, hi, bins + 1).tolist(),
                    "counts": counts[:bins].astype(np.int64).tolist(),
                    "underflow": int(counts[bins]),
                    "overflow": int(counts[bins + 1]),
                    "n_nonfinite": stats["n_nonfinite"],
                }
            )
            if stats["n_nonfinite"] and not self._warned:
                warnings.warn(
                    f"step {step}: non-finite values in layer {layer} {quantity} "
                    f"({stats['n_nonfinite']} of {stats['n']}); counted in n_nonfinite",
                    stacklevel=2,
                )
                self._warned = True
        self.layers_log.append(layer_rows)
        self.hists_log.append(hist_rows)

    def close(self) -> None:
        self.layers_log.close()
        self.hists_log.close()
