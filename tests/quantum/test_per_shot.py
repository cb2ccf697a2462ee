"""Per-shot QPU statistics of the model's own layer (issue 15), against an independent reference.

On a QPU every shot has its own gate errors and all readout observables come from the same
bitstrings, so for a ±1 observable with channel mean μ an S-shot estimate μ̂ has

    E μ̂ = μ,   Var μ̂ = (1 - μ²)/S,   Cov(Ẑ_0, Ẑ_0Z_1) = (⟨Z_1⟩ - ⟨Z_0⟩⟨Z_0Z_1⟩)/S

(Z_0 · Z_0Z_1 = Z_1 shot by shot). μ comes from ``tests/quantum/reference.py`` (explicit dense
density matrix, Kraus sums, numpy). The layer is ``QuantumLayer`` in training mode with
``set_noise(p, r, S)``, evaluated on N = 2000 copies of one input (each row an independent
execution).

Tolerances (each check two-sided at level α; 60 checks share a family-wise false-alarm rate of
1e-3, Bonferroni, so a correct simulator fails this file for at most 1 seed in 1000):

* variance: under the model μ̂ = 2K/S - 1 with K ~ Binomial(S, (1 + μ)/2) exactly, whose excess
  kurtosis is γ₂ = (1 - 6pq)/(S pq) (p = (1 + μ)/2, q = 1 - p); the sample variance s² then has
  Var s² = σ⁴ (2/(N - 1) + γ₂/N), and s²/σ² is referred to a scaled χ²_d/d with
  d = 2 / (2/(N - 1) + γ₂/N) (Satterthwaite; d = N - 1 for Gaussian data);
* covariance: the sample covariance ĉ is asymptotically normal with variance Var(XY)/N, X, Y the
  centred S-shot means, Var(XY) computed exactly from the per-shot joint distribution of
  (z_0, z_1), p(z_0, z_1) = (1 + μ_0 z_0 + μ_1 z_1 + μ_01 z_0 z_1)/4 (readout included);
* mean: z = (μ̄ - μ)/(σ/√N), normal (σ the per-shot one: excess variance fails it too).

Negative control: the pre-issue-15 estimator (one Pauli trajectory per sample shared by all
shots, independent binomials per observable; ``fedqnn.quantum.qpu._legacy_shared_trajectory``)
fails these checks: with gate noise its variance is (1 - μ²)/S + (1 - 1/S) Var_τ(μ_τ); without,
its variance is right but its covariance is 0 (with gate noise it is Cov_τ(μ_τA, μ_τB) instead).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fedqnn.models import QuantumLayer
from fedqnn.quantum.qpu import _legacy_shared_trajectory
from tests.quantum import reference as ref

N_DRAWS = 2000
QUBITS, LAYERS, R = 4, 2, 0.03
CONFIGS = [(0.05, 64), (0.05, 1024), (0.0, 64), (0.0, 1024)]  # (p, shots)
N_OBS = 2 * QUBITS - 1
N_CHECKS = len(CONFIGS) * (2 * N_OBS + 1)
ALPHA = 1e-3 / N_CHECKS


def _layer_and_input() -> tuple[QuantumLayer, torch.Tensor]:
    layer = QuantumLayer(QUBITS, LAYERS, device="torch", seed=1)
    angles = torch.randn(1, LAYERS, QUBITS, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return layer, angles


def exact_means(p: float) -> np.ndarray:
    layer, angles = _layer_and_input()
    noise = ref.depolarizing_kraus(p) if p > 0 else []
    rho = ref.final_rho(angles[0].numpy(), layer.weights.detach().numpy(), noise, ref.bitflip_kraus(R))
    return ref.means(rho)


def model_draws(p: float, shots: int, seed: int = 0) -> np.ndarray:
    layer, angles = _layer_and_input()
    layer.set_noise(p, R, shots)
    layer.train()
    layer.shot_generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return layer(angles.repeat(N_DRAWS, 1, 1)).numpy()


def legacy_draws(p: float, shots: int, seed: int = 0) -> np.ndarray:
    layer, angles = _layer_and_input()
    with torch.no_grad():
        return _legacy_shared_trajectory(angles.repeat(N_DRAWS, 1, 1), layer.weights, p, R, shots,
                                         torch.Generator().manual_seed(seed)).numpy()


def _cov_sd(mu0: float, mu1: float, mu01: float, shots: int, n: int) -> float:
    """sd of the sample covariance of (Ẑ_0, Ẑ_0Z_1) over n draws (see the module docstring)."""
    e_uv, e_uu, e_vv, e_uuvv = mu1 - mu0 * mu01, 1 - mu0**2, 1 - mu01**2, 0.0
    for z0 in (1, -1):
        for z1 in (1, -1):
            prob = (1 + mu0 * z0 + mu1 * z1 + mu01 * z0 * z1) / 4
            e_uuvv += prob * (z0 - mu0) ** 2 * (z0 * z1 - mu01) ** 2
    s = shots
    e_xxyy = (s * e_uuvv + s * (s - 1) * (e_uu * e_vv + 2 * e_uv**2)) / s**4
    return math.sqrt((e_xxyy - (e_uv / s) ** 2) / n)


def shot_statistics_failures(est: np.ndarray, mu: np.ndarray, shots: int, alpha: float = ALPHA) -> list[str]:
    """The checks of the module docstring; returns what failed (empty: all pass)."""
    n = est.shape[0]
    z = stats.norm.ppf(1 - alpha / 2)
    bad = []
    for j in range(est.shape[1]):
        var = (1 - mu[j] ** 2) / shots
        pq = (1 - mu[j] ** 2) / 4
        g2 = (1 - 6 * pq) / (shots * pq)
        d = 2 / (2 / (n - 1) + g2 / n)
        lo, hi = stats.chi2.ppf(alpha / 2, d) / d, stats.chi2.ppf(1 - alpha / 2, d) / d
        ratio = est[:, j].var(ddof=1) / var
        if not lo <= ratio <= hi:
            bad.append(f"var[{j}]: s²/σ² = {ratio:.3f} outside [{lo:.3f}, {hi:.3f}]")
        zm = (est[:, j].mean() - mu[j]) / math.sqrt(var / n)
        if abs(zm) > z:
            bad.append(f"mean[{j}]: z = {zm:.2f}")
    a, b = 0, QUBITS  # Ẑ_0 and Ẑ_0Z_1
    cov = (mu[1] - mu[a] * mu[b]) / shots
    c_hat = np.cov(est[:, a], est[:, b], ddof=1)[0, 1]
    zc = (c_hat - cov) / _cov_sd(mu[a], mu[1], mu[b], shots, n)
    if abs(zc) > z:
        bad.append(f"cov(Z0, Z0Z1): {c_hat:.3e} vs {cov:.3e}, z = {zc:.1f}")
    return bad


@pytest.mark.parametrize(("p", "shots"), CONFIGS)
def test_the_layer_has_per_shot_statistics(p: float, shots: int) -> None:
    assert shot_statistics_failures(model_draws(p, shots), exact_means(p), shots) == []


@pytest.mark.parametrize(("p", "shots"), CONFIGS)
def test_the_old_shared_trajectory_estimator_fails_the_same_checks(p: float, shots: int) -> None:
    bad = shot_statistics_failures(legacy_draws(p, shots), exact_means(p), shots)
    if p > 0:  # one error pattern for all shots: variance too large by (1 - 1/S) Var_τ
        assert any(b.startswith("var") for b in bad), bad
    else:  # a pure state: the variance was right, but independent binomials have no covariance
        assert not any(b.startswith("var") for b in bad), bad
        assert any(b.startswith("cov") for b in bad), bad


def test_the_checks_have_teeth() -> None:
    for p in (0.0, 0.05):
        mu = exact_means(p)
        corr = (mu[1] - mu[0] * mu[QUBITS]) / math.sqrt((1 - mu[0] ** 2) * (1 - mu[QUBITS] ** 2))
        assert abs(corr) > 0.3, (p, corr)  # the covariance is far from the old model's 0
    assert np.max(np.abs(exact_means(0.05) - exact_means(0.0))) > 0.05  # gate noise is visible


def test_shots_do_not_change_the_gradient_of_the_exact_noisy_expectation() -> None:
    layer, angles = _layer_and_input()
    a = angles.repeat(3, 1, 1)
    grads = []
    for shots in (0, 64):
        layer.set_noise(0.05, R, shots)
        layer.train()
        layer.shot_generator = torch.Generator().manual_seed(1)
        layer.zero_grad()
        (layer(a) * torch.arange(1.0, N_OBS + 1, dtype=torch.float64)).sum().backward()
        grads.append(layer.weights.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)
