"""Persistent buttons: ``Buttons`` parts out as ``discord.ui.View``s, presses in as events.

A button's ``custom_id`` is the reply part's own ``plugin:action:arg``, so a press names
everything needed to route it and nothing has to be remembered between presses: the
adapter handles component interactions in a catch-all ``on_interaction`` listener, which
keeps buttons working after a restart without registering a view per message. Views are
therefore sent *stopped* (discord.py does not store stopped views), so a long-running bot
does not accumulate one stored view per message. This module never talks to the router.
"""

from __future__ import annotations

import re

import discord

from core.events import Button, Buttons

_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "success": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
}
_MAX_BUTTONS = 25  # 5 rows of 5
_CUSTOM_ID = re.compile(r"[^:\s]+:[^:\s]+(:.*)?", re.DOTALL)


def button_view(part: Buttons) -> discord.ui.View:
    """A timeout-free view whose buttons carry the parts' ``custom_id``s (5 per row)."""
    view = discord.ui.View(timeout=None)
    for index, button in enumerate(part.buttons[:_MAX_BUTTONS]):
        view.add_item(_button(button, row=index // 5))
    view.stop()  # not stored by discord.py: presses are routed by custom_id alone
    return view


def _button(button: Button, row: int) -> discord.ui.Button[discord.ui.View]:
    return discord.ui.Button(
        label=button.label[:80] or "·",
        custom_id=button.custom_id[:100],
        style=_STYLES.get(button.style, discord.ButtonStyle.secondary),
        row=row,
    )


def pressed_custom_id(interaction: discord.Interaction) -> str | None:
    """The ``plugin:action:arg`` of a button press, or None for any other interaction."""
    if interaction.type is not discord.InteractionType.component:
        return None
    data: dict[str, object] = dict(interaction.data or {})
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or data.get("component_type") != 2:  # 2: a button
        return None
    return custom_id if _CUSTOM_ID.fullmatch(custom_id) else None
