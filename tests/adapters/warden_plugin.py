"""A tiny plugin for the adapters' action stories: a message asks, the inbound hook acts.

Shared by the Discord and Telegram stories. Its hook reads every message, also those the
bot does not answer (``unanswered=True``, as moderation does), and on these words acts
through ``ctx.actions`` on the caller's platform:

* ``deleteme``: delete this very message; ``delete <id>``: delete message ``<id>``;
* ``muteme [seconds]``: time the sender out (600 s unless given);
* ``alert <channel id>``: post "alert: …" with a button to that channel.

``outcomes`` keeps what each action ended in (None, or the error it raised); ``origins``
every origin the hook and ``/whoami`` saw; ``changed`` is notified after each. A message
that asked for an action gets no answer. ``reset()`` forgets both (call it in each
story: it also makes ``changed`` anew, for that story's event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core.adapter import Actions
from core.events import Button, Buttons, Event, MessageEvent, Origin, ReplyPart, Text
from core.plugin import CommandContext, HookContext, Plugin

plugin = Plugin("warden", "Acts on the platform when a message asks (tests)")
outcomes: list[tuple[str, BaseException | None]] = []
origins: list[Origin] = []
changed = asyncio.Condition()

Action = Callable[[Actions, MessageEvent, list[str]], Awaitable[None]]


def reset() -> None:
    """Forget what earlier stories recorded."""
    global changed
    outcomes.clear()
    origins.clear()
    changed = asyncio.Condition()


async def settled(check: Callable[[], object], within: float = 5.0) -> object:
    """Wait until ``check()`` (about ``outcomes`` / ``origins``) is truthy; return it."""
    async with asyncio.timeout(within), changed:
        await changed.wait_for(check)
    return check()


async def _noted(
    origin: Origin | None = None, outcome: tuple[str, BaseException | None] | None = None
) -> None:
    if origin is not None:
        origins.append(origin)
    if outcome is not None:
        outcomes.append(outcome)
    async with changed:
        changed.notify_all()


@plugin.inbound(unanswered=True)
async def act(ctx: HookContext, event: Event) -> Event | None:
    """Act on the words of a message; the message is dropped when it asked for an action."""
    if not isinstance(event, MessageEvent):
        return event
    await _noted(event.origin)
    word, *args = event.text.split() or [""]
    action = ACTIONS.get(word)
    if action is None or ctx.actions is None:
        return event
    try:
        await action(ctx.actions, event, args)
    except Exception as exc:
        await _noted(outcome=(word, exc))
    else:
        await _noted(outcome=(word, None))
    return None


@plugin.command("whoami", "Note who asks (tests)")
async def whoami(ctx: CommandContext) -> str:
    """Keep the caller's origin."""
    await _noted(ctx.origin)
    return "noted"


@plugin.button("whoami")
async def pressed(ctx: CommandContext, arg: str) -> str:
    """Keep the presser's origin."""
    await _noted(ctx.origin)
    return "noted"


async def _delete_this(actions: Actions, event: MessageEvent, args: list[str]) -> None:
    await actions.delete_message(event.origin, event.message_id)


async def _delete(actions: Actions, event: MessageEvent, args: list[str]) -> None:
    await actions.delete_message(event.origin, args[0])


async def _mute(actions: Actions, event: MessageEvent, args: list[str]) -> None:
    seconds = float(args[0]) if args else 600.0
    await actions.timeout_user(event.origin, seconds, "asked for it")


async def _alert(actions: Actions, event: MessageEvent, args: list[str]) -> None:
    parts: list[ReplyPart] = [
        Text(f"alert: {event.origin.user_name} <b>rang</b> the bell"),
        Buttons((Button("Who?", "warden:whoami:x"),)),
    ]
    await actions.post(event.origin, args[0], parts)


ACTIONS: dict[str, Action] = {
    "deleteme": _delete_this,
    "delete": _delete,
    "muteme": _mute,
    "alert": _alert,
}
