"""``initlab plot``: redraw the papers' figures from what runs left on disk (nothing is retrained).

Usage::

    initlab plot PATH [PATH ...] [--figures hist,curves] [--out DIR] [--format png,pdf]
                 [--steps 0,last] [--layers 1,5] [--xscale auto|linear|log] [--logy]

A PATH is a run directory, a sweep directory (every run directory below it) or a glob. Figures go to
``PATH/figures/`` (for several paths: ``figures/`` in the deepest folder that holds all the runs), next to
an ``index.md`` that embeds each of them with one sentence; the path of every file written is printed.

Every figure is one function in :data:`FIGURES`. It takes the runs (:class:`initlab.storage.RunData`) and
:class:`Options`, and returns ``(name, Figure)`` pairs -- or ``(file name, text)`` for text outputs such as
the table -- or raises :class:`Skip` with the reason it cannot be drawn from these runs.

Runs are labelled by the Hydra overrides that differ between them (:func:`label`); runs that differ only in
``seed`` form one group (:func:`group_runs`). Colors are fixed per init name (:data:`INIT_COLORS`) or
activation name (:data:`ACT_COLORS`) when that is what a sweep varies, so a given init has the same color
in every figure and every sweep; anything else is colored by sorted label order.

Figures are built on :class:`matplotlib.figure.Figure` objects directly (no pyplot): nothing is shown,
nothing global has to be closed, and importing this module does not change a notebook's backend.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from initlab.storage import RunData, is_run_dir, load_run

# ---------------------------------------------------------------------------------------------------------
# Look: one style for every figure, and fixed colors per init / activation name.

STYLE: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "figure.titlesize": 11,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
}
DPI = 150
FORMATS = ("png", "pdf", "svg")
MAX_PANELS = 12  # panels per figure; more runs than that: the first MAX_PANELS are drawn, with a note

# Order matters: it is the panel / row order (Glorot & Bengio: "standard" on top, "normalized" below).
INIT_COLORS: dict[str, str] = {
    "standard": "#1f77b4",
    "xavier": "#ff7f0e",
    "xavier_uniform": "#d95f02",
    "xavier_normal": "#fdb863",
    "kaiming": "#2ca02c",
    "kaiming_normal": "#1b7837",
    "kaiming_uniform": "#a6dba0",
    "lecun": "#9467bd",
    "orthogonal": "#8c564b",
    "lsuv": "#e377c2",
    "normal": "#7f7f7f",
    "torch_default": "#bcbd22",
    "constant": "#17becf",
    "zeros": "#000000",
}
ACT_COLORS: dict[str, str] = {
    "sigmoid": "#1f77b4",
    "tanh": "#ff7f0e",
    "softsign": "#2ca02c",
    "relu": "#d62728",
    "leaky_relu": "#ff9896",
    "elu": "#9467bd",
    "selu": "#8c564b",
    "gelu": "#e377c2",
    "silu": "#bcbd22",
    "linear": "#7f7f7f",
}
FALLBACK_COLORS = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
LINESTYLES = ["-", "--", ":", "-."]

# Overrides that never distinguish runs in a label.
NOISE_KEYS = ("train.progress",)
SEED_KEY = "seed"

# What each probed quantity is, for axis labels and titles.
QUANTITY_TEXT: dict[str, str] = {
    "weight": "weight W",
    "preact": "pre-activation s = Wx + b",
    "act": "activation a = f(s)",
    "grad_preact": "back-propagated gradient ∂L/∂s",
    "grad_weight": "weight gradient ∂L/∂W",
}
HIST_QUANTITIES = ("act", "grad_preact", "grad_weight")
DEPTH_QUANTITIES = ("preact", "act", "grad_preact")
STEP_LABEL = "training step (parameter updates)"


class Skip(Exception):
    """A figure that cannot be drawn from these runs; the message says why, in one line."""


@dataclass
class Options:
    """What the command line chooses for the figures.

    ``steps``: the probe steps of the snapshot figures (``hist``, ``depth``), ints or ``"last"``; a run
    without that exact step uses its nearest probed step. ``layers``: layer indices (1 = first hidden layer,
    depth + 1 = output layer); None = the figure's default. ``xscale``: ``auto`` (symlog when the probe
    schedule is log-spaced), ``linear`` or ``log`` (symlog) for step axes. ``logy``: log-scale loss and
    error axes. ``color_by``: the swept key that picks the colors (default: init, else act). ``ref_ratio``:
    in ``depth``, a dashed reference line whose variance changes by this factor per layer (0.5: He et al.'s
    2^-L for Xavier-initialized ReLU layers).
    Figure functions append one line to ``notes`` for each part they had to leave out.
    """

    steps: list[int | str] = field(default_factory=lambda: [0])
    layers: list[int] | None = None
    xscale: str = "auto"
    logy: bool = False
    color_by: str | None = None
    ref_ratio: float | None = None
    notes: list[str] = field(default_factory=list)


Output = tuple[str, Figure | str]
FigureFunction = Callable[[list[RunData], Options], list[Output]]


# ---------------------------------------------------------------------------------------------------------
# Finding and labelling runs.


def _natural_key(text: str) -> list[Any]:
    """Sort "2" before "10" (job directories are numbered)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _find_run_dirs(root: Path) -> list[Path]:
    """``root`` if it is a run directory, else every run directory below it (not descending into runs)."""
    if is_run_dir(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "summary.json" in filenames or "metrics.parquet" in filenames:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural_key)
    return found


def collect_runs(paths: Iterable[str | Path], notes: list[str] | None = None) -> list[RunData]:
    """Load every run under ``paths`` (run directories, sweep directories or globs), in a stable order.

    A path that matches no run, or a run directory that cannot be loaded, adds one line to ``notes``.
    """
    notes = notes if notes is not None else []
    dirs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.exists():
            matches = [path]
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True), key=_natural_key)]
        if not matches:
            notes.append(f"{raw}: no such file or directory, and no glob match")
            continue
        found = [run for m in matches if m.is_dir() for run in _find_run_dirs(m)]
        if not found:
            notes.append(f"{raw}: no run directories (none holds summary.json or metrics.parquet)")
        dirs.extend(found)
    runs, seen = [], set()
    for d in sorted(dirs, key=lambda p: _natural_key(str(p))):
        key = d.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            runs.append(load_run(d))
        except Exception as exc:  # noqa: BLE001 - a broken .hydra/ file must not stop the other runs
            notes.append(f"{d}: skipped, cannot be read ({type(exc).__name__}: {exc})")
    return runs


