"""Run a fedqnn federation on Flower's Simulation Engine, in-process (nothing left running)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedqnn.config import build_config

__all__ = ["run_simulation_from_config", "resume_simulation", "run_batch", "linear_message_polling"]


_BANNER = "The `run_simulation` function is deprecated"


class _WithoutRunSimulationBanner(logging.Filter):
    """Drop Flower's DEPRECATED FEATURE banner for ``run_simulation``: fedqnn prints its own line
    (:func:`_starting`) that says what runs, that Flower deprecates it, and where to read why."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _BANNER not in str(record.args[0] if record.args else record.msg)


def _quiet_flower() -> None:
    """Flower at WARNING (the progress plugin prints the rounds), without the banner above."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import flwr.common.logger  # noqa: F401 - importing it sets Flower's logger to DEBUG: set the level after

    logger = logging.getLogger("flwr")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _WithoutRunSimulationBanner) for f in logger.filters):
        logger.addFilter(_WithoutRunSimulationBanner())


def _one_scan_per_sweep(state: Any, queue: Any, nodes_mapping: Any, f_stop: Any) -> None:
    """Flower 1.42's ``vce_api.add_messages_to_queue`` with one scan of the stored messages per
    sweep instead of one per node.

    The original asks ``state.get_message_ins(node_id, limit=1)`` for every node every 0.1 s; on
    the in-memory state each call scans (and re-validates) every stored message, so a sweep costs
    nodes x messages in flight (1000 x ~800 at 1000 QPUs). Here one sweep validates the stored
    messages once (the same ``_check_stored_messages``, which drops expired or invalid ones), then
    takes, for each node in the mapping's order, its first undelivered message in store order and
    marks it delivered: the messages each sweep hands out are the original's.
    """
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState
    from flwr.supercore.date import now

    if not isinstance(state, InMemoryLinkState):
        return _FLOWER_POLLING[0](state, queue, nodes_mapping, f_stop)
    while not f_stop.is_set():
        with state.lock:
            state._check_stored_messages(set(state.message_ins_store))
            first: dict[int, Any] = {}
            for msg in state.message_ins_store.values():
                node = msg.metadata.dst_node_id
                if msg.metadata.delivered_at == "" and node in nodes_mapping and node not in first:
                    first[node] = msg
            picked = [first[n] for n in nodes_mapping if n in first]
            delivered_at = now().isoformat()
            for msg in picked:
                msg.metadata.delivered_at = delivered_at
        for msg in picked:
            queue.put(msg)
        f_stop.wait(0.1)
    return None


_FLOWER_POLLING: list[Any] = []


def linear_message_polling(on: bool = True) -> bool:
    """Install (``on``) or remove :func:`_one_scan_per_sweep` in Flower's Simulation Engine; returns
    whether it is installed. Only for the Flower version it was written against (1.42): on any
    other the engine is left as it is."""
    import flwr
    from flwr.server.superlink.fleet.vce import vce_api

    if not _FLOWER_POLLING:
        _FLOWER_POLLING.append(vce_api.add_messages_to_queue)
    if not flwr.__version__.startswith("1.42."):
        return False
    vce_api.add_messages_to_queue = _one_scan_per_sweep if on else _FLOWER_POLLING[0]  # type: ignore[assignment]
    return on


def _starting(clients: int, runs: int = 1) -> None:
    what = f"{clients} virtual SuperNodes" + (f", one runtime for {runs} runs" if runs > 1 else "")
    print(f"[fedqnn] starting Flower's Simulation Engine (Ray) with {what}: usually 10-30 s before round 1 "
          "(in-process run_simulation, deprecated by Flower 1.42 but still supported; why: docs/spine.md)", flush=True)


def run_simulation_from_config(
    *layers: dict[str, Any] | None, validated: bool = False, resume: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Validate the config layers, run the simulation, return ``summary.json``'s content.

    Raises :class:`ConfigError` before anything starts if the config is bad or ``cfg['out']``
    already holds a run (``metrics.jsonl`` or a checkpoint) and neither ``resume`` nor
    ``overwrite`` is set, and ``RuntimeError`` if the run did not complete. ``resume``: continue
    the run in ``cfg['out']`` from its checkpoint (see :func:`resume_simulation`); ``overwrite``:
    start a new run there, replacing the old one's rows and checkpoint.
    """
    cfg = layers[0] if validated else build_config(*layers)  # type: ignore[assignment]
    assert cfg is not None
    if not (resume or overwrite):
        from fedqnn.results import refuse_existing_run

        refuse_existing_run(cfg["out"], f"`fedqnn run --resume {cfg['out']}` (Python: fedqnn.resume)",
                            "`fedqnn run --overwrite` (Python: overwrite=True)")
    _quiet_flower()
    from flwr.simulation import run_simulation

    from clients.qpu_app import app as client_app
    from fedqnn.server_app import make_server_app

    if cfg["qpu"]["calibration_file"]:
        from fedqnn.noise import load_calibration_file

        load_calibration_file(cfg["qpu"]["calibration_file"])  # a bad file fails before the start
    from fedqnn.plugins import check_plugins

    check_plugins(cfg)  # an outside plugin that does not import fails before the start
    from strategies.config import check_preconditions

    check_preconditions(cfg)  # a robust rule that could aggregate no round: exit 2, not a run of skips
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    if summary_path.exists():
        summary_path.unlink()
    backend_config = _backend_config(cfg)
    linear_message_polling(bool(cfg.get("simulation", {}).get("fast_polling")))
    start = time.perf_counter()
    if cfg["progress"]:
        _starting(cfg["clients"])
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


