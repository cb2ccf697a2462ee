"""The ``partition`` section (issue 9, docs/partitions.md): fields, the scalar alias and the
cross checks. Light: :mod:`fedqnn.schema`, :mod:`fedqnn.registry` and the pure-Python
:mod:`fedqnn.partitions.spec`; ``--set partition=circuit`` is ``partition.kind``.
"""

from __future__ import annotations

from typing import Any

from fedqnn.partitions.spec import spec_from_config
from fedqnn.registry import SCHEDULERS
from fedqnn.schema import ConfigError, Field, Section, field

__all__ = ["FIELDS", "ALIASES", "SECTION", "check"]


def _pair_fidelity(v: Any) -> str | None:
    return None if v == 0.0 or 0.25 <= v <= 1.0 else "expected 0 (use the broker's F_min) or a fidelity in [0.25, 1]"


def _rank(v: Any) -> str | None:
    ok = v == "adaptive" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    return None if ok else "expected 'adaptive' or an integer k >= 0"


FIELDS: dict[str, Field] = {
    "partition.kind": field("data", str, "how the circuit is spread over QPUs: data (each QPU runs the whole "
                            "circuit), unitary (layer blocks, state teleported), circuit (register split, "
                            "gate teleportation); set it as `partition`", choices=("data", "unitary", "circuit")),
    "partition.qpus": field(2, int, "unitary: QPUs sharing the layers (<= model.layers); circuit: QPUs "
                            "sharing the register when partition.qpu_qubits is 0", low=1, high=64),
    "partition.qpu_qubits": field(0, int, "circuit: qubits per QPU (< model.qubits); 0 = use partition.qpus",
                                  low=0, high=64),
    "partition.pair_fidelity": field(0.0, float, "Werner fidelity F of the pairs spent at the cuts; 0 = the "
                                     "broker's F_min (0.96 with broker.policy=off)", check=_pair_fidelity),
    "partition.method": field("auto", str, "simulation of the cut noise: trajectory, density or auto "
                              "(density up to 6 qubits)", choices=("auto", "trajectory", "density")),
    "partition.rank": field("adaptive", (str, int), "circuit: Schmidt-rank budget 2^k as k enabled cut gates "
                            "per cut, an integer k >= 0, or 'adaptive' (the server's rule each round)",
                            check=_rank),
    "partition.k_min": field(1, int, "adaptive rank: smallest k the rule may choose", low=0, high=64),
    "partition.k_max": field(6, int, "adaptive rank: largest k the rule may choose", low=0, high=64),
    "partition.memory_bytes": field(float(2**30), float, "adaptive rank: simulation memory budget (bytes)",
                                    low=0.0, low_open=True),
    "partition.analytic_shots": field(1000, int, "shots an analytic (shots = 0) QPU is charged in the "
                                      "Bell-pair accounting", low=1),
    "partition.rate": field(0.0, float, "end-to-end pairs/s a client gets for the partition window D = M / "
                            "(rho r); 0 = the broker's end-to-end rate of that node (100 with the broker off)",
                            low=0.0),
    "partition.monitor": field(False, bool, "real-time adaptation monitor: adjusts k and the local epochs "
                               "from eval error, bell.served and the delivered fidelity"),
    "partition.placement": field("auto", str, "scheduler placing the sub-circuit tasks on QPUs each round "
                                 "(a fedqnn.scheduling method) or 'off'"),
}

# Scalar spellings of a table's main key (docs/partitions.md: `partition` is data | unitary | circuit).
ALIASES: dict[str, str] = {"partition": "partition.kind"}


def check(cfg: dict[str, Any]) -> None:
    """Cross checks of the ``partition`` table against the model, the rank rule and the scheduler."""
    part = cfg["partition"]
    kind = part["kind"]
    if kind == "data":
        if part["rank"] != "adaptive":
            raise ConfigError("partition.rank: a rank budget applies to partition=circuit only (got partition=data)")
        if part["monitor"]:
            raise ConfigError("partition.monitor: adapts a partitioned circuit; needs partition=unitary or circuit")
        return
    m = cfg["model"]
    if m["device"] != "torch":
        raise ConfigError(f"partition: {kind!r} is simulated on model.device='torch' (Bell-pair noise at the "
                          f"cuts); got model.device={m['device']!r}")
    if m["classical"]:
        raise ConfigError(f"partition: {kind!r} splits the quantum layer, but model.classical=true replaces it")
    if kind != "circuit" and part["rank"] != "adaptive":
        raise ConfigError(f"partition.rank: a rank budget applies to partition=circuit only (got {kind!r})")
    if part["k_min"] > part["k_max"]:
        raise ConfigError(f"partition.k_min: expected <= partition.k_max ({part['k_max']}), got {part['k_min']}")
    if part["placement"] != "off":
        methods = SCHEDULERS.names()  # built-ins and fedqnn.schedulers entry points, none imported
        if part["placement"] not in methods:
            raise ConfigError(f"partition.placement: expected off or one of {', '.join(methods)}; "
                              f"got {part['placement']!r}")
    try:
        spec_from_config(cfg)
    except ValueError as exc:  # make_partition's messages name partition.*
        raise ConfigError(str(exc)) from exc


SECTION = Section(FIELDS, check, ALIASES)
