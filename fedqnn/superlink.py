"""``fedqnn superlink``: Flower's SuperLink with its Fleet API apart from its Control API.

Flower 1.42's ``flower-superlink`` serves the Fleet API (SuperNodes), the Control API (the
``flwr`` CLI: register SuperNode keys, start and stop runs) and the Runtime API (its own
SuperExec and ServerApp processes) on **one** HTTP port; ``--host 0.0.0.0`` for remote
SuperNodes opens all three, unauthenticated, to every host that reaches it. Its
``--fleet-api-address`` and ``--control-api-address`` are deprecated and only log a warning.

This launcher runs the same SuperLink (Flower's own application object, its state, its
SuperExec) behind two listeners in one process:

* ``127.0.0.1:CONTROL_PORT`` serves everything (Control and Runtime APIs): the ``flwr`` CLI on
  the SuperLink machine or through an SSH tunnel, and the SuperLink's own helpers;
* ``--fleet-address HOST:PORT`` serves only the Fleet API's routes (``/v1/fleet/...``, plus
  ``/health``); any other path gets 404.

Before it listens it checks the server certificate (it must cover 127.0.0.1, where the
SuperExec and every ServerApp connect, else runs stay ``pending`` for ever); once listening it
checks itself as a helper would (TLS to 127.0.0.1 with the CA) and that the Control API is not
on the Fleet address, and exits non-zero if either fails.

    fedqnn superlink --fleet-address 0.0.0.0:9092 --control-port 9093 \\
        --ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile server.key \\
        [--database state.db] [-- FLOWER-SUPERLINK-OPTIONS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

__all__ = ["CONTROL_HOST", "FleetOnly", "add_arguments", "flower_argv", "main", "self_check"]

CONTROL_HOST = "127.0.0.1"
EXIT_BAD_SETUP = 2
EXIT_SELF_CHECK = 3
_ALWAYS_OPEN = frozenset({"/health"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet-address", default="0.0.0.0:9092", metavar="HOST:PORT",
                   help="where SuperNodes connect; only the Fleet API is served there (default 0.0.0.0:9092)")
    p.add_argument("--control-port", type=int, default=9093,
                   help="port of the Control and Runtime APIs, on 127.0.0.1 only (the flwr CLI's "
                   "connection address 127.0.0.1:PORT, remotely over an SSH tunnel; default 9093)")
    p.add_argument("--ssl-ca-certfile", required=True, help="CA certificate (ca.crt of `fedqnn keys ca`)")
    p.add_argument("--ssl-certfile", required=True, help="server certificate (server.pem); must cover 127.0.0.1 "
                   "and every address SuperNodes dial")
    p.add_argument("--ssl-keyfile", required=True, help="server key (server.key)")
    p.add_argument("--database", help="SuperLink state file (registrations and runs survive a restart); "
                   "default: in memory")
    p.add_argument("flower_args", nargs=argparse.REMAINDER,
                   help="after --: more flower-superlink options (not --host, --port or --insecure)")


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def flower_argv(args: argparse.Namespace) -> list[str]:
    """The ``flower-superlink`` options of the loopback SuperLink (TLS, SuperNode authentication)."""
    extra = [a for a in (args.flower_args or []) if a != "--"]
    bad = [a for a in extra if a.split("=")[0] in ("--host", "--port", "--insecure", "--simulation",
                                                   "--fleet-api-address", "--control-api-address")]
    if bad:
        raise ValueError(f"{bad[0]}: the launcher sets the addresses itself (--fleet-address, --control-port) "
                         "and always serves TLS")
    argv = ["--ssl-ca-certfile", args.ssl_ca_certfile, "--ssl-certfile", args.ssl_certfile,
            "--ssl-keyfile", args.ssl_keyfile, "--enable-supernode-auth",
            "--disable-runtime-dependency-installation", "--host", CONTROL_HOST, "--port", str(args.control_port)]
    if args.database:
        argv += ["--database", args.database]
    return argv + extra


class FleetOnly:
    """ASGI wrapper that passes only the given paths (the Fleet API's) to ``app``; 404 otherwise."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], paths: Iterable[str]) -> None:
        self.app, self.paths = app, frozenset(paths) | _ALWAYS_OPEN

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in self.paths and not scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            body = b'{"detail": "not served on the Fleet address"}'
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        # lifespan events belong to the loopback listener, which owns the SuperLink's lifespan


def fleet_paths() -> list[str]:
    """The paths of Flower's Fleet API router (``/v1/fleet/...``)."""
    from flwr.superlink.routers.fleet.router import router

    return sorted(r.path for r in router.routes if getattr(r, "path", "").startswith("/v1/fleet/"))


def _http_status(host: str, port: int, path: str, ctx: ssl.SSLContext, server_hostname: str | None) -> int:
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/protobuf\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            head = tls.recv(64).decode("latin-1")
    return int(head.split()[1])


def self_check(ca: str, control_port: int, fleet_host: str, fleet_port: int) -> list[str]:
    """What a helper of this SuperLink would hit: TLS to 127.0.0.1 verified with the CA, and the
    Control API answering on loopback but not on the Fleet address (empty: all fine)."""
    problems = []
    ctx = ssl.create_default_context(cafile=ca)
    try:
        status = _http_status(CONTROL_HOST, control_port, "/v1/control/list-runs", ctx, CONTROL_HOST)
        if status == 404:
            problems.append("the Control API does not answer on 127.0.0.1")
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"TLS to {CONTROL_HOST}:{control_port} with {ca} fails ({exc}): the SuperExec and "
                        "the ServerApps could not connect, runs would stay 'pending'")
    loose = ssl.create_default_context(cafile=ca)
    loose.check_hostname = False  # the Fleet address's names are checked from the certificate
    dial = CONTROL_HOST if fleet_host in ("0.0.0.0", "::", "") else fleet_host
    try:
        if _http_status(dial, fleet_port, "/v1/control/list-runs", loose, None) != 404:
            problems.append("the Control API answers on the Fleet address")
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"the Fleet listener {dial}:{fleet_port} does not answer ({exc})")
    return problems


