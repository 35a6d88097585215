"""The statistics of one probed tensor: moments, extremes, percentiles, fractions and a histogram.

:func:`stats_batch` turns a list of tensors into one row each -- the :data:`STATS` columns of
``layers.parquet``, then the histogram counts and the under- and overflow of ``hists.parquet`` -- on the
tensors' device, so a probed step costs one transfer to the CPU.

Percentiles are exact up to ``MAX_QUANTILE_VALUES`` values and taken on an evenly strided subsample of that
size above it (weight matrices); all other statistics use every value. Non-finite values (inf/NaN) are
counted in ``n_nonfinite`` and left out of every other statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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
