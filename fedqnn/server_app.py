"""The fedqnn ``ServerApp``: the round loop.

Data flows one way: config -> server -> (participant selection) -> strategy.configure_train ->
messages -> clients -> replies (sorted by node name) -> verification -> strategy.aggregate_train
-> server-side evaluation -> metrics.

The loop calls the Flower strategy's own hooks, so any ``flwr.serverapp.strategy.Strategy``
plugs in; fedqnn does the parts a research run needs to be exact and auditable: stable node
names (``node-<partition-id>``), seeded uniform participant selection, a fixed reply order, skipped
rounds with a reason instead of crashes, and the outputs of CONTRACTS.md.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedqnn.config import ConfigError, build_config
from fedqnn.partitions.federated import apply_round, kind_of, rows_from_metrics
from fedqnn.results import RunWriter
from fedqnn.seeding import derive_seed, rng
from fedqnn.tasks import get_task

__all__ = ["app", "make_server_app", "run_server", "discover_nodes", "SelectedGrid"]

CONFIG_RECORD = "fedqnn"


class SelectedGrid:
    """A view of a Grid that exposes only this round's selected nodes (in a fixed order).

    Strategies sample from ``grid.get_node_ids()``; with ``fraction_train=1.0`` they take exactly
    the participants the server selected.
    """

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid, self._ids = grid, list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self._ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def discover_nodes(grid: Grid, expected: int, timeout: float = 600.0) -> dict[int, str]:
    """Map Flower node ids to ``node-<partition-id>`` by asking each node (a ``query`` message)."""
    start = time.monotonic()
    while len(ids := list(grid.get_node_ids())) < expected:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"only {len(ids)} of {expected} nodes connected after {timeout:.0f} s")
        time.sleep(0.5)
    msgs = [
        Message(RecordDict({}), dst_node_id=nid, message_type=MessageType.QUERY)
        for nid in sorted(ids)
    ]
    names: dict[int, str] = {}
    for reply in grid.send_and_receive(msgs, timeout=timeout):
        if reply.has_error():
            log(INFO, "node %s did not identify itself: %s", reply.metadata.src_node_id, reply.error.reason)
            continue
        pid = int(reply.content["identity"]["partition-id"])
        names[reply.metadata.src_node_id] = f"node-{pid}"
    dup = len(names) - len(set(names.values()))
    if dup:
        raise RuntimeError("two nodes claim the same partition-id: check each SuperNode's --node-config")
    return names


def _select(cfg: dict[str, Any], eligible: list[str], server_round: int) -> list[str]:
    """Uniform sample of ceil(fraction_train x eligible) nodes, from the stream (seed, 'select', round).

    Selection never depends on what nodes report (stamps, losses): a node cannot raise its own
    chance of taking part.
    """
    k = max(1, int(round(cfg["fraction_train"] * len(eligible))))
    k = min(k, len(eligible))
    pick = rng(cfg["seed"], "select", server_round).choice(len(eligible), size=k, replace=False)
    return sorted((eligible[i] for i in pick), key=_name_key)


def _name_key(name: str) -> tuple[int, str]:
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def _weighted_train_loss(replies: Iterable[Message]) -> float | None:
    num = den = 0.0
    for m in replies:
        rec = m.content["metrics"]
        n = float(rec.get("num-examples", 0))
        if "train_loss" in rec:
            num += n * float(rec["train_loss"])
            den += n
    return num / den if den else None


def _auth_setup(cfg: dict[str, Any], node_names: list[str], flower_run_id: int | None = None):
    """The update verifier for ``cfg['auth']`` (None when off). Its run id includes Flower's run
    id in deployments, so nonces never repeat across runs with the same seed."""
    from fedqnn.security.keys import KeyRegistry
    from fedqnn.security.verifier import Verifier

    if cfg["auth"] == "off":
        return None
    if cfg["security"]["registry"]:
        try:
            registry = KeyRegistry.load(cfg["security"]["registry"])
        except (OSError, ValueError) as exc:
            raise ConfigError(f"security.registry: cannot load {cfg['security']['registry']!r} ({exc})") from exc
    else:
        registry = KeyRegistry.for_simulation(cfg["seed"], node_names)
    run_id = f"fedqnn-{cfg['seed']}" if flower_run_id is None else f"fedqnn-{cfg['seed']}-{flower_run_id}"
    return Verifier(registry, run_id=run_id, seed=cfg["seed"])


def _qkd_setup(cfg: dict[str, Any]):
    """The per-node key manager for ``auth=qkd`` (None otherwise); see :mod:`fedqnn.security.qkd`."""
    if cfg["auth"] != "qkd":
        return None
    from fedqnn.security.qkd import QkdKeyManager

    q = cfg["qkd"]
    return QkdKeyManager(cfg["seed"], refresh_every=q["refresh_every"], key_bits=q["key_bits"], eps=q["eps"],
                         f_ec=q["f_ec"])


def _spec(cfg: dict[str, Any], arrays: ArrayRecord):
    from fedqnn.security.validator import ValidationSpec, template_from_arrays

    template = template_from_arrays({k: v.detach().numpy() for k, v in arrays.to_torch_state_dict().items()})
    return ValidationSpec(
        template=template,
        required_metrics=("num-examples",),
        nonnegative_prefixes=("num-examples", "cal_", "train_loss", "stamp"),
        max_bytes=int(cfg["security"]["max_mb"] * 2**20),
    )


def _personalise(msg: Message, extra: dict[str, ConfigRecord]) -> Message:
    """A copy of an instruction with its own RecordDict (strategies share one across nodes)."""
    content = RecordDict({k: v for k, v in msg.content.items()})
    for k, v in extra.items():
        content[k] = v
    return Message(content, dst_node_id=msg.metadata.dst_node_id, message_type=msg.metadata.message_type)


def client_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as sent to the clients: ``qpu.calibration_file`` (the server's record) is
    inlined into ``qpu.nodes``, so a client never needs the file; everything else is as is."""
    if not cfg["qpu"].get("calibration_file"):
        return cfg
    from fedqnn.noise import load_calibration_file

    def canon(d: dict[str, Any]) -> dict[str, Any]:  # "3" -> "node-3"; a name key wins over an id key
        out = {f"node-{k}": v for k, v in d.items() if str(k).isdigit()}
        out.update({k: v for k, v in d.items() if not str(k).isdigit()})
        return out

    table = canon(load_calibration_file(cfg["qpu"]["calibration_file"]))
    inline = canon(dict(cfg["qpu"].get("nodes") or {}))
    merged = {k: {**table.get(k, {}), **inline.get(k, {})} for k in {**table, **inline}}
    return {**cfg, "qpu": {**cfg["qpu"], "nodes": merged, "calibration_file": ""}}


