"""The fast statistics against numpy on every value, or on the documented strided sample."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from initlab import load_run
from initlab.probing import capture
from initlab.probing.capture import Captures, layout, stats_table
from initlab.probing.stats import (
    EXACT_VALUES,
    PERCENTILES,
    SAMPLE_VALUES,
    SATURATION,
    STATS,
    bin_queries,
    finite_moments,
    masked_row,
    sample_stride,
)
from initlab.runs import HIST_COLUMNS, with_edges
from initlab.runs.write import HIST_EDGES_FILE, HISTS_FILE

BINS = 100
COL = {s: j for j, s in enumerate(STATS)}


def expected_row(x: np.ndarray, lo: float, hi: float, sat_threshold: float | None) -> dict[str, object]:
    """numpy's statistics: moments/extremes from every finite value, the rest from the strided sample."""
    flat = x.reshape(-1)
    fin = flat[np.isfinite(flat)].astype(np.float64)
    sample = flat[:: sample_stride(flat.size)]
    sample = sample[np.isfinite(sample)]
    counts, _ = np.histogram(sample, bins=BINS, range=(lo, hi))
    return {
        "mean": fin.mean(),
        "std": fin.std(ddof=1),
        "min": fin.min(),
        "max": fin.max(),
        "percentiles": np.quantile(sample.astype(np.float64), PERCENTILES),
        "frac_zero": np.mean(sample == 0),
        "frac_saturated": np.mean(np.abs(sample) > sat_threshold) if sat_threshold else math.nan,
        "n": flat.size,
        "n_nonfinite": flat.size - fin.size,
        "n_sample": sample.size,  # the finite values of the sample
        "counts": counts,
        "underflow": np.sum(sample.astype(np.float64) < lo),  # float64: as the edges (numpy 2 would
        "overflow": np.sum(sample.astype(np.float64) > hi),  # round a Python float to float32 here)
    }


def check(row: np.ndarray, want: dict[str, object]) -> None:
    for key in ("mean", "std"):
        assert row[COL[key]] == pytest.approx(want[key], rel=2e-5, abs=1e-7), key
    assert (row[COL["min"]], row[COL["max"]]) == (want["min"], want["max"])
    np.testing.assert_allclose(row[COL["p02"] : COL["p98"] + 1], want["percentiles"], rtol=1e-6, atol=1e-7)
    assert row[COL["frac_zero"]] == pytest.approx(want["frac_zero"])
    if math.isnan(want["frac_saturated"]):
        assert math.isnan(row[COL["frac_saturated"]])
    else:
        assert row[COL["frac_saturated"]] == pytest.approx(want["frac_saturated"])
    for key in ("n", "n_nonfinite", "n_sample"):
        assert row[COL[key]] == want[key], key
    np.testing.assert_array_equal(row[len(STATS) : len(STATS) + BINS], want["counts"])
    assert (row[-2], row[-1]) == (want["underflow"], want["overflow"])


def tensors(seed: int = 0) -> list[np.ndarray]:
    """What a probe sees: batch activations (some with zeros), weight matrices, a conv weight, a conv map."""
    rng = np.random.default_rng(seed)
    relu = np.maximum(rng.standard_normal((10, 256)), 0)
    return [
        relu.astype(np.float32),  # small, half zeros
        np.tanh(3 * rng.standard_normal((10, 256))).astype(np.float32),  # small, saturated
        rng.standard_normal((10, 9)).astype(np.float32),  # tiny
        (0.05 * rng.standard_normal((256, 1024))).astype(np.float32),  # large matrix
        (0.1 * rng.standard_normal((256, 256)) + 0.02).astype(np.float32),  # large, mean off zero
        rng.standard_normal((16, 8, 9, 9)).astype(np.float32),  # conv weight just above EXACT_VALUES
        np.maximum(rng.standard_normal((4, 16, 12, 12)), 0).astype(np.float32),  # conv feature map
    ]


def test_fast_statistics_equal_numpy_on_every_value_or_the_documented_sample() -> None:
    xs = tensors()
    ranges = [(-3.0, 3.0), (-1.0, 1.0), (-2.0, 2.0), (-0.2, 0.2), (-0.3, 0.4), (-4.0, 4.0), (0.0, 3.0)]
    sats = [None, SATURATION["tanh"], None, None, None, None, None]
    table = stats_table([torch.from_numpy(x) for x in xs], ranges, BINS, sats)
    for x, (lo, hi), sat, row in zip(xs, ranges, sats, table, strict=True):
        check(row, expected_row(x, lo, hi, 0.99 if sat else None))
    assert [int(r[COL["n_sample"]]) for r in table[:3]] == [2560, 2560, 90]  # small: every value
    assert all(r[COL["n_sample"]] < r[COL["n"]] for r in table[3:])


