"""Weight-initialization schemes, one small named function each.

Every scheme fills the weight ``W`` of one layer (``nn.Linear``: ``n_out x n_in``; ``nn.Conv2d``:
``C_out x C_in x k x k``) in place and delegates to :mod:`torch.nn.init` wherever torch implements it.
``n_in`` is the fan-in, ``n_out`` the fan-out, as torch computes them: for a k x k convolution
n_in = k²·C_in and n_out = k²·C_out (He et al. 2015, Eq. 10: n = k²c). Default gains
(``conf/init/*.yaml``): ``xavier`` (both distributions) and ``orthogonal`` 1, as in Glorot & Bengio,
Saxe et al. and ``torch.nn.init``; ``kaiming`` null, i.e. the activation's gain
(``torch.nn.init.calculate_gain`` where torch defines one, 1 elsewhere), which is He et al.'s derivation;
``lecun``, ``standard`` and the rest have none. ``init.gain=null`` makes any scheme with a gain follow the
activation; a number sets it.

==================  ================================================  ========================================
scheme              Var[W]                                            source
==================  ================================================  ========================================
``zeros``           0                                                 (symmetry is never broken)
``constant``        0 (every weight = ``value``)                      (symmetry is never broken)
``normal``          std² (fixed, the naive "small random numbers")    folklore; Ioffe & Szegedy 2015 Fig. 1
``standard``        1/(3·n_in): U[-1/√n_in, 1/√n_in]                   Glorot & Bengio 2010, Eq. 1
``lecun``           1/n_in                                            LeCun et al. 1998, "Efficient BackProp"
``xavier``          gain²·2/(n_in+n_out), gain 1 by default           Glorot & Bengio 2010, Eq. 16
``kaiming``         gain²/n_in (``fan_in``) or gain²/n_out            He et al. 2015, Eqs. 10 and 14
                    (``fan_out``), gain the activation's (ReLU: √2)
``orthogonal``      gain²/n_in for square W (all singular values =    Saxe et al. 2014
                    gain, 1 by default)
``torch_default``   1/(3·n_in), nonzero bias                          what ``nn.Linear`` does on its own
``lsuv``            orthogonal, then rescaled to unit output variance  Mishkin & Matas 2016
``meanfield``       σ_w²/n_in, bias ~ N(0, σ_b²)                      Schoenholz et al. 2017
==================  ================================================  ========================================

Biases are set to ``init.bias`` (default 0, as in all the papers) except by ``torch_default`` and
``meanfield``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from initlab.lab.models import ACTIVATIONS

InitFn = Callable[[torch.Tensor, DictConfig, float], None]


def activation_gain(act: DictConfig) -> float:
    """The recommended gain of an activation, from its row in :data:`~initlab.lab.models.ACTIVATIONS`:
    ``torch.nn.init.calculate_gain`` where torch defines it -- linear (1), sigmoid (1), tanh (5/3), relu
    (√2), leaky_relu (√(2/(1+a²))) and selu (3/4) --, prelu with initial slope a √(2/(1+a²)) (He et al.
    Eq. 15), and 1 for softsign, elu, gelu and silu.
    """
    return ACTIVATIONS[act.name].gain(act)


def _zeros(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """W = 0."""
    nn.init.zeros_(w)


def _constant(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """W = value for every weight."""
    nn.init.constant_(w, cfg.value)


def _normal(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """W ~ N(0, std²) with a fixed std, whatever the layer's size."""
    nn.init.normal_(w, 0.0, cfg.std)


def _standard(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """Glorot & Bengio's heuristic (their Eq. 1): W ~ U[-1/√n_in, 1/√n_in], so n_in·Var[W] = 1/3."""
    bound = 1.0 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(w)[0])
    nn.init.uniform_(w, -bound, bound)


def _lecun(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """Calibrated init Var[W] = 1/n_in (LeCun et al. 1998): keeps the forward variance of a linear net."""
    if cfg.distribution == "uniform":
        nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="linear")
    else:
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear")


