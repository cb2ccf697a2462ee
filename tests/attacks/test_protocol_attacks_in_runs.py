"""Protocol-level attacks through the real round loop and ClientApp (in-process, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config, rows


@pytest.mark.parametrize("attack,reason", [("replay", "replay"), ("impersonation", "impersonation")])
def test_protocol_attacks_are_rejected_every_round_with_their_reason(tmp_path: Path, attack: str, reason: str) -> None:
    cfg = config(tmp_path / attack, rounds=4, attack=attack, byzantine_fraction=0.25, strategy="fedavg",
                 **{"faults.dropout": 0.0, "broker.policy": "off"})
    run_server(LocalGrid(cfg["clients"]), cfg)
    out = rows(tmp_path / attack)
    first = 2 if attack == "replay" else 1  # a replay needs an accepted earlier payload
    for r in out:
        reasons = {x["reason"] for x in r["rejected"]}
        if r["round"] >= first:
            assert reasons == {reason}, (r["round"], r["rejected"])
        else:
            assert reasons == set()
        assert not r.get("skipped")


def test_bell_drain_runs_with_honest_updates_and_books_what_it_drained(tmp_path: Path) -> None:
    cfg = config(tmp_path / "drain", rounds=3, attack="bell-drain", byzantine_fraction=0.4, strategy="fedavg",
                 drain_pairs=30, **{"faults.dropout": 0.0})
    run_server(LocalGrid(cfg["clients"]), cfg)
    out = rows(tmp_path / "drain")
    assert sum(r["bell"]["drained"] for r in out) > 0
    for r in out:
        assert r["rejected"] == []  # the updates stay honest: nothing to reject
        assert r["bell"]["delivered"] <= r["bell"]["requested"]


def test_bell_drain_needs_the_broker(tmp_path: Path) -> None:
    from fedqnn.config import ConfigError

    with pytest.raises(ConfigError, match="bell-drain"):
        config(tmp_path, attack="bell-drain", **{"broker.policy": "off"})


def test_a_mixture_gives_each_byzantine_node_its_own_attack(tmp_path: Path) -> None:
    from clients.byzantine import attack_of

    cfg = config(tmp_path / "mix", rounds=3, attack="replay+bell-drain", byzantine_fraction=0.4, strategy="fedavg",
                 drain_pairs=30, **{"faults.dropout": 0.0})
    names = [f"node-{i}" for i in range(cfg["clients"])]
    by_node = attack_of(cfg, names)
    assert sorted(by_node.values()) == ["bell-drain", "replay"]
    replayer = next(n for n, a in by_node.items() if a == "replay")
    run_server(LocalGrid(cfg["clients"]), cfg)
    out = rows(tmp_path / "mix")
    assert sum(r["bell"]["drained"] for r in out) > 0  # the drainer drains
    for r in out:  # only the replaying node is rejected, from its second round on
        assert {(x["node"], x["reason"]) for x in r["rejected"]} <= {(replayer, "replay")}
    assert any(r["rejected"] for r in out[1:])


@pytest.mark.parametrize("attack", ["alie+nope", "none+alie", "alie+"])
def test_a_bad_mixture_names_the_field(tmp_path: Path, attack: str) -> None:
    from fedqnn.config import ConfigError

    with pytest.raises(ConfigError, match="attack: expected one of"):
        config(tmp_path, attack=attack)
