"""The fedqnn circuit split over QPUs, simulated in plain torch with Bell-pair noise at the cuts.

The circuit is ``fedqnn.quantum.statevector``'s (per layer l: RY(a_{l,i}) on every qubit, Rot on
every qubit, CNOT(i, (i + r_l) mod n) for i = 0..n-1 with r_l = (l mod (n − 1)) + 1; readout
⟨Z_i⟩, ⟨Z_i Z_{i+1}⟩). Three partitions (CEAS Figure 1):

* ``data``: the unchanged circuit on one QPU (no pairs, no cut).
* ``unitary``: the L layers are split into N consecutive blocks U = U_N ... U_1, block j on QPU j;
  between blocks every one of the n qubits is teleported to the next QPU through a pair of
  fidelity F: the one-qubit channel ``teleportation_channel`` (depolarising, w = (4F − 1)/3)
  on every qubit, N − 1 times.
* ``circuit``: the n qubits are split into contiguous blocks of at most ``qpu_qubits``; every CNOT
  whose qubits lie on different QPUs is a *cut gate*, done by gate teleportation with one pair and
  followed by ``nonlocal_cnot_channel`` (no error w.p. F; X_t, Z_c, Z_c X_t w.p. (1 − F)/3 each).
  A boolean ``cut_mask`` (one entry per cut gate, in circuit order) disables cut gates without
  changing any parameter shape (the adaptive rank). Local CNOTs are always on.

Noise simulation. Two exact-in-expectation methods, both differentiable w.r.t. angles and weights:

* ``trajectory`` (default): one Pauli trajectory per batch element, sampled from a seeded
  ``torch.Generator`` (the errors are constant gates, so autograd goes through the circuit; each
  trajectory's value and gradient are unbiased samples of the channel's). Memory 16 B 2^n bytes,
  the only choice for wide ``circuit`` registers (``QuantumLayer``'s wide-register fallback does
  the same). All S shots of a sample share its trajectory, so an S-shot estimate's variance
  exceeds the per-shot (1 − μ²)/S by (1 − 1/S) Var_τ(μ_τ) (``fedqnn.quantum.qpu``).
* ``density``: the density matrix as a 2n-wire tensor (U on the ket wires, U* on the bra wires,
  a Pauli channel as a probability-weighted sum). Exact, deterministic, 16 B 4^n bytes: for
  small registers (n <= 8) and as the reference the tests compare trajectories against.

Optionally the QPU's own noise of ``fedqnn.noise`` (depolarising p per qubit after every layer) is
added in both methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fedqnn.partitions.channels import (
    PauliTerm,
    depolarizing_channel,
    nonlocal_cnot_channel,
    teleportation_channel,
)
from fedqnn.partitions.spec import PARTITIONS, PartitionSpec, make_partition
from fedqnn.quantum.statevector import _apply_1q, _apply_cnot, _rot, _ry, zz_pairs

__all__ = [
    "PARTITIONS", "PartitionSpec", "CutGate", "make_partition", "cut_gates", "entangler_range",
    "full_cnot_mask", "simulate", "expectations_from_probs", "METHODS", "state_bytes",
]

METHODS = ("trajectory", "density")

_PAULI_T = {
    "I": torch.eye(2, dtype=torch.complex128),
    "X": torch.tensor([[0, 1], [1, 0]], dtype=torch.complex128),
    "Y": torch.tensor([[0, -1j], [1j, 0]], dtype=torch.complex128),
    "Z": torch.tensor([[1, 0], [0, -1]], dtype=torch.complex128),
}


@dataclass(frozen=True)
class CutGate:
    """A CNOT across QPUs: its layer, its position i in the layer (control i), its qubits and the
    QPU blocks of control and target."""

    layer: int
    position: int
    control: int
    target: int
    blocks: tuple[int, int]


def entangler_range(layer: int, qubits: int) -> int:
    """r_l = (l mod (n − 1)) + 1, StronglyEntanglingLayers' default range."""
    return (layer % (qubits - 1)) + 1


