"""One training run: config -> data -> model -> init -> SGD loop -> logs on disk.

The loop is plain: sample a batch, forward, loss = cross-entropy + penalties, backward, (probe), step,
(max-norm projection), and every ``train.eval_every`` updates evaluate both splits. Everything random is
seeded: ``torch.manual_seed(seed)`` for the weights and dropout masks, and a separate generator (seeded
from ``seed`` too) for batch order and augmentation, so probing or evaluating never shifts the training
trajectory. With ``train.mc_masks=K`` a completed run ends by comparing K dropout masks' average with the
eval-mode output on the test examples (:mod:`~initlab.lab.mc_dropout`, on a forked RNG). A NaN/inf loss
stops the run with status ``diverged``; Ctrl-C or SIGTERM stops it with status
``interrupted``; both keep what was logged.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from tqdm.auto import tqdm

from initlab.config import ConfigError, validate
from initlab.errors import UserError
from initlab.lab.data import Dataset, augment, load_data
from initlab.lab.inits import initialize
from initlab.lab.mc_dropout import write_mc_dropout
from initlab.lab.models import MODELS, build_model, check_model_data
from initlab.lab.optim import make_optimizer, max_norm_, reg_loss
from initlab.lab.prediction import data_moments, write_prediction
from initlab.probing.probes import Probe
from initlab.probing.variants import NullProbe, make_probe
from initlab.runs.layout import METRICS_FILE, MODEL_FILE, Summary
from initlab.runs.write import ParquetLog, RunWriter, save_model


def prior_entropy(y: Tensor, n_classes: int) -> float:
    """H(p) = −Σ_k p_k ln p_k of the class frequencies of labels ``y``, in nats.

    The loss of a net that ignores its input and predicts q is H(p) + KL(p‖q) ≥ H(p): the floor of a net that
    learns only the class prior (symmetry never broken); ln K for K balanced classes.
    """
    p = torch.bincount(y.cpu(), minlength=n_classes).double() / len(y)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: Tensor, y: Tensor, reg: Mapping[str, Any]) -> dict[str, float]:
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


SMALL_STEP_MACS = 1e8  # below this many multiply-adds per step, one torch thread is fastest


def pick_threads(setting: int | str, model: nn.Module, batch_size: int) -> int:
    """Torch threads for a run: ``setting`` itself, or for ``auto`` 1 when a step is small.

    A step's multiply-adds are about 3 · parameters · batch (forward, and backward for the inputs and the
    weights). Below ``SMALL_STEP_MACS`` the ops are too short to split: extra threads only add
    synchronization, and on a busy machine they wait for cores (2 threads with one competing process made
    the default run many times slower). Above, ``auto`` keeps torch's current count (all cores, or what a
    sweep's launcher gave the job).
    """
    if setting != "auto":
        return int(setting)
    macs = 3 * sum(p.numel() for p in model.parameters()) * batch_size
    return 1 if macs < SMALL_STEP_MACS else torch.get_num_threads()


def train(cfg: DictConfig, run: Path | RunWriter, label: str | None = None) -> dict[str, Any]:
    """Run one configured training job, writing its logs into ``run``; returns the summary record.

    ``run``: the run directory, claimed here (:class:`~initlab.runs.lock.DirectoryTaken` if a run holds
    it), or a :class:`~initlab.runs.write.RunWriter` that already holds one. ``label`` names the run on its
    progress bar (default: ``init/act``; a sweep's job: what the sweep varies).

    ``summary.json`` (:class:`~initlab.runs.layout.Summary`) says ``running`` while it trains, then holds
    the final record -- also for a run that fails, which keeps its status, error and the steps it did.
    """
    if not isinstance(run, RunWriter):
        if not Path(run).is_dir():  # a bad value makes no directory (a sweep's job records it in its own)
            validate(cfg)
        run = RunWriter.open(run, seed=cfg.get("seed"))
    writer = run
    run_dir, summary = writer.path, writer.summary
    summary.seed = cfg.get("seed")
    logs: list[ParquetLog | Probe | NullProbe] = []
    threads = torch.get_num_threads()
    try:
        with sigterm_as_interrupt():
            validate(cfg)
            check_model_data(cfg)
            device = resolve_device(cfg.device)
            torch.manual_seed(cfg.seed)
            data = load_data(cfg.data, device)
            check_model_fits(data.input_shape, data.n_classes, cfg.model, device)
            model = build_model(data.input_shape, data.n_classes, cfg.model, cfg.act).to(device)
            torch.set_num_threads(pick_threads(cfg.train.get("threads", "auto"), model, cfg.train.batch_size))
            summary.threads = torch.get_num_threads()
            summary.update(initialize(model, cfg.init, cfg.act, data.x_train))
            moments = data_moments(cfg, data)
            summary.update(write_prediction(cfg, data.n_features, data.n_classes, moments, run_dir))
            optimizer = make_optimizer(model, cfg.optim)
            gen = torch.Generator().manual_seed(cfg.seed)
            # every evaluation reaches the disk, and summary.json says how far the run got
            metrics = ParquetLog(run_dir / METRICS_FILE, max_rows=1, on_flush=writer.checkpoint)
            probe = make_probe(model, cfg.probe, cfg.train.steps, run_dir, fixed_batch_loss(cfg, model, data))
            logs = [metrics, probe]
            label = label or f"{cfg.init.name}/{cfg.act.name}"
            started = writer.started
            run = Training(cfg, model, data, optimizer, gen, metrics, probe, summary, started, label)
            summary.update(_loop(run))
            if cfg.train.get("save_model", False):  # the final weights (also of a diverged run)
                save_model(run_dir / MODEL_FILE, model.state_dict())
            n_masks = cfg.train.get("mc_masks", 0)
            if n_masks and summary.status == "completed":  # after training: the trajectory is done
                n_eval = cfg.train.eval_examples
                x, y = data.x_test[:n_eval], data.y_test[:n_eval]  # the test evaluation's examples
                write_mc_dropout(model, x, y, n_masks, cfg.seed, run_dir)
    except (KeyboardInterrupt, Interrupted):
        summary.status = "interrupted"
        print(
            f"initlab: interrupted after {summary.steps_done} steps; logs kept in {run_dir}",
            file=sys.stderr,
        )
    except Exception as exc:
        refusal = torch_refusal(exc) if summary.steps_done == 0 else None
        error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        summary.update(status="failed", error=str(refusal) if refusal else error)
        if refusal is not None:
            raise refusal from exc
        raise
    finally:
        torch.set_num_threads(threads)
        try:
            with contextlib.ExitStack() as closing:  # closes every log, also when one fails to
                for log in logs:
                    closing.callback(log.close)
        except BaseException as exc:  # the summary says so, unless an earlier failure is its cause
            if isinstance(exc, KeyboardInterrupt) and summary.status != "failed":
                summary.status = "interrupted"
            elif summary.status != "failed":
                summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            writer.close()
    return summary.to_dict()


# Bytes per parameter while training: float32 weights, their gradients, an optimizer state (momentum, or
# Adam's two moments) -- a lower bound of what the run needs, checked before the model is built.
BYTES_PER_PARAMETER = 4 * 4


def memory_bytes(device: torch.device) -> int | None:
    """The memory of ``device``: the GPU's, or this machine's physical memory (None: unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return None


def check_model_fits(
    input_shape: int | Sequence[int], n_out: int, cfg: DictConfig, device: torch.device
) -> None:
    """ConfigError if the model's parameters alone (× ``BYTES_PER_PARAMETER``) exceed the device's memory."""
    count = MODELS[cfg.name].parameters(input_shape, n_out, cfg)
    need, have = count * BYTES_PER_PARAMETER, memory_bytes(device)
    if have is not None and need > have:
        size = MODELS[cfg.name].size_key
        raise ConfigError(
            f"model.{size}={cfg[size]} model.depth={cfg.depth} is not allowed: {count:.3g} parameters need "
            f"about {need / 1e9:.3g} GB to train, this {device.type} has {have / 1e9:.3g} GB; "
            f"expected a smaller model.{size} or model.depth"
        )


def torch_refusal(exc: BaseException) -> ConfigError | None:
    """An error raised inside torch before the first step is done: options torch cannot train together.

    (E.g. batch statistics of a single example.) Errors raised in initlab's own code stay what they are.
    """
    if not isinstance(exc, RuntimeError | ValueError) or isinstance(exc, UserError):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or f"{os.sep}torch{os.sep}" not in tb.tb_frame.f_code.co_filename:
        return None
    reason = " ".join(str(exc).split())
    return ConfigError(f"these options cannot train together: torch refused the first step: {reason}")


def fixed_batch_loss(
    cfg: DictConfig, model: nn.Module, data: Dataset
) -> Callable[[nn.Module], Tensor] | None:
    """The loss of ``probe.fixed_batch`` fixed test examples (what a fixed-batch probe reads), or None."""
    n = cfg.probe.fixed_batch
    if not n:
        return None
    fx, fy, reg = data.x_test[:n], data.y_test[:n], dict(cfg.reg.items())

    def loss_of(m: nn.Module) -> Tensor:
        logits = m(fx)
        return F.cross_entropy(logits, fy) + reg_loss(reg, model, logits)

    return loss_of


@dataclass(frozen=True)
class Training:
    """What the training loop works on, built by :func:`train` once everything is set up: the config, the
    model and its data, the optimizer, the seeded generator of batch order and augmentation, the metrics
    log and the probe it writes, the summary it updates in place, when the run started
    (``time.perf_counter()``, for ``startup_seconds``) and the progress bar's label."""

    cfg: DictConfig
    model: nn.Module
    data: Dataset
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    metrics: ParquetLog
    probe: Probe | NullProbe
    summary: Summary
    started: float
    label: str


def _loop(run: Training) -> dict[str, Any]:
    """The training loop proper; updates ``run.summary`` in place as it goes and returns its final fields."""
    cfg, model, data, optimizer, gen = run.cfg, run.model, run.data, run.optimizer, run.gen
    metrics, probe, summary, started = run.metrics, run.probe, run.summary, run.started
    tc = cfg.train
    # Plain values for the loop: an OmegaConf lookup costs microseconds, ~8 % of a small training step.
    steps, eval_every, batch_size = tc.steps, tc.eval_every, tc.batch_size
    reg = dict(cfg.reg.items())
    aug = SimpleNamespace(**cfg.data.augment)
    max_norm = reg["max_norm"]
    n_eval = tc.eval_examples  # None: all (slicing with None keeps everything)
    summary.extra["train_prior_entropy"] = prior_entropy(data.y_train[:n_eval], data.n_classes)
    eval_sets = {
        "train": (data.x_train[:n_eval], data.y_train[:n_eval]),
        "test": (data.x_test[:n_eval], data.y_test[:n_eval]),
    }
    last: dict[str, dict[str, float]] = {}

    def log_eval(step: int) -> None:
        rows = []
        for split, (x, y) in eval_sets.items():
            last[split] = loss_and_accuracy(model, x, y, reg)
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
        desc=run.label,
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
            summary.startup_seconds = round(time.perf_counter() - started, 3)
        idx = next(index_stream).to(data.x_train.device)
        x = augment(data.x_train[idx], aug, data.image_shape, gen)
        y = data.y_train[idx]
        optimizer.zero_grad(set_to_none=True)
        with probe.step(step):
            logits = model(x)
            loss = F.cross_entropy(logits, y) + reg_loss(reg, model, logits)
            loss.backward()
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
        summary.steps_done = step + 1
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            log_eval(step + 1)
        bar.update(1)
        if step % postfix_every == 0 or step + 1 == steps:
            bar.set_postfix(
                loss=f"{loss_value:.3f}", test_acc=f"{last['test']['accuracy']:.3f}", refresh=False
            )
    bar.close()
    done = summary.steps_done
    probe.finish(done, diverged=diverged_at is not None)
    if diverged_at is not None and done % eval_every != 0:  # (step 0 and multiples are logged already)
        log_eval(done)
    final = {f"final_{split}_{key}": last[split][key] for split in last for key in ("loss", "accuracy")}
    return {
        "status": "diverged" if diverged_at is not None else "completed",
        "diverged_at": diverged_at,
        **final,
        **probe.report(),  # the parameter coverage and the probed layers, as initlab.probe records them
    }
