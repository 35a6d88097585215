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

* finite fast path: a sorted sample is finite iff its first and last values are (NaN sorts last), and a
  large tensor is finite iff its sum and squared norm are (inf and NaN propagate through a sum). Only a
  tensor that fails that one check goes through the masked path, which leaves inf/NaN out of every
  statistic and counts them in ``n_nonfinite``.
* small tensors of equal size are stacked and handled by one ``numpy`` call per statistic (one sort,
  one mean, one variance, one ``searchsorted`` of all bin edges); large tensors cost four reductions
  (sum, norm, min, max) on their device; everything reaches the CPU in one transfer.

Histogram bins are the ones of ``numpy.histogram`` with edges ``linspace(lo, hi, bins + 1)``:
[e_i, e_i+1), the last one closed; values below ``lo`` / above ``hi`` are counted in the under- and
overflow. Percentiles are linear interpolations between order statistics (numpy's and torch's default).
Variance: Σ(x − mean)²/(n − 1) in float64 for the stacked small tensors; for large tensors
(Σx² − (Σx)²/n)/(n − 1) from float32 sums, redone around the mean when mean² is large against the
variance (where that formula would cancel).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

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

Saturation = Callable[[Tensor], Tensor]
SATURATION: dict[str, Saturation] = {
    "tanh": lambda a: a.abs() > 0.99,
    "sigmoid": lambda a: (a < 0.01) | (a > 0.99),
    "softsign": lambda a: a.abs() > 0.9,
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
def _queries(ranges: tuple[tuple[float, float], ...], bins: int) -> np.ndarray:
    """Per row, float32 thresholds t such that ``v < t`` ⇔ ``v < e`` for every float32 v: the bin edges
    e = linspace(lo, hi, bins + 1) rounded up to float32, the float64 just above ``hi`` (v ≤ hi), then
    0 and the smallest positive float32 (v < 0, v ≤ 0: the zeros lie between). Ranges are fixed per
    (layer, quantity), so this is computed about once per run."""
    tail = [0.0, float(np.nextafter(np.float32(0), np.float32(1)))]
    edges = np.stack([np.concatenate([np.linspace(lo, hi, bins + 1), [hi], tail]) for lo, hi in ranges])
    edges[:, bins + 1] = np.nextafter(edges[:, bins + 1], math.inf)
    up = edges.astype(np.float32)
    below = up.astype(np.float64) < edges
    up[below] = np.nextafter(up[below], np.float32(math.inf))
    return up


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
    below = np.stack([np.searchsorted(row, q) for row, q in zip(sorted32, queries, strict=True)])
    out[:, _Q] = _percentiles(sorted32)
    out[:, _ZERO] = (below[:, bins + 3] - below[:, bins + 2]) / m
    out[:, _SAT] = math.nan
    tests: dict[int, tuple[Saturation, list[int]]] = {}  # one call per saturation test, on all its rows
    for r, sat in enumerate(saturated):
        if sat is not None:
            tests.setdefault(id(sat), (sat, []))[1].append(r)
    for sat, rows in tests.values():
        out[rows, _SAT] = sat(torch.from_numpy(sorted32[rows])).sum(dim=1).numpy() / m
    out[:, _NS] = m
    hist = out[:, _HEAD:]
    hist[:, :bins] = np.diff(below[:, : bins + 1], axis=1)
    hist[:, bins - 1] = below[:, bins + 1] - below[:, bins - 1]  # the last bin includes hi
    hist[:, bins] = below[:, 0]
    hist[:, bins + 1] = m - below[:, bins + 1]


def _masked_row(
    full: Tensor, sample: np.ndarray, query: np.ndarray, bins: int, sat: Saturation | None
) -> np.ndarray:
    """The row of a tensor holding inf/NaN: those are counted in ``n_nonfinite`` and left out elsewhere."""
    v = full.detach().reshape(-1).double().cpu().numpy()
    fin = v[np.isfinite(v)]
    s = np.sort(sample[np.isfinite(sample)]).astype(np.float32)
    row = np.full(_HEAD + bins + 2, math.nan)
    row[_N], row[_NNF] = v.size, v.size - fin.size
    if fin.size:
        row[0] = fin.mean()
        row[1] = fin.std(ddof=1) if fin.size > 1 else 0.0
        row[2], row[3] = fin.min(), fin.max()
    if s.size:
        _describe_sample(s[None], query[None], bins, [sat], row[None])
    else:
        row[_NS] = 0
        row[_HEAD:] = 0
    return row


def _reductions(v: Tensor) -> list[Tensor] | list[float]:
    """Σv, Σv², min and max of a flat float32 tensor: 0-d tensors on its device, floats on the CPU
    (where numpy's vectorized min and max are several times faster than torch's)."""
    if v.device.type == "cpu":
        a = v.numpy()
        return [float(v.sum()), float(torch.dot(v, v)), float(a.min()), float(a.max())]
    return [v.sum(), torch.dot(v, v), *torch.aminmax(v)]


def stats_table(
    tensors: Sequence[Tensor],
    ranges: Sequence[tuple[float, float]],
    bins: int,
    saturated: Sequence[Saturation | None],
) -> np.ndarray:
    """One float64 row per tensor: the :data:`STATS`, ``bins`` counts, underflow, overflow.

    See the module docstring for what is computed from every value and what from the strided sample.
    """
    k = len(tensors)
    flat = [t.detach().reshape(-1) for t in tensors]
    strides = [sample_stride(v.numel()) for v in flat]
    samples: list[Tensor] = []
    reductions: list[Tensor] = []
    large = []
    for i, (v, s) in enumerate(zip(flat, strides, strict=True)):
        v = v.float()
        if s > 1:  # the four reductions and the sample one after the other, while v is in cache
            large.append(i)
            reductions += _reductions(v)
            samples.append(v[::s].clone())
        else:
            samples.append(v)
    # One transfer: every sample, then the reductions of the large tensors.
    on_device = [r for r in reductions if isinstance(r, Tensor)]
    parts = samples + ([torch.stack(on_device)] if on_device else [])
    host = torch.cat(parts).cpu().numpy() if parts else np.zeros(0, np.float32)
    if len(on_device) < len(reductions):  # computed on the CPU already
        host = np.concatenate([host, np.asarray(reductions, dtype=np.float32)])
    sizes = [s.numel() for s in samples]
    offsets = [0, *itertools.accumulate(sizes)]
    queries = _queries(tuple(map(tuple, ranges)), bins)
    out = np.empty((k, _HEAD + bins + 2))
    out[:, _N] = [v.numel() for v in flat]
    out[:, _NNF] = 0
    by_size: dict[tuple[int, bool], list[int]] = {}  # (sample length, sample = every value)
    for i, m in enumerate(sizes):
        by_size.setdefault((m, strides[i] == 1), []).append(i)
    red = host[offsets[-1] :].astype(np.float64).reshape(-1, 4)
    masked: list[int] = []
    for (m, exact), members in by_size.items():
        if m == 0:
            masked += members
            continue
        rows = np.sort(np.stack([host[offsets[i] : offsets[i] + m] for i in members]), axis=1)
        finite = np.isfinite(rows[:, 0]) & np.isfinite(rows[:, -1])
        good = [i for i, ok in zip(members, finite, strict=True) if ok]
        masked += [i for i, ok in zip(members, finite, strict=True) if not ok]
        if not good:
            continue
        r32 = rows if len(good) == len(members) else rows[finite]
        view = out[good]
        _describe_sample(r32, queries[good], bins, [saturated[i] for i in good], view)
        if exact:  # every value is in the sample: the moments too
            with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: redone in float64
                mean = r32.sum(axis=1, keepdims=True) / m  # pairwise float32 sums, as torch's
                var = (np.square(r32 - mean).sum(axis=1) / max(m - 1, 1)).astype(np.float64)
            mean = mean.astype(np.float64)
            for r in np.flatnonzero(~np.isfinite(var)):
                x = r32[r].astype(np.float64)
                mean[r] = x.mean()
                var[r] = np.square(x - x.mean()).sum() / max(m - 1, 1)
            view[:, 0] = mean[:, 0]
            view[:, 1] = np.sqrt(var)
            view[:, 2], view[:, 3] = r32[:, 0], r32[:, -1]
        out[good] = view
    for j, i in enumerate(large):
        if i in masked:
            continue
        total, sumsq, vmin, vmax = red[j]
        n = out[i, _N]
        if not (math.isfinite(total) and math.isfinite(sumsq)):
            masked.append(i)
            continue
        mean = total / n
        var = max(sumsq - total * total / n, 0.0) / (n - 1)
        if mean * mean > var:  # Σx² − (Σx)²/n would cancel: sum around the mean instead
            d = flat[i].double() - mean
            var = float(d.dot(d) - d.sum() ** 2 / n) / (n - 1)
        out[i, _MOMENTS] = (mean, math.sqrt(max(var, 0.0)), vmin, vmax)
    for i in masked:
        out[i] = _masked_row(tensors[i], host[offsets[i] : offsets[i + 1]], queries[i], bins, saturated[i])
    return out


def stats_batch(
    tensors: list[Tensor],
    ranges: list[tuple[float, float]],
    bins: int,
    saturated: list[Saturation | None],
) -> Tensor:
    """:func:`stats_table` as a float64 tensor (one row per tensor)."""
    return torch.from_numpy(stats_table(tensors, ranges, bins, saturated))


def tensor_stats(x: Tensor, lo: float, hi: float, bins: int, saturated: Saturation | None) -> Tensor:
    """The statistics row of one tensor (see :func:`stats_table`)."""
    return stats_batch([x], [(lo, hi)], bins, [saturated])[0]
