"""Slash commands generated from the plugins' ``Command`` specs, synced per guild.

``build_commands`` turns the commands of the plugins enabled in a guild into discord.py
``app_commands`` objects (typed options with descriptions, choices, ranges; groups with
subcommands). Every string option gets a ``max_length`` (its own, else the message limit,
never over Discord's 6,000), so Discord itself refuses overlong text before it reaches the
bot; the core checks the same on every platform (``bind`` an option's own ``max_length``,
the router the message limit). Each generated callback only forwards ``(interaction,
name, subcommand, options)`` to the adapter: validation and the admin check stay in the
core.
``GuildSync`` keeps each guild's command menu equal to what is enabled there: debounced,
one sync in flight per guild, skipped when nothing changed. This module never decides
who may run a command (``default_permissions`` is only a hint for the menu).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import discord
from discord import app_commands

from core.plugin import Command, Option

log = logging.getLogger(__name__)

Invoke = Callable[[discord.Interaction, str, str | None, dict[str, Any]], Awaitable[None]]
"""The adapter's entry point: ``invoke(interaction, name, subcommand, options)``."""

AppCommand = app_commands.Command[Any, ..., Any] | app_commands.Group

_DESCRIPTION_LIMIT = 100
_MAX_CHOICES = 25
_MAX_OPTIONS = 25
_MAX_FILES = 3  # attachment fields offered on a command that takes files
MAX_STRING_LENGTH = 6000  # the longest string option value Discord accepts
_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
_ADMIN_HINT = discord.Permissions(manage_guild=True)


def build_commands(
    specs: list[Command], invoke: Invoke, *, max_text: int = MAX_STRING_LENGTH
) -> list[AppCommand]:
    """The app commands for ``specs``; a spec Discord would reject is logged and skipped.

    ``max_text`` is the ``max_length`` of string options that declare none (the bot's
    message limit, ``limits.max_message_chars``); no option exceeds Discord's 6,000.
    """
    built: list[AppCommand] = []
    for spec in specs:
        try:
            built.append(_build(spec, invoke, max_text))
        except (TypeError, ValueError) as exc:
            log.error("discord: cannot offer /%s as a slash command: %s", spec.name, exc)
    return built


def _build(spec: Command, invoke: Invoke, max_text: int) -> AppCommand:
    if not spec.subcommands:
        command = _command(spec, spec.name, None, invoke, max_text)
        if spec.admin_only:
            command.default_permissions = _ADMIN_HINT
        return command
    group = app_commands.Group(
        name=spec.name,
        description=_short(spec.description),
        default_permissions=_ADMIN_HINT if _mostly_admin(spec) else None,
    )
    for sub in spec.subcommands.values():
        group.add_command(_command(sub, spec.name, sub.name, invoke, max_text))
    return group


def _mostly_admin(spec: Command) -> bool:
    """Hide a group such as ``/plugins`` from members when most of it is for admins.

    Discord only lets top-level commands carry default permissions. Server admins can
    change this in the server's Integrations settings; the core checks every call anyway.
    """
    if spec.admin_only:
        return True
    admin = sum(1 for sub in spec.subcommands.values() if sub.admin_only)
    return admin * 2 > len(spec.subcommands)


def _command(
    spec: Command, name: str, subcommand: str | None, invoke: Invoke, max_text: int
) -> app_commands.Command[Any, ..., Any]:
    files = min(spec.files, _MAX_FILES)
    options = [_bounded(option, max_text) for option in spec.options[: _MAX_OPTIONS - files]]
    callback = _callback(options, name, subcommand, invoke, files)
    return app_commands.Command(
        name=spec.name, description=_short(spec.description), callback=callback
    )


def _bounded(option: Option, max_text: int) -> Option:
    """A string option with a ``max_length`` Discord accepts (1 to 6,000)."""
    if option.type != "string" or option.choices:
        return option
    length = option.max_length if option.max_length is not None else max_text
    return dataclasses.replace(option, max_length=max(1, min(length, MAX_STRING_LENGTH)))


def _callback(
    options: list[Option], name: str, subcommand: str | None, invoke: Invoke, files: int = 0
) -> Callable[..., Coroutine[Any, Any, None]]:
    """An ``async def (interaction, p0, p1, ...)`` whose signature describes ``options``.

    discord.py reads option types from the callback's signature; the parameters are named
    ``p0``, ``p1``... and renamed to the options' names, so any option name Discord accepts
    works even where it is not a Python identifier. ``files`` optional attachment fields
    (``file``, ``file2``...) follow; their values reach ``invoke`` as
    ``discord.Attachment`` objects, which the client turns into the event's attachments.
    """
    names = {f"p{i}": opt.name for i, opt in enumerate(options)}
    files_at = {f"f{i}": "file" if i == 0 else f"file{i + 1}" for i in range(files)}

    async def callback(interaction: discord.Interaction, **values: Any) -> None:
        given = {names[key]: value for key, value in values.items() if value is not None}
        await invoke(interaction, name, subcommand, given)

    first = inspect.Parameter(
        "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
    )
    params = [first] + [_parameter(f"p{i}", opt) for i, opt in enumerate(options)]
    params += [
        inspect.Parameter(
            key, inspect.Parameter.KEYWORD_ONLY, annotation=discord.Attachment, default=None
        )
        for key in files_at
    ]
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    describe = {
        key: _short(opt.description or opt.name) for key, opt in zip(names, options, strict=True)
    } | dict.fromkeys(files_at, "A file to send with the command")
    choices = {key: _choices(opt) for key, opt in zip(names, options, strict=True) if _choices(opt)}
    names |= files_at
    decorated = app_commands.describe(**describe)(callback)
    decorated = app_commands.rename(**names)(decorated)
    if choices:
        decorated = app_commands.choices(**choices)(decorated)
    return decorated


