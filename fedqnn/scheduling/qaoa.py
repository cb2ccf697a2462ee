"""QAOA on a QUBO: a NumPy statevector simulator with precomputed diagonal energies (the
fast path) and the same circuit built from PennyLane's ``qml.qaoa`` layers (reference).

State after p layers:  |psi(gamma, beta)> = prod_l U_M(beta_l) U_C(gamma_l) |psi_0>,
U_C(gamma) = exp(-i gamma H_C / s) with H_C the Ising Hamiltonian of the QUBO (diagonal,
E(x) on basis state x; s = energy scale so that angles are O(1)), U_M(beta) = exp(-i beta H_M),
H_M = sum_w X_w (``x`` mixer, |psi_0> = |+>^N) or H_M = sum_{ring edges (u,v) of each one-hot
group} (X_u X_v + Y_u Y_v)/2 (``xy`` mixer, |psi_0> = product of W states: one-hot kept).
Angles are optimised with COBYLA on CVaR_alpha(E) (Barkoutsos et al. 2020; alpha = 1 is the
expectation).  Wire 0 is the most significant bit of the basis index (PennyLane order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from fedqnn.scheduling.qubo import QUBO, qubo_to_ising

__all__ = ["QAOAResult", "diagonal_energies", "statevector", "run_qaoa", "pennylane_probs",
           "xy_edges", "MAX_QUBITS"]

MAX_QUBITS = 22


def diagonal_energies(q: QUBO, chunk: int = 1 << 16) -> np.ndarray:
    """E(x) for every basis state x (length 2^N), computed in chunks of bit rows."""
    N = q.num_vars
    if N > MAX_QUBITS:
        raise ValueError(f"qubits: {N} > {MAX_QUBITS} is too many to simulate")
    out = np.empty(2 ** N)
    shifts = np.arange(N - 1, -1, -1)
    for s in range(0, 2 ** N, chunk):
        idx = np.arange(s, min(s + chunk, 2 ** N), dtype=np.int64)
        b = ((idx[:, None] >> shifts) & 1).astype(np.float64)
        out[s:s + len(idx)] = q.offset + b @ q.linear + np.einsum("ki,ki->k", b @ q.quad, b)
    return out


def xy_edges(q: QUBO) -> list[tuple[int, int]]:
    """Ring edges inside each one-hot group (one edge for a pair, none for a singleton)."""
    edges: list[tuple[int, int]] = []
    for g in q.groups:
        if len(g) == 2:
            edges.append((g[0], g[1]))
        elif len(g) > 2:
            edges += [(g[a], g[(a + 1) % len(g)]) for a in range(len(g))]
    return edges


def _initial_state(q: QUBO, mixer: str) -> np.ndarray:
    N = q.num_vars
    if mixer == "x":
        return np.full(2 ** N, 2 ** (-N / 2), dtype=complex)
    psi = np.ones(1, dtype=complex)
    in_group = {v: g for g in q.groups for v in g}
    w = 0
    while w < N:
        if w in in_group:
            g = in_group[w]
            k = len(g)
            vec = np.zeros(2 ** k, dtype=complex)
            for a in range(k):
                vec[1 << (k - 1 - a)] = 1 / np.sqrt(k)
            psi = np.kron(psi, vec)
            w += k
        else:
            psi = np.kron(psi, np.array([1, 1], dtype=complex) / np.sqrt(2))
            w += 1
    return psi


def _apply_x_mixer(psi: np.ndarray, N: int, beta: float) -> np.ndarray:
    c, s = np.cos(beta), -1j * np.sin(beta)
    for w in range(N):
        t = psi.reshape(2 ** w, 2, -1)
        a0, a1 = t[:, 0, :].copy(), t[:, 1, :].copy()
        t[:, 0, :] = c * a0 + s * a1
        t[:, 1, :] = s * a0 + c * a1
    return psi


def _apply_xy(psi: np.ndarray, N: int, u: int, v: int, beta: float) -> np.ndarray:
    """exp(-i beta (XX + YY)/2) on wires u, v: rotates |01> <-> |10>."""
    t = psi.reshape([2] * N)
    idx01 = [slice(None)] * N
    idx10 = [slice(None)] * N
    idx01[u], idx01[v] = 0, 1
    idx10[u], idx10[v] = 1, 0
    a, b = t[tuple(idx01)].copy(), t[tuple(idx10)].copy()
    c, s = np.cos(beta), -1j * np.sin(beta)
    t[tuple(idx01)] = c * a + s * b
    t[tuple(idx10)] = s * a + c * b
    return psi


def statevector(q: QUBO, gammas: np.ndarray, betas: np.ndarray, mixer: str = "x",
                energies: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
    """|psi(gamma, beta)> (see module docstring); ``scale`` divides H_C."""
    N = q.num_vars
    E = diagonal_energies(q) if energies is None else energies
    psi = _initial_state(q, mixer)
    edges = xy_edges(q) if mixer == "xy" else []
    for g, b in zip(np.atleast_1d(gammas), np.atleast_1d(betas)):
        psi = psi * np.exp(-1j * g * E / scale)
        if mixer == "x":
            psi = _apply_x_mixer(psi, N, b)
        elif mixer == "xy":
            for u, v in edges:
                psi = _apply_xy(psi, N, u, v, b)
        else:
            raise ValueError(f"mixer: must be 'x' or 'xy', got {mixer!r}")
    return psi


@dataclass
class QAOAResult:
    """Optimised angles, the output distribution and samples (basis indices and bits)."""

    gammas: np.ndarray
    betas: np.ndarray
    probs: np.ndarray
    energies: np.ndarray
    samples: np.ndarray   # (shots, N) bits
    expectation: float
    evaluations: int
    scale: float


def _cvar(probs: np.ndarray, E: np.ndarray, order: np.ndarray, alpha: float) -> float:
    p = probs[order]
    c = np.cumsum(p)
    k = int(np.searchsorted(c, alpha)) + 1
    w = p[:k].copy()
    w[-1] -= c[k - 1] - alpha if c[k - 1] > alpha else 0.0
    return float((w * E[order][:k]).sum() / max(w.sum(), 1e-15))


def run_qaoa(q: QUBO, p: int = 2, mixer: str = "x", shots: int = 256, alpha: float = 0.2,
             maxiter: int = 60, rng: np.random.Generator | None = None) -> QAOAResult:
    """Optimise 2p angles (COBYLA from a linear-ramp start) on CVaR_alpha of E, then sample."""
    if p < 1:
        raise ValueError("p: needs at least one layer")
    rng = np.random.default_rng(0) if rng is None else rng
    E = diagonal_energies(q)
    order = np.argsort(E, kind="stable")
    psi0 = _initial_state(q, mixer)
    support = np.abs(psi0) > 0
    Es = E[support]
    scale = float(Es.std()) or 1.0
    evals = 0

    def probs_of(theta: np.ndarray) -> np.ndarray:
        psi = statevector(q, theta[:p], theta[p:], mixer, E, scale)
        pr = np.abs(psi) ** 2
        return pr / pr.sum()

    def loss(theta: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        return _cvar(probs_of(theta), E, order, alpha)

    ramp = (np.arange(p) + 0.5) / p
    theta0 = np.concatenate([0.8 * ramp, 0.8 * (1 - ramp)])
    res = minimize(loss, theta0, method="COBYLA", options={"maxiter": maxiter, "rhobeg": 0.3})
    theta = res.x
    probs = probs_of(theta)
    idx = rng.choice(len(probs), size=shots, p=probs)
    N = q.num_vars
    bits = ((idx[:, None] >> np.arange(N - 1, -1, -1)) & 1).astype(np.int8)
    return QAOAResult(theta[:p], theta[p:], probs, E, bits, float(probs @ E), evals, scale)


def pennylane_probs(q: QUBO, gammas: np.ndarray, betas: np.ndarray, mixer: str = "x",
                    scale: float = 1.0) -> np.ndarray:
    """The same circuit with ``qml.qaoa.cost_layer`` / ``mixer_layer`` on ``default.qubit``
    (reference implementation; slow beyond ~16 qubits, see docs/scheduler.md)."""
    import pennylane as qml

    ising = qubo_to_ising(q)
    N = q.num_vars
    coeffs, ops = [], []
    for v in range(N):
        if ising.h[v]:
            coeffs.append(ising.h[v] / scale)
            ops.append(qml.Z(v))
    for u in range(N):
        for v in range(u + 1, N):
            if ising.J[u, v]:
                coeffs.append(ising.J[u, v] / scale)
                ops.append(qml.Z(u) @ qml.Z(v))
    H_C = qml.Hamiltonian(coeffs, ops)
    if mixer == "x":
        H_M = qml.qaoa.x_mixer(range(N))
    else:
        edges = xy_edges(q)
        H_M = qml.Hamiltonian([0.5] * (2 * len(edges)),
                              [op for u, v in edges for op in (qml.X(u) @ qml.X(v), qml.Y(u) @ qml.Y(v))])
    psi0 = _initial_state(q, mixer)
    dev = qml.device("default.qubit", wires=N)

    @qml.qnode(dev)
    def circuit():
        qml.StatePrep(psi0, wires=range(N))
        for g, b in zip(np.atleast_1d(gammas), np.atleast_1d(betas)):
            qml.qaoa.cost_layer(g, H_C)
            qml.qaoa.mixer_layer(b, H_M)
        return qml.probs(wires=range(N))

    return np.asarray(circuit())
