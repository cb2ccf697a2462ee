"""Exact, differentiable simulation of the model's circuit on a real device's routed gate program.

The state is the density matrix in the Pauli basis, c_P = Tr(P ρ) over the 4^n Pauli strings
(as in :mod:`fedqnn.quantum.density`, which documents the representation). Each model layer
applies the RY·Rot unitaries (their Pauli transfer matrices), then the instructions of
:func:`fedqnn.quantum.device_spec.layer_program` in order, each with its own errors:

* a CX: the signed Pauli permutation CNOT P CNOT = ±P' on its two digits (a 16 x 16 PTM);
* a k-qubit depolarising λ: every Pauli string that is not the identity on those k qubits is
  multiplied by 1 - λ (E(ρ) = (1 - λ) ρ + λ Tr_k(ρ) ⊗ I/2^k is diagonal in the Pauli basis);
  a CX's λ is fused with its permutation and the pending single-qubit maps of its two qubits into
  one (4, 4, 4, 4) map on their digits;
* thermal relaxation over t on each qubit: the PTM with R_XX = R_YY = e^{-t/T2},
  R_ZZ = e^{-t/T1}, R_ZI = 1 - e^{-t/T1} (amplitude then phase damping, Nielsen & Chuang §8.3);
* an idle: relaxation only.

Single-qubit maps are accumulated per qubit and folded into the next two-qubit instruction on the
qubit (or applied at the layer's end). Outcome probabilities: P(x) = 2^{-n} Σ_S c_{Z_S} (-1)^{x·S}.
The per-qubit readout confusion is applied afterwards by the caller
(:func:`fedqnn.quantum.readout.apply_confusion`, matrices from :func:`device_confusion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from fedqnn.quantum.density import EXACT_MAX_QUBITS, _layer_ptms, _z_index
from fedqnn.quantum.device_spec import DeviceSpec, Op, layer_program, relaxation_ptm_diag

__all__ = ["DeviceNoise", "device_probs", "device_confusion", "device_noise"]


@dataclass(frozen=True)
class DeviceNoise:
    """A device calibration compiled for a model of ``layers`` layers (hashable: cached)."""

    spec: DeviceSpec
    layers: int
    scale: float = 1.0  # multiplies every λ and every relaxation time's rate (1 = the device)
    relaxation: bool = True  # False drops T1/T2 (a wrong model, for negative controls)

    @property
    def n(self) -> int:
        return self.spec.n


def device_noise(spec: DeviceSpec, layers: int) -> DeviceNoise:
    return DeviceNoise(spec, int(layers))


def device_confusion(spec: DeviceSpec) -> torch.Tensor:
    """(n, 2, 2) column-stochastic M[j, k] = P(read j | true k) from the per-qubit p10, p01."""
    return torch.tensor([[[1.0 - q.p10, q.p01], [q.p10, 1.0 - q.p01]] for q in spec.qubits], dtype=torch.float64)


def _relax_ptm(t: float, t1: float, t2: float, rate: float) -> np.ndarray:
    x, z, zi = relaxation_ptm_diag(t * rate, t1, t2)
    r = np.diag([1.0, x, x, z])
    r[3, 0] = zi
    return r


def _dep_ptm(lam: float) -> np.ndarray:
    return np.diag([1.0, 1.0 - lam, 1.0 - lam, 1.0 - lam])


def _local(c: torch.Tensor, mat: torch.Tensor, i: int, n: int) -> torch.Tensor:
    view = c.view(c.shape[0], 4**i, 4, 4 ** (n - 1 - i))
    return torch.einsum("ac,zlcr->zlar", mat, view).reshape(c.shape[0], -1)


@lru_cache(maxsize=1)
def _cx_ptm() -> np.ndarray:
    """(16, 16) Pauli transfer matrix of CNOT on (control digit, target digit), index 4 a + b."""
    from fedqnn.quantum.density import _cnot_pauli_table

    dst, sign = _cnot_pauli_table()
    m = np.zeros((16, 16))
    m[dst, np.arange(16)] = sign
    return m


def _two_qubit_step(a: int, b: int, before_a: np.ndarray, before_b: np.ndarray, lam: float) -> tuple:
    """One (4, 4, 4, 4) map on digits (min, max) of a, b: D2(λ) · CX(a -> b) · (before_a ⊗ before_b)."""
    dep = np.full(16, 1.0 - lam)
    dep[0] = 1.0
    t = (dep[:, None] * _cx_ptm()) @ np.kron(before_a, before_b)
    t4 = t.reshape(4, 4, 4, 4)  # (out a, out b, in a, in b)
    if a > b:
        t4 = t4.transpose(1, 0, 3, 2)
    return ("pair", min(a, b), max(a, b), torch.from_numpy(np.ascontiguousarray(t4)))


@lru_cache(maxsize=32)
def _compiled(noise: DeviceNoise) -> tuple[tuple[tuple, ...], ...]:
    """Per layer: ("local", i, 4x4) | ("pair", p, q, 4x4x4x4) steps: single-qubit maps are fused
    per qubit and into the next two-qubit instruction on it (with its CX and depolarising λ)."""
    spec, s = noise.spec, noise.scale
    rate = s if noise.relaxation else 0.0
    layers = []
    for layer in range(noise.layers):
        pending = [np.eye(4) for _ in range(spec.n)]
        steps: list[tuple] = []

        def relax(w: int, t: float, pending=pending) -> None:
            q = spec.qubits[w]
            pending[w] = _relax_ptm(t, q.t1, q.t2, rate) @ pending[w]

        op: Op
        for op in layer_program(spec, layer):
            if op.kind == "u":
                for _ in range(2):  # two √X pulses: depolarising, then relaxation
                    pending[op.qubits[0]] = _dep_ptm(min(1.0, op.lam * s)) @ pending[op.qubits[0]]
                    relax(op.qubits[0], op.time)
            elif op.kind == "idle":
                relax(op.qubits[0], op.time)
            else:
                a, b = op.qubits
                steps.append(_two_qubit_step(a, b, pending[a], pending[b], min(16.0 / 15.0, op.lam * s)))
                pending[a], pending[b] = np.eye(4), np.eye(4)
                relax(a, op.time)
                relax(b, op.time)
        steps += [("local", w, torch.from_numpy(pending[w].copy())) for w in range(spec.n)
                  if not np.array_equal(pending[w], np.eye(4))]
        layers.append(tuple(steps))
    return tuple(layers)


def device_probs(angles: torch.Tensor, weights: torch.Tensor, noise: DeviceNoise) -> torch.Tensor:
    """Z-basis probabilities (B, 2^n) before readout of the circuit on the device, differentiable.

    angles (B, L, n), weights (L, n, 3) or per sample (B, L, n, 3)."""
    b, layers, n = angles.shape
    if n > EXACT_MAX_QUBITS:
        raise ValueError(f"device_probs: {n} qubits > EXACT_MAX_QUBITS={EXACT_MAX_QUBITS}")
    if n != noise.n or layers != noise.layers:
        raise ValueError(f"device noise is for {noise.n} qubits x {noise.layers} layers, the circuit has {n} x {layers}")
    angles, weights = angles.to(torch.float64), weights.to(torch.float64)
    program = _compiled(noise)
    v = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    c = v  # |0...0⟩⟨0...0| = ⊗ (I + Z)/2: c = ⊗ (1, 0, 0, 1)
    for _ in range(1, n):
        c = torch.kron(c, v)
    c = c.expand(b, -1)
    for layer in range(layers):
        w = weights[layer] if weights.dim() == 3 else weights[:, layer]
        ptm = _layer_ptms(angles[:, layer], w)  # (B, n, 4, 4)
        for i in range(n):
            view = c.reshape(b, 4**i, 4, 4 ** (n - 1 - i))
            c = torch.einsum("zac,zlcr->zlar", ptm[:, i], view).reshape(b, -1)
        for step in program[layer]:
            if step[0] == "local":
                c = _local(c, step[2], step[1], n)
            else:
                _, p, q, t4 = step
                view = c.view(b, 4**p, 4, 4 ** (q - p - 1), 4, 4 ** (n - 1 - q))
                c = torch.einsum("PQpq,zlpmqr->zlPmQr", t4, view).reshape(b, -1)
    hadamard = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2
    from fedqnn.quantum.readout import apply_confusion

    return apply_confusion(c.index_select(1, _z_index(n)), hadamard.expand(n, 2, 2))