class _Server:
    """A uvicorn server whose signals the launcher handles (one SIGTERM stops both listeners)."""

    @staticmethod
    def make(app: Any, host: str, port: int, args: argparse.Namespace, lifespan: str, log_config: Any) -> Any:
        import contextlib

        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[override]
                yield

        return Server(uvicorn.Config(app, host=host, port=port, lifespan=lifespan, access_log=True,
                                     log_config=log_config, ssl_certfile=args.ssl_certfile,
                                     ssl_keyfile=args.ssl_keyfile, workers=1))


async def _serve(args: argparse.Namespace, app: Any, fleet_host: str, fleet_port: int, log_config: Any) -> int:
    from logging import ERROR, INFO

    from flwr.common.logger import log

    inner = _Server.make(app, CONTROL_HOST, args.control_port, args, "on", log_config)
    outer = _Server.make(FleetOnly(app, fleet_paths()), fleet_host, fleet_port, args, "off", log_config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: [setattr(s, "should_exit", True) for s in (inner, outer)])
    inner_task = asyncio.create_task(inner.serve())
    while not inner.started and not inner_task.done():
        await asyncio.sleep(0.05)
    outer_task = asyncio.create_task(outer.serve())
    while not outer.started and not outer_task.done():
        await asyncio.sleep(0.05)
    code = 0
    if inner.started and outer.started:
        problems = await asyncio.to_thread(self_check, args.ssl_ca_certfile, args.control_port, fleet_host, fleet_port)
        for p in problems:
            log(ERROR, "fedqnn superlink: self-check failed: %s", p)
        if problems:
            code = EXIT_SELF_CHECK
            inner.should_exit = outer.should_exit = True
        else:
            log(INFO, "fedqnn superlink: Fleet API only on https://%s:%s; Control and Runtime APIs on "
                "https://%s:%s (self-check passed)", fleet_host, fleet_port, CONTROL_HOST, args.control_port)
    else:
        code = 1
        inner.should_exit = outer.should_exit = True
    await asyncio.gather(inner_task, outer_task, return_exceptions=True)
    return code


def main(args: argparse.Namespace) -> int:
    """Check the certificate, then serve until SIGINT/SIGTERM (0), a failed self-check (3)."""
    from fedqnn.security.keys import certificate_problems

    try:
        fleet_host, fleet_port = split_address(args.fleet_address)
        argv = flower_argv(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    if fleet_port == args.control_port and fleet_host in ("0.0.0.0", "::", CONTROL_HOST):
        print("error: --fleet-address and --control-port need different ports", file=sys.stderr)
        return EXIT_BAD_SETUP
    names = [] if fleet_host in ("0.0.0.0", "::") else [fleet_host]
    problems = certificate_problems(args.ssl_certfile, args.ssl_ca_certfile, names)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return EXIT_BAD_SETUP
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    import importlib

    from flwr.supercore.http_logging import get_uvicorn_log_config
    from flwr.supercore.logger import console_handler
    from flwr.superlink.main import create_app

    fsl = importlib.import_module("flwr.superlink.cli.flower_superlink")  # the package shadows it
    saved, sys.argv = sys.argv, ["flower-superlink", *argv]
    try:
        config = fsl._parse_superlink_lifespan_config()  # Flower's own parsing and checks
    finally:
        sys.argv = saved
    app = create_app(config, fsl.SuperLinkLifespan)
    return asyncio.run(_serve(args, app, fleet_host, fleet_port, get_uvicorn_log_config(console_handler.level)))


def _standalone(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fedqnn superlink", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(_standalone())
