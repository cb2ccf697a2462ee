"""``fedqnn superlink``: the Fleet listener serves the Fleet API's routes and nothing else.

Flower 1.42's ``flower-superlink`` serves Fleet, Control and Runtime APIs on one port, and its
``--fleet-api-address`` / ``--control-api-address`` only log a deprecation warning (checked
below), so a SuperLink reachable by SuperNodes also exposes the unauthenticated Control API.
The launcher puts a :class:`fedqnn.superlink.FleetOnly` gate on the public listener.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from fedqnn import superlink
from fedqnn.cli import main as fedqnn_main


def _toy_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request):
        return JSONResponse({"path": request.url.path})

    paths = ["/v1/control/list-runs", "/v1/control/start-run", "/v1/fleet/pull-messages", "/v1/runtime/x"]
    return Starlette(routes=[Route(p, ok, methods=["POST"]) for p in paths])


def test_fleet_only_passes_fleet_routes_and_hides_the_rest() -> None:
    from starlette.testclient import TestClient

    app = _toy_app()
    open_client, gated = TestClient(app), TestClient(superlink.FleetOnly(app, ["/v1/fleet/pull-messages"]))
    # negative control: without the gate the Control and Runtime APIs answer
    for path in ("/v1/control/start-run", "/v1/runtime/x"):
        assert open_client.post(path).status_code == 200
        res = gated.post(path)
        assert res.status_code == 404 and "not served on the Fleet address" in res.text
    for sneaky in ("/v1/fleet/../control/start-run", "/v1/fleet/pull-messages/../../control/start-run",
                   "//v1/control/start-run", "/v1/control/start-run?x=/v1/fleet/pull-messages"):
        assert gated.post(sneaky).status_code == 404, sneaky
    assert gated.post("/v1/fleet/pull-messages").json() == {"path": "/v1/fleet/pull-messages"}


def test_the_gate_lets_through_every_path_a_supernode_uses() -> None:
    """The allow-list is Flower's Fleet router; it must hold every path Flower's SuperNode calls."""
    from flwr.supernode import fleet_http_client

    used = set(re.findall(r'path="(/v1/fleet/[a-z-]+)"', inspect.getsource(fleet_http_client)))
    assert len(used) >= 10, used  # the client still names its paths this way
    allowed = set(superlink.fleet_paths())
    assert used <= allowed, sorted(used - allowed)
    assert all(p.startswith("/v1/fleet/") for p in allowed)


def test_flowers_own_address_flags_do_not_separate_the_apis() -> None:
    """Why the launcher exists: flwr 1.42 ignores --control-api-address (one HTTP port for all)."""
    import importlib

    fsl = importlib.import_module("flwr.superlink.cli.flower_superlink")  # the package shadows the module

    src = inspect.getsource(fsl._run_superlink_http_api)
    assert src.count("uvicorn.run(") == 1 and "lifespan_config.port" in src
    parse = inspect.getsource(fsl._parse_superlink_lifespan_config)
    assert "`--control-api-address` argument is deprecated" in parse
    assert "control_address=control_address" in parse  # used only by the legacy gRPC Control API...
    lifespan = inspect.getsource(fsl.SuperLinkLifespan.startup)
    assert "FLWR_INTERNAL_GRPC_CONTROL_API" in lifespan  # ...which starts only under an internal switch


def _args(tmp: Path, **kw) -> argparse.Namespace:
    ns = argparse.Namespace(fleet_address="0.0.0.0:19092", control_port=19093, ssl_ca_certfile=str(tmp / "ca.crt"),
                            ssl_certfile=str(tmp / "server.pem"), ssl_keyfile=str(tmp / "server.key"),
                            database=None, flower_args=[])
    vars(ns).update(kw)
    return ns


def test_launcher_refuses_a_certificate_without_loopback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fedqnn.security import crypto

    ca_key, ca_cert = crypto.make_ca(days=1)
    key, srv = crypto.make_server_cert(ca_key, ca_cert, ["10.77.0.1"], days=1)
    (tmp_path / "ca.crt").write_bytes(crypto.cert_pem(ca_cert))
    (tmp_path / "server.pem").write_bytes(crypto.cert_pem(srv))
    (tmp_path / "server.key").write_bytes(crypto.ec_private_pem(key))
    assert superlink.main(_args(tmp_path)) == superlink.EXIT_BAD_SETUP  # before anything listens
    assert "does not cover 127.0.0.1" in capsys.readouterr().err
    assert superlink.main(_args(tmp_path, flower_args=["--", "--host", "0.0.0.0"])) == superlink.EXIT_BAD_SETUP
    assert "--host" in capsys.readouterr().err


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_launcher_serves_control_on_loopback_only_and_stops_on_sigterm(tmp_path: Path) -> None:
    """A real launcher: Control API on 127.0.0.1:C, 404 on the Fleet port, exit 0 on SIGTERM with
    its SuperExec gone."""
    from fedqnn.deploy import flwr_env, superlink_command

    assert fedqnn_main(["keys", "ca", "--out", str(tmp_path)]) == 0
    fleet, control = _free_port(), _free_port()
    env = {**flwr_env(tmp_path / "home"), "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                                          os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "superlink.log"
    cmd = superlink_command(ca_cert=tmp_path / "ca.crt", server_cert=tmp_path / "server.pem",
                            server_key=tmp_path / "server.key", fleet_address=f"127.0.0.1:{fleet}",
                            control_port=control)
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "self-check passed" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        assert superlink._http_status("127.0.0.1", control, "/v1/control/list-runs", ctx, "127.0.0.1") == 200
        assert superlink._http_status("127.0.0.1", fleet, "/v1/control/list-runs", ctx, "127.0.0.1") == 404
        assert superlink._http_status("127.0.0.1", fleet, "/v1/runtime/pull-app-inputs", ctx, "127.0.0.1") == 404
        assert superlink._http_status("127.0.0.1", fleet, "/v1/fleet/get-run", ctx, "127.0.0.1") != 404
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "no SuperExec child"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
        time.sleep(1.0)
        assert not [c for c in children if _alive(int(c))], "the SuperExec outlived the launcher"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