def test_sample_stride_is_coprime_and_visits_every_column() -> None:
    assert sample_stride(EXACT_VALUES) == 1 and sample_stride(EXACT_VALUES + 1) > 1
    for rows, cols in [(256, 1024), (256, 256), (1024, 784), (64, 3 * 3 * 32)]:
        n = rows * cols
        s = sample_stride(n)
        assert math.gcd(s, n) == 1 and SAMPLE_VALUES / 2 < len(range(0, n, s)) <= SAMPLE_VALUES
        columns = np.unique(np.arange(0, n, s) % cols)
        assert len(columns) == min(cols, len(range(0, n, s)))  # a stride dividing cols would see cols / s


def test_histogram_bins_are_numpys_even_at_the_edges() -> None:
    lo, hi, bins = -0.3, 0.7, 10
    edges = np.linspace(lo, hi, bins + 1)
    around = np.concatenate([edges, np.nextafter(edges, -1), np.nextafter(edges, 2)])
    x = np.concatenate([around.astype(np.float32), np.float32([-5, 5, 0, -0.0])])
    row = stats_table([torch.from_numpy(x)], [(lo, hi)], bins, [None])[0]
    counts, _ = np.histogram(x, bins=edges)
    np.testing.assert_array_equal(row[len(STATS) : len(STATS) + bins], counts)
    x64 = x.astype(np.float64)
    assert row[-2] == np.sum(x64 < lo) and row[-1] == np.sum(x64 > hi)
    assert row[COL["frac_zero"]] == pytest.approx(2 / len(x))
    # float32 thresholds equivalent to the float64 edges for every float32 value
    q = bin_queries(((lo, hi),), bins)[0]
    for v in x:
        assert [v < t for t in q[: bins + 1]] == [float(v) < e for e in edges]


def test_nonfinite_values_are_counted_and_left_out() -> None:
    small = np.float32([1, 2, 3, np.inf, -np.inf, np.nan])
    large = np.random.default_rng(1).standard_normal(20_000).astype(np.float32)
    stride = sample_stride(large.size)
    large[1] = np.nan  # not in the sample
    large[stride] = np.inf  # in the sample
    large[5 * stride] = -np.inf
    table = stats_table(
        [torch.from_numpy(small), torch.from_numpy(large)], [(0, 4), (-4, 4)], BINS, [None] * 2
    )
    assert table[0, COL["n_nonfinite"]] == 3 and table[0, COL["mean"]] == 2 and table[0, COL["std"]] == 1
    assert table[0, len(STATS) : len(STATS) + BINS].sum() == 3
    check(table[1], expected_row(large, -4, 4, None))
    assert table[1, COL["n_nonfinite"]] == 3
    everything_bad = stats_table([torch.full((5,), math.nan)], [(0, 1)], BINS, [None])[0]
    assert everything_bad[COL["n_nonfinite"]] == 5 and math.isnan(everything_bad[COL["mean"]])


def test_fast_path_equals_the_masked_path_on_finite_tensors() -> None:
    for x in tensors(seed=3):
        t = torch.from_numpy(x)
        fast = stats_table([t], [(-1.0, 1.0)], BINS, [SATURATION["tanh"]])[0]
        sample = x.reshape(-1)[:: sample_stride(x.size)]
        query = bin_queries(((-1.0, 1.0),), BINS)[0]
        moments = finite_moments(t.reshape(-1))
        masked = masked_row(t.numel(), moments, sample, query, BINS, SATURATION["tanh"])
        np.testing.assert_allclose(fast, masked, rtol=2e-5, atol=1e-7)


def test_a_large_mean_does_not_cost_the_std_its_precision() -> None:
    x = (1000 + 1e-3 * np.random.default_rng(2).standard_normal(50_000)).astype(np.float32)
    row = stats_table([torch.from_numpy(x)], [(999.0, 1001.0)], BINS, [None])[0]
    assert row[COL["std"]] == pytest.approx(x.astype(np.float64).std(ddof=1), rel=1e-4)
    assert row[COL["mean"]] == pytest.approx(x.astype(np.float64).mean(), rel=1e-7)


def test_the_sum_of_squares_of_millions_of_values_keeps_float64_precision() -> None:
    """Σx² of 2.4 M float32 values by one float32 dot is off by about 3e-5 relative; by blocks added in
    float64, the std of a large gradient matches numpy's float64 std to float32 rounding."""
    x = (3e-4 + 1e-3 * np.random.default_rng(3).standard_normal(2_400_000)).astype(np.float32)
    t = torch.from_numpy(x)
    exact = float(np.square(x.astype(np.float64)).sum())
    assert abs(float(torch.dot(t, t)) - exact) / exact > 1e-5  # the single float32 dot
    assert float(capture._sumsq(t)) == pytest.approx(exact, rel=2e-7)
    row = stats_table([t], [(-0.01, 0.01)], BINS, [None])[0]
    assert row[COL["std"]] == pytest.approx(x.astype(np.float64).std(ddof=1), rel=1e-6)


