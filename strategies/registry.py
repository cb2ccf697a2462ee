"""Strategy registry: names -> Flower ``Strategy`` factories, plus plug-ins.

A strategy is named by

* a registry name (``fedavg``, ``krum``, ``multikrum``, ``median``, ``trimmed-mean``, ``bulyan``,
  ``nnm-cc`` (NNM + centred clipping, :mod:`strategies.nnm_cc`), and ``ceas`` once registered by
  :mod:`strategies.ceas`);
* ``module:Class`` (or ``module.Class``): any subclass of ``flwr.serverapp.strategy.Strategy``,
  built with ``Class.from_fedqnn_config(cfg)`` if it defines that classmethod, else ``Class()``;
* an entry point in the group ``fedqnn.strategies`` (its object is a class or a factory
  ``cfg -> Strategy``).

The names live in :data:`fedqnn.registry.STRATEGIES` (``REGISTRY`` here), the built-ins as import
strings, so config validation knows them without importing Flower.

fedqnn's server selects participants itself (uniformly among eligible nodes, seeded), so every
strategy is built with ``fraction_train=1.0`` and sees exactly the selected nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.serverapp.strategy import Strategy

from fedqnn.registry import STRATEGIES, RegistryError, import_dotted_path
from fedqnn.schema import ConfigError
from strategies.flower_builtins import BUILTINS

__all__ = ["REGISTRY", "register", "resolve_strategy_name", "build_strategy"]

Factory = Callable[[dict[str, Any]], Strategy]
REGISTRY = STRATEGIES  # name -> factory; "fedavg" etc. registered lazily as this module
for _name, _factory in BUILTINS.items():
    REGISTRY.provide(_name, _factory)


def register(name: str, factory: Factory) -> None:
    """Add a strategy under ``name`` (plug-ins may call this at import)."""
    REGISTRY[name] = factory


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
    if name in REGISTRY:
        return REGISTRY[name]
    ep = REGISTRY.entry_points().get(name)
    if ep is not None:
        return _from_class(ep.load(), f"entry point {name!r}")
    if ":" in name or ("." in name and not name.startswith(".")):
        try:
            obj = import_dotted_path(name, "strategy")
        except RegistryError as exc:
            raise ConfigError(str(exc)) from exc
        return _from_class(obj, name)
    raise ConfigError(
        f"strategy: expected one of {', '.join(sorted(REGISTRY))}, module:Class, "
        f"or a 'fedqnn.strategies' entry point; got {name!r}"
    )


def build_strategy(cfg: dict[str, Any]) -> Strategy:
    strategy = resolve_strategy_name(cfg["strategy"])(cfg)
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"strategy: {cfg['strategy']!r} did not build a flwr Strategy (got {type(strategy).__name__})")
    return strategy
