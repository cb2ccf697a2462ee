"""Quantum neural operator and quantum classifier (torch modules around the fedqnn circuit).

Quantum neural operator (a DeepONet-shaped operator with a quantum branch):

    f(u)   = Q u                                  resolution-independent input features:
                                                  f_k = ∫_0^1 u(x) cos(kπx) dx, k = 0..F-1,
                                                  by the trapezoid rule on u's sensor grid
    a(u)   = W_enc f(u) + b_enc  ∈ R^{L×n}        encoder: angles of the RY re-uploading layers
    e(u)   = ⟨O_j⟩_{ψ(a(u); θ)} ∈ [-1, 1]^{2n-1}  quantum layer: ⟨Z_i⟩, ⟨Z_i Z_{i+1}⟩
    c(u)   = W_out e(u) + b_out ∈ R^P             readout: coefficients of P output basis functions
    G(u)(y) = Σ_p c_p(u) t_p(y) + b               trunk t: R → R^P (a small tanh MLP of the query y)

Because f is an integral and t a function of y, the same model evaluates any sensor and query
resolution: the property that makes an operator an operator.

The classifier is the same branch with ``P = classes`` logits and no trunk.
``classical=True`` swaps the quantum layer for a classical layer with (as near as possible) the
same number of trainable parameters: the ablation that shows what the quantum part contributes.
``classical_layer`` picks it: ``mlp`` (a tanh MLP, a width-1 bottleneck at 4 qubits x 2 layers) or
``product-state`` (the same circuit without its CNOTs: the same trigonometric features of the same
angles and the same 3 L n parameters, classically simulable; the fair control).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from fedqnn.quantum.density import EXACT_MAX_QUBITS
from fedqnn.quantum.qpu import qpu_expectations
from fedqnn.quantum.readout import as_confusion
from fedqnn.quantum.shots import sample_expectations
from fedqnn.quantum.statevector import circuit_state, expectations, num_observables

__all__ = ["QuantumLayer", "ClassicalSurrogate", "ProductStateLayer", "sample_expectations", "QuantumNeuralOperator",
           "QuantumClassifier"]


class QuantumLayer(nn.Module):
    """angles (B, L, n) -> expectations (B, 2n - 1); trainable Rot weights (L, n, 3).

    ``device="torch"`` uses the plain-torch statevector; any other name builds a PennyLane QNode
    on that device (``default.qubit``, ``lightning.qubit``, a hardware plugin). On ``torch`` with
    a QPU calibration, ``diff_method="parameter-shift"`` measures the gradient by shifted circuits
    with shots (``fedqnn.quantum.shift``); any other value: straight-through (exact ∂μ).
    """

    def __init__(
        self, qubits: int, layers: int, device: str = "default.qubit", diff_method: str = "backprop",
        shots: int = 0, seed: int = 0,
    ) -> None:
        super().__init__()
        self.qubits, self.layers, self.device, self.shots = qubits, layers, device, shots
        self.diff_method = diff_method  # torch device: "parameter-shift" = shot-measured shifts
        g = torch.Generator().manual_seed(seed)
        self.weights = nn.Parameter(torch.rand((layers, qubits, 3), generator=g, dtype=torch.float64) * 2 * math.pi)
        self._qnode = None
        if device != "torch":
            from fedqnn.quantum.qnode import make_qnode

            self._qnode = make_qnode(qubits, layers, device, diff_method, shots)
        self.out_features = num_observables(qubits)
        self.shot_generator: torch.Generator | None = None
        self.depolarizing = 0.0
        self.readout_error: float | torch.Tensor = 0.0
        self.confusion: torch.Tensor | None = None  # (n, 2, 2) readout matrices, None = perfect
        self.channel: torch.Tensor | None = None  # extra per-qubit superoperator after D_p
        self.exact_max_qubits = EXACT_MAX_QUBITS  # wider: the trajectory fallback (fedqnn.quantum.qpu)

    def set_noise(
        self, p: float, r: float | torch.Tensor, shots: int, channel: torch.Tensor | None = None
    ) -> None:
        """Simulate a QPU in training (``fedqnn.quantum.qpu``): depolarising p per qubit per layer
        (exact density matrix up to EXACT_MAX_QUBITS), readout error ``r`` (a bit-flip
        probability, or (n, 2, 2) confusion matrices), ``shots`` bitstrings per sample with every
        observable estimated from the same shots (0 = the exact noisy expectation); ``channel``
        an optional extra single-qubit superoperator after D_p (e.g. T1/T2 relaxation)."""
        noisy = p > 0 or channel is not None or (float(r) > 0 if not isinstance(r, torch.Tensor) else True)
        if self._qnode is not None and noisy:
            raise ValueError("model.device: gate and readout noise are simulated on model.device=torch")
        self.depolarizing, self.readout_error, self.shots = float(p), r, int(shots)
        self.confusion = as_confusion(r, self.qubits)
        self.channel = channel

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        if self._qnode is not None:
            return self._qnode(self.weights, angles)
        if not self.training or (self.depolarizing <= 0 and self.confusion is None and not self.shots
                                 and self.channel is None):
            return expectations(circuit_state(angles, self.weights))
        if self.diff_method == "parameter-shift" and self.shots and self.qubits <= self.exact_max_qubits:
            from fedqnn.quantum.shift import parameter_shift_expectations

            return parameter_shift_expectations(
                angles, self.weights, p=self.depolarizing, confusion=self.confusion, shots=self.shots,
                generator=self.shot_generator, channel=self.channel,
            )
        return qpu_expectations(
            angles, self.weights, p=self.depolarizing, confusion=self.confusion, shots=self.shots,
            generator=self.shot_generator, channel=self.channel, exact_max_qubits=self.exact_max_qubits,
        )

    def __getstate__(self) -> dict[str, Any]:  # QNodes do not pickle; rebuilt on load
        state = self.__dict__.copy()
        state["_qnode"] = None
        return state


class ClassicalSurrogate(nn.Module):
    """Ablation: a classical map (B, L, n) -> (B, 2n - 1) with ≈ the quantum layer's parameter count.

    Linear(L n -> h), tanh, Linear(h -> 2n - 1) with h chosen so the count is closest to 3 L n
    (at 4 qubits x 2 layers that is h = 1, a width-1 bottleneck); ``hidden`` > 0 sets h instead
    (``model.classical_hidden``), the wider, parameter-unmatched control.
    """

    def __init__(self, qubits: int, layers: int, seed: int = 0, hidden: int = 0) -> None:
        super().__init__()
        d_in, d_out = layers * qubits, num_observables(qubits)
        target = 3 * layers * qubits
        h = hidden or max(1, round((target - d_out) / (d_in + 1 + d_out)))
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d_in, h), nn.Tanh(), nn.Linear(h, d_out), nn.Tanh())
        self.net.to(torch.float64)
        self.out_features = d_out

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return self.net(angles.flatten(1))


class ProductStateLayer(nn.Module):
    """Ablation's fair classical control: the quantum layer's circuit with every CNOT removed.

    Without entanglers each qubit evolves alone: per layer RY(a_{l,i}) then Rot(θ_{l,i}) on its
    own 2-dim state |ψ_i⟩, so the state is the product ⊗_i |ψ_i⟩ and

        ⟨Z_i⟩ = ⟨ψ_i|Z|ψ_i⟩,    ⟨Z_i Z_{i+1}⟩ = ⟨Z_i⟩⟨Z_{i+1}⟩,

    trigonometric polynomials of the same angles as the quantum layer's, with the same 3 L n
    trainable parameters and the same initialisation, computable classically in O(L n) (here by
    the same statevector code with the CNOT mask off). Noiseless like :class:`ClassicalSurrogate`;
    its parameter is ``theta`` (not ``weights``), so CEAS's metric treats it as classical.
    """

    def __init__(self, qubits: int, layers: int, seed: int = 0) -> None:
        super().__init__()
        self.qubits, self.layers = qubits, layers
        g = torch.Generator().manual_seed(seed)  # QuantumLayer's draw: the same initial angles
        self.theta = nn.Parameter(torch.rand((layers, qubits, 3), generator=g, dtype=torch.float64) * 2 * math.pi)
        self.register_buffer("mask", torch.zeros(layers, qubits), persistent=False)
        self.out_features = num_observables(qubits)

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return expectations(circuit_state(angles, self.theta, mask=self.mask))


@lru_cache(maxsize=32)
def _cosine_quadrature(points: int, features: int) -> torch.Tensor:
    """Q with (Q u)_k = ∫_0^1 u(x) cos(kπx) dx by the trapezoid rule on ``points`` uniform sensors."""
    x = np.linspace(0.0, 1.0, points)
    w = np.full(points, 1.0 / (points - 1))
    w[[0, -1]] *= 0.5
    k = np.arange(features)[:, None]
    return torch.tensor(np.cos(np.pi * k * x[None, :]) * w[None, :], dtype=torch.float64)


def _quantum_or_classical(cfg: dict[str, Any], seed: int) -> nn.Module:
    m = cfg["model"]
    if m["classical"]:
        if m.get("classical_layer", "mlp") == "product-state":
            return ProductStateLayer(m["qubits"], m["layers"], seed=seed)
        return ClassicalSurrogate(m["qubits"], m["layers"], seed=seed, hidden=m["classical_hidden"])
    from fedqnn.partitions.spec import kind_of

    if kind_of(cfg) != "data":  # unitary / circuit: same `weights` (L, n, 3), same init (issue 9)
        from fedqnn.partitions.model import build_layer

        return build_layer(cfg, seed)
    return QuantumLayer(m["qubits"], m["layers"], m["device"], m["diff_method"], m["shots"], seed=seed)


class QuantumNeuralOperator(nn.Module):
    """u samples (B, m) on a uniform grid, queries y (Q,) -> G(u)(y) (B, Q)."""

    def __init__(self, cfg: dict[str, Any], seed: int = 0) -> None:
        super().__init__()
        m = cfg["model"]
        torch.manual_seed(seed)
        self.features, self.qubits, self.layers = m["features"], m["qubits"], m["layers"]
        self.encoder = nn.Linear(self.features, self.layers * self.qubits, dtype=torch.float64)
        self.quantum = _quantum_or_classical(cfg, seed)
        self.readout = nn.Linear(self.quantum.out_features, m["basis"], dtype=torch.float64)
        with torch.no_grad():  # start near the zero operator (rel_l2 ≈ 1), not at a random one
            self.readout.weight.mul_(0.1)
            self.readout.bias.zero_()
        self.basis = m["basis"]
        self.trunk_kind = m["trunk"]
        if self.trunk_kind == "mlp":
            self.trunk = nn.Sequential(
                nn.Linear(1, 32, dtype=torch.float64), nn.Tanh(), nn.Linear(32, m["basis"], dtype=torch.float64)
            )
        self.bias = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def angles(self, u: torch.Tensor) -> torch.Tensor:
        f = u.to(torch.float64) @ _cosine_quadrature(u.shape[-1], self.features).T
        return self.encoder(f).view(-1, self.layers, self.qubits)

    def forward(self, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self.readout(self.quantum(self.angles(u)))
        return c @ self.trunk_values(y).T + self.bias

    def trunk_values(self, y: torch.Tensor) -> torch.Tensor:
        """t(y) (Q, P): a tanh MLP, or the fixed basis t_p(y) = cos(pπy) (P = model.basis)."""
        y = y.to(torch.float64).view(-1, 1)
        if self.trunk_kind == "mlp":
            return self.trunk(y)
        return torch.cos(torch.pi * torch.arange(self.basis, dtype=torch.float64) * y)


class QuantumClassifier(nn.Module):
    """features (B, F) -> logits (B, classes)."""

    def __init__(self, cfg: dict[str, Any], num_classes: int, seed: int = 0) -> None:
        super().__init__()
        m = cfg["model"]
        torch.manual_seed(seed)
        self.qubits, self.layers = m["qubits"], m["layers"]
        self.encoder = nn.Linear(m["features"], self.layers * self.qubits, dtype=torch.float64)
        self.quantum = _quantum_or_classical(cfg, seed)
        self.readout = nn.Linear(self.quantum.out_features, num_classes, dtype=torch.float64)

    def angles(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.to(torch.float64)).view(-1, self.layers, self.qubits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.quantum(self.angles(x)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
