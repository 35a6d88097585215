"""The Python API: ``initlab.run`` against ``initlab run``, ``load_sweep``, ``Run.hist_bins``, the ``draw_*``
functions drawing into given Figures and Axes, and the example script docs/notebook.py."""

from __future__ import annotations

import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_DATA, TINY_RUN
from matplotlib.figure import Figure
from plot_runs import COUNTS, EDGES, STD, UNDERFLOW, write_run

import initlab
from initlab import cli
from initlab import plots as P
from initlab.config import ConfigError
from initlab.errors import UserError
from initlab.sweep.index import build_index

TINY = [*TINY_DATA, *TINY_RUN, "train.eval_every=10"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_is_the_cli_run(tmp_path: Path) -> None:
    """Same overrides, same config files, same numbers as `initlab run` (in-process, no subprocess).

    ``hydra.run.dir`` picks the directory, as for the command, and is not one of the run's overrides."""
    ours = initlab.run([*TINY, "init=kaiming", "act=relu", f"hydra.run.dir={tmp_path / 'api'}"])
    saved = sys.argv[:]
    try:
        assert cli.main(["run", f"hydra.run.dir={tmp_path / 'cli'}", *TINY, "init=kaiming", "act=relu"]) == 0
    finally:
        sys.argv = saved
    theirs = initlab.load_run(tmp_path / "cli")
    assert isinstance(ours, initlab.Run) and ours.path == tmp_path / "api"
    assert ours.status == "completed" and ours.summary["steps_done"] == 20
    assert ours.overrides == theirs.overrides == [*TINY, "init=kaiming", "act=relu"]
    assert ours.config == theirs.config
    pd.testing.assert_frame_equal(ours.metrics, theirs.metrics)
    pd.testing.assert_frame_equal(ours.layers, theirs.layers)
    assert ours.summary["final_test_accuracy"] == theirs.summary["final_test_accuracy"]
    assert ours.value("init") == "kaiming" and ours.job is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.depth=0"], "model.depth=0 is not allowed: expected an integer >= 1"),
        (["init=foo"], "init=foo is not allowed: expected one of constant, kaiming,"),
        (["model.foo=1"], "Could not override 'model.foo'"),
        (["seed=0,1"], "Ambiguous value for argument 'seed=0,1'"),
    ],
)
def test_run_bad_value_raises_the_cli_error_before_writing(
    tmp_path: Path, overrides: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        initlab.run([*TINY, *overrides], run_dir=tmp_path / "run")
    assert isinstance(info.value, UserError) and message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()
    if overrides == ["model.depth=0"]:  # the command prints the very same line
        saved = sys.argv[:]
        try:
            code = cli.main(["run", f"hydra.run.dir={tmp_path / 'cli'}", *TINY, *overrides])
        except SystemExit as exited:
            code = exited.code
        finally:
            sys.argv = saved
        assert code == 2
        assert capsys.readouterr().err.strip() == f"initlab: error: {info.value}"


def _hand_sweep(root: Path) -> Path:
    for i, (init, seed, acc) in enumerate([("standard", 0, 0.5), ("xavier", 0, 0.75), ("xavier", 1, 0.25)]):
        write_run(root / str(i), [f"init={init}", f"seed={seed}"], accuracy=acc)
    return root


def test_load_sweep_is_the_sweep_index(tmp_path: Path) -> None:
    sweep = _hand_sweep(tmp_path / "sweep")
    table = initlab.load_sweep(sweep)
    pd.testing.assert_frame_equal(table, build_index(sweep))
    assert table["init"].tolist() == ["standard", "xavier", "xavier"]
    assert table["seed"].tolist() == [0, 0, 1]
    assert table["final_test_accuracy"].tolist() == [0.5, 0.75, 0.25]
    with pytest.raises(FileNotFoundError):
        initlab.load_sweep(tmp_path / "nothing")


def test_hist_bins_one_row_per_bin(tmp_path: Path) -> None:
    run = initlab.load_run(write_run(tmp_path / "r", ["init=xavier"]))
    bins = run.hist_bins()
    assert len(bins) == 2 * 3 * 4 * 4  # steps x layers x quantities x bins
    assert list(bins.columns) == ["step", "layer", "quantity", "bin", "left", "right", "count", "fraction"]
    one = run.hist_bins("act", layer=2, step=10)
    assert one["bin"].tolist() == [0, 1, 2, 3]
    assert one["left"].tolist() == EDGES[:-1] and one["right"].tolist() == EDGES[1:]
    counts = [c + 10 for c in COUNTS[2]]
    assert one["count"].tolist() == counts
    total = sum(counts) + UNDERFLOW[2]
    np.testing.assert_allclose(one["fraction"], np.array(counts) / total)
    assert initlab.load_run(write_run(tmp_path / "np", [], probes=False)).hist_bins().empty


def test_draw_into_axes_and_figures(tmp_path: Path) -> None:
    runs = P.collect_runs([_hand_sweep(tmp_path / "sweep")])
    fig = Figure()
    axes = fig.subplots(1, 3)
    assert initlab.draw_depth(runs, ax=axes) is axes
    for ax, quantity in zip(axes, ("preact", "act", "grad_preact"), strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"init=standard", "init=xavier"}
        np.testing.assert_allclose(lines["init=xavier"].get_ydata(), np.array(STD[quantity][:2]) ** 2)
    assert fig.get_suptitle() == ""  # the caller's figure keeps its own title
    assert axes[-1].get_legend() is not None

    # the same lines as the figure `initlab plot` writes
    (_, saved), *_ = P.fig_depth(runs, P.Options())
    for ours, theirs in zip(axes, saved.axes, strict=True):
        assert [line.get_label() for line in ours.lines] == [line.get_label() for line in theirs.lines]
        for a, b in zip(ours.lines, theirs.lines, strict=True):
            np.testing.assert_array_equal(a.get_ydata(), b.get_ydata())

    whole = Figure()
    left, right = whole.subfigures(1, 2)
    assert initlab.draw_curves(runs, fig=left) is left and len(left.axes) == 2
    assert initlab.draw("percentiles", runs, fig=right) is right and len(right.axes) == 2  # two settings
    assert "Learning curves" in left.get_suptitle()

    one = Figure().add_subplot()
    assert initlab.draw_hist(runs[0], "act", step=10, ax=one) is one
    y = {line.get_label(): line.get_ydata() for line in one.lines}
    counts = np.array([c + 10 for c in COUNTS[1]])
    np.testing.assert_allclose(y["layer 1"], counts / counts.sum())
    assert isinstance(initlab.draw_heatmap(tmp_path / "sweep" / "0"), Figure)
    assert isinstance(initlab.draw_stats(initlab.load_sweep(tmp_path / "sweep")), Figure)

    with pytest.raises(UserError, match="this figure has 3 panel"):
        initlab.draw_depth(runs, ax=Figure().add_subplot())
    with pytest.raises(ValueError, match="expected one of hist, stats"):
        initlab.draw("nope", runs)


def test_draw_warns_about_what_it_left_out(tmp_path: Path) -> None:
    runs = P.collect_runs([_hand_sweep(tmp_path / "sweep")])
    with pytest.warns(UserWarning, match="no such file"):
        initlab.draw_curves([*runs, tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "summary.json").write_text('{"status": "failed"}')
    with pytest.raises(P.Skip, match="no run has metrics"):
        initlab.draw_curves(empty)


@pytest.mark.slow
def test_notebook_example_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("INITLAB_EXAMPLE_DIR", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # nothing left out of any figure
        runpy.run_path(str(ROOT / "docs" / "notebook.py"), run_name="__main__")
    assert (tmp_path / "depth.png").stat().st_size > 10_000
    assert (tmp_path / "curves_hist.png").stat().st_size > 10_000
    assert initlab.load_sweep(tmp_path)["status"].tolist() == ["completed", "completed"]
