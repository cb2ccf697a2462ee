"""Strategy registry: names -> Flower ``Strategy`` factories, plus plug-ins.

A strategy is named by

* a registry name (``fedavg``, ``krum``, ``multikrum``, ``median``, ``trimmed-mean``, ``bulyan``,
  ``nnm-cc`` (NNM + centred clipping, :mod:`strategies.nnm_cc`), and ``ceas`` once registered by
  :mod:`strategies.ceas`);
* ``module:Class`` (or ``module.Class``): any subclass of ``flwr.serverapp.strategy.Strategy``,
  built with ``Class.from_fedqnn_config(cfg)`` if it defines that classmethod, else ``Class()``;
* an entry point in the group ``fedqnn.strategies`` (its object is a class or a factory
  ``cfg -> Strategy``).

fedqnn's server selects participants itself (uniformly among eligible nodes, seeded), so every
strategy is built with ``fraction_train=1.0`` and sees exactly the selected nodes.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import Strategy

from fedqnn.config import ConfigError
from strategies.flower_builtins import BUILTINS

__all__ = ["REGISTRY", "register", "resolve_strategy_name", "build_strategy", "byzantine_f"]

Factory = Callable[[dict[str, Any]], Strategy]
REGISTRY: dict[str, Factory] = dict(BUILTINS)


def register(name: str, factory: Factory) -> None:
    """Add a strategy under ``name`` (plug-ins may call this at import)."""
    REGISTRY[name] = factory


def byzantine_f(cfg: dict[str, Any], participants: int) -> int:
    """f = ceil(byzantine_fraction x participants): the Byzantine count robust rules assume."""
    return int(math.ceil(cfg.get("byzantine_fraction", 0.0) * participants - 1e-9))


def _builtin_registry() -> None:
    from strategies.nnm_cc import build_nnm_cc

    REGISTRY.setdefault("nnm-cc", build_nnm_cc)
    # The CEAS strategy registers itself when its module is importable.
    try:
        importlib.import_module("strategies.ceas")
    except ModuleNotFoundError as exc:
        if exc.name != "strategies.ceas":
            raise


def _from_class(obj: Any, label: str) -> Factory:
    if isinstance(obj, type):
        if not issubclass(obj, Strategy):
            raise ConfigError(f"strategy: {label} is not a subclass of flwr.serverapp.strategy.Strategy")
        if hasattr(obj, "from_fedqnn_config"):
            return obj.from_fedqnn_config
        return lambda cfg: obj()
    if callable(obj):
        return obj
    raise ConfigError(f"strategy: {label} is neither a Strategy class nor a factory")


def resolve_strategy_name(name: str) -> Factory:
    """The factory for ``name``; a clear :class:`ConfigError` naming ``strategy`` otherwise."""
    _builtin_registry()
    if name in REGISTRY:
        return REGISTRY[name]
    from importlib.metadata import entry_points

    for ep in entry_points(group="fedqnn.strategies"):
        if ep.name == name:
            return _from_class(ep.load(), f"entry point {name!r}")
    if ":" in name or ("." in name and not name.startswith(".")):
        module, _, attr = name.rpartition(":") if ":" in name else name.rpartition(".")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"strategy: cannot import module {module!r} ({exc})") from exc
        if not hasattr(mod, attr):
            raise ConfigError(f"strategy: module {module!r} has no attribute {attr!r}")
        return _from_class(getattr(mod, attr), name)
    raise ConfigError(
        f"strategy: expected one of {', '.join(sorted(REGISTRY))}, module:Class, "
        f"or a 'fedqnn.strategies' entry point; got {name!r}"
    )


def build_strategy(cfg: dict[str, Any]) -> Strategy:
    strategy = resolve_strategy_name(cfg["strategy"])(cfg)
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy: {cfg['strategy']!r} did not build a flwr Strategy (got {type(strategy).__name__})")
    return strategy
