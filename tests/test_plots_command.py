"""``initlab plot`` on runs the real runner made: every figure, the files, ``index.md``, and what it
does with broken runs and bad arguments (initlab/plots/command.py, initlab/plots/figures.py)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from plot_runs import check_file, hand_runs, lines_of, one, write_run

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


def test_help_lists_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert P.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, description in ((n, f.description) for n, f in P.FIGURES.items()):
        assert f"{name}  " in out and description in out


@pytest.mark.slow
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
            check_file(out / f"{stem}{suffix}")
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
    outputs = P.FIGURES[name].make(sweep_runs, opts)
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
    fig = one(P.fig_hist(sweep_runs, P.Options()), "hist_act_step0")
    top = fig.axes[0]
    assert top.get_title() == "init=standard — step 0"  # standard on top, as in Glorot & Bengio Fig. 6
    run = next(r for r in sweep_runs if "init=standard" in r.overrides)
    row = run.hists.query("quantity == 'act' and step == 0 and layer == 1").iloc[0]
    line = lines_of(top)["layer 1"]
    edges, counts = np.asarray(row["edges"]), np.asarray(row["counts"])
    np.testing.assert_allclose(line.get_xdata(), (edges[:-1] + edges[1:]) / 2)
    np.testing.assert_allclose(line.get_ydata(), counts / counts.sum())
    assert set(lines_of(top)) == {"layer 1", "layer 2", "layer 3"}  # the output layer (4) is left out


def test_real_diverged_run_is_drawn_and_marked(real: dict[str, Path], sweep_runs: list[RunData]) -> None:
    runs = [*sweep_runs, load_run(real["diverged"])]
    assert runs[-1].summary["status"] == "diverged"
    fig = one(P.fig_curves(runs, P.Options()))
    markers = [line for line in fig.axes[0].get_lines() if line.get_marker() == "X"]
    assert markers and all(np.isfinite(m.get_ydata()).all() for m in markers)
    for name in ("hist", "stats", "depth", "table"):
        assert P.FIGURES[name].make(runs, P.Options(steps=[0, "last"]))


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


@pytest.mark.slow
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


@pytest.fixture
def hand(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1 with known numbers (plot_runs.hand_runs)."""
    return hand_runs(tmp_path)


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
    check_file(out / "curves.pdf")
    # two paths, no --out: figures/ in the folder that holds both
    assert P.main([str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b"), "--figures", "table"]) == 0
    assert (tmp_path / "runs" / "figures" / "table.md").exists()


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
