"""The networks: a multilayer perceptron (``mlp``) and a plain convolutional net (``cnn``), both built of
named blocks.

    mlp:  input -> [input dropout] -> depth x Block -> Linear "out" -> logits

          Block = Linear "linear" -> [norm "norm", if before] -> activation "act" -> [norm "norm", if after]
                  -> [dropout "dropout"]

    cnn:  image (C x H x W) -> [input dropout] -> depth x ConvBlock -> global average pooling
          -> Linear "out" -> logits

          ConvBlock = Conv2d "conv" (3x3, stride 1, ``channels`` maps, size kept by padding ``padding``)
                      -> [BatchNorm2d "norm", if before] -> activation "act" -> [BatchNorm2d, if after]
                      -> [dropout "dropout"]

The cnn is He et al. (2015)'s plain deep net at CPU scale: a VGG-style stack of 3x3 convolutions with no
residual connections and no pooling between them (on 8x8 to 32x32 images), so that depth alone decides
whether the signal survives. A conv layer's fan-in is n = k²·C_in (He et al. Eq. 10). The probes find
the layers of any module (:mod:`~initlab.probing.hooks`); each block's activation module follows its layer.

Dropout is PyTorch's inverted dropout (Srivastava et al. 2014 with the rescaling moved to training time):
in training each unit is zeroed with probability p and survivors are scaled by 1/(1−p); in eval mode it is
the identity. Batch norm (Ioffe & Szegedy 2015) normalizes with batch statistics in training and running
averages (factor ``bn_momentum``) at inference, then applies a learned scale γ and shift β.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omegaconf import DictConfig
from torch import Tensor, nn

from initlab.config import ConfigError
from initlab.lab.data import IMAGE_DATA


def _torch_gain(name: str, param: str | None = None, default: float = 0.0) -> Callable[[DictConfig], float]:
    """The gain ``torch.nn.init.calculate_gain(name, act[param])``."""
    return lambda act: nn.init.calculate_gain(name, act.get(param, default) if param else None)


def _unit_gain(act: DictConfig) -> float:
    return 1.0


@dataclass(frozen=True)
class Act:
    """One activation of the ``act`` group and its facts.

    ``build`` makes the module for a layer of ``units`` units (channels); ``gain`` is the recommended gain
    of the layer it follows (``init.gain=null``: what :mod:`~initlab.lab.inits` uses, He et al. 2015's
    derivation; 1 where torch's ``calculate_gain`` defines none); ``fixed_point`` names a fixed point of
    the layer-to-layer variance map that a gain other than 1 breaks (a note is printed).
    """

    build: Callable[[DictConfig, int], nn.Module]
    gain: Callable[[DictConfig], float] = _unit_gain
    fixed_point: str | None = None


ACTIVATIONS: dict[str, Act] = {
    "relu": Act(lambda cfg, n: nn.ReLU(), _torch_gain("relu")),  # √2
    "leaky_relu": Act(
        lambda cfg, n: nn.LeakyReLU(cfg.get("negative_slope", 0.01)),
        _torch_gain("leaky_relu", "negative_slope", 0.01),  # √(2/(1+a²))
    ),
    # He et al. 2015 Eq. 1: f(y_i) = max(0, y_i) + a_i·min(0, y_i), a learned slope a_i per unit/channel;
    # their Eq. 15: ½·(1 + a²)·n·Var[W] = 1, the leaky ReLU's gain at the initial slope a (act.init).
    "prelu": Act(
        lambda cfg, n: nn.PReLU(n, init=cfg.get("init", 0.25)), _torch_gain("leaky_relu", "init", 0.25)
    ),
    "tanh": Act(lambda cfg, n: nn.Tanh(), _torch_gain("tanh")),  # 5/3
    "sigmoid": Act(lambda cfg, n: nn.Sigmoid()),
    "softsign": Act(lambda cfg, n: nn.Softsign()),
    "elu": Act(lambda cfg, n: nn.ELU()),
    # torch's calculate_gain("selu") is 3/4, which breaks SELU's own fixed point.
    "selu": Act(
        lambda cfg, n: nn.SELU(),
        _torch_gain("selu"),
        "SELU's self-normalizing fixed point (mean 0, variance 1; Klambauer et al. 2017) needs "
        "n·Var[W] = 1, i.e. gain 1",
    ),
    "gelu": Act(lambda cfg, n: nn.GELU()),
    "silu": Act(lambda cfg, n: nn.SiLU()),
    "linear": Act(lambda cfg, n: nn.Identity()),
}

MLP_NORMS: dict[str, Callable[[int, DictConfig], nn.Module]] = {
    "batch": lambda width, cfg: nn.BatchNorm1d(width, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
    "layer": lambda width, cfg: nn.LayerNorm(width, eps=cfg.bn_eps),
}
CONV_NORMS: dict[str, Callable[[int, DictConfig], nn.Module]] = {
    "batch": lambda channels, cfg: nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
}


def make_activation(cfg: DictConfig, units: int = 1) -> nn.Module:
    """The activation module named ``cfg.name`` for a layer of ``units`` units (channels)."""
    return ACTIVATIONS[cfg.name].build(cfg, units)


def _block(
    name: str, layer: nn.Module, units: int, norms: dict, cfg: DictConfig, act: DictConfig
) -> nn.Sequential:
    """Layer, optional norm before/after the activation, activation, optional dropout."""
    parts: list[tuple[str, nn.Module]] = [(name, layer)]
    norm = norms[cfg.norm](units, cfg) if cfg.norm != "none" else None
    if norm is not None and cfg.norm_position == "before":
        parts.append(("norm", norm))
    parts.append(("act", make_activation(act, units)))
    if norm is not None and cfg.norm_position == "after":
        parts.append(("norm", norm))
    if cfg.dropout > 0:
        parts.append(("dropout", nn.Dropout(cfg.dropout)))
    return nn.Sequential(OrderedDict(parts))


def make_block(n_in: int, cfg: DictConfig, act: DictConfig) -> nn.Sequential:
    """One hidden layer of the MLP: linear, optional norm, activation, optional dropout."""
    return _block("linear", nn.Linear(n_in, cfg.width, bias=cfg.bias), cfg.width, MLP_NORMS, cfg, act)


def make_conv_block(c_in: int, cfg: DictConfig, act: DictConfig) -> nn.Sequential:
    """One conv layer of the CNN: 3x3 conv keeping the size, optional BatchNorm2d, activation, dropout."""
    conv = nn.Conv2d(c_in, cfg.channels, 3, padding=1, padding_mode=cfg.padding, bias=cfg.bias)
    return _block("conv", conv, cfg.channels, CONV_NORMS, cfg, act)


class MLP(nn.Module):
    """``depth`` hidden blocks of ``width`` units and a linear read-out producing logits."""

    def __init__(self, n_in: int | Sequence[int], n_out: int, cfg: DictConfig, act: DictConfig) -> None:
        super().__init__()
        n_in = n_in if isinstance(n_in, int) else math.prod(n_in)
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


class CNN(nn.Module):
    """``depth`` 3x3 conv blocks of ``channels`` maps, global average pooling and a linear read-out.

    Takes flat inputs (as the data loaders give them) of an image of ``input_shape`` = (C, H, W).
    """

    def __init__(self, input_shape: Sequence[int], n_out: int, cfg: DictConfig, act: DictConfig) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_dropout = nn.Dropout(cfg.input_dropout) if cfg.input_dropout > 0 else nn.Identity()
        channels = [self.input_shape[0]] + [cfg.channels] * cfg.depth
        self.hidden = nn.ModuleList(make_conv_block(c, cfg, act) for c in channels[:-1])
        self.out = nn.Linear(cfg.channels, n_out, bias=cfg.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_dropout(x.reshape(len(x), *self.input_shape))
        for block in self.hidden:
            x = block(x)
        return self.out(x.mean(dim=(2, 3)))

    def linears(self) -> list[nn.Module]:
        """Every weight layer in forward order: the blocks' ``conv``, then ``out``."""
        return [block.conv for block in self.hidden] + [self.out]


def mlp_parameters(n_in: int | Sequence[int], n_out: int, cfg: DictConfig) -> int:
    """Parameters of :class:`MLP`, from its config alone: Σ over weight layers of fan_in·fan_out (+ fan_out
    biases), plus 2·width per norm layer (γ and β)."""
    n_in = n_in if isinstance(n_in, int) else math.prod(n_in)
    widths = [n_in] + [cfg.width] * cfg.depth + [n_out]
    weights = sum(a * b + (b if cfg.bias else 0) for a, b in zip(widths[:-1], widths[1:], strict=True))
    return weights + (2 * cfg.width * cfg.depth if cfg.norm != "none" else 0)


def cnn_parameters(input_shape: Sequence[int], n_out: int, cfg: DictConfig) -> int:
    """Parameters of :class:`CNN`: 9·C_in·C (+ C biases) per conv layer, C·n_out (+ n_out) for the read-out,
    plus 2·C per norm layer and C per PReLU at most."""
    channels = [int(input_shape[0])] + [cfg.channels] * cfg.depth
    convs = sum(9 * a * b + (b if cfg.bias else 0) for a, b in zip(channels[:-1], channels[1:], strict=True))
    extra = (2 if cfg.norm != "none" else 0) * cfg.channels * cfg.depth + cfg.channels * cfg.depth
    return convs + cfg.channels * n_out + (n_out if cfg.bias else 0) + extra


@dataclass(frozen=True)
class Model:
    """One model of the ``model`` group: its class, its parameter count from the config alone, the key that
    sets its size (``width`` or ``channels``) and whether it needs image data (a shape C x H x W)."""

    build: Callable[..., nn.Module]
    parameters: Callable[..., int]
    size_key: str
    needs_images: bool = False


MODELS: dict[str, Model] = {
    "mlp": Model(MLP, mlp_parameters, "width"),
    "cnn": Model(CNN, cnn_parameters, "channels", needs_images=True),
}


def build_model(input_shape: int | Sequence[int], n_out: int, cfg: DictConfig, act: DictConfig) -> nn.Module:
    """The model named ``cfg.name`` for inputs of ``input_shape`` (features, or C x H x W for ``cnn``)."""
    return MODELS[cfg.name].build(input_shape, n_out, cfg, act)


def check_model_data(cfg: DictConfig) -> None:
    """ConfigError for a model that needs images (``model=cnn``) on a data set that has none, read off the
    rows (:attr:`Model.needs_images`, :data:`~initlab.lab.data.IMAGE_DATA`) before any data is loaded."""
    model, data = cfg.model.name, cfg.data.name
    if MODELS[model].needs_images and data not in IMAGE_DATA:
        raise ConfigError(
            f"model={model} is not allowed with data={data}: "
            f"expected an image data set ({', '.join(IMAGE_DATA)})"
        )
