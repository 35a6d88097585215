"""Mean-field signal propagation: what an initialized fully-connected net should look like, layer by layer.

A hidden layer l of the MLP computes h^l = W^l·a^(l−1) + b^l, a^l = φ(h^l) (a^0 = x, the input), with
W^l_ij ~ (0, σ_w,l²/n_(l−1)) and b^l_i ~ (b̄_l, σ_b,l²). Over the weight distribution every pre-activation
is (in the wide limit) Gaussian, h^l ~ N(b̄_l, q^l), and (Poole et al. 2016; Schoenholz et al. 2017, Eq. 3)

    q^1 = σ_w,1²·E[x²] + σ_b,1²,            q^l = σ_w,l²·E_z[φ(b̄_(l−1) + √q^(l−1)·z)²] + σ_b,l²,

with z ~ N(0, 1) and E[x²] the data's mean squared input. Each expectation is a Gauss–Hermite sum
(:mod:`initlab.theory.meanfield`); φ comes from the torch module of the run's activation.
The activations have mean E[φ(h^l)] and variance E[φ(h^l)²] − E[φ(h^l)]². Inverted dropout with drop
probability p multiplies the second moment a layer passes on by 1/(1−p).

Backward (Glorot & Bengio 2010, Eqs. 6 and 13; Schoenholz et al. 2017, Eq. 13): δ^l = ∂L/∂h^l satisfies

    Var[δ^l] = σ_w,(l+1)²·(n_(l+1)/n_l)·E[φ′(h^l)²]·Var[δ^(l+1)],

the gradient-independence approximation: going down one layer the variance changes by χ₁ times the fan
ratio fan_out/fan_in of the layer above. At the logits, δ = (softmax(h) − onehot(y))/B for a batch of B
examples; with logits of small variance q (at init) E[Σ_k (p_k − y_k)²] ≈ 1 − 1/K + (K−1)·q/K² (second
order in the logits; within 3 % of the exact value for q ≤ 1, 10 % at q = 3, 40 % at q = 6), so
Var[δ^(L+1)] ≈ (1 − 1/K + (K−1)·q/K²)/(K·B²). The weight gradient ∂L/∂W^l = Σ_b δ^l a^(l−1) has
Var[∂L/∂W^l] = B·Var[δ^l]·E[(a^(l−1))²] (Glorot & Bengio Eq. 14, uncorrelated examples) plus
B(B−1)·E[δ^b·δ^b']·E[a^b·a^b'] over pairs of examples, which the correlation map of their inputs gives
(:meth:`NetPrediction._pair_terms`): with correlated inputs (images) the per-example terms add up.

The depth scales χ₁, ξ_q, ξ_c and the phase of the hidden layers come from :mod:`initlab.theory.meanfield`.

This module takes the layers as :class:`LayerSpec` (fans, σ_w² = n_in·Var[W], bias moments) and φ as an
:class:`~initlab.theory.meanfield.Activation`; it knows no config. A run's config becomes those numbers in
:mod:`initlab.lab.prediction` (σ_w² from the init scheme's formula and the layer's fans, so a Xavier net
whose first layer is 1024 → 256 has a different σ_w² there than in its 256 → 256 layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from initlab.theory.meanfield import (  # noqa: F401 - the single-layer maps are part of this module's API
    CRITICAL_BAND,
    TRAINABLE_XI,
    Activation,
    DepthScales,
    c_map,
    c_star,
    chi_1,
    chi_c,
    critical_sigma_w2,
    depth_scale,
    depth_scales,
    gauss,
    gauss2,
    phase_of,
    q_map,
    q_star,
)


# -- a whole net -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """One weight layer: fans, σ_w² = n_in·Var[W], bias variance and mean, and the second-moment factor of
    the dropout on its input (1/(1−p), 1 without dropout)."""

    fan_in: int
    fan_out: int
    sigma_w2: float
    sigma_b2: float = 0.0
    bias_mean: float = 0.0
    input_keep: float = 1.0


@dataclass
class NetPrediction:
    """Per-layer step-0 predictions of a net (layer 1 = first hidden layer, last = the logits)."""

    layers: list[LayerSpec]
    phi: Activation
    input_m2: float
    batch_size: int
    input_corrs: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    label_spread: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows = self._forward_backward()

    def _forward_backward(self) -> list[dict[str, Any]]:
        phi, specs, batch = self.phi, self.layers, self.batch_size
        sq = lambda u: phi.phi(u) ** 2  # noqa: E731
        rows: list[dict[str, Any]] = []
        m2 = self.input_m2  # E[(a^(l−1))²] of the layer below, before dropout
        below: list[float] = []
        pre: list[tuple[float, float]] = []  # (mean, variance) of each layer's pre-activations
        for i, s in enumerate(specs, start=1):
            below.append(m2 * s.input_keep)
            var = s.sigma_w2 * m2 * s.input_keep + s.sigma_b2
            pre.append((s.bias_mean, var))
            rows.append(_row(i, "preact", s.bias_mean, var))
            if i < len(specs):
                mean_a, m2 = gauss(phi.phi, var, s.bias_mean), gauss(sq, var, s.bias_mean)
                rows.append(_row(i, "act", mean_a, m2 - mean_a**2))
        k = specs[-1].fan_out
        q_out = min(pre[-1][1], float(k))  # the expansion in the logits is only good for q ≲ 1; keep Σ p² ≤ 1
        grads = [(1 - 1 / k + (k - 1) * q_out / k**2) / (k * batch**2)]
        for i in range(len(specs) - 1, 0, -1):  # δ^l from δ^(l+1), l = L .. 1
            above, (mean, var) = specs[i], pre[i - 1]
            fan = above.sigma_w2 * above.fan_out / above.fan_in
            grads.append(grads[-1] * fan * gauss(lambda u: phi.dphi(u) ** 2, var, mean) * above.input_keep)
        pairs = sum(share * np.array(self._pair_terms(pre, c0)) for c0, share in self.input_corrs)
        for i, (g, m2_in, pair) in enumerate(zip(grads[::-1], below, pairs, strict=True), 1):
            rows.append(_row(i, "grad_preact", 0.0, g))
            rows.append(_row(i, "grad_weight", 0.0, batch * g * m2_in + batch * (batch - 1) * pair))
        return rows

    def _pair_terms(self, pre: list[tuple[float, float]], c0: float) -> list[float]:
        """E[δ^b·δ^b']·E[a^b·a^b'] per layer for two different examples whose inputs correlate by ``c0``.

        Forward, the covariance of two examples' pre-activations follows Eq. 4 (unnormalized), with
        E[a^b·a^b'] = E[φ(u₁)φ(u₂)]; backward, that of their gradients changes by
        σ_w²·(fan ratio)·E[φ′(u₁)φ′(u₂)] per layer (dropout masks of different examples are independent:
        no 1/(1−p) there). At the logits, E[e^b_k·e^b'_k] for e = softmax − onehot is
        (1 − 1/K)·Cov[logits]/K² + mean_k (π_k − 1/K)² (labels independent of the logits at init).
        """
        phi, specs, batch = self.phi, self.layers, self.batch_size
        cross, corrs, cross_in = c0 * self.input_m2, [], []
        for i, (s, (mean, var)) in enumerate(zip(specs, pre, strict=True)):
            cross_in.append(cross)
            corrs.append(min(max((s.sigma_w2 * cross + s.sigma_b2) / var, -1.0), 1.0) if var > 0 else 1.0)
            if i < len(specs) - 1:
                cross = gauss2(phi.phi, phi.phi, var, corrs[-1], mean)
        k = specs[-1].fan_out
        q_out = min(pre[-1][1], float(k))
        gamma = ((1 - 1 / k) * q_out * corrs[-1] / k**2 + self.label_spread) / batch**2
        out = [gamma * cross_in[-1]]
        for i in range(len(specs) - 1, 0, -1):
            above, (mean, var) = specs[i], pre[i - 1]
            gamma *= (
                above.sigma_w2
                * above.fan_out
                / above.fan_in
                * gauss2(phi.dphi, phi.dphi, var, corrs[i - 1], mean)
            )
            out.append(gamma * cross_in[i - 1])
        return out[::-1]

    @cached_property
    def hidden(self) -> LayerSpec:
        """The layer whose σ_w², σ_b² set the depth scales: the last hidden layer (hidden → hidden)."""
        return self.layers[-2] if len(self.layers) >= 2 else self.layers[0]

    @cached_property
    def scales(self) -> DepthScales:
        h = self.hidden
        q1 = self.rows[0]["variance"]
        return depth_scales(self.phi, h.sigma_w2 * h.input_keep, h.sigma_b2, q1)


def _row(layer: int, quantity: str, mean: float, variance: float) -> dict[str, Any]:
    mean = 0.0 if abs(mean) < 1e-12 * max(1.0, math.sqrt(max(variance, 0.0))) else float(mean)  # symmetric φ
    return {"layer": layer, "quantity": quantity, "mean": mean, "variance": float(variance)}


def prediction_frame(pred: NetPrediction) -> Any:
    """One row per (layer, quantity): layer, quantity, fan_in, fan_out, sigma_w2, sigma_b2, mean, variance."""
    import pandas as pd

    frame = pd.DataFrame(pred.rows)
    spec = pd.DataFrame([{"layer": i, **s.__dict__} for i, s in enumerate(pred.layers, start=1)])
    frame = frame.merge(spec[["layer", "fan_in", "fan_out", "sigma_w2", "sigma_b2"]], on="layer")
    return frame.sort_values(["quantity", "layer"], kind="stable").reset_index(drop=True)


def summary_fields(pred: NetPrediction) -> dict[str, Any]:
    """χ₁, ξ_c, ξ_q, q*, c*, phase and the trainable depth 6·ξ_c (what ``summary.json`` records)."""
    return {"theory_" + k: v for k, v in pred.scales.as_dict().items()}
