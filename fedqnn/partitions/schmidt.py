"""Schmidt rank across a QPU cut, measured, and its entangler bound.

State. For a pure state |ψ⟩ on A ∪ B, reshape ψ into the 2^|A| x 2^|B| matrix M (rows: A's
qubits, columns: B's); |ψ⟩ = Σ_k s_k |a_k⟩|b_k⟩ with s the singular values of M. The Schmidt
rank is #{k : s_k > tol}.

Bound. A product of local unitaries does not change it; a gate G across the cut multiplies it by
at most G's operator-Schmidt rank (G = Σ_j A_j ⊗ B_j with that many terms). CNOT = |0⟩⟨0| ⊗ I +
|1⟩⟨1| ⊗ X and CZ have operator-Schmidt rank 2; a general two-qubit gate up to 4 (and costs two
pairs: teleport a qubit there and back). So with k CNOT/CZ-class and g general gates across the
cut, rank <= 2^k 4^g; also rank <= 2^min(|A|, |B|).

Operator. For the circuit unitary U (or any operator on A ∪ B), reshape U_{(a b),(a' b')} into
R_{(a a'),(b b')}; the operator-Schmidt rank is the number of its singular values above
tol · max. The same 2^k 4^g bound holds (it is submultiplicative and local gates have rank 1), and
it is the quantity to report for noisy runs, where the state is mixed: the Pauli errors of the
cut channels are local, so every noise trajectory's circuit has the same bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fedqnn.partitions.circuit import PartitionSpec, cut_gates, simulate

__all__ = [
    "schmidt_coefficients", "schmidt_rank", "operator_schmidt_rank", "entangler_bound",
    "cut_gate_counts", "schmidt_bounds", "circuit_unitary", "measured_schmidt_ranks",
    "measured_operator_ranks", "operator_bounds",
]


def _as_matrix(state: torch.Tensor | np.ndarray, left: Sequence[int], n: int) -> np.ndarray:
    psi = np.asarray(state.detach().cpu().numpy() if isinstance(state, torch.Tensor) else state)
    if psi.size != 2**n:
        raise ValueError(f"state: expected 2^{n} = {2**n} amplitudes, got {psi.size}")
    left = list(left)
    if not left or len(set(left)) != len(left) or min(left) < 0 or max(left) >= n or len(left) >= n:
        raise ValueError(f"left: a proper non-empty subset of 0..{n - 1} is needed, got {left}")
    right = [q for q in range(n) if q not in left]
    t = psi.reshape((2,) * n).transpose(left + right)
    return t.reshape(2 ** len(left), 2 ** len(right))


def schmidt_coefficients(state: torch.Tensor | np.ndarray, left: Sequence[int], n: int) -> np.ndarray:
    """Singular values s_k (descending) of the state across left | rest; Σ s_k² = ⟨ψ|ψ⟩."""
    return np.linalg.svd(_as_matrix(state, left, n), compute_uv=False)


def schmidt_rank(state: torch.Tensor | np.ndarray, left: Sequence[int], n: int, tol: float = 1e-8) -> int:
    """#{k : s_k > tol} for a normalised pure state (2^n amplitudes, wire 0 most significant)."""
    return int((schmidt_coefficients(state, left, n) > tol).sum())


def operator_schmidt_rank(op: torch.Tensor | np.ndarray, left: Sequence[int], n: int,
                          tol: float = 1e-8) -> int:
    """Operator-Schmidt rank of a (2^n, 2^n) operator across left | rest (relative tolerance)."""
    u = np.asarray(op.detach().cpu().numpy() if isinstance(op, torch.Tensor) else op)
    if u.shape != (2**n, 2**n):
        raise ValueError(f"op: expected shape {(2**n, 2**n)}, got {u.shape}")
    left = list(left)
    right = [q for q in range(n) if q not in left]
    if not left or not right:
        raise ValueError(f"left: a proper non-empty subset of 0..{n - 1} is needed, got {left}")
    t = u.reshape((2,) * (2 * n))  # out wires 0..n-1, in wires n..2n-1
    order = [w for q in left for w in (q, n + q)] + [w for q in right for w in (q, n + q)]
    m = t.transpose(order).reshape(4 ** len(left), 4 ** len(right))
    s = np.linalg.svd(m, compute_uv=False)
    return int((s > tol * s[0]).sum())


