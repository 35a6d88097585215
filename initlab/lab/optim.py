"""Optimizers, penalties and the max-norm constraint: everything that turns a loss into a weight update.

A weight matrix is the ``weight`` of any module whose weight has two or more dimensions (``nn.Linear``,
convolutions), in the order ``model.modules()`` lists them; biases and normalization parameters are
neither penalized nor constrained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

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


def make_optimizer(model: nn.Module, cfg: DictConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.name`` over every parameter of ``model``."""
    return OPTIMIZERS[cfg.name](list(model.parameters()), cfg)


def weight_matrices(model: nn.Module) -> list[Tensor]:
    """The weights of every module whose weight has two or more dimensions, in module order."""
    found = (getattr(m, "weight", None) for m in model.modules())
    return [w for w in found if isinstance(w, Tensor) and w.ndim >= 2]


def entropy(logits: Tensor) -> Tensor:
    """Mean predictive entropy H(p) = −Σ_k p_k log p_k over a batch, in nats."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


# Each penalty maps (λ, model, logits) to the term added to the data loss.
REGULARIZERS: dict[str, Callable[[float, nn.Module, Tensor], Tensor]] = {
    # L2 penalty λ·Σ‖W‖² on the weight matrices (Goodfellow et al. 2016 §7.1.1); biases are not penalized.
    "l2": lambda lam, model, logits: lam * sum(w.pow(2).sum() for w in weight_matrices(model)),
    # L1 penalty λ·Σ|W|: drives weights whose data gradient is below λ to zero -- under SGD's subgradient
    # λ·sign(W) into a band ±lr·λ around it, not exactly 0 (preset l1_sparsity).
    "l1": lambda lam, model, logits: lam * sum(w.abs().sum() for w in weight_matrices(model)),
    # Confidence penalty (Pereyra et al. 2017): loss − λ·H(p) *rewards* entropy, i.e. penalizes confident
    # predictions. The handbook prints L − λ·Σ p log p, which equals L + λ·H and would lower entropy; we
    # implement the stated intent.
    "entropy": lambda lam, model, logits: -lam * entropy(logits),
}


def reg_loss(reg: Mapping[str, Any], model: nn.Module, logits: Tensor) -> Tensor:
    """The sum of the configured penalties (0 when none is on)."""
    terms = [
        REGULARIZERS[name](float(lam), model, logits)
        for name, lam in reg.items()
        if name in REGULARIZERS and lam
    ]
    return sum(terms, torch.zeros((), device=logits.device))


@torch.no_grad()
def max_norm_(model: nn.Module, c: float) -> None:
    """Srivastava et al. 2014: project each unit's incoming weight vector onto the ball ‖w‖₂ ≤ c."""
    for w in weight_matrices(model):
        w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=c))
