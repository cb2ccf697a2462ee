"""A plain-torch statevector simulator of the fedqnn circuit (the speed floor, and exact reference).

The circuit, per layer l = 0..L-1 (identical to the PennyLane QNode in ``fedqnn.quantum.qnode``):

1. angle encoding (data re-uploading): RY(a_{l,i}) on every qubit i, a = encoder(input);
2. ``qml.StronglyEntanglingLayers`` layer l: Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ) on every qubit, then
   CNOT(i, (i + r) mod n) for i = 0..n-1 with range r = (l mod (n - 1)) + 1.

Readout: ⟨Z_i⟩ for every qubit and ⟨Z_i Z_{i+1}⟩ for neighbours (i = 0..n-2): 2n - 1 values.
The state of a batch is a complex tensor of shape (B, 2, ..., 2); wire 0 is the most significant.
"""

from __future__ import annotations

import torch

from fedqnn.quantum.pauli import pauli_trajectory_gates

__all__ = ["circuit_state", "expectations", "num_observables", "zz_pairs"]


def _ry(theta: torch.Tensor) -> torch.Tensor:
    """RY(θ) = [[cos θ/2, -sin θ/2], [sin θ/2, cos θ/2]] for a batch of angles: (..., 2, 2)."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2).to(torch.complex128)


def _rot(phi: torch.Tensor, theta: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ), PennyLane's convention (2, 2)."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    ep = torch.exp(-0.5j * (phi + omega))
    em = torch.exp(-0.5j * (phi - omega))
    return torch.stack(
        [torch.stack([ep * c, -em.conj() * s]), torch.stack([em * s, ep.conj() * c])]
    )


def _apply_1q(state: torch.Tensor, mat: torch.Tensor, wire: int, batched_gate: bool) -> torch.Tensor:
    """Apply a one-qubit gate to ``wire`` (axis wire + 1 of the batched state)."""
    axis = wire + 1
    state = state.movedim(axis, -1)
    if batched_gate:  # mat: (B, 2, 2)
        shape = state.shape
        flat = state.reshape(shape[0], -1, 2)
        flat = torch.einsum("bij,bkj->bki", mat, flat)
        state = flat.reshape(shape)
    else:
        state = state @ mat.T
    return state.movedim(-1, axis)


def _apply_cnot(state: torch.Tensor, control: int, target: int) -> torch.Tensor:
    c_ax, t_ax = control + 1, target + 1
    one = state.select(c_ax, 1).flip(t_ax - (1 if t_ax > c_ax else 0))
    zero = state.select(c_ax, 0)
    return torch.stack([zero, one], dim=c_ax)


def circuit_state(
    angles: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None = None,
    depolarizing: float = 0.0, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Final state for a batch.

    angles: (B, L, n) encoding angles; weights: (L, n, 3) Rot parameters.
    ``mask`` (L, n) of 0/1 optionally disables individual CNOTs (kept for fixed parameter shapes).
    ``depolarizing`` p > 0 samples one Pauli trajectory per batch element: after every layer each
    qubit gets X, Y or Z with probability p/3 each (the average is the depolarising channel D_p).
    Returns (B, 2, ..., 2) complex128.
    """
    b, layers, n = angles.shape
    state = torch.zeros((b,) + (2,) * n, dtype=torch.complex128)
    state.view(b, -1)[:, 0] = 1.0
    angles = angles.to(torch.float64)
    weights = weights.to(torch.float64)
    for layer in range(layers):
        for i in range(n):
            state = _apply_1q(state, _ry(angles[:, layer, i]), i, batched_gate=True)
        for i in range(n):
            w = weights[layer, i]
            state = _apply_1q(state, _rot(w[0], w[1], w[2]), i, batched_gate=False)
        if n > 1:
            r = (layer % (n - 1)) + 1
            for i in range(n):
                if mask is not None and not bool(mask[layer, i]):
                    continue
                state = _apply_cnot(state, i, (i + r) % n)
        if depolarizing > 0:
            for i in range(n):
                gates = pauli_trajectory_gates(b, depolarizing, generator)
                if gates is not None:
                    state = _apply_1q(state, gates, i, batched_gate=True)
    return state


def zz_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)]


def num_observables(n: int) -> int:
    return n + len(zz_pairs(n))


def observable_weights(n: int) -> torch.Tensor:
    """Pauli weight m of each readout observable: 1 for Z_i, 2 for Z_i Z_{i+1}."""
    return torch.tensor([1.0] * n + [2.0] * len(zz_pairs(n)), dtype=torch.float64)


def expectations(state: torch.Tensor) -> torch.Tensor:
    """(B, 2n - 1): ⟨Z_i⟩ then ⟨Z_i Z_{i+1}⟩, from the probabilities |ψ|^2."""
    n = state.dim() - 1
    probs = (state.real**2 + state.imag**2).to(torch.float64)
    out = []
    signs = []
    for i in range(n):
        shape = [1] * (n + 1)
        shape[i + 1] = 2
        signs.append(torch.tensor([1.0, -1.0], dtype=torch.float64).view(shape))
    for i in range(n):
        out.append((probs * signs[i]).flatten(1).sum(1))
    for i, j in zz_pairs(n):
        out.append((probs * signs[i] * signs[j]).flatten(1).sum(1))
    return torch.stack(out, dim=1)