def cut_gates(spec: PartitionSpec) -> list[CutGate]:
    """Every CNOT whose control and target sit on different QPUs, in circuit order."""
    if spec.kind != "circuit" or spec.qubits < 2:
        return []
    out = []
    for layer in range(spec.layers):
        r = entangler_range(layer, spec.qubits)
        for i in range(spec.qubits):
            t = (i + r) % spec.qubits
            a, b = spec.qpu_of_qubit(i), spec.qpu_of_qubit(t)
            if a != b:
                out.append(CutGate(layer, i, i, t, (a, b)))
    return out


def full_cnot_mask(spec: PartitionSpec, cut_mask: torch.Tensor | Sequence[bool] | None) -> torch.Tensor:
    """(L, n) bool mask of all CNOTs: local ones on, cut ones from ``cut_mask`` (default all on)."""
    mask = torch.ones((spec.layers, spec.qubits), dtype=torch.bool)
    gates = cut_gates(spec)
    if cut_mask is None:
        return mask
    cm = torch.as_tensor(cut_mask, dtype=torch.bool).flatten()
    if cm.numel() != len(gates):
        raise ValueError(f"cut_mask: expected {len(gates)} entries (one per cut gate), got {cm.numel()}")
    for g, on in zip(gates, cm.tolist(), strict=True):
        mask[g.layer, g.position] = bool(on)
    return mask


# -- simulation -----------------------------------------------------------------------------


class _Backend:
    """Gate application on a batched state (trajectory) or density tensor (density)."""

    def __init__(self, method: str, n: int, generator: torch.Generator | None) -> None:
        self.method, self.n, self.generator = method, n, generator

    def init(self, b: int, initial: torch.Tensor | None) -> torch.Tensor:
        n = self.n
        if initial is None:
            psi = torch.zeros((b, 2**n), dtype=torch.complex128)
            psi[:, 0] = 1.0
        else:
            psi = initial.reshape(b, 2**n).to(torch.complex128)
        if self.method == "trajectory":
            return psi.reshape((b,) + (2,) * n)
        rho = psi[:, :, None] * psi.conj()[:, None, :]
        return rho.reshape((b,) + (2,) * (2 * n))

    def gate1(self, s: torch.Tensor, mat: torch.Tensor, wire: int, batched: bool) -> torch.Tensor:
        s = _apply_1q(s, mat, wire, batched_gate=batched)
        if self.method == "density":
            s = _apply_1q(s, mat.conj(), self.n + wire, batched_gate=batched)
        return s

    def cnot(self, s: torch.Tensor, c: int, t: int) -> torch.Tensor:
        s = _apply_cnot(s, c, t)
        if self.method == "density":
            s = _apply_cnot(s, self.n + c, self.n + t)
        return s

    def channel(self, s: torch.Tensor, terms: Sequence[PauliTerm], wires: Sequence[int]) -> torch.Tensor:
        if not terms or (len(terms) == 1 and set(terms[0][1]) == {"I"}):
            return s
        if self.method == "density":
            out = None
            for p, paulis in terms:
                term = s
                for w, ch in zip(wires, paulis, strict=True):
                    if ch != "I":
                        term = _apply_1q(term, _PAULI_T[ch], w, batched_gate=False)
                        term = _apply_1q(term, _PAULI_T[ch].conj(), self.n + w, batched_gate=False)
                out = p * term if out is None else out + p * term
            return out
        b = s.shape[0]
        probs = torch.tensor([p for p, _ in terms], dtype=torch.float64)
        cum = torch.cumsum(probs / probs.sum(), 0)
        u = torch.rand(b, generator=self.generator, dtype=torch.float64)
        idx = torch.searchsorted(cum, u, right=True).clamp(max=len(terms) - 1)
        for k, w in enumerate(wires):
            letters = [paulis[k] for _, paulis in terms]
            if all(ch == "I" for ch in letters):
                continue
            table = torch.stack([_PAULI_T[ch] for ch in letters])
            gates = table[idx]
            if all(letters[j] == "I" for j in idx.tolist()):
                continue
            s = _apply_1q(s, gates, w, batched_gate=True)
        return s

    def probs(self, s: torch.Tensor) -> torch.Tensor:
        b, n = s.shape[0], self.n
        if self.method == "trajectory":
            return (s.real**2 + s.imag**2).to(torch.float64)
        diag = s.reshape(b, 2**n, 2**n).diagonal(dim1=1, dim2=2).real
        return diag.reshape((b,) + (2,) * n)


