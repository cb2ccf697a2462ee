"""An independent reference: the fedqnn circuit as an explicit dense density matrix in numpy.

Every gate is a full 2^n x 2^n matrix (Kronecker products, wire 0 the leftmost factor), every
channel an explicit Kraus sum ρ -> Σ_k K_k ρ K_k†; nothing is shared with ``fedqnn.quantum``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)


def ry(t: float) -> np.ndarray:
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def rz(t: float) -> np.ndarray:
    return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def rot(phi: float, theta: float, omega: float) -> np.ndarray:
    return rz(omega) @ ry(theta) @ rz(phi)


def embed(op: np.ndarray, wire: int, n: int) -> np.ndarray:
    out = np.ones((1, 1), dtype=complex)
    for w in range(n):
        out = np.kron(out, op if w == wire else I2)
    return out


def cnot(c: int, t: int, n: int) -> np.ndarray:
    dim = 2**n
    m = np.zeros((dim, dim), dtype=complex)
    for x in range(dim):
        y = x ^ (1 << (n - 1 - t)) if (x >> (n - 1 - c)) & 1 else x
        m[y, x] = 1
    return m


def depolarizing_kraus(p: float) -> list[np.ndarray]:
    return [np.sqrt(1 - p) * I2, np.sqrt(p / 3) * X, np.sqrt(p / 3) * Y, np.sqrt(p / 3) * Z]


def bitflip_kraus(r: float) -> list[np.ndarray]:
    return [np.sqrt(1 - r) * I2, np.sqrt(r) * X]


def apply_kraus(rho: np.ndarray, kraus: Sequence[np.ndarray], wire: int, n: int) -> np.ndarray:
    return sum(embed(k, wire, n) @ rho @ embed(k, wire, n).conj().T for k in kraus)  # type: ignore[return-value]


def final_rho(angles: np.ndarray, weights: np.ndarray, noise: Sequence[np.ndarray] = (),
              readout: Sequence[np.ndarray] = ()) -> np.ndarray:
    """angles (L, n), weights (L, n, 3); ``noise`` Kraus operators applied to every qubit after
    every layer; ``readout`` Kraus operators on every qubit before the measurement."""
    layers, n = angles.shape
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for layer in range(layers):
        for i in range(n):
            u = embed(rot(*weights[layer, i]) @ ry(angles[layer, i]), i, n)
            rho = u @ rho @ u.conj().T
        if n > 1:
            r = (layer % (n - 1)) + 1
            for i in range(n):
                g = cnot(i, (i + r) % n, n)
                rho = g @ rho @ g.T
        for i in range(n):
            rho = apply_kraus(rho, noise, i, n) if len(noise) else rho
    for i in range(n):
        rho = apply_kraus(rho, readout, i, n) if len(readout) else rho
    return rho


def observables(n: int) -> list[np.ndarray]:
    """Z_i (i = 0..n-1) then Z_i Z_{i+1}, as full matrices."""
    zs = [embed(Z, i, n) for i in range(n)]
    return zs + [zs[i] @ zs[i + 1] for i in range(n - 1)]


def means(rho: np.ndarray) -> np.ndarray:
    n = int(np.log2(rho.shape[0]))
    return np.array([np.trace(o @ rho).real for o in observables(n)])
