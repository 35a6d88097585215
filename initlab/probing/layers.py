"""What the probes call a layer, a norm and an activation in any ``nn.Module`` (the registries), and the
:class:`Layer` record.

A **layer** is a module of one of the :data:`LAYER_KINDS`, whose forward is called in the probed pass:

==============  ==========================================================  ==============================
kind            modules                                                     fans (fan_in, fan_out)
==============  ==========================================================  ==============================
``attention``   ``nn.MultiheadAttention`` (its ``out_proj`` is not called   (embed_dim, embed_dim)
                as a module: its parameters belong to the attention layer)
``recurrent``   ``nn.RNN``/``nn.LSTM``/``nn.GRU`` and their cells           (input_size, hidden_size)
``weight``      any module whose ``weight`` has two or more dimensions      torch's fans of the weight:
                (``nn.Linear``, ``nn.Conv*d``, ``nn.Embedding``, a custom   (in, out)·∏ kernel size, the
                module), parametrized or not                                n of He et al. 2015, Eq. 10
==============  ==========================================================  ==============================

A parametrized weight (``torch.nn.utils.parametrizations.spectral_norm``, ``weight_norm``, ``orthogonal``)
is never read through ``module.weight`` outside the forward: that would run the parametrization again (a
spectral norm's power iteration updates its buffers). Its shape is the shape of its largest original.

Activations are the classes of ``torch.nn.modules.activation`` (but ``MultiheadAttention``) plus those a
user names; ``nn.Identity`` is not one (initlab's own nets name it: their ``act=linear``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.modules import activation as _activation
from torch.nn.utils import parametrize

from initlab.errors import UserError

NORMS: tuple[type[nn.Module], ...] = tuple(
    cls
    for cls in (
        nn.modules.batchnorm._NormBase,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if cls is not None
)
TORCH_ACTIVATIONS: tuple[type[nn.Module], ...] = tuple(
    cls
    for cls in vars(_activation).values()
    if isinstance(cls, type)
    and issubclass(cls, nn.Module)
    and cls.__module__ == _activation.__name__
    and cls is not nn.MultiheadAttention
)
# Activations whose outputs have a fixed range and a saturation rule (see :mod:`initlab.probing.stats`).
KIND: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softsign: "softsign"}


def weight_shape(module: nn.Module) -> tuple[int, ...] | None:
    """The shape of ``module.weight`` without computing a parametrized weight (None: no weight tensor)."""
    if parametrize.is_parametrized(module, "weight"):
        originals = [p for _, p in module.parametrizations["weight"].named_parameters()]
        return tuple(max(originals, key=Tensor.numel).shape) if originals else None
    weight = getattr(module, "weight", None)
    if not isinstance(weight, Tensor) or isinstance(weight, nn.parameter.UninitializedParameter):
        return None  # no weight, or a lazy module's before its first call
    return tuple(weight.shape)


def weight_fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) as torch's initializers compute them: (in, out)·∏ kernel size."""
    receptive = 1
    for k in shape[2:]:
        receptive *= k
    return int(shape[1]) * receptive, int(shape[0]) * receptive


@dataclass(frozen=True)
class LayerKind:
    """One row of :data:`LAYER_KINDS`: which modules it holds and their fans; ``weight``: whether the layer
    has one weight tensor (the ``weight``/``grad_weight`` quantities)."""

    name: str
    holds: Callable[[nn.Module], bool]
    fans: Callable[[nn.Module], tuple[int, int]]
    weight: bool


def _has_matrix(module: nn.Module) -> bool:
    shape = weight_shape(module)
    return shape is not None and len(shape) >= 2


LAYER_KINDS: tuple[LayerKind, ...] = (
    LayerKind(
        "attention",
        lambda m: isinstance(m, nn.MultiheadAttention),
        lambda m: (m.embed_dim, m.embed_dim),
        weight=False,
    ),
    LayerKind(
        "recurrent",
        lambda m: isinstance(m, nn.RNNBase | nn.RNNCellBase),
        lambda m: (m.input_size, m.hidden_size),
        weight=False,
    ),
    LayerKind("weight", _has_matrix, lambda m: weight_fans(weight_shape(m) or (1, 1)), weight=True),
)


def layer_kind(module: nn.Module) -> LayerKind | None:
    """The first row of :data:`LAYER_KINDS` that holds ``module`` (None: not a layer)."""
    return next((kind for kind in LAYER_KINDS if kind.holds(module)), None)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORMS)


def _is_module_class(a: object) -> bool:
    return isinstance(a, type) and issubclass(a, nn.Module)


class Activations:
    """Which modules are activations: torch's classes plus the ``extra`` a user names, by class or by class
    name (``activations=[MyGELU]`` or ``["MyGELU"]``)."""

    def __init__(self, extra: Sequence[type[nn.Module] | str] = ()) -> None:
        bad = [a for a in extra if not isinstance(a, str) and not _is_module_class(a)]
        if bad:
            raise UserError(f"activations={bad!r} is not allowed: expected nn.Module classes or class names")
        self.classes = (*TORCH_ACTIVATIONS, *(a for a in extra if isinstance(a, type)))
        self.names = frozenset(a for a in extra if isinstance(a, str))

    def __call__(self, module: nn.Module) -> bool:
        return isinstance(module, self.classes) or type(module).__name__ in self.names

    def check_names(self, model: nn.Module) -> None:
        """Every class name given must be the class of a module of ``model`` (a typo would probe nothing)."""
        present = {type(m).__name__ for m in model.modules()}
        if missing := sorted(self.names - present):
            raise UserError(
                f"activations={missing} names no module of the model: expected class names among "
                f"{', '.join(sorted(present))}"
            )


@dataclass
class Layer:
    """One probed layer: its index (1 = first in forward order), module path, module, fans and kind."""

    index: int
    name: str
    module: nn.Module
    fan_in: int
    fan_out: int
    family: str = "weight"  # the name of its row of LAYER_KINDS
    act: nn.Module | None = None  # the activation module that followed it in the first traced pass
    no_act: str | None = None  # without one, why (see initlab.probing.hooks.NO_ACT)

    @property
    def has_weight(self) -> bool:
        return self.family == "weight"

    @property
    def parametrized(self) -> bool:
        return self.has_weight and parametrize.is_parametrized(self.module, "weight")

    @property
    def weight(self) -> Tensor | None:
        """The weight parameter (None for attention and recurrent layers and parametrized weights: those
        are read in the forward, see :mod:`~initlab.probing.hooks`)."""
        if not self.has_weight or self.parametrized:
            return None
        return self.module.weight

    @property
    def kind(self) -> str | None:
        """``tanh``, ``sigmoid`` or ``softsign`` when its activation is one of them (bounded outputs)."""
        return KIND.get(type(self.act)) if self.act is not None else None
