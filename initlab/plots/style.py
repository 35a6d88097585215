"""The look of every figure: Matplotlib style, fixed colors per init and activation, line styles, titles.

A given init (or activation, when that is what a sweep varies) has the same color in every figure and
every sweep; anything else is colored by sorted label order.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib

from initlab.runs import SEED_KEY, Run, natural_key
from initlab.runs.grouping import group_runs as runs_group_runs
from initlab.runs.grouping import varying_keys

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


# The colorblind-safe palette of Okabe & Ito (2008, "Color Universal Design"), in the order free colors are
# handed out; its yellow (#F0E442) is left out: too little contrast on white.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#949494"]
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, BLACK, GRAY = OKABE_ITO

# Order matters: it is the panel / row order (Glorot & Bengio: "standard" on top, "normalized" below).
# Names that the presets compare get clearly different colors (never orange next to vermillion); a variant
# shares its family's color where it is the same init (xavier = xavier_uniform, kaiming = kaiming_normal).
# Two settings of one figure never share a color: :func:`styles` gives a later one the next free color.
INIT_COLORS: dict[str, str] = {
    "standard": BLUE,
    "xavier": ORANGE,
    "xavier_uniform": ORANGE,
    "xavier_normal": VERMILLION,
    "kaiming": GREEN,
    "kaiming_normal": GREEN,
    "kaiming_uniform": SKY,
    "lecun": PURPLE,
    "orthogonal": BLACK,
    "lsuv": PURPLE,
    "normal": PURPLE,
    "torch_default": GRAY,
    "constant": SKY,
    "zeros": GRAY,
}


ACT_COLORS: dict[str, str] = {
    "sigmoid": SKY,
    "tanh": ORANGE,
    "softsign": PURPLE,
    "relu": BLUE,
    "leaky_relu": VERMILLION,
    "elu": BLACK,
    "selu": GREEN,
    "gelu": GRAY,
    "silu": PURPLE,
    "linear": GRAY,
}


# Colors of settings that are not an init or activation, in order: vermillion late (it is close to orange),
# black last (it reads as the legend's black-and-gray keys).
FALLBACK_COLORS = [BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION, GRAY, BLACK]


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
    """:func:`initlab.runs.grouping.group_runs` in palette order: the seed groups of every figure."""
    return runs_group_runs(runs, RANK)


def _color_key(runs: Sequence[Run], keys: list[str], color_by: str | None) -> str | None:
    """The swept key that picks the colors: ``color_by`` if swept, else init, else act (else none)."""
    if color_by in keys:
        return color_by
    return "init" if "init" in keys or not keys else "act" if "act" in keys else None


def styles(runs: Sequence[Run], color_by: str | None = None) -> dict[str, dict[str, str]]:
    """Group label -> ``{"color", "linestyle"}``, the same for every figure of these runs.

    If the runs differ in ``init`` (or else in ``act``), the color comes from that name's fixed palette
    entry and the other swept settings get line styles; otherwise colors follow sorted label order.
    ``color_by`` names another swept key to color by (e.g. ``dropout``): its values get palette colors in
    sorted order and the other swept settings line styles. Two values never share a color in one figure:
    a value whose fixed color is taken gets the first free color of :data:`OKABE_ITO`.
    """
    keys = varying_keys(runs, ignore=[SEED_KEY])
    groups = group_runs(runs)
    color_key = _color_key(runs, keys, color_by)
    palette = INIT_COLORS if color_key == "init" else ACT_COLORS
    if color_key not in (None, "init", "act"):
        values = sorted({str(m[0].value(color_key) or "") for _, m in groups}, key=natural_key)
        palette = {v: FALLBACK_COLORS[i % len(FALLBACK_COLORS)] for i, v in enumerate(values)}
    other = [k for k in keys if k != color_key] if color_key else []
    other_values = sorted(
        {tuple(members[0].value(k) or "" for k in other) for _, members in groups},
        key=lambda values: [natural_key(v) for v in values],
    )
    given: dict[str, str] = {}  # color value -> color, unique within these runs
    out = {}
    for i, (name, members) in enumerate(groups):
        run = members[0]
        value = str(run.value(color_key) or "") if color_key else name
        if color_key and value not in palette and color_key == "init":
            value = str(run.setting("init.name") or "")
        if value not in given:
            color = palette.get(value) if color_key else None
            if color is None or color in given.values():
                free = [c for c in FALLBACK_COLORS if c not in given.values()]
                color = free[0] if free else FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
            given[value] = color
        style = "-"
        if other:
            index = other_values.index(tuple(run.value(k) or "" for k in other))
            style = LINESTYLES[index % len(LINESTYLES)]
        out[name] = {"color": given[value], "linestyle": style}
    return out


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Override keys as a legend shows them: the last part (``model.depth`` -> ``depth``) where unique."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: end if last.count(end) == 1 else key for key, end in zip(keys, last, strict=True)}


def legend_entries(runs: Sequence[Run], color_by: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """What a legend of these runs lists, as ``(label, {"color", "linestyle"})``: only what differs.

    When colors follow one key and line styles the others (:func:`styles`), the legend lists each color
    once (``init=xavier``) and each line style once in gray (``depth=2 width=256``) instead of every
    combination; otherwise one entry per setting. Keys are shortened by :func:`short_keys`, seeds left out.
    """
    keys = varying_keys(runs, ignore=[SEED_KEY])
    short = short_keys(keys)
    groups = group_runs(runs)
    style = styles(runs, color_by)
    color_key = _color_key(runs, keys, color_by)
    other = [k for k in keys if k != color_key] if color_key else []

    def text(run: Run, which: Sequence[str]) -> str:
        return " ".join(f"{short[k]}={run.value(k)}" for k in which if run.value(k) is not None)

    if color_key in keys and other:
        colors: dict[str, dict[str, str]] = {}
        lines: dict[str, dict[str, str]] = {}
        for name, members in groups:
            colors.setdefault(
                text(members[0], [color_key]), {"color": style[name]["color"], "linestyle": "-"}
            )
            lines.setdefault(
                text(members[0], other), {"color": "0.35", "linestyle": style[name]["linestyle"]}
            )
        return [*colors.items(), *lines.items()]
    return [(text(members[0], keys) or name, style[name]) for name, members in groups]


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
