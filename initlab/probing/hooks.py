"""Finding the layers of any ``nn.Module`` and capturing their tensors during one forward/backward pass.

A **layer** is every module whose ``weight`` has two or more dimensions (``nn.Linear``, ``nn.Conv1d/2d/3d``,
``nn.Embedding``, a custom module holding a weight matrix, ...) whose forward is called, numbered 1, 2, ...
in the order of its first call in the first traced pass (the forward order). Its fans are
``torch.nn.init._calculate_fan_in_and_fan_out(weight)``: (in, out) of a linear layer, (C_in·k², C_out·k²)
of a k×k convolution -- the n of He et al. 2015, Eq. 10.

Per traced pass, for each layer (first call only when a module is called more than once):

=================  ========================================================================================
``preact``         the input of the activation module that follows the layer -- the module whose input is
                   the layer's output tensor itself, or the output of a norm module (batch, layer, group,
                   instance, RMS norm) applied to it; without such a module (the output layer, functional
                   activations such as ``F.relu``, a residual sum in between) the layer's output
``act``            that activation module's output (none when there is no activation module)
``grad_preact``    ∂L/∂preact, read by a tensor hook during the backward pass
=================  ========================================================================================

"Follows" is decided by tensor identity, never by module order, so an activation module shared by several
layers (one ``nn.ReLU`` called after every conv) is matched to each call, and a residual ``x + f(x)``
between a layer and an activation breaks the match. The input of an in-place activation
(``nn.ReLU(inplace=True)``) is copied before the activation overwrites it. Activation modules are the
classes of ``torch.nn.modules.activation`` (but ``MultiheadAttention``) and ``nn.Identity`` (initlab's
``act=linear``).

The module hooks registered by a :class:`Tracer` run before any hook registered later on the same module.
A copy of the model made while they are on (``copy.deepcopy``, ``torch.save(model)``) gets inert hooks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.modules import activation as _activation
from torch.utils.hooks import RemovableHandle

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
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    *(
        cls
        for cls in vars(_activation).values()
        if isinstance(cls, type)
        and issubclass(cls, nn.Module)
        and cls.__module__ == _activation.__name__
        and cls is not nn.MultiheadAttention
    ),
    nn.Identity,
)
# Activations whose outputs have a fixed range and a saturation rule (see :mod:`initlab.probing.stats`).
KIND: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softsign: "softsign"}


def is_layer(module: nn.Module) -> bool:
    """A module whose ``weight`` has two or more dimensions."""
    weight = getattr(module, "weight", None)
    return isinstance(weight, Tensor) and weight.ndim >= 2


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORMS)


def is_activation(module: nn.Module) -> bool:
    return isinstance(module, ACTIVATIONS)


@dataclass
class Layer:
    """One probed layer: its index (1 = first in forward order), module path, module and fans."""

    index: int
    name: str
    module: nn.Module
    fan_in: int
    fan_out: int
    act: nn.Module | None = None  # the activation module that followed it in the first traced pass

    @property
    def weight(self) -> Tensor:
        return self.module.weight

    @property
    def kind(self) -> str | None:
        """``tanh``, ``sigmoid`` or ``softsign`` when its activation is one of them (bounded outputs)."""
        return KIND.get(type(self.act)) if self.act is not None else None


def fans(weight: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as torch's initializers compute them: (in, out)·∏ kernel size."""
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return int(fan_in), int(fan_out)


class _Hook:
    """A module hook that calls a :class:`Tracer`'s method. A copy of the module -- ``copy.deepcopy`` (an
    EMA copy, ``torch.optim.swa_utils.AveragedModel``) or a pickle (``torch.save(model)``) made while the
    hooks are on -- gets an inert hook (it records nothing) instead of a copy of the tracer."""

    __slots__ = ("method",)

    def __init__(self, method: Callable[..., None] | None = None) -> None:
        self.method = method

    def __call__(self, *args: object) -> None:
        if self.method is not None:
            self.method(*args)

    def __reduce__(self) -> tuple[type[_Hook], tuple[()]]:
        return _Hook, ()


@dataclass
class _Pass:
    """What one traced pass has seen so far."""

    source: dict[int, tuple[Layer, Tensor]] = field(default_factory=dict)  # id(tensor) -> (layer, tensor)
    out: dict[int, Tensor] = field(default_factory=dict)
    preact: dict[int, Tensor] = field(default_factory=dict)
    act: dict[int, Tensor] = field(default_factory=dict)
    grad_out: dict[int, Tensor] = field(default_factory=dict)
    grad_preact: dict[int, Tensor] = field(default_factory=dict)
    own_preact: set[int] = field(default_factory=set)  # layers whose preact is not their output (a norm)
    pending: dict[int, Layer] = field(default_factory=dict)  # id(act module) -> layer, between pre and post


