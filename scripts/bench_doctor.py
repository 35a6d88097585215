"""Cost of ``initlab.doctor`` as a ratio to its own bare training steps, measured side by side in this run.

    python scripts/bench_doctor.py [--repeats 2] [--steps 300] [--width 16] [--image 16] [--device cpu]

Two models, each trained ``--steps`` SGD updates on the same random batches (32 examples) twice over:
bare (a plain loop: forward, loss, backward, step) and by the doctor (``initlab.doctor`` with its defaults:
probes at 14 steps, its own hooks, the checks, ``doctor.md``/``.json`` and the figure), interleaved
(bare, doctor, bare, doctor, ...) and the fastest time of each compared, which damps noise from other
processes:

* ``mlp30``: 30 hidden layers of 256 ReLU units on 1024 inputs (Kaiming init), 10 classes;
* ``resnet18``: ResNet-18's topology (He et al. 2016: a 3×3 stem, 4 stages of 2 basic blocks, strides 1-2-2-2,
  widths w-2w-4w-8w, global pooling, a linear read-out) at width ``--width`` (ResNet-18 is 64: 11.2 M
  parameters; 16 gives 0.70 M) on ``--image``-pixel RGB images, so that it runs on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import initlab


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        projection = stride != 1 or c_in != c_out
        self.short = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if projection
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.short(x))


def resnet18(width: int, classes: int = 10) -> nn.Module:
    widths = [width, 2 * width, 4 * width, 8 * width]
    blocks: list[nn.Module] = []
    c_in = width
    for i, w in enumerate(widths):
        blocks += [Block(c_in, w, 1 if i == 0 else 2), Block(w, w, 1)]
        c_in = w
    return nn.Sequential(
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        *blocks,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * width, classes),
    )


def mlp30() -> nn.Module:
    layers: list[nn.Module] = []
    n = 1024
    for _ in range(30):
        lin = nn.Linear(n, 256)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
        n = 256
    return nn.Sequential(*layers, nn.Linear(256, 10))


def bare(model: nn.Module, batches: list, steps: int, lr: float) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    sync()
    return time.perf_counter() - start


def doctored(model: nn.Module, batches: list, steps: int, lr: float) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        initlab.doctor(
            model, batches, nn.CrossEntropyLoss(), opt, steps=steps, run_dir=Path(tmp) / "d", quiet=True
        )
    sync()
    return time.perf_counter() - start


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench(name: str, make: Callable[[], nn.Module], shape: tuple[int, ...], args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    device = torch.device(args.device)
    batches = [
        (torch.randn(32, *shape, device=device), torch.randint(0, 10, (32,), device=device))
        for _ in range(16)
    ]
    model = make().to(device)
    params = sum(p.numel() for p in model.parameters())
    times: dict[str, list[float]] = {"bare": [], "doctor": []}
    for _ in range(args.repeats):
        times["bare"].append(bare(make().to(device), batches, args.steps, args.lr))
        times["doctor"].append(doctored(model, batches, args.steps, args.lr))
    b, d = min(times["bare"]), min(times["doctor"])
    print(f"{name:9s} {params / 1e6:6.2f} M params  bare {b:7.2f} s  doctor {d:7.2f} s  ratio {d / b:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"{args.steps} updates, batches of 32, best of {args.repeats}, threads {torch.get_num_threads()},"
        f" device {args.device}"
    )
    bench("mlp30", mlp30, (1024,), args)
    bench("resnet18", lambda: resnet18(args.width), (3, args.image, args.image), args)


if __name__ == "__main__":
    main()
