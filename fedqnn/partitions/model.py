"""``PartitionedQuantumLayer``: a drop-in for ``fedqnn.models.QuantumLayer`` (``device="torch"``)
that runs the circuit as a ``data``, ``unitary`` or ``circuit`` partition.

Same contract: angles (B, L, n) -> expectations (B, 2n − 1); one trainable parameter ``weights``
(L, n, 3) initialised exactly like QuantumLayer's (same seed -> same tensor), so state dicts,
Flower parameter lists and strategies do not change with the partition. The cut-gate mask
(adaptive rank) is a non-persistent buffer: it is not a parameter and is not exchanged.

Noise:
* Bell-pair noise at the cuts (``pair_fidelity`` F < 1) belongs to the partitioned execution
  itself, so it is applied in training *and* evaluation (``density`` evaluates it exactly,
  ``trajectory`` samples it from the layer's seeded generator);
* the QPU calibration of ``set_noise(p, r, shots)`` is applied in training only, measured as in
  QuantumLayer (``fedqnn.quantum.readout``): depolarising p per qubit per layer inside the
  partitioned simulation, readout confusion on the outcome distribution, S bitstrings per sample
  with every observable from the same shots, straight-through gradient. With ``density`` the
  gate and pair noise are the exact channel, so each shot has its own errors (variance
  (1 − μ²)/S, as on hardware); with ``trajectory`` one Pauli trajectory per sample is shared by
  its S shots, which overstates the variance by (1 − 1/S) Var_τ(μ_τ) (the wide-register
  approximation of ``fedqnn.quantum.qpu._trajectory_fallback`` with K = 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fedqnn.partitions.circuit import (
    METHODS,
    PartitionSpec,
    cut_gates,
    expectations_from_probs,
    make_partition,
    simulate,
)
from fedqnn.partitions.spec import pair_fidelity, split_qpus
from fedqnn.quantum.readout import apply_confusion, as_confusion, measure
from fedqnn.quantum.statevector import num_observables

__all__ = ["PartitionedQuantumLayer", "build_layer"]


class PartitionedQuantumLayer(nn.Module):
    """angles (B, L, n) -> expectations (B, 2n − 1) of the partitioned circuit.

    ``partition``: ``data`` | ``unitary`` (needs ``qpus``) | ``circuit`` (needs ``qpu_qubits`` or
    ``qpus``). ``pair_fidelity``: Werner fidelity F of the pairs spent at the cuts.
    ``method``: ``trajectory`` | ``density`` | ``auto`` (density up to ``density_max_qubits``).
    """

    def __init__(
        self, qubits: int, layers: int, partition: str = "data", qpus: int | None = None,
        qpu_qubits: int | None = None, pair_fidelity: float = 1.0, seed: int = 0,
        method: str = "auto", density_max_qubits: int = 6, qpu_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.spec: PartitionSpec = make_partition(partition, qubits, layers, qpus=qpus,
                                                  qpu_qubits=qpu_qubits, names=qpu_names)
        if not 0.25 <= float(pair_fidelity) <= 1.0:
            raise ValueError(f"partition.pair_fidelity: expected a number in [0.25, 1], got {pair_fidelity!r}")
        if method not in (*METHODS, "auto"):
            raise ValueError(f"partition.method: expected trajectory, density or auto, got {method!r}")
        self.qubits, self.layers, self.seed = qubits, layers, seed
        self.pair_fidelity = float(pair_fidelity)
        self.method = method if method != "auto" else ("density" if qubits <= density_max_qubits else "trajectory")
        g = torch.Generator().manual_seed(seed)
        self.weights = nn.Parameter(torch.rand((layers, qubits, 3), generator=g, dtype=torch.float64) * 2 * math.pi)
        self.register_buffer("cut_mask", torch.ones(len(cut_gates(self.spec)), dtype=torch.bool),
                             persistent=False)
        self.out_features = num_observables(qubits)
        self.shot_generator: torch.Generator | None = None
        self._generator: torch.Generator | None = None
        self.depolarizing, self.readout_error, self.shots = 0.0, 0.0, 0
        self.confusion: torch.Tensor | None = None

    # -- QuantumLayer's interface --------------------------------------------------------------
    def set_noise(self, p: float, r: float | torch.Tensor, shots: int) -> None:
        """The client QPU's calibration (training only), as QuantumLayer.set_noise: ``r`` a
        bit-flip probability or (n, 2, 2) readout confusion matrices."""
        self.depolarizing, self.readout_error, self.shots = float(p), r, int(shots)
        self.confusion = as_confusion(r, self.qubits)

    @property
    def generator(self) -> torch.Generator:
        """The generator of the noise trajectories: ``shot_generator`` if the client set one, else
        the layer's own, seeded from ``seed``."""
        if self.shot_generator is not None:
            return self.shot_generator
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed + 7919)
        return self._generator

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        p = self.depolarizing if self.training else 0.0
        probs = simulate(
            self.spec, angles, self.weights, pair_fidelity=self.pair_fidelity,
            cut_mask=self.cut_mask if self.cut_mask.numel() else None, method=self.method,
            generator=self.generator, depolarizing=p,
        )
        if not self.training or (self.confusion is None and not self.shots):
            return expectations_from_probs(probs)
        probs = probs.reshape(probs.shape[0], -1)
        if self.confusion is not None:
            probs = apply_confusion(probs, self.confusion)
        return measure(probs, self.shots, self.generator)

    # -- partitions ----------------------------------------------------------------------------
    def set_cut_mask(self, mask: torch.Tensor | Sequence[bool]) -> None:
        """Enable/disable cut gates (one bool per cut gate, in circuit order); shapes stay fixed."""
        m = torch.as_tensor(mask, dtype=torch.bool).flatten()
        if m.numel() != self.cut_mask.numel():
            raise ValueError(f"cut_mask: expected {self.cut_mask.numel()} entries, got {m.numel()}")
        self.cut_mask = m.clone()

    def layer_blocks(self) -> dict[str, tuple[int, int]]:
        """``unitary``: QPU name -> its layer range [start, stop) (the others: one block, all layers)."""
        if self.spec.kind != "unitary":
            return {self.spec.qpu_names()[0]: (0, self.layers)} if self.spec.kind == "data" else \
                {"all": (0, self.layers)}
        return dict(zip(self.spec.qpu_names(), self.spec.blocks, strict=True))

    def parameter_blocks(self, prefix: str = "") -> dict[str, dict[str, slice]]:
        """For layer-wise consensus: QPU block -> {parameter name: slice along dim 0}. With the
        model's module path as ``prefix`` (e.g. ``"quantum."``) the names match its state dict."""
        return {q: {f"{prefix}weights": slice(a, b)} for q, (a, b) in self.layer_blocks().items()}

    def __getstate__(self) -> dict[str, Any]:  # generators do not pickle; rebuilt from the seed
        state = self.__dict__.copy()
        state["_generator"] = None
        state["shot_generator"] = None
        return state


def build_layer(cfg: Mapping[str, Any], seed: int) -> PartitionedQuantumLayer:
    """The partitioned quantum layer of ``cfg`` (same parameter shape and init as QuantumLayer)."""
    qpus, qpu_qubits = split_qpus(cfg)
    m = cfg["model"]
    return PartitionedQuantumLayer(m["qubits"], m["layers"], cfg["partition"]["kind"], qpus=qpus,
                                   qpu_qubits=qpu_qubits, pair_fidelity=pair_fidelity(cfg), seed=seed,
                                   method=cfg["partition"]["method"])
