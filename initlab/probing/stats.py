"""The statistics of probed tensors: moments, extremes, percentiles, fractions and a histogram.

One row per tensor (:func:`initlab.probing.capture.stats_table` turns a list of tensors into rows): the
:data:`STATS` columns of ``layers.parquet``, then the histogram counts and the under- and overflow of
``hists.parquet``. This module describes rows of sorted float32 samples; :mod:`~.capture` takes the
samples and the reductions from the tensors.

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

Speed without losing exactness (the rows of many steps are described at once by
:class:`initlab.probing.capture.Captures`):

* finite fast path: a sorted sample is finite iff its first and last values are (NaN sorts last), and a
  large tensor is finite iff its sum and squared norm are (inf and NaN propagate through a sum). Only a
  tensor that fails that one check goes through the masked path (:func:`masked_row`), which leaves
  inf/NaN out of every statistic and counts them in ``n_nonfinite``.
* saturation is a :class:`Band` (saturated below ``lo`` or above ``hi``): in a sorted row that is two
  counts, found by the same ``searchsorted`` as the histogram.

Histogram bins are the ones of ``numpy.histogram`` with edges ``linspace(lo, hi, bins + 1)``:
[e_i, e_i+1), the last one closed; values below ``lo`` / above ``hi`` are counted in the under- and
overflow. Percentiles are linear interpolations between order statistics (numpy's and torch's default).
Variance: Σ(x − mean)²/(n − 1) from float32 pairwise sums for the tensors sampled whole (float64 where
they overflow); for large tensors (Σx² − (Σx)²/n)/(n − 1) from float32 sums (Σx² of a million values or
more from block dots added in float64, :func:`initlab.probing.capture._sumsq`), redone around the mean
(in float64, at capture) when mean² is large against the variance (where that formula would cancel).
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
    ``searchsorted`` finds with the bin edges (see :func:`bin_queries`)."""

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
def bin_queries(
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


def describe_sorted(
    sorted32: np.ndarray,
    queries: np.ndarray,
    bins: int,
    saturated: Sequence[Saturation | None],
    out: np.ndarray,
) -> None:
    """Fill the sample statistics of ``out`` rows from sorted finite float32 samples of one length:
    percentiles, ``frac_zero``, ``frac_saturated``, ``n_sample`` and the histogram (see
    :func:`bin_queries`)."""
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


def finite_moments(values: Tensor) -> np.ndarray:
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


def masked_row(
    n: int, moments: np.ndarray, sample: np.ndarray, query: np.ndarray, bins: int, sat: Saturation | None
) -> np.ndarray:
    """The row of a tensor of ``n`` values holding inf/NaN, from its :func:`finite_moments` and its sample:
    those values are counted in ``n_nonfinite`` and left out elsewhere."""
    s = np.sort(sample[np.isfinite(sample)]).astype(np.float32)
    row = np.full(_HEAD + bins + 2, math.nan)
    row[_N], row[_NNF] = n, moments[0]
    row[_MOMENTS] = moments[1:]
    if s.size:
        describe_sorted(s[None], query[None], bins, [sat], row[None])
    else:
        row[_NS] = 0
        row[_HEAD:] = 0
    return row


def sorted_moments(sorted32: np.ndarray) -> np.ndarray:
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