def simulate(
    spec: PartitionSpec, angles: torch.Tensor, weights: torch.Tensor, *, pair_fidelity: float = 1.0,
    cut_mask: torch.Tensor | Sequence[bool] | None = None, method: str = "trajectory",
    generator: torch.Generator | None = None, depolarizing: float = 0.0,
    initial: torch.Tensor | None = None, return_state: bool = False,
) -> torch.Tensor:
    """Run the partitioned circuit on a batch.

    angles (B, L, n), weights (L, n, 3). Returns the outcome probabilities (B, 2, ..., 2) (or, with
    ``return_state``, the final state / density tensor). ``pair_fidelity`` F is the Werner
    fidelity of every pair spent at a cut (1 = perfect pairs); ``depolarizing`` the QPU's own
    per-layer noise p; ``initial`` (B, 2^n) optional input states (for circuit unitaries).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if angles.dim() != 3 or angles.shape[1:] != (spec.layers, spec.qubits):
        raise ValueError(f"angles: expected shape (B, {spec.layers}, {spec.qubits}), got {tuple(angles.shape)}")
    if tuple(weights.shape) != (spec.layers, spec.qubits, 3):
        raise ValueError(f"weights: expected shape ({spec.layers}, {spec.qubits}, 3), got {tuple(weights.shape)}")
    b, L, n = angles.shape
    be = _Backend(method, n, generator)
    state = be.init(b, initial)
    angles = angles.to(torch.float64)
    weights = weights.to(torch.float64)
    mask = full_cnot_mask(spec, cut_mask)
    cut_at = {(g.layer, g.position) for g in cut_gates(spec)}
    cnot_ch = nonlocal_cnot_channel(pair_fidelity) if pair_fidelity < 1.0 else []
    tele_ch = teleportation_channel(pair_fidelity) if pair_fidelity < 1.0 else []
    qpu_ch = depolarizing_channel(depolarizing) if depolarizing > 0 else []
    block_ends = {stop for _, stop in spec.blocks[:-1]} if spec.kind == "unitary" else set()
    for layer in range(L):
        for i in range(n):
            state = be.gate1(state, _ry(angles[:, layer, i]), i, batched=True)
        for i in range(n):
            w = weights[layer, i]
            state = be.gate1(state, _rot(w[0], w[1], w[2]), i, batched=False)
        if n > 1:
            r = entangler_range(layer, n)
            for i in range(n):
                if not bool(mask[layer, i]):
                    continue
                t = (i + r) % n
                state = be.cnot(state, i, t)
                if (layer, i) in cut_at and cnot_ch:
                    state = be.channel(state, cnot_ch, (i, t))
        if qpu_ch:
            for i in range(n):
                state = be.channel(state, qpu_ch, (i,))
        if layer + 1 in block_ends and tele_ch:
            for i in range(n):
                state = be.channel(state, tele_ch, (i,))
    if return_state:
        return state
    return be.probs(state)


def expectations_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """(B, 2n − 1): ⟨Z_i⟩ then ⟨Z_i Z_{i+1}⟩ from outcome probabilities (B, 2, ..., 2)."""
    n = probs.dim() - 1
    signs = []
    for i in range(n):
        shape = [1] * (n + 1)
        shape[i + 1] = 2
        signs.append(torch.tensor([1.0, -1.0], dtype=torch.float64).view(shape))
    out = [(probs * signs[i]).flatten(1).sum(1) for i in range(n)]
    out += [(probs * signs[i] * signs[j]).flatten(1).sum(1) for i, j in zz_pairs(n)]
    return torch.stack(out, dim=1)


def state_bytes(qubits: int, batch: int = 1, method: str = "trajectory") -> int:
    """Bytes of the simulated register (complex128): 16 B 2^n (trajectory) or 16 B 4^n (density)."""
    return 16 * batch * (2 ** qubits if method == "trajectory" else 4 ** qubits)
