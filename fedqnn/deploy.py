"""Helpers for running fedqnn on Flower's Deployment Engine (a SuperLink and SuperNodes).

The recipe is ``docs/deployment.md``; ``tests/deployment/test_netns.py`` runs it across network
namespaces, ``tests/deployment/test_deployment.py`` on loopback. What this module adds to plain
``flwr``:

* :func:`stage_app` writes a deployable copy of the app (``fedqnn``, ``clients``,
  ``strategies`` and a ``pyproject.toml``) whose ``[tool.flwr.app.config]`` declares every
  scalar fedqnn config key and the run controls ``resume``/``overwrite``. Flower 1.42 refuses a
  ``flwr run --run-config`` override of a key the app's config table does not declare
  ("[code: 15] Invalid run configuration"), and the repository's table declares only a few
  keys. The copy also carries no ``[tool.flwr.federations]`` table, which ``flwr run`` would
  otherwise migrate to ``$FLWR_HOME/config.toml`` by commenting it out of the repository's
  ``pyproject.toml``.
* Builders for the SuperLink (``fedqnn superlink``: the Fleet API apart from the loopback-only
  Control API, :mod:`fedqnn.superlink`) and SuperNode command lines, ``--node-config`` and
  ``--run-config`` strings and the SuperLink connection in ``$FLWR_HOME/config.toml``.
* :func:`run_status`: a run's status from ``flwr list --run-id ID --format json`` (``flwr run``
  exits 0 on a refused or failed run; ``finished:completed`` is the only success), and
  :func:`wait_for_run`, which gives up on a run stuck in ``pending``.

    python -m fedqnn.deploy stage --out DIR [--src REPO]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "APP_PACKAGES",
    "COMPLETED",
    "DERIVED",
    "connection_toml",
    "declared_config",
    "flwr_env",
    "missing_declarations",
    "node_config_arg",
    "add_connection",
    "run_config_arg",
    "run_status",
    "stage_app",
    "superlink_command",
    "flower_superlink_command",
    "wait_for_run",
    "PENDING_HINT",
    "supernode_command",
    "toml_value",
]

APP_PACKAGES = ("fedqnn", "clients", "strategies")
COMPLETED = "finished:completed"
_SCALARS = (bool, int, float, str)
DERIVED = frozenset({"broker.participation"})  # defaults to fraction_train


def repo_root() -> Path:
    """The source tree this module belongs to (the directory holding ``pyproject.toml``)."""
    return Path(__file__).resolve().parents[1]


def toml_value(value: Any) -> str:
    """A scalar as a TOML literal (what ``--run-config`` and ``--node-config`` parse)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite float: {value!r}")
        return repr(value)
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if "'" not in text and "\n" not in text:
            return f"'{text}'"  # TOML literal string: no escapes (Windows paths, backslashes)
        return json.dumps(text)
    raise TypeError(f"{value!r}: run/node config values are bool, int, float or str")


def run_config_arg(values: Mapping[str, Any]) -> str:
    """``{"security.registry": "/k/registry.json", "rounds": 2}`` -> the ``--run-config`` text."""
    return " ".join(f"{k}={toml_value(v)}" for k, v in values.items())


def node_config_arg(partition_id: int, num_partitions: int, auth_key: str | os.PathLike[str] | None = None,
                    **extra: Any) -> str:
    """The ``--node-config`` of a SuperNode: its partition, and its Ed25519 node key (PEM path)."""
    items: dict[str, Any] = {"partition-id": int(partition_id), "num-partitions": int(num_partitions)}
    if auth_key is not None:
        items["auth-key"] = os.fspath(Path(auth_key).resolve())
    items.update({k.replace("_", "-"): v for k, v in extra.items()})
    return " ".join(f"{k}={toml_value(v)}" for k, v in items.items())


