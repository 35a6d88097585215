"""Per-layer probes: what Glorot & Bengio (2010) and Ioffe & Szegedy (2015) measured inside their nets.

The layers of any ``nn.Module`` (:mod:`~.layers`: modules with a weight of two or more dimensions,
attention and recurrent modules) are found by :mod:`~.hooks` in forward order (for initlab's nets, layer
l = 1..depth are the hidden layers and depth + 1 the output layer); ``name`` is the module path and
``fan_in``/``fan_out`` are torch's fans (C_in·k² for a convolution). At the scheduled steps, for every
layer l (its first call in the pass):

==================  ===========================================================================
``weight``          the layer's weights W_l (after ``step`` updates), every value (conv kernels too);
                    a parametrized weight as the forward computed it; none for attention and RNNs
``preact``          the input of the activation module that follows the layer (after batch norm when
                    it sits before it); without one (the output layer, functional activations), the
                    layer's output (the first element of a tuple) -- for the output layer, the logits
``act``             the activation module's output, before dropout; absent without an activation module
``grad_preact``     the back-propagated gradient ∂L/∂preact (Glorot & Bengio's ∂Cost/∂s, Fig. 7)
``grad_weight``     ∂L/∂W_l (their Fig. 8); a sparse gradient by its stored values
``param``           every other parameter, by qualified name in the ``param`` column (:mod:`~.params`)
``grad_param``      its ``.grad``
==================  ===========================================================================

Gradients are read only from a pass that computed some (else ``.grad`` could be an earlier step's).

Two more quantities are opt-in (``probe.jacobian``, ``probe.unit_distance``), stored like the others:

==================  ===========================================================================
``jacobian``        linear layer l (2..depth): the singular values of J = ∂z^l/∂z^(l-1) = diag(f'(s^l))·W_l
                    for the first ``jacobian_examples`` examples of the probed batch; ``mean`` is
                    Glorot & Bengio's "average singular value" (≈0.5 standard, ≈0.8 normalized init).
                    Batch/layer norm inside the block is ignored (J of the linear→activation path).
``unit_distance``   the Euclidean distances between the incoming weight vectors of every pair of
                    units of the layer (first 512 units); ``max`` = 0 means the units are identical:
                    symmetry was never broken (zero or constant init).
==================  ===========================================================================

Statistics of each (computed by :mod:`~.stats`): mean, std, min, max, percentiles p02 p15 p50 p85
p98 (Ioffe & Szegedy's Fig. 1 bands are 15/50/85), ``frac_zero`` (dead ReLU units), ``frac_saturated``
(``act`` of tanh: |a| > 0.99, sigmoid: a < 0.01 or a > 0.99, softsign: |a| > 0.9; NaN elsewhere), ``n``
(values), ``n_nonfinite`` (inf/NaN, left out of every other statistic) and ``n_sample``. Up to 8,192
values every statistic uses every value; above (weight matrices), the moments and extremes still do, while
the percentiles, fractions and histogram come from a strided sample of about 4,096 values (``n_sample``;
see :mod:`initlab.probing.stats`).

Histograms: ``bins`` equal bins over a range fixed per (layer, quantity) for the whole run, so that
histograms of different steps are comparable (and stack into a heat map): [0, 1] or [-1, 1] for the
``act`` of sigmoid / tanh, softsign and for softmax outputs; otherwise the first probe's [min, max]
widened by half its span on each side. Values outside the range are counted in ``underflow`` and
``overflow``; with the stored edges a plot redraws the papers' normalized histograms exactly. The edges
are written once per (layer, quantity) to ``hist_edges.parquet`` (:mod:`initlab.runs` joins them back).

When: step 0 (the initialized net) and a schedule from ``conf/probe/``: ``log`` (about ``points`` steps,
log-spaced, dense early), ``every`` k steps, or an explicit ``list``. A probe at step s reads the real
training step that performs update s+1 (its forward and backward pass, no extra pass); with
``fixed_batch: N`` it instead runs one extra forward/backward pass on N fixed test examples, with the random
state, batch-norm buffers and gradients restored afterwards, so the training trajectory is unchanged either
way (:class:`FixedBatchProbe`). At a probed step the probe takes what its statistics need (the samples,
and sums and extremes over every value of the large tensors) on the tensors' device and moves it to the
CPU in one transfer (the first probe needs one more, for the histogram ranges); the statistics of up to
``BATCH_STEPS`` probed steps are then computed together (:class:`~initlab.probing.capture.Captures`): when the
batch is full, before the log writes a part (every few seconds), and when the probe closes -- also when
training stops early, so an interrupted run keeps every probed step (an interrupt while a batch is
described leaves it pending for :meth:`Probe.close`). The hooks stay registered over a run of
consecutive probed steps (``probe.every=1``) and are removed before the first unprobed one; copies of
the model made meanwhile get inert hooks (see :mod:`initlab.probing.hooks`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import torch
from torch import Tensor, nn

from initlab.probing.capture import Captures, layout
from initlab.probing.hooks import Tracer
from initlab.probing.layers import Activations, Layer
from initlab.probing.params import Coverage, ParamRow, param_rows
from initlab.probing.settings import ProbeSettings
from initlab.probing.stats import BOUNDED_RANGE, INT_STATS, SATURATION, STATS
from initlab.runs.write import HIST_EDGES_FILE, ProbeLog, write_table

QUANTITIES = (
    "weight",
    "preact",
    "act",
    "grad_preact",
    "grad_weight",
    "jacobian",
    "unit_distance",
    "param",
    "grad_param",
)
BATCH_STEPS = 64  # probed steps whose statistics are computed together (at most)
BATCH_VALUES = 1 << 22  # float32 values their captures may hold (16 MB)
Key = tuple[int, str, str]  # (layer, quantity, param): param is "" but for weight and param rows
Keys = tuple[Key, ...]  # of each captured tensor, in row order


def _values(grad: Tensor) -> Tensor:
    """A gradient's values: a sparse gradient (``nn.Embedding(sparse=True)``) by its stored values."""
    return grad.coalesce().values() if grad.is_sparse else grad


