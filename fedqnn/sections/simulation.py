"""The ``simulation`` section: where the Simulation Engine runs (a Ray cluster) and what a ClientApp
reserves there. Both keys are absent from the built config unless given (so the config, its hash
and every recorded output of a run without them stay as they were)."""

from __future__ import annotations

from typing import Any

from fedqnn.schema import Field, Section, field

__all__ = ["FIELDS", "SECTION", "client_cpus", "check_ray_address"]


def check_ray_address(value: str) -> str | None:
    """``auto`` or ``HOST:PORT`` (the head's GCS address, what ``ray start --head`` prints), else
    an error text. Ray Client addresses (``ray://``) are refused: the engine needs a driver on a
    cluster node."""
    if value == "auto":
        return None
    host, sep, port = value.rpartition(":")
    if value.startswith("ray://") or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected 'auto' or HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got {value!r}"
    return None


FIELDS: dict[str, Field] = {
    "simulation.ray_address": field(
        "", str, "attach the Simulation Engine to this running Ray cluster ('auto' or the head's HOST:PORT; "
        "empty = start a private Ray runtime on this machine and stop it after the run); the cluster's "
        "nodes need this environment (fedqnn importable)", check=check_ray_address, omit_empty=True),
    "simulation.client_cpus": field(
        0.0, float, "CPUs each ClientApp actor reserves (fractions allowed, e.g. 0.5 runs two actors per "
        "core); 0 = num_cpus_per_client", low=0.0, omit_empty=True),
    "simulation.fast_polling": field(
        False, bool, "Flower 1.42's engine hands out messages with one scan of its message store per 0.1 s "
        "sweep instead of one scan per node (nodes x messages: quadratic in the federation); the same "
        "messages, outputs unchanged (fedqnn.simulation.linear_message_polling)", omit_empty=True),
}


def client_cpus(cfg: dict[str, Any]) -> float:
    """CPUs per ClientApp: ``simulation.client_cpus`` if set, else ``num_cpus_per_client``."""
    return float(cfg.get("simulation", {}).get("client_cpus") or cfg["num_cpus_per_client"])


SECTION = Section(FIELDS)
