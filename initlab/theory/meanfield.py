"""Mean-field maps of one layer (Poole et al. 2016; Schoenholz et al. 2017): q, χ₁, c, ξ_q, ξ_c, phase.

A layer with W_ij ~ (0, σ_w²/n_in), b ~ (0, σ_b²) maps the variance q of its Gaussian input pre-activations
to q' = σ_w²·E_z[φ(√q·z)²] + σ_b² (Schoenholz et al. Eq. 3), z ~ N(0, 1). Each expectation is a
Gauss–Hermite sum (``numpy.polynomial.hermite_e.hermegauss``, exact for polynomials up to degree
2·NODES−1); φ, φ′ and φ″ come from a torch activation module handed in (:class:`Activation`, autograd),
so any activation works. :mod:`initlab.theory.predict` chains these maps through a whole net.

Depth scales (Schoenholz et al. 2017, Eqs. 4–9), for the hidden-to-hidden σ_w², σ_b² with q* the fixed
point of the q map:

    χ₁ = σ_w²·E[φ′(√q*·z)²]                          (Eq. 9: ordered χ₁ < 1, chaotic χ₁ > 1, critical = 1)
    ξ_q⁻¹ = −ln(χ₁ + σ_w²·E[φ″(√q*·z)·φ(√q*·z)])     (Eq. 5)
    c^l = (σ_w²·E[φ(u₁)φ(u₂)] + σ_b²)/q*,  u₁ = √q*·z₁,  u₂ = √q*·(c^(l−1)·z₁ + √(1−(c^(l−1))²)·z₂)   (Eq. 4)
    χ_c = σ_w²·E[φ′(u₁)φ′(u₂)] at the fixed point c*  (= χ₁ when c* = 1),   ξ_c = −1/ln χ_c   (Eqs. 7–9)

ξ_c diverges at χ₁ = 1; nets deeper than about 6·ξ_c do not train (Schoenholz et al., Fig. 5). Phase:
``ordered`` when χ₁ < 1 − CRITICAL_BAND, ``chaotic`` when χ₁ > 1 + CRITICAL_BAND, else ``critical``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.polynomial.hermite_e import hermegauss

from initlab.theory import TRAINABLE_XI

# Even node counts: no node at z = 0, where ReLU's derivative is ambiguous. Kinks (SELU's at 0) converge
# slowly: 256 nodes give E[selu(z)²] = 1 to 2e-5.
NODES = 256
NODES_2D = 48  # per axis, for the correlation map
CRITICAL_BAND = 0.01  # |χ₁ − 1| below this is "critical" (ξ_c > ~100 layers)
MAX_ITER = 5000

_z, _w = hermegauss(NODES)
_w = _w / math.sqrt(2 * math.pi)  # weights of E over N(0, 1)
_z2a, _z2b = (a.ravel() for a in np.meshgrid(*(hermegauss(NODES_2D)[0],) * 2, indexing="ij"))
_w2 = np.outer(*(hermegauss(NODES_2D)[1] / math.sqrt(2 * math.pi),) * 2).ravel()


class Activation:
    """φ, φ′ and φ″ of a torch activation module as functions of numpy arrays (float64, autograd)."""

    def __init__(self, module: torch.nn.Module) -> None:
        # a copy in float64, the dtype of the quadrature nodes (a learned PReLU slope is a float32 parameter)
        self.module = copy.deepcopy(module).to(torch.float64)

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
        if new < 1e-30:  # decays to 0 (ordered, σ_b² = 0)
            return 0.0
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
