"""Cost of the probes and of the thread setting, as ratios measured side by side in this one run.

    python scripts/bench_probes.py [--repeats 2] [--steps 1500] [--default-steps 10000] [--conv-steps 300]
                                   [--user-steps 200] [--threads-steps 300] [--zoo-steps 60]
                                   [--rows default,every,he_conv,api,resnet,transformer,zoo_log,threads]
                                   [overrides ...]

Rows (each is one function below, ``ROWS`` maps its name to it; add a row by adding a function):

* ``default``  the default probe schedule vs probes off, on the default run's ``--default-steps`` (its
  ~30 probed steps do not depend on the run's length, so a shorter run would overstate their cost);
* ``every``    probes on every step (``probe=every``) vs probes off;
* ``he_conv``  the same on the 10-layer conv net of ``experiment=he_conv`` (``--conv-steps``);
* ``api``      a user's own training loop (``UserNet`` of ``scripts/bench_probe_api.py``: residual conv
  net, shared in-place ReLU, batch norm) probed on every step through ``initlab.probe(model, dir,
  every=1)`` vs the same loop without a probe (``--user-steps``);
* ``resnet``   a ResNet-style net of torchvision BasicBlocks (``out += identity``, shared in-place ReLU,
  BatchNorm; ``scripts/bench_zoo.py``) probed on every step vs no probe (``--zoo-steps``);
* ``transformer`` the same for two ``nn.TransformerEncoderLayer`` (attention, GELU module, LayerNorm) on an
  embedding;
* ``zoo_log``  the transformer on the default (log) schedule vs no probe, over ``--zoo-steps`` x 10 steps;
* ``threads``  ``train.threads`` at its default vs ``train.threads=2``, both while one other process
  keeps a core busy (what a shared machine looks like).

Each variant of a row runs ``--repeats`` times, interleaved with its baseline (base, variant, base, ...),
and the fastest training-loop time of each is compared (loop = wall time minus start-up, as recorded in
summary.json; the user loop's own wall time), which damps the noise of other processes; both sides see
the same machine. Two columns less sensitive to other processes come with it: the ratio of CPU times of
the runs, and the probe's own CPU time (inside ``Probe.record`` and ``Probe.close``) added to the base
run's. Extra arguments are Hydra overrides applied to every ``initlab run`` (default: the default run,
shortened to ``--steps``; ``--threads-steps`` for the threads row, whose 2-thread side is slow on a busy
machine).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench_probe_api import user_loop  # (scripts/ is on the path of a script run from it)
from bench_zoo import zoo_loop
from hydra import compose, initialize_config_dir

import initlab.lab.train as train_module
from initlab.config import config_dir
from initlab.lab.data import load_data
from initlab.lab.train import train
from initlab.probing.probes import Probe

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


class Probed:
    """CPU seconds spent inside the probe's statistics and logging (``Probe.record`` and ``Probe.close``)."""

    seconds = 0.0

    @classmethod
    def install(cls) -> None:
        for name in ("record", "close"):
            method = getattr(Probe, name)

            def timed(*args: Any, _method: Callable = method, **kwargs: Any) -> Any:
                start = time.process_time()
                try:
                    return _method(*args, **kwargs)
                finally:
                    cls.seconds += time.process_time() - start

            setattr(Probe, name, timed)


Times = tuple[float, float, float]  # loop wall seconds, loop CPU seconds, CPU seconds in the probe


class LoopStart:
    """CPU time when the training loop (``initlab.lab.train._loop``) of the current run began."""

    cpu = 0.0

    @classmethod
    def install(cls) -> None:
        loop = train_module._loop

        def timed(*args: Any, **kwargs: Any) -> Any:
            cls.cpu = time.process_time()
            return loop(*args, **kwargs)

        train_module._loop = timed


