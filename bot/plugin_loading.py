"""Finding, importing and migrating plugins (no running state; see ``bot.plugins``).

Built-ins are the packages under ``plugins/``; others register an entry point in the
``atelier.plugins`` group (pointing at a module exposing ``plugin`` or at the ``Plugin``
itself). Importing is purge-and-reimport, so a reload runs the plugin's current code;
a plugin's own tables are migrated from its ``migrations`` folder with a version table of
its own.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import plugins as builtin_plugins
from core.errors import PluginError
from core.plugin import Plugin

if TYPE_CHECKING:
    from storage.repository import Storage

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "atelier.plugins"


@dataclass(slots=True)
class Source:
    """Where a plugin comes from: a module path (built-in or entry point)."""

    name: str
    module: str
    attr: str = "plugin"


def discover_sources(*, include_entry_points: bool = True) -> dict[str, Source]:
    """Find built-in plugin packages and ``atelier.plugins`` entry points (not imported)."""
    found = {
        info.name: Source(info.name, f"{builtin_plugins.__name__}.{info.name}")
        for info in pkgutil.iter_modules(builtin_plugins.__path__)
        if info.ispkg
    }
    if include_entry_points:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            module, _, attr = ep.value.partition(":")
            found[ep.name] = Source(ep.name, module.strip(), attr.strip() or "plugin")
    return found


def discover_plugins(*, include_entry_points: bool = True) -> dict[str, Plugin]:
    """Import every discoverable plugin and return its metadata (for listings)."""
    result: dict[str, Plugin] = {}
    for name, source in discover_sources(include_entry_points=include_entry_points).items():
        try:
            result[name] = import_plugin(source)
        except PluginError as exc:
            log.error("%s", exc)
    return result


async def migrate_plugin(storage: Storage, plugin: Plugin, source: Source) -> None:
    """Bring a plugin's own tables up to date (its migrations, its version table)."""
    if plugin.migrations is None:
        return
    module = sys.modules.get(source.module)
    folder = Path(getattr(module, "__file__", "") or ".").parent / plugin.migrations
    if not folder.is_dir():
        raise PluginError(plugin.name, f"migrations folder not found: {folder}")
    await storage.upgrade_plugin(plugin.name, folder, plugin.tables)


async def migrate_all(storage: Storage, *, include_entry_points: bool = True) -> list[str]:
    """Apply every discoverable plugin's migrations (``atelier db upgrade``); their names."""
    done = []
    for name, source in discover_sources(include_entry_points=include_entry_points).items():
        plugin = import_plugin(source)
        if plugin.migrations is not None:
            await migrate_plugin(storage, plugin, source)
            done.append(name)
    return done


def import_plugin(source: Source) -> Plugin:
    try:
        module = importlib.import_module(source.module)
        found: Any = getattr(module, source.attr)
    except Exception as exc:
        raise PluginError(source.name, f"cannot import {source.module}: {exc}") from exc
    if isinstance(found, ModuleType):
        found = getattr(found, "plugin", None)
    if not isinstance(found, Plugin):
        raise PluginError(source.name, f"{source.module}:{source.attr} is not a Plugin")
    return found


def snapshot_modules(prefix: str) -> dict[str, ModuleType]:
    return {k: m for k, m in sys.modules.items() if k == prefix or k.startswith(prefix + ".")}


def restore_modules(prefix: str, saved: dict[str, ModuleType]) -> None:
    """Purge ``prefix``'s modules from ``sys.modules``, then put ``saved`` back."""
    for key in list(snapshot_modules(prefix)):
        del sys.modules[key]
    sys.modules.update(saved)
