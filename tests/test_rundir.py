"""One run per run directory, and input refused before training: one line, exit 2, nothing left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import TINY_DATA, TINY_RUN

from initlab import cli
from initlab.errors import one_line_warnings
from initlab.runs import lock as rundir
from initlab.runs.layout import LOCK_FILE
from initlab.runs.lock import DirectoryTaken


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` with a hash of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> int:
    """``initlab run TINY overrides`` in this process (a traceback would fail the test as an exception)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["initlab"])  # cmd_run rewrites sys.argv for Hydra
    flags = [o for o in overrides if o.startswith("-")]  # (Hydra wants -m before the overrides)
    rest = [o for o in overrides if not o.startswith("-")]
    return cli.main(["run", *flags, *TINY_RUN, *TINY_DATA, "probe=off", *rest])


def test_second_run_into_a_finished_run_directory_is_refused(tmp_path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "run"
    assert run(tmp_path, monkeypatch, f"hydra.run.dir={run_dir}") == 0
    before = snapshot(run_dir)
    assert {"summary.json", "metrics.parquet", ".hydra/config.yaml"} <= set(before)
    assert LOCK_FILE not in before  # the lock goes when the run ends
    capsys.readouterr()

    assert run(tmp_path, monkeypatch, f"hydra.run.dir={run_dir}", "seed=1") == 2
    assert capsys.readouterr().err.strip() == (
        f"initlab: error: hydra.run.dir={run_dir} is not allowed: the directory holds a finished run "
        "(completed after 20 steps); choose another hydra.run.dir"
    )
    assert snapshot(run_dir) == before  # untouched, byte for byte


def test_live_and_killed_runs_keep_their_directory(tmp_path: Path) -> None:
    live, killed = tmp_path / "live", tmp_path / "killed"
    first = rundir.claim(live, "hydra.run.dir", timestamped=False)
    assert (live / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    still = rf"hydra.run.dir={live} .*a run still in progress \(process {os.getpid()}\)"
    with pytest.raises(DirectoryTaken, match=still):
        rundir.claim(live, "hydra.run.dir", timestamped=False)
    with pytest.raises(DirectoryTaken, match=still):  # not even with overwrite: it is live
        rundir.claim(live, "hydra.run.dir", overwrite=True)
    assert first.created == [live]

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed.mkdir()
    (killed / LOCK_FILE).write_text(f"{dead.pid}\n")
    with pytest.raises(DirectoryTaken, match=rf"a run that was killed \(process {dead.pid}\)"):
        rundir.claim(killed, "hydra.run.dir", timestamped=False)
    # an empty directory given explicitly is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rundir.claim(empty, "hydra.run.dir", timestamped=False).created == []


def test_timestamped_directories_of_runs_started_in_the_same_second_differ(tmp_path: Path) -> None:
    path = tmp_path / "outputs" / "runs" / "2026-01-01" / "12-00-00"
    claims = [rundir.claim(path, "hydra.run.dir", timestamped=True) for _ in range(3)]
    assert [c.path.name for c in claims] == ["12-00-00", "12-00-00_1", "12-00-00_2"]
    outputs = tmp_path / "outputs"
    assert claims[0].created == [outputs, outputs / "runs", outputs / "runs" / "2026-01-01", path]
    assert claims[1].created == [path.with_name("12-00-00_1")]


def test_discard_removes_only_what_the_run_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    claim = rundir.claim(path, "hydra.run.dir", timestamped=True)
    (path / ".hydra").mkdir()
    (path / "summary.json").write_text("{}")
    claim.discard()
    assert list(tmp_path.iterdir()) == []  # a/ was made for the run: gone too

    claim = rundir.claim(path, "hydra.run.dir", timestamped=True)
    other = rundir.claim(path, "hydra.run.dir", timestamped=True)  # a run started in the same second
    claim.discard()
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b_1"]  # the other run's directory stays
    assert other.path.is_dir()
    shutil.rmtree(tmp_path / "a")

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("user's file")
    claim = rundir.claim(mine, "hydra.run.dir", timestamped=False)
    (mine / "summary.json").write_text("{}")
    claim.discard()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


# --- refused before training: in this process (a traceback would fail the test as an exception) ----------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["hydra.run.dir=/proc/x"], "hydra.run.dir=/proc/x is not allowed: cannot create or write into it"),
        (["hydra.run.dir=/dev/null/x"], "hydra.run.dir=/dev/null/x is not allowed: cannot create or write"),
        (["-m", "hydra.sweep.dir=/proc/x"], "hydra.sweep.dir=/proc/x is not allowed: cannot create or write"),
        (
            ["model.norm=batch", "train.batch_size=1"],
            "model.norm=batch is not allowed with train.batch_size=1: expected train.batch_size >= 2",
        ),
        (
            ["model.norm=batch", "data.n_train=1"],  # not in the checks: torch refuses the first step
            "these options cannot train together: torch refused the first step: Expected more than 1 value",
        ),
        (["model.width=100000000"], "model.width=100000000 model.depth=2 is not allowed: 1e+16 parameters"),
        (
            ["act=foo"],
            "act=foo is not allowed: Could not find 'act/foo'; Available options in 'act': elu, gelu, leaky",
        ),
        (["foo=bar"], "Could not override 'foo'; To append to your config use +foo=bar"),
    ],
    ids=[
        "proc_dir",
        "file_as_dir",
        "proc_sweep_dir",
        "batchnorm_batch1",
        "torch_refuses",
        "too_large",
        "unknown_option",
        "unknown_key",
    ],
)
def test_refused_runs_exit_2_with_one_line_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], overrides, expected
) -> None:
    code = run(tmp_path, monkeypatch, *overrides)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initlab: error: ") and expected in lines[0], err
    assert list(tmp_path.iterdir()) == []  # no outputs/runs/DATE/TIME


