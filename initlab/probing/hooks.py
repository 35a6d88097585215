"""Capturing the tensors of any ``nn.Module``'s layers during one forward/backward pass.

Layers, norms and activations are defined in :mod:`~initlab.probing.layers`. Layers are numbered 1, 2, ...
in the order of their first call in the first traced pass (the forward order). Per traced pass, for each
layer (its **first call** in the pass when a module is called more than once):

=================  ========================================================================================
``preact``         the input of the activation module that follows the layer -- the module whose input is
                   the layer's output tensor itself, or the output of a norm module (batch, layer, group,
                   instance, RMS norm) applied to it; without such a module (the output layer, functional
                   activations such as ``F.relu``, a residual sum in between) the layer's output
``act``            that activation module's output (none when there is no activation module)
``grad_preact``    ∂L/∂preact, read by a tensor hook during the backward pass
``weight``         a parametrized layer's weight as its forward computed it (plain weights are read by the
                   probe from the parameter); ``grad_weight``: ∂L/∂ that tensor, by a tensor hook
=================  ========================================================================================

The output of an attention or recurrent layer (a tuple) is its first element (the attention output, the
RNN's output sequence). "Follows" is decided by tensor identity and the tensor's version counter, never by
module order: an activation module shared by several layers (one ``nn.ReLU`` called after every conv) is
matched to each call, and a residual ``x + f(x)`` between a layer and an activation breaks the match, in
place (``out += identity``) or not. Nothing changed in place after it was captured is reported as it was
before: the input of an in-place activation is copied before the activation runs; the first traced pass
copies every captured tensor, and a tensor found changed in place by the end of a pass (an in-place
``Dropout`` after an activation) is copied at capture in every later pass. A tensor hook registered before
an in-place change receives the gradient of the value it was registered on.

On a model compiled with ``torch.compile`` the traced pass runs eagerly (``torch.compiler.set_stance(
"force_eager")``, torch >= 2.6; with an older torch a compiled model is refused), so the hooks see it. A
pass inside :meth:`Tracer.trace` whose layer outputs carry no gradient (a ``torch.no_grad`` evaluation
pass) is replaced by the next pass that has one.

The module hooks registered by a :class:`Tracer` run before any hook registered later on the same module.
A copy of the model made while they are on (``copy.deepcopy``, ``torch.save(model)``) gets inert hooks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.hooks import RemovableHandle

from initlab.errors import UserError
from initlab.probing.layers import (
    TORCH_ACTIVATIONS,
    Activations,
    Layer,
    LayerKind,
    is_norm,
    layer_kind,
    weight_shape,
)

Key = tuple[int, str]  # (layer, what): what is "out", "preact" or "act"
NO_ACT = {  # why a layer has no act, as summary.json's probed_layers say
    "in place": "its output (or its norm's) was changed in place before any activation module read it, "
    "e.g. by a residual `+=`",
    "none": "no activation module read its output (or its norm's): a functional activation (F.relu, "
    "torch.tanh), another operation in between, or the output layer",
}


def unwrap(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper holds (``model`` itself otherwise); a TorchScript module is
    refused: its forward runs no Python hooks."""
    scripted = [n or "the model" for n, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise UserError(
            f"initlab.probe cannot probe a torch.jit.script module ({scripted[0]}): TorchScript runs no "
            "Python hooks; expected the nn.Module before torch.jit.script"
        )
    inner = getattr(model, "_orig_mod", None)
    if not isinstance(inner, nn.Module):
        return model
    if not hasattr(torch.compiler, "set_stance"):
        raise UserError(
            f"initlab.probe cannot probe a torch.compile model with torch {torch.__version__} (no "
            "torch.compiler.set_stance to run probed steps eagerly): expected torch >= 2.6, or the module "
            "before torch.compile"
        )
    return inner


def _eager() -> AbstractContextManager[object]:
    """Compiled code runs eagerly while active (``torch.compiler.set_stance``, torch >= 2.6)."""
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("force_eager") if stance is not None else nullcontext()


def is_layer(module: nn.Module) -> bool:
    """A module whose ``weight`` has two or more dimensions (the ``weight`` kind of layer), read without
    computing a parametrized weight."""
    shape = weight_shape(module)
    return shape is not None and len(shape) >= 2


def is_activation(module: nn.Module) -> bool:
    """One of torch's activation modules (``nn.Identity`` is not one)."""
    return isinstance(module, TORCH_ACTIVATIONS)


def _is_lazy(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), nn.parameter.UninitializedParameter)


