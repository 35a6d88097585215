"""Every probe quantity of initlab's own MLP against an independent computation at step 0.

A plain forward written out here gives ``preact`` and ``act``, autograd gives ``grad_preact`` and
``grad_weight``, ``torch.autograd.functional.jacobian`` the Jacobian; the norm sits before or after the
activation, and tanh works at a scale (weights of std 3/sqrt(fan_in)) where it saturates, so that taking the
tensor before or after the norm, or before or after the activation, would change every number.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.autograd.functional import jacobian

from initlab.lab.models import MLP
from initlab.probing.settings import ProbeSettings
from initlab.probing.variants import make_probe


def mlp(norm: str, position: str) -> MLP:
    cfg = OmegaConf.create(
        {
            "width": 12,
            "depth": 3,
            "bias": True,
            "norm": norm,
            "norm_position": position,
            "dropout": 0.0,
            "input_dropout": 0.0,
            "bn_eps": 1e-5,
            "bn_momentum": 0.1,
        }
    )
    torch.manual_seed(0)
    model = MLP(5, 3, cfg, OmegaConf.create({"name": "tanh"}))
    for linear in model.linears():
        nn.init.normal_(linear.weight, std=3 / math.sqrt(linear.in_features))
        nn.init.normal_(linear.bias, std=0.5)
    return model


def reference(model: MLP, x: Tensor, y: Tensor, norm: str, position: str) -> dict[tuple[int, str], Tensor]:
    """The probe quantities of each layer, computed by hand in a plain forward and backward."""
    got: dict[tuple[int, str], Tensor] = {}
    h = x
    for index, block in enumerate(model.hidden, start=1):
        s = block.linear(h)
        pre = block.norm(s) if norm != "none" and position == "before" else s
        pre.retain_grad()
        a = torch.tanh(pre)
        got[(index, "preact")], got[(index, "act")], got[(index, "input")] = pre, a, h
        h = block.norm(a) if norm != "none" and position == "after" else a
    logits = model.out(h)
    logits.retain_grad()
    got[(len(model.hidden) + 1, "preact")] = logits
    F.cross_entropy(logits, y).backward()
    for index, linear in enumerate(model.linears(), start=1):
        got[(index, "grad_preact")] = got[(index, "preact")].grad
        got[(index, "weight")], got[(index, "grad_weight")] = linear.weight, linear.weight.grad
    return got


def describe(r: pd.Series, t: Tensor) -> None:
    v = t.detach().reshape(-1).float()
    assert r.n == v.numel()
    assert r["min"] == pytest.approx(float(v.min()), rel=1e-5, abs=1e-7)
    assert r["max"] == pytest.approx(float(v.max()), rel=1e-5, abs=1e-7)
    assert r["mean"] == pytest.approx(float(v.double().mean()), rel=1e-4, abs=1e-6)
    assert r["std"] == pytest.approx(float(v.double().std()), rel=1e-4)


@pytest.mark.parametrize(("norm", "position"), [("none", "before"), ("batch", "before"), ("layer", "after")])
def test_every_quantity_equals_an_independent_computation(tmp_path: Path, norm: str, position: str) -> None:
    model = mlp(norm, position)
    ref = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    settings = ProbeSettings(schedule="list", steps=(0,), jacobian=True, jacobian_examples=4)
    probe = make_probe(model, settings, 2, tmp_path, None)
    with probe.step(0):
        F.cross_entropy(model(x), y).backward()
    probe.close()
    rows = pd.read_parquet(tmp_path / "layers.parquet").set_index(["layer", "quantity"])  # a bare Probe
    want = reference(ref, x, y, norm, position)
    for index in range(1, 5):
        names = ["preact", "grad_preact", "weight", "grad_weight"] + (["act"] if index < 4 else [])
        for quantity in names:
            describe(rows.loc[(index, quantity)], want[(index, quantity)])
    assert (4, "act") not in rows.index
    saturated = rows.loc[(1, "act"), "frac_saturated"]
    assert saturated == pytest.approx(float((want[(1, "act")].abs() > 0.99).float().mean()))
    assert rows.loc[(1, "act"), "std"] < 0.8 * rows.loc[(1, "preact"), "std"]  # a scale where they differ
    for index in (2, 3):  # J = ∂act/∂(previous act) on the linear -> activation path (norm left out)
        block, pre = ref.hidden[index - 1], want[(index, "preact")].detach()
        inputs = want[(index, "input")].detach()
        singular = []
        for e in range(4):
            if position == "before" and norm != "none":  # diag(f'(preact))·W: the norm is ignored
                jac = jacobian(torch.tanh, pre[e]) @ block.linear.weight
            else:
                jac = jacobian(lambda v, linear=block.linear: torch.tanh(linear(v)), inputs[e])
            singular.append(torch.linalg.svdvals(jac))
        describe(rows.loc[(index, "jacobian")], torch.cat(singular))
