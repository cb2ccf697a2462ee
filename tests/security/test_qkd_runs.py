"""auth=qkd end to end on Flower's Simulation Engine: key pairs come from the broker, keys are
established and MAC the envelopes, and low-fidelity pairs abort into signature fallback."""

from __future__ import annotations

import json

import pytest

import fedqnn
from clients.byzantine import byzantine_nodes
from fedqnn import checkpoint

pytestmark = pytest.mark.slow

BASE = {
    "clients": 5, "rounds": 3, "min_replies": 2, "seed": 3, "train.epochs": 1,
    "data.samples_per_client": 32, "data.test_samples": 50, "progress": False,
    "byzantine_fraction": 0.2, "attack": "alie", "auth": "qkd",
}


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_qkd_run_spends_key_pairs_establishes_keys_and_accepts_honest_updates(tmp_path):
    out = tmp_path / "qkd"
    fedqnn.run({**BASE, "broker.F0": 0.99, "broker.F_min": 0.95, "qkd.pairs_per_round": 12000,
                "out": str(out)})
    rows = _rows(out)
    assert all(r["bell"]["key_pairs"] > 0 for r in rows[:1])
    assert sum(r["bell"]["key_pairs"] for r in rows) > 0
    ck, _, _ = checkpoint.load(out)
    keyed = set(ck.plugins["verifier"]["qkd"])  # nodes whose replies must carry a valid HMAC
    assert keyed and keyed == {n for n, k in ck.plugins["qkd"]["keys"].items() if k["key"]}
    byz = set(byzantine_nodes(ck.config, [f"node-{i}" for i in range(5)]))
    assert len(byz) == 1  # ceil(0.2 x 5)
    for r in rows:
        assert not r.get("skipped")
        assert {x["node"] for x in r["rejected"]} <= byz  # honest keyed replies pass the MAC check
        assert not any(e["event"] == "qkd-abort" for e in r.get("events", []))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["bell"]["key_pairs"] == sum(r["bell"]["key_pairs"] for r in rows)


def test_low_fidelity_pairs_abort_and_updates_fall_back_to_signatures(tmp_path):
    out = tmp_path / "qkd-low"
    fedqnn.run({**BASE, "broker.F0": 0.9, "broker.F_min": 0.8, "qkd.pairs_per_round": 3000,
                "out": str(out)})
    rows = _rows(out)
    ck, _, _ = checkpoint.load(out)
    byz = set(byzantine_nodes(ck.config, [f"node-{i}" for i in range(5)]))
    aborts = [e["node"] for r in rows for e in r.get("events", []) if e["event"] == "qkd-abort"]
    assert aborts  # QBER of pairs at F ~ 0.85 is ~10%: above the threshold with its margin
    for r in rows:
        assert not r.get("skipped")
        assert {x["node"] for x in r["rejected"]} <= byz  # an abort is not a rejection
        assert r["num_participants"] >= 2
    assert not ck.plugins["verifier"]["qkd"]  # no key survived: every update was checked by signature alone


def test_signed_runs_spend_no_key_pairs(tmp_path):
    out = tmp_path / "signed"
    fedqnn.run({**BASE, "auth": "signed", "rounds": 2, "out": str(out)})
    assert all(r["bell"]["key_pairs"] == 0 for r in _rows(out))