def test_many_steps_described_at_once_equal_step_by_step() -> None:
    """The probe describes up to 64 captured steps together: bit for bit what each step gives on its own."""
    ranges = [(-3.0, 3.0), (-1.0, 1.0), (-2.0, 2.0), (-0.2, 0.2), (-0.3, 0.4), (-4.0, 4.0), (0.0, 3.0)]
    sats = [None, SATURATION["tanh"], None, None, SATURATION["sigmoid"], None, None]
    steps = []
    for seed in range(5):
        xs = tensors(seed)
        if seed == 1:  # inf/NaN in a small and in a large tensor: the masked path
            xs[0][0, :3] = [np.inf, -np.inf, np.nan]
            xs[3][5, 5] = np.nan
        if seed == 2:  # a large mean: the variance redone around the mean
            xs[4] += 100
        steps.append([torch.from_numpy(x) for x in xs])
    captures = Captures(layout(tuple(t.numel() for t in steps[0])), len(steps))
    for ts in steps:
        captures.add(ts)
    batched = captures.table(ranges, BINS, sats)
    one_by_one = np.concatenate([stats_table(ts, ranges, BINS, sats) for ts in steps])
    np.testing.assert_array_equal(batched, one_by_one)
    assert not np.array_equal(one_by_one[0], one_by_one[len(ranges)])  # the steps differ


def test_the_device_path_gives_the_host_paths_numbers(monkeypatch) -> None:
    """On a GPU the reductions stay on the device and everything comes over in one transfer; run that path
    on the CPU (torch's ops instead of numpy's min and max): the same numbers."""
    xs = [torch.from_numpy(x) for x in tensors(seed=5)]
    xs[3][0, 0] = math.inf  # a large tensor through the masked path
    ranges = [(-3.0, 3.0), (-1.0, 1.0), (-2.0, 2.0), (-0.2, 0.2), (-0.3, 0.4), (-4.0, 4.0), (0.0, 3.0)]
    sats = [None, SATURATION["tanh"], None, None, None, None, None]
    host = stats_table(xs, ranges, BINS, sats)
    monkeypatch.setattr(capture, "_on_host", lambda v: False)
    np.testing.assert_array_equal(stats_table(xs, ranges, BINS, sats), host)
    assert host[3, COL["n_nonfinite"]] == 1


def test_saturation_bands_count_what_the_elementwise_tests_count() -> None:
    """Counted in the sorted sample: |tanh| > 0.99, sigmoid < 0.01 or > 0.99, |softsign| > 0.9"""
    f32 = np.float32
    tests = {
        "tanh": lambda a: np.abs(a) > f32(0.99),
        "sigmoid": lambda a: (a < f32(0.01)) | (a > f32(0.99)),
        "softsign": lambda a: np.abs(a) > f32(0.9),
    }
    rng = np.random.default_rng(4)
    for name, elementwise in tests.items():
        band = SATURATION[name]
        at = f32([band.lo, band.hi, -band.lo, -band.hi])
        near = np.concatenate([at, np.nextafter(at, f32(2)), np.nextafter(at, f32(-2))])
        for size in (3_000, 40_000):  # every value, and the strided sample
            x = rng.uniform(-1, 1, size).astype(f32)
            s = sample_stride(size)
            x[: s * near.size : s] = near  # values at and next to the thresholds, in the sample
            row = stats_table([torch.from_numpy(x)], [(-1.0, 1.0)], BINS, [band])[0]
            sample = x[::s]
            assert row[COL["frac_saturated"]] == np.mean(elementwise(sample)), (name, size)


def test_edges_are_stored_once_and_joined_back(tmp_path, make_cfg) -> None:
    from initlab.lab.train import train

    train(make_cfg("probe=every", "probe.bins=12"), tmp_path)
    on_disk = pd.read_parquet(tmp_path / HISTS_FILE)
    edges = pd.read_parquet(tmp_path / HIST_EDGES_FILE)
    assert "edges" not in on_disk and len(edges) == len(edges[["layer", "quantity"]].drop_duplicates())
    hists = load_run(tmp_path).hists
    assert list(hists.columns) == list(HIST_COLUMNS) and len(hists) == len(on_disk)
    for row in hists.itertuples():
        assert len(row.edges) == 13 and len(row.counts) == 12 and row.counts.dtype == np.int64
    per_key = hists.groupby(["layer", "quantity"]).edges.apply(lambda e: len({tuple(x) for x in e}))
    assert (per_key == 1).all()
    old_format = hists.copy()
    assert with_edges(old_format, edges) is old_format  # older runs kept edges in every row


