"""The fedqnn app on Flower's Deployment Engine, on loopback.

A real SuperLink (``fedqnn superlink``: Flower's SuperLink, Fleet API on one loopback port,
Control and Runtime APIs on another) with TLS (CA and server certificate from ``fedqnn keys ca``)
and SuperNode authentication, three registered ``flower-supernode``s (distinct ports), two rounds
of the fedqnn app launched with ``flwr run``. ``node-2``'s client signs its updates with a key
that is not in the server's registry (a tampered update: ``bad-signature``), so each round
aggregates the two honest replies. A fourth SuperNode, never registered, must be refused.

The run is judged by ``flwr list --run-id ID --format json`` (``finished:completed``), not by
``flwr run``'s exit code. Every process the module starts, and every process started under its
private ``FLWR_HOME`` (the SuperExecs the SuperLink and SuperNodes spawn; a local SuperLink if
``flwr`` ever started one), is stopped by PID at the end.

Measured on a loaded 2-core machine: ~2.5-3 min, most of it the ``flwr-clientapp`` process that
each SuperNode starts per message (imports torch and PennyLane).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fedqnn import deploy
from fedqnn.cli import main as fedqnn_main
from fedqnn.config import flatten, validate

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FLWR = str(BIN / "flwr")
CONNECTION = "fedqnn-loopback"
NODES = 3
TAMPERED = 2  # node-2 signs with a key the registry does not hold
ROUNDS = 2

# generous: two cores shared with other jobs; a SuperNode starts a process per message
T_START = 180.0      # a SuperLink to listen, the refused SuperNode to exit
T_CLI = 180.0        # one `flwr` command
T_RUN = 1200.0       # the whole run


# ---------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    offset: int = 0  # where this process's part of the log starts (a restarted one appends)

    def text(self) -> str:
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode(errors="replace")


@dataclass
class Cluster:
    root: Path
    home: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec NS` for the flwr CLI

    def start(self, name: str, cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Proc:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as fh:  # a restarted process appends to its log
            popen = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env or self.env,
                                     cwd=cwd or self.root, start_new_session=True)
        proc = Proc(name, popen, log, offset)
        self.procs.append(proc)
        return proc

    def flwr(self, *args: str, timeout: float = T_CLI) -> subprocess.CompletedProcess[str]:
        cmd = [*self.prefix, FLWR, *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.root,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"`flwr {' '.join(args)}` did not return in {timeout:.0f} s\n"
                                 + self.report()) from exc
        self.notes.append(f"$ flwr {' '.join(args)}  -> exit {res.returncode}\n{res.stdout[-3000:]}"
                          f"{res.stderr[-3000:]}")
        return res

    def flwr_json(self, *args: str, timeout: float = T_CLI) -> dict[str, Any]:
        res = self.flwr(*args, "--format", "json", timeout=timeout)
        try:
            return json.loads(res.stdout[res.stdout.index("{"):])
        except ValueError as exc:
            raise AssertionError(f"`flwr {' '.join(args)}` printed no JSON\n" + self.report()) from exc

    def report(self, tail: int = 60) -> str:
        parts = ["", "=" * 30 + " deployment logs " + "=" * 30]
        for p in self.procs:
            lines = p.log.read_text(errors="replace").splitlines() if p.log.exists() else []
            parts.append(f"--- {p.name} (pid {p.popen.pid}, exit {p.popen.poll()}), "
                         f"last {tail} of {len(lines)} lines of {p.log}:")
            parts += lines[-tail:]
        parts.append("--- flwr commands:")
        parts += self.notes[-8:]
        return "\n".join(parts)

    def stop_all(self) -> None:
        """SIGTERM our processes, then every process started under our FLWR_HOME; SIGKILL stragglers."""
        roots = [p.popen for p in self.procs if p.popen.poll() is None]
        for p in roots:
            _signal(p.pid, signal.SIGTERM)
        _wait_all(roots, 20.0)
        spawned = _pids_with_env("FLWR_HOME", str(self.home))
        for pid in spawned:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline and any(_alive(pid) for pid in spawned):
            time.sleep(0.3)
        for pid in spawned:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        for p in roots:
            if p.poll() is None:
                _signal(p.pid, signal.SIGKILL)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


REPO = Path(__file__).resolve().parents[2]


def run_env(home: Path) -> dict[str, str]:
    """:func:`fedqnn.deploy.flwr_env` with this repository importable (``fedqnn superlink`` runs
    as ``python -m fedqnn.superlink``)."""
    env = deploy.flwr_env(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_all(popens: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in popens:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def _pids_with_env(key: str, value: str) -> list[int]:
    """PIDs (not ours) whose environment has key=value: the processes started under our FLWR_HOME."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in env:
            found.append(int(entry.name))
    return found


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_log(cluster: Cluster, proc: Proc, text: str, timeout: float) -> None:
    """Wait until ``text`` is in ``proc``'s log (a SuperLink: "self-check passed")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}\n" + cluster.report())
        if text in proc.text():
            return
        time.sleep(0.5)
    raise AssertionError(f"{proc.name}: no {text!r} after {timeout:.0f} s\n" + cluster.report())


READY = "self-check passed"  # fedqnn superlink: listening, TLS on 127.0.0.1 fine, Control API not on the Fleet address


def _wait_run(cluster: Cluster, connection: str, run_id: str, timeout: float = 1200.0) -> str:
    """The run's final status (``flwr list`` JSON); a run stuck in ``pending`` fails loudly."""
    def status() -> str | None:
        return deploy.run_status(cluster.flwr_json("list", connection, "--run-id", run_id), run_id)

    try:
        return deploy.wait_for_run(status, timeout=timeout, pending_timeout=180.0)
    except TimeoutError as exc:
        logs = cluster.flwr("log", run_id, connection, "--show", timeout=T_CLI)
        raise AssertionError(f"run {run_id}: {exc}\nServerApp log:\n{logs.stdout[-6000:]}" + cluster.report()) from exc


