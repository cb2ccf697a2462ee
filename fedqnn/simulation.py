"""Run a fedqnn federation on Flower's Simulation Engine, in-process (nothing left running)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from fedqnn.config import build_config

__all__ = ["run_simulation_from_config", "resume_simulation"]


def _quiet_flower() -> None:
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("flwr").setLevel(logging.WARNING)


def run_simulation_from_config(
    *layers: dict[str, Any] | None, validated: bool = False, resume: bool = False
) -> dict[str, Any]:
    """Validate the config layers, run the simulation, return ``summary.json``'s content.

    Raises :class:`ConfigError` before anything starts if the config is bad, and ``RuntimeError``
    if the run did not complete. ``resume``: continue the run in ``cfg['out']`` from its
    checkpoint (see :func:`resume_simulation`).
    """
    cfg = layers[0] if validated else build_config(*layers)  # type: ignore[assignment]
    assert cfg is not None
    _quiet_flower()
    from flwr.simulation import run_simulation

    from clients.qpu_app import app as client_app
    from fedqnn.server_app import make_server_app

    if cfg["qpu"]["calibration_file"]:
        from fedqnn.noise import load_calibration_file

        load_calibration_file(cfg["qpu"]["calibration_file"])  # a bad file fails before the start
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary_path.unlink()
    backend_config = {
        "client_resources": {"num_cpus": cfg["num_cpus_per_client"], "num_gpus": 0.0},
        "init_args": {"num_cpus": os.cpu_count() or 1, "num_gpus": 0, "logging_level": logging.ERROR,
                      "log_to_driver": False, "include_dashboard": False},
    }
    start = time.perf_counter()
    run_simulation(
        server_app=make_server_app(cfg, resume=resume),
        client_app=client_app,
        num_supernodes=cfg["clients"],
        backend_config=backend_config,  # type: ignore[arg-type]
    )
    if not summary_path.exists():
        raise RuntimeError(f"the run did not complete: no {summary_path} (see the log above)")
    summary = json.loads(summary_path.read_text())
    summary["process_wall_s"] = round(time.perf_counter() - start, 2)
    return summary


def resume_simulation(out: str | Path, rounds: int | None = None) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint (a killed or finished run), up to
    ``rounds`` rounds in total (default: the stored config's). The config is the stored one."""
    from fedqnn.checkpoint import config_for_resume

    cfg = config_for_resume(out, rounds)
    return run_simulation_from_config(cfg, validated=True, resume=True)
