"""Shot-measured parameter-shift gradients (``fedqnn.quantum.shift``, ``diff_method="parameter-shift"``).

∂μ/∂θ = [μ(θ + π/2) - μ(θ - π/2)]/2 for every rotation angle, with S fresh shots per shifted
circuit, so one derivative estimate of a ±1 observable is d = (X₊ - X₋)/2 with X± = 2K±/S - 1,
K± ~ Binomial(S, (1 + μ±)/2) independent: E d = ∂μ, Var d = [(1 - μ₊²) + (1 - μ₋²)]/(4S), excess
kurtosis (κ₊ + κ₋)/(v₊ + v₋)² with v± = (1 - μ±²)/S and κ± = v±² (1 - 6p±q±)/(S p±q±). Checked on
N = 2000 per-sample encoding-angle derivatives (each row of the batch is an independent draw)
against μ± of the numpy Kraus reference; tolerances two-sided, 1e-3 family-wise (Bonferroni
over 2 x 8 checks), as in test_per_shot.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from fedqnn.models import QuantumLayer
from fedqnn.quantum.shift import SHIFT, parameter_shift_expectations
from tests.quantum import reference as ref

QUBITS, LAYERS, P, R, SHOTS, N = 3, 2, 0.05, 0.03, 64, 2000
ALPHA = 1e-3 / (2 * QUBITS * LAYERS * 2)


def _layer(dm: str, shots: int) -> QuantumLayer:
    layer = QuantumLayer(QUBITS, LAYERS, device="torch", diff_method=dm, seed=2)
    layer.set_noise(P, R, shots)
    layer.train()
    layer.shot_generator = torch.Generator().manual_seed(5)
    return layer


def _angles(b: int = 1) -> torch.Tensor:
    return torch.randn(1, LAYERS, QUBITS, generator=torch.Generator().manual_seed(3), dtype=torch.float64).repeat(b, 1, 1)


def test_exact_shifts_equal_backprop_of_the_noisy_channel() -> None:
    layer = _layer("backprop", 0)
    a = torch.randn(4, LAYERS, QUBITS, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    coef = torch.arange(1.0, 2 * QUBITS, dtype=torch.float64)
    grads = []
    for shift in (False, True):
        x = a.clone().requires_grad_(True)
        layer.zero_grad()
        out = (parameter_shift_expectations(x, layer.weights, p=P, confusion=layer.confusion, shots=0)
               if shift else layer(x))
        (out @ coef).sum().backward()
        grads.append((layer.weights.grad.clone(), x.grad.clone()))
    for g0, g1 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g0, rtol=0, atol=1e-11)


def test_forward_value_is_the_shot_estimate_of_the_straight_through_path() -> None:
    a = _angles(3)
    torch.testing.assert_close(_layer("parameter-shift", SHOTS)(a), _layer("backprop", SHOTS)(a), rtol=0, atol=0)


def _ref_mu0(angles: np.ndarray, weights: np.ndarray) -> float:
    rho = ref.final_rho(angles, weights, ref.depolarizing_kraus(P), ref.bitflip_kraus(R))
    return float(ref.means(rho)[0])


def test_shot_derivatives_are_unbiased_with_the_shift_rule_variance() -> None:
    layer = _layer("parameter-shift", SHOTS)
    a = _angles(N).requires_grad_(True)
    layer(a)[:, 0].sum().backward()  # row b: ∂⟨Z_0⟩_b/∂a_b, an independent draw per row
    w = layer.weights.detach().numpy()
    z = stats.norm.ppf(1 - ALPHA / 2)
    bad = []
    for l_ in range(LAYERS):
        for i in range(QUBITS):
            mus = []
            for s in (SHIFT, -SHIFT):
                x = _angles()[0].numpy().copy()
                x[l_, i] += s
                mus.append(_ref_mu0(x, w))
            v = [(1 - m**2) / SHOTS for m in mus]
            k4 = [vv**2 * (1 - 6 * (1 - m**2) / 4) / (SHOTS * (1 - m**2) / 4) for vv, m in zip(v, mus, strict=True)]
            var = sum(v) / 4
            g2 = sum(k4) / sum(v) ** 2
            d = a.grad[:, l_, i].numpy()
            dof = 2 / (2 / (N - 1) + g2 / N)
            ratio = d.var(ddof=1) / var
            if not stats.chi2.ppf(ALPHA / 2, dof) / dof <= ratio <= stats.chi2.ppf(1 - ALPHA / 2, dof) / dof:
                bad.append(f"var a[{l_},{i}]: {ratio:.3f}")
            zm = (d.mean() - (mus[0] - mus[1]) / 2) / math.sqrt(var / N)
            if abs(zm) > z:
                bad.append(f"mean a[{l_},{i}]: z = {zm:.2f}")
    assert bad == []


def test_the_straight_through_gradient_has_no_shot_noise() -> None:  # the contrast
    layer = _layer("backprop", SHOTS)
    a = _angles(N).requires_grad_(True)
    layer(a)[:, 0].sum().backward()
    assert float(a.grad[:, 0, 0].var()) < 1e-20  # exact ∂μ: no shot noise at all, unlike a QPU
