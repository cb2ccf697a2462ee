"""Exact, differentiable simulation of the model's circuit on a real device's routed gate program.

The state is the density matrix in the Pauli basis, c_P = Tr(P ρ) over the 4^n Pauli strings
(as in :mod:`fedqnn.quantum.density`, which documents the representation). Each model layer
applies the RY·Rot unitaries (their Pauli transfer matrices), then the instructions of
:func:`fedqnn.quantum.device_spec.layer_program` in order, each with its own errors:

* a CX: the signed Pauli permutation CNOT P CNOT = ±P' on its two digits;
* a k-qubit depolarising λ: every Pauli string that is not the identity on those k qubits is
  multiplied by 1 - λ (E(ρ) = (1 - λ) ρ + λ Tr_k(ρ) ⊗ I/2^k is diagonal in the Pauli basis);
* thermal relaxation over t on each qubit: the PTM with R_XX = R_YY = e^{-t/T2},
  R_ZZ = e^{-t/T1}, R_ZI = 1 - e^{-t/T1} (amplitude then phase damping, Nielsen & Chuang §8.3);
* an idle: relaxation only.

Single-qubit maps are accumulated per qubit and applied when a two-qubit instruction touches the
qubit (or at the layer's end). Outcome probabilities: P(x) = 2^{-n} Σ_S c_{Z_S} (-1)^{x·S}.
The per-qubit readout confusion is applied afterwards by the caller
(:func:`fedqnn.quantum.readout.apply_confusion`, matrices from :func:`device_confusion`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from fedqnn.quantum.density import EXACT_MAX_QUBITS, _layer_ptms, _SignedGather, _z_index
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


@lru_cache(maxsize=64)
def _digits(n: int) -> np.ndarray:
    return (np.arange(4**n)[:, None] // 4 ** np.arange(n - 1, -1, -1)[None, :]) % 4


@lru_cache(maxsize=256)
def _cx_map(n: int, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, sign) with c'[Q] = sign[Q] c[src[Q]] for CNOT(a -> b)."""
    from fedqnn.quantum.density import _cnot_pauli_table

    dst_t, sign_t = (np.asarray(t) for t in _cnot_pauli_table())
    digits = _digits(n).copy()
    k = 4 * digits[:, a] + digits[:, b]
    sign = sign_t[k]
    digits[:, a], digits[:, b] = dst_t[k] // 4, dst_t[k] % 4
    dst = (digits * 4 ** np.arange(n - 1, -1, -1)[None, :]).sum(1)
    src = np.empty(4**n, dtype=np.int64)
    src[dst] = np.arange(4**n)
    return torch.from_numpy(src), torch.from_numpy(sign[src].astype(np.float64))


@lru_cache(maxsize=256)
def _pair_support(n: int, a: int, b: int) -> torch.Tensor:
    """1.0 where the Pauli string is not the identity on both a and b."""
    d = _digits(n)
    return torch.from_numpy(((d[:, a] != 0) | (d[:, b] != 0)).astype(np.float64))


def _local(c: torch.Tensor, mat: torch.Tensor, i: int, n: int) -> torch.Tensor:
    view = c.view(c.shape[0], 4**i, 4, 4 ** (n - 1 - i))
    return torch.einsum("ac,zlcr->zlar", mat, view).reshape(c.shape[0], -1)


@lru_cache(maxsize=32)
def _compiled(noise: DeviceNoise) -> tuple[tuple[tuple, ...], ...]:
    """Per layer: ("local", i, 4x4) | ("cx", a, b) | ("dep2", a, b, λ) steps, single-qubit maps fused."""
    spec, s = noise.spec, noise.scale
    rate = s if noise.relaxation else 0.0
    layers = []
    for layer in range(noise.layers):
        pending = [np.eye(4) for _ in range(spec.n)]
        steps: list[tuple] = []

        def relax(w: int, t: float, pending=pending) -> None:
            q = spec.qubits[w]
            pending[w] = _relax_ptm(t, q.t1, q.t2, rate) @ pending[w]

        def flush(w: int, pending=pending, steps=steps) -> None:
            if not np.allclose(pending[w], np.eye(4), atol=0, rtol=0):
                steps.append(("local", w, torch.from_numpy(pending[w].copy())))
            pending[w] = np.eye(4)

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
                flush(a)
                flush(b)
                steps.append(("cx", a, b))
                if op.lam > 0:
                    steps.append(("dep2", a, b, min(16.0 / 15.0, op.lam * s)))
                relax(a, op.time)
                relax(b, op.time)
        for w in range(spec.n):
            flush(w)
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
            elif step[0] == "cx":
                c = _SignedGather.apply(c, *_cx_map(n, step[1], step[2]))
            else:
                c = c * (1.0 - step[3] * _pair_support(n, step[1], step[2]))
    hadamard = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2
    from fedqnn.quantum.readout import apply_confusion

    return apply_confusion(c.index_select(1, _z_index(n)), hadamard.expand(n, 2, 2))