def _backend_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Flower's backend config: one ClientApp actor per ``client_cpus`` CPUs; a private Ray runtime
    on this machine's cores, or, with ``simulation.ray_address``, the running cluster there (Ray
    then takes the CPUs from the cluster's nodes and refuses ``num_cpus`` and ``num_gpus``)."""
    from fedqnn.sections.simulation import client_cpus

    init: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
    address = cfg.get("simulation", {}).get("ray_address")
    if address:
        init["address"] = address
    else:
        init.update({"num_cpus": os.cpu_count() or 1, "num_gpus": 0})
    cpus = client_cpus(cfg)
    return {"client_resources": {"num_cpus": int(cpus) if cpus.is_integer() else cpus, "num_gpus": 0.0},
            "init_args": init}


def run_batch(
    cfgs: list[dict[str, Any]], on_done: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Run validated configs one after another on **one** Simulation Engine runtime.

    The runtime's start-up (10-25 s) is paid once instead of per run: one ServerApp whose main
    calls the round loop of each config in turn on the same grid. This works because fedqnn's
    clients take their whole config from each instruction (nothing is fixed at client start).
    All configs must share ``clients``, ``num_cpus_per_client`` and ``simulation.*`` (the runtime's shape).
    ``on_done(cfg, summary)`` is called after each run (e.g. to append a results row, so a killed
    batch resumes where it stopped). Returns the summaries; raises ``RuntimeError`` naming the
    run that failed.
    """
    if not cfgs:
        return []
    shape = {(c["clients"], json.dumps(_backend_config(c), sort_keys=True)) for c in cfgs}
    if len(shape) != 1:
        raise ValueError("run_batch: every config needs the same clients, num_cpus_per_client and simulation.* "
                         f"(one runtime), got {len(shape)} different shapes")
    _quiet_flower()
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    from clients.qpu_app import app as client_app
    from fedqnn.server_app import run_server

    summaries: list[dict[str, Any]] = []
    failure: list[BaseException] = []
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Any) -> None:
        for cfg in cfgs:
            out = Path(cfg["out"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "summary.json").unlink(missing_ok=True)
            start = time.perf_counter()
            try:
                run_server(grid, cfg)
                summary = json.loads((out / "summary.json").read_text())
                summary["process_wall_s"] = round(time.perf_counter() - start, 2)
                summaries.append(summary)
                if on_done is not None:
                    on_done(cfg, summary)
            except BaseException as exc:  # noqa: BLE001 - reported after the runtime stops
                failure.append(RuntimeError(f"run {cfg['out']} failed: {exc!r}"))
                failure[-1].__cause__ = exc
                return

    first = cfgs[0]
    linear_message_polling(bool(first.get("simulation", {}).get("fast_polling")))
    _starting(first["clients"], len(cfgs))
    run_simulation(server_app=server, client_app=client_app, num_supernodes=first["clients"],
                   backend_config=_backend_config(first))  # type: ignore[arg-type]
    if failure:
        raise failure[0]
    if len(summaries) != len(cfgs):
        raise RuntimeError(f"run_batch: only {len(summaries)} of {len(cfgs)} runs completed (see the log above)")
    return summaries


def resume_simulation(out: str | Path, rounds: int | None = None) -> dict[str, Any]:
    """Continue the run in ``out`` from its last checkpoint (a killed or finished run), up to
    ``rounds`` rounds in total (default: the stored config's). The config is the stored one."""
    from fedqnn.checkpoint import config_for_resume

    cfg = config_for_resume(out, rounds)
    return run_simulation_from_config(cfg, validated=True, resume=True)
