"""``initlab export-tb PATH... [--out DIR]``: TensorBoard event files from runs and sweeps on disk.

Every run under the paths (read through :mod:`initlab.runs`) becomes one TensorBoard run, a folder of
``--out`` named after its directory and the overrides that differ between the runs of its path
(``he/3 init=kaiming model.depth=30``). Each gets:

* **scalars** ``train/accuracy``, ``test/loss``, ... and ``lr`` from ``metrics.parquet``, at their steps;
* **scalars** ``<quantity>/<stat>/layer<l>`` (e.g. ``act/std/layer03``) of every per-layer statistic in
  ``layers.parquet`` (mean, std, min, max, percentiles, fractions, non-finite count); the per-parameter
  rows as ``param/<stat>/<qualified name>`` and ``grad_param/<stat>/<qualified name>``;
* **histograms** ``<quantity>/layer<l>`` over the probed steps, taken from the stored bin edges and counts
  of ``hists.parquet`` as they are (nothing is recomputed): bin i spans [edges[i], edges[i+1]]; values
  below the range (``underflow``) form one bin from the probe's ``min`` up to the first edge, values above
  it (``overflow``) one bin from the last edge to ``max``;
* **one HParams entry**: the run's overrides (typed, ``null`` as text) and ``status``, with the metrics
  ``hparams/final_test_accuracy``, ``hparams/final_test_loss``, ``hparams/final_train_accuracy``,
  ``hparams/final_train_loss``, ``hparams/steps_done`` from ``summary.json``; the discrete domain of every
  override lists the values of all exported runs, so the HParams table filters across a sweep.

Writing goes through ``torch.utils.tensorboard`` (``SummaryWriter.add_scalar``, ``add_histogram_raw`` and
its ``hparams`` summaries); TensorBoard itself is the optional extra ``initlab[tensorboard]``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from initlab.errors import UserError
from initlab.runs import Run, collect_runs
from initlab.runs.grouping import label, varying_keys

INSTALL_HINT = 'TensorBoard is not installed: pip install "initlab[tensorboard]" (or pip install tensorboard)'
METRIC_COLUMNS = ("loss", "reg_loss", "accuracy")
LAYER_KEYS = ("step", "layer", "name", "quantity", "param", "fan_in", "fan_out", "n")  # not statistics
HPARAM_METRICS = (
    "final_test_accuracy",
    "final_test_loss",
    "final_train_accuracy",
    "final_train_loss",
    "steps_done",
)
HPARAM_PREFIX = "hparams/"


def require_tensorboard() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a :class:`UserError` saying how to install it."""
    try:
        import tensorboard  # noqa: F401 - torch's writer needs it; test it first for a clear message
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc
    return SummaryWriter


# ---------------------------------------------------------------------------------------------------------
# What one run gives TensorBoard


def histogram_buckets(
    edges: Sequence[float], counts: Sequence[int], underflow: int, overflow: int, lo: float, hi: float
) -> dict[str, Any]:
    """``add_histogram_raw`` arguments for one stored histogram (TensorBoard's buckets are right limits).

    TensorBoard reads bucket i as [limit[i-1], limit[i]], the first from ``min`` and the last up to ``max``.
    So with no under/overflow, ``min`` = edges[0], limits = edges[1:], ``max`` = edges[-1]: the stored bins
    exactly. Underflow adds a first bucket [lo, edges[0]], overflow a last one [edges[-1], hi], where lo/hi
    are the probe's min/max (the bucket is empty of width when they are missing).
    """
    edges = [float(e) for e in edges]
    limits, bucket_counts = list(edges[1:]), [int(c) for c in counts]
    low, high = edges[0], edges[-1]
    if underflow:
        low = min(lo, edges[0]) if math.isfinite(lo) else edges[0]
        limits, bucket_counts = [edges[0], *limits], [int(underflow), *bucket_counts]
    if overflow:
        high = max(hi, edges[-1]) if math.isfinite(hi) else edges[-1]
        limits, bucket_counts = [*limits, high], [*bucket_counts, int(overflow)]
    num = int(sum(bucket_counts))
    return {
        "min": low,
        "max": high,
        "num": num,
        "bucket_limits": limits,
        "bucket_counts": bucket_counts,
    }


