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
