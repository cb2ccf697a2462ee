"""QPU noise, the QFI and the shrink factor against closed forms and PennyLane's default.mixed."""

import math

import numpy as np
import pennylane as qml
import pytest
import torch

from fedqnn.noise import Calibration, calibration_for, shrink_factor, simulated_shrink
from fedqnn.qfi import infidelity, quantum_fisher
from fedqnn.quantum.statevector import circuit_state, expectations, zz_pairs


def test_qfi_single_qubit_closed_form():
    # one qubit, one layer: RY(a) then Rot(φ, θ, ω); every entry against the fidelity expansion
    a = torch.tensor([[[0.3]]], dtype=torch.float64)
    w = torch.tensor([[[0.2, 0.7, -0.4]]], dtype=torch.float64)
    f = quantum_fisher(a, w)
    # θ enters as RY(θ) on a state: the QFI of RY rotation about y is 1 - ⟨Y⟩², exactly 1 for
    # a state in the xz-plane after RZ(φ) RY(a)|0> only when φ = 0; compare with the expansion
    for v in np.eye(3):
        v = torch.tensor(v)
        eps = 1e-4
        fd = 4 * infidelity(a, w, w + eps * v.view(1, 1, 3)) / eps**2
        assert float(fd) == pytest.approx(float(v @ f @ v), rel=1e-3, abs=1e-8)
    # θ is an RY(θ) rotation acting on |ψ> = RZ(φ) RY(a)|0>: F_θθ = 1 - <Y>^2 (generator Y/2)
    psi = circuit_state(a, torch.tensor([[[0.2, 0.0, 0.0]]], dtype=torch.float64)).reshape(-1)
    y = torch.tensor([[0, -1j], [1j, 0]], dtype=torch.complex128)
    exp_y = float((psi.conj() @ y @ psi).real)
    assert float(f[1, 1]) == pytest.approx(1 - exp_y**2, rel=1e-9)


def test_qfi_matches_the_fidelity_expansion_on_the_full_circuit():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 2, 4, generator=g, dtype=torch.float64)
    w = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    f = quantum_fisher(a, w)
    assert torch.allclose(f, f.T, atol=1e-12)
    assert float(torch.linalg.eigvalsh(f).min()) > -1e-10
    for seed in range(3):
        v = torch.randn(24, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        v /= v.norm()
        eps = 1e-3
        lhs = float(infidelity(a, w, w + eps * v.view(2, 4, 3)))
        assert lhs == pytest.approx(eps**2 / 4 * float(v @ f @ v), rel=2e-3)


def _mixed_reference(a, w, p, r):
    n = a.shape[-1]
    layers = w.shape[0]
    dev = qml.device("default.mixed", wires=n)

    @qml.qnode(dev)
    def circ():
        for layer in range(layers):
            qml.AngleEmbedding(a[layer], wires=range(n), rotation="Y")
            qml.StronglyEntanglingLayers(w[layer : layer + 1], wires=range(n), ranges=[(layer % (n - 1)) + 1])
            for i in range(n):
                qml.DepolarizingChannel(p, wires=i)
        for i in range(n):  # readout error: a bit flip just before the Z measurement
            qml.BitFlip(r, wires=i)
        return [qml.expval(qml.PauliZ(i)) for i in range(n)] + [
            qml.expval(qml.PauliZ(i) @ qml.PauliZ(j)) for i, j in zz_pairs(n)]

    return np.array([float(v) for v in circ()])


def test_pauli_trajectories_match_default_mixed():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, 2, 3, generator=g, dtype=torch.float64)
    w = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    p = 0.08
    traj = 20000
    noisy = expectations(
        circuit_state(a.repeat(traj, 1, 1), w, depolarizing=p, generator=torch.Generator().manual_seed(1))
    ).mean(0).numpy()
    ref = _mixed_reference(a[0].numpy(), w.numpy(), p, 0.0)
    # Monte Carlo error: std <= 1/sqrt(traj) ~ 0.007 per observable
    assert np.max(np.abs(noisy - ref)) < 0.03
    clean = expectations(circuit_state(a, w))[0].numpy()
    assert np.max(np.abs(clean - ref)) > 0.05  # the noise is visible, so the check has teeth


def test_readout_error_shrinks_by_one_minus_two_r_to_the_weight():
    from fedqnn.models import QuantumLayer

    layer = QuantumLayer(3, 2, device="torch")
    a = torch.randn(4, 2, 3, dtype=torch.float64)
    clean = layer(a).detach()
    layer.set_noise(0.0, 0.1, 0)
    layer.train()
    noisy = layer(a).detach()
    factor = torch.tensor([0.8] * 3 + [0.64] * 2, dtype=torch.float64)
    torch.testing.assert_close(noisy, clean * factor)
    ref = _mixed_reference(a[0].numpy(), layer.weights.detach().numpy(), 0.0, 0.1)
    np.testing.assert_allclose(noisy[0].numpy(), ref, atol=1e-10)


def test_simulated_shrink_is_exact_for_readout_and_below_one_for_depolarising():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(8, 2, 4, generator=g, dtype=torch.float64)
    w = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    assert simulated_shrink(a, w, Calibration(0.0, 0.0, 0)) == 1.0
    c_r = simulated_shrink(a, w, Calibration(0.0, 0.05, 0))
    assert 0.9**2 < c_r < 0.9  # between the Z (0.9) and ZZ (0.81) factors
    c_small = simulated_shrink(a, w, Calibration(0.01, 0.0, 0), trajectories=64)
    c_big = simulated_shrink(a, w, Calibration(0.05, 0.0, 0), trajectories=64)
    assert c_small < 1.0
    assert c_big < c_small
    assert c_big > shrink_factor(Calibration(0.05, 0.0, 0), 2, 4, 1.0)  # the formula overstates the shrink


def test_calibrations_are_seeded_and_in_range():
    from fedqnn.config import build_config

    cfg = build_config({"seed": 4})
    cals = [calibration_for(cfg, f"node-{i}") for i in range(20)]
    assert cals == [calibration_for(cfg, f"node-{i}") for i in range(20)]
    q = cfg["qpu"]
    assert all(q["p_min"] <= c.p <= q["p_max"] and q["r_min"] <= c.r <= q["r_max"] for c in cals)
    assert all(c.shots in q["shots_choices"] for c in cals)
    assert len({c.shots for c in cals}) > 1  # heterogeneous
    noiseless = build_config({"noise": "noiseless"})
    assert calibration_for(noiseless, "node-0") == Calibration(0.0, 0.0, 0)
    override = build_config({"qpu.nodes": {"node-3": {"p": 0.02, "shots": 128}}})
    assert calibration_for(override, "node-3").p == 0.02 and calibration_for(override, "node-3").shots == 128
    assert math.isclose(shrink_factor(Calibration(0.03, 0.02, 0), 2, 4, 1), (1 - 0.04) ** 8 * 0.96)
