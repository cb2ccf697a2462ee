"""The fedqnn ``ServerApp``: the round loop.

Data flows one way: config -> server -> (participant selection) -> strategy.configure_train ->
messages -> clients -> replies (sorted by node name) -> verification -> strategy.aggregate_train
-> server-side evaluation -> metrics.

The loop calls the Flower strategy's own hooks, so any ``flwr.serverapp.strategy.Strategy``
plugs in; fedqnn does the parts a research run needs to be exact and auditable: stable node
names (``node-<partition-id>``), seeded uniform participant selection, a fixed reply order, skipped
rounds with a reason instead of crashes, and the outputs of docs/outputs.md.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from logging import ERROR, INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedqnn.config import ConfigError, build_config, split_run_controls
from fedqnn.nodes import node_order, participants_per_round
from fedqnn.plugins import RoundState, RunContext, build_plugins, call
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


def _too_few_nodes(connected: int, expected: int, waited: float) -> str:
    """What to do when fewer nodes than ``clients`` connected (the run stops with this message)."""
    return (f"only {connected} of {expected} nodes connected after {waited:.0f} s (clients = {expected}). "
            f"Flower's local simulation starts 2 SuperNodes unless told: run "
            f"flwr run . --federation-config \"num-supernodes={expected} client-resources-num-cpus=1\" "
            f"(or fewer clients: --run-config clients={max(connected, 1)}); in a deployment, start the missing "
            f"SuperNodes or raise connect_timeout")


def discover_nodes(grid: Grid, expected: int, timeout: float = 30.0,
                   query_timeout: float = 600.0) -> dict[int, str]:
    """Map Flower node ids to ``node-<partition-id>`` by asking each node (a ``query`` message).

    Waits at most ``timeout`` seconds (``connect_timeout``) for ``expected`` nodes, saying so
    every 10 s; fewer raise ``RuntimeError`` with the fix. ``query_timeout`` bounds the identity
    query (the clients' first start)."""
    start = last_note = time.monotonic()
    while len(ids := list(grid.get_node_ids())) < expected:
        now = time.monotonic()
        if now - start > timeout:
            why = _too_few_nodes(len(ids), expected, now - start)
            log(ERROR, "fedqnn: %s", why)
            raise RuntimeError(why)
        if now - last_note >= 10.0:
            last_note = now
            log(INFO, "fedqnn: waiting for nodes: %s of %s connected (%.0f s of connect_timeout=%.0f s)",
                len(ids), expected, now - start, timeout)
        time.sleep(0.5)
    msgs = [
        Message(RecordDict({}), dst_node_id=nid, message_type=MessageType.QUERY)
        for nid in sorted(ids)
    ]
    names: dict[int, str] = {}
    for reply in grid.send_and_receive(msgs, timeout=query_timeout):
        if reply.has_error():
            log(WARNING, "fedqnn: node %s did not identify itself: %s", reply.metadata.src_node_id,
                reply.error.reason)
            continue
        pid = int(reply.content["identity"]["partition-id"])
        names[reply.metadata.src_node_id] = f"node-{pid}"
    dup = len(names) - len(set(names.values()))
    if dup:
        raise RuntimeError("two nodes claim the same partition-id: check each SuperNode's --node-config")
    return names


def _select(cfg: dict[str, Any], eligible: list[str], server_round: int) -> list[str]:
    """Uniform sample of round(fraction_train x eligible) nodes (at least 1), from the stream (seed,
    'select', round); eligible is every node unless a plugin filters (demand is fixed).

    Selection never depends on what nodes report (stamps, losses): a node cannot raise its own
    chance of taking part.
    """
    k = participants_per_round(cfg["fraction_train"], len(eligible))
    pick = rng(cfg["seed"], "select", server_round).choice(len(eligible), size=k, replace=False)
    return sorted((eligible[i] for i in pick), key=node_order)


def _weighted_train_loss(replies: Iterable[Message]) -> float | None:
    num = den = 0.0
    for m in replies:
        rec = m.content["metrics"]
        n = float(rec.get("num-examples", 0))
        if "train_loss" in rec:
            num += n * float(rec["train_loss"])
            den += n
    return num / den if den else None


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


def _skip_reason(n_ok: int, cfg: dict[str, Any], failed: list[str], dropped: dict[str, list[str]],
                 n_rejected: int) -> str:
    parts = [f"{len(failed)} no-reply"] if failed else []
    parts += [f"{len(nodes)} {event}" for event, nodes in dropped.items()]
    parts += [f"{n_rejected} rejected"] if n_rejected else []
    why = f" ({', '.join(parts)})" if parts else ""
    return f"{n_ok} valid replies < min_replies={cfg['min_replies']}{why}"


@dataclass
class _Server:
    """What the round loop keeps across rounds (the plugins keep the rest)."""

    grid: Grid
    run: RunContext
    by_name: dict[str, int]
    model: Any
    arrays: ArrayRecord
    strategy: Any
    test_sets: Any
    writer: RunWriter
    cfg_text: str

    @property
    def cfg(self) -> dict[str, Any]:
        return self.run.cfg


def run_server(
    grid: Grid, cfg: dict[str, Any], flower_run_id: int | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run ``cfg['rounds']`` rounds on ``grid`` and write the outputs to ``cfg['out']``.

    The subsystems (broker, QKD, partition planner, adversary, verifier, progress and the
    config's ``plugins``) take part through :mod:`fedqnn.plugins` hooks. A checkpoint is written
    before round 1 and after every round (:mod:`fedqnn.checkpoint`); with ``resume`` the run
    continues from the checkpoint in ``cfg['out']`` (its config must equal ``cfg`` but for
    ``rounds``), with ``metrics.jsonl`` cut back to the checkpointed round.
    """
    srv = _start(grid, cfg, flower_run_id, resume)
    first_round = _restore(srv) if resume else 1
    if not resume:
        srv.writer.reset(0)
    _save(srv, first_round - 1)
    for server_round in range(first_round, cfg["rounds"] + 1):
        _round(srv, server_round)
    extra: dict[str, Any] = {}
    call(srv.run.plugins, "run_end", srv.run, extra)
    summary = srv.writer.summarize(cfg, extra)
    call(srv.run.plugins, "teardown", srv.run, summary)
    return summary


def _start(grid: Grid, cfg: dict[str, Any], flower_run_id: int | None, resume: bool) -> _Server:
    """Discover the nodes, build the model, strategy and plugins; call every plugin's ``setup``."""
    import torch

    from strategies.registry import build_strategy

    torch.set_num_threads(max(1, cfg["train"]["threads"]))
    task = get_task(cfg["task"])
    random.seed(derive_seed(cfg["seed"], "python-random"))
    names = discover_nodes(grid, cfg["clients"], timeout=cfg["connect_timeout"])
    by_name = {v: k for k, v in names.items()}
    node_names = sorted(by_name, key=node_order)
    model = task.build_model(cfg)
    strategy = build_strategy(cfg)
    if hasattr(strategy, "bind_nodes"):
        strategy.bind_nodes(names)
    run = RunContext(cfg, task, node_names, names, select=lambda e, r: _select(cfg, e, r),
                     flower_run_id=flower_run_id, resume=resume)
    srv = _Server(grid, run, by_name, model, ArrayRecord(model.state_dict()), strategy, task.test_data(cfg),
                  RunWriter(cfg["out"], task.metric, task.direction), json.dumps(client_config(cfg), sort_keys=True))
    run.plugins = build_plugins(cfg)
    call(run.plugins, "setup", run)
    _say_reply_timeout(cfg)
    return srv


def _say_reply_timeout(cfg: dict[str, Any]) -> None:
    from flwr.common.constant import HEARTBEAT_DEFAULT_INTERVAL, HEARTBEAT_PATIENCE

    if cfg["faults"]["reply_timeout"]:
        log(INFO, "fedqnn: a round waits at most faults.reply_timeout = %s s for its replies",
            cfg["faults"]["reply_timeout"])
        return
    log(INFO, "fedqnn: faults.reply_timeout = 0: every round waits for all its replies; a round with a lost "
        "SuperNode waits until Flower declares the node unavailable (no heartbeat within %s x %s s, about "
        "%s s by default) and goes on without it; set faults.reply_timeout to bound the wait",
        HEARTBEAT_PATIENCE, HEARTBEAT_DEFAULT_INTERVAL, HEARTBEAT_PATIENCE * HEARTBEAT_DEFAULT_INTERVAL)


def _restore(srv: _Server) -> int:
    """Load the checkpoint in ``cfg['out']`` into the server and every plugin; the next round."""
    from fedqnn import checkpoint

    cfg = srv.cfg
    ck, torch_rng, strategy_blob = checkpoint.load(cfg["out"])
    checkpoint.check_same_run(ck.config, cfg)
    checkpoint.truncate_metrics(cfg["out"], ck)
    srv.arrays = ck.arrays
    checkpoint.load_plugin_states(srv.run.plugins, ck.plugins)
    checkpoint.load_strategy_state(srv.strategy, ck.strategy, strategy_blob)
    checkpoint.set_rng_state(ck.rng, torch_rng)
    call(srv.run.plugins, "on_resume", srv.run)
    log(INFO, "fedqnn: resuming %s after round %s of %s", cfg["out"], ck.round, cfg["rounds"])
    return ck.round + 1


def _save(srv: _Server, server_round: int) -> None:
    from fedqnn import checkpoint

    checkpoint.save(srv.cfg["out"], server_round, srv.cfg, srv.arrays, strategy=srv.strategy,
                    plugins=checkpoint.plugin_states(srv.run.plugins))


def _round(srv: _Server, server_round: int) -> None:
    """One round: the pipeline of ``docs/architecture.md``; the row is written, then checkpointed."""
    t0 = time.perf_counter()
    cfg, plugins = srv.cfg, srv.run.plugins
    random.seed(derive_seed(cfg["seed"], "python-random", server_round))
    state = RoundState(server_round, srv.arrays)
    eligible = srv.run.node_names
    for p in plugins:
        eligible = p.filter_eligible(state, eligible)
    state.selected = _select(cfg, eligible, server_round) if eligible else []
    call(plugins, "round_start", state)
    state.messages = _instructions(srv, state)
    call(plugins, "before_send", state)
    timeout = cfg["faults"]["reply_timeout"] or None
    replies = list(srv.grid.send_and_receive(state.messages, timeout=timeout)) if state.messages else []
    state.replies = sorted(replies, key=lambda m: node_order(srv.run.names.get(m.metadata.src_node_id, "?")))
    call(plugins, "after_replies", state)
    failed, reasons = _failed(srv, state)
    state.ok, state.rejected = _verify(srv.run.services.get("verifier"), cfg, srv.arrays, server_round,
                                       srv.run.names, [m for m in state.replies if not m.has_error()])
    row = _aggregate(srv, state, failed, reasons)
    if server_round % cfg["server_eval_every"] == 0 or server_round == cfg["rounds"]:
        srv.model.load_state_dict(srv.arrays.to_torch_state_dict())
        call(plugins, "before_eval", state, srv.model)
        row["eval"] = srv.run.task.evaluate(srv.model, srv.test_sets)
    call(plugins, "on_record", state, row)
    row["wall_s"] = round(time.perf_counter() - t0, 4)
    srv.writer.append(row)
    _save(srv, server_round)  # after the row is on disk: a kill in between redoes the round
    call(plugins, "round_end", state, row)


def _instructions(srv: _Server, state: RoundState) -> list[Message]:
    """The strategy's train instructions for the selected nodes, each with the run record."""
    if not state.selected:
        return []
    messages = srv.strategy.configure_train(
        state.round, srv.arrays, ConfigRecord({"server-round": state.round}),
        SelectedGrid(srv.grid, [srv.by_name[n] for n in state.selected]),  # type: ignore[arg-type]
    )
    record = ConfigRecord({"config": srv.cfg_text, "server-round": state.round, **state.broadcast})
    return [_personalise(m, {CONFIG_RECORD: record}) for m in messages]


def _failed(srv: _Server, state: RoundState) -> tuple[list[str], dict[str, str]]:
    """Nodes whose instruction got an error reply or none, in node order, and Flower's reason for
    each error that Flower sent on a node's behalf (a lost node's error comes from the SuperLink,
    node id 1: a reply is mapped back to its node through the instruction it answers)."""
    names, cfg = srv.run.names, srv.cfg
    sent = {m.metadata.message_id: m.metadata.dst_node_id for m in state.messages if m.metadata.message_id}

    def about(reply: Message) -> int:  # the node whose instruction this reply answers
        return sent.get(reply.metadata.reply_to_message_id, reply.metadata.src_node_id)

    failed, reasons = [], {}
    for m in state.replies:
        if not m.has_error():
            continue
        node = about(m)
        name = names.get(node, str(node))
        failed.append(name)
        by = "the node" if m.metadata.src_node_id == node else f"Flower (node {m.metadata.src_node_id})"
        log(INFO, "fedqnn: round %s: %s (Flower node %s) failed: %s reports error %s: %s", state.round, name,
            node, by, m.error.code, m.error.reason)
        if m.metadata.src_node_id != node and m.error.reason:
            reasons[name] = str(m.error.reason)
    answered = {about(m) for m in state.replies}
    for m in state.messages:
        if m.metadata.dst_node_id not in answered:
            failed.append(names[m.metadata.dst_node_id])
            log(INFO, "fedqnn: round %s: %s sent no reply within faults.reply_timeout = %s s", state.round,
                names[m.metadata.dst_node_id], cfg["faults"]["reply_timeout"])
    return sorted(set(failed), key=node_order), reasons


def _aggregate(srv: _Server, state: RoundState, failed: list[str], reasons: dict[str, str]) -> dict[str, Any]:
    """The round's row so far: aggregate the accepted replies (or say why the round is skipped)."""
    from strategies.errors import PreconditionError

    cfg, ok = srv.cfg, state.ok
    row: dict[str, Any] = {
        "round": state.round, "strategy": cfg["strategy"], "num_participants": len(ok) + len(state.rejected),
        "train_loss": None, "eval": None, "rejected": state.rejected, "wall_s": None,
    }
    events = state.row_events(srv.run.plugins, failed, reasons)
    if events:
        row["events"] = events
    if len(ok) < cfg["min_replies"]:
        row["skipped"] = _skip_reason(len(ok), cfg, failed, state.dropped, len(state.rejected))
        return row
    skipped = None
    try:
        new_arrays, _ = srv.strategy.aggregate_train(state.round, ok)
    except PreconditionError as exc:
        new_arrays, skipped = None, f"precondition: {exc}"
    if new_arrays is None and skipped is None:
        skipped = "strategy returned no aggregate"
    if new_arrays is not None:
        srv.arrays = new_arrays
        row["train_loss"] = _weighted_train_loss(ok)
    report = srv.strategy.round_report(state.round) if hasattr(srv.strategy, "round_report") else {}
    for key in ("weights", "stamps"):
        if key in report:
            row[key] = report[key]
    row["rejected"] += report.get("rejected", [])
    if skipped:
        row["skipped"] = skipped
    return row


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
    """Entry for ``flwr run``: the config comes from ``[tool.flwr.app.config]`` / ``--run-config``,
    less the run controls ``resume`` and ``overwrite`` (:data:`fedqnn.config.RUN_CONTROLS`)."""
    from fedqnn.results import all_skipped, refuse_existing_run
    from strategies.config import check_preconditions

    try:
        layer, controls = split_run_controls(dict(context.run_config))
        cfg = build_config(layer)
        check_preconditions(cfg)  # as fedqnn run: a rule that can aggregate no round stops here
        if not (controls["resume"] or controls["overwrite"]):
            refuse_existing_run(cfg["out"], "the same run config plus resume=true",
                                "overwrite=true (after copying the old run away if it matters)")
    except ConfigError as exc:
        log(ERROR, "fedqnn: refusing the run: %s", exc)
        raise
    if controls["resume"]:
        log(INFO, "fedqnn: Flower run %s resumes the fedqnn run in %s", context.run_id, cfg["out"])
    run_server(grid, cfg, flower_run_id=context.run_id, resume=controls["resume"])
    if failed := all_skipped(cfg["out"]):  # the run is finished:failed, not a success with no model
        log(ERROR, "fedqnn: FAILED: %s", failed)
        raise RuntimeError(failed)
