"""Carrying out a verdict: the server's action, the log entry, the moderators' alert.

``warn`` and ``alert`` let the message through; ``block`` and stronger stop it, and the
user is told why in one line. Deleting and timing out go through the platform's
``Actions`` where it can do them; a platform that refuses (missing permissions) leaves a
log line, never a failed turn. Exempt users' and roles' messages are logged as
``exempt`` and pass. Nothing here decides a verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.adapter import BUTTONS, DELETE, POST, TIMEOUT
from core.caller import Caller
from core.events import Button, Buttons, Text
from plugins.moderation import render
from plugins.moderation.config import ModerationSettings
from plugins.moderation.moderator import Verdict
from plugins.moderation.policy import STOPS, applies
from plugins.moderation.store import LogEntry, ModerationStore, ServerRules

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What was done: the action, and for a stopped message the line the user sees."""

    action: str
    notice: str = ""

    @property
    def stops(self) -> bool:
        """Whether the message (or reply) must not go on."""
        return self.action in STOPS


ALLOWED = Outcome("allow")


def is_exempt(caller: Caller, settings: ModerationSettings) -> bool:
    """Whether the server exempted the caller (by user id or by one of their roles)."""
    origin = caller.origin
    return origin.user_id in settings.exempt_users or bool(
        set(origin.roles) & set(settings.exempt_roles)
    )


async def enforce(
    store: ModerationStore,
    caller: Caller,
    settings: ModerationSettings,
    rules: ServerRules,
    verdict: Verdict,
    *,
    place: str,
    text: str,
    message_id: str = "",
) -> Outcome:
    """Apply the server's rule for ``verdict`` and log it (nothing is logged under the
    threshold)."""
    action = applies(rules.rules or {}, verdict.category, verdict.score)
    if action == "allow":
        return ALLOWED
    if place == "reply" and action in ("delete", "timeout"):
        action = "block"  # the bot's own reply: withheld, nobody to punish
    exempt = place != "reply" and is_exempt(caller, settings)
    origin = caller.origin
    entry = LogEntry(
        server_pk=caller.server_pk,
        platform=origin.platform,
        channel_id=origin.channel_id,
        message_id=message_id,
        user_id=origin.user_id,
        user_name=origin.user_name,
        place=place,
        excerpt=text[:300],
        layer=verdict.layer,
        category=verdict.category,
        score=verdict.score,
        action="exempt" if exempt else action,
    )
    entry_id = await store.log(entry)
    if exempt:
        return ALLOWED
    done = await _act(caller, settings, action, message_id)
    if action == "alert" or settings.alert_channel:
        await _alert(caller, settings, entry, entry_id, done)
    if action == "warn":
        await _warn(caller, render.warning(verdict))
    if action in STOPS:
        return Outcome(action, render.stopped(verdict, done, place, settings.timeout_minutes))
    return Outcome(action)


async def _act(caller: Caller, settings: ModerationSettings, action: str, message_id: str) -> str:
    """Delete and time out where the platform can; the strongest action really done."""
    actions, origin = caller.actions, caller.origin
    have = actions.capabilities if actions is not None else frozenset()
    done = "block" if action in STOPS else action
    if action in ("delete", "timeout") and actions is not None and DELETE in have and message_id:
        try:
            await actions.delete_message(origin, message_id)
            done = "delete"
        except Exception:
            log.warning("moderation could not delete message %s", message_id, exc_info=True)
    if action == "timeout" and actions is not None and TIMEOUT in have:
        try:
            await actions.timeout_user(origin, settings.timeout_minutes * 60, "moderation")
            done = "timeout"
        except Exception:
            log.warning("moderation could not time out %s", origin.user_id, exc_info=True)
    return done


async def _alert(
    caller: Caller, settings: ModerationSettings, entry: LogEntry, entry_id: int, done: str
) -> None:
    """Tell the moderators' channel, with buttons to act where the platform can."""
    actions = caller.actions
    channel = settings.alert_channel
    if actions is None or POST not in actions.capabilities or not channel:
        return
    parts: list[Text | Buttons] = [Text(render.alert(entry, done))]
    if BUTTONS in actions.capabilities and entry.place != "reply":
        buttons = [Button("Dismiss", f"moderation:dismiss:{entry_id}")]
        if (
            DELETE in actions.capabilities
            and entry.message_id
            and done not in ("delete", "timeout")
        ):
            buttons.insert(0, Button("Delete message", f"moderation:delete:{entry_id}", "danger"))
        if TIMEOUT in actions.capabilities and done != "timeout":
            buttons.insert(0, Button("Time out", f"moderation:timeout:{entry_id}", "danger"))
        parts.append(Buttons(tuple(buttons)))
    try:
        await actions.post(caller.origin, channel, parts)
    except Exception:
        log.warning("moderation could not alert channel %s", channel, exc_info=True)


async def _warn(caller: Caller, line: str) -> None:
    actions = caller.actions
    if actions is None or POST not in actions.capabilities:
        return
    try:
        await actions.post(caller.origin, caller.origin.channel_id, [Text(line)])
    except Exception:
        log.warning("moderation could not warn in %s", caller.origin.channel_id, exc_info=True)
