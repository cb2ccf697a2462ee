"""What a Werner pair does to the computation it is spent on: Pauli channels at the QPU cuts.

A Bell-diagonal pair has weights λ = (λ_Φ+, λ_Φ−, λ_Ψ+, λ_Ψ−) (the broker's order, docs/broker.md).
Every Bell state is a Pauli on one half of |Φ+⟩: |Φ−⟩ = (I⊗Z)|Φ+⟩, |Ψ+⟩ = (I⊗X)|Φ+⟩,
|Ψ−⟩ ∝ (I⊗Y)|Φ+⟩, so the pair is "a perfect pair followed by the Pauli σ_k on Bob's half with
probability λ_k". Pauli errors commute (up to a phase) with the Pauli corrections of the protocols
below, so the error ends up on the output as a fixed Pauli:

* **Teleportation** (one qubit, one pair, two classical bits). The output is σ_k ρ σ_k with
  probability λ_k: the Pauli channel T(ρ) = λ_Φ+ ρ + λ_Ψ+ XρX + λ_Ψ− YρY + λ_Φ− ZρZ.
  A Werner pair of fidelity F has λ = (F, x, x, x), x = (1 − F)/3, so

      T(ρ) = F ρ + (1 − F)/3 (XρX + YρY + ZρZ) = w ρ + (1 − w) I/2,   w = (4F − 1)/3

  (because (ρ + XρX + YρY + ZρZ)/4 = I/2 for a qubit): a depolarising channel with Werner
  parameter w, i.e. ``noise.py``'s D_p with p = 1 − F.

* **Nonlocal CNOT** (Eisert, Jacobs, Papadopoulos, Plenio, PRA 62, 052317 (2000); one pair
  (a, b), two classical bits). Control c with a at QPU A, target t with b at QPU B:
  CNOT(c→a), measure a in Z (m1), X^m1 on b, CNOT(b→t), measure b in X (m2), Z^m2 on c.
  An X on b before the protocol rides through CNOT(b→t) onto t and is invisible to the
  X-basis measurement of b: X_t. A Z on b commutes with CNOT(b→t) and flips m2, hence the
  correction: Z_c. Y ∝ XZ gives Z_c X_t. The result is the ideal CNOT followed by

      C(ρ) = λ_Φ+ ρ + λ_Ψ+ X_t ρ X_t + λ_Φ− Z_c ρ Z_c + λ_Ψ− (Z_c X_t) ρ (Z_c X_t),

  for a Werner pair: no error with probability F, each of X_t, Z_c, Z_c X_t with (1 − F)/3.
  It is not two-qubit depolarising: Z_c commutes with a Z readout of c, so ⟨Z_c⟩ is untouched,
  while ⟨Z_t⟩ and ⟨Z_c Z_t⟩ shrink by 1 − 4(1 − F)/3 = w (:func:`cut_gate_shrink`).
* **Nonlocal CZ** = (I ⊗ H) CNOT (I ⊗ H): conjugating by H on t turns X_t into Z_t, so the
  channel after an ideal CZ is λ_Φ+ ρ + λ_Ψ+ Z_t ρ Z_t + λ_Φ− Z_c ρ Z_c + λ_Ψ− Z_cZ_t ρ Z_cZ_t.

``tests/partitions/test_channels.py`` runs each protocol on explicit density matrices (Werner
resource, projective measurements, classically controlled corrections) and compares the Choi
matrices with these channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "PauliTerm", "werner_weights", "werner_parameter", "fidelity_from_parameter",
    "teleportation_channel", "nonlocal_cnot_channel", "nonlocal_cz_channel",
    "depolarizing_channel", "apply_pauli_channel", "cut_gate_shrink", "PAULI",
]

# (probability, Pauli string over the channel's wires, e.g. "IX")
PauliTerm = tuple[float, str]

PAULI: dict[str, np.ndarray] = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def _check_fidelity(fidelity: float, name: str = "fidelity") -> float:
    f = float(fidelity)
    if not (0.25 <= f <= 1.0) or math.isnan(f):
        raise ValueError(f"{name}: a Werner pair's fidelity must be in [0.25, 1], got {fidelity!r}")
    return f


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    if len(weights) != 4:
        raise ValueError(f"bell_weights: need 4 weights (Φ+, Φ−, Ψ+, Ψ−), got {len(weights)}")
    lam = tuple(float(v) for v in weights)
    if min(lam) < -1e-12 or abs(sum(lam) - 1.0) > 1e-9:
        raise ValueError(f"bell_weights: must be >= 0 and sum to 1, got {weights!r}")
    return lam  # type: ignore[return-value]


def werner_weights(fidelity: float) -> tuple[float, float, float, float]:
    """Bell weights (Φ+, Φ−, Ψ+, Ψ−) of a Werner pair: (F, x, x, x) with x = (1 − F)/3."""
    f = _check_fidelity(fidelity)
    x = (1.0 - f) / 3.0
    return (f, x, x, x)


def werner_parameter(fidelity: float) -> float:
    """w = (4F − 1)/3: the pair is w |Φ+⟩⟨Φ+| + (1 − w) I/4, and teleporting through it is
    ρ -> w ρ + (1 − w) I/2."""
    return (4.0 * _check_fidelity(fidelity) - 1.0) / 3.0


def fidelity_from_parameter(w: float) -> float:
    """Inverse of :func:`werner_parameter`: F = (3w + 1)/4."""
    if not 0.0 <= float(w) <= 1.0:
        raise ValueError(f"w: must be in [0, 1], got {w!r}")
    return (3.0 * float(w) + 1.0) / 4.0


def _weights(fidelity: float | None, bell_weights: Sequence[float] | None) -> tuple[float, ...]:
    if (fidelity is None) == (bell_weights is None):
        raise ValueError("fidelity/bell_weights: give exactly one of them")
    return werner_weights(fidelity) if bell_weights is None else _check_weights(bell_weights)


def _drop_zero(terms: list[PauliTerm]) -> list[PauliTerm]:
    return [(p, s) for p, s in terms if p > 0.0]


def teleportation_channel(
    fidelity: float | None = None, bell_weights: Sequence[float] | None = None
) -> list[PauliTerm]:
    """One-qubit Pauli channel of teleportation: λ_Φ+ I, λ_Ψ+ X, λ_Ψ− Y, λ_Φ− Z."""
    a, b, c, d = _weights(fidelity, bell_weights)  # Φ+, Φ−, Ψ+, Ψ−
    return _drop_zero([(a, "I"), (c, "X"), (d, "Y"), (b, "Z")])


def nonlocal_cnot_channel(
    fidelity: float | None = None, bell_weights: Sequence[float] | None = None
) -> list[PauliTerm]:
    """Two-qubit Pauli channel (wires: control, target) after a gate-teleported CNOT (Eisert et
    al. 2000, one pair): λ_Φ+ II, λ_Ψ+ IX, λ_Φ− ZI, λ_Ψ− ZX."""
    a, b, c, d = _weights(fidelity, bell_weights)
    return _drop_zero([(a, "II"), (c, "IX"), (b, "ZI"), (d, "ZX")])


def nonlocal_cz_channel(
    fidelity: float | None = None, bell_weights: Sequence[float] | None = None
) -> list[PauliTerm]:
    """Two-qubit Pauli channel after a gate-teleported CZ: λ_Φ+ II, λ_Ψ+ IZ, λ_Φ− ZI, λ_Ψ− ZZ."""
    a, b, c, d = _weights(fidelity, bell_weights)
    return _drop_zero([(a, "II"), (c, "IZ"), (b, "ZI"), (d, "ZZ")])


def depolarizing_channel(p: float) -> list[PauliTerm]:
    """D_p(ρ) = (1 − p) ρ + p/3 (XρX + YρY + ZρZ) (``fedqnn.noise``'s per-layer QPU noise)."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p: must be in [0, 1], got {p!r}")
    return _drop_zero([(1.0 - p, "I"), (p / 3, "X"), (p / 3, "Y"), (p / 3, "Z")])


def cut_gate_shrink(fidelity: float) -> float:
    """Factor by which one gate-teleported CNOT shrinks ⟨Z_t⟩ and ⟨Z_c Z_t⟩ (the observables it
    can flip): 1 − 2 P(X_t or Z_c X_t) = 1 − 4(1 − F)/3 = w. Also the shrink of any Pauli
    observable by teleportation."""
    return werner_parameter(fidelity)


def _kron_pauli(s: str) -> np.ndarray:
    out = np.ones((1, 1), dtype=complex)
    for ch in s:
        out = np.kron(out, PAULI[ch])
    return out


def apply_pauli_channel(rho: np.ndarray, terms: Sequence[PauliTerm], wires: Sequence[int],
                        n: int) -> np.ndarray:
    """Σ_k p_k P_k ρ P_k for a (2^n, 2^n) density matrix, the Pauli strings acting on ``wires``
    (wire 0 most significant). A numpy reference used by the tests and the docs."""
    if rho.shape != (2**n, 2**n):
        raise ValueError(f"rho: expected shape {(2**n, 2**n)}, got {rho.shape}")
    out = np.zeros_like(rho, dtype=complex)
    for p, s in terms:
        if len(s) != len(wires):
            raise ValueError(f"terms: Pauli string {s!r} does not match wires {list(wires)}")
        full = ["I"] * n
        for w, ch in zip(wires, s, strict=True):
            full[w] = ch
        op = _kron_pauli("".join(full))
        out += p * op @ rho @ op.conj().T
    return out