def _version(t: Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference tensor has no version counter: it cannot be changed in place
        return -1


def _first_tensor(out: object) -> Tensor | None:
    """A layer's output: the tensor, or the first element of a tuple (attention, RNN, PackedSequence)."""
    while isinstance(out, tuple | list) and out:
        out = out[0]
    return out if isinstance(out, Tensor) else None


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

    source: dict[int, tuple[Layer, Tensor, int]] = field(default_factory=dict)  # id -> layer, tensor, version
    kept: dict[Key, tuple[Tensor, int]] = field(default_factory=dict)  # the tensor and its version at capture
    copies: dict[Key, Tensor] = field(default_factory=dict)  # copies made at capture
    grad_out: dict[int, Tensor] = field(default_factory=dict)
    grad_preact: dict[int, Tensor] = field(default_factory=dict)
    weight: dict[int, Tensor] = field(default_factory=dict)  # parametrized weights, as the forward made them
    grad_weight: dict[int, Tensor] = field(default_factory=dict)
    own_preact: set[int] = field(default_factory=set)  # layers whose preact is not their output (a norm)
    pending: dict[int, Layer] = field(default_factory=dict)  # id(act module) -> layer, between pre and post
    computed: dict[int, Tensor] = field(default_factory=dict)  # id(module) -> its last parametrized weight
    layers: set[int] = field(default_factory=set)  # the layers called so far
    any_grad: bool = False  # some layer output requires grad
    replaced: bool = False  # a pass without gradient was dropped for this one


class Tracer:
    """Discovers the layers of ``model`` and captures their tensors while :meth:`trace` is active.

    The module hooks stay registered from :meth:`attach` to :meth:`detach` (a probe keeps them over a run
    of consecutive probed steps) and do nothing outside :meth:`trace`; in a traced pass each layer costs a
    dictionary entry per tensor and one gradient hook (two when a norm sits between layer and activation).
    ``notes`` holds what the last pass could not capture, one line each.
    """

    def __init__(self, model: nn.Module, activations: Activations | None = None) -> None:
        self.model = unwrap(model)
        self.is_activation = activations or Activations()
        self.names: dict[nn.Module, str] = {}
        for name, module in self.model.named_modules():
            self.names.setdefault(module, name or type(module).__name__)
        self.kinds: dict[nn.Module, LayerKind | None] = {}  # None: a lazy module, decided once it has run
        for m in self.names:
            if (kind := layer_kind(m)) is not None or _is_lazy(m):
                self.kinds[m] = kind
        self.layers: list[Layer] = []
        self.notes: list[str] = []
        self.had_grad = False  # whether the last traced pass computed gradients of layer outputs
        self._by_module: dict[nn.Module, Layer] = {}
        self.followers: dict[str, Layer] = {}  # path of a norm or activation module -> the layer it follows
        self._copy: set[Key] = set()  # copied at capture: found changed in place in an earlier pass
        self._frozen = False  # the layer list is fixed by the first traced pass
        self._state: _Pass | None = None  # the pass being traced
        self._handles: list[RemovableHandle] = []

    # -- hooks -----------------------------------------------------------------------------------------
    def _keep(self, state: _Pass, key: Key, t: Tensor) -> None:
        state.kept[key] = (t, _version(t))
        if not self._frozen or key in self._copy:
            state.copies[key] = t.detach().clone()

    def _on_layer(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state, y = self._state, _first_tensor(out)
        if state is None or y is None:
            return
        layer = self._by_module.get(module)
        if layer is None and not self._frozen:
            kind = self.kinds[module] or layer_kind(module)
            if kind is None:
                return
            layer = Layer(len(self.layers) + 1, self.names[module], module, *kind.fans(module), kind.name)
            self.layers.append(layer)
            self._by_module[module] = layer
        if layer is None:
            return
        if layer.index in state.layers:
            if state.any_grad or not y.requires_grad:
                return  # a second call: the first one is probed
            state = self._state = _Pass(computed=state.computed, replaced=True)  # the pass with gradients
        state.layers.add(layer.index)
        self._keep(state, (layer.index, "out"), y)
        state.source[id(y)] = (layer, y, _version(y))
        if y.requires_grad:
            state.any_grad = True
            y.register_hook(partial(state.grad_out.__setitem__, layer.index))
        w = state.computed.pop(id(module), None)
        if w is not None:
            state.weight[layer.index] = w
            if w.requires_grad:
                w.register_hook(partial(state.grad_weight.__setitem__, layer.index))

    def _on_parametrization(self, owner: nn.Module, module: nn.Module, inputs: tuple, out: object) -> None:
        if self._state is not None and isinstance(out, Tensor):
            self._state.computed[id(owner)] = out

    def _match(self, state: _Pass, x: object) -> Layer | None:
        """The layer whose output (or its norm's output) ``x`` is, unchanged since (else None)."""
        src = state.source.get(id(x)) if isinstance(x, Tensor) else None
        if src is None or src[1] is not x or src[2] != _version(x):
            return None
        return src[0]

    def _on_norm(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state = self._state
        layer = self._match(state, inputs[0]) if state is not None and inputs else None
        if state is not None and layer is not None and isinstance(out, Tensor):
            state.source[id(out)] = (layer, out, _version(out))
            self.followers.setdefault(self.names[module], layer)

    def _on_act_input(self, module: nn.Module, inputs: tuple) -> None:
        state = self._state
        if state is None or not inputs:
            return
        layer, x = self._match(state, inputs[0]), inputs[0]
        key = (layer.index, "preact") if layer is not None else None
        if layer is None or key in state.kept:
            return
        if not self._frozen and layer.act is None:
            layer.act = module
        self.followers.setdefault(self.names[module], layer)
        if getattr(module, "inplace", False):  # overwritten by the activation itself
            state.kept[key] = (x, _version(x))
            state.copies[key] = x.detach().clone()
        else:
            self._keep(state, key, x)
        state.pending[id(module)] = layer
        if x is not state.kept[(layer.index, "out")][0]:  # else the output's own gradient hook serves
            state.own_preact.add(layer.index)
            if x.requires_grad:
                x.register_hook(partial(state.grad_preact.__setitem__, layer.index))

    def _on_act_output(self, module: nn.Module, inputs: tuple, out: object) -> None:
        state = self._state
        layer = state.pending.pop(id(module), None) if state is not None else None
        if state is not None and layer is not None and isinstance(out, Tensor):
            self._keep(state, (layer.index, "act"), out)

    def attach(self) -> None:
        """Register the module hooks (once); they record nothing outside :meth:`trace`."""
        if self._handles:
            return
        for m in self.names:
            if m in self.kinds:
                self._handles.append(m.register_forward_hook(_Hook(self._on_layer)))
                kind = self.kinds[m]
                if kind is not None and kind.weight and parametrize.is_parametrized(m, "weight"):
                    plist = m.parametrizations["weight"]
                    hook = _Hook(partial(self._on_parametrization, m))
                    self._handles.append(plist.register_forward_hook(hook))
            elif is_norm(m):
                self._handles.append(m.register_forward_hook(_Hook(self._on_norm)))
            elif self.is_activation(m):
                self._handles.append(m.register_forward_pre_hook(_Hook(self._on_act_input)))
                self._handles.append(m.register_forward_hook(_Hook(self._on_act_output)))

    def detach(self) -> None:
        """Remove the module hooks: the model runs as if never probed."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextmanager
    def trace(self, keep: bool = False) -> Iterator[dict[Key, Tensor]]:
        """Hooks on while active; on exit the yielded dict holds ``(layer, quantity) -> tensor``
        (``preact``, ``act``, ``grad_preact``, and ``weight``/``grad_weight`` of parametrized layers).

        ``keep``: leave the hooks registered afterwards (the next pass is traced too); they are removed
        anyway when the pass raises.
        """
        self.attach()
        self._state = _Pass()
        captured: dict[Key, Tensor] = {}
        try:
            with _eager():
                yield captured
        except BaseException:
            keep = False
            raise
        finally:
            state, self._state = self._state, None
            if not keep:
                self.detach()
            if not self.layers and not self._frozen:
                warnings.warn(
                    "the probed pass called no layer: no module with a weight of 2+ dimensions, no attention "
                    "or recurrent module",
                    stacklevel=3,
                )
            captured.update(self._collect(state))
            self._frozen = self._frozen or bool(state.layers)

    def _value(self, state: _Pass, key: Key) -> Tensor | None:
        """The captured tensor as it was at capture: its copy, or itself if it is unchanged since."""
        t, version = state.kept[key]
        changed = _version(t) != version
        if changed:
            self._copy.add(key)  # copied at capture from the next pass on
        if key in state.copies:
            return state.copies[key]
        if not changed:
            return t.detach()
        self.notes.append(f"layer {key[0]} {key[1]} was changed in place after capture: left out this once")
        return None

    def _why_no_act(self, state: _Pass) -> None:
        """Each layer without an activation module says why (:attr:`Layer.no_act`), from the first pass."""
        changed = {layer.index for layer, t, version in state.source.values() if _version(t) != version}
        for layer in self.layers:
            if layer.act is None:
                layer.no_act = NO_ACT["in place" if layer.index in changed else "none"]

    def _collect(self, state: _Pass) -> dict[Key, Tensor]:
        self.notes = []
        self.had_grad = state.any_grad
        if state.replaced:
            self.notes.append("a pass without gradient (torch.no_grad) came first: the next pass was probed")
        elif state.layers and not state.any_grad:
            self.notes.append("the probed pass had no gradient (torch.no_grad): no gradients were recorded")
        if not self._frozen:
            self._why_no_act(state)
        out: dict[Key, Tensor] = {}
        for index in sorted(state.layers):
            has_act = (index, "act") in state.kept
            pre = (index, "preact" if has_act else "out")
            for quantity, key in (("preact", pre), ("act", (index, "act"))):
                if key in state.kept and (value := self._value(state, key)) is not None:
                    out[(index, quantity)] = value
            grads = state.grad_preact if has_act and index in state.own_preact else state.grad_out
            if (grad := grads.get(index)) is not None:
                out[(index, "grad_preact")] = grad.detach()
            if index in state.weight:
                out[(index, "weight")] = state.weight[index].detach()
            if (grad := state.grad_weight.get(index)) is not None:
                out[(index, "grad_weight")] = grad.detach()
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
