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
from plot_runs import check_file, lines_of, one, write_run

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
    assert len([line for line in err if "skipped" in line]) == len(P.FIGURES)
    assert not (tmp_path / "figures").exists()
    # metrics only (probes off): curves and table, the rest skipped with one line each
    write_run(tmp_path / "noprobe", [], probes=False)
    assert P.main([str(tmp_path / "noprobe")]) == 0
    captured = capsys.readouterr()
    assert {Path(p).name for p in captured.out.splitlines()} == {
        "curves.png",
        "table.md",
        "table.csv",
        "index.md",
    }
    assert len(captured.err.splitlines()) == len(P.FIGURES) - 2


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