def test_warnings_are_one_line() -> None:
    before = warnings.formatwarning
    try:
        one_line_warnings()  # what Python's showwarning prints through
        text = warnings.formatwarning(UserWarning("loss became\nnan"), UserWarning, "x.py", 3, "source()")
    finally:
        warnings.formatwarning = before
    assert text == "initlab: warning: loss became nan\n"


def test_runs_into_one_timestamped_directory_get_distinct_ones(tmp_path, monkeypatch, capsys) -> None:
    """Through `initlab run`: a directory from ${now:...} that is taken gets a suffix, never a failure."""
    timestamped = "hydra.run.dir=outputs/${now:%Y}"  # the same for both runs, like two runs in one second
    assert run(tmp_path, monkeypatch, timestamped, "seed=0") == 0
    assert run(tmp_path, monkeypatch, timestamped, "seed=1") == 0
    year = sorted((tmp_path / "outputs").iterdir())
    assert [p.name for p in year] == [year[0].name, f"{year[0].name}_1"]
    seeds = [yaml.safe_load((p / ".hydra" / "config.yaml").read_text())["seed"] for p in year]
    assert seeds == [0, 1]
    assert f"run directory {year[1]}" in capsys.readouterr().out
    recorded = yaml.safe_load((year[1] / ".hydra" / "hydra.yaml").read_text())["hydra"]["run"]["dir"]
    assert recorded.endswith("_1")


def test_the_callbacks_hand_the_claim_to_the_task_through_a_session(tmp_path: Path) -> None:
    """Two `initlab run` sessions (in one process here) for one hydra.run.dir: one claims, one is refused."""
    from omegaconf import OmegaConf

    from initlab.errors import AbortRun
    from initlab.sweep.callback import RunDirCallback
    from initlab.sweep.session import Session

    config = OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path / "run")}}})
    first, second = Session(), Session()
    RunDirCallback(first).on_run_start(config)
    assert first.claim is not None and first.claim.path == tmp_path / "run"
    with pytest.raises(AbortRun, match=r"hydra.run.dir=.*/run is not allowed: the directory holds a run st"):
        RunDirCallback(second).on_run_start(config)
    assert second.claim is None
    first.exit_code = 1
    assert first.end() == 1 and first.exit_code == 0  # the exit code is read once
    assert not (tmp_path / "run").exists()  # no task took the claim: the directory is given back