def _moments(stats: pd.Series | None, num: int) -> tuple[float, float]:
    """(Σx, Σx²) from the probe's mean and (population) std over the ``num`` finite values; 0 if unknown."""
    if stats is None or not num:
        return 0.0, 0.0
    mean, std = float(stats.get("mean", 0.0)), float(stats.get("std", 0.0))
    if not (math.isfinite(mean) and math.isfinite(std)):
        return 0.0, 0.0
    return mean * num, (std * std + mean * mean) * num


def _layer_tag(quantity: str, layer: int, stat: str | None = None, param: object = "") -> str:
    """``<quantity>/<stat>/layer<l>``; a per-parameter row (``param``, ``grad_param``) is tagged by its
    parameter's qualified name instead of its layer: ``param/<stat>/<name>``."""
    where = param if quantity in ("param", "grad_param") and isinstance(param, str) else f"layer{layer:02d}"
    return f"{quantity}/{stat}/{where}" if stat else f"{quantity}/{where}"


def write_metrics(writer: Any, run: Run) -> int:
    """``<split>/<loss|reg_loss|accuracy>`` and ``lr`` per evaluated step; returns the scalars written."""
    m = run.metrics
    if m.empty or "step" not in m.columns:
        return 0
    n = 0
    for row in m.sort_values("step").itertuples(index=False):
        step = int(row.step)
        for col in METRIC_COLUMNS:
            if hasattr(row, col):
                writer.add_scalar(f"{row.split}/{col}", float(getattr(row, col)), step)
                n += 1
        if hasattr(row, "lr") and row.split == "train":
            writer.add_scalar("lr", float(row.lr), step)
            n += 1
    return n


def write_layer_stats(writer: Any, run: Run) -> int:
    """``<quantity>/<stat>/layer<l>`` for every numeric statistic of ``layers.parquet``."""
    layers = run.layers
    if layers.empty:
        return 0
    stats = [c for c in layers.columns if c not in LAYER_KEYS and pd.api.types.is_numeric_dtype(layers[c])]
    n = 0
    for row in layers.sort_values(["step", "quantity", "layer"]).itertuples(index=False):
        for stat in stats:
            value = float(getattr(row, stat))
            if math.isnan(value):  # e.g. frac_saturated of a ReLU net: not measured
                continue
            tag = _layer_tag(row.quantity, int(row.layer), stat, getattr(row, "param", ""))
            writer.add_scalar(tag, value, int(row.step))
            n += 1
    return n


def write_histograms(writer: Any, run: Run) -> int:
    """One TensorBoard histogram per stored (step, layer, quantity), from its edges and counts."""
    hists = run.hists
    if hists.empty:
        return 0
    layers = run.layers
    keys = ["step", "layer", "quantity", *(["param"] if "param" in hists and "param" in layers else [])]
    stats = (
        layers.set_index(keys).sort_index() if not layers.empty and set(keys) <= set(layers.columns) else None
    )
    n = 0
    for row in hists.sort_values(["step", "quantity", "layer"]).itertuples(index=False):
        key = tuple(getattr(row, k) for k in keys)
        row_stats = stats.loc[key] if stats is not None and key in stats.index else None
        if isinstance(row_stats, pd.DataFrame):
            row_stats = row_stats.iloc[0]
        lo = float(row_stats["min"]) if row_stats is not None else float("nan")
        hi = float(row_stats["max"]) if row_stats is not None else float("nan")
        buckets = histogram_buckets(
            list(row.edges), list(row.counts), int(row.underflow), int(row.overflow), lo, hi
        )
        total, squares = _moments(row_stats, buckets["num"])
        writer.add_histogram_raw(
            _layer_tag(row.quantity, int(row.layer), param=getattr(row, "param", "")),
            sum=total,
            sum_squares=squares,
            global_step=int(row.step),
            **buckets,
        )
        n += 1
    return n


def hparam_value(value: Any) -> Any:
    """A value TensorBoard's HParams accepts: numbers and text as they are, booleans and null as Hydra
    writes them (``true``, ``null``), lists as their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return "null" if value is None else str(value)


def run_hparams(run: Run) -> dict[str, Any]:
    """The run's overrides (``hydra.*`` left out) and its status."""
    values = {k: hparam_value(v) for k, v in run.override_values.items() if not k.startswith("hydra.")}
    values["status"] = run.status
    return values