def run_times(overrides: list[str], run_dir: Path, context: Callable[[], Any] | None = None) -> Times:
    """One run: its training-loop wall time (wall time minus start-up), the CPU time from the loop's start
    to the run's end (files closed), the probe's CPU time."""
    cfg = compose("config", overrides=["train.progress=false", *overrides])
    Probed.seconds = 0.0
    if context is None:
        summary = train(cfg, run_dir)
    else:
        with context():
            summary = train(cfg, run_dir)
    cpu = time.process_time() - LoopStart.cpu
    return summary["wall_seconds"] - summary["startup_seconds"], cpu, Probed.seconds


def compare(
    base: Variant, variant: Variant, common: list[str], repeats: int, tmp: Path
) -> tuple[Times, Times]:
    """Fastest times of ``base`` and ``variant`` runs of ``initlab run`` (``repeats`` interleaved runs)."""
    sides = [
        lambda d, extra=extra, context=context: run_times([*common, *extra], d, context)
        for extra, context in (base, variant)
    ]
    return fastest(sides, repeats, tmp)


def fastest(sides: list[Callable[[Path], Times]], repeats: int, tmp: Path) -> tuple[Times, Times]:
    """The fastest times of each side (each column on its own), ``repeats`` interleaved runs each."""
    best = [(math.inf,) * 3, (math.inf,) * 3]
    for rep in range(repeats):
        for side, run in enumerate(sides):
            times = run(tmp / f"{time.monotonic_ns()}-{rep}-{side}")
            best[side] = tuple(min(a, b) for a, b in zip(best[side], times, strict=True))
    return best[0], best[1]  # type: ignore[return-value]


Row = tuple[str, Times, Times]  # label, base times, variant times


def row_default(common: list[str], repeats: int, tmp: Path) -> Row:
    common = [*common, f"train.steps={ARGS.default_steps}", f"train.eval_every={ARGS.default_steps // 20}"]
    return (
        "default schedule vs probes off",
        *compare((["probe=off"], None), (["probe=default"], None), common, repeats, tmp),
    )


def row_every(common: list[str], repeats: int, tmp: Path) -> Row:
    return (
        "every step vs probes off",
        *compare((["probe=off"], None), (["probe=every"], None), common, repeats, tmp),
    )


def row_he_conv(common: list[str], repeats: int, tmp: Path) -> Row:
    steps = ARGS.conv_steps
    common = [*common, "experiment=he_conv", f"train.steps={steps}", f"train.eval_every={steps}"]
    return (
        "he_conv: every step vs probes off",
        *compare((["probe=off"], None), (["probe=every"], None), common, repeats, tmp),
    )


def user_times(run_dir: Path | None) -> Times:
    """The user loop of ``--user-steps`` steps: its wall time, CPU time, and the probe's CPU time."""
    Probed.seconds = 0.0
    cpu = time.process_time()
    wall = user_loop(ARGS.user_steps, run_dir, every=1)
    return wall, time.process_time() - cpu, Probed.seconds


def row_api(common: list[str], repeats: int, tmp: Path) -> Row:
    base, variant = fastest([lambda d: user_times(None), user_times], repeats, tmp)
    return "initlab.probe every step vs no probe", base, variant


def zoo_times(name: str, steps: int, run_dir: Path | None, **schedule: object) -> Times:
    """A :mod:`bench_zoo` loop: its wall time, CPU time, and the probe's CPU time."""
    Probed.seconds = 0.0
    cpu = time.process_time()
    wall = zoo_loop(name, steps, run_dir, **schedule)
    return wall, time.process_time() - cpu, Probed.seconds


def row_resnet(common: list[str], repeats: int, tmp: Path) -> Row:
    n = ARGS.zoo_steps
    sides = [lambda d: zoo_times("resnet", n, None), lambda d: zoo_times("resnet", n, d, every=1)]
    base, variant = fastest(sides, repeats, tmp)
    return "ResNet blocks: every step vs no probe", base, variant


