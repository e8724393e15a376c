"""A plugin whose setup fails: loading it must change nothing."""

from __future__ import annotations

from core.plugin import Plugin, PluginContext

plugin = Plugin("echo", "Broken replacement of the sample plugin")


@plugin.on_setup
async def setup(ctx: PluginContext) -> None:
    """Fail while starting."""
    raise RuntimeError("cannot start")
