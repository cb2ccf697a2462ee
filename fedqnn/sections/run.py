"""The ``run`` section: the federation (clients, rounds, strategy, task, seed, ...) and plug-ins."""

from __future__ import annotations

from typing import Any

from fedqnn.registry import PLUGINS, TASKS, is_dotted_path
from fedqnn.schema import ConfigError, Field, Section, field
from strategies.config import check_strategy

__all__ = ["FIELDS", "SECTION", "check"]


def _dotted_paths(value: list[Any]) -> str | None:
    bad = [v for v in value if not is_dotted_path(v) and not (isinstance(v, str) and PLUGINS.known(v))]
    return (f"expected dotted paths 'pkg.module:Class' or 'pkg.module.Class' (or a 'fedqnn.plugins' entry "
            f"point); got {bad[0]!r}" if bad else None)


# The registry names are checked lazily (plug-ins may add names), see ``check``.
FIELDS: dict[str, Field] = {
    "clients": field(10, int, "number of simulated QPU clients (SuperNodes)", low=1, high=10_000),
    "connect_timeout": field(30.0, float, "seconds the server waits for `clients` nodes to connect before it stops "
                             "with what to do (simulated nodes connect at once; raise it for a deployment whose "
                             "SuperNodes start later)", low=0.0),
    "rounds": field(5, int, "number of federated rounds (the total, also with --resume)", low=1),
    "strategy": field("ceas", str, "aggregation strategy: a registry name or module:Class"),
    "task": field("antiderivative", str, "learning task: antiderivative, heat, digits"),
    "seed": field(0, int, "master seed: one seed makes a run repeat exactly", low=0),
    "out": field("runs/latest", str, "output directory"),
    "fraction_train": field(1.0, float, "fraction of eligible nodes sampled per round", low=0.0, high=1.0),
    "min_replies": field(2, int, "fewest valid replies a round needs, else it is skipped", low=1),
    "server_eval_every": field(1, int, "evaluate the global model on the server every N rounds", low=1),
    "num_cpus_per_client": field(1, int, "Simulation Engine: CPUs reserved per client", low=1),
    "progress": field(True, bool, "print one progress line per round"),
    "plugins": field([], list, "round plug-ins, dotted paths 'pkg.module:Class' (or pkg.module.Class) or "
                     "'fedqnn.plugins' entry points, run after the built-ins; "
                     "absent from the config when empty", check=_dotted_paths, omit_empty=True),
}


def check(cfg: dict[str, Any]) -> None:
    """The task and strategy names, then the reply threshold."""
    if cfg["task"] not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(sorted(TASKS))}; got {cfg['task']!r}")
    check_strategy(cfg["strategy"])  # raises ConfigError naming 'strategy'
    if cfg["min_replies"] > cfg["clients"]:
        raise ConfigError(
            f"min_replies: expected <= clients ({cfg['clients']}), got {cfg['min_replies']}"
        )


SECTION = Section(FIELDS, check)