def _overrides(run: RunData) -> dict[str, str]:
    """The run's ``key=value`` overrides (``+key``/``++key`` normalized to ``key``), noise removed."""
    out: dict[str, str] = {}
    for item in run.overrides:
        key, sep, value = str(item).partition("=")
        key = key.lstrip("+~")
        if sep and not key.startswith("hydra.") and key not in NOISE_KEYS:
            out[key] = value
    return out


def _config_value(config: dict[str, Any], key: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; a config group (a dict with a name) gives its ``name``."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.get("name") if isinstance(node, dict) else node


def _value(run: RunData, key: str) -> str | None:
    """What ``key`` was in this run: its override if it had one, else the value in its config.

    A key the config does not hold (or a config group without a ``name``) is ``"default"``; a run without
    any config (no ``.hydra/``) gives None, "unknown", which never makes a key differ.
    """
    given = _overrides(run).get(key)
    if given is not None:
        return given
    if not run.config:
        return None
    value = _config_value(run.config, key)
    return "default" if value is None else str(value)


def swept_keys(runs: Sequence[RunData], ignore: Iterable[str] = ()) -> list[str]:
    """The override keys whose value differs between runs, in the order they were first given."""
    ignore = set(ignore)
    keys: list[str] = []
    for run in runs:
        keys += [k for k in _overrides(run) if k not in keys and k not in ignore]
    return [k for k in keys if len({_value(run, k) for run in runs} - {None}) > 1]


def label(run: RunData, runs: Sequence[RunData], ignore: Iterable[str] = ()) -> str:
    """A run's label: the overrides that differ between ``runs`` (``"init=standard act=tanh"``).

    Keys in ``ignore`` (e.g. ``seed``) are left out. When nothing differs, the label describes the run
    from its config (``"xavier init, tanh"``), falling back to the directory name.
    """
    parts = [f"{k}={v}" for k in swept_keys(runs, ignore) if (v := _value(run, k)) is not None]
    if parts:
        return " ".join(parts)
    init, act = _config_value(run.config, "init.name"), _config_value(run.config, "act.name")
    if init and act:
        return f"{init} init, {act}"
    return run.path.name


def _order_key(run: RunData, keys: Sequence[str]) -> list[Any]:
    """Sort runs by their swept values; inits and activations in palette order (standard first)."""
    out: list[Any] = []
    for key in keys:
        value = _value(run, key) or ""
        palette = INIT_COLORS if key == "init" else ACT_COLORS if key == "act" else {}
        rank = list(palette).index(value) if value in palette else len(palette)
        number = _as_number(value)
        out.append((rank, 0 if number is not None else 1, number or 0.0, _natural_key(value)))
    return out


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def group_runs(runs: Sequence[RunData]) -> list[tuple[str, list[RunData]]]:
    """Runs grouped by their label without ``seed`` (the seeds of one setting), in a stable order."""
    keys = swept_keys(runs, ignore=[SEED_KEY])
    ordered = sorted(runs, key=lambda r: (_order_key(r, keys), _natural_key(_value(r, SEED_KEY) or "")))
    groups: dict[str, list[RunData]] = {}
    for run in ordered:
        groups.setdefault(label(run, runs, ignore=[SEED_KEY]), []).append(run)
    return list(groups.items())


def styles(runs: Sequence[RunData], color_by: str | None = None) -> dict[str, dict[str, str]]:
    """Group label -> ``{"color", "linestyle"}``, the same for every figure of these runs.

    If the runs differ in ``init`` (or else in ``act``), the color comes from that name's fixed palette
    entry and the other swept settings get line styles; otherwise colors follow sorted label order.
    ``color_by`` names another swept key to color by (e.g. ``dropout``): its values get palette colors in
    sorted order and the other swept settings line styles.
    """
    keys = swept_keys(runs, ignore=[SEED_KEY])
    groups = group_runs(runs)
    if color_by in keys:
        color_key = color_by
    else:
        color_key = "init" if "init" in keys or not keys else "act" if "act" in keys else None
    palette = INIT_COLORS if color_key == "init" else ACT_COLORS
    if color_key not in (None, "init", "act"):
        values = sorted({str(_value(m[0], color_key) or "") for _, m in groups}, key=_natural_key)
        palette = {v: FALLBACK_COLORS[i % len(FALLBACK_COLORS)] for i, v in enumerate(values)}
    other = [k for k in keys if k != color_key] if color_key else []
    other_values = sorted(
        {tuple(_value(members[0], k) or "" for k in other) for _, members in groups},
        key=lambda values: [_natural_key(v) for v in values],
    )
    out = {}
    for i, (name, members) in enumerate(groups):
        run = members[0]
        value = str(_value(run, color_key) or "") if color_key else ""
        if color_key and value not in palette and color_key == "init":
            value = str(_config_value(run.config, "init.name") or "")
        color = palette.get(value) if color_key else None
        if color is None:
            color = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        style = "-"
        if other:
            index = other_values.index(tuple(_value(run, k) or "" for k in other))
            style = LINESTYLES[index % len(LINESTYLES)]
        out[name] = {"color": color, "linestyle": style}
    return out


def setup_title(runs: Sequence[RunData]) -> str:
    """What all runs share, in words: ``"gaussian data · MLP 3×16 · tanh · xavier init · SGD lr=0.01"``."""

    def common(key: str) -> Any:
        values = {str(_config_value(r.config, key)) for r in runs if r.config}
        return values.pop() if len(values) == 1 and "None" not in values else None

    parts = []
    if data := common("data.name"):
        parts.append(f"{data} data")
    depth, width = common("model.depth"), common("model.width")
    if depth and width:
        parts.append(f"MLP {depth}×{width}")
    elif depth:
        parts.append(f"MLP, {depth} hidden layers")
    if (norm := common("model.norm")) and norm != "none":
        parts.append(f"{norm} norm")
    if act := common("act.name"):
        parts.append(act)
    if init := common("init.name"):
        parts.append(f"{init} init")
    if optim := common("optim.name"):
        lr = common("optim.lr")
        parts.append(f"{optim.upper()} lr={lr}" if lr else optim.upper())
    if not runs:
        return ""
    return " · ".join(parts) if parts else (runs[0].path.name if len(runs) == 1 else f"{len(runs)} runs")


# ---------------------------------------------------------------------------------------------------------
# Small helpers shared by the figures.


def _styled(fn: FigureFunction) -> FigureFunction:
    """Build the figures of ``fn`` under :data:`STYLE` (fonts, grid)."""

    @wraps(fn)
    def wrapper(runs: list[RunData], opts: Options) -> list[Output]:
        with matplotlib.rc_context(STYLE):
            return fn(runs, opts)

    return wrapper


def _figure(nrows: int, ncols: int, panel: tuple[float, float], **subplots: Any) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def _title(fig: Figure, what: str, runs: Sequence[RunData]) -> None:
    setup = setup_title(runs)
    fig.suptitle(f"{what}\n{setup}" if setup else what)


def _caption(fig: Figure, text: str) -> Figure:
    """Keep the one-sentence caption of ``index.md`` with the figure (as its Matplotlib label)."""
    fig.set_label(text)
    return fig


def _finite(values: Any) -> np.ndarray:
    """Floats with ±inf turned into NaN, which Matplotlib leaves out of lines and axis limits."""
    out = np.asarray(values, dtype=float).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def _has(frame: pd.DataFrame, *columns: str) -> bool:
    return not frame.empty and all(c in frame.columns for c in columns)


def _rows(frame: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The rows of one probed quantity, or an empty frame."""
    if not _has(frame, "quantity", "step", "layer"):
        return pd.DataFrame()
    return frame[frame["quantity"] == quantity]


def _output_layer(run: RunData, layers: Iterable[int]) -> int:
    """The output layer's index: depth + 1 from the config, else the largest logged layer."""
    depth = _config_value(run.config, "model.depth")
    if isinstance(depth, int):
        return depth + 1
    return max(layers, default=0)


def _pick_layers(run: RunData, available: Iterable[int], chosen: list[int] | None) -> list[int]:
    """``chosen`` layers that exist, or by default the hidden layers (the output layer left out)."""
    available = sorted(int(x) for x in available)
    if chosen:
        return [x for x in available if x in chosen]
    out = _output_layer(run, available)
    return [x for x in available if x != out]


def _last_hidden(run: RunData, available: Iterable[int]) -> int | None:
    hidden = _pick_layers(run, available, None)
    return hidden[-1] if hidden else None


def _nearest_step(available: Iterable[int], wanted: int | str) -> int | None:
    """The probed step closest to ``wanted`` (``"last"``: the last one); None if nothing was probed."""
    steps = sorted(int(s) for s in available)
    if not steps:
        return None
    if wanted == "last":
        return steps[-1]
    return min(steps, key=lambda s: (abs(s - int(wanted)), s))


def _layer_color(layer: int, n_layers: int) -> Any:
    """Layers run from dark (first) to light (last) on viridis, the same in every figure."""
    return matplotlib.colormaps["viridis"](0.85 * (layer - 1) / max(n_layers - 1, 1))


def _layer_name(layer: int, output: int) -> str:
    return "output layer" if layer == output else f"layer {layer}"


def _wrap(text: str, width: int = 60) -> str:
    """Long labels (many swept overrides) broken over lines instead of squeezing the axes away."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _panel_title(name: str, layer: int, layers: set[int]) -> str:
    """A panel's title: its setting (wrapped), and its layer when the panels show different layers."""
    parts = [_wrap(name)] if name else []
    if len(layers) > 1:
        parts.append(f"layer {layer}")
    return "\n".join(parts)


def _layer_stem(layers: set[int]) -> str:
    return f"layer{next(iter(layers))}" if len(layers) == 1 else "last_hidden"


def _figure_legend(fig: Figure, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """One legend for the whole figure, below the panels, so long labels never shrink the axes."""
    labels = [_wrap(text, 50) for text in labels]
    ncols = max(1, min(len(labels), 3 if max(map(len, labels), default=0) <= 30 else 2))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def _representatives(
    runs: Sequence[RunData], usable: Callable[[RunData], bool], opts: Options, figure: str
) -> list[tuple[str, RunData]]:
    """One run per group (its first seed with the needed data), at most :data:`MAX_PANELS` of them."""
    picked = []
    for name, members in group_runs(runs):
        run = next((r for r in members if usable(r)), None)
        if run is not None:
            seeds = {_value(r, SEED_KEY) for r in members}
            title = f"{name} (seed {_value(run, SEED_KEY)})" if len(seeds) > 1 else name
            picked.append((title, run))
    if len(picked) > MAX_PANELS:
        opts.notes.append(f"{figure}: drew the first {MAX_PANELS} of {len(picked)} settings")
        picked = picked[:MAX_PANELS]
    return picked


def _step_axis(ax: Any, runs: Sequence[RunData], opts: Options, probes: bool = True) -> None:
    """Label a step axis; symlog when asked, or (``auto``) when the probe schedule is log-spaced."""
    log_schedule = any(_config_value(r.config, "probe.schedule") == "log" for r in runs)
    if opts.xscale == "log" or (opts.xscale == "auto" and probes and log_schedule):
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlabel(STEP_LABEL + (", symlog scale" if ax.get_xscale() == "symlog" else ""))


def _grid_cleanup(axes: np.ndarray, used: int) -> None:
    """Hide the unused panels of a grid and keep x labels only where no panel sits below."""
    for ax in axes.flat[used:]:
        ax.set_visible(False)
    nrows, ncols = axes.shape
    for row in range(nrows - 1):
        for col in range(ncols):
            if axes[row + 1, col].get_visible():
                axes[row, col].set_xlabel("")


def _each(items: Iterable[Any], draw: Callable[[Any], Output], opts: Options, figure: str) -> list[Output]:
    """Draw one output per item; skipped items become notes, unless nothing at all could be drawn."""
    outputs, reasons = [], []
    for item in items:
        try:
            outputs.append(draw(item))
        except Skip as skip:
            reasons.append(str(skip))
    if not outputs:
        raise Skip("; ".join(dict.fromkeys(reasons)) or "nothing to draw")
    opts.notes += [f"{figure}: {reason}" for reason in reasons]
    return outputs


def _histogram(row: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """A hists.parquet row's (edges, counts) as float arrays; None when they do not make a histogram."""
    try:
        edges = np.asarray(row["edges"], dtype=float)
        counts = np.asarray(row["counts"], dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if edges.ndim != 1 or counts.ndim != 1 or len(edges) != len(counts) + 1 or len(counts) == 0:
        return None
    if not (np.isfinite(edges).all() and np.isfinite(counts).all()):
        return None
    return edges, counts


def _outside(row: pd.Series) -> int:
    """How many finite values fell outside the histogram's range (underflow + overflow)."""
    values = [row.get("underflow", 0), row.get("overflow", 0)]
    return int(sum(v for v in values if v is not None and np.isfinite(v)))


def _normalized(row: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Bin centers and the fraction of the (finite) values in each bin; None for an unusable row.

    The fractions are counts / (all finite values, including those outside the bins' range), so a curve
    that sums to less than 1 says how much of the distribution lies outside the plotted range.
    """
    hist = _histogram(row)
    if hist is None:
        return None
    edges, counts = hist
    total = counts.sum() + _outside(row)
    if total <= 0:
        return None
    return (edges[:-1] + edges[1:]) / 2, counts / total


# ---------------------------------------------------------------------------------------------------------
# The figures.


@_styled
def fig_hist(runs: list[RunData], opts: Options) -> list[Output]:
    """Normalized per-layer histograms of act, grad_preact and grad_weight at a step (Glorot & Bengio 6-8)."""
    items = [(q, s) for q in HIST_QUANTITIES for s in opts.steps]
    return _each(items, lambda item: _hist(runs, item[0], item[1], opts), opts, "hist")


def _hist(runs: list[RunData], quantity: str, wanted: int | str, opts: Options) -> Output:
    panels = _representatives(runs, lambda r: not _rows(r.hists, quantity).empty, opts, "hist")
    if not panels:
        raise Skip(f"no run has {quantity} histograms (hists.parquet missing, empty or unreadable)")
    n_layers = max(int(_rows(r.hists, quantity)["layer"].max()) for _, r in panels)
    fig, axes = _figure(len(panels), 1, (7.0, 2.6), sharex=True)
    drawn, steps_seen = 0, set()
    for ax, (name, run) in zip(axes[:, 0], panels, strict=True):
        rows = _rows(run.hists, quantity)
        step = _nearest_step(rows["step"].unique(), wanted)
        rows = rows[rows["step"] == step]
        output = _output_layer(run, rows["layer"].unique())
        for layer in _pick_layers(run, rows["layer"].unique(), opts.layers):
            row = rows[rows["layer"] == layer].iloc[0]
            hist = _normalized(row)
            if hist is None:
                continue
            outside = _outside(row)
            extra = (
                f" ({100 * outside / (outside + np.sum(row['counts'])):.0f}% outside range)"
                if outside
                else ""
            )
            ax.plot(*hist, color=_layer_color(layer, n_layers), label=_layer_name(layer, output) + extra)
            drawn += 1
        steps_seen.add(step)
        ax.set_title(_wrap(f"{name} — step {step}", 90) if len(panels) > 1 else f"step {step}")
        ax.set_ylabel("fraction of values per bin")
        if ax.lines:
            ax.legend(loc="upper right", ncols=2 if len(ax.lines) > 6 else 1)
    if not drawn:
        raise Skip(f"no finite {quantity} histogram in the chosen layers at step {wanted}")
    axes[-1, 0].set_xlabel(f"{QUANTITY_TEXT[quantity]} (value)")
    step_text = f"step {steps_seen.pop()}" if len(steps_seen) == 1 else f"step {wanted} (nearest probed)"
    _title(fig, f"Normalized histograms of the {QUANTITY_TEXT[quantity]} per layer, {step_text}", runs)
    _caption(
        fig,
        f"Distribution of the {QUANTITY_TEXT[quantity]} in each layer at {step_text} (fraction of values "
        "per bin, one curve per layer, one panel per setting).",
    )
    return f"hist_{quantity}_step{wanted}", fig


@_styled
def fig_stats(runs: list[RunData], opts: Options) -> list[Output]:
    """Per-layer mean ± std of act over training, 98th percentile as markers (Glorot & Bengio Fig. 2/3)."""
    quantity = "act"
    panels = _representatives(runs, lambda r: _has(_rows(r.layers, quantity), "mean", "std"), opts, "stats")
    if not panels:
        raise Skip("no run has activation statistics (layers.parquet missing, empty or unreadable)")
    n_layers = max(int(_rows(r.layers, quantity)["layer"].max()) for _, r in panels)
    fig, axes = _figure(len(panels), 1, (7.5, 3.0), sharex=True)
    for ax, (name, run) in zip(axes[:, 0], panels, strict=True):
        rows = _rows(run.layers, quantity).sort_values("step")
        output = _output_layer(run, rows["layer"].unique())
        for layer in _pick_layers(run, rows["layer"].unique(), opts.layers):
            d = rows[rows["layer"] == layer]
            color = _layer_color(layer, n_layers)
            ax.errorbar(
                d["step"].to_numpy(),
                _finite(d["mean"]),
                yerr=_finite(d["std"]),
                color=color,
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.2,
                elinewidth=0.8,
                label=f"{_layer_name(layer, output)}: mean ± std",
            )
            if "p98" in d.columns:
                ax.plot(
                    d["step"].to_numpy(),
                    _finite(d["p98"]),
                    linestyle="none",
                    marker="^",
                    markersize=4,
                    color=color,
                    label=f"{_layer_name(layer, output)}: 98th percentile",
                )
        if len(panels) > 1:
            ax.set_title(_wrap(name, 90))
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]}")
        _step_axis(ax, runs, opts)
        handles, labels = ax.get_legend_handles_labels()
        keep = [(h, lab) for h, lab in zip(handles, labels, strict=True) if "mean" in lab]
        if keep:
            keep.append((Line2D([], [], color="0.3", marker="^", linestyle="none"), "98th percentile"))
            ax.legend(*zip(*keep, strict=True), loc="center left", bbox_to_anchor=(1.01, 0.5))
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    _title(fig, "Activation values per layer during training: mean ± std, 98th percentile", runs)
    _caption(
        fig,
        "Mean (points) and standard deviation (error bars) of each layer's activations over training, with "
        "the 98th percentile as triangles: saturation shows as means or percentiles pinned at the bounds.",
    )
    return [("stats_act", fig)]


@_styled
def fig_percentiles(runs: list[RunData], opts: Options) -> list[Output]:
    """15/50/85th percentiles of one layer's preact over training, a panel per run (Ioffe & Szegedy 1b/c)."""
    quantity = "preact"

    def usable(run: RunData) -> bool:
        return _has(_rows(run.layers, quantity), "p15", "p50", "p85")

    if not any(usable(r) for r in runs):
        raise Skip("no run has pre-activation percentiles (layers.parquet missing, empty or unreadable)")
    targets: list[int | None] = list(opts.layers) if opts.layers else [None]
    return _each(targets, lambda layer: _percentiles(runs, usable, layer, opts), opts, "percentiles")


def _percentiles(
    runs: list[RunData], usable: Callable[[RunData], bool], wanted: int | None, opts: Options
) -> Output:
    quantity = "preact"
    panels = []
    for name, run in _representatives(runs, usable, opts, "percentiles"):
        rows = _rows(run.layers, quantity)
        layer = wanted if wanted is not None else _last_hidden(run, rows["layer"].unique())
        if layer in set(rows["layer"].unique()):
            panels.append((name, run, int(layer)))
    if not panels:
        raise Skip(f"no run has layer {wanted}" if wanted is not None else "no run has a hidden layer")
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(nrows, ncols, (4.2, 3.2), sharey=True)
    layers = {layer for _, _, layer in panels}
    where = f"layer {next(iter(layers))}" if len(layers) == 1 else "the last hidden layer"
    colors = styles(runs, opts.color_by)
    group_of = {id(r): g for g, members in group_runs(runs) for r in members}
    for ax, (name, run, layer) in zip(axes.flat, panels, strict=False):
        d = _rows(run.layers, quantity)
        d = d[d["layer"] == layer].sort_values("step")
        steps = d["step"].to_numpy()
        color = colors[group_of[id(run)]]["color"]
        ax.fill_between(steps, _finite(d["p15"]), _finite(d["p85"]), color=color, alpha=0.15, linewidth=0)
        ax.plot(steps, _finite(d["p85"]), color=color, linestyle="--", linewidth=1, label="85th percentile")
        ax.plot(steps, _finite(d["p50"]), color=color, linewidth=2, label="50th percentile (median)")
        ax.plot(steps, _finite(d["p15"]), color=color, linestyle=":", linewidth=1, label="15th percentile")
        ax.set_title(_panel_title(name if len(panels) > 1 else "", layer, layers))
        _step_axis(ax, runs, opts)
    axes[0, 0].legend(loc="best")
    _grid_cleanup(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]} (value)")
    _title(fig, f"Pre-activation distribution of {where} over training: 15th, 50th, 85th percentiles", runs)
    _caption(
        fig,
        f"How the input to the nonlinearity of {where} drifts during training (median with the 15–85% "
        "band), one panel per setting, so runs with and without normalization sit side by side.",
    )
    return f"percentiles_preact_{_layer_stem(layers)}", fig


@_styled
def fig_curves(runs: list[RunData], opts: Options) -> list[Output]:
    """Train/test loss and error versus steps, a line per run; diverged runs end with ✕ (He et al. Fig. 3)."""
    usable = [r for r in runs if _has(r.metrics, "step", "split", "loss", "accuracy")]
    if not usable:
        raise Skip("no run has metrics (metrics.parquet missing, empty or unreadable)")
    style = styles(runs, opts.color_by)
    group_of = {id(r): (g, len(m)) for g, m in group_runs(runs) for r in m}
    fig, axes = _figure(1, 2, (5.2, 3.8))
    ax_loss, ax_err = axes[0]
    handles: dict[str, Any] = {}
    any_diverged = False
    for run in usable:
        group, n_seeds = group_of[id(run)]
        s = style[group]
        diverged = run.summary.get("status") == "diverged" or not np.isfinite(run.metrics["loss"]).all()
        for split, width, alpha in (("test", 2.0, 1.0), ("train", 1.0, 0.6)):
            d = run.metrics[run.metrics["split"] == split].sort_values("step")
            if d.empty:
                continue
            steps = d["step"].to_numpy()
            loss, err = _finite(d["loss"]), 100 * (1 - _finite(d["accuracy"]))
            for ax, y in ((ax_loss, loss), (ax_err, err)):
                ax.plot(
                    steps,
                    y,
                    color=s["color"],
                    linestyle=s["linestyle"],
                    linewidth=width,
                    alpha=alpha,
                    label=f"{group} ({split})",
                )
                ok = np.isfinite(y)
                if diverged and ok.any():
                    last = np.flatnonzero(ok)[-1]
                    ax.plot(
                        steps[last],
                        y[last],
                        marker="X",
                        markersize=9,
                        color=s["color"],
                        markeredgecolor="black",
                        linestyle="none",
                        label=f"{group} ({split}) diverged",
                    )
                    any_diverged = True
        seeds = f" ({n_seeds} seeds)" if n_seeds > 1 else ""
        handles.setdefault(group + seeds, Line2D([], [], color=s["color"], linestyle=s["linestyle"], lw=2))
    handles["test (bold)"] = Line2D([], [], color="0.3", linewidth=2)
    handles["train (thin)"] = Line2D([], [], color="0.3", linewidth=1, alpha=0.6)
    if any_diverged:
        handles["✕ diverged (last finite value)"] = Line2D(
            [], [], marker="X", color="0.5", markeredgecolor="black", linestyle="none"
        )
    ax_loss.set_ylabel("cross-entropy loss (nats)" + (", log scale" if opts.logy else ""))
    if opts.logy:
        ax_loss.set_yscale("log")
    ax_err.set_ylabel("classification error (%)" + (", log scale" if opts.logy else ""))
    if opts.logy:
        ax_err.set_yscale("log")
    ax_loss.set_title("loss")
    ax_err.set_title("error")
    for ax in (ax_loss, ax_err):
        _step_axis(ax, runs, opts, probes=False)
    _figure_legend(fig, list(handles.values()), list(handles))
    _title(fig, "Learning curves: training (thin) and test (bold) loss and error", runs)
    _caption(
        fig,
        "Training (thin) and test (bold) cross-entropy and classification error against training steps, one "
        "color per setting; a ✕ marks where a diverged run stopped.",
    )
    return [("curves", fig)]


@_styled
def fig_depth(runs: list[RunData], opts: Options) -> list[Output]:
    """Variance of preact, act and grad_preact versus layer at a step, log-y, a line per run."""
    return _each(opts.steps, lambda step: _depth(runs, step, opts), opts, "depth")


def _depth(runs: list[RunData], wanted: int | str, opts: Options) -> Output:
    usable = [r for r in runs if _has(r.layers, "quantity", "step", "layer", "std")]
    if not usable:
        raise Skip("no run has per-layer statistics (layers.parquet missing, empty or unreadable)")
    style = styles(runs, opts.color_by)
    group_of = {id(r): g for g, m in group_runs(runs) for r in m}
    fig, axes = _figure(1, len(DEPTH_QUANTITIES), (4.0, 3.6))
    legend: dict[str, Any] = {}  # one entry per setting, though each has a line in every panel
    steps_seen = set()
    finite = False
    for ax, quantity in zip(axes[0], DEPTH_QUANTITIES, strict=True):
        for run in usable:
            rows = _rows(run.layers, quantity)
            step = _nearest_step(rows["step"].unique(), wanted) if not rows.empty else None
            if step is None:
                continue
            steps_seen.add(step)
            rows = rows[rows["step"] == step].sort_values("layer")
            layers = _pick_layers(run, rows["layer"].unique(), opts.layers)
            rows = rows[rows["layer"].isin(layers)]
            variance = _finite(rows["std"]) ** 2
            finite = finite or bool(np.isfinite(variance).any())
            group = group_of[id(run)]
            ax.plot(
                rows["layer"].to_numpy(),
                variance,
                marker="o",
                markersize=4,
                color=style[group]["color"],
                linestyle=style[group]["linestyle"],
                label=group,
            )
            legend.setdefault(group, ax.lines[-1])
        if opts.ref_ratio is not None and quantity == "preact" and ax.lines:
            x0, y0 = ax.lines[0].get_xdata(), np.asarray(ax.lines[0].get_ydata(), dtype=float)
            if len(x0) and np.isfinite(y0[0]) and y0[0] > 0:
                x = np.arange(min(x0), max(x0) + 1)
                (ref,) = ax.plot(
                    x, y0[0] * opts.ref_ratio ** (x - x[0]), color="0.4", linestyle=":", linewidth=1.5
                )
                legend.setdefault(f"reference: × {opts.ref_ratio:g} per layer", ref)
        if any((np.asarray(line.get_ydata()) > 0).any() for line in ax.lines):
            ax.set_yscale("log")
        shown = [x for line in ax.lines for x in line.get_xdata()]
        if shown:
            ax.set_xlim(min(shown) - 0.5, max(shown) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(QUANTITY_TEXT[quantity])
        ax.set_xlabel("layer index (1 = first hidden layer)")
        ax.set_ylabel("variance (log scale)" if ax.get_yscale() == "log" else "variance (linear scale)")
    if not finite:
        raise Skip(f"no finite variance at step {wanted} (missing, or the run had diverged)")
    _figure_legend(fig, list(legend.values()), list(legend))
    step_text = f"step {steps_seen.pop()}" if len(steps_seen) == 1 else f"step {wanted} (nearest probed)"
    _title(fig, f"Variance across depth at {step_text}: does the signal explode, vanish or hold?", runs)
    _caption(
        fig,
        f"Variance (over units and examples) of the pre-activations, activations and back-propagated "
        f"gradients in each layer at "
        f"{step_text}, one line per run: a straight line up or down means the variance explodes or vanishes.",
    )
    return f"depth_step{wanted}", fig


@_styled
def fig_heatmap(runs: list[RunData], opts: Options) -> list[Output]:
    """A layer's act histogram over time as an image, color = log count (fastai's "colorful dimension")."""
    if not any(not _rows(r.hists, "act").empty for r in runs):
        raise Skip("no run has activation histograms (hists.parquet missing, empty or unreadable)")
    targets: list[int | None] = list(opts.layers) if opts.layers else [None]
    return _each(targets, lambda layer: _heatmap(runs, layer, opts), opts, "heatmap")


def _heatmap_grid(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(step edges, value edges, counts[value bin, step]) from one layer's histogram rows.

    Probes keep one bin range per layer for the whole run, so the columns share their edges; rows with other
    edges are re-binned onto the widest range (each bin's count moved to the bin holding its center).
    """
    rows = rows.sort_values("step").drop_duplicates("step", keep="last")
    hists = [(int(r["step"]), *h) for _, r in rows.iterrows() if (h := _histogram(r)) is not None]
    if not hists:
        return None
    edges = hists[0][1]
    if any(len(e) != len(edges) or not np.allclose(e, edges) for _, e, _ in hists):
        lo, hi = min(e[0] for _, e, _ in hists), max(e[-1] for _, e, _ in hists)
        edges = np.linspace(lo, hi, len(edges))
    image = np.stack(
        [
            c
            if len(e) == len(edges) and np.allclose(e, edges)
            else np.histogram((e[:-1] + e[1:]) / 2, bins=edges, weights=c)[0]
            for _, e, c in hists
        ],
        axis=1,
    )
    steps = np.array([s for s, _, _ in hists], dtype=float)
    if len(steps) > 1:
        mids = (steps[:-1] + steps[1:]) / 2
        x = np.concatenate([[steps[0] - (mids[0] - steps[0])], mids, [steps[-1] + (steps[-1] - mids[-1])]])
    else:
        x = np.array([steps[0] - 0.5, steps[0] + 0.5])
    return x, edges, image


def _heatmap(runs: list[RunData], wanted: int | None, opts: Options) -> Output:
    quantity = "act"
    panels = []
    for name, run in _representatives(runs, lambda r: not _rows(r.hists, quantity).empty, opts, "heatmap"):
        rows = _rows(run.hists, quantity)
        layer = wanted if wanted is not None else _last_hidden(run, rows["layer"].unique())
        grid = _heatmap_grid(rows[rows["layer"] == layer]) if layer is not None else None
        if grid is not None and grid[2].sum() > 0:
            panels.append((name, run, int(layer), grid))
    if not panels:
        raise Skip(f"no usable activation histograms of layer {wanted if wanted is not None else 'last'}")
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(nrows, ncols, (4.4, 3.4))
    layers = {layer for _, _, layer, _ in panels}
    where = f"layer {next(iter(layers))}" if len(layers) == 1 else "the last hidden layer"
    vmax = max(2.0, max(float(g[2].max()) for *_, g in panels))
    mesh = None
    for ax, (name, _run, layer, (x, y, image)) in zip(axes.flat, panels, strict=False):
        mesh = ax.pcolormesh(
            x, y, np.ma.masked_less_equal(image, 0), norm=LogNorm(vmin=1, vmax=vmax), cmap="viridis"
        )
        ax.set_title(_panel_title(name if len(panels) > 1 else "", layer, layers))
        ax.grid(False)
        _step_axis(ax, runs, opts)
    _grid_cleanup(axes, len(panels))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{QUANTITY_TEXT[quantity]} (value)")
    fig.colorbar(
        mesh,
        ax=axes.ravel().tolist(),
        label="values per bin (count, log scale)",
        shrink=1.0 if nrows == 1 else 0.6,
    )
    _title(fig, f"Activation histogram of {where} over training", runs)
    _caption(
        fig,
        f"Each column is the histogram of {where}'s activations at one probed step (color: log count), so "
        "collapse to zero, saturation at the bounds or spreading shows as bands over time.",
    )
    return f"heatmap_act_{_layer_stem(layers)}", fig


def _final_test_error(run: RunData) -> float | None:
    """Final test error in %: from summary.json, else from the last test row of metrics.parquet."""
    acc = run.summary.get("final_test_accuracy")
    if acc is None and _has(run.metrics, "step", "split", "accuracy"):
        test = run.metrics[run.metrics["split"] == "test"].sort_values("step")
        acc = test["accuracy"].iloc[-1] if not test.empty else None
    if acc is None:
        return None
    try:
        value = 100.0 * (1.0 - float(acc))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _table_row(run: RunData, extra: Sequence[str]) -> str:
    """A table row's name: activation / init, then any other setting the runs differ in."""
    act = _value(run, "act") or "?"
    init = _value(run, "init") or "?"
    return " ".join([f"{act} / {init}", *(f"{k}={_value(run, k)}" for k in extra)])


def fig_table(runs: list[RunData], opts: Options) -> list[Output]:
    """Final test error per setting (mean ± std over seeds): rows act/init, columns data (Glorot Table 1)."""
    extra = swept_keys(runs, ignore=[SEED_KEY, "data", "act", "init"])
    cells: dict[tuple[str, str], list[float]] = {}
    marks: dict[tuple[str, str], set[str]] = {}
    order: dict[str, Any] = {}
    missing, used = [], []
    for _, members in group_runs(runs):
        for run in members:
            error = _final_test_error(run)
            if error is None:
                missing.append(run.path.name)
                continue
            row, column = _table_row(run, extra), _value(run, "data") or "?"
            order.setdefault(row, _order_key(run, ["act", "init", *extra]))
            cells.setdefault((row, column), []).append(error)
            used.append(run)
            status = run.summary.get("status", "completed")
            if status == "diverged":
                marks.setdefault((row, column), set()).add("†")
            elif status != "completed":
                marks.setdefault((row, column), set()).add("*")
    if not cells:
        raise Skip("no run has a final test accuracy (summary.json and metrics.parquet missing or empty)")
    if missing:
        opts.notes.append(f"table: {len(missing)} run(s) without a test evaluation left out")
    rows = sorted(order, key=lambda r: order[r])
    columns = sorted({c for _, c in cells}, key=_natural_key)
    counts = {len(v) for v in cells.values()}
    uniform_n = counts.pop() if len(counts) == 1 else None

    def cell(row: str, column: str) -> tuple[str, float, float, int]:
        values = cells.get((row, column))
        if not values:
            return "–", math.nan, math.nan, 0
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        text = f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"
        if uniform_n is None:
            text += f" (n={len(values)})"
        return text + "".join(sorted(marks.get((row, column), ()))), mean, std, len(values)

    header = "activation / init" + "".join(f" {k}" for k in extra)
    md = [f"| {header} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    csv = ["setup," + ",".join(f"{c}_mean,{c}_std,{c}_n" for c in columns)]
    for row in rows:
        texts, numbers = [], []
        for column in columns:
            text, mean, std, n = cell(row, column)
            texts.append(text)
            numbers += [_csv_number(mean), _csv_number(std), str(n)]
        md.append(f"| {row} | " + " | ".join(texts) + " |")
        csv.append(_csv_text(row) + "," + ",".join(numbers))
    steps = {r.summary.get("steps_done") for r in used}
    after = f" after {steps.pop()} training steps" if len(steps) == 1 and None not in steps else ""
    if uniform_n is None:
        spread = "mean ± sample std over the n runs of each cell"
    elif uniform_n == 1:
        spread = "one run per cell"
    else:
        spread = f"mean ± sample std over {uniform_n} seeds"
    notes = [f"Final test error (%){after}; {spread}."]
    if any("†" in m for m in marks.values()):
        notes.append("† includes a run that diverged (error of the net it stopped with).")
    if any("*" in m for m in marks.values()):
        notes.append("* includes a run that did not finish (interrupted, failed or still running).")
    text = "\n".join(md) + "\n\n" + " ".join(notes) + "\n"
    return [("table.md", text), ("table.csv", "\n".join(csv) + "\n")]


def _csv_number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.10g}"


def _csv_text(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text


FIGURES: dict[str, tuple[FigureFunction, str]] = {
    "hist": (fig_hist, "per-layer normalized histograms of act, grad_preact, grad_weight at --steps"),
    "stats": (fig_stats, "per-layer mean ± std of act over training, 98th percentile markers"),
    "percentiles": (fig_percentiles, "15/50/85th percentiles of a layer's preact over training, per run"),
    "curves": (fig_curves, "train/test loss and error vs steps, one color per setting, ✕ = diverged"),
    "depth": (fig_depth, "variance of preact, act, grad_preact vs layer at --steps, log-y, per run"),
    "heatmap": (fig_heatmap, "a layer's act histogram over time as an image (x step, y value, log count)"),
    "table": (fig_table, "final test error, mean ± std over seeds: rows act/init, columns data set"),
}


# ---------------------------------------------------------------------------------------------------------
# The command.


def _parser() -> argparse.ArgumentParser:
    width = max(map(len, FIGURES))
    epilog = "figures:\n" + "\n".join(f"  {n:<{width}}  {d}" for n, (_, d) in FIGURES.items())
    epilog += (
        "\n\nWrites PATH/figures/NAME.png (or --out DIR), table.md, table.csv, index.md; prints each path."
        "\nExit status: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line."
    )
    parser = argparse.ArgumentParser(
        prog="initlab plot",
        description="Draw the figures of run and sweep directories from their logs (nothing is retrained).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run directory, sweep directory or glob")
    parser.add_argument("--figures", default="all", help="comma-separated figure names (default: all)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: PATH/figures)")
    parser.add_argument("--format", default="png", help="comma-separated: png, pdf, svg (default: png)")
    parser.add_argument(
        "--steps", default="0", help="probe steps of hist and depth, e.g. 0,100,last (default: 0)"
    )
    parser.add_argument(
        "--layers",
        help="layer indices, e.g. 1,3 (hist/stats/depth: these layers instead of all hidden ones; "
        "percentiles/heatmap: one figure per layer instead of the last hidden layer)",
    )
    parser.add_argument(
        "--xscale",
        choices=("auto", "linear", "log"),
        default="auto",
        help="step axes: auto = symlog when probes are log-spaced (default), linear, log (symlog)",
    )
    parser.add_argument("--logy", action="store_true", help="log-scale loss and error axes in curves")
    parser.add_argument(
        "--color-by", metavar="KEY", help="swept key that picks the line colors (default: init, else act)"
    )
    parser.add_argument(
        "--ref-ratio",
        type=float,
        metavar="R",
        help="depth: dashed reference line whose variance changes by R per layer (e.g. 0.5 = 2^-L)",
    )
    return parser


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fail(message: str) -> int:
    print(f"initlab plot: error: {message}", file=sys.stderr)
    return 2


def _default_out(paths: Sequence[str], runs: Sequence[RunData]) -> Path:
    """``PATH/figures`` for one directory; else ``figures/`` in the deepest folder holding every run."""
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return Path(paths[0]) / "figures"
    if len(runs) == 1:
        return runs[0].path / "figures"
    try:
        return Path(os.path.commonpath([str(r.path) for r in runs])) / "figures"
    except ValueError:  # relative and absolute paths mixed
        return Path(os.path.commonpath([str(r.path.resolve()) for r in runs])) / "figures"


def write_index(
    out: Path, runs: Sequence[RunData], written: list[tuple[str, str, list[Path]]], skipped: list[str]
) -> Path:
    """``index.md``: the runs, then each figure embedded with its sentence, then what was skipped."""
    lines = [
        f"# Figures: {setup_title(runs) or 'runs'}",
        "",
        "| label | run directory | status | steps |",
        "|---|---|---|---:|",
    ]
    for _, members in group_runs(runs):
        for run in members:
            where = os.path.relpath(run.path, out)
            status = run.summary.get("status", "unknown")
            steps = run.summary.get("steps_done", "")
            text = label(run, runs).replace("|", "\\|")
            lines.append(f"| {text} | [{where}]({where}) | {status} | {steps} |")
    for figure, caption, files in written:
        lines += [
            "",
            f"## {figure}",
            "",
            caption[0].upper() + caption[1:] + ("" if caption.endswith(".") else "."),
        ]
        shown = next((f for f in files if f.suffix in (".png", ".svg", ".md")), None)
        if shown is not None and shown.suffix == ".md":
            lines += ["", shown.read_text().rstrip()]
        elif shown is not None:
            lines += ["", f"![{figure}]({shown.name})"]
        others = [f for f in files if f is not shown or f.suffix == ".md"]
        if others:
            lines += ["", "Files: " + ", ".join(f"[{f.name}]({f.name})" for f in others) + "."]
    if skipped:
        lines += ["", "## Not drawn", ""] + [f"- {s}" for s in skipped]
    path = out / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str]) -> int:
    """``initlab plot``: 0 if anything was drawn, 1 if nothing could be, 2 for a bad command line."""
    matplotlib.use("Agg")  # never a window, whatever backend the environment asks for
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed by argparse)
        return int(exc.code or 0)
    names = list(FIGURES) if args.figures.strip() == "all" else _split(args.figures)
    unknown = [n for n in names if n not in FIGURES]
    if unknown or not names:
        return _fail(
            f"unknown figure {', '.join(map(repr, unknown)) or '(none)'}: "
            f"expected a comma-separated list of {', '.join(FIGURES)} (or all)"
        )
    formats = _split(args.format.lower())
    if not formats or any(f not in FORMATS for f in formats):
        return _fail(
            f"--format {args.format!r} is not allowed: expected a comma-separated list of "
            f"{', '.join(FORMATS)}"
        )
    steps: list[int | str] = []
    for part in _split(args.steps):
        if part in ("last", "final", "end"):
            steps.append("last")
        elif part.isdigit():
            steps.append(int(part))
        else:
            return _fail(
                f"--steps {args.steps!r} is not allowed: expected integers >= 0 or 'last', e.g. 0,last"
            )
    layers = None
    if args.layers:
        parts = _split(args.layers)
        if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
            return _fail(f"--layers {args.layers!r} is not allowed: expected integers >= 1, e.g. 1,5")
        layers = [int(p) for p in parts]

    notes: list[str] = []
    runs = collect_runs(args.paths, notes)
    for note in notes:
        print(f"initlab plot: {note}", file=sys.stderr)
    for run in runs:
        for problem in run.problems:
            print(f"initlab plot: warning: {problem}", file=sys.stderr)
    if not runs:
        print("initlab plot: nothing drawn: no runs found", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else _default_out(args.paths, runs)

    written: list[tuple[str, str, list[Path]]] = []
    skipped: list[str] = []
    for name in names:
        function, description = FIGURES[name]
        opts = Options(
            steps=steps or [0],
            layers=layers,
            xscale=args.xscale,
            logy=args.logy,
            color_by=args.color_by,
            ref_ratio=args.ref_ratio,
        )
        problems = []
        try:
            with warnings.catch_warnings():  # Matplotlib's complaints about odd data are not the user's news
                warnings.simplefilter("ignore")
                outputs = function(runs, opts)
                out.mkdir(parents=True, exist_ok=True)
                texts = []
                for stem, item in outputs:
                    if isinstance(item, str):
                        texts += _save(out, stem, item, formats)
                        continue
                    files = _save(out, stem, item, formats)
                    written.append((stem, item.get_label() or description, files))
                    print(*files, sep="\n", flush=True)
                if texts:
                    written.append((name, description, texts))
                    print(*texts, sep="\n", flush=True)
        except Skip as skip:
            problems.append(f"{name}: {skip}")
        except OSError as exc:
            problems.append(f"{name}: cannot write to {out} ({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001 - one odd run must not end the command with a traceback
            problems.append(f"{name}: could not be drawn ({type(exc).__name__}: {exc})")
        for line in problems + opts.notes:
            print(f"initlab plot: skipped {line}", file=sys.stderr, flush=True)
        skipped += problems + opts.notes
    if not written:
        print("initlab plot: nothing drawn", file=sys.stderr)
        return 1
    try:
        print(write_index(out, runs, written, skipped))
    except OSError as exc:
        print(f"initlab plot: warning: index.md not written ({exc})", file=sys.stderr)
    return 0


def _save(out: Path, stem: str, item: Figure | str, formats: Sequence[str]) -> list[Path]:
    """Write a figure in every format (or a text output as is); returns the files written."""
    if isinstance(item, str):
        path = out / stem
        path.write_text(item)
        return [path]
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        item.savefig(path, dpi=DPI, metadata={"Title": stem})
        paths.append(path)
    return paths
