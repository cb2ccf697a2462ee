"""Published calibration snapshots of real IBM devices (qiskit-ibm-runtime's fake backends).

Needs the ``devices`` extra (``pip install -e ".[devices]"``). A fake backend carries the device's
snapshot: per-qubit T1, T2 and frequency, every gate's error and duration, and readout errors
(``backend.properties()`` has the asymmetric P(1|0), P(0|1); the V2 target only their mean).

:data:`DEVICES` lists the backends ``noise=devices`` assigns by default: the 5- and 7-qubit
devices whose native two-qubit gate is CX (the routed program of
:mod:`fedqnn.quantum.device_spec` is written in CX; ECR/CZ devices would need their own
translation and are refused). Layout: :func:`best_chain`, the chain of ``n`` coupled physical
qubits with the highest product of gate and readout fidelities.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from fedqnn.quantum.device_spec import DeviceSpec, LinkCal, QubitCal

__all__ = ["DEVICES", "load_backend", "best_chain", "device_spec", "snapshot_source"]

#: backend name -> qiskit_ibm_runtime.fake_provider class (CX-native devices)
_CLASSES = {
    "fake_manila": "FakeManilaV2", "fake_lima": "FakeLimaV2", "fake_belem": "FakeBelemV2",
    "fake_quito": "FakeQuitoV2", "fake_nairobi": "FakeNairobiV2", "fake_jakarta": "FakeJakartaV2",
    "fake_lagos": "FakeLagosV2", "fake_perth": "FakePerth",
}
#: the default fleet of ``noise=devices`` (``qpu.devices``)
DEVICES = tuple(_CLASSES)


def _provider() -> Any:
    try:
        from qiskit_ibm_runtime import fake_provider
    except ModuleNotFoundError as exc:
        from fedqnn.schema import ConfigError

        raise ConfigError("noise=devices / fedqnn devices: needs the 'devices' extra "
                          "(pip install -e \".[devices]\": qiskit-ibm-runtime)") from exc
    return fake_provider


def snapshot_source() -> str:
    from importlib.metadata import version

    return f"qiskit-ibm-runtime {version('qiskit-ibm-runtime')} fake_provider"


@lru_cache(maxsize=16)
def load_backend(name: str) -> Any:
    """The fake backend ``name`` (e.g. ``fake_manila``); ConfigError for an unknown or non-CX one."""
    from fedqnn.schema import ConfigError

    if name not in _CLASSES:
        raise ConfigError(f"device backend: expected one of {', '.join(_CLASSES)}, got {name!r}")
    return getattr(_provider(), _CLASSES[name])()


def _qubit(backend: Any, q: int) -> QubitCal:
    t = backend.target
    qp = backend.qubit_properties(q)
    sx = t["sx"][(q,)]
    ro = t["measure"][(q,)].error
    p10 = p01 = ro
    props = backend.properties()
    if props is not None:
        rec = props.qubit_property(q)
        if "prob_meas1_prep0" in rec and "prob_meas0_prep1" in rec:
            p10, p01 = rec["prob_meas1_prep0"][0], rec["prob_meas0_prep1"][0]
    return QubitCal(float(qp.t1), float(qp.t2), float(sx.error), float(sx.duration), float(p10), float(p01))


def _cost(backend: Any, chain: tuple[int, ...]) -> float:
    """-log of the product of the chain's CX, √X and readout fidelities (lower is better)."""
    t = backend.target
    c = sum(-math.log(max(1e-12, 1 - t["cx"][(a, b)].error)) for a, b in zip(chain, chain[1:]))
    return c + sum(-math.log(max(1e-12, 1 - t["sx"][(q,)].error)) - math.log(max(1e-12, 1 - t["measure"][(q,)].error))
                   for q in chain)


def best_chain(backend: Any, n: int) -> tuple[int, ...]:
    """The simple path of n coupled physical qubits with the lowest :func:`_cost` (ties: the
    lexicographically first; a path and its reverse are the same chain, the smaller is kept)."""
    from fedqnn.schema import ConfigError

    edges = {tuple(e) for e in backend.coupling_map.get_edges()}
    nbrs: dict[int, list[int]] = {}
    for a, b in edges:
        if (b, a) in edges:  # a chain needs CX both ways
            nbrs.setdefault(a, []).append(b)
    best: tuple[float, tuple[int, ...]] | None = None

    def grow(path: tuple[int, ...]) -> None:
        nonlocal best
        if len(path) == n:
            if path <= path[::-1]:
                key = (round(_cost(backend, path), 12), path)
                best = key if best is None or key < best else best
            return
        for q in sorted(nbrs.get(path[-1], [])):
            if q not in path:
                grow(path + (q,))

    for q in range(backend.num_qubits):
        grow((q,))
    if best is None:
        raise ConfigError(f"device {backend.name}: no chain of {n} coupled qubits "
                          f"({backend.num_qubits} qubits); use fewer model.qubits or a larger device")
    return best[1]


@lru_cache(maxsize=256)
def device_spec(name: str, qubits: int, layout: tuple[int, ...] | None = None) -> DeviceSpec:
    """The calibration of backend ``name`` on ``layout`` (default :func:`best_chain` of ``qubits``)."""
    from fedqnn.schema import ConfigError

    backend = load_backend(name)
    chain = tuple(layout) if layout else best_chain(backend, qubits)
    edges = {tuple(e) for e in backend.coupling_map.get_edges()}
    if len(chain) != qubits or len(set(chain)) != qubits:
        raise ConfigError(f"device layout: expected {qubits} distinct physical qubits, got {list(chain)}")
    for a, b in zip(chain, chain[1:]):
        if (a, b) not in edges or (b, a) not in edges:
            raise ConfigError(f"device layout: qubits {a} and {b} of {name} are not coupled both ways")
    t = backend.target
    links = tuple(LinkCal(float(t["cx"][(a, b)].error), float(t["cx"][(a, b)].duration),
                          float(t["cx"][(b, a)].error), float(t["cx"][(b, a)].duration))
                  for a, b in zip(chain, chain[1:]))
    return DeviceSpec(name, chain, tuple(_qubit(backend, q) for q in chain), links, snapshot_source())