def _xavier(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """Glorot & Bengio's normalized init (Eq. 16): Var[W] = gain²·2/(n_in+n_out).

    ``uniform``: W ~ U[±gain·√6/√(n_in+n_out)]; ``normal``: W ~ N(0, gain²·2/(n_in+n_out)).
    """
    if cfg.distribution == "uniform":
        nn.init.xavier_uniform_(w, gain=gain)
    else:
        nn.init.xavier_normal_(w, gain=gain)


def _kaiming(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """He et al. 2015: Var[W] = gain²/fan, fan = n_in (Eq. 10, forward) or n_out (Eq. 14, backward).

    With ReLU, gain² = 2: ½·n·Var[W] = 1. torch's ``kaiming_*_`` with ``nonlinearity="linear"`` gives
    Var = 1/fan; the result is then scaled by ``gain`` so any gain (also one set by hand) is honoured.
    """
    fill = nn.init.kaiming_uniform_ if cfg.distribution == "uniform" else nn.init.kaiming_normal_
    fill(w, mode=cfg.mode, nonlinearity="linear")
    with torch.no_grad():
        w.mul_(gain)


def _orthogonal(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """Saxe et al. 2014: W = gain·Q with Q (semi-)orthogonal, so every singular value equals gain."""
    nn.init.orthogonal_(w, gain=gain)


def _meanfield(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """The mean-field parametrization (Poole et al. 2016; Schoenholz et al. 2017): W ~ N(0, σ_w²/n_in)."""
    nn.init.normal_(w, 0.0, math.sqrt(cfg.sigma_w2 / w.shape[1]))


def _meanfield_bias(b: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """b ~ N(0, σ_b²)."""
    nn.init.normal_(b, 0.0, math.sqrt(cfg.sigma_b2))


def _lsuv_start(w: torch.Tensor, cfg: DictConfig, gain: float) -> None:
    """LSUV's first stage: an orthonormal matrix (gain 1); :func:`lsuv` then rescales on data."""
    nn.init.orthogonal_(w, gain=1.0)


# A data-driven stage after every layer was filled: (model, its weight layers, training inputs, init config)
# -> what to record in summary.json.
DataStage = Callable[[nn.Module, list[nn.Linear], torch.Tensor, DictConfig], dict[str, Any]]
# n_in·Var[W] of a layer with fans (n_in, n_out) filled with gain g (mean-field theory's σ_w²).
SigmaW2 = Callable[[DictConfig, float, int, int], float]
# (σ_b², b̄): variance and mean of the bias of a layer with fan-in n_in.
BiasMoments = Callable[[DictConfig, int], tuple[float, float]]


def _constant_bias(cfg: DictConfig, n_in: int) -> tuple[float, float]:
    """Every bias equal to ``init.bias``: σ_b² = 0, b̄ = init.bias."""
    return 0.0, float(cfg.get("bias", 0.0))


@dataclass(frozen=True)
class Scheme:
    """One initialization scheme: how it fills a weight matrix, and what else it does.

    ``fill`` None leaves torch's own initialization of the layer (weights and bias) alone; ``data_stage``
    runs on training inputs once every layer is filled (LSUV's rescaling); ``bias`` fills the bias (None: the
    constant ``init.bias``). ``takes_gain``: the scheme scales by a gain (``init.gain``, null: the
    activation's). For mean-field theory (:mod:`initlab.theory`): ``sigma_w2`` is n_in·Var[W] from the
    scheme's formula (None: no variance formula -- weights of nonzero mean, or rescaled on data) and
    ``bias_moments`` the bias's (σ_b², b̄).
    """

    fill: InitFn | None
    sigma_w2: SigmaW2 | None
    data_stage: DataStage | None = None
    bias: InitFn | None = None  # fills the bias; None: the constant ``init.bias``
    takes_gain: bool = False
    bias_moments: BiasMoments = _constant_bias


def _lsuv_stage(
    model: nn.Module, linears: list[nn.Linear], x: torch.Tensor, cfg: DictConfig
) -> dict[str, Any]:
    return {"lsuv_variances": lsuv(model, linears, x[: cfg.batch_size], cfg.tol, cfg.max_iter)}


INITS: dict[str, Scheme] = {
    "zeros": Scheme(_zeros, lambda c, g, n_in, n_out: 0.0),
    "constant": Scheme(_constant, None),
    "normal": Scheme(_normal, lambda c, g, n_in, n_out: float(c.std) ** 2 * n_in),
    "standard": Scheme(_standard, lambda c, g, n_in, n_out: 1.0 / 3.0),  # U[±1/√n_in]
    "lecun": Scheme(_lecun, lambda c, g, n_in, n_out: 1.0),
    "xavier": Scheme(_xavier, lambda c, g, n_in, n_out: g * g * 2.0 * n_in / (n_in + n_out), takes_gain=True),
    "kaiming": Scheme(
        _kaiming,
        lambda c, g, n_in, n_out: g * g * (1.0 if c.mode == "fan_in" else n_in / n_out),
        takes_gain=True,
    ),
    # E[W²] = g²·min(n_in, n_out)/(n_in·n_out)
    "orthogonal": Scheme(
        _orthogonal, lambda c, g, n_in, n_out: g * g * min(n_in, n_out) / n_out, takes_gain=True
    ),
    "lsuv": Scheme(_lsuv_start, None, data_stage=_lsuv_stage),
    "meanfield": Scheme(
        _meanfield,
        lambda c, g, n_in, n_out: float(c.sigma_w2),
        bias=_meanfield_bias,
        bias_moments=lambda c, n_in: (float(c.sigma_b2), 0.0),
    ),
    # nn.Linear.reset_parameters() already ran: kaiming_uniform(a=√5) = U[±1/√n_in], bias U[±1/√n_in] too
    "torch_default": Scheme(
        None, lambda c, g, n_in, n_out: 1.0 / 3.0, bias_moments=lambda c, n_in: (1.0 / (3.0 * n_in), 0.0)
    ),
}


def layer_gain(cfg: DictConfig, act: DictConfig) -> float:
    """The gain of a layer followed by ``act``: ``init.gain`` when set, else the activation's own."""
    gain = cfg.get("gain", None)
    return activation_gain(act) if gain is None else float(gain)


def init_linear(layer: nn.Linear, cfg: DictConfig, act: DictConfig) -> None:
    """Initialize one linear layer's weight (and bias) with the scheme ``cfg.name``."""
    scheme = INITS[cfg.name]
    if scheme.fill is None:
        return
    scheme.fill(layer.weight, cfg, layer_gain(cfg, act))
    if layer.bias is not None:
        if scheme.bias is not None:
            scheme.bias(layer.bias, cfg, 1.0)
        else:
            nn.init.constant_(layer.bias, cfg.get("bias", 0.0))


def gain_note(cfg: DictConfig, act: DictConfig) -> str | None:
    """A one-line note when the effective gain breaks a known fixed point of ``act`` (else None).

    torch's ``calculate_gain("selu")`` is 3/4, so ``init=kaiming act=selu`` (gain null) gives
    n·Var[W] = 9/16 and the variance shrinks layer after layer instead of staying at 1.
    """
    fixed_point = ACTIVATIONS[act.name].fixed_point
    if fixed_point is None or not INITS[cfg.name].takes_gain:
        return None
    gain = layer_gain(cfg, act)
    if math.isclose(gain, 1.0):
        return None
    return f"initlab: note: init.gain={gain:.4g} with act={act.name}: {fixed_point}"


def init_model(linears: Iterable[nn.Linear], cfg: DictConfig, act: DictConfig) -> None:
    """Initialize every linear layer of a model (a scheme's data-driven stage is :func:`initialize`'s).

    A layer's gain is that of the nonlinearity that follows it: the hidden layers' activation, and for the
    output layer, whose logits go straight into the softmax, the linear gain 1.
    """
    *hidden, out = list(linears)
    for layer in hidden:
        init_linear(layer, cfg, act)
    init_linear(out, cfg, OmegaConf.create({"name": "linear"}))


def initialize(model: nn.Module, cfg: DictConfig, act: DictConfig, x: torch.Tensor) -> dict[str, Any]:
    """Initialize ``model`` with the scheme ``cfg.name``, then run its data stage (if any) on inputs ``x``.

    Returns what the scheme wants recorded in ``summary.json`` (LSUV: each layer's final variance).
    """
    linears = model.linears()
    if note := gain_note(cfg, act):
        print(note, file=sys.stderr)
    init_model(linears, cfg, act)
    stage = INITS[cfg.name].data_stage
    return stage(model, linears, x, cfg) if stage is not None else {}


@torch.no_grad()
def lsuv(
    model: nn.Module, linears: list[nn.Linear], x: torch.Tensor, tol: float, max_iter: int
) -> list[float]:
    """Layer-sequential unit-variance rescaling (Mishkin & Matas 2016, Algorithm 1).

    For each linear layer in forward order: run the batch ``x`` through the model, measure the variance
    of that layer's output and divide W by √Var until |Var − 1| < tol or ``max_iter`` passes. The model
    is run in eval mode (no dropout, batch norm on running stats) so no random state is consumed.
    Returns each layer's final output variance.
    """
    was_training = model.training
    model.eval()
    final: list[float] = []
    for layer in linears:
        seen: dict[str, torch.Tensor] = {}
        handle = layer.register_forward_hook(lambda m, i, o, seen=seen: seen.__setitem__("out", o))
        try:
            for it in range(max_iter + 1):
                model(x)
                var = seen["out"].var().item()
                if not math.isfinite(var) or var == 0 or abs(var - 1.0) < tol or it == max_iter:
                    break
                layer.weight.div_(math.sqrt(var))
        finally:
            handle.remove()
        final.append(var)
    model.train(was_training)
    return final
