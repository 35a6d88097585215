"""Cost of the probes, as time ratios measured side by side in this one run.

    python scripts/bench_probe_api.py [--repeats 2] [--variants off,default,every] [--user-steps 600]
                                   [overrides ...]

Two benchmarks, each variant repeated ``--repeats`` times, interleaved (off, default, every, off, ...), and
the fastest time of each compared, which damps noise from other processes:

* ``initlab run``: the same config trained with probes off, on the default schedule and on every step.
  Extra arguments are Hydra overrides applied to all of them (default: the default ``initlab run`` config;
  ``experiment=he_conv`` trains the 10-layer conv net of the ``he_conv`` preset).
* ``initlab.probe``: a user's own training loop (a small residual conv net defined in this script, never
  seen by initlab) for ``--user-steps`` steps, without a probe and with ``initlab.probe(model, dir,
  schedule="log", total_steps=N)`` (``--user-steps 0`` skips it).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn

import initlab
from initlab.config import config_dir
from initlab.lab.train import train

VARIANTS = {"off": ["probe=off"], "default": ["probe=default"], "every": ["probe=every"]}
LABELS = {"off": "probes off", "default": "default schedule", "every": "every step"}


class UserNet(nn.Module):
    """A residual conv net as a user might write it: shared in-place ReLU, BatchNorm, functional pooling."""

    def __init__(self, channels: int = 32, blocks: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(blocks)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(blocks))
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.stem(x))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + self.relu(norm(conv(h)))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


def user_loop(steps: int, run_dir: Path | None, every: int | None = None) -> float:
    """Seconds to train :class:`UserNet` for ``steps`` SGD steps on random 16x16 images (probed if a dir:
    on the log schedule, or every ``every`` steps)."""
    torch.manual_seed(0)
    model = UserNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, 3, 16, 16, generator=gen), torch.randint(0, 10, (512,), generator=gen)
    start = time.perf_counter()
    schedule = {"schedule": "log"} if every is None else {"every": every}
    probe = initlab.probe(model, run_dir, total_steps=steps, **schedule) if run_dir else None
    for step in range(steps):
        idx = torch.randint(0, 512, (32,), generator=gen)
        with probe.step(step) if probe else torch.enable_grad():
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
        opt.step()
        opt.zero_grad()
        if probe:
            probe.log_metrics(step, split="train", loss=loss.item())
    if probe:
        probe.close()
    return time.perf_counter() - start


def fastest(jobs: dict[str, Callable[[int], float]], repeats: int, title: str) -> dict[str, float]:
    best: dict[str, float] = {}
    for rep in range(repeats):
        for name, job in jobs.items():
            elapsed = job(rep)
            best[name] = min(best.get(name, float("inf")), elapsed)
            print(f"  {title}, run {rep + 1}: {LABELS[name]:<17} {elapsed:7.2f} s", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="off,default,every", help="which of off,default,every to run")
    parser.add_argument("--user-steps", type=int, default=600, help="steps of the user loop (0: skip it)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    chosen = {name: VARIANTS[name] for name in ["off", *args.variants.split(",")] if name in VARIANTS}
    rows: list[tuple[str, dict[str, float]]] = []
    with (
        initialize_config_dir(config_dir=str(config_dir()), version_base=None),
        tempfile.TemporaryDirectory() as tmp,
    ):

        def run_job(name: str, extra: list[str]) -> Callable[[int], float]:
            def job(rep: int) -> float:
                cfg = compose("config", overrides=[*args.overrides, "train.progress=false", *extra])
                start = time.perf_counter()
                train(cfg, Path(tmp) / f"{rep}-{name}")
                return time.perf_counter() - start

            return job

        title = "initlab run " + " ".join(args.overrides)
        rows.append((title, fastest({n: run_job(n, e) for n, e in chosen.items()}, args.repeats, title)))
        if args.user_steps > 0:
            jobs = {
                "off": lambda rep: user_loop(args.user_steps, None),
                "default": lambda rep: user_loop(args.user_steps, Path(tmp) / f"user-{rep}"),
            }
            title = f"initlab.probe, user model ({args.user_steps} steps)"
            rows.append((title, fastest(jobs, args.repeats, title)))
    print(f"\nfastest of {args.repeats}, ratio to probes off:")
    for title, best in rows:
        ratios = "   ".join(
            f"{LABELS[n]}: {best[n]:.2f} s ({best[n] / best['off']:.3f}x)" for n in best if n != "off"
        )
        print(f"{title:<40} probes off: {best['off']:.2f} s   {ratios}")


if __name__ == "__main__":
    main()
