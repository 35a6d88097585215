"""Capturing probed tensors at a step and describing the captures of many steps at once.

Two phases: at the probed step, :meth:`Captures.add` takes what cannot wait -- the samples (every value
of the small tensors, the strided sample of the large ones, see :func:`~.stats.sample_stride`) and
four reductions over every value of each large tensor (Σx, Σx², min, max: the weights change at the next
update) -- into one float32 row, one transfer from the tensors' device; :meth:`Captures.table` then
describes the rows of many steps at once with :mod:`~.stats`: per group of equal-length samples one
sort, one ``searchsorted`` per row (all bin edges, the zeros and the saturation band in one call), one
mean and one variance for all steps and tensors. The numbers are those of one :func:`stats_table` per
step, bit for bit (a test checks it). A large tensor whose sums are not finite takes the masked path: the
moments of its finite values are computed at capture (a few numbers are kept, not the tensor).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from initlab.probing.stats import (
    STATS,
    Band,
    Saturation,
    bin_queries,
    describe_sorted,
    finite_moments,
    masked_row,
    sample_stride,
    sorted_moments,
)

_HEAD, _N, _NNF = len(STATS), STATS.index("n"), STATS.index("n_nonfinite")
_MOMENTS = slice(0, 4)  # mean, std, min, max


def _on_host(v: Tensor) -> bool:
    return v.device.type == "cpu"  # numpy reads it in place: no transfer


BLOCK = 1 << 14  # values per float32 partial sum of squares
BLOCKED = 64 * BLOCK  # from this many values on, Σv² adds float32 partial sums in float64


def _sumsq(v: Tensor) -> Tensor:
    """Σv² of a flat float32 tensor. One float32 dot of millions of values is off by about 3e-5 relative
    (2.4 M values); from ``BLOCKED`` values on, the dots of blocks of ``BLOCK`` values (one batched matrix
    product, as fast as the dot) are added in float64: about 5e-8."""
    k = v.numel() // BLOCK
    if v.numel() < BLOCKED:
        return torch.dot(v, v)
    blocks = v[: k * BLOCK].view(k, 1, BLOCK)
    tail = v[k * BLOCK :]
    total = torch.bmm(blocks, blocks.transpose(1, 2)).sum(dtype=torch.float64) + torch.dot(tail, tail)
    return total.to(v.dtype)


def _reductions(v: Tensor) -> list[Tensor] | list[float]:
    """Σv, Σv² (:func:`_sumsq`), min and max of a flat float32 tensor: 0-d tensors on its device, floats
    on the CPU (where numpy's vectorized min and max are several times faster than torch's)."""
    if _on_host(v):
        a = v.numpy()
        return [float(v.sum()), float(_sumsq(v)), float(a.min()), float(a.max())]
    return [v.sum(), _sumsq(v), *torch.aminmax(v)]


@dataclass(frozen=True)
class Layout:
    """Where one step's tensors go in a captured row, fixed by their sizes: the samples grouped by length
    (whole ones first), then Σv, Σv², min and max of each large tensor; a group is what one sort handles."""

    numel: tuple[int, ...]
    strides: tuple[int, ...]
    start: tuple[int, ...]  # of each tensor's sample in a row
    size: tuple[int, ...]  # of each tensor's sample
    small: tuple[int, ...]  # tensors sampled whole, in row order
    large: tuple[int, ...]  # tensors with a strided sample (and reductions), in row order
    groups: tuple[tuple[int, bool, np.ndarray, int, int], ...]  # length, exact, members, first, end column
    small_end: int  # columns of the whole samples; the strided ones follow
    samples: int  # columns of all samples; the reductions follow

    @property
    def width(self) -> int:
        return self.samples + 4 * len(self.large)


@functools.lru_cache(maxsize=64)
def layout(numel: tuple[int, ...]) -> Layout:
    """The :class:`Layout` of tensors of ``numel`` values each."""
    strides = tuple(sample_stride(n) for n in numel)
    size = tuple(len(range(0, n, s)) for n, s in zip(numel, strides, strict=True))
    by_size: dict[tuple[bool, int], list[int]] = {}  # (sampled, sample length) -> tensors
    for i, m in enumerate(size):
        by_size.setdefault((strides[i] > 1, m), []).append(i)
    start = [0] * len(numel)
    groups, column = [], 0
    for (sampled, m), members in sorted(by_size.items(), key=lambda item: item[0][0]):  # stable
        for i in members:
            start[i] = column
            column += m
        groups.append((m, not sampled, np.array(members), start[members[0]], column))
    rows_order = [int(i) for _, _, members, _, _ in groups for i in members]
    small = tuple(i for i in rows_order if strides[i] == 1)
    large = tuple(i for i in rows_order if strides[i] > 1)
    small_end = sum(size[i] for i in small)
    return Layout(numel, strides, tuple(start), size, small, large, tuple(groups), small_end, column)


class Captures:
    """What the statistics of up to ``capacity`` steps need, taken at each step, described all at once.

    :meth:`add` reads one step's tensors (the same :class:`Layout` every step): it copies their samples
    and computes the reductions over every value of the large ones into one float32 row (one transfer
    from the tensors' device); where a large tensor's sums are not finite it computes the moments of its
    finite values right away (the masked path: a few numbers per tensor, no copy kept), and it redoes
    the variance around the mean where Σx² − (Σx)²/n would cancel. :meth:`table` then sorts, searches and
    averages the rows of all steps together, a few numpy calls per group of equal-length samples instead
    of per tensor and step: the same numbers as one :func:`stats_table` per step. What it holds is the
    row buffer (``capacity`` × ``layout.width`` float32 values) and a few numbers per masked tensor.
    """

    def __init__(self, lay: Layout, capacity: int) -> None:
        self.layout = lay
        self.rows = np.empty((capacity, lay.width), np.float32)
        self.steps: list[int] = []  # of the captured rows: a row counts once its step is here
        self.masked: dict[tuple[int, int], np.ndarray] = {}  # (row, tensor) -> its finite_moments
        self.var: dict[tuple[int, int], float] = {}  # (row, large tensor) -> variance around the mean
        self._n = np.array([lay.numel[i] for i in lay.large], dtype=np.float64)

    @property
    def n(self) -> int:
        return len(self.steps)

    @property
    def is_full(self) -> bool:
        return self.n == len(self.rows)

    def add(self, tensors: Sequence[Tensor], step: int = 0) -> None:
        """Capture one step's tensors (in layout order); the row counts once :meth:`add` returns (an
        interrupted call leaves the captures as they were)."""
        lay, r = self.layout, self.n
        row = self.rows[r]
        for key in [key for key in (*self.masked, *self.var) if key[0] == r]:  # left by an interrupted add
            self.masked.pop(key, None)
            self.var.pop(key, None)
        flat = [t.detach().reshape(-1) for t in tensors]
        flat = [v if v.dtype == torch.float32 else v.float() for v in flat]
        end = lay.samples
        if flat and _on_host(flat[0]):
            if lay.small:
                torch.cat([flat[i] for i in lay.small], out=torch.from_numpy(row[: lay.small_end]))
            reductions: list[float] = []
            for i in lay.large:  # the reductions, then the sample, while the tensor is in cache
                reductions += _reductions(flat[i])  # type: ignore[arg-type]
                row[lay.start[i] : lay.start[i] + lay.size[i]] = flat[i].numpy()[:: lay.strides[i]]
            row[end:] = reductions
        elif flat:  # one transfer: the samples, then the reductions
            parts = [flat[i] for i in lay.small] + [flat[i][:: lay.strides[i]] for i in lay.large]
            on_device = [x for i in lay.large for x in _reductions(flat[i])]
            row[:] = torch.cat(parts + ([torch.stack(on_device)] if on_device else [])).cpu().numpy()
        if lay.large:
            self._check_sums(r, flat, row[end:])
        self.steps.append(step)

    def _check_sums(self, r: int, flat: list[Tensor], reductions: np.ndarray) -> None:
        """The masked path's moments where the sums are not finite; the variance around the mean where
        Σx² − (Σx)²/n would cancel."""
        for j, (total, sumsq) in enumerate(reductions.reshape(-1, 4)[:, :2].tolist()):
            i, n = self.layout.large[j], self.layout.numel[self.layout.large[j]]
            if not (math.isfinite(total) and math.isfinite(sumsq)):
                self.masked[(r, i)] = finite_moments(flat[i])
                continue
            mean = total / n
            if mean * mean > max(sumsq - total * total / n, 0.0) / (n - 1):  # Σx² − (Σx)²/n would cancel
                d = flat[i].double() - mean  # sum around the mean instead
                self.var[(r, j)] = float(d.dot(d) - d.sum() ** 2 / n) / (n - 1)

    def table(
        self,
        ranges: Sequence[tuple[float, float]],
        bins: int,
        saturated: Sequence[Saturation | None],
    ) -> np.ndarray:
        """One float64 row per (step, tensor), step-major: the :data:`STATS`, ``bins`` counts, under-
        and overflow (see the module docstring)."""
        lay, rows = self.layout, self.rows[: self.n]
        steps, k = len(rows), len(lay.numel)
        bands = tuple(s if isinstance(s, Band) else None for s in saturated)
        queries = bin_queries(tuple(map(tuple, ranges)), bins, bands)
        width = _HEAD + bins + 2
        out = np.empty((steps, k, width))
        numel = np.array(lay.numel, dtype=np.float64)
        out[:, :, _N] = numel
        out[:, :, _NNF] = 0
        masked = {key for key in self.masked if key[0] < steps}
        for m, exact, members, first, end in lay.groups:
            step_of = np.repeat(np.arange(steps), len(members))
            member = np.tile(members, steps)
            if m == 0:
                masked.update(zip(step_of.tolist(), member.tolist(), strict=True))
                continue
            # a sorted C-order copy (numpy's sums are pairwise along the rows of a C-order array)
            sorted32 = np.sort(rows[:, first:end].reshape(steps, len(members), m), axis=2).reshape(-1, m)
            finite = np.isfinite(sorted32[:, 0]) & np.isfinite(sorted32[:, -1])
            if not finite.all():
                masked.update(zip(step_of[~finite].tolist(), member[~finite].tolist(), strict=True))
                sorted32, step_of, member = sorted32[finite], step_of[finite], member[finite]
            if not len(sorted32):
                continue
            view = np.empty((len(sorted32), out.shape[2]))
            view[:, _N], view[:, _NNF] = numel[member], 0
            describe_sorted(sorted32, queries[member], bins, [saturated[i] for i in member], view)
            if exact:  # every value is in the sample: the moments too
                view[:, _MOMENTS] = sorted_moments(sorted32)
            out[step_of, member] = view
        if lay.large:
            red = rows[:, lay.samples :].astype(np.float64).reshape(steps, -1, 4)
            total, sumsq, n = red[..., 0], red[..., 1], self._n
            with np.errstate(over="ignore", invalid="ignore"):
                var = np.maximum(sumsq - total * total / n, 0.0) / (n - 1)
            for (s, j), v in self.var.items():
                if s < steps:
                    var[s, j] = v
            large = list(lay.large)
            out[:, large, 0] = total / n
            out[:, large, 1] = np.sqrt(np.maximum(var, 0.0))
            out[:, large, 2:4] = red[..., 2:4]
        for s, i in sorted(masked):
            sample = rows[s, lay.start[i] : lay.start[i] + lay.size[i]]
            moments = self.masked.get((s, i))
            if moments is None:  # sampled whole: the sample is every value
                moments = finite_moments(torch.from_numpy(sample))
            out[s, i] = masked_row(lay.numel[i], moments, sample, queries[i], bins, saturated[i])
        return out.reshape(steps * k, width)


def stats_table(
    tensors: Sequence[Tensor],
    ranges: Sequence[tuple[float, float]],
    bins: int,
    saturated: Sequence[Saturation | None],
) -> np.ndarray:
    """One float64 row per tensor: the :data:`STATS`, ``bins`` counts, underflow, overflow.

    See the module docstring for what is computed from every value and what from the strided sample;
    :class:`Captures` does the same for many steps at once.
    """
    captures = Captures(layout(tuple(t.numel() for t in tensors)), 1)
    captures.add(tensors)
    return captures.table(ranges, bins, saturated)


def tensor_stats(x: Tensor, lo: float, hi: float, bins: int, saturated: Saturation | None) -> Tensor:
    """The statistics row of one tensor (see :func:`stats_table`), as a float64 tensor."""
    return torch.from_numpy(stats_table([x], [(lo, hi)], bins, [saturated])[0])
