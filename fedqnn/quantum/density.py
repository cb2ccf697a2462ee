"""Exact noisy simulation of the fedqnn circuit: the batched density matrix in plain torch.

The circuit is :mod:`fedqnn.quantum.statevector`'s. Noise: after every layer each qubit goes
through one single-qubit channel E (the depolarising channel D_p, the placement of the old Pauli
trajectories; amplitude and phase damping are here for device calibrations).

Channels. A channel with Kraus operators K_k has the superoperator (row-major vec convention
vec(ρ)_{(a,b)} = ρ_{ab}; Nielsen & Chuang §8.2.3)

    S = Σ_k K_k ⊗ conj(K_k),   S_{(ab),(cd)} = Σ_k K_k[a,c] conj(K_k[b,d]),   vec E(ρ) = S vec(ρ)

and the Pauli transfer matrix R[j, k] = ½ Tr(σ_j E(σ_k)) (σ = I, X, Y, Z), a real 4x4 matrix;
a unitary has R_U[j, k] = ½ Tr(σ_j U σ_k U†) = diag(1, SO(3) rotation); D_p has
R = diag(1, 1 - 4p/3, 1 - 4p/3, 1 - 4p/3) since D_p(ρ) = (1 - 4p/3) ρ + (4p/3) Tr(ρ) I/2.

Representation. ρ = 2^{-n} Σ_P c_P P over the 4^n Pauli strings P, c_P = Tr(P ρ) real: the
density matrix in the Pauli basis, (B, 4^n) float64 (base-4 digits, qubit 0 most significant).
This is the 2n-wire ket/bra tensor (U on ket wire i, conj(U) on bra wire n + i) after a local
change of basis: every single-qubit map acts on one base-4 digit with its 4x4 R, and a CNOT is a
signed permutation of the Pauli strings (it is Clifford: CNOT P CNOT = ±P'). Per layer l >= 1 and
qubit i the simulator applies R_U(l, i) · R_E (the previous layer's noise fused with this layer's
RY·Rot, so the noise costs no extra pass), then the CNOT ring's signed permutation (one gather).
Layer 0 acts on |0...0⟩ and is the product ⊗_i R_U(0, i)(1, 0, 0, 1). The outcome
probabilities need only the 2^n Z-type coefficients c_S (S ⊆ qubits):

    P(x) = ⟨x|ρ|x⟩ = 2^{-n} Σ_S c_{Z_S} (-1)^{Σ_{i∈S} x_i}

(a Walsh–Hadamard transform); the last layer's noise enters through its (I, Z) block when E maps
no X, Y component into I, Z (true for D_p, amplitude and phase damping), else it is applied to c.

Cost: 8 B 4^n bytes per sample and tensor; exact and differentiable up to :data:`EXACT_MAX_QUBITS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch

from fedqnn.quantum.statevector import _ry

__all__ = [
    "EXACT_MAX_QUBITS", "kraus_superop", "depolarizing_superop", "depolarizing_kraus",
    "amplitude_damping_kraus", "phase_damping_kraus", "relaxation_parameters",
    "relaxation_superop", "superop_to_ptm", "density_probs", "cnot_pauli_map",
]

#: Widest register simulated exactly (ρ is 16 B 4^n bytes: 16 MiB per sample at n = 10).
EXACT_MAX_QUBITS = 10

_C = torch.complex128
_I2 = torch.eye(2, dtype=_C)
_PAULIS = (
    torch.tensor([[0, 1], [1, 0]], dtype=_C),
    torch.tensor([[0, -1j], [1j, 0]], dtype=_C),
    torch.tensor([[1, 0], [0, -1]], dtype=_C),
)


def kraus_superop(kraus: Sequence[torch.Tensor]) -> torch.Tensor:
    """S = Σ_k K_k ⊗ conj(K_k) (4, 4) of a single-qubit channel given by its Kraus operators."""
    return sum(torch.kron(k.to(_C), k.to(_C).conj()) for k in kraus)  # type: ignore[return-value]


def depolarizing_kraus(p: float) -> list[torch.Tensor]:
    """D_p(ρ) = (1 - p) ρ + (p/3)(XρX + YρY + ZρZ): Kraus √(1-p) I, √(p/3) X, √(p/3) Y, √(p/3) Z."""
    return [math.sqrt(1.0 - p) * _I2] + [math.sqrt(p / 3.0) * s for s in _PAULIS]


def depolarizing_superop(p: float) -> torch.Tensor:
    """D_p = (1 - 4p/3) ρ + (4p/3) Tr(ρ) I/2, so S = (1 - 4p/3) I_4 + (2p/3) v vᵀ with
    v = vec(I) = (1, 0, 0, 1) (using (ρ + XρX + YρY + ZρZ)/4 = Tr(ρ) I/2)."""
    v = torch.tensor([1, 0, 0, 1], dtype=_C)
    return (1.0 - 4.0 * p / 3.0) * torch.eye(4, dtype=_C) + (2.0 * p / 3.0) * torch.outer(v, v)


def amplitude_damping_kraus(gamma: float) -> list[torch.Tensor]:
    """Amplitude damping (energy relaxation |1⟩ -> |0⟩ with probability γ; Nielsen & Chuang
    eq. 8.108): K0 = [[1, 0], [0, √(1-γ)]], K1 = [[0, √γ], [0, 0]]."""
    k0 = torch.tensor([[1.0, 0.0], [0.0, math.sqrt(1.0 - gamma)]], dtype=_C)
    k1 = torch.tensor([[0.0, math.sqrt(gamma)], [0.0, 0.0]], dtype=_C)
    return [k0, k1]


def phase_damping_kraus(lam: float) -> list[torch.Tensor]:
    """Phase damping (Nielsen & Chuang eq. 8.127): K0 = [[1, 0], [0, √(1-λ)]],
    K1 = [[0, 0], [0, √λ]]; populations kept, coherences scaled by √(1-λ)."""
    k0 = torch.tensor([[1.0, 0.0], [0.0, math.sqrt(1.0 - lam)]], dtype=_C)
    k1 = torch.tensor([[0.0, 0.0], [0.0, math.sqrt(lam)]], dtype=_C)
    return [k0, k1]


def relaxation_parameters(t: float, t1: float, t2: float) -> tuple[float, float]:
    """(γ, λ) of a gate of duration t on a qubit with relaxation time T1 and coherence time T2:

        γ = 1 - exp(-t/T1)                       (population of |1⟩ decays as e^{-t/T1})
        1/T_φ = 1/T2 - 1/(2 T1),  λ = 1 - exp(-2t/T_φ)

    so amplitude damping (coherence factor √(1-γ) = e^{-t/(2T1)}) followed by phase damping
    (√(1-λ) = e^{-t/T_φ}) decays the coherence as e^{-t/T2}. Needs T2 <= 2 T1 (T_φ = ∞ at equality).
    """
    if t < 0 or t1 <= 0 or t2 <= 0:
        raise ValueError(f"relaxation: need t >= 0 and T1, T2 > 0, got t={t}, T1={t1}, T2={t2}")
    if t2 > 2.0 * t1 * (1 + 1e-12):
        raise ValueError(f"relaxation: T2={t2} > 2 T1={2 * t1} is unphysical")
    gamma = 1.0 - math.exp(-t / t1)
    rate_phi = max(0.0, 1.0 / t2 - 1.0 / (2.0 * t1))
    lam = 1.0 - math.exp(-2.0 * t * rate_phi)
    return gamma, lam


def relaxation_superop(t: float, t1: float, t2: float) -> torch.Tensor:
    """Phase damping (λ) after amplitude damping (γ), with (γ, λ) = :func:`relaxation_parameters`."""
    gamma, lam = relaxation_parameters(t, t1, t2)
    return kraus_superop(phase_damping_kraus(lam)) @ kraus_superop(amplitude_damping_kraus(gamma))


_SIGMA = torch.stack([_I2, *_PAULIS])  # I, X, Y, Z
_VEC = _SIGMA.reshape(4, 4).T  # column k = vec(σ_k) (row-major)


def superop_to_ptm(sop: torch.Tensor) -> torch.Tensor:
    """Pauli transfer matrix R[j, k] = ½ Tr(σ_j E(σ_k)) = ½ vec(σ_j)† S vec(σ_k) (real for a
    Hermiticity-preserving E); (..., 4, 4) -> (..., 4, 4) float64."""
    return (0.5 * (_VEC.conj().T @ sop.to(_C) @ _VEC)).real


def _unitary_ptm(u: torch.Tensor) -> torch.Tensor:
    """R_U[j, k] = ½ Tr(σ_j U σ_k U†) for unitaries (..., 2, 2) -> (..., 4, 4) float64."""
    conj = torch.einsum("...ac,kcd,...ed->...kae", u, _SIGMA, u.conj())  # U σ_k U†
    return 0.5 * torch.einsum("jea,...kae->...jk", _SIGMA, conj).real


def _layer_ptms(angles: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """R of U_i = Rot(φ_i, θ_i, ω_i) RY(a_i) for every sample and qubit: angles (B, n),
    weights (n, 3) or per sample (B, n, 3) -> (B, n, 4, 4). Rot = RZ(ω) RY(θ) RZ(φ)
    (PennyLane's convention)."""
    phi, theta, omega = weights[..., 0], weights[..., 1], weights[..., 2]
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    ep, em = torch.exp(-0.5j * (phi + omega)), torch.exp(-0.5j * (phi - omega))
    rot = torch.stack([torch.stack([ep * c, -em.conj() * s], -1), torch.stack([em * s, ep.conj() * c], -1)], -2)
    return _unitary_ptm(torch.matmul(rot, _ry(angles)))


def _cnot_pauli_table() -> tuple[list[int], list[float]]:
    """CNOT (σ_a ⊗ σ_b) CNOT = sign σ_a' ⊗ σ_b' for the 16 pairs (a, b): (index 4a' + b', sign)."""
    cnot = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=_C)
    pairs = [torch.kron(_SIGMA[a], _SIGMA[b]) for a in range(4) for b in range(4)]
    dst, sign = [], []
    for p in pairs:
        q = cnot @ p @ cnot
        overlaps = torch.stack([torch.trace(r.conj().T @ q).real / 4 for r in pairs])
        k = int(overlaps.abs().argmax())
        dst.append(k)
        sign.append(float(overlaps[k].sign()))
    return dst, sign


