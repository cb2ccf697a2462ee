"""``fedqnn broker sim`` and ``fedqnn broker mdp`` (issue 17 item 4): the records they print."""

from __future__ import annotations

import json

import pytest

from fedqnn.cli import main
from fedqnn.network.config import BROKER_FIELDS


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_sim_prints_one_record_per_policy_R_seed(capsys: pytest.CaptureFixture[str]) -> None:
    recs = _json(capsys, ["broker", "sim", "--nodes", "8", "--rounds", "3", "--seeds", "1,2", "--policies",
                          "default,jit,full", "--R", "3,10", "--set", "broker.capacity=1", "--json"])
    assert len(recs) == 3 * 2 * 2
    assert {(r["policy"], r["R"], r["seed"]) for r in recs} == {
        (p, R, s) for p in ("default", "jit", "full") for R in (3.0, 10.0) for s in (1, 2)}
    for r in recs:
        assert 0.0 <= r["utilization"] <= 1.0 and 0.0 <= r["served"] <= 1.0
        assert r["mean_consumed_fidelity"] >= 0.8 - 1e-9  # F_min
        assert r["R_measured"] == pytest.approx(r["R"], rel=1e-3)
    assert {r["resolved"] for r in recs if r["policy"] == "default"} == {BROKER_FIELDS["policy"].default}
    # the --set override reached the broker: a different capacity gives different runs
    other = _json(capsys, ["broker", "sim", "--nodes", "8", "--rounds", "3", "--seeds", "1", "--policies",
                           "full", "--R", "10", "--json"])
    mine = [r for r in recs if r["policy"] == "full" and r["R"] == 10.0 and r["seed"] == 1]
    key = ("utilization", "served", "mean_consumed_fidelity")
    assert tuple(other[0][k] for k in key) != tuple(mine[0][k] for k in key)


def test_sim_names_a_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker", "sim", "--nodes", "4", "--rounds", "1", "--seeds", "1", "--set", "broker.capacty=4"]) == 2
    assert "broker.capacty" in capsys.readouterr().err


def test_mdp_prints_optimal_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    (rec,) = _json(capsys, ["broker", "mdp", "--instances", "link-R3-C8-q4", "--policies", "jit", "--json"])
    assert rec["instance"] == "link-R3-C8-q4" and rec["policy"] == BROKER_FIELDS["policy"].default
    assert rec["optimal"] >= rec["default"] - 1e-9 and rec["optimal"] >= rec["policies"]["jit"]["reward"]
    assert rec["gap"] == pytest.approx((rec["optimal"] - rec["default"]) / rec["optimal"])
    assert main(["broker", "mdp", "--instances", "nosuch"]) == 2
