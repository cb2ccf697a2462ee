"""Partitions in federated runs (issue 9): config keys, the server's planner, and end-to-end runs.

The config and planner tests are fast; the runs (marked slow) start Flower's Simulation Engine,
~30-60 s each on the shared 2-core machine: 3 clients, 2 rounds, 1 epoch, 16 samples each.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fedqnn.config import ConfigError, build_config, parse_set
from fedqnn.models import QuantumLayer
from fedqnn.noise import calibration_for
from fedqnn.partitions.accounting import round_demand
from fedqnn.partitions.adaptive import mask_for_rank
from fedqnn.partitions.circuit import cut_gates
from fedqnn.partitions.federated import (
    RECORD_EPOCHS,
    RECORD_K,
    PartitionPlanner,
    apply_round,
    rows_from_metrics,
    schmidt_metrics,
    spec_from_config,
)
from fedqnn.partitions.model import PartitionedQuantumLayer
from fedqnn.tasks import build_model

NODES = [f"node-{i}" for i in range(3)]


def _cfg(*sets: str) -> dict[str, Any]:
    return build_config(parse_set(list(sets)))


# -- config ------------------------------------------------------------------------------------


def test_default_is_data_and_the_scalar_spelling_sets_the_kind() -> None:
    assert _cfg()["partition"]["kind"] == "data"
    assert _cfg("partition=circuit")["partition"]["kind"] == "circuit"
    assert build_config({"partition": "unitary"})["partition"]["kind"] == "unitary"
    nested = build_config({"partition": {"kind": "circuit", "qpu_qubits": 2}})
    assert nested["partition"]["qpu_qubits"] == 2
    # a validated config survives the JSON round trip to the clients
    assert build_config(json.loads(json.dumps(nested))) == nested


@pytest.mark.parametrize("sets, field", [
    (["partition=banana"], "partition.kind"),
    (["partition=circuit", "partition.qpu_qubits=4"], "partition.qpu_qubits"),
    (["partition=unitary", "partition.qpus=3"], "partition.qpus"),
    (["partition=circuit", "model.device=default.qubit", "noise=noiseless"], "partition"),
    (["partition=circuit", "model.classical=true"], "partition"),
    (["partition=circuit", "partition.rank=-1"], "partition.rank"),
    (["partition=circuit", "partition.rank=true"], "partition.rank"),
    (["partition=unitary", "partition.rank=2"], "partition.rank"),
    (["partition.rank=2"], "partition.rank"),
    (["partition.monitor=true"], "partition.monitor"),
    (["partition=circuit", "partition.k_min=4", "partition.k_max=2"], "partition.k_min"),
    (["partition=circuit", "partition.pair_fidelity=0.2"], "partition.pair_fidelity"),
    (["partition=circuit", "partition.placement=nope"], "partition.placement"),
    (["partition=circuit", "partition.method=exact"], "partition.method"),
    (["partition.qpus=0"], "partition.qpus"),
])
def test_bad_values_and_combinations_fail_naming_the_field(sets: list[str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(*sets)
    assert str(err.value).startswith(f"{field}:"), str(err.value)


def test_data_keeps_quantum_layer_and_partitions_keep_the_parameter_shapes() -> None:
    base = build_model(_cfg())
    assert type(base.quantum) is QuantumLayer
    for sets in (["partition=unitary"], ["partition=circuit"], ["partition=circuit", "partition.qpu_qubits=1"]):
        m = build_model(_cfg(*sets))
        assert isinstance(m.quantum, PartitionedQuantumLayer)
        sd, ref = m.state_dict(), base.state_dict()
        assert list(sd) == list(ref)
        assert all(sd[k].shape == ref[k].shape and torch.equal(sd[k], ref[k]) for k in sd)


# -- planner (no Flower) -----------------------------------------------------------------------


def test_planner_demand_is_the_accounting_and_the_window_scales_with_it() -> None:
    cfg = _cfg("partition=circuit", "partition.rank=1", "partition.placement=off", "clients=3")
    planner = PartitionPlanner(cfg, NODES, broker=None)
    plan = planner.plan(1, NODES)
    spec = spec_from_config(cfg)
    mask = mask_for_rank(spec, 1)
    assert plan.k == 1 and plan.record == {RECORD_K: 1, RECORD_EPOCHS: cfg["train"]["epochs"]}
    for node in NODES:
        d = round_demand(spec, samples=cfg["data"]["samples_per_client"], batches=1, epochs=cfg["train"]["epochs"],
                         shots=calibration_for(cfg, node).shots, rate=100.0, rho=0.7, cut_mask=mask)
        assert plan.demand[node] == d.pairs > 0
    # D = max M / (rho r) with r = 100 /s when the broker is off
    assert plan.round_s == pytest.approx(max(plan.demand.values()) / (0.7 * 100.0))
    # more cut gates, more pairs, a longer window
    full = PartitionPlanner(_cfg("partition=circuit", "partition.rank=6", "partition.placement=off"), NODES).plan(1, NODES)
    assert sum(mask_for_rank(spec, 6)) == len(cut_gates(spec)) > sum(mask)
    assert full.row["pairs_total"] == plan.row["pairs_total"] * len(cut_gates(spec)) // sum(mask)
    assert full.round_s > plan.round_s


def test_adaptive_rank_and_placement_with_the_broker() -> None:
    from fedqnn.network.broker import Broker

    cfg = _cfg("partition=circuit", "clients=3")
    broker = Broker.from_config(cfg["broker"], NODES, cfg["seed"])
    planner = PartitionPlanner(cfg, NODES, broker)
    plan = planner.plan(1, NODES[:2])
    row = plan.row
    assert row["rule"] == "adaptive" and 1 <= row["k"] <= 2  # 2 + 2 qubits: the cut caps k at 2
    assert set(plan.demand) == set(NODES[:2])
    pl = row["placement"]
    assert pl["feasible"] and pl["tasks"] == 2 * cfg["model"]["layers"]
    assert set(pl["assignment"]) <= set(NODES)  # never on the server (capacity 0)
    assert planner.plan(2, NODES[:2]).row == row  # deterministic


def test_schmidt_metrics_flatten_and_rebuild_within_bounds() -> None:
    cfg = _cfg("partition=circuit", "model.qubits=6", "partition.qpus=3")
    model = build_model(cfg)
    for k in range(4):
        apply_round(model, {RECORD_K: k})
        met = schmidt_metrics(model, torch.rand(3, cfg["data"]["sensors"], dtype=torch.float64))
        rows = rows_from_metrics([met, {"num-examples": 3}])
        assert set(rows["schmidt_rank"]) == set(rows["schmidt_bound"]) == {"0|1", "1|2"}
        for cut, r in rows["schmidt_rank"].items():
            assert 1 <= r <= rows["schmidt_bound"][cut] <= 2**k
    assert schmidt_metrics(build_model(_cfg("partition=unitary")), torch.zeros(1, 64)) == {}


def _fake_stream(planner: PartitionPlanner, n: int, step_at: int, metric: str, delta: float,
                 seed: int = 0) -> list[tuple[int, int, int]]:
    """Feed ``n`` rounds of noisy (rel_l2, served, fidelity); ``metric`` steps by ``delta`` at
    ``step_at``. Returns (round, k, epochs) as the planner sends them."""
    g = np.random.default_rng(seed)
    out = []
    for t in range(1, n + 1):
        plan = planner.plan(t, NODES)
        out.append((t, plan.k, plan.epochs))
        vals = {"error": 0.3 + 0.01 * g.standard_normal(), "served": 0.9 + 0.01 * g.standard_normal(),
                "fidelity": 0.9 + 0.005 * g.standard_normal()}
        if t >= step_at:
            vals[metric] += delta
        planner.observe({"eval": {"rel_l2": vals["error"]},
                         "bell": {"served": vals["served"], "mean_consumed_fidelity": vals["fidelity"]}},
                        "rel_l2", "min")
    return out


@pytest.mark.parametrize("metric, delta, k_move, epochs_move", [
    ("fidelity", -0.05, -1, 0),   # 10 sigma worse pairs: one cut gate fewer
    ("error", +0.1, +1, +1),      # 10 sigma worse eval error: more steps and one more cut gate
])
def test_monitor_adapts_k_and_steps_within_5_rounds_of_a_step(metric: str, delta: float, k_move: int,
                                                              epochs_move: int) -> None:
    cfg = _cfg("partition=circuit", "partition.rank=1", "partition.monitor=true", "partition.placement=off",
               "train.epochs=1")
    seq = _fake_stream(PartitionPlanner(cfg, NODES), 120, 80, metric, delta)
    before = {(k, e) for t, k, e in seq if t <= 80}
    assert before == {(1, 1)}  # nothing moves on stationary noise
    changed = [t for t, k, e in seq if (k, e) != (1, 1)]
    assert changed and 80 + 3 <= changed[0] <= 80 + 5 + 1  # the plan after the 3rd..5th observed cycle
    k, e = seq[changed[0] - 1][1:]
    assert np.sign(k - 1) == k_move and np.sign(e - 1) == epochs_move


def test_monitor_is_off_by_default_and_stationary_streams_do_not_move_it() -> None:
    cfg = _cfg("partition=circuit", "partition.rank=1", "partition.monitor=true", "partition.placement=off")
    seq = _fake_stream(PartitionPlanner(cfg, NODES), 400, 10**9, "error", 0.0, seed=3)
    assert {(k, e) for _, k, e in seq} == {(1, cfg["train"]["epochs"])}
    assert PartitionPlanner(_cfg("partition=circuit", "partition.placement=off"), NODES).monitor is None


# -- federated runs ----------------------------------------------------------------------------

RUN = {
    "clients": 3, "rounds": 2, "min_replies": 2, "seed": 3, "train.epochs": 1,
    "data.samples_per_client": 16, "data.test_samples": 20, "progress": False,
    "strategy": "fedavg", "attack": "none",
}


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def batch_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every federated run of this module on ONE Simulation Engine runtime (start-up paid once)."""
    from fedqnn.config import build_config
    from fedqnn.simulation import run_batch

    root = tmp_path_factory.mktemp("partition-runs")
    rep = {**RUN, "partition": "circuit", "partition.rank": "adaptive", "strategy": "ceas"}
    cfgs = {kind: build_config({**RUN, "partition": kind, "out": str(root / kind)})
            for kind in ("data", "unitary", "circuit")}
    cfgs["repeat-a"] = build_config({**rep, "out": str(root / "repeat-a")})
    cfgs["repeat-b"] = build_config({**rep, "out": str(root / "repeat-b")})
    summaries = run_batch(list(cfgs.values()))
    return {name: (Path(cfg["out"]), summary) for (name, cfg), summary in zip(cfgs.items(), summaries)}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["data", "unitary", "circuit"])
