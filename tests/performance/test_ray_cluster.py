"""A federation on a running two-node Ray cluster (``simulation.ray_address``), started and stopped here.

The cluster is a head and a worker node on this machine, one CPU each, in a private temp dir and
on free ports. Every process it starts carries a marker in its environment (Ray's daemons and
workers inherit it), so the test stops exactly those processes, by PID, and never runs
``ray stop`` (which kills every Ray runtime of the machine, other tests' included).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "FEDQNN_RAY_CLUSTER_TEST"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked_pids(token: str) -> list[int]:
    """PIDs of the processes whose environment holds ``MARKER=token``."""
    needle = f"{MARKER}={token}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle in fh.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def stop_marked(token: str, grace: float = 3.0) -> list[int]:
    """SIGTERM every marked process, SIGKILL what is left after ``grace`` s; the PIDs still alive."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in marked_pids(token):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while marked_pids(token) and time.monotonic() < deadline:
            time.sleep(0.2)
    return marked_pids(token)


@contextmanager
def two_node_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """(the head's address, the environment to talk to it); both nodes stopped on exit."""
    token = uuid.uuid4().hex
    env = {**os.environ, MARKER: token, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT),
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    ray = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = f"127.0.0.1:{_free_port()}"
    common = ["--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
    try:
        subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", head.split(":")[1],
                        "--temp-dir", temp, "--include-dashboard=false", "--dashboard-port", str(_free_port()),
                        "--ray-client-server-port", str(_free_port()),
                        "--dashboard-agent-listen-port", str(_free_port()),
                        "--metrics-export-port", str(_free_port()), *common],
                       env=env, check=True, capture_output=True, timeout=90)
        subprocess.run([ray, "start", "--address", head, "--node-ip-address", "127.0.0.1",
                        "--dashboard-agent-listen-port", str(_free_port()),
                        "--metrics-export-port", str(_free_port()), *common],
                       env=env, check=True, capture_output=True, timeout=90)
        yield head, env
    finally:
        left = stop_marked(token)
        subprocess.run(["rm", "-rf", temp], check=False)
        assert not left, f"processes of the test cluster still alive: {left}"


PROBE = """
import json, ray
from ray._private import state
ray.init(address={address!r}, logging_level="ERROR", log_to_driver=False)
alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
actors = [a["Address"]["NodeID"] for a in state.actors().values() if a["ActorClassName"] == "ClientAppActor"]
print(json.dumps({{"alive": alive, "actor_nodes": actors}}))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_federation_runs_on_a_two_node_ray_cluster_and_only_its_processes_stop(tmp_path):
    out = tmp_path / "run"
    with two_node_cluster() as (address, env):
        run = subprocess.run(
            [sys.executable, "-m", "fedqnn.cli", "run", "--clients", "3", "--rounds", "1", "--out", str(out),
             "--set", f"simulation.ray_address={address}"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, run.stderr[-3000:]
        probe = subprocess.run([sys.executable, "-c", PROBE.format(address=address)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr[-3000:]
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(seen["alive"]) == 2
    # the ClientApp actors of the run lived on the cluster, on both of its nodes (one CPU each)
    assert set(seen["actor_nodes"]) == set(seen["alive"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 1 and summary["config"]["simulation"]["ray_address"] == address
