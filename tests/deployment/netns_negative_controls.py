"""Negative controls of ``test_netns.py``, run by hand (about 90 s, most of it waiting): what the
namespace test would see with Flower's plain ``flower-superlink --host 0.0.0.0`` and a
certificate for the public address only, i.e. the setup of issue 18.

    sudo PYTHONPATH=. python tests/deployment/netns_negative_controls.py /tmp/negctl

Prints (1) the outsider's probe of port 9093 (the Control API answers: 200) and its own
``flwr supernode register`` (succeeds), which ``test_the_control_api_is_unreachable_from_another_machine``
rejects; (2) a run that stays ``pending`` (the SuperExec cannot verify the certificate on
127.0.0.1), which :func:`fedqnn.deploy.wait_for_run` reports with its hint after 60 s. Not
collected by pytest (too slow for CI for what it shows; results in docs/deployment.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fedqnn import deploy
from fedqnn.security import crypto
from tests.deployment import test_netns as t
from tests.deployment.test_deployment import BIN, Cluster, run_env


def _bare_certificate(link: Path) -> None:
    ca_key, ca_cert = crypto.make_ca(days=1)
    key, srv = crypto.make_server_cert(ca_key, ca_cert, [t.LINK_IP], days=1)  # no 127.0.0.1
    (link / "bare-ca.crt").write_bytes(crypto.cert_pem(ca_cert))
    (link / "bare.pem").write_bytes(crypto.cert_pem(srv))
    (link / "bare.key").write_bytes(crypto.ec_private_pem(key))


def main(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    dirs = t._machines(root)
    net = t.Net(["n0", "n1", "n2", "outsider"])
    home = dirs["admin"] / "flwr-home"
    cluster = Cluster(root, home, run_env(home), prefix=net.exec(net.link, []))
    try:
        link, outsider = dirs["link"], dirs["outsider"]
        _bare_certificate(link)
        cmd = deploy.flower_superlink_command(ca_cert=link / "bare-ca.crt", server_cert=link / "bare.pem",
                                              server_key=link / "bare.key", host="0.0.0.0", port=t.CONTROL_PORT,
                                              exe=str(BIN / "flower-superlink"))
        plain = cluster.start("plain-superlink", net.exec(net.link, cmd), cwd=link, env=run_env(link / "flwr-home"))
        t._wait_log(cluster, plain, "Uvicorn running", 60)
        time.sleep(2)
        (outsider / "ca.crt").write_bytes((link / "bare-ca.crt").read_bytes())
        print("(1) probe from the outsider:", t._probe(cluster, net.names["outsider"], outsider / "ca.crt", t.LINK_IP,
                                                       t.CONTROL_PORT))
        home_o = outsider / "flwr-home"
        deploy.add_connection(home_o, "there", f"{t.LINK_IP}:{t.CONTROL_PORT}", outsider / "ca.crt")
        res = subprocess.run(net.exec(net.names["outsider"], [t.FLWR, "supernode", "register",
                                                              str(outsider / f"supernode-{t.NODES}.pub"), "there",
                                                              "--format", "json"]),
                             capture_output=True, text=True, env=run_env(home_o), cwd=outsider, timeout=120)
        print("(1) the outsider registers its own key: exit", res.returncode, res.stdout.strip()[-200:])
        deploy.add_connection(home, "public", f"{t.LINK_IP}:{t.CONTROL_PORT}", link / "bare-ca.crt")
        sub = cluster.flwr_json("run", str(deploy.stage_app(root / "app")), "public", "--run-config", "rounds=1")
        rid, start = str(sub.get("run-id")), time.monotonic()
        try:
            status = deploy.wait_for_run(
                lambda: deploy.run_status(cluster.flwr_json("list", "public", "--run-id", rid), rid),
                timeout=300, pending_timeout=60)
            print("(2) the run finished:", status)
        except TimeoutError as exc:
            print(f"(2) after {time.monotonic() - start:.0f} s: {exc}")
        ssl_lines = [x for x in plain.text().splitlines() if "not valid for '127.0.0.1'" in x]
        print("(2) the SuperLink's log:", ssl_lines[-1] if ssl_lines else "(no certificate error logged)")
    finally:
        net.teardown()
        cluster.stop_all()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fedqnn-netns-negative-controls"))
