"""The exact noisy simulator (``fedqnn.quantum.density`` / ``qpu``) against explicit Kraus sums.

References: ``tests/quantum/reference.py`` (dense density matrices in numpy, every gate a full
matrix, every channel ρ -> Σ K ρ K†). Deterministic: analytic mode (shots = 0) must equal the
reference to 1e-10, gradients equal its central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedqnn.models import QuantumLayer
from fedqnn.quantum import density as D
from fedqnn.quantum import qpu
from tests.quantum import reference as ref
from tests.quantum.test_per_shot import shot_statistics_failures


def _case(n: int, layers: int, seed: int = 0) -> tuple[QuantumLayer, torch.Tensor]:
    layer = QuantumLayer(n, layers, device="torch", seed=seed)
    a = torch.randn(3, layers, n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return layer, a


def _ref_means(layer: QuantumLayer, a: np.ndarray, noise: list, readout: list) -> np.ndarray:
    return ref.means(ref.final_rho(a, layer.weights.detach().numpy(), noise, readout))


@pytest.mark.parametrize(("n", "layers"), [(1, 2), (2, 3), (3, 2), (4, 2), (5, 3)])
def test_analytic_noisy_layer_equals_the_kraus_reference(n: int, layers: int) -> None:
    layer, a = _case(n, layers)
    layer.set_noise(0.04, 0.02, 0)
    layer.train()
    got = layer(a).detach().numpy()
    for b in range(a.shape[0]):
        want = _ref_means(layer, a[b].numpy(), ref.depolarizing_kraus(0.04), ref.bitflip_kraus(0.02))
        np.testing.assert_allclose(got[b], want, atol=1e-10)


def test_per_qubit_confusion_matrices_act_on_the_outcome_distribution() -> None:
    n = 3
    layer, a = _case(n, 2, seed=2)
    m = torch.tensor([[[0.97, 0.05], [0.03, 0.95]], [[0.9, 0.0], [0.1, 1.0]], [[0.99, 0.02], [0.01, 0.98]]],
                     dtype=torch.float64)
    layer.set_noise(0.02, m, 0)
    layer.train()
    got = layer(a).detach().numpy()
    rho = ref.final_rho(a[0].numpy(), layer.weights.detach().numpy(), ref.depolarizing_kraus(0.02))
    big = np.ones((1, 1))
    for i in range(n):
        big = np.kron(big, m[i].numpy())
    probs = big @ np.diag(rho).real  # P(read x) = Σ_y Π_i M_i[x_i, y_i] P(y)
    signs = [np.diag(o).real for o in ref.observables(n)]
    np.testing.assert_allclose(got[0], [s @ probs for s in signs], atol=1e-12)


def test_the_gradient_is_that_of_the_exact_noisy_expectation() -> None:
    n, layers, p, r = 3, 2, 0.05, 0.03
    layer, a = _case(n, layers, seed=3)
    layer.set_noise(p, r, 0)
    layer.train()
    coef = np.arange(1.0, 2 * n)
    (layer(a[:1]) @ torch.tensor(coef)).sum().backward()
    w0 = layer.weights.detach().numpy().copy()
    fd = np.zeros_like(w0)
    h = 1e-6
    for idx in np.ndindex(*w0.shape):
        vals = []
        for sgn in (1, -1):
            w = w0.copy()
            w[idx] += sgn * h
            vals.append(coef @ ref.means(ref.final_rho(a[0].numpy(), w, ref.depolarizing_kraus(p), ref.bitflip_kraus(r))))
        fd[idx] = (vals[0] - vals[1]) / (2 * h)
    np.testing.assert_allclose(layer.weights.grad.numpy(), fd, atol=1e-7)


def _random_rho(seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    m = g.normal(size=(2, 2)) + 1j * g.normal(size=(2, 2))
    rho = m @ m.conj().T
    return rho / np.trace(rho)


def _apply_superop(sop: torch.Tensor, rho: np.ndarray) -> np.ndarray:
    return (sop.numpy() @ rho.reshape(-1)).reshape(2, 2)  # row-major vec


@pytest.mark.parametrize("name", ["amplitude", "phase", "depolarizing"])
def test_superoperators_equal_explicit_kraus_sums(name: str) -> None:
    kraus = {"amplitude": D.amplitude_damping_kraus(0.3), "phase": D.phase_damping_kraus(0.4),
             "depolarizing": D.depolarizing_kraus(0.2)}[name]
    ks = [k.numpy() for k in kraus]
    assert np.allclose(sum(k.conj().T @ k for k in ks), np.eye(2))  # trace preserving
    for seed in range(3):
        rho = _random_rho(seed)
        want = sum(k @ rho @ k.conj().T for k in ks)
        np.testing.assert_allclose(_apply_superop(D.kraus_superop(kraus), rho), want, atol=1e-14)
    if name == "depolarizing":  # the closed form (1 - 4p/3) ρ + (4p/3) Tr ρ I/2
        torch.testing.assert_close(D.depolarizing_superop(0.2), D.kraus_superop(kraus))


def test_relaxation_decays_populations_with_t1_and_coherences_with_t2() -> None:
    t, t1, t2 = 0.05, 0.8, 0.5
    rho = np.array([[0.3, 0.2 - 0.1j], [0.2 + 0.1j, 0.7]])
    out = _apply_superop(D.relaxation_superop(t, t1, t2), rho)
    np.testing.assert_allclose(out[1, 1], 0.7 * np.exp(-t / t1), atol=1e-14)
    np.testing.assert_allclose(out[0, 1], rho[0, 1] * np.exp(-t / t2), atol=1e-14)
    gamma, lam = D.relaxation_parameters(t, t1, t2)
    ks = [k.numpy() for k in D.amplitude_damping_kraus(gamma)]
    ks = [p.numpy() @ k for p in D.phase_damping_kraus(lam) for k in ks]  # PD after AD, as Kraus
    np.testing.assert_allclose(out, sum(k @ rho @ k.conj().T for k in ks), atol=1e-14)
    with pytest.raises(ValueError, match="unphysical"):
        D.relaxation_parameters(t, 0.1, 0.3)


def _rx_superop(theta: float) -> torch.Tensor:  # a unitary error: moves coherences into populations
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return D.kraus_superop([torch.tensor([[c, -1j * s], [-1j * s, c]], dtype=torch.complex128)])


@pytest.mark.parametrize("extra", ["relaxation", "rx"])
def test_extra_channels_equal_the_kraus_reference(extra: str) -> None:
    n, layers = 3, 3
    layer, a = _case(n, layers, seed=5)
    if extra == "relaxation":
        gamma, lam = D.relaxation_parameters(0.05, 0.3, 0.2)
        sop = D.relaxation_superop(0.05, 0.3, 0.2)
        kraus = [p.numpy() @ k.numpy() for p in D.phase_damping_kraus(lam) for k in D.amplitude_damping_kraus(gamma)]
    else:
        sop = _rx_superop(0.3)
        c, s = np.cos(0.15), np.sin(0.15)
        kraus = [np.array([[c, -1j * s], [-1j * s, c]])]
    layer.set_noise(0.03, 0.0, 0, channel=sop)
    layer.train()
    got = layer(a).detach().numpy()
    dep = ref.depolarizing_kraus(0.03)
    composed = [k @ d for k in kraus for d in dep]  # D_p first, then the extra channel
    for b in range(a.shape[0]):
        np.testing.assert_allclose(got[b], _ref_means(layer, a[b].numpy(), composed, []), atol=1e-10)


def test_wide_registers_fall_back_to_trajectories_with_the_documented_variance(monkeypatch) -> None:
    monkeypatch.setattr(qpu, "EXACT_MAX_QUBITS", 2)  # make a 4-qubit circuit "wide"
    from tests.quantum.test_per_shot import N_DRAWS, _layer_and_input, exact_means

    layer, angles = _layer_and_input()
    from fedqnn.quantum.readout import as_confusion

    conf = as_confusion(0.03, 4)
    mu = exact_means(0.05)
    rep = angles.repeat(N_DRAWS, 1, 1)
    for k in (64, 1):
        with torch.no_grad():
            est = qpu.qpu_expectations(rep, layer.weights, p=0.05, confusion=conf, shots=64,
                                       generator=torch.Generator().manual_seed(2), trajectories=k).numpy()
        bad = shot_statistics_failures(est, mu, 64)
        # K = S trajectories: every shot its own error pattern (exact); K = 1: excess variance
        assert (bad == []) if k == 64 else any(b.startswith("var") for b in bad), (k, bad)
