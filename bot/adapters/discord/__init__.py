"""The Discord adapter (discord.py): the only package that may import ``discord``.

``DiscordAdapter(app, settings.discord)`` serves an ``App`` on Discord; ``atelier run``
starts it when ``ATELIER_DISCORD__TOKEN`` is set. Modules: ``client`` (connection,
events, tasks), ``translate`` (SDK objects → events with their facts and attachments),
``commands`` (plugin command specs → slash commands, per-guild sync), ``sinks`` (channel
/ interaction targets of the shared renderer ``bot.render``), ``views`` (persistent
buttons), ``actions`` (what plugins may do: delete, time out, post). Like every adapter
it translates and renders; it decides nothing the core decides.
"""

from __future__ import annotations

from .client import DiscordAdapter, make_client, point_discord_at

__all__ = ["DiscordAdapter", "make_client", "point_discord_at"]
