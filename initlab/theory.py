"""Mean-field signal propagation: what an initialized fully-connected net should look like, layer by layer.

A hidden layer l of the MLP computes h^l = W^l·a^(l−1) + b^l, a^l = φ(h^l) (a^0 = x, the input), with
W^l_ij ~ (0, σ_w,l²/n_(l−1)) and b^l_i ~ (b̄_l, σ_b,l²). Over the weight distribution every pre-activation
is (in the wide limit) Gaussian, h^l ~ N(b̄_l, q^l), and (Poole et al. 2016; Schoenholz et al. 2017, Eq. 3)

    q^1 = σ_w,1²·E[x²] + σ_b,1²,            q^l = σ_w,l²·E_z[φ(b̄_(l−1) + √q^(l−1)·z)²] + σ_b,l²,

with z ~ N(0, 1) and E[x²] the data's mean squared input. Each expectation is a Gauss–Hermite sum
(``numpy.polynomial.hermite_e.hermegauss``, exact for polynomials up to degree 2·NODES−1); φ, φ′ and φ″
come from the torch module of the run's activation (autograd), so any activation of the ``act`` group works.
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

Depth scales (Schoenholz et al. 2017, Eqs. 4–9), for the hidden-to-hidden σ_w², σ_b² with q* the fixed
point of the q map:

    χ₁ = σ_w²·E[φ′(√q*·z)²]                          (Eq. 9: ordered χ₁ < 1, chaotic χ₁ > 1, critical = 1)
    ξ_q⁻¹ = −ln(χ₁ + σ_w²·E[φ″(√q*·z)·φ(√q*·z)])     (Eq. 5)
    c^l = (σ_w²·E[φ(u₁)φ(u₂)] + σ_b²)/q*,  u₁ = √q*·z₁,  u₂ = √q*·(c^(l−1)·z₁ + √(1−(c^(l−1))²)·z₂)   (Eq. 4)
    χ_c = σ_w²·E[φ′(u₁)φ′(u₂)] at the fixed point c*  (= χ₁ when c* = 1),   ξ_c = −1/ln χ_c   (Eqs. 7–9)

ξ_c diverges at χ₁ = 1; nets deeper than about 6·ξ_c do not train (Schoenholz et al., Fig. 5). Phase:
``ordered`` when χ₁ < 1 − CRITICAL_BAND, ``chaotic`` when χ₁ > 1 + CRITICAL_BAND, else ``critical``.

The σ_w² of an init scheme is n_in·Var[W] from its formula and the layer's fans (:data:`SIGMA_W2`), so a
Xavier net whose first layer is 1024 → 256 has a different σ_w² there than in its 256 → 256 layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from numpy.polynomial.hermite_e import hermegauss
from omegaconf import DictConfig, OmegaConf

# Even node counts: no node at z = 0, where ReLU's derivative is ambiguous. Kinks (SELU's at 0) converge
# slowly: 256 nodes give E[selu(z)²] = 1 to 2e-5.
NODES = 256
NODES_2D = 48  # per axis, for the correlation map
CRITICAL_BAND = 0.01  # |χ₁ − 1| below this is "critical" (ξ_c > ~100 layers)
MAX_ITER = 5000
TRAINABLE_XI = 6.0  # Schoenholz et al.: trainable depth ≈ 6·ξ_c

_z, _w = hermegauss(NODES)
_w = _w / math.sqrt(2 * math.pi)  # weights of E over N(0, 1)
_z2a, _z2b = (a.ravel() for a in np.meshgrid(*(hermegauss(NODES_2D)[0],) * 2, indexing="ij"))
_w2 = np.outer(*(hermegauss(NODES_2D)[1] / math.sqrt(2 * math.pi),) * 2).ravel()


class Activation:
    """φ, φ′ and φ″ of a torch activation module as functions of numpy arrays (float64, autograd)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def _derivative(self, x: np.ndarray, order: int) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64)).requires_grad_(True)
        y = self.module(t)
        for _ in range(order):
            if not y.requires_grad:
                return np.zeros(t.shape)
            grad = torch.autograd.grad(y.sum(), t, create_graph=True, allow_unused=True)[0]
            if grad is None:  # φ is (piecewise) polynomial of lower degree: this derivative is 0
                return np.zeros(t.shape)
            y = grad
        return y.detach().numpy()

    def phi(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.module(torch.as_tensor(np.asarray(x, dtype=np.float64))).numpy()

    def dphi(self, x: np.ndarray) -> np.ndarray:
        return self._derivative(x, 1)

    def d2phi(self, x: np.ndarray) -> np.ndarray:
        return self._derivative(x, 2)


def activation(act: DictConfig | dict[str, Any]) -> Activation:
    """The :class:`Activation` of an ``act`` config (the run's own torch module)."""
    from initlab.models import make_activation

    return Activation(make_activation(OmegaConf.create(dict(act))))


def gauss(f: Callable[[np.ndarray], np.ndarray], var: float, mean: float = 0.0) -> float:
    """E[f(mean + √var·z)], z ~ N(0, 1), by Gauss–Hermite quadrature."""
    return float(_w @ f(mean + math.sqrt(max(var, 0.0)) * _z))


# -- one map at a time -----------------------------------------------------------------------------------
def q_map(phi: Activation, sigma_w2: float, sigma_b2: float, q: float, mean: float = 0.0) -> float:
    """q^l = σ_w²·E[φ(mean + √q^(l−1)·z)²] + σ_b² (Schoenholz et al. 2017, Eq. 3)."""
    return sigma_w2 * gauss(lambda u: phi.phi(u) ** 2, q, mean) + sigma_b2


def q_star(phi: Activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The fixed point of :func:`q_map`, iterated from ``q0`` (inf when q grows without bound).

    Where every q is a fixed point (ReLU or linear at σ_w² = 2 or 1, σ_b² = 0) it is ``q0``.
    """
    q = q0
    for _ in range(MAX_ITER):
        new = q_map(phi, sigma_w2, sigma_b2, q)
        if not math.isfinite(new) or new > 1e30:
            return math.inf
        if abs(new - q) <= 1e-12 * max(q, 1e-300):
            return new
        q = new
    return q


def chi_1(phi: Activation, sigma_w2: float, q: float) -> float:
    """χ₁ = σ_w²·E[φ′(√q·z)²] (Schoenholz et al. Eq. 9): the per-layer growth of Var[∂L/∂h] going down."""
    return sigma_w2 * gauss(lambda u: phi.dphi(u) ** 2, _usable(q))


def _usable(q: float) -> float:
    """q* can be 0 (ordered, σ_b² = 0) or inf (chaotic, unbounded φ): take the nearest usable scale."""
    return min(max(q, 1e-12), 1e12)


def _pair(q: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    s = math.sqrt(q)
    return s * _z2a, s * (c * _z2a + math.sqrt(max(1.0 - c * c, 0.0)) * _z2b)


def gauss2(
    f: Callable[[np.ndarray], np.ndarray],
    g: Callable[[np.ndarray], np.ndarray],
    var: float,
    c: float,
    mean: float = 0.0,
) -> float:
    """E[f(u₁)·g(u₂)] for (u₁, u₂) Gaussian with mean ``mean``, variance ``var`` and correlation ``c``."""
    u1, u2 = _pair(max(var, 0.0), c)
    return float(_w2 @ (f(mean + u1) * g(mean + u2)))


def c_map(phi: Activation, sigma_w2: float, sigma_b2: float, q: float, c: float) -> float:
    """c^l = (σ_w²·E[φ(u₁)φ(u₂)] + σ_b²)/q* (Schoenholz et al. Eq. 4), two inputs of correlation c."""
    u1, u2 = _pair(q, c)
    f1 = phi.phi(u1)
    # q* from the same 2-D rule (= q up to quadrature error), so that c = 1 is an exact fixed point
    return float((sigma_w2 * (_w2 @ (f1 * phi.phi(u2))) + sigma_b2) / (sigma_w2 * (_w2 @ f1**2) + sigma_b2))


def c_star(phi: Activation, sigma_w2: float, sigma_b2: float, q: float, chi1: float) -> float:
    """The stable fixed point of the correlation map in [0, 1]: 1 unless chaotic (χ₁ > 1), then c* < 1."""
    from scipy.optimize import brentq

    if chi1 <= 1.0:
        return 1.0
    gap = lambda c: c_map(phi, sigma_w2, sigma_b2, q, c) - c  # noqa: E731
    if gap(0.0) <= 0.0:
        return 0.0
    hi = 1.0 - 1e-7
    return float(brentq(gap, 0.0, hi, xtol=1e-12)) if gap(hi) < 0 else 1.0


def chi_c(phi: Activation, sigma_w2: float, q: float, c: float) -> float:
    """χ_c = σ_w²·E[φ′(u₁)φ′(u₂)] at correlation c (Schoenholz et al. Eq. 8)."""
    if c >= 1.0:
        return chi_1(phi, sigma_w2, q)
    u1, u2 = _pair(q, c)
    return float(sigma_w2 * (_w2 @ (phi.dphi(u1) * phi.dphi(u2))))


def depth_scale(rate: float) -> float:
    """ξ = −1/ln(rate) for a per-layer contraction rate in (0, 1); inf at rate ≥ 1, 0 at rate 0."""
    if rate >= 1.0:
        return math.inf
    return 0.0 if rate <= 0.0 else -1.0 / math.log(rate)


def phase_of(chi1: float) -> str:
    """``ordered`` (χ₁ < 1), ``chaotic`` (χ₁ > 1) or ``critical`` (within :data:`CRITICAL_BAND`)."""
    if abs(chi1 - 1.0) <= CRITICAL_BAND:
        return "critical"
    return "ordered" if chi1 < 1.0 else "chaotic"


@dataclass(frozen=True)
class DepthScales:
    """The fixed points and depth scales of one (φ, σ_w², σ_b²)."""

    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi_1: float
    c_star: float
    chi_c: float
    xi_q: float
    xi_c: float

    @property
    def phase(self) -> str:
        return phase_of(self.chi_1)

    @property
    def trainable_depth(self) -> float:
        return TRAINABLE_XI * self.xi_c

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "phase": self.phase, "trainable_depth": self.trainable_depth}


def depth_scales(phi: Activation, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> DepthScales:
    """q*, χ₁, c*, χ_c, ξ_q and ξ_c (Schoenholz et al. 2017, Eqs. 3–9)."""
    qs = q_star(phi, sigma_w2, sigma_b2, q0)
    q = _usable(qs)
    chi1 = chi_1(phi, sigma_w2, q)
    cs = c_star(phi, sigma_w2, sigma_b2, q, chi1)
    chic = chi_c(phi, sigma_w2, q, cs)
    xi_rate = chi1 + sigma_w2 * gauss(lambda u: phi.d2phi(u) * phi.phi(u), q)
    return DepthScales(sigma_w2, sigma_b2, qs, chi1, cs, chic, depth_scale(xi_rate), depth_scale(chic))


def critical_sigma_w2(phi: Activation, sigma_b2: float, lo: float = 0.5, hi: float = 8.0) -> float:
    """The σ_w² at which χ₁ = 1 for this σ_b² (tanh, σ_b² = 0.05: ≈ 1.76)."""
    from scipy.optimize import brentq

    return float(brentq(lambda s: depth_scales(phi, s, sigma_b2).chi_1 - 1.0, lo, hi, xtol=1e-6))


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


# -- from a run's config -----------------------------------------------------------------------------------
# n_in·Var[W] of each init scheme for a layer with fans (n_in, n_out) and gain g (the gain the scheme uses for
# that layer, see :func:`initlab.inits.layer_gain`). Schemes missing here (``constant``: weights of nonzero
# mean; ``lsuv``: rescaled on data) have no mean-field prediction.
SigmaW2 = Callable[[DictConfig, float, int, int], float]
SIGMA_W2: dict[str, SigmaW2] = {
    "zeros": lambda c, g, n_in, n_out: 0.0,
    "normal": lambda c, g, n_in, n_out: float(c.std) ** 2 * n_in,
    "standard": lambda c, g, n_in, n_out: 1.0 / 3.0,  # U[±1/√n_in]
    "torch_default": lambda c, g, n_in, n_out: 1.0 / 3.0,  # kaiming_uniform(a=√5) = U[±1/√n_in]
    "lecun": lambda c, g, n_in, n_out: 1.0,
    "xavier": lambda c, g, n_in, n_out: g * g * 2.0 * n_in / (n_in + n_out),
    "kaiming": lambda c, g, n_in, n_out: g * g * (1.0 if c.mode == "fan_in" else n_in / n_out),
    "orthogonal": lambda c, g, n_in, n_out: g * g * min(n_in, n_out) / n_out,  # E[W²] = g²·min/(n_in·n_out)
    "meanfield": lambda c, g, n_in, n_out: float(c.sigma_w2),
}
# (σ_b², b̄) of the bias; every other scheme sets the constant ``init.bias``.
BIAS: dict[str, Callable[[DictConfig, int], tuple[float, float]]] = {
    "torch_default": lambda c, n_in: (1.0 / (3.0 * n_in), 0.0),  # U[±1/√n_in]
    "meanfield": lambda c, n_in: (float(c.sigma_b2), 0.0),
}


class NotApplicable(ValueError):
    """The mean-field prediction does not apply to this config (the message says why)."""


def not_applicable(cfg: DictConfig) -> str | None:
    """Why the theory does not apply to a config, or None when it does."""
    if cfg.model.name != "mlp":
        return f"model={cfg.model.name}: the prediction covers fully-connected nets (mlp) only"
    if cfg.model.get("norm", "none") != "none":
        return f"model.norm={cfg.model.norm}: normalization layers are outside the mean-field recursion"
    if cfg.init.name not in SIGMA_W2:
        return f"init={cfg.init.name}: no variance formula (weights of nonzero mean or rescaled on data)"
    return None


def layer_specs(cfg: DictConfig, n_in: int, n_out: int) -> list[LayerSpec]:
    """The weight layers of the config's MLP with the σ_w², σ_b² its init scheme gives each of them."""
    from initlab.inits import layer_gain

    m = cfg.model
    widths = [n_in] + [int(m.width)] * int(m.depth) + [n_out]
    hidden_keep = 1.0 / (1.0 - float(m.get("dropout", 0.0)))
    specs = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        after = cfg.act if i < m.depth else OmegaConf.create({"name": "linear"})
        gain = layer_gain(cfg.init, after)
        bias = BIAS.get(cfg.init.name, lambda c, n: (0.0, float(c.get("bias", 0.0))))
        sigma_b2, bias_mean = bias(cfg.init, a)
        if not m.get("bias", True):
            sigma_b2, bias_mean = 0.0, 0.0
        keep = 1.0 / (1.0 - float(m.get("input_dropout", 0.0))) if i == 0 else hidden_keep
        sigma_w2 = SIGMA_W2[cfg.init.name](cfg.init, gain, a, b)
        specs.append(LayerSpec(a, b, sigma_w2, sigma_b2, bias_mean, keep))
    return specs


def input_second_moment(cfg: DictConfig) -> float:
    """E[x²] of the training inputs: 1 after initlab's standardization, plus augment.noise² of added noise."""
    return 1.0 + float(cfg.data.get("augment", {}).get("noise", 0.0)) ** 2


def probed_batch(cfg: DictConfig) -> int:
    """The number of examples whose mean loss the step-0 probe differentiates."""
    return int(cfg.probe.get("fixed_batch", 0) or cfg.train.batch_size)


def predict(
    cfg: DictConfig,
    n_in: int,
    n_out: int,
    input_m2: float | None = None,
    input_corrs: tuple[tuple[float, float], ...] = ((0.0, 1.0),),
    label_spread: float = 0.0,
) -> NetPrediction:
    """The step-0 prediction for a run's config (NotApplicable when the theory does not cover it).

    ``input_m2`` = E[x²] (None: :func:`input_second_moment`); ``input_corrs`` = the distribution of
    x^b·x^b'/(n·E[x²]) over pairs of different examples as (value, share) pairs (default: all 0, independent
    zero-mean features); ``label_spread`` = mean_k (π_k − 1/K)² of the class prior π (0 for balanced
    classes). The last two only enter the weight gradients: Σ_b δ^b·a^b adds up over correlated examples.
    """
    reason = not_applicable(cfg)
    if reason:
        raise NotApplicable(reason)
    m2 = input_second_moment(cfg) if input_m2 is None else input_m2
    return NetPrediction(
        layer_specs(cfg, n_in, n_out), activation(cfg.act), m2, probed_batch(cfg), input_corrs, label_spread
    )


def prediction_frame(pred: NetPrediction) -> Any:
    """One row per (layer, quantity): layer, quantity, fan_in, fan_out, sigma_w2, sigma_b2, mean, variance."""
    import pandas as pd

    frame = pd.DataFrame(pred.rows)
    spec = pd.DataFrame([{"layer": i, **s.__dict__} for i, s in enumerate(pred.layers, start=1)])
    frame = frame.merge(spec[["layer", "fan_in", "fan_out", "sigma_w2", "sigma_b2"]], on="layer")
    return frame.sort_values(["quantity", "layer"], kind="stable").reset_index(drop=True)


def write_prediction(
    cfg: DictConfig, n_in: int, n_out: int, data_moments: tuple[Any, ...], run_dir: Any
) -> dict[str, Any]:
    """Write ``theory.parquet`` into a run directory; returns the fields for ``summary.json``.

    ``data_moments``: E[x²], the distribution of the correlation of two examples' inputs and the label
    spread, measured on the training set (see :func:`predict`).
    """
    from pathlib import Path

    from initlab.storage import THEORY_FILE

    try:
        pred = predict(cfg, n_in, n_out, *data_moments)
    except NotApplicable as exc:
        return {"theory_skipped": str(exc)}
    prediction_frame(pred).assign(step=0).to_parquet(Path(run_dir) / THEORY_FILE, index=False)
    return summary_fields(pred)


def summary_fields(pred: NetPrediction) -> dict[str, Any]:
    """χ₁, ξ_c, ξ_q, q*, c*, phase and the trainable depth 6·ξ_c (what ``summary.json`` records)."""
    return {"theory_" + k: v for k, v in pred.scales.as_dict().items()}