# ---------------------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    cluster: Cluster
    run_id: str
    status: str
    out: Path
    registered_ids: set[str]
    refused: Proc
    nodes_after: list[dict[str, Any]]


def _run_overrides(out: Path, registry: Path) -> dict[str, Any]:
    values: dict[str, Any] = {
        "clients": NODES, "rounds": ROUNDS, "min_replies": 2, "seed": 3, "strategy": "fedavg",
        "data.samples_per_client": 16, "data.test_samples": 20, "train.epochs": 1,
        "out": str(out), "security.registry": str(registry),
    }
    defaults = flatten(validate({}))
    # neither the simulated adversary nor the simulated quantum network is under test here
    # (an unserved node would drop out of a round and the round could fall below min_replies)
    for key, off in (("byzantine_fraction", 0.0), ("attack", "none"), ("broker.policy", "off")):
        if key in defaults:
            values[key] = off
    return values


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    home = root / "flwr-home"
    cluster = Cluster(root, home, run_env(home))
    keys, wrong, out = root / "keys", root / "wrong-keys", root / "out"
    try:
        # keys: CA + server cert, node Ed25519 keys + registry, SuperNode ECDSA keys (4: one unregistered)
        assert fedqnn_main(["keys", "ca", "--out", str(keys), "--san", "127.0.0.1,localhost"]) == 0
        assert fedqnn_main(["keys", "node", "--count", str(NODES), "--out", str(keys)]) == 0
        assert fedqnn_main(["keys", "supernode", "--out", str(keys), "--count", str(NODES + 1)]) == 0
        assert fedqnn_main(["keys", "node", "--names", f"node-{TAMPERED}", "--out", str(wrong)]) == 0
        app = deploy.stage_app(root / "app")

        control_port, fleet_port, *node_ports = _free_ports(NODES + 3)
        address = f"127.0.0.1:{fleet_port}"  # the SuperNodes' Fleet API; the flwr CLI uses control_port
        link = cluster.start("superlink", deploy.superlink_command(
            ca_cert=keys / "ca.crt", server_cert=keys / "server.pem", server_key=keys / "server.key",
            fleet_address=address, control_port=control_port))
        deploy.add_connection(home, CONNECTION, f"127.0.0.1:{control_port}", keys / "ca.crt")
        _wait_log(cluster, link, READY, T_START)

        with ThreadPoolExecutor(NODES) as pool:
            regs = list(pool.map(
                lambda i: cluster.flwr_json("supernode", "register", str(keys / f"supernode-{i}.pub"), CONNECTION),
                range(NODES)))
        for i, reg in enumerate(regs):
            assert reg.get("success"), f"registering supernode-{i} failed: {reg}" + cluster.report()
        registered = {str(r["node-id"]) for r in regs}

        for i in range(NODES):
            node_key = (wrong if i == TAMPERED else keys) / f"node-{i}.key"
            cluster.start(f"supernode-{i}", deploy.supernode_command(
                superlink=address, ca_cert=keys / "ca.crt", auth_private_key=keys / f"supernode-{i}",
                port=node_ports[i], node_config=deploy.node_config_arg(i, NODES, node_key),
                exe=str(BIN / "flower-supernode")))
        refused = cluster.start("unregistered-supernode", deploy.supernode_command(
            superlink=address, ca_cert=keys / "ca.crt", auth_private_key=keys / f"supernode-{NODES}",
            port=node_ports[NODES], node_config=deploy.node_config_arg(NODES, NODES + 1, keys / "node-0.key"),
            exe=str(BIN / "flower-supernode")))

        # the ServerApp waits for `clients` nodes itself, so the run can be submitted at once
        overrides = _run_overrides(out, keys / "registry.json")
        missing = deploy.missing_declarations(app / "pyproject.toml", list(overrides))
        assert not missing, f"the staged app does not declare {missing}: flwr would refuse the run"
        sub = cluster.flwr_json("run", str(app), CONNECTION, "--run-config", deploy.run_config_arg(overrides))
        assert sub.get("success") and sub.get("run-id"), (
            f"flwr run did not start the run: {sub.get('error-message', sub)}" + cluster.report())
        run_id = str(sub["run-id"])

        status = _wait_run(cluster, CONNECTION, run_id, T_RUN)
        if status != deploy.COMPLETED:
            logs = cluster.flwr("log", run_id, CONNECTION, "--show", timeout=T_CLI)
            raise AssertionError(f"run {run_id}: status {status!r} (want {deploy.COMPLETED!r})\n"
                                 f"ServerApp log:\n{logs.stdout[-6000:]}" + cluster.report())

        try:
            refused.popen.wait(timeout=T_START)
        except subprocess.TimeoutExpired:
            pass
        nodes = cluster.flwr_json("supernode", "list", CONNECTION).get("nodes", [])
        yield Deployment(cluster, run_id, status, out, registered, refused, nodes)
    finally:
        cluster.stop_all()


