"""Every parameter of a model, each named by its qualified name and given to the layer that owns it.

The ``weight`` of a layer (:mod:`~initlab.probing.layers`) is probed as the layer's ``weight`` and
``grad_weight`` rows. Every other parameter -- biases, ``in_proj_weight`` and ``out_proj`` of an attention
layer, ``weight_ih_l0`` of an LSTM, norm weights, embeddings that are never called as layers, the originals
of a parametrized weight, a user's own ``nn.Parameter`` -- gets ``param`` and ``grad_param`` rows whose
``param`` column is its qualified name (``model.named_parameters()``, where a tied parameter appears once).
Its ``layer`` is the index of the nearest module on its path that is a probed layer (an attention layer
owns ``attn.out_proj.weight``), else the layer whose output the norm or activation module holding it was
first applied to (a BatchNorm's γ and β, a PReLU's slopes), else 0; ``name``, ``fan_in`` and ``fan_out``
are that layer's (as on every row of the layer), or else the path of the module holding it and 0, 0.

Left out (and named in the coverage warning): parameters that are not materialized (lazy modules before
their first call; each counts as one value in the coverage) and complex ones (the statistics are real).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from initlab.probing.layers import Layer

LEFT_OUT: dict[str, Callable[[nn.Parameter], bool]] = {  # why a parameter has no rows -> the test of it
    "not materialized (a lazy module before its first call)": lambda p: isinstance(
        p, nn.parameter.UninitializedParameter
    ),
    "complex values": lambda p: p.is_complex(),
}


@dataclass(frozen=True)
class ParamRow:
    """One parameter probed as ``param``/``grad_param``: its qualified name, owner layer, owner path, fans."""

    param: str
    layer: int
    name: str
    tensor: nn.Parameter
    fan_in: int
    fan_out: int


def _why_left_out(p: nn.Parameter) -> str | None:
    return next((why for why, test in LEFT_OUT.items() if test(p)), None)


@dataclass
class Coverage:
    """How many parameter values the probe reports (as layer weights or ``param`` rows) of how many."""

    probed: int = 0
    total: int = 0
    left_out: dict[str, set[str]] | None = None  # why -> module types

    @property
    def fraction(self) -> float:
        return self.probed / self.total if self.total else 1.0

    def warning(self) -> str | None:
        """One line naming the module types left out and why, below 100 %."""
        if not self.left_out:
            return None
        why = "; ".join(f"{', '.join(sorted(types))}: {reason}" for reason, types in self.left_out.items())
        return f"the probes see {100 * self.fraction:.1f}% of the parameters; left out: {why}"

    def as_dict(self) -> dict[str, object]:
        return {
            "param_coverage": self.fraction,
            "params_left_out": {k: sorted(v) for k, v in (self.left_out or {}).items()},
        }


def param_rows(
    model: nn.Module, layers: list[Layer], followers: dict[str, Layer] | None = None
) -> tuple[list[ParamRow], Coverage]:
    """The ``param`` rows of ``model`` given its probed ``layers`` and the layer each norm or activation
    module (by path) ``followers`` (the first it was applied to), and the coverage of all parameters."""
    by_path = {layer.name: layer for layer in layers}
    modules = dict(model.named_modules())
    weights = {id(layer.weight) for layer in layers if layer.weight is not None}
    rows: list[ParamRow] = []
    cover = Coverage(left_out={})
    for qualified, p in model.named_parameters():
        path = qualified.rpartition(".")[0]
        if (why := _why_left_out(p)) is not None:
            cover.left_out.setdefault(why, set()).add(type(modules[path]).__name__)  # type: ignore[union-attr]
            lazy = isinstance(p, nn.parameter.UninitializedParameter)
            cover.total += 1 if lazy else p.numel()  # a lazy parameter has no size yet: one value
            continue
        cover.total += p.numel()
        cover.probed += p.numel()
        if id(p) in weights:
            continue
        parts = path.split(".") if path else []
        prefixes = (".".join(parts[:k]) for k in range(len(parts), 0, -1))
        owner = next((by_path[prefix] for prefix in prefixes if prefix in by_path), None)
        owner = owner or (followers or {}).get(path)
        if owner is None:
            rows.append(ParamRow(qualified, 0, path or type(model).__name__, p, 0, 0))
        else:
            rows.append(ParamRow(qualified, owner.index, owner.name, p, owner.fan_in, owner.fan_out))
    return rows, cover
