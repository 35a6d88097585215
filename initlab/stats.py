"""The statistics of probed tensors: moments, extremes, percentiles, fractions and a histogram.

:func:`stats_table` turns a list of tensors (any shape, any device) into one row each -- the :data:`STATS`
columns of ``layers.parquet``, then the histogram counts and the under- and overflow of ``hists.parquet``.

What uses every value and what uses a sample (``n_sample`` says how many values a row's sample holds):

* a tensor of at most ``EXACT_VALUES`` values (activations and gradients of a batch): every statistic
  uses every value (``n_sample = n``);
* a larger one (weight matrices, their gradients, conv feature maps): mean, std, min, max, ``n`` and
  ``n_nonfinite`` use every value; the percentiles, the histogram (so its counts add up to about
  ``n_sample``, not ``n``), ``frac_zero`` and ``frac_saturated`` use a fixed strided sample of about
  ``SAMPLE_VALUES`` values: every s-th value in memory order, with the stride s coprime with the number
  of values, so the sample visits every row and every column of a matrix evenly (a stride that divides
  the row length would keep reading the same columns).

Why: a 100-bin histogram of every value of a 256x1024 matrix costs about half a training step of the
default net by itself; from the sample, one sort of a few thousand values gives the percentiles, the
histogram (``searchsorted`` of the bin edges), and the zero and saturation counts at once.

Speed without losing exactness:

* two phases: at the probed step, :meth:`Captures.add` takes what cannot wait -- the samples (every
  value of the small tensors, the strided sample of the large ones) and four reductions over every value
  of each large tensor (Σx, Σx², min, max: the weights change at the next update) -- into one float32
  row, one transfer from the tensors' device; :meth:`Captures.table` then describes the rows of many
  steps at once: per group of equal-length samples one sort, one ``searchsorted`` per row (all bin
  edges, the zeros and the saturation band in one call), one mean and one variance for all steps and
  tensors. The numbers are those of one :func:`stats_table` per step, bit for bit (a test checks it).
* finite fast path: a sorted sample is finite iff its first and last values are (NaN sorts last), and a
  large tensor is finite iff its sum and squared norm are (inf and NaN propagate through a sum). Only a
  tensor that fails that one check goes through the masked path, which leaves inf/NaN out of every
  statistic and counts them in ``n_nonfinite`` (for a large one, the moments of its finite values are
  computed at capture: a few numbers kept, not the tensor).
* saturation is a :class:`Band` (saturated below ``lo`` or above ``hi``): in a sorted row that is two
  counts, found by the same ``searchsorted`` as the histogram.

Histogram bins are the ones of ``numpy.histogram`` with edges ``linspace(lo, hi, bins + 1)``:
[e_i, e_i+1), the last one closed; values below ``lo`` / above ``hi`` are counted in the under- and
overflow. Percentiles are linear interpolations between order statistics (numpy's and torch's default).
Variance: Σ(x − mean)²/(n − 1) from float32 pairwise sums for the tensors sampled whole (float64 where
they overflow); for large tensors (Σx² − (Σx)²/n)/(n − 1) from float32 sums, redone around the mean (in
float64, at capture) when mean² is large against the variance (where that formula would cancel).
Every tensor is described in float32: the values of a float64 (or half, integer) tensor are rounded to
float32 first, for every statistic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

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
    "n_sample",
)
INT_STATS = ("n", "n_nonfinite", "n_sample")
EXACT_VALUES = 8_192
SAMPLE_VALUES = 4_096
_HEAD = len(STATS)
_MOMENTS = slice(0, 4)  # mean, std, min, max
_Q = slice(4, 9)
_ZERO, _SAT, _N, _NNF, _NS = 9, 10, 11, 12, 13


@dataclass(frozen=True)
class Band:
    """Saturated outside [lo, hi]: ``a < lo or a > hi``, compared in float32 (as torch compares a float32
    tensor with a Python float). In a sorted row the saturated values are two counts that the histogram's
    ``searchsorted`` finds with the bin edges (see :func:`_queries`)."""

    lo: float
    hi: float

    def __call__(self, a: Tensor) -> Tensor:
        return (a < self.lo) | (a > self.hi)


Saturation = Callable[[Tensor], Tensor]  # a Band, or any elementwise test
SATURATION: dict[str, Band] = {
    "tanh": Band(-0.99, 0.99),  # |a| > 0.99
    "sigmoid": Band(0.01, 0.99),
    "softsign": Band(-0.9, 0.9),  # |a| > 0.9
}
BOUNDED_RANGE: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
}


def sample_stride(n: int) -> int:
    """1 up to ``EXACT_VALUES`` values; above, the smallest s ≥ n / ``SAMPLE_VALUES`` with gcd(s, n) = 1.

    Coprime with n, hence with every row length of a contiguous tensor of n values, so the sample
    ``v[::s]`` cycles through all columns instead of reading the same ones in every row.
    """
    if n <= EXACT_VALUES:
        return 1
    s = math.ceil(n / SAMPLE_VALUES)
    while math.gcd(s, n) != 1:
        s += 1
    return s


@functools.lru_cache(maxsize=64)
def _queries(
    ranges: tuple[tuple[float, float], ...], bins: int, bands: tuple[Band | None, ...] | None = None
) -> np.ndarray:
    """Per row, float32 thresholds t such that ``v < t`` ⇔ ``v < e`` for every float32 v: the bin edges
    e = linspace(lo, hi, bins + 1) rounded up to float32, the float64 just above ``hi`` (v ≤ hi), then
    0 and the smallest positive float32 (v < 0, v ≤ 0: the zeros lie between); with ``bands``, two more:
    the band's float32 ``lo`` and the float32 just above its float32 ``hi`` (v < lo, v ≤ hi). Ranges are
    fixed per (layer, quantity), so this is computed about once per run."""
    tail = [0.0, float(np.nextafter(np.float32(0), np.float32(1)))]
    if not ranges:  # no tensors
        return np.empty((0, bins + 4 + (2 if bands is not None else 0)), np.float32)
    edges = np.stack([np.concatenate([np.linspace(lo, hi, bins + 1), [hi], tail]) for lo, hi in ranges])
    edges[:, bins + 1] = np.nextafter(edges[:, bins + 1], math.inf)
    up = edges.astype(np.float32)
    below = up.astype(np.float64) < edges
    up[below] = np.nextafter(up[below], np.float32(math.inf))
    if bands is None:
        return up
    band = np.array([(b.lo, b.hi) if b is not None else (0.0, 0.0) for b in bands], np.float32)
    band[:, 1] = np.nextafter(band[:, 1], np.float32(math.inf))
    return np.concatenate([up, band], axis=1)


def _percentiles(sorted_rows: np.ndarray) -> np.ndarray:
    """Linear interpolation between order statistics of sorted rows (k, m) -> (k, 5)."""
    m = sorted_rows.shape[1]
    pos = np.asarray(PERCENTILES) * (m - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, m - 1)
    frac = pos - lo
    a, b = sorted_rows[:, lo].astype(np.float64), sorted_rows[:, hi].astype(np.float64)
    return a + (b - a) * frac


def _describe_sample(
    sorted32: np.ndarray,
    queries: np.ndarray,
    bins: int,
    saturated: Sequence[Saturation | None],
    out: np.ndarray,
) -> None:
    """Fill the sample statistics of ``out`` rows from sorted finite float32 samples of one length:
    percentiles, ``frac_zero``, ``frac_saturated``, ``n_sample`` and the histogram (see :func:`_queries`)."""
    m = sorted32.shape[1]
    below = np.empty(queries.shape, np.intp)
    for r, (row, q) in enumerate(zip(sorted32, queries, strict=True)):
        below[r] = row.searchsorted(q)
    out[:, _Q] = _percentiles(sorted32)
    out[:, _ZERO] = (below[:, bins + 3] - below[:, bins + 2]) / m
    out[:, _SAT] = math.nan
    banded = queries.shape[1] > bins + 4  # the queries hold each row's Band
    tests: dict[int, tuple[Saturation, list[int]]] = {}  # one call per saturation test, on all its rows
    band_rows = []
    for r, sat in enumerate(saturated):
        if banded and isinstance(sat, Band):
            band_rows.append(r)
        elif sat is not None:
            tests.setdefault(id(sat), (sat, []))[1].append(r)
    if band_rows:
        b = below[band_rows]
        out[band_rows, _SAT] = (b[:, bins + 4] + m - b[:, bins + 5]) / m
    for sat, rows in tests.values():
        out[rows, _SAT] = sat(torch.from_numpy(sorted32[rows])).sum(dim=1).numpy() / m
    out[:, _NS] = m
    hist = out[:, _HEAD:]
    hist[:, :bins] = np.diff(below[:, : bins + 1], axis=1)
    hist[:, bins - 1] = below[:, bins + 1] - below[:, bins - 1]  # the last bin includes hi
    hist[:, bins] = below[:, 0]
    hist[:, bins + 1] = m - below[:, bins + 1]


def _finite_moments(values: Tensor) -> np.ndarray:
    """``n_nonfinite``, mean, std (ddof 1), min and max of the finite values of a flat tensor (float64 sums
    of its float32 values; NaN where there are too few)."""
    v = values.detach().double().cpu().numpy()
    fin = v[np.isfinite(v)]
    out = np.full(5, math.nan)
    out[0] = v.size - fin.size
    if fin.size:
        out[1] = fin.mean()
        out[2] = fin.std(ddof=1) if fin.size > 1 else 0.0
        out[3], out[4] = fin.min(), fin.max()
    return out


def _masked_row(
    n: int, moments: np.ndarray, sample: np.ndarray, query: np.ndarray, bins: int, sat: Saturation | None
) -> np.ndarray:
    """The row of a tensor of ``n`` values holding inf/NaN, from its :func:`_finite_moments` and its sample:
    those values are counted in ``n_nonfinite`` and left out elsewhere."""
    s = np.sort(sample[np.isfinite(sample)]).astype(np.float32)
    row = np.full(_HEAD + bins + 2, math.nan)
    row[_N], row[_NNF] = n, moments[0]
    row[_MOMENTS] = moments[1:]
    if s.size:
        _describe_sample(s[None], query[None], bins, [sat], row[None])
    else:
        row[_NS] = 0
        row[_HEAD:] = 0
    return row


def _on_host(v: Tensor) -> bool:
    return v.device.type == "cpu"  # numpy reads it in place: no transfer


def _reductions(v: Tensor) -> list[Tensor] | list[float]:
    """Σv, Σv², min and max of a flat float32 tensor: 0-d tensors on its device, floats on the CPU
    (where numpy's vectorized min and max are several times faster than torch's)."""
    if _on_host(v):
        a = v.numpy()
        return [float(v.sum()), float(torch.dot(v, v)), float(a.min()), float(a.max())]
    return [v.sum(), torch.dot(v, v), *torch.aminmax(v)]


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
        self.masked: dict[tuple[int, int], np.ndarray] = {}  # (row, tensor) -> its _finite_moments
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
            on_device = [r for i in lay.large for r in _reductions(flat[i])]
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
                self.masked[(r, i)] = _finite_moments(flat[i])
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
        queries = _queries(tuple(map(tuple, ranges)), bins, bands)
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
            _describe_sample(sorted32, queries[member], bins, [saturated[i] for i in member], view)
            if exact:  # every value is in the sample: the moments too
                view[:, _MOMENTS] = _moments(sorted32)
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
                moments = _finite_moments(torch.from_numpy(sample))
            out[s, i] = _masked_row(lay.numel[i], moments, sample, queries[i], bins, saturated[i])
        return out.reshape(steps * k, width)


def _moments(sorted32: np.ndarray) -> np.ndarray:
    """Mean, std (ddof 1), min and max of sorted finite float32 rows of every value, (k, 4)."""
    m = sorted32.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: redone in float64
        mean = sorted32.sum(axis=1, keepdims=True) / m  # pairwise float32 sums, as torch's
        d = sorted32 - mean
        var = (np.square(d, out=d).sum(axis=1) / max(m - 1, 1)).astype(np.float64)
    mean = mean.astype(np.float64)
    for r in np.flatnonzero(~np.isfinite(var)):
        x = sorted32[r].astype(np.float64)
        mean[r] = x.mean()
        var[r] = np.square(x - x.mean()).sum() / max(m - 1, 1)
    return np.column_stack([mean[:, 0], np.sqrt(var), sorted32[:, 0], sorted32[:, -1]])


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
