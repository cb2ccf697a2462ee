"""A real device's calibration on the qubits the model uses, and the routed gate program it runs.

Data (per-qubit, from a published calibration snapshot; :mod:`fedqnn.quantum.devices` reads them
from qiskit-ibm-runtime's fake backends): for the model's logical qubit i, placed on physical
qubit ``layout[i]`` of a chain (consecutive layout qubits are coupled),

* T1, T2 (s); the √X gate's error e_sx and duration t_sx (a generic single-qubit unitary costs two
  √X pulses, RZ is virtual: IBM's ZSX decomposition U = RZ·SX·RZ·SX·RZ);
* readout: P(read 1 | prepared 0) and P(read 0 | prepared 1);
* for every chain link (i, i+1), both CX directions' error e_cx and duration t_cx.

Routed program. The model's layer l runs RY·Rot on every qubit, then the ring CNOT(i, (i+r) mod n),
r = (l mod (n-1)) + 1. On a chain, CNOT(c, t) with chain distance d = |c - t| > 1 is routed by
SWAPping c to distance 2 (d - 2 SWAPs, each three CX), a bridge CNOT (four CX through the middle
qubit) and the SWAPs back, so every logical qubit is home again after each ring gate: 6d - 8 CX
(4 qubits x 2 layers: 29 CX, about what an optimising transpiler reaches for this ring). The program is scheduled as soon as possible with a
barrier at every layer's end (qubits wait for the slowest); waiting is an explicit idle.

Errors per instruction, as qiskit-aer's ``NoiseModel.from_backend`` builds them (so the
cross-check in ``tests/quantum/test_aer_crosscheck.py`` compares like with like):

* thermal relaxation over the instruction's duration t on each of its qubits (amplitude damping
  γ = 1 - e^{-t/T1} then phase damping, coherences e^{-t/T2}; T2 truncated to 2 T1;
  :func:`fedqnn.quantum.density.relaxation_parameters`); idles get relaxation only;
* before it, a depolarising channel E(ρ) = (1 - λ) ρ + λ Tr(ρ) I/d on the gate's d = 2^k
  dimensional space, λ chosen so that the composition has the reported average gate infidelity e
  (the gate error minus the relaxation part):

      λ = d (e - (1 - F_R)) / (d F_R - 1),   F_R = (d F_pro + 1)/(d + 1),   F_pro = Tr(R_relax)/d²

  (average gate fidelity from the process fidelity, Horodecki et al. 1999 / Nielsen 2002;
  R_relax the relaxation's Pauli transfer matrix, diag(1, e^{-t/T2}, e^{-t/T2}, e^{-t/T1}) per
  qubit, a tensor product for the CX); λ = 0 when e <= 1 - F_R.

Effective uniform parameters (for the stamps, the broker and the noisy-evaluation reference,
which take one p and one r): see :func:`effective_p` and :func:`effective_r`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["QubitCal", "LinkCal", "DeviceSpec", "Op", "layer_program", "effective_p", "effective_r",
           "depolarizing_lambda", "relaxation_ptm_diag"]


@dataclass(frozen=True)
class QubitCal:
    t1: float  # s
    t2: float  # s (truncated to 2 T1 when used)
    sx_error: float
    sx_time: float  # s
    p10: float  # P(read 1 | prepared 0)
    p01: float  # P(read 0 | prepared 1)


@dataclass(frozen=True)
class LinkCal:
    error_fw: float  # CX(i -> i+1)
    time_fw: float
    error_bw: float  # CX(i+1 -> i)
    time_bw: float


@dataclass(frozen=True)
class DeviceSpec:
    backend: str
    layout: tuple[int, ...]
    qubits: tuple[QubitCal, ...]
    links: tuple[LinkCal, ...]
    source: str = ""  # where the snapshot came from (package and version)

    @property
    def n(self) -> int:
        return len(self.qubits)

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "layout": list(self.layout), "source": self.source,
                "qubits": [asdict(q) for q in self.qubits], "links": [asdict(k) for k in self.links]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "device") -> DeviceSpec:
        """Build from a ``to_dict`` table; raises ``ConfigError`` naming the field and the expectation."""
        from fedqnn.schema import ConfigError

        if not isinstance(d, dict):
            raise ConfigError(f"{where}: expected a table {{backend, layout, qubits, links}}, got {d!r}")
        missing = sorted({"backend", "layout", "qubits", "links"} - set(d))
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
        qubits = tuple(_record(QubitCal, q, f"{where}.qubits[{i}]") for i, q in enumerate(_list(d["qubits"], f"{where}.qubits")))
        links = tuple(_record(LinkCal, k, f"{where}.links[{i}]") for i, k in enumerate(_list(d["links"], f"{where}.links")))
        layout = _list(d["layout"], f"{where}.layout")
        if not qubits or len(layout) != len(qubits) or len(links) != len(qubits) - 1:
            raise ConfigError(f"{where}: expected n >= 1 qubits, n layout entries and n - 1 links, got "
                              f"{len(qubits)}, {len(layout)}, {len(links)}")
        if not all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in layout):
            raise ConfigError(f"{where}.layout: expected physical qubit indices (integers >= 0), got {layout!r}")
        return cls(str(d["backend"]), tuple(layout), qubits, links, str(d.get("source", "")))


def _list(v: Any, where: str) -> list[Any]:
    from fedqnn.schema import ConfigError

    if not isinstance(v, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {v!r}")
    return list(v)


_BOUNDS = {"error": (0.0, 1.0), "time": (0.0, 1e-3), "t1": (1e-9, 10.0), "t2": (1e-9, 20.0), "p": (0.0, 0.5)}


def _record(kind: type, v: Any, where: str) -> Any:
    from fedqnn.schema import ConfigError

    names = list(kind.__dataclass_fields__)
    if not isinstance(v, dict) or sorted(v) != sorted(names):
        raise ConfigError(f"{where}: expected a table with exactly {', '.join(names)}, got {v!r}")
    vals = {}
    for k in names:
        x = v[k]
        lo, hi = next(b for key, b in _BOUNDS.items() if key in k)
        if isinstance(x, bool) or not isinstance(x, int | float) or not (lo <= float(x) <= hi):
            raise ConfigError(f"{where}.{k}: expected a number in [{lo}, {hi}], got {x!r}")
        vals[k] = float(x)
    return kind(**vals)


@dataclass(frozen=True)
class Op:
    """One scheduled instruction of the routed program on chain positions.

    kind: "u" (the layer's RY·Rot on ``qubits[0]`` as two √X pulses; its error is two √X
    errors), "cx" (control, target), "idle"; ``lam`` the depolarising λ (per √X pulse for "u"),
    ``time`` the duration (per pulse for "u")."""

    kind: str
    qubits: tuple[int, ...]
    lam: float
    time: float


def relaxation_ptm_diag(t: float, t1: float, t2: float) -> tuple[float, float, float]:
    """(R_XX = R_YY, R_ZZ, R_ZI) of thermal relaxation over t: e^{-t/T2}, e^{-t/T1}, 1 - e^{-t/T1}
    (T2 truncated to 2 T1, as qiskit-aer does)."""
    t2 = min(t2, 2.0 * t1)
    return math.exp(-t / t2), math.exp(-t / t1), 1.0 - math.exp(-t / t1)


def depolarizing_lambda(error: float, time: float, cals: list[QubitCal]) -> float:
    """λ of the module docstring for a gate of average infidelity ``error`` and duration ``time``
    on the qubits ``cals``."""
    d = 2 ** len(cals)
    tr = 1.0
    for q in cals:
        x, z, _ = relaxation_ptm_diag(time, q.t1, q.t2)
        tr *= 1.0 + 2.0 * x + z
    f_relax = (d * tr / d**2 + 1.0) / (d + 1.0)
    error = min(error, d / (d + 1.0))
    if error <= 1.0 - f_relax:
        return 0.0
    return min(d * (error - (1.0 - f_relax)) / (d * f_relax - 1.0), d * d / (d * d - 1.0))


def _route(c: int, t: int) -> list[tuple[int, int]]:
    """CX list (control, target) on chain positions for a logical CNOT(c, t): SWAPs in (three CX
    each) until c is two positions from t, the bridge CX(c, m) CX(m, t) CX(c, m) CX(m, t) (which
    is CNOT(c, t) and leaves the middle qubit m as it was), SWAPs back; a plain CX at distance 1."""
    s = 1 if t > c else -1
    if abs(t - c) == 1:
        return [(c, t)]
    swaps = [(p, p + s) for p in range(c, t - 2 * s, s)]  # move c to t - 2s
    ops: list[tuple[int, int]] = []
    for a, b in swaps:
        ops += [(a, b), (b, a), (a, b)]
    a, m = t - 2 * s, t - s
    ops += [(a, m), (m, t), (a, m), (m, t)]
    for a, b in reversed(swaps):
        ops += [(a, b), (b, a), (a, b)]
    return ops


def _cx_cal(spec: DeviceSpec, a: int, b: int) -> tuple[float, float]:
    link = spec.links[min(a, b)]
    return (link.error_fw, link.time_fw) if b == a + 1 else (link.error_bw, link.time_bw)


def layer_program(spec: DeviceSpec, layer: int) -> tuple[Op, ...]:
    """The scheduled instructions of model layer ``layer`` after its single-qubit unitaries,
    ending with idles up to the layer's barrier (see the module docstring)."""
    n = spec.n
    ops: list[Op] = []
    clock = [0.0] * n
    for i, q in enumerate(spec.qubits):
        ops.append(Op("u", (i,), depolarizing_lambda(q.sx_error, q.sx_time, [q]), q.sx_time))
        clock[i] = 2.0 * q.sx_time
    if n > 1:
        r = (layer % (n - 1)) + 1
        for i in range(n):
            for a, b in _route(i, (i + r) % n):
                start = max(clock[a], clock[b])
                for w in (a, b):
                    if start - clock[w] > 0:
                        ops.append(Op("idle", (w,), 0.0, start - clock[w]))
                err, dur = _cx_cal(spec, a, b)
                lam = depolarizing_lambda(err, dur, [spec.qubits[a], spec.qubits[b]])
                ops.append(Op("cx", (a, b), lam, dur))
                clock[a] = clock[b] = start + dur
    end = max(clock)
    ops += [Op("idle", (w,), 0.0, end - clock[w]) for w in range(n) if end - clock[w] > 0]
    return tuple(ops)


