"""Every mean-field quantity the doctor's report uses, against an independent computation.

The library computes its expectations by Gauss–Hermite sums over torch's activation modules and its depth
scales from closed forms (Schoenholz et al. 2017, Eqs. 3–9). Here the same quantities come from numpy's own
φ, adaptive quadrature (``scipy.integrate.quad``), root finding on the maps themselves and finite
differences of their slopes: ξ = −1/ln(slope of the map at its fixed point).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq

from initlab.theory import meanfield as T

PHI = {
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0), lambda x: x > 0),
}
GAUSS = 1 / math.sqrt(2 * math.pi)


def expect(f, q: float) -> float:
    """E_z[f(√q·z)], z ~ N(0, 1), by adaptive quadrature."""
    s = math.sqrt(q)
    return quad(lambda z: f(s * z) * GAUSS * math.exp(-z * z / 2), -12, 12, limit=200, points=[0.0])[0]


def q_map(name: str, sw: float, sb: float, q: float) -> float:
    return sw * expect(lambda u: PHI[name][0](u) ** 2, q) + sb


def q_fixed(name: str, sw: float, sb: float) -> float:
    return brentq(lambda q: q_map(name, sw, sb, q) - q, 1e-6, 50.0, xtol=1e-13)


def chi1(name: str, sw: float, q: float) -> float:
    return sw * expect(lambda u: PHI[name][1](u) ** 2, q)


def c_map(name: str, sw: float, sb: float, q: float, c: float) -> float:
    """(σ_w²·E[φ(u₁)φ(u₂)] + σ_b²)/q with corr(u₁, u₂) = c: nested 1-D quadratures."""
    phi, s, r = PHI[name][0], math.sqrt(q), math.sqrt(max(1 - c * c, 0.0))

    def inner(z1: float) -> float:
        return quad(lambda z2: phi(s * (c * z1 + r * z2)) * GAUSS * math.exp(-z2 * z2 / 2), -10, 10)[0]

    outer = quad(lambda z1: phi(s * z1) * inner(z1) * GAUSS * math.exp(-z1 * z1 / 2), -10, 10)[0]
    return (sw * outer + sb) / q


TANH = T.Activation(torch.nn.Tanh())


@pytest.mark.parametrize("sw, sb", [(1.3, 0.05), (1.76, 0.05), (2.5, 0.1)])
def test_q_star_and_chi_1_against_quadrature(sw, sb):
    s = T.depth_scales(TANH, sw, sb)
    q = q_fixed("tanh", sw, sb)
    assert s.q_star == pytest.approx(q, rel=1e-6)
    assert s.chi_1 == pytest.approx(chi1("tanh", sw, q), rel=1e-6)


@pytest.mark.parametrize("sw, sb", [(1.3, 0.05), (2.5, 0.1)])
def test_xi_q_is_the_slope_of_the_q_map_at_its_fixed_point(sw, sb):
    """ξ_q = −1/ln(∂q'/∂q at q*), the slope by central differences of the quadrature q map."""
    q, h = q_fixed("tanh", sw, sb), 1e-4
    slope = (q_map("tanh", sw, sb, q + h) - q_map("tanh", sw, sb, q - h)) / (2 * h)
    assert T.depth_scales(TANH, sw, sb).xi_q == pytest.approx(-1 / math.log(slope), rel=1e-4)


def test_xi_c_is_the_slope_of_the_c_map_at_its_fixed_point():
    """Ordered phase: c* = 1 and ξ_c = −1/ln χ₁; chaotic: c* < 1 from the map itself, slope at c*."""
    ordered = T.depth_scales(TANH, 1.3, 0.05)
    q = q_fixed("tanh", 1.3, 0.05)
    assert ordered.c_star == 1.0
    assert ordered.xi_c == pytest.approx(-1 / math.log(chi1("tanh", 1.3, q)), rel=1e-6)
    sw, sb = 2.5, 0.1
    chaotic, q = T.depth_scales(TANH, sw, sb), q_fixed("tanh", sw, sb)
    c_fixed = brentq(lambda c: c_map("tanh", sw, sb, q, c) - c, 0.0, 0.99, xtol=1e-10)
    assert chaotic.c_star == pytest.approx(c_fixed, abs=1e-5)
    h = 1e-3
    slope = (c_map("tanh", sw, sb, q, c_fixed + h) - c_map("tanh", sw, sb, q, c_fixed - h)) / (2 * h)
    assert chaotic.xi_c == pytest.approx(-1 / math.log(slope), rel=1e-3)


def test_critical_sigma_w2_where_chi_1_is_one():
    """Tanh, σ_b² = 0.05: χ₁ = 1 at σ_w² ≈ 1.76 (Schoenholz et al.); ReLU, σ_b² = 0: at 2 (He et al.)."""
    independent = brentq(lambda sw: chi1("tanh", sw, q_fixed("tanh", sw, 0.05)) - 1, 1.2, 2.5, xtol=1e-9)
    assert independent == pytest.approx(1.76, abs=0.005)
    assert T.critical_sigma_w2(TANH, 0.05) == pytest.approx(independent, abs=1e-5)
    relu = T.Activation(torch.nn.ReLU())
    assert T.critical_sigma_w2(relu, 0.0) == pytest.approx(2.0, abs=1e-5)
    assert chi1("relu", 2.0, 1.0) == pytest.approx(1.0, abs=1e-9)


def test_trainable_depth_of_xavier_relu_is_that_of_its_measured_rate():
    """Xavier ReLU: χ₁ = ½, ξ_c = 1/ln 2 = 1.44, so 6·ξ_c = 8.66 layers; the doctor's band e^±6 on the
    product of per-layer ratios is the same statement: (½)^L < e^−6 exactly when L > 6/ln 2."""
    relu = T.Activation(torch.nn.ReLU())
    s = T.depth_scales(relu, 1.0, 0.0)
    assert s.trainable_depth == pytest.approx(6 / math.log(2), rel=1e-9)
    from initlab.diagnosis.checks import SIGNAL_BAND

    depth = s.trainable_depth
    assert 0.5 ** (depth - 0.01) > SIGNAL_BAND[0] > 0.5 ** (depth + 0.01)