def write_hparams(writer: Any, run: Run, values: dict[str, Any], domains: dict[str, list[Any]]) -> None:
    """One HParams session: ``values`` and the final metrics of ``summary.json`` (NaN where absent)."""
    from torch.utils.tensorboard.summary import hparams

    metrics = {}
    for key in HPARAM_METRICS:
        value = run.summary.get(key)
        metrics[HPARAM_PREFIX + key] = float(value) if isinstance(value, int | float) else float("nan")
    step = int(run.summary.get("steps_done") or 0)
    for summary in hparams(values, metrics, domains):
        writer.file_writer.add_summary(summary, step)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, step)


def discrete_domains(all_values: Iterable[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every hparam's values over all runs, for keys whose values are all text."""
    seen: dict[str, list[Any]] = {}
    for values in all_values:
        for key, value in values.items():
            if value not in seen.setdefault(key, []):
                seen[key].append(value)
    out = {}
    for key, vals in seen.items():
        if all(isinstance(v, str) for v in vals):
            out[key] = sorted(vals)
    return out


# ---------------------------------------------------------------------------------------------------------
# Many runs


def _safe(text: str) -> str:
    return re.sub(r"[/\\\x00]", "_", text)


def run_names(path: str, runs: Sequence[Run]) -> dict[Run, str]:
    """TensorBoard run names: the path's name, the run's place below it, and what differs between runs."""
    base = Path(path)
    differ = bool(varying_keys(runs)) and len(runs) > 1
    names = {}
    for run in runs:
        if base.is_dir() and run.path.resolve() != base.resolve():
            try:
                where = str(Path(base.resolve().name) / run.path.resolve().relative_to(base.resolve()))
            except ValueError:
                where = run.path.name
        else:
            where = run.path.name
        names[run] = f"{where} {_safe(label(run, runs))}" if differ else where
    return names


def export(paths: Sequence[str], out: Path, notes: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Write event files for every run under ``paths`` into ``out/<run name>/``; returns counts per run."""
    SummaryWriter = require_tensorboard()
    notes = notes if notes is not None else []
    named: list[tuple[Run, str]] = []
    for path in paths:
        runs = collect_runs([path], notes)
        named += [(run, name) for run, name in run_names(path, runs).items()]
    if not named:
        raise UserError(f"no runs under {', '.join(map(str, paths))}: " + "; ".join(notes))
    values = {name: run_hparams(run) for run, name in named}
    domains = discrete_domains(values.values())
    written: dict[str, dict[str, int]] = {}
    for run, name in named:
        log_dir = out / name
        for old in log_dir.glob("events.out.tfevents.*"):  # exporting again replaces, not appends
            old.unlink()
        writer = SummaryWriter(log_dir=str(log_dir))
        try:
            counts = {
                "scalars": write_metrics(writer, run),
                "layer_scalars": write_layer_stats(writer, run),
                "histograms": write_histograms(writer, run),
            }
            write_hparams(writer, run, values[name], domains)
        finally:
            writer.close()
        written[name] = counts
        notes.extend(run.problems)
    return written


def _default_out(paths: Sequence[str]) -> Path:
    """``PATH/tensorboard`` for one directory, else ``tensorboard/`` in the working directory."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return Path(paths[0]) / "tensorboard"
    return Path("tensorboard")


def main(argv: list[str]) -> int:
    """Write TensorBoard event files (scalars, histograms, HParams) for runs and sweeps on disk."""
    parser = argparse.ArgumentParser(
        prog="initlab export-tb",
        description=main.__doc__,
        epilog='Then: tensorboard --logdir DIR. Needs the extra: pip install "initlab[tensorboard]".',
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep directories, or globs")
    parser.add_argument("--out", metavar="DIR", help="where to write (default: PATH/tensorboard)")
    args = parser.parse_args(argv)
    require_tensorboard()  # before reading anything
    out = Path(args.out) if args.out else _default_out(args.paths)
    notes: list[str] = []
    written = export(args.paths, out, notes)
    for note in notes:
        print(f"initlab export-tb: warning: {note}", file=sys.stderr)
    total = {key: sum(c[key] for c in written.values()) for key in ("scalars", "layer_scalars", "histograms")}
    print(
        f"export-tb: {len(written)} runs, {total['scalars']} metric scalars, {total['layer_scalars']} layer "
        f"scalars, {total['histograms']} histograms, {len(written)} HParams entries in {out}"
    )
    print(f"view them with: tensorboard --logdir {out}")
    return 0
