"""Atomic load/unload/reload of plugins, their calls, and per-server enablement.

Discovery and import are ``bot.plugin_loading``'s. A plugin that fails to import, set up
or tear down is logged and left out: it never takes the bot down. What a server sees is
decided here: ``enabled_for(server_pk)`` is the only way the router, the agent and the
help text learn which plugins apply; a server's choices and its plugins' scoped settings
are stored through the scoped-settings driver (``bot.scoped``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import typing
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from bot.plugin_loading import (
    Source,
    discover_sources,
    import_plugin,
    migrate_plugin,
    restore_modules,
    snapshot_modules,
)
from bot.tools import ToolSpec, build, build_sourced, make_spec
from core.cache import LRUDict
from core.caller import Caller
from core.config import scope_of
from core.errors import (
    CommandError,
    ConfigError,
    ModelError,
    PluginError,
    PluginTimeout,
    UserError,
)
from core.plugin import Command, Plugin, PluginContext, SourcedTool, Task, ToolContext

if TYPE_CHECKING:
    from bot.config import PluginsSettings
    from bot.scoped import ScopedSettings
    from core.admin import Administration
    from storage.repository import Storage
    from storage.settings import Scope

log = logging.getLogger(__name__)
T = TypeVar("T")
SOURCE_TIMEOUT_S = 5.0
"""Longest a turn waits for a plugin's tool source (the first may start a connection)."""


@dataclass(slots=True)
class Loaded:
    """A plugin that is loaded and running."""

    plugin: Plugin
    source: Source
    context: PluginContext
    tools: list[ToolSpec]
    bound_tools: list[BaseTool]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    timeout: Callable[[], float] = field(default=lambda: 30.0)  # its per-call limit, live
    # Tools its sources gave, built once each (they go when the source drops them).
    built: weakref.WeakKeyDictionary[SourcedTool, BaseTool] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def offered(
        self, text: str, *, hints: bool = True, caller: Caller | None = None
    ) -> list[BaseTool]:
        """The tools offered to the model for a message reading ``text`` from ``caller``:
        those whose hint matches (every tool when ``hints`` is off, i.e. ``[agent]
        tool_hints = false``) and whose requirements the caller meets."""
        return [
            tool
            for spec, tool in zip(self.tools, self.bound_tools, strict=True)
            if (not hints or spec.offered_for(text))
            and (caller is None or spec.needs.unmet(caller) is None)
        ]

    async def available(self, tools: list[BaseTool], ctx: ToolContext) -> list[BaseTool]:
        """Those of ``tools`` whose plugin says they are worth offering to this caller
        now (``Plugin.tool(available=...)``); a failing check leaves its tool out."""
        checks = self.plugin.tool_available
        kept: list[BaseTool] = []
        for tool in tools:
            check = checks.get(tool.name)
            try:
                if check is None or await check(ctx):
                    kept.append(tool)
            except Exception:
                log.warning(
                    "plugin %s: availability check of %s failed",
                    self.plugin.name,
                    tool.name,
                    exc_info=True,
                )
        return kept

    async def sourced(self, ctx: ToolContext, taken: set[str]) -> list[BaseTool]:
        """The tools this plugin's sources (``Plugin.tool_source``) give this caller now.

        A source that fails or takes longer than ``SOURCE_TIMEOUT_S`` gives nothing this
        turn; a tool whose name is bad or already in ``taken`` (another tool's) is left
        out and logged. Names offered are added to ``taken``.
        """
        tools: list[BaseTool] = []
        for source in self.plugin.tool_sources:
            try:
                given = await asyncio.wait_for(source(ctx), SOURCE_TIMEOUT_S)
            except Exception:
                log.warning("plugin %s: tool source failed", self.plugin.name, exc_info=True)
                continue
            for item in given:
                tool = self.built.get(item)
                if tool is None:
                    try:
                        tool = build_sourced(self.plugin.name, item, self.timeout)
                    except PluginError as exc:
                        log.warning("%s", exc)
                        continue
                    self.built[item] = tool
                if tool.name in taken:
                    log.warning("plugin %s: tool %s is taken", self.plugin.name, tool.name)
                    continue
                taken.add(tool.name)
                tools.append(tool)
        return tools