def _skip_reason(n_ok: int, cfg: dict[str, Any], failed: list[str], unserved: list[str], n_rejected: int) -> str:
    parts = [f"{len(failed)} no-reply"] if failed else []
    parts += [f"{len(unserved)} bell-unserved"] if unserved else []
    parts += [f"{n_rejected} rejected"] if n_rejected else []
    why = f" ({', '.join(parts)})" if parts else ""
    return f"{n_ok} valid replies < min_replies={cfg['min_replies']}{why}"


def run_server(
    grid: Grid, cfg: dict[str, Any], flower_run_id: int | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run ``cfg['rounds']`` rounds on ``grid`` and write the outputs to ``cfg['out']``.

    A checkpoint is written before round 1 and after every round (:mod:`fedqnn.checkpoint`);
    with ``resume`` the run continues from the checkpoint in ``cfg['out']`` (its config must
    equal ``cfg`` but for ``rounds``), with ``metrics.jsonl`` cut back to the checkpointed round.
    """
    import torch

    from fedqnn import checkpoint
    from strategies.flower_builtins import PreconditionError
    from strategies.registry import build_strategy

    torch.set_num_threads(max(1, cfg["train"]["threads"]))
    task = get_task(cfg["task"])
    random.seed(derive_seed(cfg["seed"], "python-random"))
    names = discover_nodes(grid, cfg["clients"])
    by_name = {v: k for k, v in names.items()}
    node_names = sorted(by_name, key=_name_key)
    model = task.build_model(cfg)
    arrays = ArrayRecord(model.state_dict())
    strategy = build_strategy(cfg)
    if hasattr(strategy, "bind_nodes"):
        strategy.bind_nodes(names)
    test_sets = task.test_data(cfg)
    verifier = _auth_setup(cfg, node_names, flower_run_id)
    qkd = _qkd_setup(cfg)
    broker = None
    if cfg["broker"]["policy"] != "off":
        from fedqnn.network.broker import Broker

        broker = Broker.from_config(cfg["broker"], node_names, cfg["seed"])
    planner = None
    if kind_of(cfg) != "data":  # partitions (issue 9): rank, Bell-pair accounting, placement, monitor
        from fedqnn.partitions.federated import PartitionPlanner

        planner = PartitionPlanner(cfg, node_names, broker)
    from clients.byzantine import Adversary

    adversary = Adversary(cfg, node_names)
    if adversary.nodes:
        log(INFO, "fedqnn: Byzantine nodes (%s): %s", cfg["attack"], ", ".join(adversary.nodes))
    writer = RunWriter(cfg["out"], task.metric, task.direction)
    cfg_text = json.dumps(client_config(cfg), sort_keys=True)
    history: list[float] = []
    first_round = 1
    if resume:
        ck, torch_rng, strategy_blob = checkpoint.load(cfg["out"])
        checkpoint.check_same_run(ck.config, cfg)
        checkpoint.truncate_metrics(cfg["out"], ck)
        arrays = ck.arrays
        if broker is not None and ck.broker is not None:
            broker.load_state_dict(ck.broker)
        if verifier is not None and ck.verifier is not None:
            verifier.load_state_dict(ck.verifier)
        if qkd is not None and ck.qkd is not None:
            qkd.load_state_dict(ck.qkd)
        adversary._history = dict(ck.adversary)
        checkpoint.load_strategy_state(strategy, ck.strategy, strategy_blob)
        checkpoint.set_rng_state(ck.rng, torch_rng)
        first_round = ck.round + 1
        if planner is not None:  # the rank rule's history and the monitor, from the rows kept
            from fedqnn.results import read_metrics

            planner.replay(read_metrics(cfg["out"]), task.metric, task.direction)
        log(INFO, "fedqnn: resuming %s after round %s of %s", cfg["out"], ck.round, cfg["rounds"])
    else:
        writer.reset(0)
    save_state = lambda rnd: checkpoint.save(  # noqa: E731
        cfg["out"], rnd, cfg, arrays, broker=broker, verifier=verifier,
        adversary_history=adversary._history, strategy=strategy, qkd=qkd)
    save_state(first_round - 1)

    for server_round in range(first_round, cfg["rounds"] + 1):
        t0 = time.perf_counter()
        random.seed(derive_seed(cfg["seed"], "python-random", server_round))
        eligible = broker.eligible(server_round) if broker is not None else node_names
        selected = _select(cfg, eligible, server_round) if eligible else []
        unserved: list[str] = []
        qkd_events: list[dict[str, str]] = []
        if broker is not None:
            if broker.cfg["policy"] == "oracle" and server_round < cfg["rounds"]:
                nxt = _select(cfg, node_names, server_round + 1)  # the oracle is told future demand
                broker.announce(server_round + 1, {n: broker.cfg["pairs_per_node"] for n in nxt})
            key_demand = None
            if qkd is not None:  # fixed per-round key demand of every node whose next key is not ready
                key_demand = {n: cfg["qkd"]["pairs_per_round"] for n in node_names if qkd.demand(n, server_round)}
            svc = broker.serve_round(server_round, selected, broker.cfg["pairs_per_node"], extra_demand=key_demand,
                                     drain=adversary.drain_requests())
            if qkd is not None:
                for n, (count, bell) in svc.key_pairs.items():
                    qkd.deposit(n, count, bell)
                qkd_events = qkd.step(server_round, node_names)
                for ev in qkd_events:
                    log(INFO, "fedqnn: round %s: the key exchange of %s aborted (QBER too high); its update "
                        "falls back to the signature", server_round, ev["node"])
                qkd.sync_verifier(verifier)
            served = set(svc.served_nodes)
            unserved = [n for n in selected if n not in served]
            selected = [n for n in selected if n in served]
        messages = list(
            strategy.configure_train(
                server_round, arrays, ConfigRecord({"server-round": server_round}),
                SelectedGrid(grid, [by_name[n] for n in selected]),  # type: ignore[arg-type]
            )
        ) if selected else []
        plan = planner.plan(server_round, selected) if planner is not None else None
        run_record = ConfigRecord({"config": cfg_text, "server-round": server_round,
                                   **(plan.record if plan is not None else {})})
        messages = [_personalise(m, {CONFIG_RECORD: run_record}) for m in messages]
        if verifier is not None:
            from fedqnn.security.flower_glue import add_auth_config

            for m in messages:
                node = names[m.metadata.dst_node_id]
                add_auth_config(verifier, m.content, server_round, node,
                                qkd_public=qkd.public_config(node) if qkd is not None else None)
        timeout = cfg["faults"]["reply_timeout"] or None
        replies = list(grid.send_and_receive(messages, timeout=timeout)) if messages else []
        replies = sorted(replies, key=lambda m: _name_key(names.get(m.metadata.src_node_id, "?")))
        attack_events: list[dict[str, str]] = []
        if adversary.active:  # simulation: colluding Byzantine nodes rewrite and re-sign their replies
            unavailable = adversary.rewrite(
                server_round, arrays,
                [(names.get(m.metadata.src_node_id, "?"), m) for m in replies],
                {names[m.metadata.dst_node_id]: m for m in messages},
            )
            for node, why in unavailable:  # e.g. too few honest replies left (dropouts, outages)
                log(INFO, "fedqnn: round %s: the attack of %s could not be crafted (%s); its reply is sent as "
                    "trained", server_round, node, why)
            attack_events = [{"node": n, "event": "attack-unavailable"} for n, _ in unavailable]
        failed = [names.get(m.metadata.src_node_id, str(m.metadata.src_node_id)) for m in replies if m.has_error()]
        answered = {m.metadata.src_node_id for m in replies}
        failed += [names[m.metadata.dst_node_id] for m in messages if m.metadata.dst_node_id not in answered]
        failed = sorted(set(failed), key=_name_key)
        ok, rejected = _verify(verifier, cfg, arrays, server_round, names, [m for m in replies if not m.has_error()])
        row: dict[str, Any] = {
            "round": server_round, "strategy": cfg["strategy"], "num_participants": len(ok) + len(rejected),
            "train_loss": None, "eval": None, "rejected": rejected, "wall_s": None,
        }
        events = [{"node": n, "event": "no-reply"} for n in failed]
        events += [{"node": n, "event": "bell-unserved"} for n in unserved]
        events += attack_events + qkd_events
        if events:
            row["events"] = events
        skipped = None
        if len(ok) < cfg["min_replies"]:
            skipped = _skip_reason(len(ok), cfg, failed, unserved, len(rejected))
        else:
            try:
                new_arrays, _ = strategy.aggregate_train(server_round, ok)
            except PreconditionError as exc:
                new_arrays, skipped = None, f"precondition: {exc}"
            if new_arrays is None and skipped is None:
                skipped = "strategy returned no aggregate"
            if new_arrays is not None:
                arrays = new_arrays
                row["train_loss"] = _weighted_train_loss(ok)
            report = strategy.round_report(server_round) if hasattr(strategy, "round_report") else {}
            for key in ("weights", "stamps"):
                if key in report:
                    row[key] = report[key]
            row["rejected"] += report.get("rejected", [])
        if skipped:
            row["skipped"] = skipped
        if server_round % cfg["server_eval_every"] == 0 or server_round == cfg["rounds"]:
            model.load_state_dict(arrays.to_torch_state_dict())
            if plan is not None:
                apply_round(model, plan.record)
            row["eval"] = task.evaluate(model, test_sets)
            history.append(row["eval"][task.metric])
        if broker is not None:
            if row["rejected"]:
                broker.charge_rejected(server_round, sorted({r["node"] for r in row["rejected"]}, key=_name_key))
            row["bell"] = broker.round_record(server_round)
            if plan is not None:  # extension: the partition's pairs, accounted analytically
                row["bell"]["partition_requested"] = plan.row["pairs_total"]
        if plan is not None:
            row["partition"] = plan.row
            row.update(rows_from_metrics(m.content["metrics"] for m in ok))  # schmidt_rank, schmidt_bound
            adjustments = planner.observe(row, task.metric, task.direction)
            if adjustments:
                row["partition"]["adjustments"] = adjustments
        row["wall_s"] = round(time.perf_counter() - t0, 4)
        writer.append(row)
        save_state(server_round)  # after the row is on disk: a kill in between redoes the round
        if cfg["progress"]:
            metric = (row["eval"] or {}).get(task.metric)
            shown = f"{task.metric}={metric:.4f}" if metric is not None else ""
            note = f"  SKIPPED: {skipped}" if skipped else ""
            print(
                f"[fedqnn] round {server_round}/{cfg['rounds']}  {shown}  "
                f"participants={len(ok)}  {row['wall_s']:.1f}s{note}",
                flush=True,
            )
    extra: dict[str, Any] = {}
    if broker is not None:
        extra["regime"] = broker.regime()
        extra["bell"] = broker.totals()
    if planner is not None:
        from fedqnn.results import read_metrics

        prows = [r["partition"] for r in read_metrics(cfg["out"]) if r.get("partition")]
        extra["partition"] = {"pairs_total": sum(int(r["pairs_total"]) for r in prows),
                              "simulated_s": round(sum(float(r["round_s"]) for r in prows), 3)}
    summary = writer.summarize(cfg, extra)
    return summary


def _verify(verifier, cfg, arrays, server_round, names, replies):
    """Authenticate and validate each reply; returns (accepted, rejected rows). Never raises."""
    from fedqnn.security.flower_glue import check_reply

    spec = _spec(cfg, arrays)
    ok, rejected = [], []
    for m in replies:
        name = names.get(m.metadata.src_node_id)
        if name is None:
            rejected.append({"node": str(m.metadata.src_node_id), "reason": "unknown-key"})
            continue
        good, reason = check_reply(verifier, m.content, name, server_round, spec)
        if good:
            ok.append(m)
        else:
            log(INFO, "fedqnn: rejected the update of %s in round %s: %s", name, server_round, reason)
            rejected.append({"node": name, "reason": str(reason)})
    return ok, rejected


def make_server_app(cfg: dict[str, Any], resume: bool = False) -> ServerApp:
    """A ServerApp bound to an already validated config (used by ``fedqnn run``)."""
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        run_server(grid, cfg, resume=resume)

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry for ``flwr run .``: the config comes from ``[tool.flwr.app.config]`` / ``--run-config``."""
    try:
        cfg = build_config(dict(context.run_config))
    except ConfigError as exc:
        log(INFO, "fedqnn: bad config: %s", exc)
        raise
    run_server(grid, cfg, flower_run_id=context.run_id)
