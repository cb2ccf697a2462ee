"""Bell-pair accounting for partitioned circuits: what one client's round really consumes.

A pair is consumed *per shot*: a measured circuit is prepared and measured S times, and every
preparation spends its own pairs at every cut. Per client and round (end-to-end pairs):

    pairs/execution  e = (cut gates x pairs per gate)     circuit:  1 per CNOT/CZ-class gate,
                                                                    2 per general 2-qubit gate
                       = n (N − 1)                          unitary:  every qubit, between blocks
                       = 0                                  data
    executions       X = samples x (1 + 2 P) x epochs x batches     (+ forward-only evaluations)
    demand           M = e x S x X

with P the number of circuit angles that need a gradient (parameter-shift rule: two shifted
circuits per angle; P = 3 L n Rot angles, + L n encoding angles when the encoder is trained,
:func:`shift_parameters`), ``samples`` the batch size and ``batches`` the batches per epoch.
Analytic simulation (S = 0) still stands for a device that would need shots: it is charged at
``analytic_shots`` (1000 by default).

The issue's example: one cut gate, S = 1000 shots, 32 samples, ~100 shifted circuits:
M = 1 x 1000 x 32 x 101 ≈ 3.2 x 10^6 pairs per cut gate per client per round.

Round duration. The broker keeps its rules (fixed demand at the start of the window, delivery by
the deadline) if the window is long enough for the links to make the demand at the calibrated
load ρ = demand rate / generation rate:

    D = M / (ρ r)           (r: end-to-end pairs/s available to the client)

i.e. ~4.6 x 10^4 s (12.7 h) per round for 3.2 x 10^6 pairs at r = 100 /s and ρ = 0.7.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fedqnn.partitions.circuit import PartitionSpec, cut_gates

__all__ = [
    "shift_parameters", "circuit_executions", "pairs_per_execution", "pairs_per_round",
    "round_duration", "Demand", "round_demand",
]


def _nonneg_int(name: str, v: object, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def shift_parameters(qubits: int, layers: int, trainable_encoder: bool = True) -> int:
    """P: circuit angles whose gradient the parameter-shift rule needs: 3 L n Rot angles, plus
    the L n encoding angles when the encoder before the circuit is trained."""
    n = _nonneg_int("qubits", qubits, 1)
    L = _nonneg_int("layers", layers, 1)
    return 3 * L * n + (L * n if trainable_encoder else 0)


def circuit_executions(samples: int, shift_params: int, epochs: int = 1, batches: int = 1,
                       shift_terms: int = 2, eval_samples: int = 0) -> int:
    """X = samples (1 + shift_terms P) epochs batches + eval_samples (forward only)."""
    s = _nonneg_int("samples", samples)
    p = _nonneg_int("shift_params", shift_params)
    e = _nonneg_int("epochs", epochs)
    b = _nonneg_int("batches", batches)
    t = _nonneg_int("shift_terms", shift_terms)
    return s * (1 + t * p) * e * b + _nonneg_int("eval_samples", eval_samples)


def pairs_per_execution(spec: PartitionSpec, cut_mask: list[bool] | None = None,
                        general_gates: int = 0) -> int:
    """End-to-end pairs one shot of one circuit consumes (module docstring)."""
    g = _nonneg_int("general_gates", general_gates)
    if spec.kind == "data":
        return 2 * g
    if spec.kind == "unitary":
        return spec.qubits * (spec.qpus - 1) + 2 * g
    gates = cut_gates(spec)
    if cut_mask is not None and len(cut_mask) != len(gates):
        raise ValueError(f"cut_mask: expected {len(gates)} entries, got {len(cut_mask)}")
    k = len(gates) if cut_mask is None else sum(bool(v) for v in cut_mask)
    return k + 2 * g


def pairs_per_round(per_execution: int, shots: int, executions: int, analytic_shots: int = 1000) -> int:
    """M = e S X, with S = ``analytic_shots`` when ``shots`` = 0 (analytic simulation)."""
    e = _nonneg_int("per_execution", per_execution)
    s = _nonneg_int("shots", shots)
    x = _nonneg_int("executions", executions)
    s = s or _nonneg_int("analytic_shots", analytic_shots, 1)
    return e * s * x


def round_duration(demand: float, rate: float, rho: float) -> float:
    """D = demand / (ρ r) seconds: the window in which links generating r pairs/s at load ρ make
    the round's demand (0 for no demand)."""
    if not rate > 0:
        raise ValueError(f"rate: expected pairs/s > 0, got {rate!r}")
    if not 0 < rho <= 1:
        raise ValueError(f"rho: expected a load in (0, 1], got {rho!r}")
    if demand < 0:
        raise ValueError(f"demand: expected >= 0 pairs, got {demand!r}")
    return float(demand) / (rho * rate)


@dataclass(frozen=True)
class Demand:
    per_execution: int
    shots: int
    executions: int
    pairs: int
    round_s: float
    deadline_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def round_demand(spec: PartitionSpec, *, samples: int, batches: int, epochs: int, shots: int,
                 rate: float, rho: float, deadline_fraction: float = 1.0,
                 cut_mask: list[bool] | None = None, trainable_encoder: bool = True,
                 analytic_shots: int = 1000, eval_samples: int = 0) -> Demand:
    """One client's round: pairs M and the window D = M / (ρ r) (deadline = fraction x D)."""
    if not 0 < deadline_fraction <= 1:
        raise ValueError(f"deadline_fraction: expected (0, 1], got {deadline_fraction!r}")
    e = pairs_per_execution(spec, cut_mask)
    x = circuit_executions(samples, shift_parameters(spec.qubits, spec.layers, trainable_encoder),
                           epochs, batches, eval_samples=eval_samples)
    m = pairs_per_round(e, shots, x, analytic_shots)
    d = round_duration(m, rate, rho)
    return Demand(e, shots or analytic_shots, x, m, d, deadline_fraction * d)
