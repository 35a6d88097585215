"""One training run: config -> data -> model -> init -> SGD loop -> logs on disk.

The loop is plain: sample a batch, forward, loss = cross-entropy + penalties, backward, (probe), step,
(max-norm projection), and every ``train.eval_every`` updates evaluate both splits. Everything random is
seeded: ``torch.manual_seed(seed)`` for the weights and dropout masks, and a separate generator (seeded
from ``seed`` too) for batch order and augmentation, so probing or evaluating never shifts the training
trajectory. A NaN/inf loss stops the run with status ``diverged``; Ctrl-C or SIGTERM stops it with status
``interrupted``; both keep what was logged.
"""

from __future__ import annotations

import contextlib
import math
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from tqdm.auto import tqdm

import initlab
from initlab.config import ConfigError, validate
from initlab.data import Dataset, augment, load_data
from initlab.inits import init_model, lsuv
from initlab.models import MLP, build_model
from initlab.probes import Probe
from initlab.storage import METRICS_FILE, SUMMARY_FILE, ParquetLog, write_json

OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], DictConfig], torch.optim.Optimizer]] = {
    "sgd": lambda params, c: torch.optim.SGD(
        params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, weight_decay=c.weight_decay
    ),
    "adam": lambda params, c: torch.optim.Adam(
        params, lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay
    ),
    "adamw": lambda params, c: torch.optim.AdamW(
        params, lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay
    ),
}


def _weights(model: MLP) -> list[Tensor]:
    return [layer.weight for layer in model.linears()]


def entropy(logits: Tensor) -> Tensor:
    """Mean predictive entropy H(p) = −Σ_k p_k log p_k over a batch, in nats."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


# Each penalty maps (λ, model, logits) to the term added to the data loss.
REGULARIZERS: dict[str, Callable[[float, MLP, Tensor], Tensor]] = {
    # L2 penalty λ·Σ‖W‖² on the weight matrices (Goodfellow et al. 2016 §7.1.1); biases are not penalized.
    "l2": lambda lam, model, logits: lam * sum(w.pow(2).sum() for w in _weights(model)),
    # L1 penalty λ·Σ|W|, which drives weights to exactly zero.
    "l1": lambda lam, model, logits: lam * sum(w.abs().sum() for w in _weights(model)),
    # Confidence penalty (Pereyra et al. 2017): loss − λ·H(p) *rewards* entropy, i.e. penalizes confident
    # predictions. The handbook prints L − λ·Σ p log p, which equals L + λ·H and would lower entropy; we
    # implement the stated intent.
    "entropy": lambda lam, model, logits: -lam * entropy(logits),
}


def prior_entropy(y: Tensor, n_classes: int) -> float:
    """H(p) = −Σ_k p_k ln p_k of the class frequencies of labels ``y``, in nats.

    The loss of a net that ignores its input and predicts q is H(p) + KL(p‖q) ≥ H(p): the floor of a net that
    learns only the class prior (symmetry never broken); ln K for K balanced classes.
    """
    p = torch.bincount(y.cpu(), minlength=n_classes).double() / len(y)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def reg_loss(reg: Mapping[str, Any], model: MLP, logits: Tensor) -> Tensor:
    """The sum of the configured penalties (0 when none is on)."""
    terms = [
        REGULARIZERS[name](float(lam), model, logits)
        for name, lam in reg.items()
        if name in REGULARIZERS and lam
    ]
    return sum(terms, torch.zeros((), device=logits.device))


@torch.no_grad()
def max_norm_(model: MLP, c: float) -> None:
    """Srivastava et al. 2014: project each unit's incoming weight vector onto the ball ‖w‖₂ ≤ c."""
    for w in _weights(model):
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=c))


@torch.no_grad()
def evaluate(model: MLP, x: Tensor, y: Tensor, reg: Mapping[str, Any]) -> dict[str, float]:
    """Data loss, penalty and accuracy on (x, y) in eval mode (no dropout, batch norm on running stats)."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(chunk) for chunk in x.split(4096)])
    model.train(was_training)
    return {
        "loss": F.cross_entropy(logits, y).item(),
        "reg_loss": reg_loss(reg, model, logits).item(),
        "accuracy": (logits.argmax(-1) == y).float().mean().item(),
    }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda is not allowed: no CUDA device is available here; expected cpu or auto"
        )
    return torch.device(name)


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Endless mini-batch indices: a fresh seeded permutation of the training set every epoch."""
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


