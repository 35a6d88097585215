"""A killed sweep leaves nothing behind: its job processes end, no queued job starts, the index is right."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_DATA, TINY_RUN
from test_cli import cli_env, default_sigint

from initlab.runs import read_parquet, read_summary
from initlab.sweep import index as sweep_index
from initlab.sweep import lifeline


def session_processes(sid: int) -> list[int]:
    """Process ids (not zombies) in session ``sid``, from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
    ids=["SIGKILL", "SIGTERM", "SIGTERM-group", "ctrl-c"],
)
def test_killed_joblib_sweep_leaves_nothing_running(tmp_path: Path, signum: int, group: bool) -> None:
    """SIGKILL or SIGTERM of the launcher, SIGTERM of the whole process group (`kill -- -PGID`, `timeout`), or
    Ctrl-C (SIGINT to the group) while 2 of 3 jobs train: within seconds no process is left, job 2 never
    starts, and the index says `interrupted`."""
    sweep_dir = tmp_path / "sweep"
    args = [*TINY_RUN, *TINY_DATA, "probe=off", "train.steps=100000000", "train.eval_every=20"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "initlab", "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        + [*args, "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the launcher and everything it starts share the session proc.pid
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 90
        while len(list(sweep_dir.glob("*/metrics.parquet*"))) < 2:  # both workers train
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep did not start"
            time.sleep(0.2)
        time.sleep(1.0)
        assert len(session_processes(proc.pid)) >= 3  # launcher, 2 workers (and loky's trackers)
        signalled_at = time.monotonic()
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        proc.wait(timeout=30)
        killed_at = time.monotonic()
        assert killed_at - signalled_at < 15  # the launcher itself ends promptly
        while session_processes(proc.pid) and time.monotonic() < killed_at + 10:
            time.sleep(0.1)
        assert session_processes(proc.pid) == [], "processes of the sweep outlived it by 10 s"
    finally:
        for pid in session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
    # Jobs 0 and 1 were training: interrupted, with their logs; job 2 never started.
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    index = sweep_index.read_index(sweep_dir)
    assert index["job"].tolist() == [0, 1]
    assert index["status"].tolist() == ["interrupted", "interrupted"]
    if signum != signal.SIGINT:  # (on Ctrl-C, joblib may kill a worker before it records its status)
        assert index["error"].isna().all()  # recorded by the jobs themselves, not guessed from a dead pid
        assert (index["steps_done"] > 0).all()
    for job in ("0", "1"):  # the logs are kept (as parts, if the process was killed before closing them)
        metrics = read_parquet(sweep_dir / job / "metrics.parquet")
        assert len(metrics) >= 2
        if signum != signal.SIGINT:
            assert metrics.step.max() <= read_summary(sweep_dir / job)["steps_done"]


def test_index_lists_a_run_killed_hard_as_interrupted(tmp_path: Path) -> None:
    """A ``running`` summary whose process is gone (SIGKILL, power cut) is ``interrupted`` in the index."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for job, pid in (("0", dead.pid), ("1", os.getpid())):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        summary = {"status": "running", "steps_done": 5, "pid": pid, "host": os.uname().nodename}
        (tmp_path / job / "summary.json").write_text(json.dumps(summary))
    index = sweep_index.build_index(tmp_path)
    assert index["status"].tolist() == ["interrupted", "running"]  # this test's process still runs
    assert f"({dead.pid}) ended without a status" in index["error"].iloc[0]


def test_process_alive_sees_zombies_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while lifeline.process_alive(child.pid):  # exited but not reaped yet: a zombie
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert child.poll() == 0  # reaped only now
    assert lifeline.process_alive(os.getpid())
