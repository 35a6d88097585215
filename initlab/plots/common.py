"""What the figure functions share: :class:`Options`, :class:`Skip`, and small helpers for panels and rows.

A figure function takes the runs and :class:`Options` and returns ``(name, Figure)`` pairs -- or ``(file
name, text)`` for text outputs -- or raises :class:`Skip` with the reason it cannot be drawn from these runs.
Every figure gets its panels from :func:`new_figure`, which draws into ``Options.target`` when the Python
API (:mod:`initlab.plots.drawing`) hands one over: a notebook's Figure, SubFigure or Axes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure, FigureBase

from initlab.errors import UserError
from initlab.plots.style import (
    MAX_PANELS,
    STEP_LABEL,
    STYLE,
    group_runs,
    setup_title,
    wrap,
)
from initlab.runs import SEED_KEY, Run


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
    ``target``: where to draw instead of a new Figure -- a Figure or SubFigure to fill with the panels,
    or the Axes (one per panel) to draw into; set by :mod:`initlab.plots.drawing`, never by the command.
    Figure functions append one line to ``notes`` for each part they had to leave out.
    """

    steps: list[int | str] = field(default_factory=lambda: [0])
    layers: list[int] | None = None
    xscale: str = "auto"
    logy: bool = False
    color_by: str | None = None
    ref_ratio: float | None = None
    notes: list[str] = field(default_factory=list)
    target: Any = None


Output = tuple[str, Figure | str]


FigureFunction = Callable[[list[Run], Options], list[Output]]


def styled(fn: FigureFunction) -> FigureFunction:
    """Build the figures of ``fn`` under :data:`STYLE` (fonts, grid)."""

    @wraps(fn)
    def wrapper(runs: list[Run], opts: Options) -> list[Output]:
        with matplotlib.rc_context(STYLE):
            return fn(runs, opts)

    return wrapper


def new_figure(
    nrows: int, ncols: int, panel: tuple[float, float], target: Any = None, **subplots: Any
) -> tuple[Figure, np.ndarray]:
    """A figure with an ``nrows`` x ``ncols`` grid of panels of ``panel`` inches, or the given ``target``.

    ``target`` (see :class:`Options`): a Figure or SubFigure gets the grid added (a figure without a
    layout engine gets the constrained one, which the outside legends need); Axes -- one, or a sequence
    with one per panel -- are used as the grid in row order.
    """
    if target is None:
        fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
        return fig, fig.subplots(nrows, ncols, squeeze=False, **subplots)
    if isinstance(target, FigureBase):
        root = target.get_figure(root=True) if hasattr(target, "get_figure") else target.figure
        if isinstance(root, Figure) and root.get_layout_engine() is None:
            root.set_layout_engine("constrained")
        return target, target.subplots(nrows, ncols, squeeze=False, **subplots)  # type: ignore[return-value]
    axes = np.asarray(target, dtype=object).reshape(-1)
    if len(axes) != nrows * ncols:
        raise UserError(
            f"this figure has {nrows * ncols} panel(s) ({nrows}x{ncols}) but {len(axes)} Axes were given: "
            "pass as many Axes, or fig= to fill a whole Figure"
        )
    return axes[0].figure, axes.reshape(nrows, ncols)


def into_axes(opts: Options | None) -> bool:
    """True when drawing into Axes the caller owns: their figure's title and legend are left alone."""
    return opts is not None and opts.target is not None and not isinstance(opts.target, FigureBase)


def suptitle(fig: Figure, what: str, runs: Sequence[Run], opts: Options | None = None) -> None:
    """``what`` over the shared setup, which breaks at its `` · `` separators to fit the figure's width."""
    if into_axes(opts):
        return
    from matplotlib.backends.backend_agg import RendererAgg

    title = fig.suptitle(what)
    renderer, font = RendererAgg(1, 1, 72), title.get_fontproperties()

    def fits(text: str) -> bool:  # width in points (72 dpi) within 95 % of the figure's
        width = renderer.get_text_width_height_descent(text, font, ismath=False)[0]
        return width <= 0.95 * 72 * fig.bbox.width / fig.dpi  # bbox: a SubFigure's own width too

    lines = [what]
    for part in setup_title(runs).split(" · ") if runs else []:
        if len(lines) > 1 and fits(f"{lines[-1]} · {part}"):
            lines[-1] += " · " + part
        else:
            lines.append(part)
    title.set_text("\n".join(line for line in lines if line))


def caption(fig: Figure, text: str) -> Figure:
    """Keep the one-sentence caption of ``index.md`` with the figure (as its Matplotlib label)."""
    fig.set_label(text)
    return fig


def finite(values: Any) -> np.ndarray:
    """Floats with ±inf turned into NaN, which Matplotlib leaves out of lines and axis limits."""
    out = np.asarray(values, dtype=float).copy()
    out[~np.isfinite(out)] = np.nan
    return out


def has_columns(frame: pd.DataFrame, *columns: str) -> bool:
    return not frame.empty and all(c in frame.columns for c in columns)


