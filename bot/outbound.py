"""Outbound hooks: every enabled plugin's hooks on a reply stream, in priority order.

Buffered hooks (``@plugin.outbound(buffered=True)``) gate the text: streamed deltas are
held and shown to them as ``Text`` of the whole answer so far every ``HOLD_CHARS``
characters and at the end; what they release goes out, what they replace goes out
instead, and anything else ends the reply there — held text never reaches the user. The
other hooks then see each part. A failing hook turns its part into a short error notice
(logged under an error id); behind a buffered hook that ends the reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from bot.incidents import internal_error
from core.errors import PluginError
from core.events import Error, ReplyPart, Text, TextDelta
from core.plugin import Outbound

if TYPE_CHECKING:
    from bot.plugins import Loaded
    from core.caller import Caller

HOLD_CHARS = 200  # buffered outbound hooks see a streamed reply every this many characters
# Runs one hook on one part with the plugin's config for the caller, within its time limit.
RunHook = Callable[["Loaded", "Caller", Outbound, ReplyPart], Awaitable["ReplyPart | None"]]


async def outbound(
    parts: AsyncIterator[ReplyPart], enabled: list[Loaded], caller: Caller, run: RunHook
) -> AsyncIterator[ReplyPart]:
    """``parts`` through the enabled plugins' outbound hooks (see the module docstring)."""
    hooks = sorted(
        ((item, spec) for item in enabled for spec in item.plugin.outbound_hooks),
        key=lambda pair: (pair[1].priority, pair[0].plugin.name),
    )
    gates = [pair for pair in hooks if pair[1].buffered]
    each = [pair for pair in hooks if not pair[1].buffered]
    if gates:
        parts = _held(parts, partial(_hooked, gates, caller, run))
    async for part in parts:
        current = await _hooked(each, caller, run, part)
        if current is not None:
            yield current


async def _hooked(
    hooks: list[tuple[Loaded, Outbound]], caller: Caller, run: RunHook, part: ReplyPart
) -> ReplyPart | None:
    """``part`` through ``hooks``; None when one dropped it."""
    current: ReplyPart | None = part
    for loaded, spec in hooks:
        if current is None:
            return None
        try:
            current = await run(loaded, caller, spec, current)
        except PluginError as exc:
            return Error(internal_error(exc, "outbound hook"))
    return current


async def _held(
    parts: AsyncIterator[ReplyPart], check: Callable[[ReplyPart], Awaitable[ReplyPart | None]]
) -> AsyncIterator[ReplyPart]:
    """Hold streamed text until ``check`` (the buffered hooks) released it.

    Deltas are collected and checked as ``Text`` of the whole answer so far every
    ``HOLD_CHARS`` characters; what passes goes out as one delta. A final ``Text`` that
    comes back changed replaces the answer. Anything else a text check returns (an
    ``Error`` notice), or None, ends the reply there: held text never reaches the user.
    Other parts are checked one by one (None drops the part).
    """
    shown, held = "", ""
    async for part in parts:
        if isinstance(part, TextDelta):
            held += part.text
            if len(held) < HOLD_CHARS:
                continue
            verdict = await check(Text(shown + held))
            if verdict != Text(shown + held):
                if verdict is not None:
                    yield verdict
                return
            yield TextDelta(held)
            shown, held = shown + held, ""
            continue
        verdict = await check(part)
        if isinstance(part, Text):
            if not isinstance(verdict, Text):
                if verdict is not None:
                    yield verdict
                return
            rest = part.text[len(shown) :] if part.text.startswith(shown) else ""
            if verdict == part and held and rest:
                yield TextDelta(rest)  # the deltas still add up to the final text
            shown, held = part.text, ""
        if verdict is not None:
            yield verdict
    if held:  # a stream that ended without its final Text
        verdict = await check(Text(shown + held))
        if verdict == Text(shown + held):
            yield TextDelta(held)
        elif verdict is not None:
            yield verdict
