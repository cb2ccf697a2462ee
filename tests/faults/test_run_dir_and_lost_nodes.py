"""An existing run directory is never silently overwritten; a deployment run resumes from its
checkpoint as a new Flower run; a lost node's Flower error is booked on that node (issue 18).

In-process (:class:`LocalGrid`, the real ClientApp) for the deployment entry
``fedqnn.server_app.main``; the Simulation Engine is not started (``flwr.simulation.run_simulation``
is replaced where a test only needs to see that a run would start).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, Error, Message, RecordDict

from fedqnn import server_app, simulation
from fedqnn.cli import main as cli_main
from fedqnn.config import ConfigError, build_config, flatten
from fedqnn.security import keys
from tests.faults.helpers import SMALL, LocalGrid, config, rows, strip_timing

DEP = {**SMALL, "clients": 3, "rounds": 3, "min_replies": 1, "strategy": "fedavg", "byzantine_fraction": 0.0, "attack": "none",
       "broker.policy": "off"}  # as in a deployment: no simulated adversary or quantum network
TAMPERED = "node-2"


def _context(run_id: int, run_config: dict[str, Any]) -> Context:
    return Context(run_id=run_id, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)


class DeploymentGrid(LocalGrid):
    """Three nodes; node-2 signs with a key outside the registry (a tampered update); optionally
    the server side dies after ``die_after`` rounds (the discovery query is call 1)."""

    def __init__(self, key_dir: Path, first_id: int, die_after: int | None = None) -> None:
        super().__init__(3, first_id=first_id)
        pid = int(TAMPERED.split("-")[1])
        self.contexts[self.ids[pid]].node_config["auth-key"] = str(key_dir / f"{TAMPERED}.key")
        self.calls, self.die_after = 0, die_after

    def send_and_receive(self, messages, timeout=None) -> list[Message]:
        self.calls += 1
        if self.die_after is not None and self.calls == self.die_after + 2:
            raise KeyboardInterrupt("the SuperLink was killed")
        return super().send_and_receive(messages, timeout)


def _run_config(out: Path, rounds: int = DEP["rounds"], **controls: Any) -> dict[str, Any]:
    """What Flower hands the ServerApp: every key flat (the staged app declares them all), plus
    the run controls."""
    return {**flatten(build_config({**DEP, "out": str(out), "rounds": rounds})), **controls}


def test_deployment_resume_continues_the_fedqnn_run_and_still_verifies(tmp_path: Path) -> None:
    """Killed after round 1; the same run config again is refused (rows and checkpoint kept);
    with resume=true a new Flower run (other run id, other node ids) finishes it, equal to an
    uninterrupted run, and still rejects the tampered node's updates and only those."""
    assert keys.write_node_keys([TAMPERED], tmp_path / "wrong")  # a key the registry does not hold
    full, out = tmp_path / "full", tmp_path / "dep"
    server_app.main(DeploymentGrid(tmp_path / "wrong", 9001), _context(77, _run_config(full)))
    with pytest.raises(KeyboardInterrupt):
        server_app.main(DeploymentGrid(tmp_path / "wrong", 9001, die_after=1), _context(77, _run_config(out)))
    before = {p: (out / p).read_bytes() for p in ("metrics.jsonl", "checkpoint/state.zip")}
    assert [r["round"] for r in rows(out)] == [1]

    with pytest.raises(ConfigError, match="already holds a run.*resume=true.*overwrite=true"):
        server_app.main(DeploymentGrid(tmp_path / "wrong", 5001), _context(78, _run_config(out)))
    assert {p: (out / p).read_bytes() for p in before} == before  # nothing truncated or replaced

    server_app.main(DeploymentGrid(tmp_path / "wrong", 5001), _context(79, _run_config(out, resume=True)))
    got, want = rows(out), rows(full)
    assert (out / "metrics.jsonl").read_bytes().startswith(before["metrics.jsonl"])
    assert [strip_timing(r) for r in got] == [strip_timing(r) for r in want]
    for r in got:
        assert r["rejected"] == [{"node": TAMPERED, "reason": "bad-signature"}], r
        assert "skipped" not in r


def test_deployment_overwrite_starts_over_and_bad_controls_are_refused(tmp_path: Path) -> None:
    keys.write_node_keys([TAMPERED], tmp_path / "wrong")
    out = tmp_path / "dep"
    server_app.main(DeploymentGrid(tmp_path / "wrong", 9001), _context(1, _run_config(out, rounds=1)))
    server_app.main(DeploymentGrid(tmp_path / "wrong", 9001), _context(2, _run_config(out, rounds=2, overwrite=True)))
    assert [r["round"] for r in rows(out)] == [1, 2]
    for bad, match in (({"resume": True, "overwrite": True}, "not both"), ({"resume": "yes"}, "true or false")):
        with pytest.raises(ConfigError, match=match):
            server_app.main(LocalGrid(3), _context(3, _run_config(out, **bad)))