def entangler_bound(cnot_class: int, general: int = 0) -> int:
    """2^k 4^g: the most k CNOT/CZ-class (operator-Schmidt rank 2) and g general two-qubit gates
    across a cut can make the Schmidt rank, starting from a product state."""
    if cnot_class < 0 or general < 0:
        raise ValueError(f"cnot_class/general: counts must be >= 0, got {cnot_class}, {general}")
    return 2**cnot_class * 4**general


def cut_gate_counts(spec: PartitionSpec, cut_mask: Sequence[bool] | torch.Tensor | None = None) -> dict[str, int]:
    """Enabled cut gates crossing each bipartition cut ``"<qpu>|<qpu>"`` (a gate between QPUs a
    and b crosses every boundary between them)."""
    gates = cut_gates(spec)
    mask = [True] * len(gates) if cut_mask is None else [bool(v) for v in torch.as_tensor(cut_mask).flatten().tolist()]
    if len(mask) != len(gates):
        raise ValueError(f"cut_mask: expected {len(gates)} entries, got {len(mask)}")
    out = {}
    for j, (name, _) in enumerate(spec.cuts()):
        out[name] = sum(1 for g, on in zip(gates, mask, strict=True) if on and min(g.blocks) <= j < max(g.blocks))
    return out


def schmidt_bounds(spec: PartitionSpec, cut_mask: Sequence[bool] | torch.Tensor | None = None,
                   with_dimension: bool = True) -> dict[str, int]:
    """The contract's ``schmidt_bound``: {cut: 2^k} (k enabled CNOTs across it), capped by
    2^min(|A|, |B|) when ``with_dimension``."""
    counts = cut_gate_counts(spec, cut_mask)
    out = {}
    for name, left in spec.cuts():
        b = entangler_bound(counts[name])
        if with_dimension:
            b = min(b, 2 ** min(len(left), spec.qubits - len(left)))
        out[name] = b
    return out


def operator_bounds(spec: PartitionSpec, cut_mask: Sequence[bool] | torch.Tensor | None = None) -> dict[str, int]:
    """Per cut, min(2^k, 4^min(|A|, |B|)): the operator-Schmidt rank bound of the circuit."""
    counts = cut_gate_counts(spec, cut_mask)
    return {name: min(entangler_bound(counts[name]), 4 ** min(len(left), spec.qubits - len(left)))
            for name, left in spec.cuts()}


def circuit_unitary(spec: PartitionSpec, angles: torch.Tensor, weights: torch.Tensor,
                    cut_mask: Sequence[bool] | torch.Tensor | None = None) -> torch.Tensor:
    """The noiseless circuit's unitary (2^n, 2^n) for one input: angles (L, n) or (1, L, n)."""
    a = angles.reshape(1, spec.layers, spec.qubits)
    dim = 2**spec.qubits
    basis = torch.eye(dim, dtype=torch.complex128)
    out = simulate(spec, a.expand(dim, -1, -1), weights, cut_mask=cut_mask, initial=basis,
                   return_state=True)
    return out.reshape(dim, dim).T  # column j = U |j⟩


def measured_schmidt_ranks(spec: PartitionSpec, angles: torch.Tensor, weights: torch.Tensor,
                           cut_mask: Sequence[bool] | torch.Tensor | None = None,
                           tol: float = 1e-8) -> dict[str, int]:
    """The contract's ``schmidt_rank``: per cut, the largest Schmidt rank of the noiseless final
    state over the probe batch angles (B, L, n)."""
    with torch.no_grad():
        states = simulate(spec, angles, weights, cut_mask=cut_mask, return_state=True)
    n = spec.qubits
    return {name: max(schmidt_rank(s, left, n, tol) for s in states) for name, left in spec.cuts()}


def measured_operator_ranks(spec: PartitionSpec, angles: torch.Tensor, weights: torch.Tensor,
                            cut_mask: Sequence[bool] | torch.Tensor | None = None,
                            tol: float = 1e-8) -> dict[str, int]:
    """Per cut, the operator-Schmidt rank of the circuit unitary at the first probe input."""
    with torch.no_grad():
        u = circuit_unitary(spec, angles[0], weights, cut_mask)
    return {name: operator_schmidt_rank(u, left, spec.qubits, tol) for name, left in spec.cuts()}
