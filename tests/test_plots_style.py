"""Labels, colors, legends and titles (initlab/plots/style.py, initlab/plots/common.py), and finding runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from plot_runs import CONFIG, hand_runs, one, write_run

from initlab import plots as P
from initlab.runs import RunData


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


def test_labels_come_from_overrides_not_directories(hand: list[RunData]) -> None:
    run = hand[0]
    assert run.path.name == "0"
    assert P.label(run, hand) == "init=standard data=shapeset seed=0"
    assert P.label(run, hand, ignore=["seed"]) == "init=standard data=shapeset"
    groups = P.group_runs(hand)
    assert [name for name, _ in groups] == [
        "init=standard data=mnist", "init=standard data=shapeset", "init=xavier data=mnist",
        "init=xavier data=shapeset",
    ]  # fmt: skip
    assert all(len(members) == 2 for _, members in groups)
    styles = P.styles(hand)
    assert styles["init=standard data=mnist"]["color"] == P.INIT_COLORS["standard"]
    assert (
        styles["init=standard data=mnist"]["linestyle"] != styles["init=standard data=shapeset"]["linestyle"]
    )
    assert P.label(run, [run]) == "standard init, tanh"  # a single run: described from its config


def test_collect_runs_expands_dirs_and_globs(tmp_path: Path) -> None:
    for job in ("10", "2"):
        write_run(tmp_path / "sw" / "day" / job, [f"seed={job}"], probes=False)
    (tmp_path / "sw" / "figures").mkdir()
    notes: list[str] = []
    runs = P.collect_runs([tmp_path / "sw"], notes)
    assert [r.path.name for r in runs] == ["2", "10"] and not notes
    assert [r.path.name for r in P.collect_runs([str(tmp_path / "sw" / "*" / "1*")])] == ["10"]
    assert P.collect_runs([tmp_path / "sw" / "day" / "2", str(tmp_path / "sw/day/*")]).__len__() == 2
    assert P.collect_runs([tmp_path / "nothing*"], notes) == [] and "no glob match" in notes[0]


def test_palette_is_colorblind_safe_and_distinct_where_compared() -> None:
    from initlab.plots.style import OKABE_ITO

    assert set(P.INIT_COLORS.values()) <= set(OKABE_ITO) and set(P.ACT_COLORS.values()) <= set(OKABE_ITO)
    compared = [  # what the presets put side by side
        ("init", ["standard", "xavier"]), ("init", ["xavier_normal", "kaiming_normal"]),
        ("init", ["lsuv", "orthogonal"]), ("init", ["zeros", "constant", "xavier"]),
        ("act", ["sigmoid", "tanh", "softsign"]), ("act", ["selu", "tanh", "relu"]),
    ]  # fmt: skip
    for group, names in compared:
        palette = P.INIT_COLORS if group == "init" else P.ACT_COLORS
        colors = {palette[n] for n in names}
        assert len(colors) == len(names), names
        assert not {"#E69F00", "#D55E00"} <= colors, names  # orange and vermillion look alike as lines


def test_settings_sharing_a_palette_color_get_distinct_colors(tmp_path: Path) -> None:
    for i, init in enumerate(["xavier", "xavier_uniform", "standard"]):  # xavier = xavier_uniform: one color
        write_run(tmp_path / str(i), [f"init={init}"], probes=False)
    styles = P.styles(P.collect_runs([tmp_path]))
    assert styles["init=standard"]["color"] == P.INIT_COLORS["standard"]
    assert styles["init=xavier"]["color"] == P.INIT_COLORS["xavier"]
    assert len({s["color"] for s in styles.values()}) == 3


def _extent(artist: Any) -> Any:
    return artist.get_window_extent()


def test_compared_panels_share_y_and_legends_stay_off_the_data(hand: list[RunData]) -> None:
    two = [r for r in hand if r.value("data") == "shapeset" and r.value("seed") == "0"]  # standard, xavier
    fig = one(P.fig_hist(two, P.Options()), "hist_grad_preact_step0")
    top, bottom = fig.axes[:2]
    assert top.get_shared_y_axes().joined(top, bottom) and top.get_ylim() == bottom.get_ylim()
    fig.draw_without_rendering()
    for ax in (top, bottom):
        assert _extent(ax.get_legend()).x0 >= _extent(ax).x1  # beside the panel, not on it

    fig = one(P.fig_percentiles(two, P.Options()))
    assert all(ax.get_legend() is None for ax in fig.axes)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "85th percentile", "50th percentile (median)", "15th percentile"
    ]  # fmt: skip
    fig.draw_without_rendering()
    assert _extent(legend).y1 <= min(_extent(ax).y0 for ax in fig.axes if ax.get_visible())


def test_legend_lists_each_color_and_line_style_once_with_short_keys(tmp_path: Path) -> None:
    i = 0
    for depth in (2, 3):
        for width in (256, 512):
            for regime in ("none", "paper"):
                write_run(
                    tmp_path / str(i),
                    [f"model.depth={depth}", f"model.width={width}", f"+dropout_regime={regime}"],
                    probes=False,
                )
                i += 1
    runs = P.collect_runs([tmp_path])
    fig = one(P.fig_curves(runs, P.Options(color_by="dropout_regime")))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == [
        "dropout_regime=none", "dropout_regime=paper", "depth=2 width=256", "depth=2 width=512",
        "depth=3 width=256", "depth=3 width=512", "test (bold)", "train (thin)",
    ]  # fmt: skip
    fig.draw_without_rendering()
    assert _extent(fig.legends[0]).height < 0.25 * fig.bbox.height  # three rows of four, not a third


def test_long_title_of_a_single_panel_fits(tmp_path: Path) -> None:
    """The setup line breaks at its separators instead of running off a one-panel figure."""
    config = {**CONFIG, "model": {"depth": 10, "width": 1000, "norm": "batch"}, "act": {"name": "leaky_relu"},
              "init": {"name": "xavier_uniform"}, "optim": {"name": "sgd", "lr": 0.001}}  # fmt: skip
    runs = P.collect_runs([write_run(tmp_path / "run", ["seed=0"], config=config)])
    fig = one(P.fig_heatmap(runs, P.Options()))
    title = fig._suptitle
    assert title.get_text().count("\n") == 2  # what; the setup on two lines
    assert (
        title.get_text()
        .replace("\n", " · ")
        .endswith(
            "shapeset data · MLP 10×1000 · batch norm · leaky_relu · xavier_uniform init · SGD lr=0.001"
        )
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box, page = title.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
