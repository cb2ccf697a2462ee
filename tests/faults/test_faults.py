"""Checkpoints, resume, dropouts, link failures and calibration files, in-process (no Ray).

The round loop (``run_server``) and the real ClientApp run against :class:`LocalGrid`; the
Simulation Engine version with a killed server is in ``test_resume_killed.py``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Message

from fedqnn import checkpoint
from fedqnn.cli import main as cli_main
from fedqnn.config import ConfigError, build_config
from fedqnn.faults import drops_out
from fedqnn.noise import calibration_for, load_calibration_file
from fedqnn.server_app import client_config, run_server
from tests.faults.helpers import LocalGrid, config, rows, strip_summary, strip_timing


class CrashingGrid(LocalGrid):
    """Dies in the middle of round ``crash_round`` (after some clients replied), like a killed server."""

    def __init__(self, num_nodes: int, crash_round: int) -> None:
        super().__init__(num_nodes, first_id=501)  # other Flower node ids than the first run's
        self.calls, self.crash_round = 0, crash_round

    def send_and_receive(self, messages, timeout=None) -> list[Message]:
        self.calls += 1  # call 1 is the discovery query, call r + 1 is round r
        msgs = list(messages)
        if self.calls == self.crash_round + 1:
            super().send_and_receive(msgs[:2], timeout)
            raise KeyboardInterrupt("server killed mid-round")
        return super().send_and_receive(msgs, timeout)


def _run(cfg: dict[str, Any], grid: LocalGrid | None = None, resume: bool = False) -> dict[str, Any]:
    return run_server(grid or LocalGrid(cfg["clients"]), cfg, resume=resume)


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("attack", ["replay", "alie"])
def test_resume_after_crash_equals_uninterrupted_run(tmp_path: Path, attack: str) -> None:
    """Crash in round 3 of 4, resume: rows byte for byte and summary equal but for timing.

    With ``replay`` the adversary's history crosses the crash; dropouts and the broker (with
    outages) are on, so their states and seeded coins must survive too."""
    extra = {"rounds": 4, "attack": attack, "faults.dropout": 0.2, "broker.outage_prob": 0.2}
    full = _run(config(tmp_path / "full", **extra))
    cfg = config(tmp_path / "crashed", **extra)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, CrashingGrid(cfg["clients"], crash_round=3))
    before = (tmp_path / "crashed" / "metrics.jsonl").read_bytes()
    assert [r["round"] for r in rows(tmp_path / "crashed")] == [1, 2]
    # a kill between a row's append and its checkpoint leaves a row (or half of one) too many
    with (tmp_path / "crashed" / "metrics.jsonl").open("a") as fh:
        fh.write('{"round": 3, "partial')
    resumed = _run(checkpoint.config_for_resume(tmp_path / "crashed"), LocalGrid(cfg["clients"], 77), resume=True)
    after = (tmp_path / "crashed" / "metrics.jsonl").read_bytes()
    assert after.startswith(before)
    a, b = rows(tmp_path / "full"), rows(tmp_path / "crashed")
    assert [strip_timing(r) for r in b] == [strip_timing(r) for r in a]
    assert strip_summary(resumed) == strip_summary(full)
    if attack == "replay":
        assert any(x["reason"] == "replay" for r in a for x in r["rejected"])


def test_resume_raises_the_total_and_finished_runs_extend(tmp_path: Path) -> None:
    full = _run(config(tmp_path / "full", rounds=4))
    _run(config(tmp_path / "short", rounds=2))
    assert checkpoint.load(tmp_path / "short")[0].round == 2
    resumed = _run(checkpoint.config_for_resume(tmp_path / "short", rounds=4), resume=True)
    assert [strip_timing(r) for r in rows(tmp_path / "short")] == [strip_timing(r) for r in rows(tmp_path / "full")]
    assert strip_summary(resumed) == strip_summary(full)
    assert resumed["config"]["rounds"] == 4


def test_resume_refuses_edited_metrics_and_other_configs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(out, rounds=1)
    _run(cfg)
    with pytest.raises(checkpoint.CheckpointError, match="different config"):
        _run(config(out, rounds=2, seed=4), resume=True)
    text = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text(text.replace('"round": 1', '"round": 7'))
    with pytest.raises(checkpoint.CheckpointError, match="edited or replaced"):
        _run(config(out, rounds=2), resume=True)
    with pytest.raises(ConfigError, match="rounds: expected >= 1"):
        checkpoint.config_for_resume(out, rounds=0)


def test_checkpoint_is_replaced_atomically_and_holds_the_state(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(config(out, rounds=2, attack="replay", **{"broker.outage_prob": 0.3}))
    ck, torch_rng, blob = checkpoint.load(out)
    assert ck.round == 2 and blob is None and torch_rng
    assert ck.metrics_bytes == (out / "metrics.jsonl").stat().st_size
    assert ck.plugins["broker"]["rounds_done"] == 2
    assert ck.plugins["verifier"]["accepted"]
    assert set(ck.plugins["adversary"]) == {"node-3"} and "arrays" in ck.plugins["adversary"]["node-3"]
    assert ck.strategy == {"kind": "none"}
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["state.zip"]  # no temp files left


def test_cli_resume_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--resume", str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    out = tmp_path / "run"
    _run(config(out, rounds=1))
    assert cli_main(["run", "--resume", str(out), "--set", "train.lr=0.1"]) == 2
    assert "--config and --set" in capsys.readouterr().err
    assert cli_main(["run", "--resume", str(out), "--seed", "9"]) == 2
    assert "--seed 9 differs" in capsys.readouterr().err
    assert cli_main(["run", "--resume", str(out), "--rounds", "3", "--seed", "3", "--print-config"]) == 0
    printed = tomllib.loads(capsys.readouterr().out)["fedqnn"]
    assert printed["rounds"] == 3 and printed["seed"] == 3 and printed["out"] == str(out)


# ------------------------------------------------------------------------------ dropouts
def test_dropout_coins_are_seeded_per_round_and_node() -> None:
    cfg = build_config({"faults.dropout": 0.2, "seed": 1})
    coins = [drops_out(cfg, r, f"node-{i}") for r in range(1, 101) for i in range(10)]
    assert coins == [drops_out(cfg, r, f"node-{i}") for r in range(1, 101) for i in range(10)]
    assert 150 <= sum(coins) <= 250  # Binomial(1000, 0.2): mean 200, sd 12.6
    assert not any(drops_out(build_config({}), r, "node-0") for r in range(1, 50))


def test_twenty_percent_dropout_rounds_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(out, clients=10, rounds=3, attack="none", **{"faults.dropout": 0.2, "broker.policy": "off"})
    grid = LocalGrid(10)
    summary = _run(cfg, grid)
    got = rows(out)
    assert [r["round"] for r in got] == [1, 2, 3] and summary["rounds_skipped"] == 0
    dropped = 0
    for r in got:
        expected = sorted(f"node-{i}" for i in range(10) if drops_out(cfg, r["round"], f"node-{i}"))
        assert sorted(e["node"] for e in r.get("events", [])) == expected
        assert all(e["event"] == "no-reply" for e in r.get("events", []))
        assert r["num_participants"] == 10 - len(expected)
        assert set(r["weights"]) == {f"node-{i}" for i in range(10)} - set(expected)
        assert r["eval"]["rel_l2"] is not None
        dropped += len(expected)
    assert dropped > 0
    # the dropped nodes really sent Flower error replies (the path of a crashed ClientApp)
    assert len(grid.sent) == 1 * 10 + 3 * 10  # discovery + every selected node every round


def test_round_below_min_replies_is_skipped_with_a_reason(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(out, clients=4, rounds=4, min_replies=4, attack="none", strategy="fedavg",
                 **{"faults.dropout": 0.3, "broker.policy": "off"})
    summary = _run(cfg)
    got = rows(out)
    skipped = [r for r in got if r.get("skipped")]
    assert skipped and len(got) == 4 and summary["rounds_skipped"] == len(skipped)
    for r in skipped:
        n = len(r["events"])
        assert r["skipped"] == f"{4 - n} valid replies < min_replies=4 ({n} no-reply)"
        assert r["train_loss"] is None and r["eval"]["rel_l2"] is not None  # the model is kept, still evaluated
    assert len(skipped) < 4 or summary["metrics"]["rel_l2"]["final"] == got[0]["eval"]["rel_l2"]


# ------------------------------------------------------------------------------ link failures
def test_link_failures_skip_or_shrink_rounds_never_crash(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(out, clients=5, rounds=5, min_replies=3, attack="none",
                 **{"broker.outage_prob": 0.6, "broker.outage_recovery": 0.3})
    summary = _run(cfg)
    got = rows(out)
    assert [r["round"] for r in got] == [1, 2, 3, 4, 5]
    unserved = [e for r in got for e in r.get("events", []) if e["event"] == "bell-unserved"]
    assert unserved, "with links down 2/3 of the time some selected nodes must go unserved"
    for r in got:
        n_unserved = sum(e["event"] == "bell-unserved" for e in r.get("events", []))
        assert r["num_participants"] + n_unserved <= 5
        if r.get("skipped"):
            assert r["skipped"].startswith(f"{r['num_participants'] - len(r['rejected'])} valid replies < min_replies=3")
        else:
            assert r["num_participants"] >= 3
    assert summary["rounds_completed"] == 5 and summary["totals"]["bell"]["rounds"] == 5


# ------------------------------------------------------------------------------ calibration file
def test_calibration_file_json_and_toml(tmp_path: Path) -> None:
    j = tmp_path / "cal.json"
    j.write_text(json.dumps({"node-0": {"p": 0.01, "r": 0.02, "shots": 256}, "1": {"p": 0.03}}))
    t = tmp_path / "cal.toml"
    t.write_text('[nodes.node-0]\np = 0.01\nr = 0.02\nshots = 256\n[nodes.1]\np = 0.03\n')
    assert load_calibration_file(j) == load_calibration_file(t)
    for path in (j, t):
        cfg = build_config({"qpu.calibration_file": str(path), "qpu.nodes": {"node-1": {"shots": 64}}})
        base = build_config({})
        assert calibration_for(cfg, "node-0").to_dict() == {"p": 0.01, "r": 0.02, "shots": 256}
        c1, b1 = calibration_for(cfg, "node-1"), calibration_for(base, "node-1")
        assert (c1.p, c1.r, c1.shots) == (0.03, b1.r, 64)  # file over the profile, qpu.nodes over the file
        assert calibration_for(cfg, "node-2") == calibration_for(base, "node-2")  # not in the file: profile
        # the clients get the record inline and need no file
        sent = client_config(cfg)
        assert sent["qpu"]["calibration_file"] == ""
        for n in ("node-0", "node-1", "node-2"):
            assert calibration_for(sent, n) == calibration_for(cfg, n)


@pytest.mark.parametrize(("text", "match"), [
    ('{"node-0": {"p": 0.9}}', r"node-0\]\.p: expected a number in \[0.0, 0.75\]"),
    ('{"node-0": {"q": 0.1}}', "unknown key"),
    ('{"node-0": {"shots": 1.5}}', "shots: expected an integer"),
    ('[1, 2]', "must map node names"),
    ("{not json", "not valid JSON"),
])
def test_bad_calibration_files_are_named(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_calibration_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_calibration_file(tmp_path / "missing.toml")


def test_run_uses_the_calibration_file_on_both_sides(tmp_path: Path) -> None:
    cal = tmp_path / "qpus.json"
    cal.write_text(json.dumps({f"node-{i}": {"p": 0.0, "r": 0.0, "shots": 0} for i in range(5)}))
    out = tmp_path / "run"
    _run(config(out, rounds=1, attack="none", **{"qpu.calibration_file": str(cal)}))
    r = rows(out)[0]
    assert len(set(r["stamps"].values())) == 1  # identical noiseless records: identical stamps
    plain = tmp_path / "plain"
    _run(config(plain, rounds=1, attack="none"))
    assert len(set(rows(plain)[0]["stamps"].values())) > 1