def held_bytes(obj: object) -> int:
    """Bytes of the arrays and tensors an object holds in its attributes (in dicts and lists too)."""
    todo, total = list(vars(obj).values()), 0
    while todo:
        v = todo.pop()
        if isinstance(v, np.ndarray | torch.Tensor):
            total += v.nbytes
        elif isinstance(v, dict):
            todo += [*v.keys(), *v.values()]
        elif isinstance(v, list | tuple):
            todo += list(v)
    return total


def test_captures_of_nonfinite_tensors_stay_within_their_row_buffer() -> None:
    """A diverged weight (inf/NaN) takes the masked path at every step: what the captures keep for it is
    a few numbers per step, not a copy of the tensor, and the rows are those of one step at a time."""
    x = np.random.default_rng(8).standard_normal((300, 1000)).astype(np.float32)
    x[0, 0] = np.nan
    steps = [torch.from_numpy(x * (1 + s)) for s in range(16)]
    captures = Captures(layout((x.size,)), len(steps))
    for s, t in enumerate(steps):
        captures.add([t], step=10 * s)
    assert captures.steps == list(range(0, 160, 10))
    assert held_bytes(captures) < captures.rows.nbytes + 16 * 1024  # the tensors hold 19 MB
    table = captures.table([(-4.0, 4.0)], BINS, [None])
    np.testing.assert_array_equal(
        table, np.concatenate([stats_table([t], [(-4.0, 4.0)], BINS, [None]) for t in steps])
    )
    check(table[3], expected_row(x * 4, -4, 4, None))
    assert table[3, COL["n_nonfinite"]] == 1


def test_no_tensors_give_no_rows() -> None:
    width = len(STATS) + BINS + 2
    assert stats_table([], [], BINS, []).shape == (0, width)
    captures = Captures(layout(()), 4)
    for s in range(3):
        captures.add([], step=s)
    assert captures.steps == [0, 1, 2] and captures.table([], BINS, []).shape == (0, width)


def test_captures_of_many_steps_equal_numpy_row_by_row() -> None:
    """Captures against the numpy reference directly (not through stats_table): every row of every step,
    with inf/NaN in a small and a large tensor and a large mean (the variance redone around it)."""
    ranges = [(-3.0, 3.0), (-1.0, 1.0), (-2.0, 2.0), (-0.2, 0.2), (-0.3, 0.4), (-4.0, 4.0), (0.0, 3.0)]
    sats = [None, SATURATION["tanh"], None, None, None, None, None]
    steps = [tensors(seed) for seed in range(10, 14)]
    steps[1][1][0, :2] = [np.nan, np.inf]
    steps[2][3][7, 7] = -np.inf
    steps[3][4] += 50
    captures = Captures(layout(tuple(x.size for x in steps[0])), 8)
    for s, xs in enumerate(steps):
        captures.add([torch.from_numpy(x) for x in xs], step=s)
    table = captures.table(ranges, BINS, sats).reshape(len(steps), len(ranges), -1)
    for xs, rows in zip(steps, table, strict=True):
        for x, (lo, hi), sat, row in zip(xs, ranges, sats, rows, strict=True):
            check(row, expected_row(x, lo, hi, 0.99 if sat else None))
    assert table[1, 1, COL["n_nonfinite"]] == 2 and table[2, 3, COL["n_nonfinite"]] == 1


def test_an_interrupted_capture_leaves_nothing_behind(monkeypatch) -> None:
    """Ctrl-C inside add (here: between the masked moments of two NaN weights): the row does not count,
    and nothing of it outlives the next capture into the same row."""
    xs = tensors(seed=20)
    bad = [x.copy() for x in xs]
    bad[3][0, 0] = bad[4][0, 0] = np.nan
    captures = Captures(layout(tuple(x.size for x in xs)), 4)
    real, calls = capture.finite_moments, []

    def moments_then_interrupt(values):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(values)

    monkeypatch.setattr(capture, "finite_moments", moments_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        captures.add([torch.from_numpy(x) for x in bad], step=0)
    monkeypatch.undo()
    assert captures.steps == [] and len(calls) == 2
    captures.add([torch.from_numpy(x) for x in xs], step=1)
    ranges, sats = [(-3.0, 3.0)] * len(xs), [None] * len(xs)
    table = captures.table(ranges, BINS, sats)
    np.testing.assert_array_equal(table, stats_table([torch.from_numpy(x) for x in xs], ranges, BINS, sats))
    assert captures.steps == [1] and not table[:, COL["n_nonfinite"]].any()
