"""Round plugins: how a subsystem takes part in a round (see ``docs/architecture.md``).

A plugin subclasses :class:`RoundPlugin` and overrides the hooks it needs; every hook is a no-op
by default, in the style of Lightning's ``Callback``. The server calls each hook on every plugin in
the run's order (:func:`plugin_order`), so that order, not ``if x is not None`` branches in the
loop, decides who acts first. One round, in the order the hooks run::

    filter_eligible -> (seeded selection) -> round_start -> (strategy.configure_train)
    -> before_send -> (send, receive) -> after_replies -> (verification, aggregation)
    -> before_eval -> (evaluation) -> on_record -> (row written, checkpoint) -> round_end

``setup`` runs once before round 1, ``on_resume`` after a resumed run's plugin states are
restored, ``run_end`` once after the last round (it adds to the summary), ``teardown`` once the
summary and the plot are written. A plugin's :attr:`RoundPlugin.name` is its key
in the checkpoint: ``state_dict()`` (``None`` = nothing to keep) is saved after every round and
handed back to ``load_state_dict`` on ``--resume``. States may hold JSON values, ``bytes`` and
Flower records (:mod:`fedqnn.checkpoint` stores them).

Plugins share one :class:`RoundState` per round: the selection, the instructions, the replies,
the verdicts, the events for the row, and :attr:`RoundState.data`, a blackboard for what one
plugin hands to another (the keys the built-ins use are listed there). Long-lived services (the
update verifier, the broker) are published on :attr:`RunContext.services`.

This module is the protocol only: it imports no Flower, torch or PennyLane. Plugins are found
through :data:`fedqnn.registry.PLUGINS` (built-ins, ``fedqnn.plugins`` entry points, dotted paths).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedqnn.schema import ConfigError

__all__ = [
    "RoundPlugin", "RunContext", "RoundState", "HOOKS", "call", "plugin_order", "build_plugins",
    "load_plugin", "check_plugins", "PluginError",
]

#: The hooks, in the order one run calls them (``on_resume`` only when resuming).
HOOKS = ("setup", "on_resume", "filter_eligible", "round_start", "before_send", "after_replies",
         "before_eval", "on_record", "round_end", "run_end", "teardown")


class PluginError(ConfigError):
    """A plugin that cannot be loaded or that breaks the protocol (e.g. two with one name)."""


class RoundPlugin:
    """Base class of round plugins: every hook does nothing; override the ones you need."""

    #: The plugin's key in the checkpoint and in ``RunContext.plugin``; unique within a run.
    name: str = ""

    def __init__(self, cfg: dict[str, Any] | None = None) -> None:
        """A plugin named in ``plugins`` is built as ``Class(cfg)``; the base ignores ``cfg``."""

    def setup(self, run: RunContext) -> None:
        """Once, before round 1 (and before a resumed run's states are loaded)."""

    def on_resume(self, run: RunContext) -> None:
        """Once, on ``--resume``, after every plugin's ``load_state_dict``."""

    def filter_eligible(self, state: RoundState, nodes: list[str]) -> list[str]:
        """The nodes this round may select from (default: all it is given)."""
        return nodes

    def round_start(self, state: RoundState) -> None:
        """After selection, before the strategy builds instructions: reserve resources, remove
        nodes (:meth:`RoundState.drop`), add entries to :attr:`RoundState.broadcast`."""

    def before_send(self, state: RoundState) -> None:
        """The instructions are built (:attr:`RoundState.messages`); edit them before they go."""

    def after_replies(self, state: RoundState) -> None:
        """The replies are in (:attr:`RoundState.replies`, sorted by node), not yet verified."""

    def before_eval(self, state: RoundState, model: Any) -> None:
        """The new global model is loaded into ``model``; adjust it before the server evaluates."""

    def on_record(self, state: RoundState, row: dict[str, Any]) -> None:
        """Add to the round's ``metrics.jsonl`` row before it is written."""

    def round_end(self, state: RoundState, row: dict[str, Any]) -> None:
        """The row is on disk and the checkpoint written (progress output, trackers)."""

    def run_end(self, run: RunContext, extra: dict[str, Any]) -> None:
        """After the last round: add to ``summary.json`` through ``extra``."""

    def teardown(self, run: RunContext, summary: dict[str, Any]) -> None:
        """``summary.json`` and the plot are written: close files, upload artifacts."""

    def state_dict(self) -> Any:
        """What ``--resume`` needs to continue exactly (``None``: nothing)."""
        return None

    def load_state_dict(self, state: Any) -> None:
        """Restore what :meth:`state_dict` returned."""


@dataclass
class RunContext:
    """What every plugin may read about the run (set up by the server before ``setup``)."""

    cfg: dict[str, Any]
    task: Any
    node_names: list[str]
    names: dict[int, str]  # Flower node id -> node name
    select: Callable[[list[str], int], list[str]]  # (eligible, round) -> the seeded selection
    flower_run_id: int | None = None
    resume: bool = False
    services: dict[str, Any] = field(default_factory=dict)  # e.g. "verifier", "broker"
    plugins: list[RoundPlugin] = field(default_factory=list)

    def plugin(self, name: str) -> RoundPlugin | None:
        return next((p for p in self.plugins if p.name == name), None)


@dataclass
class RoundState:
    """The shared record of one round; plugins read and write it in hook order.

    ``data`` keys the built-ins use: ``"drain"`` (adversary -> broker: extra Bell pairs draining
    nodes ask for), ``"key_demand"`` (QKD -> broker: pairs for key exchange), ``"key_pairs"``
    (broker -> QKD: the key pairs delivered), ``"plan"`` (partition planner: the round's plan).
    """

    round: int
    arrays: Any  # the global ArrayRecord broadcast this round
    selected: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # event -> nodes removed pre-send
    broadcast: dict[str, Any] = field(default_factory=dict)  # added to every instruction's record
    messages: list[Any] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    ok: list[Any] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    events: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # plugin name -> events
    data: dict[str, Any] = field(default_factory=dict)

    def drop(self, nodes: Sequence[str], event: str) -> None:
        """Remove ``nodes`` from the selection before any instruction is built; each gets an
        ``event`` in the row and counts toward a skipped round's reason."""
        gone = [n for n in self.selected if n in set(nodes)]
        if gone:
            self.dropped.setdefault(event, []).extend(gone)
            self.selected = [n for n in self.selected if n not in set(gone)]

    def event(self, plugin: RoundPlugin, node: str, kind: str) -> None:
        """Record ``kind`` for ``node`` in the row's ``events`` (grouped by plugin, in plugin order)."""
        self.events.setdefault(plugin.name, []).append({"node": node, "event": kind})

    def row_events(self, plugins: Sequence[RoundPlugin], failed: Sequence[str],
                   reasons: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """The row's events: no-reply (with Flower's ``reason`` when Flower answered for the
        node, e.g. a lost SuperNode), then the drops, then each plugin's, in plugin order."""
        reasons = reasons or {}
        out = [{"node": n, "event": "no-reply", **({"reason": reasons[n]} if n in reasons else {})} for n in failed]
        out += [{"node": n, "event": ev} for ev, nodes in self.dropped.items() for n in nodes]
        return out + [e for p in plugins for e in self.events.get(p.name, [])]


def call(plugins: Sequence[RoundPlugin], hook: str, *args: Any) -> None:
    """Call ``hook`` on every plugin, in order."""
    for p in plugins:
        getattr(p, hook)(*args)


# --------------------------------------------------------------------------- building the list
#: The built-ins (names in :data:`fedqnn.registry.PLUGINS`, each a factory that returns None
#: when its subsystem is off), in run order. The order is the pipeline: the adversary asks for
#: Bell pairs and QKD for key pairs before the broker serves; the planner plans on what the
#: broker served; the verifier signs last, over the final instruction; ``noisy_eval`` only adds
#: ``eval_noisy`` to the row. The config's ``plugins`` come next, then ``progress`` and ``tracking``.
BUILTINS = ("manifest", "adversary", "qkd", "broker", "partitions", "verifier", "noisy_eval")
LAST = ("progress", "tracking")


def _factory(name: str) -> Callable[[dict[str, Any]], Any]:
    from fedqnn.registry import PLUGINS, RegistryError

    try:
        factory = PLUGINS.resolve(name)
    except RegistryError as exc:
        raise PluginError(str(exc)) from exc
    if not callable(factory):
        raise PluginError(f"plugins: {name!r} is not a class or factory")
    return factory


def check_plugins(cfg: dict[str, Any]) -> None:
    """Import every plugin the config names (the server side, before a run starts): a path that
    does not resolve fails here with the reason. Config validation checks only the names' shape,
    because clients validate the config too and need not have the server's plugins installed."""
    for name in cfg.get("plugins", ()):
        _factory(name)


def load_plugin(name: str, cfg: dict[str, Any]) -> RoundPlugin | None:
    """The plugin for ``name``: a built-in, a ``fedqnn.plugins`` entry point or a dotted path
    (``pkg.mod:Factory``), naming a RoundPlugin subclass or a factory called with the config
    dict; it returns a :class:`RoundPlugin` (or ``None`` to sit the run out)."""
    plugin = _factory(name)(cfg)
    if plugin is not None and not isinstance(plugin, RoundPlugin):
        raise PluginError(f"plugins: {name!r} returned {type(plugin).__name__}, expected a fedqnn.plugins.RoundPlugin")
    return plugin


def plugin_order(cfg: dict[str, Any]) -> list[str]:
    """The plugin names and paths the config asks for, in run order."""
    return [*BUILTINS, *cfg.get("plugins", ()), *LAST]


def build_plugins(cfg: dict[str, Any]) -> list[RoundPlugin]:
    """The run's plugins, in order (built-ins that are off are left out)."""
    plugins = [p for name in plugin_order(cfg) if (p := load_plugin(name, cfg)) is not None]
    names = [p.name for p in plugins]
    if any(not n for n in names):
        raise PluginError(f"plugins: every plugin needs a non-empty name (got {names})")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PluginError(f"plugins: two plugins share the name {dup[0]!r} (a name is a checkpoint key)")
    return plugins