def quantity_rows(frame: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """The rows of one probed quantity, or an empty frame."""
    if not has_columns(frame, "quantity", "step", "layer"):
        return pd.DataFrame()
    return frame[frame["quantity"] == quantity]


def pick_layers(run: Run, available: Iterable[int], chosen: list[int] | None) -> list[int]:
    """``chosen`` layers that exist, or by default the hidden layers (the output layer left out)."""
    available = sorted(int(x) for x in available)
    if chosen:
        return [x for x in available if x in chosen]
    out = run.output_layer(available)
    return [x for x in available if x != out]


def last_hidden(run: Run, available: Iterable[int]) -> int | None:
    hidden = pick_layers(run, available, None)
    return hidden[-1] if hidden else None


def nearest_step(available: Iterable[int], wanted: int | str) -> int | None:
    """The probed step closest to ``wanted`` (``"last"``: the last one); None if nothing was probed."""
    steps = sorted(int(s) for s in available)
    if not steps:
        return None
    if wanted == "last":
        return steps[-1]
    return min(steps, key=lambda s: (abs(s - int(wanted)), s))


def steps_text(steps_seen: set[int], wanted: int | str) -> str:
    """ "step 500" when every run was drawn at the same probed step, else "step 500 (nearest probed)"."""
    return f"step {next(iter(steps_seen))}" if len(steps_seen) == 1 else f"step {wanted} (nearest probed)"


def layer_name(layer: int, output: int) -> str:
    return "output layer" if layer == output else f"layer {layer}"


def panel_title(name: str, layer: int, layers: set[int]) -> str:
    """A panel's title: its setting (wrapped), and its layer when the panels show different layers."""
    parts = [wrap(name)] if name else []
    if len(layers) > 1:
        parts.append(f"layer {layer}")
    return "\n".join(parts)


def layer_stem(layers: set[int]) -> str:
    return f"layer{next(iter(layers))}" if len(layers) == 1 else "last_hidden"


def figure_legend(
    fig: Figure, handles: Sequence[Any], labels: Sequence[str], opts: Options | None = None
) -> None:
    """One legend for the whole figure, below the panels, so long labels never shrink the axes.

    Drawn into the caller's Axes (:func:`into_axes`), the legend goes into the last of them instead.
    """
    labels = [wrap(text, 50) for text in labels]
    if into_axes(opts):
        last = np.asarray(opts.target, dtype=object).reshape(-1)[-1]  # type: ignore[union-attr]
        last.legend(handles, labels, loc="best")
        return
    longest = max((len(line) for text in labels for line in text.splitlines()), default=0)
    ncols = max(1, min(len(labels), 4 if longest <= 22 else 3 if longest <= 30 else 2))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def representatives(
    runs: Sequence[Run], usable: Callable[[Run], bool], opts: Options, figure: str
) -> list[tuple[str, Run]]:
    """One run per group (its first seed with the needed data), at most :data:`MAX_PANELS` of them."""
    picked = []
    for name, members in group_runs(runs):
        run = next((r for r in members if usable(r)), None)
        if run is not None:
            seeds = {r.value(SEED_KEY) for r in members}
            title = f"{name} (seed {run.value(SEED_KEY)})" if len(seeds) > 1 else name
            picked.append((title, run))
    if len(picked) > MAX_PANELS:
        opts.notes.append(f"{figure}: drew the first {MAX_PANELS} of {len(picked)} settings")
        picked = picked[:MAX_PANELS]
    return picked


def step_axis(ax: Any, runs: Sequence[Run], opts: Options, probes: bool = True) -> None:
    """Label a step axis; symlog when asked, or (``auto``) when the probe schedule is log-spaced."""
    log_schedule = any(r.setting("probe.schedule") == "log" for r in runs)
    if opts.xscale == "log" or (opts.xscale == "auto" and probes and log_schedule):
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlabel(STEP_LABEL + (", symlog scale" if ax.get_xscale() == "symlog" else ""))


def grid_cleanup(axes: np.ndarray, used: int) -> None:
    """Hide the unused panels of a grid and keep x labels only where no panel sits below."""
    for ax in axes.flat[used:]:
        ax.set_visible(False)
    nrows, ncols = axes.shape
    for row in range(nrows - 1):
        for col in range(ncols):
            if axes[row + 1, col].get_visible():
                axes[row, col].set_xlabel("")


def each(items: Iterable[Any], draw: Callable[[Any], Output], opts: Options, figure: str) -> list[Output]:
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


def histogram(row: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
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


def outside(row: pd.Series) -> int:
    """How many finite values fell outside the histogram's range (underflow + overflow)."""
    values = [row.get("underflow", 0), row.get("overflow", 0)]
    return int(sum(v for v in values if v is not None and np.isfinite(v)))


def normalized(row: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Bin centers and the fraction of the (finite) values in each bin; None for an unusable row.

    The fractions are counts / (all finite values, including those outside the bins' range), so a curve
    that sums to less than 1 says how much of the distribution lies outside the plotted range.
    """
    hist = histogram(row)
    if hist is None:
        return None
    edges, counts = hist
    total = counts.sum() + outside(row)
    if total <= 0:
        return None
    return (edges[:-1] + edges[1:]) / 2, counts / total
