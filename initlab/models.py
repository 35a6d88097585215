"""The network: a multilayer perceptron whose every hidden layer is a named block.

    input -> [input dropout] -> depth x Block -> Linear "out" -> logits

    Block = Linear "linear" -> [norm "norm", if before] -> activation "act" -> [norm "norm", if after]
            -> [dropout "dropout"]

The activation module of every block is called ``act``: the probes read its input (the pre-activation
``preact``) and its output (``act``) through hooks, so the module layout is part of the contract.

Dropout is PyTorch's inverted dropout (Srivastava et al. 2014 with the rescaling moved to training time):
in training each unit is zeroed with probability p and survivors are scaled by 1/(1−p); in eval mode it is
the identity. Batch norm (Ioffe & Szegedy 2015) normalizes with batch statistics in training and running
averages (factor ``bn_momentum``) at inference, then applies a learned scale γ and shift β.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from omegaconf import DictConfig
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[DictConfig], nn.Module]] = {
    "relu": lambda cfg: nn.ReLU(),
    "leaky_relu": lambda cfg: nn.LeakyReLU(cfg.get("negative_slope", 0.01)),
    "tanh": lambda cfg: nn.Tanh(),
    "sigmoid": lambda cfg: nn.Sigmoid(),
    "softsign": lambda cfg: nn.Softsign(),
    "elu": lambda cfg: nn.ELU(),
    "selu": lambda cfg: nn.SELU(),
    "gelu": lambda cfg: nn.GELU(),
    "silu": lambda cfg: nn.SiLU(),
    "linear": lambda cfg: nn.Identity(),
}

NORMS: dict[str, Callable[[int, DictConfig], nn.Module]] = {
    "batch": lambda width, cfg: nn.BatchNorm1d(width, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
    "layer": lambda width, cfg: nn.LayerNorm(width, eps=cfg.bn_eps),
}


def make_activation(cfg: DictConfig) -> nn.Module:
    """The activation module named ``cfg.name``."""
    return ACTIVATIONS[cfg.name](cfg)


def make_block(n_in: int, cfg: DictConfig, act: DictConfig) -> nn.Sequential:
    """One hidden layer: linear, optional norm before/after the activation, activation, optional dropout."""
    parts: list[tuple[str, nn.Module]] = [("linear", nn.Linear(n_in, cfg.width, bias=cfg.bias))]
    norm = NORMS[cfg.norm](cfg.width, cfg) if cfg.norm != "none" else None
    if norm is not None and cfg.norm_position == "before":
        parts.append(("norm", norm))
    parts.append(("act", make_activation(act)))
    if norm is not None and cfg.norm_position == "after":
        parts.append(("norm", norm))
    if cfg.dropout > 0:
        parts.append(("dropout", nn.Dropout(cfg.dropout)))
    return nn.Sequential(OrderedDict(parts))


class MLP(nn.Module):
    """``depth`` hidden blocks of ``width`` units and a linear read-out producing logits."""

    def __init__(self, n_in: int, n_out: int, cfg: DictConfig, act: DictConfig) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(cfg.input_dropout) if cfg.input_dropout > 0 else nn.Identity()
        widths = [n_in] + [cfg.width] * cfg.depth
        self.hidden = nn.ModuleList(make_block(w, cfg, act) for w in widths[:-1])
        self.out = nn.Linear(widths[-1], n_out, bias=cfg.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_dropout(x)
        for block in self.hidden:
            x = block(x)
        return self.out(x)

    def linears(self) -> list[nn.Linear]:
        """Every weight layer in forward order: the hidden layers' ``linear``, then ``out``."""
        return [block.linear for block in self.hidden] + [self.out]


def mlp_parameters(n_in: int, n_out: int, cfg: DictConfig) -> int:
    """Parameters of :class:`MLP`, from its config alone: Σ over weight layers of fan_in·fan_out (+ fan_out
    biases), plus 2·width per norm layer (γ and β)."""
    widths = [n_in] + [cfg.width] * cfg.depth + [n_out]
    weights = sum(a * b + (b if cfg.bias else 0) for a, b in zip(widths[:-1], widths[1:], strict=True))
    return weights + (2 * cfg.width * cfg.depth if cfg.norm != "none" else 0)


MODELS: dict[str, Callable[[int, int, DictConfig, DictConfig], nn.Module]] = {"mlp": MLP}
PARAMETER_COUNTS: dict[str, Callable[[int, int, DictConfig], int]] = {"mlp": mlp_parameters}


def build_model(n_in: int, n_out: int, cfg: DictConfig, act: DictConfig) -> MLP:
    """The model named ``cfg.name`` (only ``mlp`` for now) for ``n_in`` inputs and ``n_out`` classes."""
    return MODELS[cfg.name](n_in, n_out, cfg, act)