# ---------------------------------------------------------------------------- checks


def _rows(out: Path) -> list[dict[str, Any]]:
    path = out / "metrics.jsonl"
    assert path.is_file(), f"{path} was not written"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_rounds_complete_and_write_metrics(deployment: Deployment) -> None:
    assert deployment.status == deploy.COMPLETED
    rows = _rows(deployment.out)
    assert [r["round"] for r in rows] == list(range(1, ROUNDS + 1)), rows
    for r in rows:
        assert "skipped" not in r, f"round {r['round']} skipped: {r.get('skipped')}"
        assert r["eval"] and "rel_l2" in r["eval"], r
        assert r["train_loss"] is not None
    assert (deployment.out / "summary.json").is_file()


def test_tampered_update_is_rejected_and_honest_ones_kept(deployment: Deployment) -> None:
    for r in _rows(deployment.out):
        by_node = {x["node"]: x["reason"] for x in r["rejected"]}
        assert by_node.get(f"node-{TAMPERED}") in ("bad-signature", "unknown-key"), (
            f"round {r['round']}: the update signed with a key outside the registry was not rejected: "
            f"{r['rejected']}")
        assert set(by_node) == {f"node-{TAMPERED}"}, f"honest nodes rejected: {r['rejected']}"
        assert r["num_participants"] == NODES  # 2 accepted + 1 rejected; node-3 never joined


def test_unregistered_supernode_is_refused(deployment: Deployment) -> None:
    refused = deployment.refused
    text = refused.log.read_text(errors="replace")
    assert refused.popen.returncode not in (None, 0), (
        f"the unregistered SuperNode still runs or exited 0 (exit {refused.popen.returncode}):\n{text[-3000:]}")
    # the SuperLink knows exactly the three registered nodes, all online
    ids = {str(n["node-id"]) for n in deployment.nodes_after}
    assert ids == deployment.registered_ids, deployment.nodes_after
    assert all(n.get("status") == "online" for n in deployment.nodes_after), deployment.nodes_after


def test_staged_app_declares_every_scalar_config_key(tmp_path: Path) -> None:
    """flwr 1.42 refuses a --run-config key the app's config table does not declare."""
    from flwr.common.config import flatten_dict, fuse_dicts, parse_config_args

    app = deploy.stage_app(tmp_path / "app")
    scalar = [k for k, v in flatten(validate({})).items()
              if isinstance(v, bool | int | float | str) and k not in deploy.DERIVED]
    assert "security.registry" in scalar and "data.test_samples" in scalar
    assert deploy.missing_declarations(app / "pyproject.toml", scalar) == []
    overrides = _run_overrides(tmp_path / "out", tmp_path / "registry.json")
    import tomllib

    declared = flatten_dict(tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])
    parsed = parse_config_args([deploy.run_config_arg(overrides)])
    assert parsed == {k: v for k, v in overrides.items()}
    fused = fuse_dicts(declared, parsed, check_keys=True)  # what the SuperLink does on `flwr run`
    assert fused["security.registry"] == str(tmp_path / "registry.json")
    assert "federations" not in tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]


def test_declaring_every_key_changes_no_default() -> None:
    """Flower passes every declared key to the ServerApp: the declared defaults must be inert,
    also for defaults that follow other keys (broker.participation follows fraction_train)."""
    from fedqnn.config import build_config

    declared = deploy.declared_config({})
    assert build_config(declared) == validate({})
    assert build_config(declared, {"fraction_train": 0.5}) == validate({"fraction_train": 0.5})
