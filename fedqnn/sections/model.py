"""The ``model`` section: the quantum layer, the encoder and trunk, and the classical ablation."""

from __future__ import annotations

from typing import Any

from fedqnn.schema import ConfigError, Field, Section, field

__all__ = ["FIELDS", "SECTION", "check"]

FIELDS: dict[str, Field] = {
    "model.qubits": field(4, int, "qubits of the quantum layer", low=1, high=20),
    "model.layers": field(2, int, "entangling layers of the ansatz", low=1, high=50),
    "model.device": field("torch", str, "PennyLane device name, or 'torch' (plain-torch statevector)"),
    "model.diff_method": field("backprop", str, "PennyLane differentiation method",
                               choices=("backprop", "adjoint", "parameter-shift", "finite-diff", "best")),
    "model.shots": field(0, int, "shots per expectation value; 0 = analytic", low=0),
    "model.features": field(8, int, "input features fed to the encoder (basis coefficients / PCA)", low=1, high=256),
    "model.basis": field(16, int, "output basis functions of the trunk (operator tasks)", low=1, high=256),
    "model.trunk": field("cosine", str, "trunk of operator models: fixed cosine basis or a learnable MLP",
                         choices=("cosine", "mlp")),
    "model.classical_hidden": field(0, int, "ablation's hidden width; 0 = match the quantum layer's parameter "
                                    "count", low=0, high=4096),
    "model.classical": field(False, bool, "ablation: replace the quantum layer by a classical layer of equal "
                             "parameter count"),
    "model.classical_layer": field("", str, "the ablation's classical layer: mlp (tanh MLP; also when empty) or "
                                   "product-state (the same circuit without CNOTs: same features, same "
                                   "parameters); absent from the config when empty",
                                   choices=("mlp", "product-state"), omit_empty=True),
}


def check(cfg: dict[str, Any]) -> None:
    """A PennyLane device must be installed, and QPU noise needs the plain-torch simulator."""
    if cfg["model"]["device"] != "torch":
        check_device(cfg["model"]["device"])
        if cfg["noise"] != "noiseless":
            raise ConfigError(
                f"model.device: QPU noise (noise={cfg['noise']!r}) is simulated on model.device='torch' "
                "(Pauli trajectories); use --set noise=noiseless with other devices"
            )


def check_device(name: str) -> None:
    """Build ``name`` on one wire (imports PennyLane: only for model.device other than torch)."""
    import pennylane as qml

    try:
        qml.device(name, wires=1)
    except Exception as exc:  # noqa: BLE001 - PennyLane raises many kinds
        raise ConfigError(
            f"model.device: {name!r} is not an installed PennyLane device ({exc.__class__.__name__}); "
            "try default.qubit, lightning.qubit or torch"
        ) from exc


SECTION = Section(FIELDS, check)
