"""Partitions in federated runs: the config -> layer glue and the server's per-round planner.

Flower-free. ``fedqnn.models`` builds the layer with :func:`build_layer` (from
:mod:`fedqnn.partitions.model`); the server app keeps
one :class:`PartitionPlanner` and, each round before the instructions go out, calls
:meth:`PartitionPlanner.plan`, which decides

* the rank exponent k (``partition.rank``: a fixed k, or ``adaptive`` = ``choose_rank`` from the
  task complexity, the broker's delivered fidelity, the eval trend and the memory budget), sent to
  the clients in the instruction's config record (``partition-k``) and applied with
  ``mask_for_rank``;
* the local epochs (``partition-epochs``; changed only by the monitor);
* every participant's Bell-pair demand M (``accounting.round_demand``) and the partition window
  D = M / (rho r) with its deadline;
* the placement of the sub-circuit tasks on the QPU network (``tasks.subcircuit_tasks`` and the
  scheduler).

After the round, :meth:`PartitionPlanner.observe` feeds the monitor (``partition.monitor``) with
the eval error, ``bell.served`` and ``bell.mean_consumed_fidelity``. Everything is a pure function
of the config, the seed and the rows already written, so one seed repeats a run exactly, and a
resumed run rebuilds the planner from ``metrics.jsonl`` (:meth:`PartitionPlanner.replay`).

The broker simulates the update pairs (``broker.pairs_per_node``) only; the partition demand is
accounted analytically (see docs/partitions.md, "Federated runs": a simulated window cannot hold
10^6 pairs with the broker's memories and step limit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedqnn.partitions.accounting import round_demand
from fedqnn.partitions.adaptive import (
    break_even_fidelity,
    choose_rank,
    mask_for_rank,
    spectral_complexity,
)
from fedqnn.partitions.circuit import cut_gates
from fedqnn.partitions.model import PartitionedQuantumLayer, build_layer
from fedqnn.partitions.monitor import AdaptationMonitor, Knobs, MonitorConfig
from fedqnn.partitions.spec import BROKER_OFF_FIDELITY, kind_of, pair_fidelity, spec_from_config

__all__ = [
    "BROKER_OFF_FIDELITY", "BROKER_OFF_RATE", "RECORD_K", "kind_of", "RECORD_EPOCHS", "spec_from_config",
    "pair_fidelity", "build_layer", "task_complexity", "apply_round", "schmidt_metrics",
    "rows_from_metrics", "RoundPlan", "PartitionPlanner",
]

BROKER_OFF_RATE = 100.0  # partition.rate = 0 with broker.policy = off (pairs/s, the figure)
RECORD_K = "partition-k"  # keys of the instruction's "fedqnn" config record
RECORD_EPOCHS = "partition-epochs"
LAYER_SECONDS = 1e-3  # duration of one circuit layer in the placement model (the scheduler's unit)


def task_complexity(cfg: Mapping[str, Any]) -> int:
    """m99 of the task: cosine modes holding 99 % of the targets' energy, on the public probe
    functions (operator tasks); the number of classes for classification (10 for digits)."""
    from fedqnn.tasks import get_task

    task = get_task(cfg["task"])
    if task.kind != "operator":
        return 10
    from fedqnn import data as D
    from fedqnn.tasks import _cached_pool

    d = cfg["data"]
    pool = _cached_pool(task.name, cfg["seed"], 32, d["length_scale"], "probe")
    return spectral_complexity(D.resample(pool.s, d["queries"]))


def apply_round(model: Any, record: Mapping[str, Any]) -> int | None:
    """Client and server: set the cut mask of the round's k (``partition-k`` in the config
    record) on ``model.quantum``; returns k, or None when the record has none."""
    layer = getattr(model, "quantum", None)
    if not isinstance(layer, PartitionedQuantumLayer) or RECORD_K not in record:
        return None
    k = int(record[RECORD_K])
    if layer.spec.kind == "circuit":
        layer.set_cut_mask(mask_for_rank(layer.spec, k))
    return k


def schmidt_metrics(model: Any, probe_x: Any) -> dict[str, int]:
    """``schmidt_rank/<cut>`` and ``schmidt_bound/<cut>`` of a ``circuit`` partition (flat, for a
    Flower MetricRecord): the measured rank of the noiseless final state over the probe inputs and
    the bound 2^k (capped by the register), with the layer's current mask. Empty otherwise."""
    import torch

    from fedqnn.partitions.schmidt import measured_schmidt_ranks, schmidt_bounds

    layer = getattr(model, "quantum", None)
    if not isinstance(layer, PartitionedQuantumLayer) or layer.spec.kind != "circuit":
        return {}
    with torch.no_grad():
        angles = model.angles(probe_x)
        ranks = measured_schmidt_ranks(layer.spec, angles, layer.weights.detach(), layer.cut_mask)
    bounds = schmidt_bounds(layer.spec, layer.cut_mask)
    out = {f"schmidt_rank/{c}": int(v) for c, v in ranks.items()}
    out.update({f"schmidt_bound/{c}": int(v) for c, v in bounds.items()})
    return out