def declared_config(app_config: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ``[tool.flwr.app.config]`` with every scalar fedqnn key declared (existing values kept).

    The keys and defaults are those of the validated default config (``FIELDS`` and the
    ``broker.*`` schema). Not declared, so not settable through ``--run-config``: list and table
    keys (``qpu.shots_choices``, ``qpu.nodes``) and keys whose default is None (Flower run-config
    values are bool, int, float or str), and :data:`DERIVED` keys, whose default follows other
    keys (declaring one would pin it).
    """
    from fedqnn.config import flatten, validate

    flat = flatten(dict(app_config))
    for key, value in flatten(validate({})).items():
        if key not in flat and key not in DERIVED and isinstance(value, _SCALARS):
            flat[key] = value
    return flat


def missing_declarations(pyproject: str | os.PathLike[str], keys: Sequence[str]) -> list[str]:
    """The ``keys`` that ``pyproject``'s ``[tool.flwr.app.config]`` does not declare."""
    from fedqnn.config import flatten

    data = tomllib.loads(Path(pyproject).read_text())
    declared = flatten(data.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {}))
    return [k for k in keys if k not in declared]


def stage_app(dest: str | os.PathLike[str], src: str | os.PathLike[str] | None = None) -> Path:
    """Write a deployable copy of the fedqnn app to ``dest`` (replacing an earlier staging).

    ``flwr run DEST CONNECTION`` then ships it as a FAB; the SuperLink and the SuperNodes import
    the app's code from that FAB, their environment needs fedqnn's dependencies only.
    """
    import tomli_w  # a dependency of flwr

    src_dir = Path(src) if src is not None else repo_root()
    dest_dir = Path(dest)
    data = tomllib.loads((src_dir / "pyproject.toml").read_text())
    app = data.setdefault("tool", {}).setdefault("flwr", {}).setdefault("app", {})
    if "components" not in app:
        raise ValueError(f"{src_dir / 'pyproject.toml'}: no [tool.flwr.app.components]")
    data["tool"]["flwr"].pop("federations", None)
    from fedqnn.config import RUN_CONTROLS, unflatten

    app["config"] = unflatten({**declared_config(app.get("config", {})), **RUN_CONTROLS})
    dest_dir.mkdir(parents=True, exist_ok=True)
    for pkg in APP_PACKAGES:
        target = dest_dir / pkg
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src_dir / pkg, target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    (dest_dir / "pyproject.toml").write_text(tomli_w.dumps(data))
    return dest_dir


def superlink_command(*, ca_cert: str | os.PathLike[str], server_cert: str | os.PathLike[str],
                      server_key: str | os.PathLike[str], fleet_address: str = "0.0.0.0:9092",
                      control_port: int = 9093, database: str | os.PathLike[str] | None = None,
                      python: str = sys.executable) -> list[str]:
    """``fedqnn superlink`` (:mod:`fedqnn.superlink`): TLS, SuperNode authentication, the Fleet API
    on ``fleet_address`` and the Control and Runtime APIs on ``127.0.0.1:control_port`` only."""
    cmd = [python, "-m", "fedqnn.superlink", "--fleet-address", fleet_address,
           "--control-port", str(int(control_port)), "--ssl-ca-certfile", os.fspath(ca_cert),
           "--ssl-certfile", os.fspath(server_cert), "--ssl-keyfile", os.fspath(server_key)]
    if database is not None:
        cmd += ["--database", os.fspath(database)]
    return cmd


def flower_superlink_command(*, ca_cert: str | os.PathLike[str], server_cert: str | os.PathLike[str],
                             server_key: str | os.PathLike[str], port: int = 9093, host: str = "127.0.0.1",
                             database: str | os.PathLike[str] | None = None,
                             exe: str = "flower-superlink") -> list[str]:
    """Flower's plain ``flower-superlink`` with TLS and SuperNode authentication: Fleet, Control
    and Runtime APIs on one port. Only for ``host='127.0.0.1'`` (every SuperNode on this machine);
    any other host opens the unauthenticated Control API with the Fleet API (use
    :func:`superlink_command`)."""
    cmd = [exe, "--ssl-ca-certfile", os.fspath(ca_cert), "--ssl-certfile", os.fspath(server_cert),
           "--ssl-keyfile", os.fspath(server_key), "--enable-supernode-auth",
           "--host", host, "--port", str(int(port)), "--disable-runtime-dependency-installation"]
    if database is not None:
        cmd += ["--database", os.fspath(database)]
    return cmd


