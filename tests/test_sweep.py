"""Sweeps: `initlab run -m` with the basic, joblib and submitit_local launchers, and the sweep index.

The basic launcher runs its jobs in this process (with the one torch thread conftest.py sets); joblib and
submitit_local start their own processes, which is why those two tests take a few seconds each.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_DATA, TINY_RUN
from omegaconf import OmegaConf

from initlab import cli
from initlab.config import config_dir
from initlab.sweep import callback as sweep
from initlab.sweep import index as sweep_index

TINY = [*TINY_DATA, *TINY_RUN, "probe=off"]


def run_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> tuple[int, Path]:
    """`initlab run -m TINY overrides` in this process; returns (exit code, sweep directory)."""
    sweep_dir = tmp_path / "sweep"
    tmp_path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    code = cli.main(["run", "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep_dir}"])
    return code, sweep_dir


def check_failed_depth_sweep(code: int, sweep_dir: Path, out: str, jobs: int) -> pd.DataFrame:
    """A `model.depth=2,0` sweep: the depth-0 jobs fail, the others complete, and the index says so."""
    assert code == 1
    index = sweep_index.read_index(sweep_dir)
    assert len(index) == jobs
    assert list(index["job"]) == list(range(jobs))
    half = jobs // 2
    assert f"sweep: {jobs} jobs, {half} completed, {half} failed (see {sweep_dir / 'sweep.parquet'})" in out
    ok, bad = index[index["model.depth"] == 2], index[index["model.depth"] == 0]
    assert (ok["status"] == "completed").all() and ok["error"].isna().all()
    assert (ok["steps_done"] == 20).all() and ok["final_test_accuracy"].notna().all()
    assert (bad["status"] == "failed").all()
    assert bad["error"].str.contains("model.depth=0 is not allowed").all()
    for job_dir in index["dir"]:
        assert json.loads((Path(job_dir) / "summary.json").read_text())["status"] in ("completed", "failed")
    return index


def test_basic_launcher_sweep_index_and_rebuild(tmp_path, monkeypatch, capsys):
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, "seed=0,1", "model.depth=2,0")
    out = capsys.readouterr().out
    index = check_failed_depth_sweep(code, sweep_dir, out, jobs=4)
    assert f"job directories in {sweep_dir}" in out
    # one column per override, typed; then the summary fields and the job directory
    assert list(index.columns[:3]) == ["job", "data", "data.dim"]
    assert {"seed", "model.depth", "model.width", "train.progress"} <= set(index.columns)
    assert index["seed"].tolist() == [0, 1, 0, 1] and index["model.depth"].tolist() == [2, 2, 0, 0]
    assert index["train.progress"].tolist() == [False] * 4
    assert index.columns[-1] == "dir" and index["dir"].tolist() == [str(sweep_dir / str(i)) for i in range(4)]
    # seeds give independent runs
    done = index[index["status"] == "completed"]
    assert done["final_train_loss"].nunique() == 2
    # Hydra's per-job start-up stays small for jobs in the same process (not a timing test: a loose bound)
    assert done["startup_seconds"].iloc[1] < 5

    # rebuilt from the directories alone: the same table
    (sweep_dir / "sweep.parquet").unlink()
    assert sweep_index.main([str(sweep_dir)]) == 0
    assert "sweep: 4 jobs, 2 completed, 2 failed" in capsys.readouterr().out
    pd.testing.assert_frame_equal(sweep_index.read_index(sweep_dir), index)
    # a deleted job disappears from the rebuilt index
    shutil.rmtree(sweep_dir / "1")
    sweep_index.main([str(sweep_dir)])
    assert sweep_index.read_index(sweep_dir)["job"].tolist() == [0, 2, 3]


@pytest.mark.slow
def test_joblib_launcher(tmp_path, monkeypatch, capfd):
    code, sweep_dir = run_sweep(
        tmp_path, monkeypatch, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model.depth=2,0"
    )
    out = capfd.readouterr().out
    check_failed_depth_sweep(code, sweep_dir, out, jobs=2)
    threads = max(1, sweep.available_cores() // 2)
    assert f"joblib launcher, 2 jobs at a time, torch threads per job: {threads}" in out


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path, monkeypatch, capsys):
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, "hydra/launcher=submitit_local", "model.depth=2,0")
    check_failed_depth_sweep(code, sweep_dir, capsys.readouterr().out, jobs=2)
    assert (sweep_dir / ".submitit").is_dir()


def test_failures_outside_config_checks_and_divergence(tmp_path, monkeypatch, capsys):
    """A crash while building the model is recorded as failed; a diverged run is not a failure."""
    from initlab.lab import train

    build_model = train.build_model

    def crash_at_depth_3(n_features, n_classes, model, act):
        if model.depth == 3:
            raise RuntimeError("boom")
        return build_model(n_features, n_classes, model, act)

    monkeypatch.setattr(train, "build_model", crash_at_depth_3)  # basic launcher: jobs run in this process
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, "model.depth=2,3")
    assert code == 1
    index = sweep_index.read_index(sweep_dir)
    assert index["status"].tolist() == ["completed", "failed"]
    assert index["error"].iloc[1] == "RuntimeError: boom"
    assert "sweep: 2 jobs, 1 completed, 1 failed" in capsys.readouterr().out

    code, sweep_dir = run_sweep(tmp_path / "b", monkeypatch, "act=linear", "optim.lr=0.01,1e10")
    assert code == 0  # diverged jobs do not make the sweep fail
    index = sweep_index.read_index(sweep_dir)
    assert index["status"].tolist() == ["completed", "diverged"]
    assert index["diverged_at"].notna().tolist() == [False, True]
    assert "sweep: 2 jobs, 1 completed, 1 diverged" in capsys.readouterr().out


def test_ctrl_c_stops_the_sweep_and_indexes_what_ran(tmp_path, monkeypatch, capsys):
    """Ctrl-C during job 1 of 3: job 0 is complete, job 1 interrupted, job 2 never starts; exit 130."""
    from initlab.lab import train

    build_model = train.build_model

    def ctrl_c_at_depth_3(n_features, n_classes, model, act):
        if model.depth == 3:
            raise KeyboardInterrupt
        return build_model(n_features, n_classes, model, act)

    monkeypatch.setattr(train, "build_model", ctrl_c_at_depth_3)
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, "model.depth=2,3,4")
    assert code == 130
    index = sweep_index.read_index(sweep_dir)
    assert index["status"].tolist() == ["completed", "interrupted"]
    assert f"indexed in {sweep_dir / 'sweep.parquet'}" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_preset_carries_its_sweep(tmp_path, monkeypatch, capsys):
    presets = tmp_path / "conf" / "experiment"
    presets.mkdir(parents=True)
    (presets / "tiny_sweep.yaml").write_text(
        "# @package _global_\n"
        "# A tiny comparison: 2 inits x 2 activations.\n"
        "train: {batch_size: 5}\n"
        "hydra:\n"
        "  sweeper:\n"
        "    params:\n"
        "      init: standard,xavier\n"
        "      act: tanh,softsign\n"
    )
    code, sweep_dir = run_sweep(
        tmp_path,
        monkeypatch,
        "experiment=tiny_sweep",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "seed=0,1",
        "train.progress=true",
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "sweep: 8 jobs, 8 completed" in captured.out
    bars = captured.err  # each job's progress bar names what the sweep varies
    assert "job 0: init=standard act=tanh seed=0: 100%" in bars
    assert "job 7: init=xavier act=softsign seed=1: 100%" in bars
    index = sweep_index.read_index(sweep_dir)
    index = index[index["seed"] == 0]
    assert index[["init", "act"]].values.tolist() == [
        ["standard", "tanh"],
        ["standard", "softsign"],
        ["xavier", "tanh"],
        ["xavier", "softsign"],
    ]
    assert (index["experiment"] == "tiny_sweep").all() and (index["status"] == "completed").all()
    config = OmegaConf.load(Path(index["dir"].iloc[0]) / ".hydra" / "config.yaml")
    assert config.train.batch_size == 5


def write_job(sweep_dir: Path, name: str, overrides: list[str], summary: dict | None) -> None:
    (sweep_dir / name / ".hydra").mkdir(parents=True)
    (sweep_dir / name / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    if summary is not None:
        (sweep_dir / name / "summary.json").write_text(json.dumps(summary))


def test_index_of_unfinished_and_mixed_jobs(tmp_path, capsys):
    write_job(tmp_path, "0", ["x=true", "init=xavier"], {"status": "completed", "final_test_accuracy": 0.5})
    write_job(tmp_path, "1", ["x=2", "init=xavier"], {"status": "running", "steps_done": 3})
    write_job(tmp_path, "10", ["x=null", "y=a"], None)
    (tmp_path / ".submitit" / "123").mkdir(parents=True)
    assert sweep_index.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sweep: 3 jobs, 1 completed, 1 running, 1 missing" in out
    assert "  job 1 (x=2 init=xavier y=null): running: no error recorded" in out
    assert "  job 10 (x=null init=null y=a): missing: no summary.json" in out
    index = sweep_index.read_index(tmp_path)
    assert index["job"].tolist() == [0, 1, 10]
    assert index["x"].tolist()[:2] == ["True", "2"]  # true and 2 in one column: kept as text
    assert index["x"].isna().tolist() == [False, False, True]
    assert index["y"].isna().tolist() == [True, True, False]
    assert index["status"].tolist() == ["completed", "running", "missing"]
    assert sweep_index.failures(index)["job"].tolist() == [1, 10]


def test_sweep_index_command_errors(tmp_path, capsys):
    """Not a sweep directory: one line, exit 2, and no sweep.parquet written into it."""
    run_dir = tmp_path / "run"
    write_job(run_dir.parent, run_dir.name, ["seed=0"], {"status": "completed"})
    cases = {
        tmp_path / "nope": "is not a directory",
        tmp_path / "empty": "holds no job directories (with .hydra/overrides.yaml)",
        run_dir: "is a run directory, not a sweep directory",
    }
    (tmp_path / "empty").mkdir()
    for path, why in cases.items():
        assert cli.main(["sweep-index", str(path)]) == 2
        err = capsys.readouterr().err
        expected = "expected a sweep directory (outputs/multirun/DATE/TIME) holding job directories"
        assert err == f"initlab: error: {path} {why}: {expected}\n"
        assert not (path / "sweep.parquet").exists()


def test_corrupt_jobs_are_listed_with_their_directory(tmp_path, capsys):
    write_job(tmp_path, "0", ["seed=0"], {"status": "completed"})
    write_job(tmp_path, "odd", ["seed=1"], None)  # no job number anywhere
    write_job(tmp_path, "2", ["seed=2"], {"status": "completed"})
    (tmp_path / "2" / ".hydra" / "hydra.yaml").write_text("hydra: [unclosed\n")  # corrupt YAML
    assert cli.main(["sweep-index", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sweep: 3 jobs, 1 completed, 2 missing" in out
    assert "  job in odd/ (seed=1): missing: no summary.json" in out
    assert "  job in 2/ (seed=2): missing: unreadable .hydra files: ParserError" in out


def test_threads_per_job():
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    assert sweep.threads_per_job({**joblib, "n_jobs": 2}, cores=2) == 1
    assert sweep.threads_per_job({**joblib, "n_jobs": 2}, cores=8) == 4
    assert sweep.threads_per_job({**joblib, "n_jobs": -1}, cores=8) == 1
    assert sweep.threads_per_job({**joblib, "n_jobs": -2}, cores=8) == 1
    assert sweep.threads_per_job({**joblib, "n_jobs": 16}, cores=8) == 1
    submitit = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}
    assert sweep.threads_per_job({**submitit, "cpus_per_task": 3}) == 3
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert sweep.threads_per_job(basic) is None


@pytest.mark.parametrize(
    ("name", "schema", "ours"),
    [
        ("joblib", "hydra_joblib_launcher.config:JobLibLauncherConf", {"n_jobs": -1}),
        ("submitit_local", "hydra_submitit_launcher.config:LocalQueueConf", {"timeout_min": 1440}),
        ("submitit_slurm", "hydra_submitit_launcher.config:SlurmQueueConf", {"cpus_per_task": 2}),
    ],
)
def test_launcher_configs(name, schema, ours):
    """`hydra/launcher=NAME` picks conf/hydra/launcher/NAME.yaml, which lists every field of the plugin's."""
    module, cls = schema.split(":")
    plugin_fields = {f.name for f in fields(getattr(importlib.import_module(f"hydra_plugins.{module}"), cls))}
    assert plugin_fields <= set(OmegaConf.load(config_dir() / "hydra" / "launcher" / f"{name}.yaml"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # ahead of initlab's filter: Hydra's warning says ours was loaded
        launcher = compose_launcher(name)
    assert any("validated against ConfigStore schema" in str(w.message) for w in caught)
    assert {k: launcher[k] for k in ours} == ours
    assert set(launcher) == plugin_fields
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep.silence_launcher_schema_warning()
        compose_launcher(name)  # and initlab hides that warning


def compose_launcher(name: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(config_dir()), version_base=None):
        return compose("config", [f"hydra/launcher={name}"], return_hydra_config=True).hydra.launcher


def reproduce(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``scripts/reproduce.sh nosuch --quick ARGS`` in ``tmp_path`` after a previous result was left there."""
    previous = tmp_path / "outputs" / "reproduce" / "nosuch_quick"
    previous.mkdir(parents=True)
    (previous / "claims.md").write_text("earlier result\n")
    script = Path(__file__).parents[1] / "scripts" / "reproduce.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", str(script), "nosuch", "--quick", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_reproduce_script_refuses_to_replace_a_result(tmp_path):
    proc = reproduce(tmp_path)
    assert proc.returncode == 2 and "outputs/reproduce/nosuch_quick holds a previous result" in proc.stderr
    assert (tmp_path / "outputs/reproduce/nosuch_quick/claims.md").read_text() == "earlier result\n"


@pytest.mark.slow
def test_reproduce_script_force_moves_the_result_aside(tmp_path):
    proc = reproduce(tmp_path, "--force", "hydra/launcher=nosuch")  # the sweep then fails at once
    assert proc.returncode == 1
    (aside,) = (tmp_path / "outputs" / "reproduce").glob("nosuch_quick.old-*")
    assert (aside / "claims.md").read_text() == "earlier result\n"
    assert "previous result moved to" in proc.stdout


def test_reproduce_all_runs_every_preset_once(tmp_path):
    """``all`` reads the names from ``initlab list --names``: each preset once, no words of a description."""
    script = Path(__file__).parents[1] / "scripts" / "reproduce.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", str(script), "all", "--quick", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    presets = sorted(p.stem for p in (config_dir() / "experiment").glob("*_quick.yaml"))
    assert proc.returncode == 0 and sorted(proc.stdout.split()) == presets and len(presets) >= 15
    assert not (tmp_path / "outputs").exists()