def row_transformer(common: list[str], repeats: int, tmp: Path) -> Row:
    n = ARGS.zoo_steps
    sides = [lambda d: zoo_times("transformer", n, None), lambda d: zoo_times("transformer", n, d, every=1)]
    base, variant = fastest(sides, repeats, tmp)
    return "transformer: every step vs no probe", base, variant


def row_zoo_log(common: list[str], repeats: int, tmp: Path) -> Row:
    n = 10 * ARGS.zoo_steps
    sides = [
        lambda d: zoo_times("transformer", n, None),
        lambda d: zoo_times("transformer", n, d, schedule="log", total_steps=n),
    ]
    base, variant = fastest(sides, repeats, tmp)
    return "transformer: log schedule vs no probe", base, variant


def row_threads(common: list[str], repeats: int, tmp: Path) -> Row:
    """2 threads (the base) vs the default thread setting, one competing process running in both."""
    common = [*common, f"train.steps={ARGS.threads_steps}", f"train.eval_every={ARGS.threads_steps}"]
    two, default = (["probe=off", "train.threads=2"], competing_process), (["probe=off"], competing_process)
    base, variant = compare(two, default, common, repeats, tmp)
    return "threads default vs 2, busy machine", base, variant


ROWS: dict[str, Callable[[list[str], int, Path], Row]] = {
    "default": row_default,
    "every": row_every,
    "he_conv": row_he_conv,
    "api": row_api,
    "resnet": row_resnet,
    "transformer": row_transformer,
    "zoo_log": row_zoo_log,
    "threads": row_threads,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--default-steps", type=int, default=10_000)
    parser.add_argument("--conv-steps", type=int, default=300)
    parser.add_argument("--user-steps", type=int, default=200)
    parser.add_argument("--threads-steps", type=int, default=300)
    parser.add_argument("--zoo-steps", type=int, default=60)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {','.join(ROWS)} to run")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    ARGS.__dict__.update(vars(args))
    common = [f"train.steps={args.steps}", f"train.eval_every={args.steps}", *args.overrides]
    results: list[Row] = []
    Probed.install()
    LoopStart.install()
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base=None),
        tempfile.TemporaryDirectory() as tmp,
    ):
        load_data(compose("config", overrides=args.overrides).data)  # generated (and cached) before timing
        run_times([*args.overrides, "train.steps=3", "probe=every"], Path(tmp) / "warm-up")  # first calls
        if "he_conv" in args.rows:
            conv = [*args.overrides, "experiment=he_conv", "train.steps=3", "probe=every"]
            run_times(conv, Path(tmp) / "warm-up-conv")
        if "api" in args.rows:
            user_loop(3, Path(tmp) / "warm-up-user", every=1)
        for name in ("resnet", "transformer"):
            if name in args.rows:
                zoo_loop(name, 3, Path(tmp) / f"warm-up-{name}", every=1)
        for name in args.rows.split(","):
            label, base, variant = ROWS[name](common, args.repeats, Path(tmp))
            results.append((label, base, variant))
            print(f"  {label}: loop {base[0]:.2f} s -> {variant[0]:.2f} s", flush=True)
    print(f"\nfastest of {args.repeats} interleaved runs each; loop = wall time minus start-up;")
    print("cpu = CPU time from the loop's start to the run's end (files closed);")
    print("probe = 1 + CPU time inside the probe / the base run's cpu")
    print(f"{'row':<38} {'base s':>7} {'variant s':>9} {'loop':>7} {'cpu':>7} {'probe':>7}")
    for label, (b_loop, b_cpu, _), (v_loop, v_cpu, v_probe) in results:
        probe = f"{1 + v_probe / b_cpu:6.3f}x" if v_probe else f"{'-':>7}"
        print(
            f"{label:<38} {b_loop:7.2f} {v_loop:9.2f} {v_loop / b_loop:6.3f}x {v_cpu / b_cpu:6.3f}x {probe}"
        )


if __name__ == "__main__":
    main()
