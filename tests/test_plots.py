"""Tests for ``initlab plot`` (initlab.plots): every figure from real tiny runs and from hand-written runs.

Real runs come from the real runner (``initlab run``, in-process, tiny settings) once per module. The
hand-written runs have known numbers, so the tests check that each figure is drawn *from the data*: the
Line2D data, the image array and the table text are compared with the numbers written to disk.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from initlab import cli, load_run
from initlab import plots as P
from initlab.runs import RunData

TINY = [
    "model.width=16",
    "model.depth=3",
    "train.steps=30",
    "data=gaussian",
    "data.dim=16",
    "data.n_train=200",
    "data.n_test=100",
    "train.progress=false",
    "train.eval_every=10",
    "train.save_model=true",  # model.pt: the `weights` figure
]
PNG = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF"


# --------------------------------------------------------------------------- runs made by the real runner


def _initlab_run(*args: str) -> None:
    saved = sys.argv[:]
    try:
        assert cli.main(["run", *args]) == 0
    finally:
        sys.argv = saved


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-run sweep (init=standard,xavier) and a diverging single run, trained by ``initlab run``."""
    root = tmp_path_factory.mktemp("real")
    _initlab_run("-m", "init=standard,xavier", f"hydra.sweep.dir={root / 'sweep'}", *TINY)
    with warnings.catch_warnings():  # the probes warn about the inf/NaN values this run is meant to have
        warnings.simplefilter("ignore")
        _initlab_run(f"hydra.run.dir={root / 'diverged'}", "act=relu", "init=kaiming", "optim.lr=1e4", *TINY)
    return {"sweep": root / "sweep", "diverged": root / "diverged"}


@pytest.fixture(scope="module")
def sweep_runs(real: dict[str, Path]) -> list[RunData]:
    return P.collect_runs([real["sweep"]])


# --------------------------------------------------------------------------- hand-written runs


CONFIG = {
    "seed": 0,
    "init": {"name": "standard"},
    "act": {"name": "tanh"},
    "model": {"depth": 2, "width": 4, "norm": "none"},
    "data": {"name": "shapeset"},
    "optim": {"name": "sgd", "lr": 0.1},
    "probe": {"schedule": "every"},
}
# variance = std² per (quantity, layer); layer 3 is the output layer of a depth-2 net
STD = {"preact": [1.0, 2.0, 3.0], "act": [0.5, 0.25, 0.1], "grad_preact": [0.01, 0.1, 1.0]}
EDGES = [-1.0, -0.5, 0.0, 0.5, 1.0]
COUNTS = {1: [1, 2, 3, 4], 2: [4, 3, 2, 1], 3: [0, 0, 5, 5]}  # step 0; step 10 adds 10 to every bin
UNDERFLOW = {1: 0, 2: 10, 3: 0}