class PluginManager:
    """Loads plugins and answers which of them apply in a server.

    Each plugin gets only its port (``PluginContext``): its config, a data folder, the
    ``backends`` it declared in ``Plugin.uses`` and, for required plugins, ``admin``.
    """

    def __init__(
        self,
        settings: PluginsSettings,
        storage: Storage,
        *,
        data_dir: Path,
        scoped: ScopedSettings,
        backends: Mapping[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.data_dir = data_dir
        self.backends = dict(backends or {})
        self.admin: Administration | None = None  # given to required plugins (see attach)
        self.loaded: dict[str, Loaded] = {}
        self.sources: dict[str, Source] = {}
        self.scoped = scoped
        self._configs: LRUDict[tuple[str, int, str], BaseModel] = LRUDict(1024)
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[int | None], Awaitable[None]]] = []

    # ---- lifecycle ---------------------------------------------------------------

    async def load_all(self) -> None:
        """Discover and load every plugin; failures are logged and skipped."""
        self.sources = discover_sources(include_entry_points=not self.settings.disable_entry_points)
        for name in sorted(self.sources):
            try:
                await self.load(name)
            except PluginError as exc:
                log.error("%s", exc)
            # ConfigError / ModelError pass through: the operator must fix them, so start-up
            # stops with the message (a missing model file, a bad setting).

    async def load(self, name: str) -> Plugin:
        """Load (or atomically replace) plugin ``name``; on failure nothing changes."""
        source = self.sources.get(name)
        if source is None:
            raise PluginError(name, f"unknown plugin; known: {', '.join(sorted(self.sources))}")
        async with self._lock:
            saved = snapshot_modules(source.module)
            try:
                fresh = await self._start(source)
            except Exception:
                restore_modules(source.module, saved)
                raise
            old = self.loaded.get(name)
            self.loaded[name] = fresh
            if old is not None:
                await self._stop(old)
        await self._changed(None)
        return fresh.plugin

    async def unload(self, name: str) -> None:
        """Stop plugin ``name``: cancel its tasks and run its teardown (errors logged)."""
        async with self._lock:
            loaded = self.loaded.pop(name, None)
            if loaded is None:
                raise PluginError(name, "not loaded")
            await self._stop(loaded)
            restore_modules(loaded.source.module, {})
        await self._changed(None)

    async def reload(self, name: str) -> Plugin:
        """Re-import and restart ``name``; the old version keeps running if that fails."""
        return await self.load(name)

    async def close(self) -> None:
        """Unload every plugin."""
        for name in list(self.loaded):
            await self.unload(name)

    async def _start(self, source: Source) -> Loaded:
        restore_modules(source.module, {})
        plugin = import_plugin(source)
        if plugin.name != source.name:
            raise PluginError(source.name, f"declares the name {plugin.name!r}")
        self._check_commands(plugin)
        try:
            tools = [
                make_spec(
                    plugin.name,
                    func,
                    plugin.tool_hints.get(func.__name__),
                    plugin.tool_needs.get(func.__name__),
                )
                for func in plugin.tools
            ]
        except Exception as exc:
            raise PluginError(plugin.name, f"bad tool: {exc}") from exc
        ctx = self._context(plugin)
        await self._migrate(plugin, source)
        if plugin.setup is not None:
            await self.call(plugin.name, plugin.setup(ctx), ctx.call_timeout_s)
        bound = [build(spec, partial(self.timeout_for, plugin.name)) for spec in tools]
        loaded = Loaded(
            plugin, source, ctx, tools, bound, timeout=partial(self.timeout_for, plugin.name)
        )
        for task in plugin.tasks:
            loaded.tasks.append(asyncio.create_task(self._guard(plugin.name, task, ctx)))
        log.info("loaded plugin %s %s", plugin.name, plugin.version)
        return loaded

    async def _migrate(self, plugin: Plugin, source: Source) -> None:
        await migrate_plugin(self.storage, plugin, source)

    def _check_commands(self, plugin: Plugin) -> None:
        """Refuse a plugin whose command names another loaded plugin already declares."""
        for name in plugin.commands:
            found = self.find_command(name)
            if found is not None and found[0].plugin.name != plugin.name:
                owner = found[0].plugin.name
                raise PluginError(
                    plugin.name, f"the command /{name} is already declared by plugin {owner!r}"
                )

    async def _stop(self, loaded: Loaded) -> None:
        for task in loaded.tasks:
            task.cancel()
        await asyncio.gather(*loaded.tasks, return_exceptions=True)
        try:
            if loaded.plugin.teardown is not None:
                await self.call(loaded.plugin.name, loaded.plugin.teardown(loaded.context))
        except PluginError as exc:
            log.error("teardown failed: %s", exc)
        finally:
            log.info("unloaded plugin %s", loaded.plugin.name)

    async def _guard(self, name: str, task: Task, ctx: PluginContext) -> None:
        # The coroutine is made inside the task: a task cancelled before it first runs
        # leaves no never-awaited coroutine behind.
        try:
            await task(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task of plugin %s failed", name)

    # ---- calls -------------------------------------------------------------------

    def timeout_for(self, name: str) -> float:
        """The per-call time limit of loaded plugin ``name`` (see ``_timeout_of``)."""
        if name in self.settings.timeouts:  # read live: an operator's override wins at once
            return self.settings.timeouts[name]
        loaded = self.loaded.get(name)
        return loaded.context.call_timeout_s if loaded else self.settings.call_timeout_s

    def _timeout_of(self, plugin: Plugin, config: BaseModel | None) -> float:
        """Config ``plugins.timeouts[name]``, else the plugin's own ``call_timeout_s``
        (a number, or computed from its config), else ``plugins.call_timeout_s``."""
        if plugin.name in self.settings.timeouts:
            return self.settings.timeouts[plugin.name]
        own = plugin.call_timeout_s
        if callable(own):
            try:
                return float(own(config))
            except Exception as exc:
                raise PluginError(plugin.name, f"call_timeout_s: {exc}") from exc
        return own if own is not None else self.settings.call_timeout_s

    def _context(self, plugin: Plugin) -> PluginContext:
        """The plugin's port: its config, data folder, declared back ends, time limit."""
        try:
            config = self.default_config(plugin)
        except CommandError as exc:
            raise ConfigError(f"[plugins.config.{plugin.name}]: {exc.user_message}") from exc
        backends = {name: self.backends[name] for name in plugin.uses if name in self.backends}
        return PluginContext(
            plugin.name,
            config,
            self.data_dir,
            backends,
            self._timeout_of(plugin, config),
            self.admin if plugin.required else None,
        )

    def attach(self, admin: Administration) -> None:
        """Give required plugins the administration port (before ``load_all``)."""
        self.admin = admin

    async def call(self, name: str, work: Awaitable[T], limit_s: float | None = None) -> T:
        """Await ``work`` of plugin ``name`` within its time limit; wrap its failures."""
        timeout = limit_s if limit_s is not None else self.timeout_for(name)
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError as exc:
            raise PluginTimeout(name, f"timed out after {timeout}s") from exc
        except (PluginError, UserError, ConfigError, ModelError, StopAsyncIteration):
            raise
        except Exception as exc:
            raise PluginError(name, f"{type(exc).__name__}: {exc}") from exc

    # ---- per-server enablement ---------------------------------------------------

    def default_enabled(self, plugin: Plugin) -> bool:
        """Whether ``plugin`` is on where a server has no override (config, then plugin)."""
        configured = self.settings.enabled
        return plugin.required or configured.get(plugin.name, plugin.enabled_by_default)

    def add_listener(self, listener: Callable[[int | None], Awaitable[None]]) -> None:
        """Call ``listener(server_pk)`` after a server's plugins change (``None``: all servers,
        after a load or unload). Adapters use it to resync command menus."""
        self._listeners.append(listener)

    async def _changed(self, server_pk: int | None) -> None:
        for listener in list(self._listeners):
            try:
                await listener(server_pk)
            except Exception:
                log.exception("plugin change listener failed")

    async def enabled_for(self, server_pk: int) -> list[Loaded]:
        """Loaded plugins that apply in this server, in name order."""
        stored = await self.scoped.values("server", server_pk)
        return [
            loaded
            for name, loaded in sorted(self.loaded.items())
            if self._is_on(loaded.plugin, stored.get((name, "enabled")))
        ]

    async def set_here(self, server_pk: int) -> set[str]:
        """The plugins whose on/off state this server set itself (not the default)."""
        stored = await self.scoped.values("server", server_pk)
        return {name for (name, key) in stored if key == "enabled" and name in self.loaded}

    def _is_on(self, plugin: Plugin, stored: object) -> bool:
        if plugin.required or not isinstance(stored, bool):
            return self.default_enabled(plugin)
        return stored

    async def is_enabled(self, server_pk: int, name: str) -> bool:
        """Whether plugin ``name`` applies in this server."""
        return any(item.plugin.name == name for item in await self.enabled_for(server_pk))

    async def set_enabled(self, server_pk: int, name: str, enabled: bool) -> None:
        """Store the server's choice; takes effect at once in this process."""
        plugin = self.require(name).plugin
        if plugin.required and not enabled:
            raise CommandError(f"plugin {name} is required and cannot be disabled")
        await self.scoped.set("server", server_pk, name, "enabled", enabled)
        await self._changed(server_pk)

    async def set_config(
        self, where: Caller, name: str, key: str, value: str, *, as_user: bool = False
    ) -> tuple[Any, Scope]:
        """Set one of plugin ``name``'s scoped settings where ``where`` is: its server or
        channel (admins), or (``as_user``) the caller's own. Validated by the plugin's
        config model; returns the stored value and its scope."""
        plugin = self.require(name).plugin
        scopes = _scopes(plugin)
        wanted = {"user"} if as_user else {"server", "channel"}
        if key not in scopes or scopes[key] not in wanted:
            known = ", ".join(k for k, scope in scopes.items() if scope in wanted) or "none"
            who = "you can set for yourself" if as_user else "a server can change"
            raise CommandError(
                f"plugin {name} has no setting {key!r} that {who}; settings: {known}"
            )
        model = self._validate(plugin, {**self._file_config(name), key: value})
        stored = model.model_dump(mode="json")[key]
        scope = scopes[key]
        target = {"server": where.server_pk, "channel": where.channel_pk, "user": where.user_pk}
        await self.scoped.set(scope, target[scope], name, key, stored)
        return stored, scope

    async def config_for(
        self, plugin: Plugin, server_pk: int, channel_pk: int = 0, user_pk: int = 0
    ) -> BaseModel | None:
        """The plugin's config for a caller: defaults, then config.toml, then what the
        server, the channel and the user set (each only for fields of its scope)."""
        if plugin.config_model is None:
            return None
        scopes = _scopes(plugin)
        chosen: dict[str, Any] = {}
        for scope, target in (("server", server_pk), ("channel", channel_pk), ("user", user_pk)):
            if target and scope in scopes.values():
                stored = await self.scoped.values(scope, target)  # type: ignore[arg-type]
                chosen.update(
                    (key, value)
                    for (owner, key), value in stored.items()
                    if owner == plugin.name and scopes.get(key) == scope
                )
        return self._configured(plugin, chosen)

    def _configured(self, plugin: Plugin, chosen: dict[str, Any]) -> BaseModel:
        """The validated config with ``chosen`` on top of config.toml (memoised)."""
        memo_key = (plugin.name, id(plugin), json.dumps(chosen, sort_keys=True, default=str))
        config = self._configs.get(memo_key)
        if config is None:
            config = self._validate(plugin, {**self._file_config(plugin.name), **chosen})
            self._configs[memo_key] = config
        return config

    def default_config(self, plugin: Plugin) -> BaseModel | None:
        """The plugin's config from config.toml alone (for setup and tasks)."""
        if plugin.config_model is None:
            return None
        return self._validate(plugin, self._file_config(plugin.name))

    def require(self, name: str) -> Loaded:
        """The loaded plugin ``name``, or a CommandError listing the known names."""
        loaded = self.loaded.get(name)
        if loaded is None:
            known = ", ".join(sorted(self.loaded))
            raise CommandError(f"unknown plugin {name!r}; known plugins: {known}")
        return loaded

    def find_command(self, name: str) -> tuple[Loaded, Command] | None:
        """The loaded plugin that declares command ``name`` (enabled or not)."""
        for loaded in self.loaded.values():
            cmd = loaded.plugin.commands.get(name)
            if cmd is not None:
                return loaded, cmd
        return None

    def _file_config(self, name: str) -> dict[str, Any]:
        return dict(self.settings.config.get(name, {}))

    def _validate(self, plugin: Plugin, values: dict[str, Any]) -> BaseModel:
        if plugin.config_model is None:
            raise CommandError(f"plugin {plugin.name} has no settings")
        try:
            return plugin.config_model.model_validate(_decoded(plugin.config_model, values))
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise CommandError(f"plugin {plugin.name}: setting {key}: {err['msg']}") from exc


def _decoded(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """Values with JSON text decoded for list and dict fields: the environment gives
    only strings (``ATELIER_PLUGINS__CONFIG__KNOWLEDGE__ALLOWED_PATHS='["/srv/docs"]'``).
    A list may also be typed as comma-separated words (``/plugins config moderation
    exempt_users alice,bob``; the command line has already eaten JSON's quotes)."""
    decoded = dict(values)
    for key, value in values.items():
        field = model.model_fields.get(key)
        kind = typing.get_origin(field.annotation) if field is not None else None
        if isinstance(value, str) and kind in (list, dict, tuple, set):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                if kind is not dict:
                    items = (item.strip(" \"'") for item in value.strip("[] ").split(","))
                    decoded[key] = [item for item in items if item]
    return decoded


def _scopes(plugin: Plugin) -> dict[str, Scope]:
    """The plugin's fields that servers, channels or users may set, with their scope."""
    if plugin.config_model is None:
        return {}
    return _model_scopes(plugin.config_model)


@functools.cache
def _model_scopes(model: type[BaseModel]) -> dict[str, Scope]:
    found = {key: scope_of(model, key) for key in model.model_fields}
    return {key: scope for key, scope in found.items() if scope != "global"}
