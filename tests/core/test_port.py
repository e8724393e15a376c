"""A plugin sees its port, not the house: no settings, secrets, storage or plugin manager.

The sample plugin records every context the core hands it (set-up task, command, tool,
inbound and outbound hooks); everything reachable from those objects through attributes
and containers is searched for the app's internals and for the secrets' values.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretStr

from bot.app import App
from bot.config import Settings
from bot.plugins import PluginManager, Source
from bot.server_state import ServerState
from bot.services import Services
from core.plugin import CommandContext, HookContext, PluginContext, ToolContext
from storage.repository import Storage
from tests.core.conftest import origin, say
from tests.fakes import ScriptedChatModel, script, tool_call

TOKEN = "discord-token-that-must-not-leak"
API_KEY = "llm-key-that-must-not-leak"
FORBIDDEN = (Settings, Services, Storage, PluginManager, ServerState, App, SecretStr)


def _reachable(root: object, limit: int = 20_000) -> Iterator[object]:
    """Objects reachable from ``root`` through attributes and containers (not code)."""
    seen: set[int] = set()
    todo = [root]
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type | type(dataclasses)) or callable(obj):
            continue
        seen.add(id(obj))
        yield obj
        todo.extend(_children(obj))


def _children(obj: object) -> list[object]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, list | tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, BaseModel):
        return list(obj.__dict__.values())
    found = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                found.append(getattr(obj, name))
    return found


async def test_a_plugin_reaches_no_settings_secrets_storage_or_manager(
    settings: Settings, model: ScriptedChatModel
) -> None:
    settings.discord.token = SecretStr(TOKEN)
    settings.llm.api_key = SecretStr(API_KEY)
    model.messages = script(tool_call("whoami"), "done", repeat=True)
    async with await App.start(settings, chat_model=model) as app:
        app.plugins.sources["echo"] = Source("echo", "tests.core.sample_plugin")
        await app.plugins.load("echo")  # a fresh import of the module
        contexts: list[object] = sys.modules["tests.core.sample_plugin"].contexts
        await say(app, "/echo hi")
        await say(app, "who am I?")

    kinds = {type(ctx) for ctx in contexts}
    assert kinds == {PluginContext, CommandContext, ToolContext, HookContext}
    leaks: list[str] = []
    for ctx in contexts:
        for obj in _reachable(ctx):
            if isinstance(obj, FORBIDDEN) or obj in (TOKEN, API_KEY):
                leaks.append(f"{type(ctx).__name__} reaches {type(obj).__name__}")
    assert leaks == []


async def test_only_required_plugins_get_the_administration_port(echo_app: App) -> None:
    ports: dict[str, Any] = {
        name: loaded.context.admin for name, loaded in echo_app.plugins.loaded.items()
    }

    admin = ports.pop("admin")
    assert admin is not None
    assert [name for name, port in ports.items() if port is not None] == []


async def test_a_plugin_gets_only_the_back_ends_it_declared(echo_app: App) -> None:
    given = {name: set(loaded.context.backends) for name, loaded in echo_app.plugins.loaded.items()}

    assert given["echo"] == set()
    assert given["calculator"] == set()
    assert given["imagine"] <= {"image", "database"}
    assert "llm" not in given["imagine"]


async def test_the_admin_plugin_still_administers_through_its_port(echo_app: App) -> None:
    answer = await say(echo_app, "/plugins disable echo", admin=True)

    assert answer.startswith("Plugin echo is now disabled in this server.")
    identity = await echo_app.services.storage.identify(origin())
    assert not await echo_app.plugins.is_enabled(identity.server_pk, "echo")


def test_no_plugin_module_imports_the_houses_services_settings_or_storage() -> None:
    import ast
    from pathlib import Path

    forbidden = {"Services", "Settings", "Storage", "PluginManager", "ServerState"}
    found = []
    for path in sorted(Path(__file__).resolve().parents[2].joinpath("plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = {alias.name for alias in node.names}
                if names & forbidden or (node.module or "").startswith(("bot", "storage.repo")):
                    found.append(f"{path.name}: from {node.module} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                found += [f"{path.name}: import {a.name}" for a in node.names if a.name == "bot"]
    assert found == []
