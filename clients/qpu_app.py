"""The honest QPU client: a Flower ``ClientApp`` on the Message API.

Each SuperNode is one QPU named ``node-<partition-id>`` (``partition-id`` and ``num-partitions``
come from ``context.node_config``: set by the Simulation Engine, or by ``--node-config`` in a
deployment). The run's validated config travels from the server in every instruction (the
ConfigRecord ``"fedqnn"``, key ``"config"``, JSON), so a client needs no files of its own.

Messages:

* ``query``: reply with the node's identity (``partition-id``, ``num-partitions``).
* ``train``: load the global arrays, train locally (RNG stream (seed, "train", round,
  partition-id)), reply with the new arrays and metrics ``num-examples``, ``train_loss``,
  ``partition-id``.

There is no ``evaluate`` handler: the server never sends evaluate messages (it evaluates the
global model itself on the test sets).

Partitioned runs (``partition`` = unitary | circuit, docs/partitions.md): the instruction's config
record also carries ``partition-k`` (the round's rank budget, applied as the cut mask) and
``partition-epochs``; ``circuit`` replies add ``schmidt_rank/<cut>`` and ``schmidt_bound/<cut>``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.byzantine import DATA_ATTACKS, attack_of, poison_targets, split_attack
from fedqnn.config import validate
from fedqnn.noise import apply_calibration, calibration_for
from fedqnn.partitions.federated import RECORD_EPOCHS, apply_round, kind_of, schmidt_metrics
from fedqnn.tasks import LocalData, get_task
from fedqnn.training import set_threads, train_local, train_local_half_shots

__all__ = ["app", "node_identity", "config_from_message"]

CONFIG_RECORD = "fedqnn"
SCHMIDT_PROBES = 4  # local inputs whose noiseless final states give the measured Schmidt ranks


def node_identity(context: Context) -> tuple[int, int]:
    """(partition-id, num-partitions) from the node config; a clear error if absent."""
    nc = context.node_config
    try:
        return int(nc["partition-id"]), int(nc["num-partitions"])
    except KeyError as exc:
        raise ValueError(
            "node_config needs 'partition-id' and 'num-partitions' "
            "(simulation sets them; deployments pass --node-config \"partition-id=0 num-partitions=3\")"
        ) from exc


def config_from_message(msg: Message) -> dict[str, Any]:
    return _parse_config(str(msg.content[CONFIG_RECORD]["config"]))


@lru_cache(maxsize=4)
def _parse_config(text: str) -> dict[str, Any]:
    return validate(json.loads(text))


#: Partitions one client process keeps: a Simulation Engine actor serves many nodes in turn (50
#: nodes on 2 actors: 25 each), so a cache of 4 re-partitioned the data on every instruction
#: (1 ms at 50 nodes, 8 ms at 1000: a permutation of the whole pool). One operator partition of
#: the defaults is 48 KB (64 x (64 + 32) float64): 4096 of them stay under 200 MB.
LOCAL_DATA_CACHE = 4096


@lru_cache(maxsize=LOCAL_DATA_CACHE)
def _local_data(cfg_text: str, partition_id: int, num_partitions: int) -> LocalData:
    cfg = _parse_config(cfg_text)
    return get_task(cfg["task"]).client_data(cfg, partition_id, num_partitions)


@lru_cache(maxsize=1)
def _cached_model(cfg_text: str) -> Any:
    """The task's model for this config, built once per process (building a QNode is what costs);
    every instruction reloads its weights from the server's arrays."""
    cfg = _parse_config(cfg_text)
    return get_task(cfg["task"]).build_model(cfg)


def signing(msg: Message, context: Context, call_next):
    """Client mod: sign train replies (Ed25519 envelope; key from node_config 'auth-key' or, in
    simulation, derived from the run seed carried in the instruction)."""
    from fedqnn.security.flower_glue import make_signing_mod

    seed = None
    if msg.has_content() and CONFIG_RECORD in msg.content.config_records:
        seed = _parse_config(str(msg.content[CONFIG_RECORD]["config"]))["seed"]
    return make_signing_mod(seed=seed)(msg, context, call_next)


app = ClientApp(mods=[signing])


@app.query()
def query(msg: Message, context: Context) -> Message:
    pid, num = node_identity(context)
    return Message(RecordDict({"identity": MetricRecord({"partition-id": pid, "num-partitions": num})}), reply_to=msg)


def local_train(msg: Message, context: Context) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train on local data; returns (model, cfg, metrics). Byzantine behaviours reuse this."""
    cfg_text = str(msg.content[CONFIG_RECORD]["config"])
    cfg = _parse_config(cfg_text)
    set_threads(cfg["train"]["threads"])
    pid, num = node_identity(context)
    server_round = int(msg.content[CONFIG_RECORD]["server-round"])
    task = get_task(cfg["task"])
    model = _cached_model(cfg_text)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    partitioned = kind_of(cfg) != "data"
    if partitioned:  # the round's rank budget (cut mask) and local epochs, decided by the server
        record = msg.content[CONFIG_RECORD]
        apply_round(model, record)
        if RECORD_EPOCHS in record:
            cfg = {**cfg, "train": {**cfg["train"], "epochs": int(record[RECORD_EPOCHS])}}
    data = _local_data(cfg_text, pid, num)
    if (any(a in DATA_ATTACKS for a in split_attack(cfg["attack"]))
            and attack_of(cfg, [f"node-{i}" for i in range(num)]).get(f"node-{pid}") in DATA_ATTACKS):
        data = LocalData(data.x, poison_targets(cfg, data.target, 10 if task.kind == "classification" else None), data.y)
    cal = calibration_for(cfg, f"node-{pid}")
    if hasattr(model, "quantum") and hasattr(model.quantum, "set_noise"):
        apply_calibration(model.quantum, cal)  # uniform: set_noise(p, r, shots); a device: its gate program
    half_diff = None
    if cfg["ceas"]["half_shots"] and hasattr(model, "quantum") and hasattr(model.quantum, "set_noise"):
        res, delta = train_local_half_shots(model, task, data, cfg, server_round, pid)
        half_diff = [float(v) for v in delta]
    else:
        res = train_local(model, task, data, cfg, server_round, pid)
    metrics = {
        "num-examples": res.num_examples,
        "train_loss": res.loss,
        "partition-id": pid,
        "train_seconds": res.seconds,
        **cal.as_metrics(),
    }
    if half_diff is not None:
        metrics["half_diff"] = half_diff
    if partitioned:  # circuit partitions: measured Schmidt rank and its bound per cut (docs/outputs.md)
        metrics.update(schmidt_metrics(model, data.x[:SCHMIDT_PROBES]))
    return model, cfg, metrics


@app.train()
def train(msg: Message, context: Context) -> Message:
    from fedqnn.faults import dropout_reply

    failed = dropout_reply(msg, config_from_message(msg), int(msg.content[CONFIG_RECORD]["server-round"]),
                           f"node-{node_identity(context)[0]}")
    if failed is not None:  # faults.dropout: this node fails to reply this round (seeded)
        return failed
    model, _, metrics = local_train(msg, context)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
    return Message(content, reply_to=msg)