class Probe:
    """Hooks that capture a model's per-layer tensors at scheduled steps and log their statistics.

    The training loop wraps each step's forward and backward pass in ``with probe.step(step):`` and calls
    :meth:`finish` when training ends; that is the whole interface, shared by :class:`Probe` (reads the
    training pass itself), :class:`FixedBatchProbe` (an extra pass on fixed examples) and
    :class:`NullProbe` (probes off).
    """

    def __init__(
        self,
        model: nn.Module,
        settings: ProbeSettings,
        total_steps: int,
        run_dir: Path,
        activations: Activations | None = None,
    ) -> None:
        self.settings = settings
        self.steps = set(settings.schedule_steps(self.last_step(total_steps)))
        self.tracer = Tracer(model, activations)
        self.ranges: dict[Key, tuple[float, float]] = {}
        self.run_dir = Path(run_dir)
        self.bins = settings.bins
        self.unit_distance, self.jacobian = settings.unit_distance, settings.jacobian
        self.log = ProbeLog(run_dir, STATS, INT_STATS, self.bins)
        self.params: list[ParamRow] | None = None  # known after the first probed pass
        self.coverage = Coverage()
        self.rows = 0  # statistics rows handed to the log
        self._names: dict[Keys, dict[str, np.ndarray]] = {}
        self._captured: dict[tuple[int, str], Tensor] = {}
        self._order: dict[tuple[Key, ...], Keys] = {}
        self._pending: _Pending | None = None
        self._warned: set[str] = set()

    @staticmethod
    def last_step(total_steps: int) -> int:
        """A probe of the training pass at step s reads update s+1: the last one it can read is steps−1."""
        return max(total_steps - 1, 0)

    def wants(self, step: int) -> bool:
        return step in self.steps

    def step(self, step: int) -> AbstractContextManager[None]:
        """Wrap the training step's forward and backward pass: probed when ``step`` is scheduled."""
        return self._read_pass(step) if step in self.steps else nullcontext()

    @contextmanager
    def _read_pass(self, step: int) -> Iterator[None]:
        with self.capture(keep=self.wants(step + 1)):
            yield
        self.record(step)

    def finish(self, steps_done: int, diverged: bool) -> None:
        """Called once training ends (the training-pass probe has nothing left to read)."""

    # -- capture ---------------------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The model's layers in forward order (known once the first probed pass ran)."""
        return self.tracer.layers

    @contextmanager
    def capture(self, keep: bool = False) -> Iterator[None]:
        """While active, forward/backward passes record every layer's tensors (:mod:`initlab.probing.hooks`);
        ``keep``: leave the hooks on for the next pass (the next step is probed too)."""
        with self.tracer.trace(keep) as captured:
            yield
        self._captured.update(captured)
        for note in self.tracer.notes:
            self._warn_once(note.split(":")[0], note)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, stacklevel=4)

    # -- statistics ------------------------------------------------------------------------------------
    def _tensors(self) -> dict[Key, Tensor]:
        """Every tensor of the probed step by its key: the captures, the weights, the parameters."""
        grads = self.tracer.had_grad or not self.layers  # else .grad is from an earlier step
        if self.params is None:
            self.params, self.coverage = param_rows(self.tracer.model, self.layers, self.tracer.followers)
            if line := self.coverage.warning():
                self._warn_once("coverage", line)
        out: dict[Key, Tensor] = {}
        for (index, quantity), t in self._captured.items():
            out[(index, quantity, self._weight_name(index) if quantity.endswith("weight") else "")] = t
        for p in self.layers:
            if not p.has_weight:
                continue
            key = self._weight_name(p.index)
            weight = p.weight.detach() if p.weight is not None else out.get((p.index, "weight", key))
            if p.weight is not None:
                out[(p.index, "weight", key)] = weight
                if grads and p.weight.grad is not None:
                    out[(p.index, "grad_weight", key)] = _values(p.weight.grad.detach())
            if weight is None:
                continue
            if self.unit_distance:
                w = weight[:512].reshape(min(len(weight), 512), -1)
                out[(p.index, "unit_distance", "")] = torch.pdist(w.float()) if len(w) > 1 else w.new_zeros(1)
            if self.jacobian and isinstance(p.module, nn.Linear) and p.act is not None and p.index > 1:
                out[(p.index, "jacobian", "")] = self._jacobian_singular_values(p, weight)
        for row in self.params:
            out[(row.layer, "param", row.param)] = row.tensor.detach()
            if grads and row.tensor.grad is not None:
                out[(row.layer, "grad_param", row.param)] = _values(row.tensor.grad.detach())
        return out

    def _weight_name(self, index: int) -> str:
        return f"{self.layers[index - 1].name}.weight"

    def _jacobian_singular_values(self, p: Layer, weight: Tensor) -> Tensor:
        """Singular values of diag(f'(s))·W for the first examples of the captured pre-activations."""
        pre = self._captured.get((p.index, "preact"))
        if pre is None or p.act is None:
            return weight.new_full((1,), math.nan)
        s = pre[: self.settings.jacobian_examples].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (slope,) = torch.autograd.grad(p.act(s).sum(), s)  # f'(s), elementwise activations
        jac = slope.unsqueeze(-1) * weight.unsqueeze(0)
        return torch.linalg.svdvals(jac.float()).reshape(-1)

    def _set_ranges(self, tensors: dict[Key, Tensor]) -> None:
        """The histogram range of each (layer, quantity, param) seen for the first time (module docstring)."""
        kinds = {p.index: p.kind for p in self.layers}
        new = [key for key in tensors if key not in self.ranges]
        if not new:
            return
        todo = []
        for key in new:
            if key[1] == "act" and kinds.get(key[0]) in BOUNDED_RANGE:
                self.ranges[key] = BOUNDED_RANGE[kinds[key[0]]]  # type: ignore[index]
            else:
                todo.append(key)
        extremes = []  # the finite min and max of each, in one transfer
        for v in (tensors[k].reshape(-1).float() for k in todo):
            finite = torch.isfinite(v)
            extremes.append(torch.stack([v.where(finite, math.inf).min(), v.where(finite, -math.inf).max()]))
        ext = torch.stack(extremes).cpu().tolist() if extremes else []
        for key, (lo, hi) in zip(todo, ext, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                lo, hi = -1.0, 1.0
            span = hi - lo
            if span <= 0:
                span = max(abs(lo), 1e-12)
            self.ranges[key] = (lo - span / 2, hi + span / 2)
        self._write_edges()

    def _write_edges(self) -> None:
        """``hist_edges.parquet``: the bin edges of each (layer, quantity, param), stored once for the run."""
        keys = sorted(self.ranges, key=_order)
        bins = self.bins
        table = pa.table(
            {
                "layer": [k[0] for k in keys],
                "quantity": [k[1] for k in keys],
                "param": [k[2] for k in keys],
                "edges": [np.linspace(*self.ranges[k], bins + 1).tolist() for k in keys],
            }
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_table(self.run_dir / HIST_EDGES_FILE, table)

    def record(self, step: int) -> None:
        """Capture what the statistics of everything captured for ``step`` need (then forget the tensors).

        The statistics themselves are computed for up to ``BATCH_STEPS`` steps at once
        (:class:`~.capture.Captures`), when the batch is full, before the log writes a part, and at
        :meth:`close`: the same numbers as step by step, with a fraction of the calls.
        """
        tensors = self._tensors()
        self._captured = {}
        if not self.ranges.keys() >= tensors.keys():
            self._set_ranges(tensors)
        keys = self._order.get(tuple(tensors))
        if keys is None:
            keys = tuple(sorted(tensors, key=_order))
            self._order[tuple(tensors)] = keys
        values = [tensors[k] for k in keys]
        numel = tuple(v.numel() for v in values)
        pending = self._pending
        if pending is not None and (pending.keys != keys or pending.captures.layout.numel != numel):
            self.describe_pending()
            pending = None
        if pending is None:
            lay = layout(numel)
            capacity = max(1, min(BATCH_STEPS, BATCH_VALUES // max(lay.width, 1)))
            pending = self._pending = _Pending(keys, Captures(lay, capacity))
        pending.captures.add(values, step)
        if pending.captures.is_full or self.log.due():
            self.describe_pending()

    def describe_pending(self) -> None:
        """Compute the statistics of the captured steps and hand them to the log.

        The captures stay pending until the log has their rows: interrupted while describing (Ctrl-C,
        SIGTERM), the steps are described again by :meth:`close`.
        """
        pending = self._pending
        if pending is None or not pending.captures.steps:
            self._pending = None
            return
        steps, keys = list(pending.captures.steps), pending.keys
        kinds = {p.index: p.kind for p in self.layers}
        table = pending.captures.table(
            [self.ranges[k] for k in keys],
            self.bins,
            [SATURATION.get(kinds.get(k[0])) if k[1] == "act" else None for k in keys],  # type: ignore[arg-type]
        )
        step_of, names = self._labels(steps, keys)
        self._pending = None  # the log takes the rows in its next call (its first statement keeps them)
        self.log.append(step_of, names, table)
        self.rows += len(table)
        self._warn_nonfinite(step_of, keys, table)

    def _labels(self, steps: list[int], keys: Keys) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The per-row step and labels of the steps' rows (the labels are the same every step: cached)."""
        names = self._names.get(keys)
        if names is None:
            labels: dict[tuple[int, str], tuple[str, int, int]] = {
                (p.index, ""): (p.name, p.fan_in, p.fan_out) for p in self.layers
            }
            labels.update({(r.layer, r.param): (r.name, r.fan_in, r.fan_out) for r in self.params or ()})
            rows = [labels[(k[0], k[2] if k[1] in ("param", "grad_param") else "")] for k in keys]
            names = self._names[keys] = {
                "layer": np.array([k[0] for k in keys], dtype=np.int64),
                "name": np.array([r[0] for r in rows], dtype=object),
                "quantity": np.array([k[1] for k in keys], dtype=object),
                "param": np.array([k[2] for k in keys], dtype=object),
                "fan_in": np.array([r[1] for r in rows], dtype=np.int64),
                "fan_out": np.array([r[2] for r in rows], dtype=np.int64),
            }
        n = len(steps)
        step_of = np.repeat(np.asarray(steps, dtype=np.int64), len(keys))
        return step_of, {k: np.tile(v, n) if n > 1 else v for k, v in names.items()}

    def _warn_nonfinite(self, step_of: np.ndarray, keys: Keys, table: np.ndarray) -> None:
        """One warning per run, at the first row holding inf/NaN."""
        nonfinite = table[:, STATS.index("n_nonfinite")]
        if "nonfinite" not in self._warned and nonfinite.any():
            r = int(np.flatnonzero(nonfinite)[0])
            layer, quantity, param = keys[r % len(keys)]
            self._warned.add("nonfinite")
            warnings.warn(
                f"step {step_of[r]}: non-finite values in layer {layer} {quantity} {param}".rstrip()
                + f" ({int(nonfinite[r])} of {int(table[r, STATS.index('n')])}); counted in n_nonfinite",
                stacklevel=3,
            )

    def report(self) -> dict[str, Any]:
        """What ``summary.json`` records of the probe (once a step was probed): ``param_coverage`` (the
        fraction of parameter values probed), ``params_left_out`` (why -> module types) and
        ``probed_layers`` (index, module path, module type, kind and activation type of each layer, and
        ``no_act``, why a layer has no activation module)."""
        if self.params is None:
            return {}
        layers = [
            {
                "layer": p.index,
                "name": p.name,
                "type": type(p.module).__name__,
                "kind": p.family,
                "act": type(p.act).__name__ if p.act is not None else None,
                **({"no_act": p.no_act} if p.no_act else {}),
            }
            for p in self.layers
        ]
        return {**self.coverage.as_dict(), "probed_layers": layers}

    def close(self) -> None:
        """Compute what is pending, write every file in full, remove the hooks."""
        self.tracer.detach()
        try:
            self.describe_pending()
        finally:
            self.log.close()


def _order(key: Key) -> tuple[int, int, str]:
    """Rows in layer order, then by quantity (:data:`QUANTITIES`), then by parameter name."""
    return key[0], QUANTITIES.index(key[1]), key[2]


class _Pending(NamedTuple):
    """Captured steps whose statistics are not computed yet: their keys (one layout) and captures."""

    keys: Keys
    captures: Captures
