"""The server-side adversary with a mixture: one node's attack failing does not stop the others."""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from clients.byzantine import Adversary


def _reply(dst: int, vec: torch.Tensor) -> Message:
    instr = Message(RecordDict({"config": ConfigRecord({"server-round": 1})}), dst_node_id=dst, message_type="train")
    content = RecordDict({"arrays": ArrayRecord({"w": vec.clone()}), "metrics": MetricRecord({"num-examples": 8})})
    return Message(content, reply_to=instr), instr


def test_a_failing_attack_leaves_the_others_running() -> None:
    names = [f"node-{i}" for i in range(4)]
    cfg = {"seed": 3, "attack": "fang-median+alie", "byzantine_fraction": 0.5}
    adv = Adversary(cfg, names)
    assert sorted(adv.by_node.values()) == ["alie", "fang-median"]
    fang = next(n for n, a in adv.by_node.items() if a == "fang-median")
    alie = next(n for n, a in adv.by_node.items() if a == "alie")
    honest = next(n for n in names if n not in adv.by_node)  # the other honest node dropped out
    global_w = ArrayRecord({"w": torch.zeros(6)})
    pairs = {n: _reply(i, torch.full((6,), 0.1 * (i + 1))) for i, n in enumerate([fang, alie, honest])}
    before = {n: r.content["arrays"].to_torch_state_dict()["w"].clone() for n, (r, _) in pairs.items()}
    failed = adv.rewrite(1, global_w, [(n, r) for n, (r, _) in pairs.items()], {n: i for n, (_, i) in pairs.items()})
    after = {n: r.content["arrays"].to_torch_state_dict()["w"] for n, (r, _) in pairs.items()}
    assert [n for n, _ in failed] == [alie] and "alie" in failed[0][1]  # ALIE needs >= 2 honest updates
    assert torch.equal(after[alie], before[alie])  # sent as trained
    assert not torch.equal(after[fang], before[fang])  # Fang's median attack still went out
    assert torch.equal(after[honest], before[honest])


def test_adversary_state_dict_round_trips_the_replay_history() -> None:
    cfg = {"attack": "replay", "byzantine_fraction": 0.5, "seed": 3, "drain_pairs": 0}
    adv = Adversary(cfg, [f"node-{i}" for i in range(4)])
    assert adv.state_dict() == {}
    content = RecordDict({"metrics": MetricRecord({"num-examples": 1})})
    adv._history[adv.nodes[0]] = content
    state = adv.state_dict()
    assert state == {adv.nodes[0]: content} and state[adv.nodes[0]] is content  # the checkpointed shape
    fresh = Adversary(cfg, [f"node-{i}" for i in range(4)])
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    state.clear()  # a copy, not the adversary's own dict
    assert fresh.state_dict() == {adv.nodes[0]: content}
