"""The look of every figure: Matplotlib style, fixed colors per init and activation, line styles, titles.

A given init (or activation, when that is what a sweep varies) has the same color in every figure and
every sweep; anything else is colored by sorted label order.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib

from initlab.runs import SEED_KEY, Run, natural_key, swept_keys
from initlab.runs import group_runs as runs_group_runs

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


# What each probed quantity is, for axis labels and titles.
QUANTITY_TEXT: dict[str, str] = {
    "weight": "weight W",
    "preact": "pre-activation s = Wx + b",
    "act": "activation a = f(s)",
    "grad_preact": "back-propagated gradient ∂L/∂s",
    "grad_weight": "weight gradient ∂L/∂W",
}


STEP_LABEL = "training step (parameter updates)"

# Sort order of the values of these keys in panels, legends and tables (standard init first, as in Glorot &
# Bengio's figures): the palette order.
RANK: dict[str, list[str]] = {"init": list(INIT_COLORS), "act": list(ACT_COLORS)}


def group_runs(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """:func:`initlab.runs.group_runs` in palette order: the groups (seeds of one setting) of every figure."""
    return runs_group_runs(runs, RANK)


def styles(runs: Sequence[Run], color_by: str | None = None) -> dict[str, dict[str, str]]:
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
        values = sorted({str(m[0].value(color_key) or "") for _, m in groups}, key=natural_key)
        palette = {v: FALLBACK_COLORS[i % len(FALLBACK_COLORS)] for i, v in enumerate(values)}
    other = [k for k in keys if k != color_key] if color_key else []
    other_values = sorted(
        {tuple(members[0].value(k) or "" for k in other) for _, members in groups},
        key=lambda values: [natural_key(v) for v in values],
    )
    out = {}
    for i, (name, members) in enumerate(groups):
        run = members[0]
        value = str(run.value(color_key) or "") if color_key else ""
        if color_key and value not in palette and color_key == "init":
            value = str(run.setting("init.name") or "")
        color = palette.get(value) if color_key else None
        if color is None:
            color = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        style = "-"
        if other:
            index = other_values.index(tuple(run.value(k) or "" for k in other))
            style = LINESTYLES[index % len(LINESTYLES)]
        out[name] = {"color": color, "linestyle": style}
    return out


def setup_title(runs: Sequence[Run]) -> str:
    """What all runs share, in words: ``"gaussian data · MLP 3×16 · tanh · xavier init · SGD lr=0.01"``."""

    def common(key: str) -> Any:
        values = {str(r.setting(key)) for r in runs if r.config}
        return values.pop() if len(values) == 1 and "None" not in values else None

    parts = []
    if data := common("data.name"):
        parts.append(f"{data} data")
    depth, width = common("model.depth"), common("model.width")
    if common("model.name") == "cnn":
        channels = common("model.channels")
        parts.append(f"CNN, {depth or '?'} conv layers" + (f" of {channels} channels" if channels else ""))
    elif depth and width:
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


def layer_color(layer: int, n_layers: int) -> Any:
    """Layers run from dark (first) to light (last) on viridis, the same in every figure."""
    return matplotlib.colormaps["viridis"](0.85 * (layer - 1) / max(n_layers - 1, 1))


def wrap(text: str, width: int = 60) -> str:
    """Long labels (many swept overrides) broken over lines instead of squeezing the axes away."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text
