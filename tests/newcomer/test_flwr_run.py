"""``flwr run .`` as docs/spine.md gives it, on Flower's managed local SuperLink (simulation mode).

One local SuperLink serves both runs (it is started detached by the first ``flwr`` command, on
free ports and in a private FLWR_HOME, and stopped by its PID at the end): a tiny run that must
complete, then one with fewer SuperNodes than ``clients`` that must fail fast with the fix.
``flwr run --stream`` can exit 0 on a failed run, so the outputs and ``flwr list`` are checked,
not the exit code. Slow: ~1 min on 2 shared cores (Ray's start-up, twice).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# keys `flwr run --run-config` may override must be in [tool.flwr.app.config]: the test's copy
# adds the few that make the run tiny
TINY = {"rounds": 2, "clients": 3, '"train.epochs"': 1, '"data.samples_per_client"': 16,
        '"data.test_samples"': 20, '"model.qubits"': 3, '"model.layers"': 1}
FEDERATION = "num-supernodes=3 client-resources-num-cpus=1"  # what docs/spine.md tells for 3 clients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_copy(dest: Path) -> Path:
    """The app as `flwr run` ships it: the packages and pyproject.toml (tiny run config)."""
    for pkg in ("fedqnn", "strategies", "clients"):
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    head, sep, tail = text.partition("[tool.flwr.app.config]\n")
    assert sep, "pyproject.toml has no [tool.flwr.app.config]"
    body, nxt, rest = tail.partition("\n[")
    names = {k.strip('"') for k in TINY}
    kept = [ln for ln in body.splitlines() if ln.split("=")[0].strip().strip('"') not in names]
    tiny = [f"{k} = {v}" for k, v in TINY.items()]
    (dest / "pyproject.toml").write_text(head + sep + "\n".join(kept + tiny) + "\n" + nxt + rest)
    return dest


def _superlink_pids(home: Path) -> list[int]:
    """The local SuperLink(s) this test's FLWR_HOME started (their --log-file lies under it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"flower-superlink" in c for c in cmd) and any(str(home).encode() in c for c in cmd):
                pids.append(int(proc.name))
    return pids


def _flwr(env: dict[str, str], cwd: Path, *args: str, timeout: float = 420) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    out = subprocess.run(["flwr", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return out, time.monotonic() - t0


def _status(env: dict[str, str], cwd: Path, log: str) -> str:
    run_id = re.search(r"Successfully started run (\d+)", log)
    assert run_id, log[-3000:]
    for _ in range(40):  # the status lands a moment after the stream ends
        out, _ = _flwr(env, cwd, "list", "--run-id", run_id.group(1), "--format", "json", timeout=60)
        status = json.loads(out.stdout)["runs"][0]["status"]
        if status.startswith("finished"):
            return status
        time.sleep(0.5)
    return status


@pytest.fixture
def flwr_env(tmp_path: Path):
    home = tmp_path / "flwr-home"
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(_free_port()),
           "FLWR_LOCAL_CONTROL_API_PORT": str(_free_port())}
    if shutil.which("flwr", path=env["PATH"]) is None:
        pytest.skip("no flwr command next to this Python")
    yield env
    for pid in _superlink_pids(home):  # flwr leaves its local SuperLink running: stop ours
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _superlink_pids(home) and time.monotonic() < deadline:
        time.sleep(0.3)
    for pid in _superlink_pids(home):
        os.kill(pid, signal.SIGKILL)


def test_flwr_run_completes_and_too_few_nodes_fail_fast(tmp_path: Path, flwr_env: dict[str, str]) -> None:
    app = _app_copy(tmp_path / "app")
    out = tmp_path / "out"
    done, took = _flwr(flwr_env, tmp_path, "run", str(app), "--stream", "--run-config", f'out="{out}"',
                       "--federation-config", FEDERATION)
    log = done.stdout + done.stderr
    assert (out / "summary.json").is_file(), log[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 2 and summary["rounds_skipped"] == 0, log[-4000:]
    assert summary["config"]["clients"] == 3 and summary["config"]["model"]["qubits"] == 3
    assert "[fedqnn] round 2/2" in log
    assert _status(flwr_env, tmp_path, log) == "finished:completed"
    print(f"flwr run . (3 SuperNodes, 2 rounds): {took:.0f} s")

    # Flower's default federation (2 SuperNodes) and clients = 3: a clear failure, not a wait
    few = tmp_path / "few"
    failed, took = _flwr(flwr_env, tmp_path, "run", str(app), "--stream", "--run-config",
                         f'out="{few}" connect_timeout=5.0')
    log = failed.stdout + failed.stderr
    assert "only 2 of 3 nodes connected after 5 s" in log, log[-4000:]
    assert 'flwr run . --federation-config \\"num-supernodes=3 client-resources-num-cpus=1\\"' in log \
        or 'flwr run . --federation-config "num-supernodes=3 client-resources-num-cpus=1"' in log
    assert not (few / "summary.json").exists()
    assert _status(flwr_env, tmp_path, log) == "finished:failed"
    assert took < 90, f"the too-few-nodes failure took {took:.0f} s"
    print(f"flwr run . with 2 of 3 SuperNodes: failed after {took:.0f} s")
