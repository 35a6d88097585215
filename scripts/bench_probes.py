"""Cost of the probes: train the same model for the same steps with probes off, on the default schedule and
on every step, and print the time ratios measured side by side in this one run.

    python scripts/bench_probes.py [--repeats 2] [--variants off,default,every] [overrides ...]

Each variant runs ``--repeats`` times, interleaved (off, default, every, off, ...), and the fastest time of
each is compared, which damps noise from other processes. Extra arguments are Hydra overrides applied to
all three (default: the default ``initlab run`` config).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from initlab.config import config_dir
from initlab.train import train

VARIANTS = {"off": ["probe=off"], "default": ["probe=default"], "every": ["probe=every"]}
LABELS = {"default": "default schedule", "every": "every step"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="off,default,every", help="which of off,default,every to run")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    chosen = {name: VARIANTS[name] for name in ["off", *args.variants.split(",")] if name in VARIANTS}
    best: dict[str, float] = {}
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base=None),
        tempfile.TemporaryDirectory() as tmp,
    ):
        for rep in range(args.repeats):
            for name, extra in chosen.items():
                cfg = compose("config", overrides=[*args.overrides, "train.progress=false", *extra])
                start = time.perf_counter()
                summary = train(cfg, Path(tmp) / f"{rep}-{name.replace(' ', '_')}")
                elapsed = time.perf_counter() - start
                best[name] = min(best.get(name, float("inf")), elapsed)
                print(
                    f"  run {rep + 1}: {name:<17} {elapsed:7.2f} s  ({summary['steps_done']} steps)",
                    flush=True,
                )
    print(f"\nprobes off: {best['off']:.2f} s (fastest of {args.repeats})")
    for name in chosen:
        if name != "off":
            ratio = best[name] / best["off"]
            print(f"probes on, {LABELS[name]:<17}: {best[name]:7.2f} s   ratio {ratio:.3f}x")


if __name__ == "__main__":
    main()
