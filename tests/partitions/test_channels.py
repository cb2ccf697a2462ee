"""The cut channels of fedqnn.partitions.channels, checked against explicit density-matrix runs of
the protocols (Bell-diagonal resource, projective measurements, classically controlled Paulis)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fedqnn.partitions.channels import (
    PAULI,
    apply_pauli_channel,
    cut_gate_shrink,
    depolarizing_channel,
    fidelity_from_parameter,
    nonlocal_cnot_channel,
    nonlocal_cz_channel,
    teleportation_channel,
    werner_parameter,
    werner_weights,
)

I2, X, Z = PAULI["I"], PAULI["X"], PAULI["Z"]
H = np.array([[1, 1], [1, -1]], dtype=complex) / np.sqrt(2)
P = [np.diag([1, 0]).astype(complex), np.diag([0, 1]).astype(complex)]
SQ = 1 / np.sqrt(2)
BELL = {  # written out, not derived from Paulis on one half
    "phi+": np.array([SQ, 0, 0, SQ], dtype=complex),
    "phi-": np.array([SQ, 0, 0, -SQ], dtype=complex),
    "psi+": np.array([0, SQ, SQ, 0], dtype=complex),
    "psi-": np.array([0, SQ, -SQ, 0], dtype=complex),
}


def op(n: int, gates: dict[int, np.ndarray]) -> np.ndarray:
    out = np.ones((1, 1), dtype=complex)
    for w in range(n):
        out = np.kron(out, gates.get(w, I2))
    return out


def cnot(n: int, c: int, t: int) -> np.ndarray:
    return op(n, {c: P[0]}) + op(n, {c: P[1], t: X})


def cz(n: int, c: int, t: int) -> np.ndarray:
    return op(n, {c: P[0]}) + op(n, {c: P[1], t: Z})


def ptrace(rho: np.ndarray, keep: list[int], n: int) -> np.ndarray:
    t = rho.reshape((2,) * (2 * n))
    drop = [w for w in range(n) if w not in keep]
    for k, w in enumerate(sorted(drop, reverse=True)):
        m = n - k
        t = np.trace(t, axis1=w, axis2=w + m)
    d = 2 ** len(keep)
    return t.reshape(d, d)


def bell_diagonal(weights: tuple[float, float, float, float]) -> np.ndarray:
    rho = np.zeros((4, 4), dtype=complex)
    for lam, key in zip(weights, ("phi+", "phi-", "psi+", "psi-"), strict=True):
        v = BELL[key]
        rho += lam * np.outer(v, v.conj())
    return rho


def phi_plus_dm() -> np.ndarray:
    v = BELL["phi+"]
    return np.outer(v, v.conj())


def teleport_choi(weights) -> np.ndarray:
    """wires r, s, a, b: Choi state of teleporting s -> b through the pair (a, b)."""
    n = 4
    rho = np.kron(phi_plus_dm(), bell_diagonal(weights))
    rho = cnot(n, 1, 2) @ rho @ cnot(n, 1, 2).conj().T
    h = op(n, {1: H})
    rho = h @ rho @ h.conj().T
    out = np.zeros_like(rho)
    for m1, m2 in itertools.product((0, 1), repeat=2):
        corr = op(n, {3: np.linalg.matrix_power(Z, m1) @ np.linalg.matrix_power(X, m2)})
        k = corr @ op(n, {1: P[m1], 2: P[m2]})
        out += k @ rho @ k.conj().T
    return ptrace(out, [0, 3], n)


def nonlocal_gate_choi(weights, gate: str) -> np.ndarray:
    """wires rc, c, a, b, t, rt: Eisert et al.'s one-pair nonlocal CNOT (or CZ) of c -> t."""
    n = 6
    rho = np.kron(np.kron(phi_plus_dm(), bell_diagonal(weights)), phi_plus_dm())
    g = cnot(n, 1, 2)
    rho = g @ rho @ g.conj().T
    out = np.zeros_like(rho)
    for m1 in (0, 1):  # measure a in Z, X^m1 on b
        k = op(n, {3: np.linalg.matrix_power(X, m1)}) @ op(n, {2: P[m1]})
        out += k @ rho @ k.conj().T
    g = cnot(n, 3, 4) if gate == "cnot" else cz(n, 3, 4)
    rho = g @ out @ g.conj().T
    h = op(n, {3: H})  # measure b in X: H then Z
    rho = h @ rho @ h.conj().T
    out = np.zeros_like(rho)
    for m2 in (0, 1):
        k = op(n, {1: np.linalg.matrix_power(Z, m2)}) @ op(n, {3: P[m2]})
        out += k @ rho @ k.conj().T
    return ptrace(out, [0, 1, 4, 5], n)


