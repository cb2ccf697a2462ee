"""The fedqnn circuit as a PennyLane QNode with the torch interface (any installed device).

Same circuit as :mod:`fedqnn.quantum.statevector` (see there): per layer, RY angle encoding
(data re-uploading) then one ``qml.StronglyEntanglingLayers`` layer; readout ⟨Z_i⟩ and
⟨Z_i Z_{i+1}⟩. Inputs are broadcast over the batch where the device supports it.
"""

from __future__ import annotations

from typing import Any

import pennylane as qml
import torch

from fedqnn.quantum.statevector import zz_pairs

__all__ = ["make_qnode"]


def make_qnode(qubits: int, layers: int, device: str, diff_method: str, shots: int) -> Any:
    """A QNode ``f(weights, angles) -> (B, 2n - 1)``; ``shots=0`` means analytic expectations."""
    dev = qml.device(device, wires=qubits)
    wires = list(range(qubits))
    if shots and diff_method == "backprop":
        diff_method = "parameter-shift"  # sampled expectations cannot be back-propagated

    def circuit(weights: torch.Tensor, angles: torch.Tensor):
        for layer in range(layers):
            qml.AngleEmbedding(angles[..., layer, :], wires=wires, rotation="Y")
            if qubits == 1:  # no entanglers on one wire
                qml.Rot(*weights[layer, 0], wires=0)
            else:
                qml.StronglyEntanglingLayers(
                    weights[layer : layer + 1], wires=wires, ranges=[(layer % (qubits - 1)) + 1]
                )
        obs = [qml.expval(qml.PauliZ(i)) for i in wires]
        obs += [qml.expval(qml.PauliZ(i) @ qml.PauliZ(j)) for i, j in zz_pairs(qubits)]
        return obs

    node = qml.QNode(circuit, dev, interface="torch", diff_method=diff_method)
    if shots:
        node = qml.set_shots(node, shots=shots)

    def run(weights: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        broadcast = device.startswith("default.")
        if broadcast:
            outs = node(weights, angles)
            return torch.stack([torch.as_tensor(o) for o in outs], dim=-1).to(torch.float64)
        rows = []
        for a in angles:  # devices without broadcasting: one circuit per sample
            outs = node(weights, a)
            rows.append(torch.stack([torch.as_tensor(o) for o in outs]))
        return torch.stack(rows).to(torch.float64)

    return run