def _parameter(key: str, option: Option) -> inspect.Parameter:
    default = inspect.Parameter.empty if option.required else None
    return inspect.Parameter(
        key, inspect.Parameter.KEYWORD_ONLY, annotation=_annotation(option), default=default
    )


def _annotation(option: Option) -> Any:
    """The option's Python type, as an ``app_commands.Range`` where it is bounded."""
    kind = _TYPES[option.type]
    low: float | None = option.min_value
    high: float | None = option.max_value
    if option.choices or kind is bool:
        return kind
    if kind is str:
        low, high = None, option.max_length
    elif kind is int:
        low = None if low is None else math.ceil(low)
        high = None if high is None else math.floor(high)
    if low is None and high is None:
        return kind
    return cast(Any, app_commands.Range)[kind, low, high]


def _choices(option: Option) -> list[app_commands.Choice[Any]]:
    if not option.choices or option.type == "boolean":
        return []
    kind = _TYPES[option.type]
    return [
        app_commands.Choice(name=str(value)[:_DESCRIPTION_LIMIT], value=kind(value))
        for value in option.choices[:_MAX_CHOICES]
    ]


def _short(text: str) -> str:
    """A Discord description: 1 to 100 characters."""
    text = " ".join(text.split()) or "…"
    return text if len(text) <= _DESCRIPTION_LIMIT else text[: _DESCRIPTION_LIMIT - 1] + "…"


# ---- per-guild sync ----------------------------------------------------------------

Specs = Callable[[int], Awaitable[list[Command] | None]]
"""Returns the command specs enabled in a guild (by guild id), or None to skip it."""


class GuildSync:
    """Keeps each guild's slash commands equal to its enabled plugins' commands.

    ``schedule(guild_id)`` marks a guild as changed; after ``debounce_s`` without further
    changes its commands are rebuilt in the tree and synced. At most one sync per guild is
    in flight; a change during a sync causes one more sync after it. Rate limits (429) are
    waited out by discord.py inside the request. ``max_text``: see ``build_commands``.
    """

    def __init__(
        self,
        tree: app_commands.CommandTree,
        specs: Specs,
        invoke: Invoke,
        debounce_s: float,
        *,
        max_text: int = MAX_STRING_LENGTH,
    ) -> None:
        self._tree = tree
        self._specs = specs
        self._invoke = invoke
        self._debounce_s = debounce_s
        self._max_text = max_text
        self._dirty: set[int] = set()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._synced: dict[int, list[dict[str, Any]]] = {}
        self.synced = asyncio.Condition()  # notified after every sync (for tests, tools)

    def schedule(self, guild_id: int) -> None:
        """Resync ``guild_id`` soon (debounced)."""
        self._dirty.add(guild_id)
        if guild_id not in self._tasks:
            task = asyncio.create_task(self._run(guild_id), name=f"discord-sync-{guild_id}")
            self._tasks[guild_id] = task

    def forget(self, guild_id: int) -> None:
        """Drop a guild's pending sync and its commands (the bot left it)."""
        self._dirty.discard(guild_id)
        task = self._tasks.pop(guild_id, None)
        if task is not None:
            task.cancel()
        self._synced.pop(guild_id, None)
        self._tree.clear_commands(guild=discord.Object(guild_id))

    async def close(self) -> None:
        """Cancel every pending sync."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, guild_id: int) -> None:
        try:
            while guild_id in self._dirty:
                await asyncio.sleep(self._debounce_s)
                self._dirty.discard(guild_id)
                await self._sync_guarded(guild_id)
        finally:
            if self._tasks.get(guild_id) is asyncio.current_task():
                del self._tasks[guild_id]

    async def _sync_guarded(self, guild_id: int) -> None:
        try:
            await self._sync(guild_id)
        except discord.Forbidden:
            log.warning(
                "discord: cannot set slash commands in guild %s (missing the "
                "applications.commands scope?)",
                guild_id,
            )
        except discord.HTTPException as exc:
            log.warning("discord: syncing commands of guild %s failed: %s", guild_id, exc)
            self._dirty.add(guild_id)  # try again after the next debounce
            await asyncio.sleep(getattr(exc, "retry_after", 0.0) or 5.0)
        except Exception:
            log.exception("discord: syncing commands of guild %s failed", guild_id)
        async with self.synced:
            self.synced.notify_all()

    async def _sync(self, guild_id: int) -> None:
        specs = await self._specs(guild_id)
        if specs is None:
            return
        guild = discord.Object(guild_id)
        commands = build_commands(specs, self._invoke, max_text=self._max_text)
        payload = [command.to_dict(self._tree) for command in commands]
        self._tree.clear_commands(guild=guild)
        for command in commands:
            self._tree.add_command(command, guild=guild)
        if self._synced.get(guild_id) == payload:
            return
        await self._tree.sync(guild=guild)
        self._synced[guild_id] = payload
        log.info("discord: synced %d commands in guild %s", len(payload), guild_id)
