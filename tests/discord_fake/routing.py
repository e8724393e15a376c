"""Point discord.py at a ``FakeDiscord`` for the span of a ``with`` block.

discord.py keeps its endpoints in two class attributes, shared by every client in the
process: ``discord.http.Route.BASE`` (REST, webhooks and interaction callbacks too) and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (where a plain ``Client`` opens its
first gateway socket — it does not ask ``GET /gateway/bot``; only ``AutoShardedClient``
without a ``shard_count`` does). Both are restored on exit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import yarl

# discord.py 2.7 imports the stdlib ``audioop`` (voice), deprecated on Python 3.11+; with
# ``filterwarnings = error`` that import would fail, so it is silenced here, once.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord.gateway
    import discord.http

from .server import FakeDiscord


@contextmanager
def discord_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Set ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` to ``fake``; restore after."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
