"""Two foreign models for the probe-cost benchmark (``scripts/bench_probes.py``, rows ``resnet`` and
``transformer``): a ResNet-style net of torchvision BasicBlocks (``out += identity``, a shared in-place ReLU,
BatchNorm) and a small pre-norm-free transformer encoder (``nn.MultiheadAttention``, a GELU module,
LayerNorm, an embedding), each trained in a plain user loop with or without ``initlab.probe``.

    python scripts/bench_zoo.py [--steps 100]     # one timing of each, probed every step and not
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import initlab


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNetish(nn.Module):
    def __init__(self, c: int = 32, blocks: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True))
        self.blocks = nn.Sequential(*(BasicBlock(c) for _ in range(blocks)))
        self.fc = nn.Linear(c, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class Transformer(nn.Module):
    def __init__(self, vocab: int = 100, d: int = 64, layers: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.Sequential(
            *(
                nn.TransformerEncoderLayer(d, 4, 2 * d, 0.1, activation=nn.GELU(), batch_first=True)
                for _ in range(layers)
            )
        )
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


def _images(gen: torch.Generator) -> Tensor:
    return torch.randn(32, 3, 16, 16, generator=gen)


def _tokens(gen: torch.Generator) -> Tensor:
    return torch.randint(0, 100, (32, 32), generator=gen)


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[torch.Generator], Tensor]]] = {
    "resnet": (ResNetish, _images),
    "transformer": (Transformer, _tokens),
}


def zoo_loop(name: str, steps: int, run_dir: Path | None, **schedule: object) -> float:
    """Seconds to train ``MODELS[name]`` for ``steps`` SGD steps (probed into ``run_dir`` if given, on
    ``schedule``: ``every=1``, or ``schedule="log", total_steps=steps``)."""
    make, batch = MODELS[name]
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    batches = [(batch(gen), torch.randint(0, 10, (32,), generator=gen)) for _ in range(8)]
    start = time.perf_counter()
    probe = initlab.probe(model, run_dir, **schedule) if run_dir else None  # type: ignore[arg-type]
    for step in range(steps):
        x, y = batches[step % 8]
        with probe.step(step) if probe else torch.enable_grad():
            F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    if probe:
        probe.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            zoo_loop(name, 3, Path(tmp) / f"warm-{name}", every=1)
            plain = zoo_loop(name, args.steps, None)
            every = zoo_loop(name, args.steps, Path(tmp) / f"every-{name}", every=1)
            log_dir = Path(tmp) / f"log-{name}"
            log = zoo_loop(name, args.steps, log_dir, schedule="log", total_steps=args.steps)
            print(f"{name:<12} {plain:6.2f} s   every step {every / plain:6.3f}x   log {log / plain:6.3f}x")


if __name__ == "__main__":
    main()
