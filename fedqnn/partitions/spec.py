"""Where the circuit runs: :class:`PartitionSpec` and its validation, from a config or by hand.

Pure Python (no torch): config validation builds the spec to check ``partition.*`` without
importing the simulator (:mod:`fedqnn.partitions.circuit`, which re-exports these names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PARTITIONS", "BROKER_OFF_FIDELITY", "PartitionSpec", "make_partition", "kind_of", "split_qpus",
           "spec_from_config", "pair_fidelity"]

PARTITIONS = ("data", "unitary", "circuit")
BROKER_OFF_FIDELITY = 0.96  # partition.pair_fidelity = 0 with broker.policy = off


@dataclass(frozen=True)
class PartitionSpec:
    """Where each part of the circuit runs.

    ``blocks``: for ``unitary`` the layer ranges (start, stop) of each QPU; for ``circuit`` the
    qubit ranges (start, stop) of each QPU; for ``data`` one block holding everything.
    """

    kind: str
    qubits: int
    layers: int
    blocks: tuple[tuple[int, int], ...]
    names: tuple[str, ...] = field(default=())

    @property
    def qpus(self) -> int:
        return len(self.blocks)

    def qpu_of_qubit(self, wire: int) -> int:
        if self.kind != "circuit":
            return 0
        for j, (a, b) in enumerate(self.blocks):
            if a <= wire < b:
                return j
        raise ValueError(f"wire: {wire} is not in 0..{self.qubits - 1}")

    def qpu_names(self) -> tuple[str, ...]:
        return self.names or tuple(str(j) for j in range(self.qpus))

    def cuts(self) -> list[tuple[str, list[int]]]:
        """``circuit`` bipartitions, one per boundary between consecutive QPUs j | j+1: the cut
        name ``"<qpu>|<qpu>"`` and the qubits on its left (QPUs 0..j)."""
        if self.kind != "circuit":
            return []
        names = self.qpu_names()
        return [(f"{names[j]}|{names[j + 1]}", list(range(self.blocks[j][1])))
                for j in range(self.qpus - 1)]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def make_partition(kind: str, qubits: int, layers: int, qpus: int | None = None,
                   qpu_qubits: int | None = None, names: Sequence[str] | None = None) -> PartitionSpec:
    """Validate and build a :class:`PartitionSpec`.

    ``unitary`` needs ``qpus`` (1..layers; layer blocks as equal as possible, earlier blocks take
    the remainder). ``circuit`` needs ``qpu_qubits`` (contiguous qubit blocks of that size, the last
    one smaller; at least two QPUs, i.e. qpu_qubits < qubits) or ``qpus`` (blocks as equal as
    possible). ``names`` optionally labels the QPUs (e.g. node names) for the cut names.
    """
    if kind not in PARTITIONS:
        raise ValueError(f"partition: expected one of {', '.join(PARTITIONS)}, got {kind!r}")
    n = _positive_int("qubits", qubits)
    L = _positive_int("layers", layers)
    if kind == "data":
        blocks: tuple[tuple[int, int], ...] = ((0, L),)
    elif kind == "unitary":
        if qpus is None:
            raise ValueError("partition.qpus: required for partition=unitary")
        N = _positive_int("partition.qpus", qpus)
        if N > L:
            raise ValueError(f"partition.qpus: {N} QPUs cannot share {L} layers (need qpus <= layers)")
        blocks = _even_blocks(L, N)
    else:
        if qpu_qubits is not None:
            q = _positive_int("partition.qpu_qubits", qpu_qubits)
            if q >= n:
                raise ValueError(f"partition.qpu_qubits: {q} >= qubits={n}: nothing to cut "
                                 "(use partition=data)")
            blocks = tuple((a, min(a + q, n)) for a in range(0, n, q))
        elif qpus is not None:
            N = _positive_int("partition.qpus", qpus)
            if not 2 <= N <= n:
                raise ValueError(f"partition.qpus: need 2 <= qpus <= qubits={n}, got {N}")
            blocks = _even_blocks(n, N)
        else:
            raise ValueError("partition.qpu_qubits: required for partition=circuit (or give qpus)")
    if names is not None and len(names) != len(blocks):
        raise ValueError(f"partition.names: need {len(blocks)} names, got {len(names)}")
    return PartitionSpec(kind, n, L, blocks, tuple(names) if names is not None else ())


def _even_blocks(total: int, parts: int) -> tuple[tuple[int, int], ...]:
    size, extra = divmod(total, parts)
    out, a = [], 0
    for j in range(parts):
        b = a + size + (1 if j < extra else 0)
        out.append((a, b))
        a = b
    return tuple(out)


def kind_of(cfg: Mapping[str, Any]) -> str:
    """``cfg['partition']['kind']`` (``data`` when the table is absent, e.g. an older config)."""
    part = cfg.get("partition")
    if isinstance(part, Mapping):
        return str(part.get("kind", "data"))
    return str(part or "data")


def split_qpus(cfg: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(qpus, qpu_qubits) as make_partition takes them for ``cfg``'s partition."""
    part = cfg["partition"]
    kind = part["kind"]
    if kind == "circuit" and part["qpu_qubits"]:
        return None, int(part["qpu_qubits"])
    return (int(part["qpus"]) if kind != "data" else None), None


def spec_from_config(cfg: Mapping[str, Any]) -> PartitionSpec:
    """The validated :class:`PartitionSpec` of ``cfg`` (raises ValueError naming ``partition.*``)."""
    qpus, qpu_qubits = split_qpus(cfg)
    m = cfg["model"]
    return make_partition(cfg["partition"]["kind"], m["qubits"], m["layers"], qpus=qpus, qpu_qubits=qpu_qubits)


def pair_fidelity(cfg: Mapping[str, Any]) -> float:
    """F of the pairs at the cuts: ``partition.pair_fidelity``, else the broker's F_min (0.96 off)."""
    f = float(cfg["partition"]["pair_fidelity"])
    if f > 0:
        return f
    broker = cfg.get("broker") or {}
    if broker.get("policy", "off") == "off":
        return BROKER_OFF_FIDELITY
    return float(broker["F_min"])