@lru_cache(maxsize=256)
def cnot_pauli_map(n: int, layer: int, mask: tuple[bool, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, sign) with c'[Q] = sign[Q] c[src[Q]] for the layer's CNOT ring CNOT(i, (i + r) mod n),
    i = 0..n-1 in order, r = (layer mod (n - 1)) + 1, on Pauli coefficients c indexed by base-4
    digits (qubit 0 most significant; 0 I, 1 X, 2 Y, 3 Z). ``mask[i]`` False skips CNOT i."""
    import numpy as np

    digits = (np.arange(4**n)[:, None] // 4 ** np.arange(n - 1, -1, -1)[None, :]) % 4  # (4^n, n)
    sign = np.ones(4**n)
    if n >= 2:
        dst_t, sign_t = (np.asarray(t) for t in _cnot_pauli_table())
        r = (layer % (n - 1)) + 1
        for i in range(n):
            if mask is not None and not mask[i]:
                continue
            t = (i + r) % n
            k = 4 * digits[:, i] + digits[:, t]
            sign = sign * sign_t[k]
            digits[:, i], digits[:, t] = dst_t[k] // 4, dst_t[k] % 4
    dst = (digits * 4 ** np.arange(n - 1, -1, -1)[None, :]).sum(1)  # P -> dst(P), with sign(P)
    src = np.empty(4**n, dtype=np.int64)
    src[dst] = np.arange(4**n)
    return torch.from_numpy(src), torch.from_numpy(sign[src])


class _SignedGather(torch.autograd.Function):
    """y = sign ⊙ x[:, src] for a permutation src; backward gathers with the inverse permutation
    (cheaper than the scatter autograd would use)."""

    @staticmethod
    def forward(ctx, x, src, sign):  # type: ignore[override]
        inv = torch.empty_like(src)
        inv[src] = torch.arange(src.numel())
        ctx.save_for_backward(inv, sign)
        return torch.gather(x, 1, src.expand(x.shape[0], -1)) * sign

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        inv, sign = ctx.saved_tensors
        return torch.gather(g * sign, 1, inv.expand(g.shape[0], -1)), None, None


def _apply_local(c: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Apply one 4x4 map per qubit to Pauli coefficients c (B, 4^n): mats (B, n, 4, 4), digit i
    contracted on the (B, 4^i, 4, 4^(n-1-i)) view: a broadcast matmul (no copy) while the
    trailing block is long, einsum (which permutes) for the last digits (measured fastest)."""
    b, n = c.shape[0], mats.shape[1]
    for i in range(n):
        view = c.view(b, 4**i, 4, -1)
        if view.shape[-1] >= 64:
            c = torch.matmul(mats[:, i, None], view).reshape(b, -1)
        else:
            c = torch.einsum("zac,zlcr->zlar", mats[:, i], view).reshape(b, -1)
    return c


@lru_cache(maxsize=16)
def _z_index(n: int) -> torch.Tensor:
    """Indices of the 2^n Z-type Pauli strings {I, Z}^n in the base-4 order (bit i: Z on qubit i)."""
    x = torch.arange(2**n)
    return sum(3 * ((x >> (n - 1 - i)) & 1) * 4 ** (n - 1 - i) for i in range(n))  # type: ignore[return-value]


def density_probs(
    angles: torch.Tensor, weights: torch.Tensor, channel: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Exact Z-basis probabilities diag(ρ) (B, 2^n) of the noisy circuit, differentiable.

    angles (B, L, n), weights (L, n, 3) or per sample (B, L, n, 3) (parameter-shift batches);
    ``channel`` the superoperator (4, 4) applied to every
    qubit after every layer, or one per qubit (n, 4, 4); ``mask`` (L, n) optionally disables CNOTs.
    """
    b, layers, n = angles.shape
    if n > EXACT_MAX_QUBITS:
        raise ValueError(f"density_probs: {n} qubits > EXACT_MAX_QUBITS={EXACT_MAX_QUBITS}")
    angles, weights = angles.to(torch.float64), weights.to(torch.float64)
    noise = superop_to_ptm(channel.to(_C).expand(n, 4, 4) if channel.dim() == 2 else channel)

    def cnots(c: torch.Tensor, layer: int) -> torch.Tensor:
        row = None if mask is None else tuple(bool(v) for v in mask[layer].tolist())
        return _SignedGather.apply(c, *cnot_pauli_map(n, layer, row)) if n > 1 else c

    def w(layer: int) -> torch.Tensor:
        return weights[layer] if weights.dim() == 3 else weights[:, layer]

    r0 = _layer_ptms(angles[:, 0], w(0))
    v = r0[..., 0] + r0[..., 3]  # Bloch 4-vectors of U_i|0⟩ (|0⟩⟨0| = (I + Z)/2): (B, n, 4)
    c = v[:, 0]
    for i in range(1, n):
        c = (c[:, :, None] * v[:, i, None, :]).reshape(b, -1)
    c = cnots(c, 0)
    for layer in range(1, layers):
        c = cnots(_apply_local(c, _layer_ptms(angles[:, layer], w(layer)) @ noise), layer)
    leak = noise[:, [0, 3]][:, :, [1, 2]]  # X, Y components feeding I, Z: not population-closed
    if bool((leak.abs() > 1e-14).any()):
        c = _apply_local(c, noise.expand(b, n, 4, 4))
        final = torch.eye(2, dtype=torch.float64).expand(n, 2, 2)
    else:
        final = noise[:, [0, 3]][:, :, [0, 3]]  # (n, 2, 2) on the (I, Z) coefficients
    hadamard = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2  # (c_I, c_Z) -> p(0), p(1)
    from fedqnn.quantum.readout import apply_confusion

    return apply_confusion(c.index_select(1, _z_index(n)), hadamard @ final)