def rows_from_metrics(replies_metrics: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The contract's ``schmidt_rank`` / ``schmidt_bound`` ({cut: int}) from the flat client
    metrics: the largest value over the participants (the worst case against the bound)."""
    out: dict[str, dict[str, int]] = {}
    for met in replies_metrics:
        for key, v in met.items():
            head, sep, cut = str(key).partition("/")
            if sep and head in ("schmidt_rank", "schmidt_bound"):
                d = out.setdefault(head, {})
                d[cut] = max(d.get(cut, 0), int(v))
    return out


@dataclass
class RoundPlan:
    """What the server decided for one round."""

    k: int
    epochs: int
    record: dict[str, int]  # entries of the instruction's config record
    demand: dict[str, int]  # node -> partition pairs M this round
    round_s: float  # the partition window D = max_node M / (rho r)
    deadline_s: float
    row: dict[str, Any] = field(default_factory=dict)  # the row's "partition" entry


class PartitionPlanner:
    """Server-side decisions of a partitioned run (module docstring). ``broker``: the run's
    :class:`fedqnn.network.broker.Broker` or None (read only: its rates and topology)."""

    def __init__(self, cfg: Mapping[str, Any], node_names: Sequence[str], broker: Any = None) -> None:
        self.cfg = cfg
        self.part = cfg["partition"]
        self.spec = spec_from_config(cfg)
        self.node_names = list(node_names)
        self.broker = broker
        self.fidelity0 = pair_fidelity(cfg)
        self.epochs0 = int(cfg["train"]["epochs"])
        self.errors: list[float] = []
        self.last_fidelity: float | None = None
        self.modes = task_complexity(cfg) if self.spec.kind == "circuit" else 1
        self.rates = {n: self._rate(n) for n in self.node_names}
        self.rho = float((cfg.get("broker") or {}).get("target_rho") or 0.7)
        self.deadline_fraction = float((cfg.get("broker") or {}).get("deadline_fraction") or 1.0)
        self.monitor: AdaptationMonitor | None = None
        kmax = int(self.part["k_max"])
        if self.part["monitor"]:
            # knob k is an offset around k_max (so the rule's k moves by knob - nominal), knob steps
            # is the local epochs, p the QAOA depth the placement would use
            self.monitor = AdaptationMonitor(
                MonitorConfig(k_bounds=(0, 2 * kmax), steps_bounds=(self.epochs0, 8 * self.epochs0)),
                Knobs(p=2, k=kmax, steps=self.epochs0))
        self._placements: dict[tuple[bool, ...], dict[str, Any]] = {}
        self.adjustments: list[dict[str, Any]] = []

    # -- inputs -------------------------------------------------------------------------------
    def _rate(self, node: str) -> float:
        """End-to-end pairs/s of ``node``: ``partition.rate``, else its path's slowest channel
        rate over the purification multiplier (the broker's calibrated rates)."""
        if self.part["rate"] > 0:
            return float(self.part["rate"])
        b = self.broker
        if b is None:
            return BROKER_OFF_RATE
        i = b.node_names.index(node)
        links = [int(x) for x in b.path_links[i] if x < b.n_links]
        if not links:
            return BROKER_OFF_RATE
        per_channel = min(float(b.rate[x]) / float(b.channels[x]) for x in links)
        return per_channel / float(b.mult[i])

    def _shots(self, node: str) -> int:
        from fedqnn.noise import calibration_for

        return int(calibration_for(dict(self.cfg), node).shots)

    def _k(self) -> tuple[int, dict[str, Any]]:
        if self.spec.kind != "circuit":
            return 0, {"rule": "none"}
        rank = self.part["rank"]
        if rank != "adaptive":
            k, info = int(rank), {"rule": "fixed"}
        else:
            f = self.last_fidelity if self.last_fidelity is not None else self.fidelity0
            sides = [(len(left), self.spec.qubits - len(left)) for _, left in self.spec.cuts()]
            side = min(sides, key=min)
            dec = choose_rank(self.modes, f, self.errors, float(self.part["memory_bytes"]), cut_qubits=side,
                              batch=int(self.cfg["train"]["batch_size"]),
                              method="density" if self.spec.qubits <= 6 and self.part["method"] != "trajectory"
                              else "trajectory",
                              k_min=int(self.part["k_min"]), k_max=int(self.part["k_max"]))
            k, info = dec.k, {"rule": "adaptive", "modes": self.modes, "fidelity": round(f, 6), **dec.as_dict()}
        if self.monitor is not None:
            k = max(0, k + self.monitor.knobs.k - self.monitor.nominal.k)
        return k, info

    # -- the round ----------------------------------------------------------------------------
    def plan(self, server_round: int, participants: Sequence[str]) -> RoundPlan:
        k, info = self._k()
        mask = mask_for_rank(self.spec, k) if self.spec.kind == "circuit" else None
        epochs = self.monitor.knobs.steps if self.monitor is not None else self.epochs0
        n_samples = int(self.cfg["data"]["samples_per_client"])
        demand: dict[str, int] = {}
        windows: dict[str, float] = {}
        for node in participants:
            d = round_demand(self.spec, samples=n_samples, batches=1, epochs=epochs, shots=self._shots(node),
                             rate=self.rates[node], rho=self.rho, deadline_fraction=self.deadline_fraction,
                             cut_mask=mask, analytic_shots=int(self.part["analytic_shots"]))
            demand[node], windows[node] = d.pairs, d.round_s
        round_s = max(windows.values(), default=0.0)
        record = {RECORD_K: int(k), RECORD_EPOCHS: int(epochs)}
        row: dict[str, Any] = {
            "kind": self.spec.kind, "k": int(k), "epochs": int(epochs), **info,
            "pairs_per_execution": int(sum(mask) if mask is not None else
                                       (self.spec.qubits * (self.spec.qpus - 1) if self.spec.kind == "unitary" else 0)),
            "pairs": demand, "pairs_total": int(sum(demand.values())),
            "round_s": round(round_s, 3), "deadline_s": round(self.deadline_fraction * round_s, 3),
            "rho": self.rho,
        }
        if self.spec.kind == "circuit":
            row["rank_budget"] = 2 ** int(k)
            row["cut_gates"] = f"{int(sum(mask or []))}/{len(cut_gates(self.spec))}"
        if self.part["placement"] != "off":
            row["placement"] = self.place(k, mask)
        if self.monitor is not None:
            row["monitor"] = {"p": self.monitor.knobs.p, "k_offset": self.monitor.knobs.k - self.monitor.nominal.k,
                              "steps": self.monitor.knobs.steps}
        return RoundPlan(int(k), int(epochs), record, demand, round_s, self.deadline_fraction * round_s, row)

    def observe(self, row: Mapping[str, Any], metric: str, direction: str) -> list[dict[str, Any]]:
        """After the round: the eval error, ``bell.served`` and the delivered fidelity feed the
        rule's history and the monitor. Returns the monitor's adjustments (as dicts)."""
        ev = row.get("eval") or {}
        err = None
        if ev.get(metric) is not None:
            v = float(ev[metric])
            err = max(1e-12, 1.0 - v if direction == "max" else v)
            self.errors.append(err)
        bell = row.get("bell") or {}
        fid = bell.get("mean_consumed_fidelity")
        if fid is not None:
            self.last_fidelity = float(fid)
        if self.monitor is None:
            return []
        adj = self.monitor.update({"error": err if err is not None else math.nan,
                                   "served": bell.get("served") if bell.get("served") is not None else math.nan,
                                   "fidelity": fid if fid is not None else math.nan})
        out = [{"cycle": a.cycle, "knob": a.knob, "old": a.old, "new": a.new, "reason": a.reason} for a in adj]
        self.adjustments += out
        return out

    def replay(self, rows: Iterable[Mapping[str, Any]], metric: str, direction: str) -> None:
        """Rebuild the history (and the monitor) from the rows already written (resume)."""
        for r in rows:
            self.observe(r, metric, direction)

    # -- placement ----------------------------------------------------------------------------
    def _network(self) -> tuple[list[str], Any]:
        from fedqnn.scheduling.placement import QPU, Network

        cap = max(b - a for a, b in self.spec.blocks) if self.spec.kind == "circuit" else self.spec.qubits
        cap *= self.spec.layers if self.spec.kind == "circuit" else max(b - a for a, b in self.spec.blocks)
        from fedqnn.noise import calibration_for

        if self.broker is not None:
            g = self.broker.net.graph
            names = sorted(g.nodes, key=str)
            idx = {n: i for i, n in enumerate(names)}
            qpus = [QPU(capacity=cap if n in self.node_names else 0,
                        error=float(calibration_for(dict(self.cfg), n).p) if n in self.node_names else 0.0)
                    for n in names]
            links = {(idx[u], idx[v]): float(d["F0"]) for u, v, d in g.edges(data=True)}
        else:
            names = list(self.node_names)
            qpus = [QPU(capacity=cap, error=float(calibration_for(dict(self.cfg), n).p)) for n in names]
            links = {(i, j): self.fidelity0 for i in range(len(names)) for j in range(i + 1, len(names))}
        return names, Network(qpus, links)

    def place(self, k: int, mask: list[bool] | None) -> dict[str, Any]:
        """The sub-circuit tasks on the QPU network, solved by ``partition.placement`` (cached per
        mask: the network is fixed, the solver seeded and single-threaded)."""
        key = tuple(mask or ())
        if key in self._placements:
            return self._placements[key]
        from fedqnn.partitions.tasks import subcircuit_tasks
        from fedqnn.scheduling.placement import schedule_times, to_problem
        from fedqnn.scheduling.registry import solve

        fmin = break_even_fidelity(k) if (self.spec.kind == "circuit" and k >= 1) else (
            self.fidelity0 if self.spec.kind == "unitary" else 0.0)
        tasks = subcircuit_tasks(self.spec, LAYER_SECONDS, fmin, mask)
        names, net = self._network()
        problem = to_problem(tasks, net, name=f"partition-{self.spec.kind}")
        with np.errstate(divide="ignore", invalid="ignore"):  # zero-capacity routers (the server)
            sol = solve(problem, self.part["placement"], time_limit=0.5, seed=int(self.cfg["seed"]))
        _, _, makespan = schedule_times(problem, sol.assignment)
        out = {
            "method": self.part["placement"], "tasks": len(tasks), "fmin": round(fmin, 6),
            "assignment": [names[int(i)] for i in np.asarray(sol.assignment)],
            "feasible": bool(sol.feasible), "objective": round(float(sol.objective), 6),
            "makespan_s": round(float(makespan), 6),
        }
        self._placements[key] = out
        return out
