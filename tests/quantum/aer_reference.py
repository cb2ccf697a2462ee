"""The model's circuit on a device as a qiskit circuit for qiskit-aer (the cross-check's reference).

The same routed, scheduled program as :func:`fedqnn.quantum.device_spec.layer_program`, on the
backend's physical qubits ``spec.layout``: each layer's RY(a)·Rot(φ, θ, ω) as the ZSX Euler
decomposition RZ·SX·RZ·SX·RZ (two √X pulses), the program's CX gates, and its idles as explicit
``Delay`` instructions (which ``NoiseModel.from_backend`` turns into thermal relaxation). The
noise model is ``NoiseModel.from_backend(backend)`` with the readout errors replaced by the
snapshot's asymmetric P(1|0), P(0|1) (the V2 target carries only their mean).
"""

from __future__ import annotations

import numpy as np

from fedqnn.quantum.device_spec import DeviceSpec, layer_program


def _u(a: float, w: np.ndarray) -> np.ndarray:
    def ry(t):
        return np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]], dtype=complex)

    def rz(t):
        return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])

    return rz(w[2]) @ ry(w[1]) @ rz(w[0]) @ ry(a)


def device_circuit(spec: DeviceSpec, backend, angles: np.ndarray, weights: np.ndarray):
    """One input's circuit: angles (L, n), weights (L, n, 3); measures layout qubit i into clbit i."""
    from qiskit import QuantumCircuit
    from qiskit.synthesis import OneQubitEulerDecomposer

    dec = OneQubitEulerDecomposer("ZSX")
    layers, n = angles.shape
    phys = spec.layout
    qc = QuantumCircuit(backend.num_qubits, n)
    dt = backend.dt
    for layer in range(layers):
        for i in range(n):
            sub = dec(_u(angles[layer, i], weights[layer, i]), simplify=False)
            assert sum(1 for g in sub.data if g.operation.name == "sx") == 2
            qc.compose(sub, qubits=[phys[i]], inplace=True)
        for op in layer_program(spec, layer):
            if op.kind == "cx":
                qc.cx(phys[op.qubits[0]], phys[op.qubits[1]])
            elif op.kind == "idle":
                qc.delay(int(round(op.time / dt)), phys[op.qubits[0]], unit="dt")
        qc.barrier()
    qc.measure([phys[i] for i in range(n)], list(range(n)))
    return qc


def noise_model(spec: DeviceSpec, backend, scale: float = 1.0):
    from qiskit_aer.noise import NoiseModel, ReadoutError

    nm = NoiseModel.from_backend(backend, readout_error=False)
    for i, q in enumerate(spec.qubits):
        nm.add_readout_error(ReadoutError([[1 - q.p10, q.p10], [q.p01, 1 - q.p01]]), [spec.layout[i]])
    return nm


def aer_estimates(spec: DeviceSpec, backend, angles: np.ndarray, weights: np.ndarray, shots: int,
                  repeats: int, seed: int) -> np.ndarray:
    """(repeats, 2n - 1) S-shot estimates of ⟨Z_i⟩, ⟨Z_i Z_{i+1}⟩ from aer (density-matrix method)."""
    from qiskit_aer import AerSimulator

    n = angles.shape[1]
    sim = AerSimulator(method="density_matrix", noise_model=noise_model(spec, backend), seed_simulator=seed)
    qc = device_circuit(spec, backend, angles, weights)
    mem = sim.run(qc, shots=shots * repeats, memory=True).result().get_memory()
    chars = np.frombuffer("".join(mem).encode(), dtype=np.uint8).reshape(len(mem), n) - ord("0")
    bits = chars[:, ::-1].astype(np.int64)  # a memory string lists clbit n-1 first
    z = (1 - 2 * bits).astype(np.float64)
    obs = np.concatenate([z, z[:, :-1] * z[:, 1:]], axis=1)
    return obs.reshape(repeats, shots, -1).mean(1)
