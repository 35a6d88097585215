"""Benchmark: the same 8-job sweep with Hydra's basic launcher (one job after another) and with joblib.

    python scripts/bench_sweep.py [--steps 6000] [--workers 2] [--serial-threads 1] [--keep]

Both sweeps run inside this process through ``initlab.cli.main`` (so Python and torch start-up are paid
once, as in a real ``initlab run -m``); the joblib workers are fresh processes and pay their own start-up.
Prints the wall time of each sweep, their ratio, and the per-job overhead: Hydra's share (sweep wall time
divided by jobs, minus the mean time inside ``train()``) and ``startup_seconds`` from each summary.json
(time from the start of ``train()`` to its first step: data, model, init, first evaluation). The first
job of each process also pays one-off imports (torch builds its first optimizer: ~1.5 s), hence "max".

The serial baseline trains with ``--serial-threads`` torch threads (default 1: with the small networks
used here a second thread does not help, and on a busy machine it makes runs much slower); the joblib jobs
get ``cores // workers`` threads from ``initlab.sweep.callback.threads_per_job``.
Choose ``--steps`` so that each
job trains for several seconds, otherwise worker start-up (a few seconds: importing torch) dominates.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from initlab import cli
from initlab.sweep.callback import available_cores
from initlab.sweep.index import read_index

SWEEP = ["init=xavier,standard", "seed=0,1,2,3"]  # 8 jobs


def job_overrides(steps: int) -> list[str]:
    """A small but not trivial job: a 5x256 MLP on 64-dimensional Gaussian data, no probes."""
    return [
        "data=gaussian",
        "data.dim=64",
        "data.n_train=4000",
        "data.n_test=1000",
        "model.depth=5",
        "model.width=256",
        f"train.steps={steps}",
        f"train.eval_every={max(1, steps // 4)}",
        "train.eval_examples=1000",
        "train.progress=false",
        "probe=off",
    ]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (joblib workers, once shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_sweep(sweep_dir: Path, overrides: list[str]) -> tuple[float, float, pd.DataFrame]:
    """Run ``initlab run -m`` in this process; returns (wall seconds, CPU seconds, sweep index)."""
    from joblib.externals.loky import get_reusable_executor

    started, cpu_before = time.perf_counter(), cpu_seconds()
    code = cli.main(["run", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"])
    wall = time.perf_counter() - started
    get_reusable_executor().shutdown(wait=True)  # so that the workers' CPU time is counted
    cpu = cpu_seconds() - cpu_before
    index = read_index(sweep_dir)
    if code != 0 or not (index["status"] == "completed").all():
        table = index[["job", "status", "error"]]
        raise SystemExit(f"bench: sweep in {sweep_dir} did not complete:\n{table}")
    return wall, cpu, index


def report(name: str, wall: float, cpu: float, index: pd.DataFrame, serial: bool) -> None:
    """One line per sweep; for the serial one, also Hydra's own time per job (jobs share the process)."""
    n = len(index)
    inside, startup = index["wall_seconds"], index["startup_seconds"]
    line = (
        f"{name:<7} {wall:6.1f} s for {n} jobs, {cpu:6.1f} CPU s ({cpu / wall:.2f} cores busy) | "
        f"train() per job: mean {inside.mean():.2f} s | "
        f"startup_seconds: median {statistics.median(startup):.3f} s, max {startup.max():.2f} s"
    )
    if serial:
        hydra_share = wall / n - inside.mean()
        line += (
            f" | Hydra per job (wall/jobs - train): {hydra_share:.3f} s"
            f" | job start -> first step: {hydra_share + statistics.median(startup):.3f} s"
        )
    print(line)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--steps", type=int, default=6000, help="training steps per job (default 6000, ~8 s)")
    parser.add_argument("--workers", type=int, default=2, help="joblib workers (default 2)")
    parser.add_argument(
        "--serial-threads", type=int, default=1, help="torch threads of the serial sweep (0: torch's default)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the sweep directories")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="initlab-bench-"))
    overrides = [*job_overrides(args.steps), *SWEEP]
    if args.serial_threads:
        torch.set_num_threads(args.serial_threads)
    print(
        f"bench: 8 jobs ({' '.join(SWEEP)}), {args.steps} steps each, {available_cores()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; "
        f"serial: {torch.get_num_threads()} torch thread(s); joblib: {args.workers} workers"
    )
    try:
        serial_wall, serial_cpu, serial = run_sweep(root / "basic", overrides)
        joblib_overrides = [*overrides, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}"]
        joblib_wall, joblib_cpu, parallel = run_sweep(root / "joblib", joblib_overrides)
        print()
        report("basic", serial_wall, serial_cpu, serial, serial=True)
        report("joblib", joblib_wall, joblib_cpu, parallel, serial=False)
        diff = (serial["final_test_loss"] - parallel["final_test_loss"]).abs()
        print(f"same results under both launchers: {bool((diff == 0).all())} (max |diff| {diff.max():.3g})")
        print(
            f"speed-up joblib/{args.workers} workers vs basic: {serial_wall / joblib_wall:.2f}x (wall time)"
        )
        # On a machine busy with other work the wall-time ratio says little (the kernel shares the cores
        # between sessions); this one assumes every worker gets a whole core, as on an idle machine.
        ideal = serial_cpu / (joblib_cpu / args.workers)
        print(
            f"speed-up if each worker had a core to itself (CPU s: basic / (joblib / workers)): {ideal:.2f}x"
        )
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share the cores)")
    finally:
        if args.keep:
            print(f"sweep directories kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