def effective_p(spec: DeviceSpec, layers: int) -> float:
    """The uniform depolarising p (per qubit per layer) with the same total Pauli contraction:

        (1 - 4p/3)^(L n) = Π_instructions f,   f = (1 - λ) for a depolarising λ and
                           ((R_XX + R_YY + R_ZZ)/3)^k for relaxation on k qubits

    i.e. the product-formula shrink (1 - 4p/3)^(L n) of :func:`fedqnn.noise.shrink_factor` equals
    the product of every noisy location's mean Pauli fidelity."""
    log_f = 0.0
    for layer in range(layers):
        for op in layer_program(spec, layer):
            pulses = 2 if op.kind == "u" else 1
            log_f += pulses * math.log(max(1.0 - op.lam, 1e-300))
            for w in op.qubits:
                x, z, _ = relaxation_ptm_diag(op.time, spec.qubits[w].t1, spec.qubits[w].t2)
                log_f += pulses * math.log((2.0 * x + z) / 3.0)
    per_location = math.exp(log_f / (layers * spec.n))
    return min(0.75, 0.75 * (1.0 - per_location))


def effective_r(spec: DeviceSpec) -> float:
    """The mean readout bit-flip probability r = mean_i (P_i(1|0) + P_i(0|1)) / 2: the symmetric
    flip with the same mean shrink (1 - 2r) of ⟨Z_i⟩ at ⟨Z_i⟩ = 0 (the confusion matrix maps
    ⟨Z⟩ to (1 - p10 - p01)⟨Z⟩ + p01 - p10)."""
    return sum(0.5 * (q.p10 + q.p01) for q in spec.qubits) / spec.n
