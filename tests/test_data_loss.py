"""Nothing lost, nothing mixed: every way of reusing a run or sweep directory ends in a fresh directory or
in a one-line refusal naming the directory and the way out (exit 2 / ``UserError``)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_DATA, TINY_RUN
from test_rundir import run as cli_run
from test_sweep import run_sweep
from torch import nn

import initlab
from initlab.errors import UserError
from initlab.lab import train as train_module
from initlab.runs import collect_runs, layout, load_run
from initlab.runs.layout import LOCK_FILE, SUMMARY_FIELDS, occupant
from initlab.runs.lock import DirectoryTaken, claim, claim_sweep
from initlab.sweep import index as sweep_index

TINY = [*TINY_DATA, *TINY_RUN, "probe=off"]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` with a hash of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def killed_hard(code: str, run_dir: Path, ready: str, timeout: float = 120.0) -> None:
    """Run ``code`` in a new Python process and SIGKILL it once ``run_dir/ready`` holds two log parts."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while len(list((run_dir / ready).glob("part-*.parquet"))) < 2:
            assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"no {ready} after {timeout} s"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()  # type: ignore[union-attr]


# --- initlab.run ----------------------------------------------------------------------------------------


def test_api_runs_started_in_the_same_second_get_distinct_directories(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    same_second = "hydra.run.dir=outputs/${now:%Y}"  # what the default does within one second
    runs = [initlab.run([*TINY, "train.steps=2", same_second, f"seed={s}"]) for s in (0, 1)]
    year = str(time.gmtime().tm_year)[:2]
    assert runs[0].path != runs[1].path and runs[1].path.name == runs[0].path.name + "_1"
    assert runs[0].path.name.startswith(year)
    assert [r.summary["seed"] for r in runs] == [0, 1] and [r.cfg("seed") for r in runs] == [0, 1]


@pytest.mark.slow
def test_api_run_over_a_hard_killed_run_is_refused_and_never_merged(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    killed_hard(
        f"""
        import initlab
        initlab.run({[*TINY, "train.steps=1000000", "train.eval_every=1"]!r}, run_dir={str(run_dir)!r})
        """,
        run_dir,
        "metrics.parquet.parts",
    )
    before = snapshot(run_dir)
    assert load_run(run_dir).metrics["step"].max() >= 0 and LOCK_FILE in before
    with pytest.raises(DirectoryTaken) as refused:
        initlab.run([*TINY, "train.steps=3"], run_dir=run_dir)
    message = str(refused.value)
    assert message.startswith(f"run_dir={run_dir} is not allowed: the directory holds a run that was killed")
    assert message.endswith("choose another run_dir, or pass overwrite=True to replace it")
    assert snapshot(run_dir) == before  # untouched

    run = initlab.run([*TINY, "train.steps=3"], run_dir=run_dir, overwrite=True)
    assert run.status == "completed" and run.summary["steps_done"] == 3
    assert run.metrics["step"].max() == 3 and not run.metrics.duplicated(["step", "split"]).any()
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [".hydra", "metrics.parquet", "summary.json", "theory.parquet"]


def test_api_run_into_a_finished_run_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    initlab.run([*TINY, "train.steps=2"], run_dir=run_dir)
    before = snapshot(run_dir)
    with pytest.raises(UserError, match=r"holds a finished run \(completed after 2 steps\); choose another"):
        initlab.run([*TINY, "train.steps=3"], run_dir=run_dir)
    assert snapshot(run_dir) == before


# --- initlab.probe ----------------------------------------------------------------------------------------


def probe_steps(model: nn.Module, run_dir: Path, steps: int, **options) -> None:
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3
    with initlab.probe(model, run_dir, every=1, **options) as probe:
        for step in range(steps):
            with probe.step(step):
                F.cross_entropy(model(x), y).backward()


@pytest.mark.slow
def test_probe_into_a_hard_killed_probe_run_is_refused_and_never_mixed(tmp_path: Path) -> None:
    run_dir = tmp_path / "mine"
    killed_hard(
        f"""
        import itertools, torch, torch.nn.functional as F, initlab
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        x, y = torch.randn(16, 6), torch.arange(16) % 3
        probe = initlab.probe(model, {str(run_dir)!r}, every=1)
        for step in itertools.count():
            with probe.step(step):
                F.cross_entropy(model(x), y).backward()
        """,
        run_dir,
        "layers.parquet.parts",
    )
    old = load_run(run_dir).layers
    assert set(old["name"]) == {"0", "2"} and old["step"].max() > 10
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(DirectoryTaken, match=f"run_dir={run_dir} is not allowed: the directory holds a run"):
        probe_steps(model, run_dir, 3)
    probe_steps(model, run_dir, 3, overwrite=True)
    run = load_run(run_dir)
    assert set(run.layers["name"]) == {"0", "2", "4"} and sorted(run.layers["step"].unique()) == [0, 1, 2]
    assert run.hists["edges"].notna().all() and run.summary["status"] == "completed"
    assert run.summary["kind"] == "probe" and run.summary["steps_done"] == 3


# --- initlab run (the command) ---------------------------------------------------------------------------


def test_a_crash_before_the_first_step_does_not_block_the_next_run(tmp_path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "chosen"
    build_model = train_module.build_model

    def crash(*args, **kwargs):
        raise RuntimeError("out of something")

    monkeypatch.setattr(train_module, "build_model", crash)
    with pytest.raises(RuntimeError, match="out of something"):
        cli_run(tmp_path, monkeypatch, f"hydra.run.dir={run_dir}")
    left = json.loads((run_dir / "summary.json").read_text())
    assert left["status"] == "failed" and left["steps_done"] == 0 and occupant(run_dir) is None
    monkeypatch.setattr(train_module, "build_model", build_model)
    assert cli_run(tmp_path, monkeypatch, f"hydra.run.dir={run_dir}", "seed=3") == 0
    assert load_run(run_dir).summary["status"] == "completed" and load_run(run_dir).cfg("seed") == 3
    # what the issue found: a directory holding only Hydra's .hydra/ is no run, and so not taken
    (tmp_path / "hydra_only" / ".hydra").mkdir(parents=True)
    (tmp_path / "hydra_only" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    assert occupant(tmp_path / "hydra_only") is None


def test_a_second_sweep_into_one_directory_needs_resume(tmp_path, monkeypatch, capsys) -> None:
    code, sweep_dir = run_sweep(tmp_path, monkeypatch, "seed=0,1,2", "train.steps=2")
    assert code == 0
    before = snapshot(sweep_dir)
    capsys.readouterr()
    code, _ = run_sweep(tmp_path, monkeypatch, "seed=5,6", "train.steps=2")
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and lines == [
        f"initlab: error: hydra.sweep.dir={sweep_dir} is not allowed: the directory holds an earlier sweep "
        "(3 job directories); add resume=true to continue it, or choose another hydra.sweep.dir"
    ]
    assert snapshot(sweep_dir) == before
    assert sweep_index.read_index(sweep_dir)["seed"].tolist() == [0, 1, 2]


def test_a_sweep_directory_with_a_live_job_is_refused_even_to_resume(tmp_path: Path) -> None:
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    held = claim(tmp_path / "0")
    live = rf"a sweep still running \(0: a run still in progress \(process {os.getpid()}\)\); wait for it"
    try:
        with pytest.raises(DirectoryTaken, match=live):
            claim_sweep(tmp_path, "hydra.sweep.dir", timestamped=False, resume=True)
    finally:
        held.release()
    assert claim_sweep(tmp_path, "hydra.sweep.dir", timestamped=False, resume=True) == tmp_path
    with pytest.raises(DirectoryTaken, match=r"an earlier sweep \(1 job directories\); add resume=true"):
        claim_sweep(tmp_path, "hydra.sweep.dir", timestamped=False, resume=False)


# --- two processes, one directory ----------------------------------------------------------------------

RACER = """
import sys, time
from pathlib import Path
from initlab.errors import UserError
from initlab.runs.write import RunWriter
run_dir, me = Path(sys.argv[1]), sys.argv[2]
(run_dir.parent / f"ready-{me}").touch()
while not (run_dir.parent / "go").exists():
    time.sleep(0.001)
try:
    writer = RunWriter.open(run_dir)
except UserError as exc:
    print("refused:", exc)
else:
    print("won")
    while not (run_dir.parent / "done").exists():
        time.sleep(0.01)
    writer.close("completed")
"""


@pytest.mark.slow
def test_processes_racing_for_one_directory_exactly_one_wins(tmp_path: Path) -> None:
    run_dir, n = tmp_path / "run", 6
    command = [sys.executable, "-c", RACER, str(run_dir)]
    racers = [subprocess.Popen([*command, str(i)], stdout=subprocess.PIPE, text=True) for i in range(n)]
    while len(list(tmp_path.glob("ready-*"))) < n:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 60
    while sum(r.poll() is not None for r in racers) < n - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "done").touch()
    outputs = [r.communicate(timeout=60)[0].strip() for r in racers]
    assert sorted(o.split(":")[0] for o in outputs) == ["refused"] * (n - 1) + ["won"], outputs
    for refusal in (o for o in outputs if o != "won"):
        assert refusal.startswith(f"refused: run_dir={run_dir} is not allowed: the directory holds a run")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert not (run_dir / LOCK_FILE).exists()


# --- one rule for every reader, one record for every writer ----------------------------------------------


def test_plot_and_load_sweep_see_the_same_runs(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    probe_steps(model, tmp_path / "probe", 2)  # no .hydra/overrides.yaml
    initlab.run([*TINY, "train.steps=2"], run_dir=tmp_path / "api")
    (tmp_path / "started" / ".hydra").mkdir(parents=True)  # a job whose process ended before it wrote
    (tmp_path / "started" / ".hydra" / "overrides.yaml").write_text("- seed=4\n")
    (tmp_path / "notes" / ".hydra").mkdir(parents=True)  # no run: .hydra/config.yaml alone
    (tmp_path / "notes" / ".hydra" / "config.yaml").write_text("seed: 0\n")

    runs = [r.path.name for r in collect_runs([tmp_path])]
    index = initlab.load_sweep(tmp_path)
    assert runs == ["api", "probe"]
    assert sorted(Path(d).name for d in index["dir"]) == ["api", "probe", "started"]
    assert index.set_index(index["dir"].map(lambda d: Path(d).name))["status"].to_dict() == {
        "api": "completed",
        "probe": "completed",
        "started": "missing",
    }
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        load_run(tmp_path / "notes")


def test_every_writer_writes_the_same_summary_fields(tmp_path: Path, make_cfg) -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    probe_steps(model, tmp_path / "probe", 2)
    train_module.train(make_cfg("probe=off", "train.steps=2"), tmp_path / "train")
    probe, trained = (layout.read_summary(tmp_path / name) for name in ("probe", "train"))
    # a probe adds what it saw: the parameter coverage and the probed layers
    assert list(probe) == [*SUMMARY_FIELDS, "param_coverage", "params_left_out", "probed_layers"]
    assert list(trained)[: len(SUMMARY_FIELDS)] == list(SUMMARY_FIELDS)
    assert (probe["kind"], trained["kind"]) == ("probe", "train")
    for summary in (probe, trained):
        assert summary["status"] == "completed" and summary["steps_done"] == 2
        assert summary["pid"] == os.getpid() and summary["host"] == os.uname().nodename
        assert summary["wall_seconds"] > 0 and summary["versions"]["torch"] == torch.__version__
    assert trained["final_test_accuracy"] is not None and probe["final_test_accuracy"] is None
    assert "train_prior_entropy" in trained and "theory_phase" in trained


def test_a_live_runs_summary_says_how_far_it_got(tmp_path: Path, make_cfg, monkeypatch) -> None:
    """Every evaluation rewrites summary.json (at most every CHECKPOINT_SECONDS; 0 here)."""
    from initlab.runs import write

    records = []
    write_summary = write.RunWriter.write_summary

    def spy(self) -> None:
        records.append((self.summary.status, self.summary.steps_done))
        write_summary(self)

    monkeypatch.setattr(write, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(write.RunWriter, "write_summary", spy)
    train_module.train(make_cfg("probe=off", "train.eval_every=5"), tmp_path / "run")
    running = [("running", s) for s in (0, 0, 5, 10, 15, 20)]  # claimed, then after each evaluation
    assert records == [*running, ("completed", 20)]


def test_a_run_never_hides_runs_below_its_directory(tmp_path: Path) -> None:
    """A run written into a folder of runs would hide them from every reader: the folder is taken."""
    initlab.run([*TINY, "train.steps=2"], run_dir=tmp_path / "nb" / "kaiming")
    with pytest.raises(DirectoryTaken, match=rf"run_dir={tmp_path / 'nb'} .*holds runs in its subdirector"):
        initlab.run([*TINY, "train.steps=2"], run_dir=tmp_path / "nb")
    assert [r.path.name for r in collect_runs([tmp_path])] == ["kaiming"]


def test_a_full_disk_while_merging_keeps_the_flushed_parts(tmp_path: Path, monkeypatch) -> None:
    """The merge of a log's parts fails (no space left): the parts stay readable, no half-written file."""
    import errno

    import pandas as pd
    import pyarrow.parquet as pq

    from initlab.runs.write import ParquetLog

    log = ParquetLog(tmp_path / "layers.parquet", max_rows=2)
    log.append([{"step": 0, "v": 1.0}, {"step": 1, "v": 2.0}])
    log.append([{"step": 2, "v": 3.0}, {"step": 3, "v": 4.0}])

    def full(self, table, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(OSError, match="No space"):
        log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.parquet.parts"]
    kept = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "layers.parquet.parts").iterdir()))
    assert kept["v"].tolist() == [1.0, 2.0, 3.0, 4.0]