def test_staged_app_declares_the_run_controls(tmp_path: Path) -> None:
    from fedqnn import deploy

    app = deploy.stage_app(tmp_path / "app")
    assert deploy.missing_declarations(app / "pyproject.toml", ["resume", "overwrite"]) == []


# ------------------------------------------------------------------------------ simulation / CLI
@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the Simulation Engine: record that a run would start, start nothing."""
    import flwr.simulation

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(flwr.simulation, "run_simulation", lambda **kw: calls.append(kw))
    return calls


def test_cli_refuses_an_existing_run_dir_unless_overwrite(tmp_path: Path, started: list[dict[str, Any]],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["run", "--clients", "3", "--rounds", "1", "--seed", "3", "--out", str(out)]
    with pytest.raises(RuntimeError, match="did not complete"):  # fresh dir: it starts (fake engine)
        cli_main(argv)
    assert len(started) == 1
    server_app.run_server(LocalGrid(3), config(out, clients=3, rounds=1, min_replies=1))
    before = (out / "metrics.jsonl").read_bytes()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds a run (metrics.jsonl, checkpoint/state.zip)" in err and "--overwrite" in err
    assert len(started) == 1 and (out / "metrics.jsonl").read_bytes() == before
    with pytest.raises(RuntimeError, match="did not complete"):
        cli_main([*argv, "--overwrite"])
    assert len(started) == 2
    with pytest.raises(SystemExit):  # argparse: not allowed with each other
        cli_main([*argv, "--overwrite", "--resume", str(out)])
    # only metrics.jsonl, or only a checkpoint, is a run too
    (out / "checkpoint" / "state.zip").unlink()
    with pytest.raises(ConfigError, match="already holds a run"):
        simulation.run_simulation_from_config(config(out, clients=3, rounds=1), validated=True)


# ------------------------------------------------------------------------------ lost nodes
class LostNodeGrid(LocalGrid):
    """In round 1 node-2's SuperNode is gone: Flower answers its instruction itself, from node 1."""

    def send_and_receive(self, messages, timeout=None) -> list[Message]:
        msgs = list(messages)
        if "fedqnn" not in msgs[0].content:  # the discovery query
            return super().send_and_receive(msgs, timeout)
        lost = self.ids[2]
        replies = super().send_and_receive([m for m in msgs if m.metadata.dst_node_id != lost], timeout)
        for m in msgs:
            if m.metadata.dst_node_id == lost:
                m.metadata.__dict__["_message_id"] = "lost-instruction"
                err = Message(Error(code=3, reason="Error: Node Unavailable - no heartbeat"), reply_to=m)
                err.metadata.__dict__["_src_node_id"] = 1  # Flower's SuperLink node id
                replies.append(err)
        return replies


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_lost_nodes_flower_error_is_booked_on_that_node_with_flowers_reason(tmp_path: Path) -> None:
    records, flwr_log = _Records(), logging.getLogger("flwr")
    level = flwr_log.level
    flwr_log.addHandler(records)
    flwr_log.setLevel(logging.INFO)  # fedqnn run sets it to WARNING
    try:
        server_app.run_server(LostNodeGrid(3), config(tmp_path / "run", clients=3, rounds=1, min_replies=1))
    finally:
        flwr_log.removeHandler(records)
        flwr_log.setLevel(level)
    (row,) = rows(tmp_path / "run")
    assert row["events"] == [{"node": "node-2", "event": "no-reply",
                              "reason": "Error: Node Unavailable - no heartbeat"}], row["events"]
    assert row["num_participants"] == 2 and "skipped" not in row
    said = "\n".join(records.lines)
    assert "node-2 (Flower node" in said and "Flower (node 1) reports error 3" in said
    assert "faults.reply_timeout = 0" in said and "about 60 s" in said  # the round waits for Flower


def test_a_nodes_own_error_reply_keeps_the_event_as_it_was(tmp_path: Path) -> None:
    """A dropout (the node answers with an error itself) carries no reason: seeded outputs stay."""
    server_app.run_server(LocalGrid(5), config(tmp_path / "run", rounds=1, **{"faults.dropout": 0.5}))
    events = rows(tmp_path / "run")[0].get("events", [])
    assert events and all(e == {"node": e["node"], "event": "no-reply"} for e in events), events


def test_the_repositorys_app_config_declares_the_run_controls_and_config_layers_drop_them() -> None:
    """`flwr run .` must accept resume=true / overwrite=true; `fedqnn run` and `--config
    pyproject.toml` read the same table as a config layer without them."""
    import tomllib

    from fedqnn.cli_run import _pyproject_layer
    from fedqnn.config import RUN_CONTROLS, load_toml

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    table = tomllib.loads(pyproject.read_text())["tool"]["flwr"]["app"]["config"]
    assert {k: table.get(k) for k in RUN_CONTROLS} == RUN_CONTROLS
    for layer in (_pyproject_layer(pyproject), load_toml(pyproject)):
        assert not set(RUN_CONTROLS) & set(layer) and layer["out"] == table["out"]
        build_config(layer)  # raises on an unknown key
    with pytest.raises(ConfigError):  # the control: the raw table is not a config layer
        build_config(table)
