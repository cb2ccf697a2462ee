"""The fedqnn deployment across "machines": network namespaces on a private subnet (issue 18).

One namespace per machine, joined by veth pairs to a bridge in the SuperLink's namespace
(``10.77.0.0/24``; nothing touches the host's own network): the SuperLink (``fedqnn superlink``,
Fleet API on ``10.77.0.1:9092``, Control and Runtime APIs on its own ``127.0.0.1:9093``, and the
``flwr`` CLI next to it, as over an SSH tunnel), three SuperNodes and an outsider. Every machine
gets a directory holding only its own key files, as ``docs/deployment.md`` says to copy them.

Checked, in one 2-round run of the staged app:

* the outsider cannot reach the Control API: ``10.77.0.1:9093`` refuses the connection, the Fleet
  port answers Control paths with 404, and ``flwr supernode register`` from there fails, while
  the same request on the SuperLink's loopback succeeds (the control);
* its SuperNode, with a key nobody registered, is refused and never joins;
* ``node-2`` signs with a key outside the registry: its update is rejected every round, the
  round aggregates the other two;
* the server side (every process in the SuperLink's namespace) is SIGKILLed after round 1's
  checkpoint; the restarted SuperLink (same ``--database``) refuses the same run config again
  (the run fails, ``metrics.jsonl`` is untouched) and, with ``resume=true``, a new Flower run
  finishes the fedqnn run: round 1's row byte for byte, round 2 verified as before.

Skipped, with the reason, without root or a working ``ip netns``. Every process in the
namespaces is killed and every namespace deleted at the end, also on failure (namespaces left
by a killed earlier run of this test are removed at the start).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedqnn import checkpoint, deploy
from fedqnn.cli import main as fedqnn_main
from tests.deployment.test_deployment import (
    BIN,
    FLWR,
    READY,
    Cluster,
    Proc,
    _alive,
    _rows,
    _run_overrides,
    _signal,
    _wait_log,
    _wait_run,
    run_env,
)

pytestmark = pytest.mark.slow

PREFIX = f"fqt{os.getpid()}"  # namespace names: fqt<pid>-<role>; a dead pid marks leftovers
SUBNET = "10.77.0"
LINK_IP = f"{SUBNET}.1"
FLEET_PORT, CONTROL_PORT = 9092, 9093
NODES, TAMPERED, ROUNDS = 3, 2, 2
CONNECTION = "fedqnn"
T_START, T_RUN = 180.0, 900.0


# ---------------------------------------------------------------------------- namespaces
def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _unavailable() -> str | None:
    """Why namespaces cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"{PREFIX}-probe"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "exec", probe, "ip", "link", "add", "br0", "type", "bridge")
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns` does not work here: {getattr(exc, 'stderr', exc)}".strip()
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _ns_pids(ns: str) -> list[int]:
    res = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def _kill_namespace_processes(ns: str, grace: float = 10.0) -> None:
    pids = _ns_pids(ns)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in _ns_pids(ns):
        _signal(pid, signal.SIGKILL)


def _remove_leftovers() -> None:
    """Namespaces of earlier runs of this test whose pytest process is gone."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("fqt") and "-" in name:
            pid = name[3:].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                _kill_namespace_processes(name, grace=1.0)
                _ip("netns", "del", name, check=False)


class Net:
    """A bridge ``br0`` (10.77.0.1/24) in the SuperLink's namespace, one veth to each other one."""

    def __init__(self, roles: list[str]) -> None:
        self.link, self.names, self.created = f"{PREFIX}-link", {}, []
        try:
            self._build(roles)
        except BaseException:
            self.teardown()
            raise

    def _build(self, roles: list[str]) -> None:
        self._add(self.link)
        self._ip_in(self.link, "link", "add", "br0", "type", "bridge")
        self._ip_in(self.link, "addr", "add", f"{LINK_IP}/24", "dev", "br0")
        for dev in ("lo", "br0"):
            self._ip_in(self.link, "link", "set", dev, "up")
        for i, role in enumerate(roles):
            ns = self.names[role] = f"{PREFIX}-{role}"
            self._add(ns)
            self._ip_in(self.link, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip_in(self.link, "link", "set", f"v{i}", "master", "br0", "up")
            self._ip_in(ns, "addr", "add", f"{SUBNET}.{11 + i}/24", "dev", "eth0")
            for dev in ("lo", "eth0"):
                self._ip_in(ns, "link", "set", dev, "up")

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.created.append(ns)

    @staticmethod
    def _ip_in(ns: str, *args: str) -> None:
        _ip("netns", "exec", ns, "ip", *args)

    @staticmethod
    def exec(ns: str, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]

    def teardown(self, grace: float = 10.0) -> None:
        """SIGTERM every process in every namespace at once, SIGKILL what is left after
        ``grace`` s, delete the namespaces (their veths and the bridge go with them)."""
        pids = [p for ns in self.created for p in _ns_pids(ns)]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        for ns in reversed(self.created):
            for pid in _ns_pids(ns):
                _signal(pid, signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        self.created.clear()


# ---------------------------------------------------------------------------- machines
def _machines(root: Path) -> dict[str, Path]:
    """Keys made once (as on the SuperLink machine), then each machine's own files copied to its
    directory: the SuperLink's certificate, key and registry; each SuperNode's CA certificate,
    Flower key and node key (node-2's from outside the registry); the outsider's unregistered
    Flower key."""
    keys, wrong = root / "keys", root / "wrong-keys"
    assert fedqnn_main(["keys", "ca", "--out", str(keys), "--san", LINK_IP]) == 0
    assert fedqnn_main(["keys", "node", "--count", str(NODES), "--out", str(keys)]) == 0
    assert fedqnn_main(["keys", "supernode", "--out", str(keys), "--count", str(NODES + 1)]) == 0
    assert fedqnn_main(["keys", "node", "--names", f"node-{TAMPERED}", "--out", str(wrong)]) == 0
    files = {"link": [keys / n for n in ("ca.crt", "server.pem", "server.key", "registry.json")],
             "admin": [keys / "ca.crt", *(keys / f"supernode-{i}.pub" for i in range(NODES))],
             "outsider": [keys / "ca.crt", keys / f"supernode-{NODES}", keys / f"supernode-{NODES}.pub"]}
    for i in range(NODES):
        files[f"n{i}"] = [keys / "ca.crt", keys / f"supernode-{i}", (wrong if i == TAMPERED else keys) / f"node-{i}.key"]
    dirs = {}
    for machine, paths in files.items():
        d = dirs[machine] = root / machine
        d.mkdir()
        for path in paths:
            shutil.copy2(path, d / path.name)
    return dirs


_PROBE = """
import json, socket, ssl, sys
from fedqnn.superlink import _http_status
ca, host, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
ctx = ssl.create_default_context(cafile=ca)
out = {}
for port in ports:
    try:
        out[f"{port}/v1/control/list-runs"] = _http_status(host, port, "/v1/control/list-runs", ctx, host)
        out[f"{port}/v1/fleet/get-run"] = _http_status(host, port, "/v1/fleet/get-run", ctx, host)
    except OSError as exc:
        out[str(port)] = type(exc).__name__
print(json.dumps(out))
"""


def _probe(cluster: Cluster, ns: str, ca: Path, host: str, *ports: int) -> dict[str, Any]:
    res = subprocess.run(Net.exec(ns, [sys.executable, "-c", _PROBE, str(ca), host, *map(str, ports)]),
                         capture_output=True, text=True, env=cluster.env, timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@dataclass
class Outcome:
    cluster: Cluster
    out: Path
    dirs: dict[str, Path]
    listings: dict[str, list[str]]
    from_outsider: dict[str, Any]
    from_link: dict[str, Any]
    outsider_register: str
    refused: Proc
    nodes: list[dict[str, Any]]
    registered: set[str]
    before_kill: bytes
    refused_run: tuple[str, bytes, str]  # status, metrics.jsonl after it, its ServerApp log
    resumed_status: str
    seconds: dict[str, float]


def _start_superlink(cluster: Cluster, net: Net, link_dir: Path) -> Proc:
    cmd = deploy.superlink_command(ca_cert=link_dir / "ca.crt", server_cert=link_dir / "server.pem",
                                   server_key=link_dir / "server.key", fleet_address=f"{LINK_IP}:{FLEET_PORT}",
                                   control_port=CONTROL_PORT, database=link_dir / "state.db")
    proc = cluster.start("superlink", net.exec(net.link, cmd), cwd=link_dir, env=run_env(link_dir / "flwr-home"))
    _wait_log(cluster, proc, READY, T_START)
    return proc


def _start_supernode(cluster: Cluster, net: Net, machine: str, d: Path, pid: int, node_key: Path) -> Proc:
    cmd = deploy.supernode_command(superlink=f"{LINK_IP}:{FLEET_PORT}", ca_cert=d / "ca.crt",
                                   auth_private_key=next(d.glob("supernode-[0-9]")), port=9094,
                                   node_config=deploy.node_config_arg(pid, NODES, node_key),
                                   exe=str(BIN / "flower-supernode"))
    return cluster.start(machine, net.exec(net.names[machine], cmd), cwd=d, env=run_env(d / "flwr-home"))


def _submit(cluster: Cluster, app: Path, overrides: dict[str, Any]) -> str:
    sub = cluster.flwr_json("run", str(app), CONNECTION, "--run-config", deploy.run_config_arg(overrides))
    assert sub.get("success") and sub.get("run-id"), f"flwr run: {sub}" + cluster.report()
    return str(sub["run-id"])


def _wait_checkpoint(cluster: Cluster, out: Path, server_round: int, timeout: float = T_RUN) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if checkpoint.load(out)[0].round >= server_round:
                return
        except checkpoint.CheckpointError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint of round {server_round} in {out} after {timeout:.0f} s" + cluster.report())


def _kill_server_side(net: Net, link: Proc) -> None:
    """SIGKILL every process of the SuperLink's machine: the launcher, its SuperExec, the ServerApp."""
    for pid in _ns_pids(net.link):
        _signal(pid, signal.SIGKILL)
    link.popen.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _ns_pids(net.link) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ns_pids(net.link), f"still alive on the SuperLink machine: {_ns_pids(net.link)}"


def _outsider_register(cluster: Cluster, d: Path, ns: str) -> str:
    """The attack of issue 18: register one's own SuperNode key through the only port one reaches."""
    home = d / "flwr-home"
    deploy.add_connection(home, "there", f"{LINK_IP}:{FLEET_PORT}", d / "ca.crt")
    res = subprocess.run(Net.exec(ns, [FLWR, "supernode", "register", str(d / f"supernode-{NODES}.pub"), "there",
                                       "--format", "json"]),
                         capture_output=True, text=True, env=run_env(home), cwd=d, timeout=120)
    return f"exit {res.returncode}: {res.stdout[-1500:]}{res.stderr[-1500:]}"


@pytest.fixture(scope="module")
def netns_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    _remove_leftovers()
    t0, seconds = time.monotonic(), {}
    root = tmp_path_factory.mktemp("netns")
    dirs = _machines(root)
    listings = {m: sorted(p.name for p in d.iterdir()) for m, d in dirs.items()}
    net = Net([f"n{i}" for i in range(NODES)] + ["outsider"])  # tears itself down if it fails
    admin_home = dirs["admin"] / "flwr-home"
    cluster = Cluster(root, admin_home, run_env(admin_home), prefix=net.exec(net.link, []))
    try:
        app = deploy.stage_app(root / "app")
        deploy.add_connection(admin_home, CONNECTION, f"127.0.0.1:{CONTROL_PORT}", dirs["admin"] / "ca.crt")
        link = _start_superlink(cluster, net, dirs["link"])
        seconds["superlink up"] = time.monotonic() - t0
        with ThreadPoolExecutor(NODES) as pool:
            regs = list(pool.map(lambda i: cluster.flwr_json(
                "supernode", "register", str(dirs["admin"] / f"supernode-{i}.pub"), CONNECTION), range(NODES)))
        assert all(r.get("success") for r in regs), f"registering failed: {regs}" + cluster.report()
        for i in range(NODES):
            d = dirs[f"n{i}"]
            _start_supernode(cluster, net, f"n{i}", d, i, d / f"node-{i}.key")
        refused = _start_supernode(cluster, net, "outsider", dirs["outsider"], NODES, dirs["outsider"] / "missing.key")
        out = dirs["link"] / "runs" / "dep"
        overrides = _run_overrides(out, dirs["link"] / "registry.json")
        run1 = _submit(cluster, app, overrides)
        from_outsider = _probe(cluster, net.names["outsider"], dirs["outsider"] / "ca.crt", LINK_IP,
                               CONTROL_PORT, FLEET_PORT)
        from_link = _probe(cluster, net.link, dirs["link"] / "ca.crt", "127.0.0.1", CONTROL_PORT)
        registered_by_outsider = _outsider_register(cluster, dirs["outsider"], net.names["outsider"])
        seconds["submitted"] = time.monotonic() - t0

        _wait_checkpoint(cluster, out, 1)
        seconds["round 1 checkpointed"] = time.monotonic() - t0
        _kill_server_side(net, link)
        before = (out / "metrics.jsonl").read_bytes()
        cluster.notes.append(f"killed the server side during run {run1}")
        _start_superlink(cluster, net, dirs["link"])
        seconds["superlink restarted"] = time.monotonic() - t0

        again = _submit(cluster, app, overrides)  # the same config once more: refused, nothing touched
        again_status = _wait_run(cluster, CONNECTION, again, T_RUN)
        again_log = cluster.flwr("log", again, CONNECTION, "--show").stdout
        refused_run = (again_status, (out / "metrics.jsonl").read_bytes(), again_log)
        seconds["same config refused"] = time.monotonic() - t0

        resumed = _submit(cluster, app, {**overrides, "resume": True})
        resumed_status = _wait_run(cluster, CONNECTION, resumed, T_RUN)
        seconds["resumed run finished"] = time.monotonic() - t0
        if resumed_status != deploy.COMPLETED:
            logs = cluster.flwr("log", resumed, CONNECTION, "--show").stdout
            raise AssertionError(f"resumed run: {resumed_status}\n{logs[-6000:]}" + cluster.report())
        try:
            refused.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        nodes = cluster.flwr_json("supernode", "list", CONNECTION).get("nodes", [])
        yield Outcome(cluster, out, dirs, listings, from_outsider, from_link, registered_by_outsider, refused,
                      nodes, {str(r["node-id"]) for r in regs}, before, refused_run, resumed_status, seconds)
    finally:
        net.teardown()
        cluster.stop_all()  # reaps our processes (dead by now), and any under our FLWR_HOME
        print(f"\n[netns deployment] seconds since start: {json.dumps({k: round(v) for k, v in seconds.items()})}, "
              f"total with teardown {time.monotonic() - t0:.0f}")


# ---------------------------------------------------------------------------- checks
def test_each_machine_holds_only_its_own_keys(netns_run: Outcome) -> None:
    want = {"link": ["ca.crt", "registry.json", "server.key", "server.pem"],
            "admin": ["ca.crt"] + [f"supernode-{i}.pub" for i in range(NODES)],
            "outsider": ["ca.crt", f"supernode-{NODES}", f"supernode-{NODES}.pub"]}
    want.update({f"n{i}": ["ca.crt", f"node-{i}.key", f"supernode-{i}"] for i in range(NODES)})
    assert netns_run.listings == want


def test_the_control_api_is_unreachable_from_another_machine(netns_run: Outcome) -> None:
    outside, inside = netns_run.from_outsider, netns_run.from_link
    # the control: on the SuperLink machine's loopback the same request reaches the Control API
    assert inside[f"{CONTROL_PORT}/v1/control/list-runs"] == 200, inside
    assert outside[str(CONTROL_PORT)] == "ConnectionRefusedError", outside
    assert outside[f"{FLEET_PORT}/v1/control/list-runs"] == 404, outside  # the gate
    assert outside[f"{FLEET_PORT}/v1/fleet/get-run"] not in (404, None), outside  # the Fleet API is there
    assert '"success": true' not in netns_run.outsider_register, netns_run.outsider_register
    assert "node-id" not in netns_run.outsider_register, netns_run.outsider_register


def test_an_unregistered_supernode_is_refused(netns_run: Outcome) -> None:
    refused = netns_run.refused
    text = refused.log.read_text(errors="replace")
    # Flower 1.42 logs "Exit Code: 305" but the process exits with 1
    assert refused.popen.poll() not in (None, 0), f"exit {refused.popen.poll()}:\n{text[-3000:]}"
    assert "Failed to activate SuperNode" in text, text[-3000:]
    assert {str(n["node-id"]) for n in netns_run.nodes} == netns_run.registered, netns_run.nodes
    assert all(n.get("status") == "online" for n in netns_run.nodes), netns_run.nodes


def test_the_same_config_is_refused_after_the_kill_and_nothing_is_overwritten(netns_run: Outcome) -> None:
    status, metrics, log = netns_run.refused_run
    assert status.startswith("finished:") and status != deploy.COMPLETED, status
    assert metrics == netns_run.before_kill
    assert "already holds a run" in log and "resume=true" in log, log[-3000:]


def test_the_resumed_run_completes_from_the_checkpoint(netns_run: Outcome) -> None:
    assert netns_run.resumed_status == deploy.COMPLETED
    rows = _rows(netns_run.out)
    assert [r["round"] for r in rows] == list(range(1, ROUNDS + 1)), rows
    kept = netns_run.before_kill.splitlines(keepends=True)
    assert kept and (netns_run.out / "metrics.jsonl").read_bytes().startswith(kept[0])  # round 1 as written
    for r in rows:
        assert "skipped" not in r and r["eval"] and r["train_loss"] is not None, r
    assert json.loads((netns_run.out / "summary.json").read_text())["rounds_completed"] == ROUNDS


def test_a_tampered_update_is_rejected_every_round_and_the_round_goes_on(netns_run: Outcome) -> None:
    for r in _rows(netns_run.out):  # round 2 ran in the resumed Flower run: verification survived the resume
        assert r["rejected"] == [{"node": f"node-{TAMPERED}", "reason": "bad-signature"}], r
        assert r["num_participants"] == NODES and "events" not in r, r