def supernode_command(*, superlink: str, ca_cert: str | os.PathLike[str],
                      auth_private_key: str | os.PathLike[str], node_config: str, port: int = 9094,
                      exe: str = "flower-supernode") -> list[str]:
    """A SuperNode dialling ``superlink`` (host:port) over TLS, authenticated with its ECDSA key.

    ``port`` is the SuperNode's own local runtime API: distinct per SuperNode on one machine.
    """
    return [exe, "--superlink", superlink, "--root-certificates", os.fspath(ca_cert),
            "--auth-supernode-private-key", os.fspath(auth_private_key), "--port", str(int(port)),
            "--node-config", node_config]


def connection_toml(name: str, address: str, root_certificates: str | os.PathLike[str]) -> str:
    """A ``[superlink.<name>]`` table for ``$FLWR_HOME/config.toml`` (the ``flwr`` CLI's connection)."""
    return (f"[superlink.{name}]\naddress = {toml_value(address)}\n"
            f"root-certificates = {toml_value(os.fspath(Path(root_certificates).resolve()))}\n")


def add_connection(flwr_home: str | os.PathLike[str], name: str, address: str,
                   root_certificates: str | os.PathLike[str]) -> Path:
    """Add (or leave) the connection ``name`` in ``FLWR_HOME/config.toml``; returns the file."""
    path = Path(flwr_home) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else f"[superlink]\ndefault = {toml_value(name)}\n"
    existing = tomllib.loads(text).get("superlink", {})
    if name in existing:
        return path
    path.write_text(text.rstrip("\n") + "\n\n" + connection_toml(name, address, root_certificates))
    return path


def flwr_env(flwr_home: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ``flwr``/``flower-*`` processes: offline, no ``uv sync``, a private FLWR_HOME.

    The interpreter's ``bin`` directory goes first on PATH: the SuperLink and SuperNodes start
    ``flower-superexec`` by name.
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "FLWR_HOME": os.fspath(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "PYTHONUNBUFFERED": "1",
    })
    bindir = os.fspath(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def run_status(list_json: str | Mapping[str, Any], run_id: int | str) -> str | None:
    """The status (e.g. ``running``, ``finished:completed``) of ``run_id`` in ``flwr list --format
    json`` output (text or parsed); None if the output does not list it."""
    if isinstance(list_json, str):
        try:
            data = json.loads(list_json)
        except json.JSONDecodeError:
            return None
    else:
        data = list_json
    for run in data.get("runs", []) if isinstance(data, dict) else []:
        if str(run.get("run-id")) == str(run_id):
            return str(run.get("status"))
    return None


PENDING_HINT = ("a run that stays 'pending' never reached a ServerApp: the SuperLink's SuperExec cannot connect "
                "to its Runtime API on 127.0.0.1 (is 127.0.0.1 in the server certificate? `fedqnn keys check "
                "--cert server.pem --ca ca.crt`), or the SuperExec is not running (is the venv's bin on PATH?)")


def wait_for_run(status_of: Callable[[], str | None], timeout: float, pending_timeout: float = 90.0,
                 poll: float = 3.0) -> str:
    """Poll ``status_of()`` (e.g. :func:`run_status` of ``flwr list``) until the run is
    ``finished:*``; returns that status. Raises ``TimeoutError`` after ``timeout`` s, or after
    ``pending_timeout`` s of ``pending`` (with :data:`PENDING_HINT`): a SuperLink that cannot
    start runs never says so itself."""
    import time

    start = time.monotonic()
    status = None
    while (elapsed := time.monotonic() - start) < timeout:
        status = status_of()
        if status is not None and status.startswith("finished"):
            return status
        if status == "pending" and elapsed > pending_timeout:
            raise TimeoutError(f"the run is still 'pending' after {elapsed:.0f} s: {PENDING_HINT}")
        time.sleep(poll)
    raise TimeoutError(f"the run did not finish in {timeout:.0f} s (last status {status!r})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedqnn.deploy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stage", help="write a deployable copy of the app for `flwr run DIR CONNECTION`")
    p.add_argument("--out", required=True, help="directory to write (its app files are replaced)")
    p.add_argument("--src", default=None, help="fedqnn source tree (default: this installation's)")
    args = parser.parse_args(argv)
    if args.command == "stage":
        out = stage_app(args.out, args.src)
        print(f"staged the fedqnn app in {out}: flwr run {out} <connection> --run-config '...'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
