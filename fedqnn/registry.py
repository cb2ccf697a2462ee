"""One registry type for every plug-in point, and the built-in names of each.

A :class:`Registry` maps names to objects. Built-ins are registered *lazily* as strings
(``"pkg.module:attr"``, or ``"pkg.module"`` for a module that registers the name itself when
imported), so naming them imports nothing: config validation and ``fedqnn --help`` know every
name without loading torch or Flower. An object is loaded on first access. Besides registered
names a registry resolves the entry points of its group and dotted paths (``"pkg.mod:Attr"`` or
``"pkg.mod.Attr"``), and an unknown name fails with the known ones and the closest matches.

Standard library only (and :mod:`importlib.metadata`). The registries, their entry-point groups
and where their objects live:

============== ============================= ===========================================
registry       group                         public name
============== ============================= ===========================================
STRATEGIES     ``fedqnn.strategies``         ``strategies.registry.REGISTRY``
ATTACKS        ``fedqnn.attacks``            ``clients.attacks.ATTACKS``
POLICIES       ``fedqnn.broker_policies``    ``fedqnn.network.policies.POLICIES``
SCHEDULERS     ``fedqnn.schedulers``         ``fedqnn.scheduling.registry.METHODS``
TASKS          ``fedqnn.tasks``              ``fedqnn.tasks.TASKS``
PLUGINS        ``fedqnn.plugins``            ``fedqnn.plugins.BUILTINS`` (round plug-ins)
============== ============================= ===========================================
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = [
    "Registry",
    "RegistryError",
    "is_dotted_path",
    "split_dotted_path",
    "import_dotted_path",
    "STRATEGIES",
    "ATTACKS",
    "POLICIES",
    "SCHEDULERS",
    "TASKS",
    "PLUGINS",
]


class RegistryError(KeyError, ValueError):
    """An unknown name or a dotted path that does not resolve (the text says which and why)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class _Lazy:
    """A registered name whose object is not imported yet: ``module`` or ``module:attr``."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def __repr__(self) -> str:
        return f"<lazy {self.target}>"


def split_dotted_path(path: str) -> tuple[str, str]:
    """``"pkg.mod:Attr.sub"`` -> ``("pkg.mod", "Attr.sub")``; ``"pkg.mod.Attr"`` -> ``("pkg.mod", "Attr")``."""
    module, _, attr = path.rpartition(":") if ":" in path else path.rpartition(".")
    return module, attr


def is_dotted_path(text: object) -> bool:
    """True for ``"pkg.module:Class"`` (or ``"module:Class"``, ``"pkg.module:Class.attr"``) and
    ``"pkg.module.Class"``: Python identifiers joined by dots, at most one colon."""
    if not isinstance(text, str) or text.count(":") > 1:
        return False
    module, colon, attr = text.partition(":")
    parts = module.split(".") + (attr.split(".") if colon else [])
    return all(p.isidentifier() for p in parts) and (bool(colon) or len(parts) >= 2)


def import_dotted_path(path: str, kind: str = "object") -> Any:
    """Import ``"pkg.mod:Attr"`` / ``"pkg.mod.Attr"``; :class:`RegistryError` naming ``kind`` if not."""
    module, attr = split_dotted_path(path)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise RegistryError(f"{kind}: cannot import module {module!r} ({exc})") from exc
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RegistryError(f"{kind}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class Registry(MutableMapping[str, Any]):
    """Names -> objects, built-ins registered lazily, plus the entry points of ``group``.

    As a mapping it holds the *registered* names (in registration order; ``in`` never imports);
    entry points are listed by :meth:`names` and loaded by :meth:`resolve`.
    """

    def __init__(self, kind: str, group: str | None = None, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, Any] = {}
        for name, target in (builtins or {}).items():
            self.register_lazy(name, target)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={list(self._items)})"

    # registration
    def register(self, name: str, obj: Any) -> Any:
        """Register (or replace) ``name``; returns ``obj`` (usable as a decorator's body)."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind}: a registry name must be a non-empty string, got {name!r}")
        self._items[name] = obj
        return obj

    def provide(self, name: str, obj: Any) -> None:
        """Register ``obj`` unless ``name`` already holds a loaded object: how a module fills in
        the built-ins registered lazily as that module (a plug-in registered earlier wins)."""
        if not self.is_loaded(name):
            self.register(name, obj)

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"pkg.module:attr"`` (imported on first use), or as ``"pkg.module"``:
        a module that registers ``name`` itself when imported."""
        self.register(name, _Lazy(target))

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s object is imported (False for unknown names)."""
        return name in self._items and not isinstance(self._items[name], _Lazy)

    # mapping protocol
    def __getitem__(self, name: str) -> Any:
        obj = self._items[name]
        if isinstance(obj, _Lazy):
            obj = self._load(name, obj)
        return obj

    def __setitem__(self, name: str, obj: Any) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def _load(self, name: str, lazy: _Lazy) -> Any:
        module, colon, attr = lazy.target.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RegistryError(f"{self.kind}: built-in {name!r} cannot be imported from "
                                f"{module!r} ({exc})") from exc
        if name in self._items and not isinstance(self._items[name], _Lazy):
            return self._items[name]  # the module registered the name itself while importing
        if not colon:
            raise RegistryError(f"{self.kind}: importing {module!r} did not register {name!r}")
        obj = import_dotted_path(lazy.target, self.kind)
        self._items[name] = obj
        return obj

    # entry points and names
    def entry_points(self) -> dict[str, EntryPoint]:
        """The installed entry points of :attr:`group` by name (none when the metadata is unreadable)."""
        if not self.group:
            return {}
        try:
            return {ep.name: ep for ep in entry_points(group=self.group)}
        except Exception:  # noqa: BLE001 - a broken environment must not break the built-ins
            return {}

    def names(self) -> list[str]:
        """Registered names, then the entry points' names not registered (nothing is imported)."""
        names = list(self._items)
        return names + [n for n in self.entry_points() if n not in self._items]

    def known(self, name: str) -> bool:
        """``name`` is registered or an installed entry point (nothing is imported)."""
        return name in self._items or name in self.entry_points()

    def resolve(self, name: str) -> Any:
        """The object for ``name``: a registered name, an entry point of :attr:`group`, or a
        dotted path; else :class:`RegistryError` listing the known names and the closest."""
        if name in self._items:
            return self[name]
        ep = self.entry_points().get(name)
        if ep is not None:
            return ep.load()
        if is_dotted_path(name):
            return import_dotted_path(name, self.kind)
        known = self.names()
        hits = difflib.get_close_matches(name, known, n=3)
        hint = f" (did you mean {', '.join(hits)}?)" if hits else ""
        where = f", a '{self.group}' entry point" if self.group else ""
        raise RegistryError(f"{self.kind}: unknown {name!r}{hint}; expected one of {', '.join(known) or '(none)'}"
                            f"{where} or a dotted path pkg.module:Name")


# Built-ins, by name, as import strings (see the module docstring for the public names).
STRATEGIES = Registry("strategy", "fedqnn.strategies", {
    **{name: "strategies.registry"  # Flower's rules behind fedqnn's guards (strategies.flower_builtins)
       for name in ("fedavg", "median", "trimmed-mean", "krum", "multikrum", "bulyan")},
    "nnm-cc": "strategies.nnm_cc:build_nnm_cc",
    "ceas": "strategies.ceas:CEAS.from_fedqnn_config",
})
ATTACKS = Registry("attack", "fedqnn.attacks", {
    name: "clients.attacks"  # AttackSpec objects, built in clients/attacks/__init__.py
    for name in ("sign-flip", "gaussian", "scaled", "alie", "ipm", "mimic", "min-max", "min-sum",
                 "fang-krum", "fang-median", "stamp-adaptive", "stamp-inflation", "boundary", "fit-capture",
                 "optimising")
})
POLICIES = Registry("broker.policy", "fedqnn.broker_policies", {
    "aware": "fedqnn.network.policies:AwarePolicy",
    "oblivious": "fedqnn.network.policies:ObliviousPolicy",
    "random": "fedqnn.network.policies:RandomPolicy",
    "oracle": "fedqnn.network.policies:OraclePolicy",
    "jit": "fedqnn.network.policies:JitPolicy",
    "full": "fedqnn.network.policies:FullPolicy",
    "lookahead": "fedqnn.network.policies:LookaheadPolicy",
})
SCHEDULERS = Registry("method", "fedqnn.schedulers", {
    name: f"fedqnn.scheduling.methods:solve_{name.replace('-', '_')}"
    for name in ("auto", "hybrid", "qaoa", "greedy", "sa", "random", "qi-random", "exact")
})
TASKS = Registry("task", "fedqnn.tasks", {
    name: "fedqnn.tasks" for name in ("antiderivative", "heat", "digits")  # Task instances
})
PLUGINS = Registry("plugins", "fedqnn.plugins", {  # factories cfg -> RoundPlugin | None, see fedqnn.plugins
    "manifest": "fedqnn.manifest:from_config",
    "adversary": "clients.byzantine_plugin:from_config",
    "qkd": "fedqnn.security.round_plugins:qkd_from_config",
    "broker": "fedqnn.network.round_plugin:from_config",
    "partitions": "fedqnn.partitions.round_plugin:from_config",
    "verifier": "fedqnn.security.round_plugins:verifier_from_config",
    "noisy_eval": "fedqnn.noisy_eval:from_config",
    "progress": "fedqnn.progress:from_config",
    "tracking": "fedqnn.tracking:from_config",
})