class Interrupted(Exception):
    """Raised by the SIGTERM handler so that the loop can close its files and record the status."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (what SLURM and `kill` send) into an exception while the run is training."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def versions() -> dict[str, str]:
    import hydra
    import numpy
    import pandas

    return {
        "initlab": initlab.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "hydra": hydra.__version__,
        "python": platform.python_version(),
    }


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run one configured training job, writing its logs into ``run_dir``; returns the summary."""
    started = time.perf_counter()
    validate(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "status": "running",
        "steps_done": 0,
        "diverged_at": None,
        "seed": cfg.seed,
        "versions": versions(),
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    logs: list[ParquetLog | Probe] = []
    try:
        with sigterm_as_interrupt():
            device = resolve_device(cfg.device)
            torch.manual_seed(cfg.seed)
            data = load_data(cfg.data, device)
            model = build_model(data.n_features, data.n_classes, cfg.model, cfg.act).to(device)
            init_model(model.linears(), cfg.init, cfg.act)
            if cfg.init.name == "lsuv":
                x = data.x_train[: cfg.init.batch_size]
                summary["lsuv_variances"] = lsuv(model, model.linears(), x, cfg.init.tol, cfg.init.max_iter)
            optimizer = OPTIMIZERS[cfg.optim.name](list(model.parameters()), cfg.optim)
            gen = torch.Generator().manual_seed(cfg.seed)
            metrics = ParquetLog(run_dir / METRICS_FILE, max_rows=1)  # every evaluation reaches the disk
            probe = (
                Probe(model, cfg.act.name, cfg.probe, cfg.train.steps, run_dir) if cfg.probe.enabled else None
            )
            logs = [metrics] + ([probe] if probe is not None else [])
            summary.update(_loop(cfg, model, data, optimizer, gen, metrics, probe, summary, started))
    except (KeyboardInterrupt, Interrupted):
        summary["status"] = "interrupted"
        print(
            f"initlab: interrupted after {summary['steps_done']} steps; logs kept in {run_dir}",
            file=sys.stderr,
        )
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for log in logs:
            log.close()
        summary["wall_seconds"] = round(time.perf_counter() - started, 3)
        write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def _loop(
    cfg: DictConfig,
    model: MLP,
    data: Dataset,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    metrics: ParquetLog,
    probe: Probe | None,
    summary: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """The training loop proper; updates ``summary`` in place as it goes and returns its final fields."""
    tc = cfg.train
    # Plain values for the loop: an OmegaConf lookup costs microseconds, ~8 % of a small training step.
    steps, eval_every, batch_size = tc.steps, tc.eval_every, tc.batch_size
    reg = dict(cfg.reg.items())
    aug = SimpleNamespace(**cfg.data.augment)
    max_norm = reg["max_norm"]
    n_eval = tc.eval_examples  # None: all (slicing with None keeps everything)
    summary["train_prior_entropy"] = prior_entropy(data.y_train[:n_eval], data.n_classes)
    eval_sets = {
        "train": (data.x_train[:n_eval], data.y_train[:n_eval]),
        "test": (data.x_test[:n_eval], data.y_test[:n_eval]),
    }
    fixed = None
    if probe is not None and cfg.probe.fixed_batch:
        fx, fy = data.x_test[: cfg.probe.fixed_batch], data.y_test[: cfg.probe.fixed_batch]

        def fixed(m: nn.Module) -> Tensor:
            logits = m(fx)
            return F.cross_entropy(logits, fy) + reg_loss(reg, model, logits)

    last: dict[str, dict[str, float]] = {}

    def log_eval(step: int) -> None:
        rows = []
        for split, (x, y) in eval_sets.items():
            last[split] = evaluate(model, x, y, reg)
            rows.append(
                {
                    "step": step,
                    "epoch": step * batch_size / len(data.y_train),
                    "split": split,
                    **last[split],
                    "lr": float(optimizer.param_groups[0]["lr"]),  # a float column even for optim.lr=1
                }
            )
        metrics.append(rows)

    log_eval(0)
    index_stream = batches(len(data.y_train), batch_size, gen)
    bar = tqdm(
        total=steps,
        disable=not tc.progress,
        desc=f"{cfg.init.name}/{cfg.act.name}",
        unit="step",
        dynamic_ncols=True,
        leave=True,
        file=sys.stderr,
    )
    postfix_every = max(1, steps // 200)
    diverged_at: int | None = None
    model.train()
    for step in range(steps):
        if step == 0:
            summary["startup_seconds"] = round(time.perf_counter() - started, 3)
        idx = next(index_stream).to(data.x_train.device)
        x = augment(data.x_train[idx], aug, data.image_shape, gen)
        y = data.y_train[idx]
        probing = probe is not None and probe.wants(step)
        if probing and fixed is not None:
            probe.probe_fixed_batch(model, fixed, step)
        optimizer.zero_grad(set_to_none=True)
        with probe.capture() if probing and fixed is None else contextlib.nullcontext():
            logits = model(x)
        data_loss = F.cross_entropy(logits, y)
        loss = data_loss + reg_loss(reg, model, logits)
        loss.backward()
        if probing and fixed is None:
            probe.record(step)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            diverged_at = step
            print(
                f"initlab: warning: loss became {loss_value} at step {step}; run stopped (status: diverged)",
                file=sys.stderr,
            )
            break
        optimizer.step()
        if max_norm is not None:
            max_norm_(model, max_norm)
        summary["steps_done"] = step + 1
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            log_eval(step + 1)
        bar.update(1)
        if step % postfix_every == 0 or step + 1 == steps:
            bar.set_postfix(
                loss=f"{loss_value:.3f}", test_acc=f"{last['test']['accuracy']:.3f}", refresh=False
            )
    bar.close()
    done = summary["steps_done"]
    if probe is not None and fixed is not None and diverged_at is None and probe.wants(done):
        probe.probe_fixed_batch(model, fixed, done)
    if diverged_at is not None and done % eval_every != 0:  # (step 0 and multiples are logged already)
        log_eval(done)
    final = {f"final_{split}_{key}": last[split][key] for split in last for key in ("loss", "accuracy")}
    return {
        "status": "diverged" if diverged_at is not None else "completed",
        "diverged_at": diverged_at,
        **final,
    }
