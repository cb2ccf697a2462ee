"""End to end on Flower's Simulation Engine (each run starts Ray: ~10-25 s)."""

import json
import textwrap

import pytest

import fedqnn

pytestmark = pytest.mark.slow

BASE = {
    "clients": 3, "rounds": 3, "min_replies": 2, "seed": 5,
    "model.device": "torch", "train.epochs": 3, "train.lr": 0.03,
    "data.samples_per_client": 32, "data.test_samples": 50, "progress": False,
    "strategy": "fedavg", "attack": "none", "broker.policy": "off",
}
ROW_KEYS = {"round", "strategy", "num_participants", "train_loss", "wall_s", "eval", "rejected"}


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_run_completes_improves_and_repeats_exactly(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = fedqnn.run({**BASE, "out": str(a)})
    fedqnn.run({**BASE, "out": str(b)})
    rows = _rows(a)
    assert [r["round"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["num_participants"] == 3 and r["strategy"] == "fedavg" and r["rejected"] == []
        assert set(r["eval"]) >= {"rel_l2", "rel_l2_hires", "loss"}
    assert rows[-1]["eval"]["rel_l2"] < rows[0]["eval"]["rel_l2"]
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in _rows(b)]
    s = json.loads((a / "summary.json").read_text())
    assert s == {k: v for k, v in summary.items() if k != "process_wall_s"}
    assert s["metrics"]["rel_l2"]["direction"] == "min"
    assert s["metrics"]["rel_l2"]["final"] == rows[-1]["eval"]["rel_l2"]
    assert (a / "metrics.png").stat().st_size > 1000


def test_strategy_from_outside_the_repo_by_module_class(tmp_path, monkeypatch):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "my_strategy.py").write_text(textwrap.dedent('''
        from flwr.serverapp.strategy import FedAvg

        class HalfStep(FedAvg):
            """FedAvg that counts its aggregations (a user's own strategy)."""
            calls = 0

            def aggregate_train(self, server_round, replies):
                type(self).calls += 1
                return super().aggregate_train(server_round, replies)
    '''))
    monkeypatch.syspath_prepend(str(pkg))
    out = tmp_path / "plug-run"
    fedqnn.run({**BASE, "rounds": 2, "strategy": "my_strategy:HalfStep", "out": str(out)})
    import my_strategy

    assert my_strategy.HalfStep.calls == 2
    rows = _rows(out)
    assert [r["strategy"] for r in rows] == ["my_strategy:HalfStep"] * 2


BELL_KEYS = {"generated", "used_raw", "expired", "wasted", "stored", "key_pairs", "requested", "delivered",
             "served", "utilization", "mean_consumed_fidelity"}


def test_default_physics_run_follows_the_contract(tmp_path):
    """CEAS + heterogeneous noise + broker + signed updates + 20% ALIE (the defaults)."""
    out = tmp_path / "default"
    summary = fedqnn.run({"clients": 5, "rounds": 3, "min_replies": 2, "seed": 2, "train.epochs": 1,
                          "data.samples_per_client": 32, "data.test_samples": 50, "progress": False,
                          "out": str(out)})
    rows = _rows(out)
    assert summary["config"]["strategy"] == "ceas" and summary["config"]["attack"] == "alie"
    gen = used = exp = waste = 0
    for r in rows:
        assert r["strategy"] == "ceas"
        if not r.get("skipped"):
            assert abs(sum(r["weights"].values()) - 1) < 1e-9
            assert set(r["weights"]) == set(r["stamps"])
            assert all(k.startswith("node-") for k in r["weights"])
        assert isinstance(r["rejected"], list)
        for rej in r["rejected"]:
            assert rej["node"].startswith("node-") and rej["reason"]
        assert set(r["bell"]) == BELL_KEYS
        gen += r["bell"]["generated"]
        used += r["bell"]["used_raw"]
        exp += r["bell"]["expired"]
        waste += r["bell"]["wasted"]
    # every raw pair ends in exactly one of used_raw, expired, wasted or stored
    assert gen == used + exp + waste + rows[-1]["bell"]["stored"]
    assert set(summary["regime"]) == {"R", "rho", "F_min"}