def test_each_partition_trains_end_to_end_in_a_federated_run(batch_runs, kind: str) -> None:
    out, summary = batch_runs[kind]
    rows = _rows(out)
    assert [r["round"] for r in rows] == [1, 2]
    for r in rows:
        assert not r.get("skipped") and r["num_participants"] >= 2
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["eval"]["rel_l2"])
        if kind == "data":
            assert "partition" not in r and "schmidt_rank" not in r and "partition_requested" not in r["bell"]
            continue
        p = r["partition"]
        assert p["kind"] == kind and p["placement"]["feasible"]
        participants = sorted(p["pairs"])
        assert len(participants) == r["num_participants"]
        # the bell record carries the accounted demand: M = e S X for every participant
        assert r["bell"]["partition_requested"] == p["pairs_total"] == sum(p["pairs"].values())
        cfg = summary["config"]
        spec = spec_from_config(cfg)
        mask = mask_for_rank(spec, p["k"]) if kind == "circuit" else None
        for node in participants:
            d = round_demand(spec, samples=16, batches=1, epochs=1, shots=calibration_for(cfg, node).shots,
                             rate=1.0, rho=1.0, cut_mask=mask)
            assert p["pairs"][node] == d.pairs
        assert p["round_s"] > 1000  # hours of simulated link time, against the broker's ~ms window
        if kind == "circuit":
            assert set(r["schmidt_rank"]) == {"0|1"}
            for cut, rank in r["schmidt_rank"].items():
                assert 1 <= rank <= r["schmidt_bound"][cut] == 2 ** min(p["k"], 2)
        else:
            assert "schmidt_rank" not in r
    if kind != "data":
        assert summary["partition"]["pairs_total"] == sum(r["partition"]["pairs_total"] for r in rows)


@pytest.mark.slow
def test_a_circuit_run_repeats_exactly(batch_runs) -> None:
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    a, b = strip(_rows(batch_runs["repeat-a"][0])), strip(_rows(batch_runs["repeat-b"][0]))
    assert a == b and "weights" in a[0]  # CEAS aggregated the partitioned updates
