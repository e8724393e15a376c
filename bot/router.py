"""The router: every event's way from an adapter to a stream of reply parts.

identify (storage) → guards (size, rate limits, enabled plugins' inbound hooks) → a
command handler or the agent → enabled plugins' outbound hooks → back to the adapter.
Turns of one conversation run in order; different conversations run concurrently.
Errors meant for users become ``Error`` parts; anything else is logged and the user gets
a short message. The router never imports a platform SDK and never decides rendering.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any, cast

from langchain_core.tools import BaseTool
from pydantic import BaseModel

from agents.agent import Agent, Turn
from bot.commands import bind, resolve
from bot.incidents import internal_error
from bot.outbound import outbound
from bot.plugins import Loaded, PluginManager
from bot.ratelimit import Notices, TokenBuckets
from bot.services import Services
from bot.tools import tool_config
from core.adapter import Actions
from core.caller import Caller
from core.errors import (
    CommandError,
    InputRejected,
    PermissionDenied,
    RateLimited,
    UserError,
)
from core.events import (
    Attachment,
    ButtonEvent,
    CommandEvent,
    Error,
    Event,
    MessageEvent,
    ReplyPart,
    Text,
)
from core.plugin import Command, CommandContext, HookContext, Outbound, ToolContext
from storage.repository import Identity

log = logging.getLogger(__name__)
ATTACHMENT_ONLY_NOTE = "I can only read text for now — please write your request as a message."


class Router:
    """Routes events to commands, buttons and the agent; see the module docstring."""

    def __init__(self, services: Services, plugins: PluginManager, agent: Agent) -> None:
        self.services = services
        self.plugins = plugins
        self.agent = agent
        limits = services.settings.limits
        self._users = TokenBuckets(limits.user_burst, limits.user_per_second)
        self._servers = TokenBuckets(limits.server_burst, limits.server_per_second)
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}  # only while in use
        self._notices = Notices()

    async def handle(
        self, event: Event, *, actions: Actions | None = None
    ) -> AsyncIterator[ReplyPart]:
        """Process one event; yields the reply parts to render, in order.

        ``actions``: what the event's platform lets plugins do (delete, time out, post);
        hooks and handlers reach it as ``ctx.actions``.

        Size and rate are checked before the event waits for its conversation's earlier
        turns, so a flood is refused at once instead of queueing behind itself.
        """
        if isinstance(event, MessageEvent) and not event.text.strip() and not event.attachments:
            return  # an empty message is ignored, not answered
        if isinstance(event, MessageEvent) and not await self.answers(event):
            async for part in self._unanswered(event, actions):
                yield part
            return
        try:
            self._check_size(event)
            identity = await self.services.storage.identify(event.origin)
            enabled = await self.plugins.enabled_for(identity.server_pk)
            self._check_rate(event, identity)
        except RateLimited as exc:
            if self._notices.first(event.origin, exc.retry_after):
                yield Error(exc.user_message)
            return
        except UserError as exc:
            yield Error(exc.user_message)
            return
        except Exception as exc:
            yield Error(internal_error(exc, f"before the turn of {event.origin}"))
            return
        event = self._capped(event)
        if isinstance(event, MessageEvent) and not event.text.strip():
            yield Text(ATTACHMENT_ONLY_NOTE)  # files alone: nothing here reads them yet
            return
        caller = _caller(event, identity, actions)
        parts = self._outbound(
            self._guarded(event, identity, enabled, caller), event, enabled, caller
        )
        if not self._is_ordered(event):
            async for part in parts:
                yield part
            return
        async with self._in_order(event.origin.conversation_key):
            async for part in parts:
                yield part

    async def answers(self, event: MessageEvent) -> bool:
        """The core's rule: direct messages, mentions and replies to the bot are answered;
        other messages only in chat channels, and files alone only when spoken to."""
        facts = event.addressing
        if facts.spoken_to:
            return True
        if not event.text.strip():
            return False  # people share pictures with each other in chat channels
        if facts.listed_channel:
            return True
        where = event.origin
        state = self.services.server_state
        return await state.is_chat_channel(where.platform, where.server_id, where.channel_id)

    async def watches(self, event: MessageEvent) -> bool:
        """Whether a message the bot does not answer is still read by a plugin enabled in
        its server (moderation reads everything); adapters route those too."""
        readers = any(item.plugin.unanswered_hooks for item in self.plugins.loaded.values())
        if not readers or not event.text.strip():
            return False  # no plugin reads everything: strays cost no storage lookup
        identity = await self.services.storage.identify(event.origin)
        enabled = await self.plugins.enabled_for(identity.server_pk)
        return any(item.plugin.unanswered_hooks for item in enabled)

    async def _unanswered(
        self, event: MessageEvent, actions: Actions | None
    ) -> AsyncIterator[ReplyPart]:
        """A message not for the bot, through the hooks that read every message; only a
        refusal they raise is said (one line)."""
        try:
            identity = await self.services.storage.identify(event.origin)
            caller = _caller(event, identity, actions)
            for loaded in await self.plugins.enabled_for(identity.server_pk):
                for hook in loaded.plugin.unanswered_hooks:
                    config = await self._config(loaded, caller)
                    ctx = HookContext(caller, config, answered=False)
                    await self.plugins.call(loaded.plugin.name, hook(ctx, event))
        except UserError as exc:
            yield Error(exc.user_message)
        except Exception as exc:
            internal_error(exc, f"reading the message of {event.origin}")

    def _capped(self, event: Event) -> Event:
        """The event with every attachment's download capped at ``limits.max_attachment_mb``."""
        if isinstance(event, ButtonEvent) or not event.attachments:
            return event
        cap = int(self.services.settings.limits.max_attachment_mb * 1024 * 1024)
        files = tuple(replace(item, max_bytes=cap) for item in event.attachments)
        return replace(event, attachments=files)

    def _is_ordered(self, event: Event) -> bool:
        """Chat turns (and ordinary commands) wait for the conversation's earlier turns;
        buttons and commands declared ``ordered=False`` (long jobs) do not, so a Cancel
        press is never stuck behind the job it cancels."""
        if isinstance(event, ButtonEvent):
            return False
        if isinstance(event, CommandEvent):
            found = self.plugins.find_command(event.name.lower())
            return found is None or found[1].ordered
        return True

    # ---- stages ------------------------------------------------------------------

    async def _guarded(
        self, event: Event, identity: Identity, enabled: list[Loaded], caller: Caller
    ) -> AsyncIterator[ReplyPart]:
        """Guards then dispatch; every failure ends as one ``Error`` part."""
        try:
            routed = await self._inbound(event, enabled, caller)
            if routed is None:
                return
            async for part in self._dispatch(routed, identity, caller, enabled):
                yield part
        except UserError as exc:
            yield Error(exc.user_message)
        except Exception as exc:
            yield Error(internal_error(exc, f"turn of {event.origin}"))

    def _check_size(self, event: Event) -> None:
        """A message or a command's text and options together stay within the limit."""
        limit = self.services.settings.limits.max_message_chars
        size = _text_size(event)
        if size > limit:
            raise InputRejected(f"Your message is {size} characters long; the limit is {limit}.")

    def _check_rate(self, event: Event, identity: Identity) -> None:
        user_key = (identity.server_pk, identity.user_pk)
        scope = "from you"
        wait = self._users.take(user_key)
        if not wait:
            scope = "in this server"
            wait = self._servers.take(identity.server_pk)
            if wait:
                self._users.refund(user_key)
        if wait:
            when = f"in {wait:.0f} s" if wait >= 1 else "in a moment"
            raise RateLimited(f"Slow down: too many messages {scope}. Try again {when}.", wait)

    async def _inbound(self, event: Event, enabled: list[Loaded], caller: Caller) -> Event | None:
        for loaded in enabled:
            for hook in loaded.plugin.inbound_hooks:
                config = await self._config(loaded, caller)
                ctx = HookContext(caller, config)
                result = await self.plugins.call(loaded.plugin.name, hook(ctx, event))
                if result is None:
                    return None
                event = result
        return event

    async def _outbound(
        self, parts: AsyncIterator[ReplyPart], event: Event, enabled: list[Loaded], caller: Caller
    ) -> AsyncIterator[ReplyPart]:
        """Enabled plugins' outbound hooks (``bot.outbound``) on the answer to ``event``."""
        async for part in outbound(parts, enabled, caller, partial(self._run_hook, event)):
            yield part

    async def _run_hook(
        self, event: Event, loaded: Loaded, caller: Caller, spec: Outbound, part: ReplyPart
    ) -> ReplyPart | None:
        """One outbound hook on one part, with the plugin's config and time limit."""
        ctx = HookContext(caller, await self._config(loaded, caller), event)
        return await self.plugins.call(loaded.plugin.name, spec.hook(ctx, part))

    async def _dispatch(
        self, event: Event, identity: Identity, caller: Caller, enabled: list[Loaded]
    ) -> AsyncIterator[ReplyPart]:
        if isinstance(event, CommandEvent):
            parts = self._command(event, caller, enabled)
        elif isinstance(event, ButtonEvent):
            parts = self._button(event, caller, enabled)
        else:
            parts = self._chat(event, identity, caller, enabled)
        async for part in parts:
            yield part

    # ---- commands, buttons, chat -------------------------------------------------

    async def _command(
        self, event: CommandEvent, caller: Caller, enabled: list[Loaded]
    ) -> AsyncIterator[ReplyPart]:
        name = event.name.lower()
        found = self.plugins.find_command(name)
        if found is None:
            raise CommandError(f"Unknown command /{name}. {command_list(enabled)}")
        loaded, root = found
        if loaded not in enabled:
            raise CommandError(
                f"/{name} belongs to the {loaded.plugin.name} plugin, which is disabled in "
                f"this server. {command_list(enabled)}"
            )
        cmd, path, tokens = resolve(root, event)
        values = bind(cmd, path, tokens, event.options)
        await self._authorize(root, cmd, path, values, caller)
        if cmd.handler is None:
            raise CommandError(f"/{path} needs a subcommand.")
        ctx = await self._command_context(caller, loaded, enabled, event.attachments)
        async for part in self._run(loaded, cmd.handler(ctx, **values)):
            yield part

    async def _authorize(
        self,
        root: Command,
        cmd: Command,
        path: str,
        values: dict[str, Any],
        caller: Caller,
    ) -> None:
        """Admin-only commands: checked here, in the core, and audit-logged either way."""
        if not (root.admin_only or cmd.admin_only):
            return
        allowed = caller.is_admin
        target = " ".join(str(v) for v in values.values() if v is not None)
        await self.services.storage.audit(
            caller.server_pk,
            caller.user_pk,
            f"/{path}",
            target,
            allowed=allowed,
            detail={"options": {k: v for k, v in values.items() if v is not None}},
        )
        if not allowed:
            raise PermissionDenied(f"Only server admins may use /{path}.")

    async def _button(
        self, event: ButtonEvent, caller: Caller, enabled: list[Loaded]
    ) -> AsyncIterator[ReplyPart]:
        plugin_name, _, rest = event.custom_id.partition(":")
        action, _, arg = rest.partition(":")
        loaded = self.plugins.loaded.get(plugin_name)
        handler = loaded.plugin.buttons.get(action) if loaded else None
        if loaded is None or handler is None:
            raise CommandError("This button no longer works here.")
        if loaded not in enabled and action not in loaded.plugin.buttons_when_disabled:
            raise CommandError("This button no longer works here.")
        ctx = await self._command_context(caller, loaded, enabled)
        async for part in self._run(loaded, handler(ctx, arg)):
            yield part

    async def _chat(
        self, event: MessageEvent, identity: Identity, caller: Caller, enabled: list[Loaded]
    ) -> AsyncIterator[ReplyPart]:
        tools: list[BaseTool] = []
        contexts: dict[str, ToolContext] = {}
        hints = self.services.settings.agent.tool_hints
        for loaded in enabled:
            offered = loaded.offered(event.text, hints=hints, caller=caller)
            if not offered and not loaded.plugin.tool_sources:
                continue
            config = await self._config(loaded, caller)
            ctx = ToolContext(caller, config, loaded.context)
            offered = await loaded.available(offered, ctx)
            if loaded.plugin.tool_sources:
                offered += await loaded.sourced(ctx, {tool.name for tool in tools + offered})
            if offered:
                contexts[loaded.plugin.name] = ctx
                tools.extend(offered)
        prompt = await self.services.server_state.system_prompt(identity.server_pk)
        turn = Turn(event.origin, identity, event.text, tools, prompt, tool_config(contexts))
        async for part in self.agent.run(turn):
            yield part

    async def _config(self, loaded: Loaded, caller: Caller) -> BaseModel | None:
        """The plugin's config for this caller (its server's, channel's and own settings)."""
        return await self.plugins.config_for(
            loaded.plugin, caller.server_pk, caller.channel_pk, caller.user_pk
        )

    async def _command_context(
        self,
        caller: Caller,
        loaded: Loaded,
        enabled: list[Loaded],
        attachments: tuple[Attachment, ...] = (),
    ) -> CommandContext:
        config = await self._config(loaded, caller)
        screens = partial(self._screened, enabled, caller)
        return CommandContext(caller, loaded.context, config, attachments, screens)

    async def _screened(
        self, enabled: list[Loaded], caller: Caller, texts: list[str], what: str
    ) -> str | None:
        """The first refusal of the enabled plugins' content screens, or None."""
        for loaded in enabled:
            for hook in loaded.plugin.screens:
                ctx = HookContext(caller, await self._config(loaded, caller))
                reason = await self.plugins.call(loaded.plugin.name, hook(ctx, texts, what))
                if reason:
                    return reason
        return None

    async def _run(self, loaded: Loaded, result: Any) -> AsyncIterator[ReplyPart]:
        """Normalise a handler's result (awaitable or async generator) into parts."""
        name = loaded.plugin.name
        if inspect.isasyncgen(result):
            stream = cast("AsyncGenerator[ReplyPart, None]", result)
            while True:
                try:
                    part: ReplyPart = await self.plugins.call(name, stream.__anext__())
                except StopAsyncIteration:
                    return
                yield part
        value = await self.plugins.call(name, result)
        if value is None:
            return
        if isinstance(value, str):
            yield Text(value)
        elif isinstance(value, list | tuple):
            for item in value:
                yield item
        else:
            yield value

    # ---- ordering ----------------------------------------------------------------

    @asynccontextmanager
    async def _in_order(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _caller(event: Event, identity: Identity, actions: Actions | None) -> Caller:
    return Caller(
        event.origin,
        identity.server_pk,
        identity.user_pk,
        identity.channel_pk,
        identity.conversation_pk,
        actions,
    )


def _text_size(event: Event) -> int:
    """Characters of user text in ``event``: a message, or a command's text and options."""
    if isinstance(event, MessageEvent):
        return len(event.text)
    if isinstance(event, CommandEvent):
        return len(event.text) + sum(len(str(v)) for v in event.options.values())
    return 0


def command_list(enabled: list[Loaded]) -> str:
    """ "Commands here: /a, /b" for the plugins enabled in a server."""
    names = sorted(name for item in enabled for name in item.plugin.commands)
    return "Commands here: " + ", ".join(f"/{n}" for n in names) if names else "No commands here."
