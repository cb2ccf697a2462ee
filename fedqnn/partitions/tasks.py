"""Sub-circuits as placement tasks (``fedqnn.scheduling.placement.Task``).

* ``data``: one task, n qubits, L layers long.
* ``unitary``: one task per layer block, n qubits each, a chain (block j+1 needs block j's state,
  teleported: the edge's ``fmin``).
* ``circuit``: one task per (QPU block, layer): block b at layer l needs block b at layer l − 1,
  and every block that shares an enabled cut gate with b at layer l − 1 (the gate teleportation
  couples them; the edge needs ``fmin``). Co-scheduling of a cut gate's two halves is modelled
  as this precedence, the scheduler's model.

Durations are ``layer_seconds`` per layer (the QPU speed divides them in the scheduler);
``fmin`` is the pair fidelity below which a cut costs more than it gives, e.g.
``adaptive.break_even_fidelity(k)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedqnn.partitions.circuit import PartitionSpec, cut_gates
from fedqnn.scheduling.placement import Task

__all__ = ["subcircuit_tasks"]


def subcircuit_tasks(spec: PartitionSpec, layer_seconds: float = 1.0, fmin: float = 0.0,
                     cut_mask: Sequence[bool] | None = None, priority: float = 1.0) -> list[Task]:
    """The partition's sub-circuits as placement tasks (module docstring)."""
    if not layer_seconds > 0:
        raise ValueError(f"layer_seconds: expected > 0, got {layer_seconds!r}")
    if not 0.0 <= fmin <= 1.0:
        raise ValueError(f"fmin: expected a fidelity in [0, 1], got {fmin!r}")
    n, L = spec.qubits, spec.layers
    if spec.kind == "data":
        return [Task(n, L * layer_seconds, priority)]
    if spec.kind == "unitary":
        return [Task(n, (b - a) * layer_seconds, priority, fmin if j else 0.0, (j - 1,) if j else ())
                for j, (a, b) in enumerate(spec.blocks)]
    gates = cut_gates(spec)
    mask = [True] * len(gates) if cut_mask is None else [bool(v) for v in cut_mask]
    if len(mask) != len(gates):
        raise ValueError(f"cut_mask: expected {len(gates)} entries, got {len(mask)}")
    nb = spec.qpus
    coupled: dict[tuple[int, int], set[int]] = {}
    for g, on in zip(gates, mask, strict=True):
        if on:
            a, b = g.blocks
            coupled.setdefault((g.layer, a), set()).add(b)
            coupled.setdefault((g.layer, b), set()).add(a)
    tasks = []
    for layer in range(L):
        for b, (q0, q1) in enumerate(spec.blocks):
            preds: set[int] = set()
            needs = 0.0
            if layer:
                preds.add((layer - 1) * nb + b)
                for other in coupled.get((layer - 1, b), ()):
                    preds.add((layer - 1) * nb + other)
                    needs = fmin
            tasks.append(Task(q1 - q0, layer_seconds, priority, needs, tuple(sorted(preds))))
    return tasks
