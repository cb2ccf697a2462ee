"""A server killed by SIGKILL mid-run on Flower's Simulation Engine, resumed with
``fedqnn run --resume DIR``: the result equals an uninterrupted run in every field but timing.

Three Flower starts (uninterrupted in-process, killed, resumed by the CLI), tiny config, with
dropouts, the broker, a replaying Byzantine client (its history crosses the kill) and a round
plugin from outside the repository (``tests/plugins/outside.py`` copied to a temporary directory:
its running total crosses the kill only through the checkpoint) on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fedqnn
from tests.faults.helpers import strip_summary, strip_timing

pytestmark = pytest.mark.slow

CFG = {
    "clients": 3, "rounds": 4, "min_replies": 2, "seed": 11, "progress": True,
    "train.epochs": 1, "data.samples_per_client": 16, "data.test_samples": 20,
    "model.qubits": 3, "model.layers": 1, "ceas.probe_size": 4, "ceas.trajectories": 4,
    "faults.dropout": 0.2, "byzantine_fraction": 0.2, "attack": "replay",
    "plugins": ["fedqnn_outside_tally:Tally"],
}


def _rows(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


def _session_pids(sid: int) -> list[int]:
    """Processes still in the session the test started (Ray's workers included)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid="], capture_output=True, text=True, check=True).stdout
    return [int(p) for p, s in (line.split() for line in out.splitlines()) if int(s) == sid and int(p) != os.getpid()]


def _cli(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "fedqnn.cli", "run", *args]


def test_killed_server_resumes_to_the_uninterrupted_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"  # the outside plugin: on the path, not in the repository
    site.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "plugins" / "outside.py", site / "fedqnn_outside_tally.py")
    monkeypatch.syspath_prepend(str(site))
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(site)])}
    full = fedqnn.run({**CFG, "out": str(tmp_path / "full")})

    out = tmp_path / "killed"
    sets = [x for k, v in CFG.items() if k not in ("clients", "rounds", "seed")
            for x in ("--set", f"{k}={json.dumps(v) if isinstance(v, (bool, list)) else v}")]
    args = ["--clients", "3", "--rounds", "4", "--seed", "11", "--out", str(out), *sets]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(_cli(tmp_path, *args), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        while len(_rows(out)) < 2:  # wait for round 2's row, then kill in round 3 (or right after 2)
            if proc.poll() is not None:
                pytest.fail(f"the run ended before round 2: {(tmp_path / 'killed.log').read_text()[-3000:]}")
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        for pid in _session_pids(proc.pid):  # anything of that session that outlived the kill
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    killed_rows = _rows(out)
    assert 2 <= len(killed_rows) < 4 and not (out / "summary.json").exists()
    written = (out / "metrics.jsonl").read_bytes()

    res = subprocess.run(_cli(tmp_path, "--resume", str(out)), cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert not _session_pids(proc.pid)

    first_two = b"".join(written.splitlines(keepends=True)[:2])  # checkpointed rows stay byte for byte
    assert (out / "metrics.jsonl").read_bytes().startswith(first_two)
    a, b = _rows(tmp_path / "full"), _rows(out)
    assert [r["round"] for r in b] == [1, 2, 3, 4]
    assert [strip_timing(r) for r in b] == [strip_timing(r) for r in a]
    assert strip_summary(json.loads((out / "summary.json").read_text())) == strip_summary(full)
    assert any(e["event"] == "no-reply" for r in a for e in r.get("events", [])), "dropouts happened"
    # the replaying node sends in round r its own update of round r - 1 (remembered by the
    # adversary): rows 3 and 4 equal only if that memory crossed the kill
    assert any(x["reason"] == "replay" for r in a for x in r["rejected"]), "the replay attack was active"
    # the outside plugin's running total: the resumed rows equal the uninterrupted ones (above)
    # only because its state_dict crossed the kill; without it round 3 would restart the count
    assert [r["tally"]["rounds"] for r in b] == [1, 2, 3, 4]
    assert json.loads((out / "summary.json").read_text())["tally"] == full["tally"]
