"""The doctor on initlab's own configs: the same net, data, init, loss and optimizer as ``initlab run``, and
the mean-field prediction (:mod:`initlab.theory.predict`) to compare with where it applies."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from initlab.diagnosis.examine import DEFAULT_STEPS, Evidence, examine


def theory(cfg: DictConfig, n_features: int, n_classes: int, moments: tuple[Any, ...]) -> dict[str, Any]:
    """The step-0 prediction rows, the depth scales and the critical σ_w² of the config (or why none)."""
    from initlab.lab.prediction import NoPrediction, predict
    from initlab.theory.meanfield import critical_sigma_w2
    from initlab.theory.predict import prediction_frame

    try:
        pred = predict(cfg, n_features, n_classes, *moments)
        scales = pred.scales.as_dict()
    except NoPrediction as exc:
        return {"skipped": str(exc)}
    except (ArithmeticError, ValueError) as exc:
        return {"skipped": f"prediction failed ({type(exc).__name__}: {exc})"}
    try:
        critical = critical_sigma_w2(pred.phi, pred.hidden.sigma_b2, hi=64.0)
    except ValueError:  # no σ_w² in range makes χ₁ = 1 (sigmoid's is far out)
        critical = math.nan
    return {
        "rows": prediction_frame(pred),
        "scales": scales,
        "depth": int(cfg.model.depth),
        "critical_sigma_w2": critical,
        "sigma_b2": pred.hidden.sigma_b2,
    }


def examine_config(
    cfg: DictConfig, run_dir: Path, steps: int = DEFAULT_STEPS, overrides: Sequence[str] = ()
) -> Evidence:
    """Build the run of ``cfg`` as :func:`initlab.lab.train.train` does and :func:`examine` it."""
    from initlab.lab.data import augment, load_data
    from initlab.lab.inits import initialize
    from initlab.lab.models import build_model
    from initlab.lab.optim import make_optimizer, max_norm_, reg_loss
    from initlab.lab.prediction import data_moments
    from initlab.lab.train import batches, pick_threads, resolve_device

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_data(cfg.data, device)
    model = build_model(data.input_shape, data.n_classes, cfg.model, cfg.act).to(device)
    threads = torch.get_num_threads()
    torch.set_num_threads(pick_threads(cfg.train.get("threads", "auto"), model, cfg.train.batch_size))
    try:
        initialize(model, cfg.init, cfg.act, data.x_train)
        optimizer = make_optimizer(model, cfg.optim)
        gen = torch.Generator().manual_seed(cfg.seed)
        reg, aug = dict(cfg.reg.items()), SimpleNamespace(**cfg.data.augment)

        def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for idx in batches(len(data.y_train), cfg.train.batch_size, gen):
                idx = idx.to(data.x_train.device)
                yield augment(data.x_train[idx], aug, data.image_shape, gen), data.y_train[idx]

        def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, y) + reg_loss(reg, model, logits)

        max_norm = reg["max_norm"]
        project = (lambda: max_norm_(model, max_norm)) if max_norm is not None else None
        ev = examine(model, stream(), loss_fn, optimizer, run_dir, steps, project)
    finally:
        torch.set_num_threads(threads)
    ev.theory = theory(cfg, data.n_features, data.n_classes, data_moments(cfg, data))
    ev.context = {
        "overrides": list(overrides),
        "init": cfg.init.name,
        "act": cfg.act.name,
        "lr": float(cfg.optim.lr),
        "model": cfg.model.name,
        "norm": cfg.model.get("norm", "none"),
        "batch_size": int(cfg.train.batch_size),
        "bn_momentum": float(cfg.model.get("bn_momentum", 0.1)),
        "data": cfg.data.name,
        "init_bias": "bias" in cfg.init,
    }
    return ev
