"""Cost of the probes and of the thread setting, as ratios measured side by side in this one run.

    python scripts/bench_probes.py [--repeats 2] [--steps 1500] [--default-steps 10000] [--threads-steps 300]
                                   [--rows default,every,threads] [overrides ...]

Rows (each is one function below, ``ROWS`` maps its name to it; add a row by adding a function):

* ``default``  the default probe schedule vs probes off, on the default run's ``--default-steps`` (its
  ~30 probed steps do not depend on the run's length, so a shorter run would overstate their cost);
* ``every``    probes on every step (``probe=every``) vs probes off;
* ``threads``  ``train.threads`` at its default vs ``train.threads=2``, both while one other process
  keeps a core busy (what a shared machine looks like).

Each variant of a row runs ``--repeats`` times, interleaved with its baseline (base, variant, base, ...),
and the fastest training-loop time of each is compared (loop = wall time minus start-up, as recorded in
summary.json), which damps the noise of other processes; both sides see the same machine. Extra
arguments are Hydra overrides applied to every run (default: the default run, shortened to ``--steps``;
``--threads-steps`` for the threads row, whose 2-thread side is slow on a busy machine).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from initlab.config import config_dir
from initlab.train import train

ARGS = argparse.Namespace()  # the command line, read by the rows
Variant = tuple[list[str], Callable[[], Any] | None]  # overrides, and a context to run it in (or None)


def _spin(stop: Any) -> None:
    """A competing process: keeps one core busy until ``stop`` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x += 1


@contextmanager
def competing_process() -> Any:
    stop = mp.Event()
    proc = mp.Process(target=_spin, args=(stop,), daemon=True)
    proc.start()
    time.sleep(0.2)
    try:
        yield
    finally:
        stop.set()
        proc.join()


def loop_seconds(overrides: list[str], run_dir: Path, context: Callable[[], Any] | None = None) -> float:
    """Training-loop seconds of one run (wall time minus start-up)."""
    cfg = compose("config", overrides=["train.progress=false", *overrides])
    if context is None:
        summary = train(cfg, run_dir)
    else:
        with context():
            summary = train(cfg, run_dir)
    return summary["wall_seconds"] - summary["startup_seconds"]


def compare(
    base: Variant, variant: Variant, common: list[str], repeats: int, tmp: Path
) -> tuple[float, float]:
    """Fastest loop time of ``base`` and ``variant`` over ``repeats`` interleaved runs each."""
    best = [float("inf"), float("inf")]
    for rep in range(repeats):
        for side, (extra, context) in enumerate((base, variant)):
            seconds = loop_seconds([*common, *extra], tmp / f"{time.monotonic_ns()}-{rep}-{side}", context)
            best[side] = min(best[side], seconds)
    return best[0], best[1]


def row_default(common: list[str], repeats: int, tmp: Path) -> tuple[str, float, float]:
    common = [*common, f"train.steps={ARGS.default_steps}", f"train.eval_every={ARGS.default_steps // 20}"]
    return (
        "default schedule vs probes off",
        *compare((["probe=off"], None), (["probe=default"], None), common, repeats, tmp),
    )


def row_every(common: list[str], repeats: int, tmp: Path) -> tuple[str, float, float]:
    return (
        "every step vs probes off",
        *compare((["probe=off"], None), (["probe=every"], None), common, repeats, tmp),
    )


def row_threads(common: list[str], repeats: int, tmp: Path) -> tuple[str, float, float]:
    """2 threads (the base) vs the default thread setting, one competing process running in both."""
    common = [*common, f"train.steps={ARGS.threads_steps}", f"train.eval_every={ARGS.threads_steps}"]
    two, default = (["probe=off", "train.threads=2"], competing_process), (["probe=off"], competing_process)
    base, variant = compare(two, default, common, repeats, tmp)
    return "threads default vs 2, busy machine", base, variant


ROWS: dict[str, Callable[[list[str], int, Path], tuple[str, float, float]]] = {
    "default": row_default,
    "every": row_every,
    "threads": row_threads,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--default-steps", type=int, default=10_000)
    parser.add_argument("--threads-steps", type=int, default=300)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {','.join(ROWS)} to run")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    ARGS.__dict__.update(vars(args))
    common = [f"train.steps={args.steps}", f"train.eval_every={args.steps}", *args.overrides]
    results = []
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base=None),
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name in args.rows.split(","):
            label, base, variant = ROWS[name](common, args.repeats, Path(tmp))
            results.append((label, base, variant))
            print(f"  {label}: {base:.2f} s -> {variant:.2f} s", flush=True)
    print(f"\nfastest of {args.repeats} interleaved runs each, loop time (start-up excluded):")
    print(f"{'row':<40} {'base s':>8} {'variant s':>10} {'ratio':>7}")
    for label, base, variant in results:
        print(f"{label:<40} {base:8.2f} {variant:10.2f} {variant / base:6.3f}x")


if __name__ == "__main__":
    main()
