"""A federation of real-device profiles (issue 15 item 4), tiny: the ServerApp round loop against the
real ClientApp in process (``tests/faults/helpers.LocalGrid``), 3 qubits x 1 layer, 4 nodes,
1 round. ``fedqnn run --set noise=devices`` is the same path under the Simulation Engine.

* ``noise=devices``: every node reports the effective (p, r) of its cycled device and the run
  differs from the uniform ``homogeneous`` profile (the device noise acts: negative control);
* the same devices and shots given as a ``qpu.calibration_file`` (what ``fedqnn devices export``
  writes; the server inlines it into the clients' config as JSON) reproduce that run exactly.
"""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("qiskit_ibm_runtime", reason="the 'devices' extra (qiskit-ibm-runtime) is not installed")

from fedqnn.noise import calibration_for  # noqa: E402
from fedqnn.quantum.devices import DEVICES  # noqa: E402
from tests.faults.helpers import LocalGrid, config, rows, strip_timing  # noqa: E402

NODES = 4  # x 1 round


def _run(out, **overrides):
    from fedqnn.server_app import run_server

    cfg = config(out, clients=NODES, rounds=1, byzantine_fraction=0.0, **overrides)
    run_server(LocalGrid(NODES), cfg)
    return cfg, [strip_timing(r) for r in rows(out)]


@pytest.mark.slow
def test_device_federation_runs_and_a_calibration_file_reproduces_it(tmp_path) -> None:
    from fedqnn import devices_cli

    cfg, dev = _run(tmp_path / "devices", noise="devices")
    assert len(dev) == 1 and all(r.get("eval") for r in dev) and all(r.get("eval_noisy") for r in dev)
    cals = [calibration_for(cfg, f"node-{k}") for k in range(NODES)]
    assert [c.device.backend for c in cals] == list(DEVICES[:NODES])
    _, uniform = _run(tmp_path / "uniform", noise="homogeneous")
    assert dev[-1]["eval"] != uniform[-1]["eval"]

    path = tmp_path / "cal.json"
    args = argparse.Namespace(devices_command="export", backend=list(DEVICES[:NODES]), layout=None, nodes=NODES,
                              shots=[c.shots for c in cals], out=str(path), qubits=cfg["model"]["qubits"],
                              layers=cfg["model"]["layers"])
    assert devices_cli.main(args) == 0
    assert json.loads(path.read_text())["node-1"]["device"]["backend"] == DEVICES[1]
    _, from_file = _run(tmp_path / "file", noise="homogeneous", **{"qpu.calibration_file": str(path)})
    assert from_file == dev
