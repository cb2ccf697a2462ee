"""Quantum Fisher information of the fedqnn circuit's trainable weights (server side).

For a pure state ψ(θ) the QFI is

    F_Q(θ)_ij = 4 Re[ ⟨∂_i ψ|∂_j ψ⟩ - ⟨∂_i ψ|ψ⟩⟨ψ|∂_j ψ⟩ ],   i.e.  F_Q = 4 Re[J†J - (J†ψ)(ψ†J)]

with J = ∂ψ/∂θ the Jacobian of the statevector. It is the metric of state distinguishability:
1 - |⟨ψ(θ)|ψ(θ + δ)⟩|² = δᵀ F_Q δ / 4 + O(|δ|³). fedqnn averages it over a public probe batch
of inputs (the encoding angles of each probe input fix a state family ψ_x(θ)).

J is computed by forward-mode autodiff of the plain-torch statevector (exact; PennyLane's
``quantum_fisher`` returned a mis-shaped result for this ansatz when checked).
"""

from __future__ import annotations

import warnings

import torch
from torch.func import jacfwd

from fedqnn.quantum.statevector import circuit_state

__all__ = ["quantum_fisher", "infidelity"]


def quantum_fisher(angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean QFI over the probe batch: angles (B, L, n), weights (L, n, 3) -> (P, P), P = 3 L n."""
    angles = angles.detach().to(torch.float64)
    w0 = weights.detach().to(torch.float64).reshape(-1)
    shape = weights.shape

    def state(flat: torch.Tensor) -> torch.Tensor:
        psi = circuit_state(angles, flat.reshape(shape)).reshape(angles.shape[0], -1)
        return torch.view_as_real(psi)  # (B, D, 2)

    with warnings.catch_warnings():  # torch's forward AD loads its JVP decompositions with torch.jit.script,
        # which torch 2.13 itself deprecates (once per process, nothing fedqnn calls): not the user's concern
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
        jac = jacfwd(state)(w0)  # (B, D, 2, P)
    j = torch.complex(jac[:, :, 0, :], jac[:, :, 1, :])  # (B, D, P)
    psi = circuit_state(angles, w0.reshape(shape)).reshape(angles.shape[0], -1)  # (B, D)
    jj = torch.einsum("bdi,bdj->bij", j.conj(), j)
    jpsi = torch.einsum("bdi,bd->bi", j.conj(), psi)  # ⟨∂_i ψ|ψ⟩
    f = 4.0 * (jj - torch.einsum("bi,bj->bij", jpsi, jpsi.conj())).real
    return f.mean(0)


def infidelity(angles: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Mean 1 - |⟨ψ(w1)|ψ(w2)⟩|² over the batch (the quantity the QFI expands)."""
    a = circuit_state(angles, w1).reshape(angles.shape[0], -1)
    b = circuit_state(angles, w2).reshape(angles.shape[0], -1)
    return (1.0 - (a.conj() * b).sum(1).abs() ** 2).mean()