class Tracer:
    """Discovers the layers of ``model`` and captures their tensors while :meth:`trace` is active.

    The module hooks stay registered from :meth:`attach` to :meth:`detach` (a probe keeps them over a run
    of consecutive probed steps) and do nothing outside :meth:`trace`; in a traced pass each layer costs a
    dictionary entry per tensor and one gradient hook (two when a norm sits between layer and activation).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names: dict[nn.Module, str] = {}
        for name, module in model.named_modules():
            self.names.setdefault(module, name or type(module).__name__)
        self.candidates = [m for m in self.names if is_layer(m) or is_norm(m) or is_activation(m)]
        self.layers: list[Layer] = []
        self._by_module: dict[nn.Module, Layer] = {}
        self._frozen = False  # the layer list is fixed by the first traced pass
        self._state: _Pass | None = None  # the pass being traced
        self._handles: list[RemovableHandle] = []

    # -- hooks -----------------------------------------------------------------------------------------
    def _on_layer(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state = self._state
        if state is None or not isinstance(out, Tensor):
            return
        layer = self._by_module.get(module)
        if layer is None and not self._frozen:
            layer = Layer(len(self.layers) + 1, self.names[module], module, *fans(module.weight))
            self.layers.append(layer)
            self._by_module[module] = layer
        if layer is None or layer.index in state.out:
            return
        state.out[layer.index] = out
        state.source[id(out)] = (layer, out)
        if out.requires_grad:
            out.register_hook(partial(state.grad_out.__setitem__, layer.index))

    def _on_norm(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state = self._state
        src = state.source.get(id(inputs[0])) if state is not None and inputs else None
        if src is not None and src[1] is inputs[0] and isinstance(out, Tensor):
            state.source[id(out)] = (src[0], out)  # type: ignore[union-attr]

    def _on_act_input(self, module: nn.Module, inputs: tuple) -> None:
        state = self._state
        if state is None or not inputs:
            return
        x = inputs[0]
        src = state.source.get(id(x))
        if src is None or src[1] is not x or src[0].index in state.preact:
            return
        layer = src[0]
        if not self._frozen and layer.act is None:
            layer.act = module
        state.preact[layer.index] = x.detach().clone() if getattr(module, "inplace", False) else x
        state.pending[id(module)] = layer
        if x is not state.out[layer.index]:  # else the output's own gradient hook serves
            state.own_preact.add(layer.index)
            if x.requires_grad:
                x.register_hook(partial(state.grad_preact.__setitem__, layer.index))

    def _on_act_output(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state = self._state
        layer = state.pending.pop(id(module), None) if state is not None else None
        if layer is not None and isinstance(out, Tensor):
            state.act[layer.index] = out  # type: ignore[union-attr]

    def attach(self) -> None:
        """Register the module hooks (once); they record nothing outside :meth:`trace`."""
        if self._handles:
            return
        for m in self.candidates:
            if is_layer(m):
                self._handles.append(m.register_forward_hook(_Hook(self._on_layer)))
            elif is_norm(m):
                self._handles.append(m.register_forward_hook(_Hook(self._on_norm)))
            else:
                self._handles.append(m.register_forward_pre_hook(_Hook(self._on_act_input)))
                self._handles.append(m.register_forward_hook(_Hook(self._on_act_output)))

    def detach(self) -> None:
        """Remove the module hooks: the model runs as if never probed."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextmanager
    def trace(self, keep: bool = False) -> Iterator[dict[tuple[int, str], Tensor]]:
        """Hooks on while active; on exit the yielded dict holds ``(layer, quantity) -> tensor``.

        ``keep``: leave the hooks registered afterwards (the next pass is traced too); they are removed
        anyway when the pass raises.
        """
        self.attach()
        state = self._state = _Pass()
        captured: dict[tuple[int, str], Tensor] = {}
        try:
            yield captured
        except BaseException:
            keep = False
            raise
        finally:
            self._state = None
            if not keep:
                self.detach()
            if state.out and not self._frozen:
                self._frozen = True
            elif not self.layers and not self._frozen:
                warnings.warn("the probed pass called no module with a weight of 2+ dimensions", stacklevel=3)
            captured.update(self._collect(state))

    @staticmethod
    def _collect(state: _Pass) -> dict[tuple[int, str], Tensor]:
        out: dict[tuple[int, str], Tensor] = {}
        for index, y in state.out.items():
            has_act = index in state.act
            out[(index, "preact")] = (state.preact[index] if has_act else y).detach()
            if has_act:
                out[(index, "act")] = state.act[index].detach()
            grads = state.grad_preact if has_act and index in state.own_preact else state.grad_out
            grad = grads.get(index)
            if grad is not None:
                out[(index, "grad_preact")] = grad.detach()
        return out


def discover(model: nn.Module, *inputs: Tensor) -> list[Layer]:
    """The layers of ``model`` as one forward pass on ``inputs`` in eval mode finds them (no gradients)."""
    tracer = Tracer(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer.trace():
            model(*inputs)
    finally:
        model.train(was_training)
    return tracer.layers
