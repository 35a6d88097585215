"""Runs with known numbers for the tests of ``initlab plot`` (tests/test_plots_*.py) and the API.

``write_run`` writes a run directory in the on-disk layout of :mod:`initlab.runs.write` with known
statistics and histograms; the ``hand`` fixture is a 2 × 2 × 2 sweep of them (init × data × seed) with known
final accuracies. The tests check that each figure is drawn *from the data*: the Line2D data, the image
array and the table text are compared with the numbers written to disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from initlab import plots as P
from initlab.runs import RunData

PNG = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF"


CONFIG = {
    "seed": 0,
    "init": {"name": "standard"},
    "act": {"name": "tanh"},
    "model": {"depth": 2, "width": 4, "norm": "none"},
    "data": {"name": "shapeset"},
    "optim": {"name": "sgd", "lr": 0.1},
    "probe": {"schedule": "every"},
}
# variance = std² per (quantity, layer); layer 3 is the output layer of a depth-2 net
STD = {"preact": [1.0, 2.0, 3.0], "act": [0.5, 0.25, 0.1], "grad_preact": [0.01, 0.1, 1.0]}
EDGES = [-1.0, -0.5, 0.0, 0.5, 1.0]
COUNTS = {1: [1, 2, 3, 4], 2: [4, 3, 2, 1], 3: [0, 0, 5, 5]}  # step 0; step 10 adds 10 to every bin
UNDERFLOW = {1: 0, 2: 10, 3: 0}


def write_run(
    path: Path,
    overrides: list[str],
    config: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    accuracy: float = 0.9,
    probes: bool = True,
) -> Path:
    """A run directory with known numbers, in the on-disk layout of initlab.runs.write."""
    (path / ".hydra").mkdir(parents=True)
    cfg = json.loads(json.dumps(config or CONFIG))
    for item in overrides:  # keep config and overrides consistent
        key, value = item.split("=")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = {"name": value} if isinstance(node.get(leaf), dict) else value
    OmegaConf.save(OmegaConf.create(cfg), path / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), path / ".hydra" / "overrides.yaml")
    (path / "summary.json").write_text(
        json.dumps(summary or {"status": "completed", "steps_done": 10, "final_test_accuracy": accuracy})
    )
    metrics = [
        {
            "step": s,
            "epoch": s / 10,
            "split": split,
            "loss": loss,
            "reg_loss": 0.0,
            "accuracy": acc,
            "lr": 0.1,
        }
        for s, loss, acc in ((0, 2.3, 0.1), (10, 1.0, accuracy))
        for split in ("train", "test")
    ]
    pd.DataFrame(metrics).to_parquet(path / "metrics.parquet")
    if not probes:
        return path
    layers, hists = [], []
    for step in (0, 10):
        for layer in (1, 2, 3):
            for quantity in ("preact", "act", "grad_preact", "grad_weight"):
                std = STD.get(quantity, [1.0, 1.0, 1.0])[layer - 1] * (1 + step / 10)
                layers.append(
                    {"step": step, "layer": layer, "name": f"l{layer}", "quantity": quantity, "fan_in": 4,
                     "fan_out": 4, "mean": 0.1 * layer + step / 100, "std": std, "min": -1.0, "max": 1.0,
                     "p02": -2.0 * std, "p15": -std + step / 100, "p50": 0.01 * layer + step / 100,
                     "p85": std + step / 100, "p98": 2.0 * std, "frac_zero": 0.0, "frac_saturated": 0.0,
                     "n": 40, "n_nonfinite": 0}
                )  # fmt: skip
                counts = [c + step for c in COUNTS[layer]]
                hists.append(
                    {"step": step, "layer": layer, "quantity": quantity, "edges": EDGES, "counts": counts,
                     "underflow": UNDERFLOW[layer], "overflow": 0, "n_nonfinite": 0}
                )  # fmt: skip
    pd.DataFrame(layers).to_parquet(path / "layers.parquet")
    pd.DataFrame(hists).to_parquet(path / "hists.parquet")
    return path


def hand_runs(tmp_path: Path) -> list[RunData]:
    """init=standard,xavier × data=shapeset,mnist × seed=0,1, with known final accuracies."""
    accuracy = {("standard", "shapeset"): (0.9, 0.8), ("xavier", "shapeset"): (0.95, 0.85),
                ("standard", "mnist"): (0.99, 0.97), ("xavier", "mnist"): (0.995, 0.985)}  # fmt: skip
    i = 0
    for (init, data), accs in accuracy.items():
        for seed, acc in enumerate(accs):
            write_run(
                tmp_path / "sweep" / str(i), [f"init={init}", f"data={data}", f"seed={seed}"], accuracy=acc
            )
            i += 1
    return P.collect_runs([tmp_path / "sweep"])


def one(outputs: list[P.Output], name: str | None = None) -> Figure:
    figures = [(n, f) for n, f in outputs if name is None or n == name]
    assert len(figures) == 1, [n for n, _ in outputs]
    assert isinstance(figures[0][1], Figure)
    return figures[0][1]


def lines_of(ax: Any) -> dict[str, Any]:
    return {line.get_label(): line for line in ax.get_lines()}


def check_file(path: Path) -> None:
    head = path.read_bytes()[:8]
    assert head.startswith({".png": PNG, ".pdf": PDF}.get(path.suffix, b"")), path
    assert path.stat().st_size > 1000 or path.suffix not in (".png", ".pdf")