def write_run(
    path: Path,
    overrides: list[str],
    config: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    accuracy: float = 0.9,
    probes: bool = True,
) -> Path:
    """A run directory with known numbers, in the on-disk layout of initlab.runs.write."""
    (path / ".hydra").mkdir(parents=True)
    cfg = json.loads(json.dumps(config or CONFIG))
    for item in overrides:  # keep config and overrides consistent
        key, value = item.split("=")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = {"name": value} if isinstance(node.get(leaf), dict) else value
    OmegaConf.save(OmegaConf.create(cfg), path / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), path / ".hydra" / "overrides.yaml")
    (path / "summary.json").write_text(
        json.dumps(summary or {"status": "completed", "steps_done": 10, "final_test_accuracy": accuracy})
    )
    metrics = [
        {
            "step": s,
            "epoch": s / 10,
            "split": split,
            "loss": loss,
            "reg_loss": 0.0,
            "accuracy": acc,
            "lr": 0.1,
        }
        for s, loss, acc in ((0, 2.3, 0.1), (10, 1.0, accuracy))
        for split in ("train", "test")
    ]
    pd.DataFrame(metrics).to_parquet(path / "metrics.parquet")
    if not probes:
        return path
    layers, hists = [], []
    for step in (0, 10):
        for layer in (1, 2, 3):
            for quantity in ("preact", "act", "grad_preact", "grad_weight"):
                std = STD.get(quantity, [1.0, 1.0, 1.0])[layer - 1] * (1 + step / 10)
                layers.append(
                    {"step": step, "layer": layer, "name": f"l{layer}", "quantity": quantity, "fan_in": 4,
                     "fan_out": 4, "mean": 0.1 * layer + step / 100, "std": std, "min": -1.0, "max": 1.0,
                     "p02": -2.0 * std, "p15": -std + step / 100, "p50": 0.01 * layer + step / 100,
                     "p85": std + step / 100, "p98": 2.0 * std, "frac_zero": 0.0, "frac_saturated": 0.0,
                     "n": 40, "n_nonfinite": 0}
                )  # fmt: skip
                counts = [c + step for c in COUNTS[layer]]
                hists.append(
                    {"step": step, "layer": layer, "quantity": quantity, "edges": EDGES, "counts": counts,
                     "underflow": UNDERFLOW[layer], "overflow": 0, "n_nonfinite": 0}
                )  # fmt: skip
    pd.DataFrame(layers).to_parquet(path / "layers.parquet")
    pd.DataFrame(hists).to_parquet(path / "hists.parquet")
    return path


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1, with known final accuracies."""
    accuracy = {("standard", "shapeset"): (0.9, 0.8), ("xavier", "shapeset"): (0.95, 0.85),
                ("standard", "mnist"): (0.99, 0.97), ("xavier", "mnist"): (0.995, 0.985)}  # fmt: skip
    i = 0
    for (init, data), accs in accuracy.items():
        for seed, acc in enumerate(accs):
            write_run(
                tmp_path / "sweep" / str(i), [f"init={init}", f"data={data}", f"seed={seed}"], accuracy=acc
            )
            i += 1
    return P.collect_runs([tmp_path / "sweep"])


def _one(outputs: list[P.Output], name: str | None = None) -> Figure:
    figures = [(n, f) for n, f in outputs if name is None or n == name]
    assert len(figures) == 1, [n for n, _ in outputs]
    assert isinstance(figures[0][1], Figure)
    return figures[0][1]


def _lines(ax: Any) -> dict[str, Any]:
    return {line.get_label(): line for line in ax.get_lines()}


def _check_file(path: Path) -> None:
    head = path.read_bytes()[:8]
    assert head.startswith({".png": PNG, ".pdf": PDF}.get(path.suffix, b"")), path
    assert path.stat().st_size > 1000 or path.suffix not in (".png", ".pdf")


# --------------------------------------------------------------------------- the command on real runs


def test_help_lists_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert P.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, description) in P.FIGURES.items():
        assert f"{name}  " in out and description in out


def test_real_sweep_every_figure_png_and_pdf(
    real: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plot", str(real["sweep"]), "--format", "png,pdf"]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipped" in line]
    assert "Traceback" not in captured.err
    assert all(" phase: " in line or " mc_dropout: " in line for line in skipped)  # a grid; train.mc_masks
    printed = [Path(line) for line in captured.out.splitlines()]
    out = real["sweep"] / "figures"
    assert all(p.parent == out and p.exists() for p in printed)
    stems = {p.stem for p in printed}
    expected = {"hist_act_step0", "hist_grad_preact_step0", "hist_grad_weight_step0", "stats_act",
                "percentiles_preact_layer3", "curves", "depth_step0", "heatmap_act_layer3"}  # fmt: skip
    assert expected <= stems
    for stem in expected:
        for suffix in (".png", ".pdf"):
            _check_file(out / f"{stem}{suffix}")
    assert {p.name for p in printed} >= {"table.md", "table.csv", "index.md"}
    index = (out / "index.md").read_text()
    for stem in expected:
        assert f"]({stem}.png)" in index
    assert "| init=standard |" in index and "| init=xavier |" in index  # labels, not job numbers
    assert "| tanh / standard |" in (out / "table.md").read_text()


NEEDS_A_GRID = ("phase",)  # drawn from a (σ_w², depth) sweep: tests/test_claims_theory.py
NEEDS_MC_MASKS = ("mc_dropout",)  # drawn from runs with train.mc_masks: tests/test_mc_dropout.py


@pytest.mark.parametrize("name", [n for n in P.FIGURES if n not in NEEDS_A_GRID + NEEDS_MC_MASKS])
def test_each_figure_from_real_runs(name: str, sweep_runs: list[RunData]) -> None:
    opts = P.Options()
    outputs = P.FIGURES[name][0](sweep_runs, opts)
    assert outputs and not opts.notes
    for stem, item in outputs:
        if isinstance(item, str):
            assert item.strip() and stem in ("table.md", "table.csv")
            continue
        data = [line.get_ydata() for ax in item.axes for line in ax.get_lines()]
        data += [c.get_array() for ax in item.axes for c in ax.collections if isinstance(c, QuadMesh)]
        assert any(np.isfinite(np.ma.filled(np.asarray(d, float), np.nan)).any() for d in data), stem
        assert "gaussian data" in item.get_suptitle()  # the title names the setup


def test_real_hist_is_the_logged_histogram(sweep_runs: list[RunData]) -> None:
    fig = _one(P.fig_hist(sweep_runs, P.Options()), "hist_act_step0")
    top = fig.axes[0]
    assert top.get_title() == "init=standard — step 0"  # standard on top, as in Glorot & Bengio Fig. 6
    run = next(r for r in sweep_runs if "init=standard" in r.overrides)
    row = run.hists.query("quantity == 'act' and step == 0 and layer == 1").iloc[0]
    line = _lines(top)["layer 1"]
    edges, counts = np.asarray(row["edges"]), np.asarray(row["counts"])
    np.testing.assert_allclose(line.get_xdata(), (edges[:-1] + edges[1:]) / 2)
    np.testing.assert_allclose(line.get_ydata(), counts / counts.sum())
    assert set(_lines(top)) == {"layer 1", "layer 2", "layer 3"}  # the output layer (4) is left out


def test_real_diverged_run_is_drawn_and_marked(real: dict[str, Path], sweep_runs: list[RunData]) -> None:
    runs = [*sweep_runs, load_run(real["diverged"])]
    assert runs[-1].summary["status"] == "diverged"
    fig = _one(P.fig_curves(runs, P.Options()))
    markers = [line for line in fig.axes[0].get_lines() if line.get_marker() == "X"]
    assert markers and all(np.isfinite(m.get_ydata()).all() for m in markers)
    for name in ("hist", "stats", "depth", "table"):
        assert P.FIGURES[name][0](runs, P.Options(steps=[0, "last"]))


# --------------------------------------------------------------------------- known numbers


def test_hist_known_numbers(hand: list[RunData]) -> None:
    runs = [r for r in hand if "data=shapeset" in r.overrides and "seed=0" in r.overrides]
    fig = _one(P.fig_hist(runs, P.Options(steps=[0])), "hist_act_step0")
    assert [ax.get_title() for ax in fig.axes] == ["init=standard — step 0", "init=xavier — step 0"]
    lines = _lines(fig.axes[0])
    assert set(lines) == {"layer 1", "layer 2 (50% outside range)"}
    np.testing.assert_allclose(lines["layer 1"].get_xdata(), [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(lines["layer 1"].get_ydata(), [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(lines["layer 2 (50% outside range)"].get_ydata(), [0.2, 0.15, 0.1, 0.05])
    # --layers picks layers (the output layer too), --steps picks the step (nearest probed one)
    fig = _one(P.fig_hist(runs, P.Options(steps=[9], layers=[3])), "hist_grad_preact_step10")  # as drawn
    line = _lines(fig.axes[0])["output layer"]
    np.testing.assert_allclose(line.get_ydata(), np.array([10, 10, 15, 15]) / 50)
    assert fig.axes[0].get_title() == "init=standard — step 10"


def test_depth_known_variances(hand: list[RunData]) -> None:
    fig = _one(P.fig_depth(hand, P.Options(steps=[0, "last"])), "depth_step0")
    assert [ax.get_title() for ax in fig.axes[:3]] == [P.QUANTITY_TEXT[q] for q in P.DEPTH_QUANTITIES]
    for ax, quantity in zip(fig.axes, P.DEPTH_QUANTITIES, strict=False):
        assert ax.get_yscale() == "log"
        lines = ax.get_lines()
        assert len(lines) == len(hand)  # one line per run
        for line in lines:
            np.testing.assert_allclose(line.get_xdata(), [1, 2])  # hidden layers
            np.testing.assert_allclose(line.get_ydata(), np.square(STD[quantity][:2]))
    last = _one(P.fig_depth(hand, P.Options(steps=["last"])))
    np.testing.assert_allclose(last.axes[0].get_lines()[0].get_ydata(), np.square([2.0, 4.0]))


def test_stats_known_numbers(hand: list[RunData]) -> None:
    runs = hand[:1]
    fig = _one(P.fig_stats(runs, P.Options()))
    ax = fig.axes[0]
    errorbars = {c.get_label(): c for c in ax.containers}
    mean_line = errorbars["layer 1: mean ± std"].lines[0]
    np.testing.assert_allclose(mean_line.get_xdata(), [0, 10])
    np.testing.assert_allclose(mean_line.get_ydata(), [0.1, 0.2])
    p98 = _lines(ax)["layer 1: 98th percentile"]
    assert p98.get_linestyle() == "None" and p98.get_marker() == "^"
    np.testing.assert_allclose(p98.get_ydata(), [1.0, 2.0])
    assert "layer 3: mean ± std" not in errorbars  # output layer left out
    assert ax.get_ylabel().startswith("activation")


def test_percentiles_known_numbers_side_by_side(hand: list[RunData]) -> None:
    runs = [r for r in hand if "data=shapeset" in r.overrides and "seed=0" in r.overrides]
    fig = _one(P.fig_percentiles(runs, P.Options()), "percentiles_preact_layer2")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["init=standard", "init=xavier"]
    lines = _lines(panels[0])
    np.testing.assert_allclose(lines["50th percentile (median)"].get_ydata(), [0.02, 0.12])
    np.testing.assert_allclose(lines["15th percentile"].get_ydata(), [-2.0, -3.9])
    np.testing.assert_allclose(lines["85th percentile"].get_ydata(), [2.0, 4.1])
    assert panels[0].get_shared_y_axes().joined(panels[0], panels[1])
    assert _one(P.fig_percentiles(runs, P.Options(layers=[1])), "percentiles_preact_layer1")


def test_curves_known_numbers_and_colors(hand: list[RunData]) -> None:
    fig = _one(P.fig_curves(hand, P.Options(logy=True)))
    loss_ax, err_ax = fig.axes[:2]
    assert loss_ax.get_yscale() == "log" and "nats" in loss_ax.get_ylabel() and "%" in err_ax.get_ylabel()
    test_err = [line for line in err_ax.get_lines() if line.get_label().endswith("(test)")]
    assert len(test_err) == len(hand)
    finals = sorted(float(line.get_ydata()[-1]) for line in test_err)
    np.testing.assert_allclose(finals, sorted(100 * (1 - r.summary["final_test_accuracy"]) for r in hand))
    # one color per init, from the fixed palette, the same in every figure
    depth = _one(P.fig_depth(hand, P.Options()))
    for ax in (err_ax, depth.axes[0]):
        for line in ax.get_lines():
            init = "standard" if "init=standard" in line.get_label() else "xavier"
            assert line.get_color() == P.INIT_COLORS[init]
    # the legend lists what differs once: colors (init), line styles (data), not every combination
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["init=standard", "init=xavier", "data=mnist", "data=shapeset",
                     "2 seeds: one line each", "test (bold)", "train (thin)"]  # fmt: skip
    handles = dict(zip(texts, legend.legend_handles, strict=True))
    assert handles["init=xavier"].get_color() == P.INIT_COLORS["xavier"]
    assert handles["data=mnist"].get_linestyle() != handles["data=shapeset"].get_linestyle()


def test_depth_reference_line(hand: list[RunData]) -> None:
    fig = _one(P.fig_depth(hand, P.Options(ref_ratio=0.5)))
    ax = fig.axes[0]
    ref = next(line for line in ax.get_lines() if line.get_linestyle() == ":")
    first = next(line for line in ax.get_lines() if line.get_linestyle() != ":")
    x, y = np.asarray(ref.get_xdata()), np.asarray(ref.get_ydata())
    np.testing.assert_allclose(y, first.get_ydata()[0] * 0.5 ** (x - x[0]))
    assert "reference: × 0.5 per layer" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_color_by_another_swept_key(hand: list[RunData]) -> None:
    fig = _one(P.fig_curves(hand, P.Options(color_by="data", logy=True)))
    err_ax = fig.axes[1]
    assert err_ax.get_yscale() == "log"
    colors: dict[str, set[str]] = {}
    for line in err_ax.get_lines():
        data = next(part for part in line.get_label().split() if part.startswith("data="))
        colors.setdefault(data, set()).add(line.get_color())
    assert len(colors) == 2 and all(len(c) == 1 for c in colors.values())  # one color per data set
    assert len(set.union(*colors.values())) == 2


def test_heatmap_known_image(hand: list[RunData]) -> None:
    fig = _one(P.fig_heatmap(hand[:1], P.Options()), "heatmap_act_layer2")
    mesh = next(c for c in fig.axes[0].collections if isinstance(c, QuadMesh))
    image = np.ma.filled(mesh.get_array(), 0).reshape(4, 2)  # value bins × probed steps
    np.testing.assert_array_equal(image, np.array([COUNTS[2], [c + 10 for c in COUNTS[2]]]).T)
    x, y = mesh.get_coordinates()[0, :, 0], mesh.get_coordinates()[:, 0, 1]
    np.testing.assert_allclose(x, [-5, 5, 15])
    np.testing.assert_allclose(y, EDGES)


def test_table_known_numbers(hand: list[RunData]) -> None:
    files = dict(P.fig_table(hand, P.Options()))
    md, csv = files["table.md"], files["table.csv"]
    assert md.splitlines()[:4] == [
        "| activation / init | mnist | shapeset |",
        "|---|---:|---:|",
        "| tanh / standard | 2.00 ± 1.41 | 15.00 ± 7.07 |",
        "| tanh / xavier | 1.00 ± 0.71 | 10.00 ± 7.07 |",
    ]
    assert "mean ± sample std over 2 seeds" in md and "after 10 training steps" in md
    frame = pd.read_csv(io.StringIO(csv)).set_index("setup")
    assert frame.loc["tanh / standard", "shapeset_mean"] == pytest.approx(15.0)
    assert frame.loc["tanh / xavier", "mnist_std"] == pytest.approx(np.std([0.5, 1.5], ddof=1))
    assert (frame[["mnist_n", "shapeset_n"]] == 2).all().all()


# --------------------------------------------------------------------------- labels, runs, colors


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


# --------------------------------------------------------------------------- robustness


def _broken_sweep(root: Path) -> Path:
    """No probes, a crash before training, a half-written Parquet file, and a diverged run."""
    write_run(root / "noprobe", ["init=standard"], probes=False)
    (root / "crash").mkdir(parents=True)
    (root / "crash" / "summary.json").write_text('{"status": "failed", "steps_done": 0, "error": "boom"}')
    half = write_run(root / "half", ["init=xavier"], summary={"status": "running", "steps_done": 3})
    data = (half / "layers.parquet").read_bytes()
    (half / "layers.parquet").write_bytes(data[: len(data) // 2])
    diverged = write_run(
        root / "diverged", ["init=kaiming"], summary={"status": "diverged", "steps_done": 10}
    )
    metrics = pd.read_parquet(diverged / "metrics.parquet")
    metrics.loc[metrics["step"] == 10, "loss"] = np.nan
    metrics.to_parquet(diverged / "metrics.parquet")
    layers = pd.read_parquet(diverged / "layers.parquet")
    layers.loc[layers["step"] == 10, ["mean", "std", "p15", "p50", "p85", "p98"]] = np.inf
    layers.to_parquet(diverged / "layers.parquet")
    return root


def test_bad_runs_draw_what_can_be_drawn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _broken_sweep(tmp_path / "broken")
    assert P.main([str(root), "--steps", "0,last"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "layers.parquet: unreadable" in captured.err
    written = {Path(line).name for line in captured.out.splitlines()}
    assert {"curves.png", "table.md", "depth_step0.png", "hist_act_step0.png", "index.md"} <= written
    assert all(line.startswith("initlab plot: ") for line in captured.err.splitlines())
    table = (root / "figures" / "table.md").read_text()
    assert "†" in table and "*" in table  # diverged and unfinished runs are marked
    index = (root / "figures" / "index.md").read_text()
    assert "| crash |" in index and "failed" in index


def test_nothing_drawable_exits_1_with_one_line_per_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "crash").mkdir()
    (tmp_path / "crash" / "summary.json").write_text('{"status": "failed", "steps_done": 0}')
    assert P.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if line.startswith("initlab plot: not drawn: ")]) == len(P.FIGURES)
    assert not (tmp_path / "figures").exists()


def test_figures_that_do_not_apply_are_not_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metrics only (probes off): a plain `initlab plot` draws curves and table and says nothing of the rest
    (index.md lists them); a figure named in --figures that cannot be drawn is one line on stderr."""
    write_run(tmp_path / "noprobe", [], probes=False)
    assert P.main([str(tmp_path / "noprobe")]) == 0
    captured = capsys.readouterr()
    assert {Path(p).name for p in captured.out.splitlines()} == {
        "curves.png",
        "table.md",
        "table.csv",
        "index.md",
    }
    assert captured.err == ""
    index = (tmp_path / "noprobe" / "figures" / "index.md").read_text()
    assert "## Not drawn" in index and "- hist: " in index and "- weights: " in index
    assert P.main([str(tmp_path / "noprobe"), "--figures", "curves,hist"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("initlab plot: not drawn: hist: no run has act histograms")


def test_a_run_still_training_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "live", [], summary={"status": "running", "steps_done": 3}, probes=False)
    assert P.main([str(run), "--figures", "curves,depth"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"initlab plot: note: 1 of 1 runs still training ({run}): "
        "the figures show what they have logged so far"
    )
    assert err[1].startswith("initlab plot: not drawn: depth: ") and err[1].endswith(
        "(1 runs still training: their files are written as they go)"
    )


def test_steps_that_were_never_probed(hand: list[RunData], capsys: pytest.CaptureFixture[str]) -> None:
    """--steps beyond every run's last probe: a message, no file named after it; a step between probes is
    drawn at the nearest probed one and named after that one."""
    sweep = hand[0].path.parent
    assert P.main([str(sweep), "--figures", "depth", "--steps", "9,99999"]) == 0
    captured = capsys.readouterr()
    assert [Path(p).name for p in captured.out.splitlines()] == ["depth_step10.png", "index.md"]
    assert captured.err == (
        "initlab plot: --steps 99999: no run was probed at or after step 99999 (the last probed step is 10; "
        "--steps last picks each run's last one)\n"
    )
    assert P.main([str(sweep), "--figures", "hist", "--steps", "99999"]) == 1
    assert "initlab plot: not drawn: hist: no probe step to draw" in capsys.readouterr().err
    assert not list((sweep / "figures").glob("*99999*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ref-ratio", "-1"], "argument --ref-ratio: '-1' is not allowed: expected a number > 0, e.g. 0.5"),
        (["--ref-ratio", "inf"], "argument --ref-ratio: 'inf' is not allowed: expected a number > 0"),
        (
            ["--color-by", "nosuch"],
            "--color-by 'nosuch' is not allowed: expected a key these runs differ in: init,",
        ),
        (
            ["--steps", "1,x"],
            "argument --steps: '1,x' is not allowed: expected integers >= 0 or last, e.g. 0,last",
        ),
        (
            ["--figures", "hist,nope"],
            "argument --figures: unknown figure 'nope': expected a comma-separated list",
        ),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_are_one_line(hand: list[RunData], args: list[str], message: str, capsys) -> None:
    sweep = hand[0].path.parent
    assert P.main([str(sweep), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"initlab plot: error: {message}") and captured.err.count("\n") == 1
    assert captured.out == "" and not (sweep / "figures").exists()


def test_hist_colors_span_each_panels_layers(tmp_path: Path) -> None:
    """A shallow panel beside a deep one uses its own color scale (dark first layer to light last layer),
    not the deepest run's, so its few lines can be told apart."""
    from initlab.plots.style import layer_color

    write_run(tmp_path / "a", ["init=standard"])
    deep = write_run(
        tmp_path / "b", ["init=xavier"], config={**CONFIG, "model": {**CONFIG["model"], "depth": 5}}
    )
    hists = pd.read_parquet(deep / "hists.parquet")
    extra = hists[hists["layer"] == 2].assign(layer=lambda f: f["layer"] + 2)  # layers 4 and 5: hidden too
    pd.concat([hists, extra, extra.assign(layer=5), extra.assign(layer=6)]).to_parquet(deep / "hists.parquet")
    fig = _one(P.fig_hist(P.collect_runs([tmp_path]), P.Options(steps=[0])), "hist_act_step0")
    shallow, deeper = (
        {line.get_label().split(" (")[0]: line.get_color() for line in ax.get_lines()} for ax in fig.axes
    )
    assert shallow == {"layer 1": layer_color(1, 3), "layer 2": layer_color(2, 3)}
    assert deeper["layer 1"] == layer_color(1, 6) and deeper["layer 5"] == layer_color(5, 6)


def test_no_runs_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert P.main([str(tmp_path)]) == 1
    assert "no run directories" in capsys.readouterr().err
    assert P.main([str(tmp_path / "missing" / "*")]) == 1
    capsys.readouterr()
    assert P.main([str(tmp_path), "--figures", "hist,nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and all(name in err[0] for name in P.FIGURES)
    for bad in (["--format", "gif"], ["--steps", "-1"], ["--layers", "0"], ["--xscale", "cubic"]):
        assert P.main([str(tmp_path), *bad]) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_out_dir_and_glob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "runs" / "a", ["init=standard"], probes=False)
    write_run(tmp_path / "runs" / "b", ["init=xavier"], probes=False)
    out = tmp_path / "elsewhere"
    assert (
        P.main([str(tmp_path / "runs" / "*"), "--figures", "curves", "--out", str(out), "--format", "pdf"])
        == 0
    )
    assert capsys.readouterr().out.split() == [str(out / "curves.pdf"), str(out / "index.md")]
    _check_file(out / "curves.pdf")
    # two paths, no --out: figures/ in the folder that holds both
    assert P.main([str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b"), "--figures", "table"]) == 0
    assert (tmp_path / "runs" / "figures" / "table.md").exists()


# --------------------------------------------------------------------------- palette and legends


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
    fig = _one(P.fig_hist(two, P.Options()), "hist_grad_preact_step0")
    top, bottom = fig.axes[:2]
    assert top.get_shared_y_axes().joined(top, bottom) and top.get_ylim() == bottom.get_ylim()
    fig.draw_without_rendering()
    for ax in (top, bottom):
        assert _extent(ax.get_legend()).x0 >= _extent(ax).x1  # beside the panel, not on it

    fig = _one(P.fig_percentiles(two, P.Options()))
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
    fig = _one(P.fig_curves(runs, P.Options(color_by="dropout_regime")))
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
    fig = _one(P.fig_heatmap(runs, P.Options()))
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


def test_a_read_only_output_folder_is_said_before_drawing(
    hand: list[RunData], monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from initlab.plots import command

    sweep = hand[0].path.parent
    monkeypatch.setattr(command.os, "access", lambda path, mode: False)
    assert P.main([str(sweep)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"initlab plot: error: cannot write the figures to {sweep / 'figures'} "
        f"({sweep} is read-only for this user): use --out DIR\n"
    )
    assert captured.out == "" and not (sweep / "figures").exists()


def test_layers_that_no_run_logged(hand: list[RunData], capsys: pytest.CaptureFixture[str]) -> None:
    sweep = hand[0].path.parent
    assert P.main([str(sweep), "--figures", "depth", "--layers", "99"]) == 2
    assert capsys.readouterr().err == (
        "initlab plot: error: --layers 99: no run logged such a layer "
        "(they have layers 1..3; the last one is the output layer)\n"
    )
    assert P.main([str(sweep), "--figures", "depth", "--layers", "1,99"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("initlab plot: --layers 99: no run logged such a layer")
    assert [Path(p).name for p in captured.out.splitlines()] == ["depth_step0.png", "index.md"]


def test_figures_all_is_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "noprobe", [], probes=False)
    assert P.main([str(tmp_path / "noprobe"), "--figures", "all"]) == 0
    assert capsys.readouterr().err == ""  # only what applies, nothing said of the rest