def random_bell_weights(seed: int) -> tuple[float, float, float, float]:
    w = np.random.default_rng(seed).dirichlet(np.ones(4))
    return tuple(float(v) for v in w)


@pytest.mark.parametrize("fidelity", [1.0, 0.95, 0.8, 0.5, 0.25])
def test_teleportation_through_werner_is_depolarising(fidelity):
    got = teleport_choi(werner_weights(fidelity))
    want = apply_pauli_channel(phi_plus_dm(), teleportation_channel(fidelity), [1], 2)
    assert np.allclose(got, want, atol=1e-12)
    w = werner_parameter(fidelity)  # and it is w ρ + (1 − w) I/2 on the teleported half
    depol = w * phi_plus_dm() + (1 - w) * np.kron(ptrace(phi_plus_dm(), [0], 2), I2 / 2)
    assert np.allclose(got, depol, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_teleportation_through_bell_diagonal_pair(seed):
    lam = random_bell_weights(seed)
    got = teleport_choi(lam)
    want = apply_pauli_channel(phi_plus_dm(), teleportation_channel(bell_weights=lam), [1], 2)
    assert np.allclose(got, want, atol=1e-12)


def _ideal(gate: str) -> np.ndarray:
    g = cnot(4, 1, 2) if gate == "cnot" else cz(4, 1, 2)
    rho = np.kron(phi_plus_dm(), phi_plus_dm())
    return g @ rho @ g.conj().T


@pytest.mark.parametrize("gate", ["cnot", "cz"])
@pytest.mark.parametrize("fidelity", [1.0, 0.9, 0.7])
def test_nonlocal_gate_with_werner_pair(gate, fidelity):
    got = nonlocal_gate_choi(werner_weights(fidelity), gate)
    ch = nonlocal_cnot_channel(fidelity) if gate == "cnot" else nonlocal_cz_channel(fidelity)
    want = apply_pauli_channel(_ideal(gate), ch, [1, 2], 4)
    assert np.allclose(got, want, atol=1e-12)
    if fidelity < 1:  # and it is not the "depolarise both qubits" shortcut
        lazy = apply_pauli_channel(_ideal(gate), teleportation_channel(fidelity), [1], 4)
        lazy = apply_pauli_channel(lazy, teleportation_channel(fidelity), [2], 4)
        assert not np.allclose(got, lazy, atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_nonlocal_cnot_with_bell_diagonal_pair(seed):
    lam = random_bell_weights(seed)
    got = nonlocal_gate_choi(lam, "cnot")
    want = apply_pauli_channel(_ideal("cnot"), nonlocal_cnot_channel(bell_weights=lam), [1, 2], 4)
    assert np.allclose(got, want, atol=1e-12)


def test_cut_gate_shrink_matches_the_channel():
    f = 0.85
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    rho = a @ a.conj().T
    rho /= np.trace(rho)
    out = apply_pauli_channel(rho, nonlocal_cnot_channel(f), [0, 1], 2)
    zc, zt = np.kron(Z, I2), np.kron(I2, Z)
    w = cut_gate_shrink(f)
    assert np.trace(zc @ out).real == pytest.approx(np.trace(zc @ rho).real)  # Z_c untouched
    assert np.trace(zt @ out).real == pytest.approx(w * np.trace(zt @ rho).real)
    assert np.trace(zc @ zt @ out).real == pytest.approx(w * np.trace(zc @ zt @ rho).real)


def test_werner_relations_and_errors():
    assert werner_parameter(1.0) == 1.0 and werner_parameter(0.25) == 0.0
    assert fidelity_from_parameter(werner_parameter(0.9)) == pytest.approx(0.9)
    depol = {s: p for p, s in depolarizing_channel(0.1)}  # D_p with p = 1 − F
    tele = {s: p for p, s in teleportation_channel(0.9)}
    assert depol.keys() == tele.keys() and all(depol[k] == pytest.approx(tele[k]) for k in depol)
    with pytest.raises(ValueError, match="fidelity"):
        werner_weights(1.2)
    with pytest.raises(ValueError, match="bell_weights"):
        teleportation_channel(bell_weights=(0.5, 0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="exactly one"):
        nonlocal_cnot_channel()
