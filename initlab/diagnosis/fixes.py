"""The rules table of fixes: what the literature does about each finding, and how the doctor applies it.

A row names the fix, its source (labeled paper / theory / rule of thumb), when it applies to the examined
net, the overrides that apply it to one of initlab's own configs (``--verify`` reruns with them) and, for
any ``nn.Module``, a patch that applies it to a fresh copy of the model (``verify=True``). A patch changes
the model in place and returns the factor its learning rate is multiplied by (1 for all but the learning-rate
rules). A row without overrides or patch is suggested but cannot be verified automatically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.diagnosis.examine import Batch, Evidence
from initlab.diagnosis.findings import Source
from initlab.probing.hooks import is_layer

RELU_FAMILY = {"ReLU", "LeakyReLU", "PReLU", "RReLU", "ReLU6", "ELU", "CELU", "GELU", "SiLU", "Mish"}
BOUNDED = {"Tanh", "Sigmoid", "Softsign", "Hardtanh", "Hardsigmoid"}
LR_FACTOR = 10.0  # the learning-rate rules move it by one decade
POSITIVE_BIAS = 0.01  # CS231n notes: "a small constant value such as 0.01"

Patch = Callable[[nn.Module, Batch], float]


@dataclass(frozen=True)
class Fix:
    key: str
    text: str
    source: Source
    applies: Callable[[Evidence], bool]
    overrides: Callable[[Evidence], list[str] | None]  # for initlab's configs
    patch: Patch | None  # for any model


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if is_layer(m)]


def _zero_bias(m: nn.Module) -> None:
    if isinstance(getattr(m, "bias", None), nn.Parameter):
        nn.init.zeros_(m.bias)


def kaiming(model: nn.Module, batch: Batch) -> float:
    """He et al. 2015 Eq. 10: W ~ N(0, 2/n_in), biases 0 (torch's ``kaiming_normal_``, ReLU gain)."""
    for m in _layers(model):
        nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        _zero_bias(m)
    return 1.0


def xavier(model: nn.Module, batch: Batch) -> float:
    """Glorot & Bengio 2010 Eq. 16: W ~ U[±√6/√(n_in + n_out)], biases 0."""
    for m in _layers(model):
        nn.init.xavier_uniform_(m.weight)
        _zero_bias(m)
    return 1.0


def lsuv(model: nn.Module, batch: Batch) -> float:
    """Mishkin & Matas 2016: orthonormal weights, then each layer rescaled to unit output variance on the
    batch's inputs (:func:`initlab.lab.inits.lsuv`, tolerance 0.1, at most 10 passes)."""
    from initlab.lab.inits import lsuv as rescale

    layers = _layers(model)
    for m in layers:
        nn.init.orthogonal_(m.weight)
        _zero_bias(m)
    rescale(model, layers, batch[0], 0.1, 10)  # type: ignore[arg-type]
    return 1.0


def leaky_relu(model: nn.Module, batch: Batch) -> float:
    """Every ``nn.ReLU`` replaced by ``nn.LeakyReLU(0.01)``."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.ReLU:
                setattr(parent, name, nn.LeakyReLU(0.01, inplace=child.inplace))
    return 1.0


def positive_bias(model: nn.Module, batch: Batch) -> float:
    for m in _layers(model):
        if isinstance(getattr(m, "bias", None), nn.Parameter):
            nn.init.constant_(m.bias, POSITIVE_BIAS)
    return 1.0


def bn_momentum(model: nn.Module, batch: Batch) -> float:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.momentum or 0.0) < 0.1:
            m.momentum = 0.1
    return 1.0


def _ctx(ev: Evidence, key: str, default: Any = None) -> Any:
    return ev.context.get(key, default)


def _critical(ev: Evidence) -> list[str] | None:
    crit = ev.theory.get("critical_sigma_w2", math.nan)
    if not math.isfinite(crit):
        return None
    return [
        "init=meanfield",
        f"init.sigma_w2={crit:.4g}",
        f"init.sigma_b2={ev.theory.get('sigma_b2', 0.0):.4g}",
    ]


def _when(cond: Callable[[Evidence], bool], overrides: list[str]) -> Callable[[Evidence], list[str] | None]:
    return lambda ev: list(overrides) if "init" in ev.context and cond(ev) else None


def _lr(factor: float) -> Callable[[Evidence], list[str] | None]:
    return lambda ev: [f"optim.lr={_ctx(ev, 'lr') * factor:.3g}"] if _ctx(ev, "lr") else None


FIXES: dict[str, Fix] = {
    f.key: f
    for f in (
        Fix(
            "kaiming",
            "Kaiming init (fan_in, the activation's gain)",
            Source("paper", "He et al. 2015, Eq. 10"),
            lambda ev: bool(ev.activations & RELU_FAMILY),
            _when(
                lambda ev: _ctx(ev, "init") not in ("kaiming", "kaiming_normal", "kaiming_uniform"),
                ["init=kaiming"],
            ),
            kaiming,
        ),
        Fix(
            "xavier",
            "normalized (Xavier) init",
            Source("paper", "Glorot & Bengio 2010, Eq. 16"),
            lambda ev: bool(ev.activations & BOUNDED) or not ev.activations,
            _when(lambda ev: not str(_ctx(ev, "init")).startswith("xavier"), ["init=xavier"]),
            xavier,
        ),
        Fix(
            "lsuv",
            "LSUV: orthonormal init rescaled to unit variance on a batch",
            Source("paper", "Mishkin & Matas 2016"),
            lambda ev: True,
            _when(lambda ev: _ctx(ev, "init") != "lsuv", ["init=lsuv"]),
            lsuv,
        ),
        Fix(
            "batch_norm",
            "batch normalization before each activation",
            Source("paper", "Ioffe & Szegedy 2015"),
            lambda ev: not len(ev.norms),
            _when(lambda ev: _ctx(ev, "norm") == "none", ["model.norm=batch"]),
            None,
        ),
        Fix(
            "critical",
            "σ_w² on the critical line χ₁ = 1",
            Source("theory", "Schoenholz et al. 2017; Poole et al. 2016"),
            lambda ev: math.isfinite(ev.theory.get("critical_sigma_w2", math.nan)),
            _critical,
            None,
        ),
        Fix(
            "lower_lr",
            f"a learning rate {LR_FACTOR:g}× smaller",
            Source(
                "rule of thumb",
                "one decade; a too-high rate kills ReLUs and diverges (Karpathy, CS231n notes)",
            ),
            lambda ev: True,
            _lr(1 / LR_FACTOR),
            lambda model, batch: 1 / LR_FACTOR,
        ),
        Fix(
            "higher_lr",
            f"a learning rate {LR_FACTOR:g}× larger",
            Source("rule of thumb", "one decade"),
            lambda ev: True,
            _lr(LR_FACTOR),
            lambda model, batch: LR_FACTOR,
        ),
        Fix(
            "leaky_relu",
            "leaky ReLU instead of ReLU",
            Source("paper", "Maas et al. 2013; He et al. 2015 (PReLU)"),
            lambda ev: "ReLU" in ev.activations,
            _when(lambda ev: _ctx(ev, "act") == "relu", ["act=leaky_relu"]),
            leaky_relu,
        ),
        Fix(
            "positive_bias",
            f"a small positive bias ({POSITIVE_BIAS:g})",
            Source("rule of thumb", "CS231n notes"),
            lambda ev: bool(ev.activations & RELU_FAMILY),
            _when(lambda ev: bool(_ctx(ev, "init_bias")), [f"init.bias={POSITIVE_BIAS:g}"]),
            positive_bias,
        ),
        Fix(
            "larger_batch",
            "a 4× larger batch (steadier batch statistics)",
            Source("paper", "Ioffe & Szegedy 2015 §3.1"),
            lambda ev: True,
            lambda ev: [f"train.batch_size={4 * _ctx(ev, 'batch_size')}"] if _ctx(ev, "batch_size") else None,
            None,
        ),
        Fix(
            "bn_momentum",
            "batch-norm momentum 0.1 (running averages that keep up)",
            Source("rule of thumb", "PyTorch's default"),
            lambda ev: True,
            lambda ev: ["model.bn_momentum=0.1"] if _ctx(ev, "bn_momentum", 0.1) < 0.1 else None,
            bn_momentum,
        ),
    )
}


def suggested(finding: dict[str, Any], ev: Evidence) -> list[Fix]:
    """The fixes of a finding's row that apply to this net, in the row's order."""
    return [FIXES[k] for k in finding["fixes"] if FIXES[k].applies(ev)]
