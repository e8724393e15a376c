"""Atelier's async core: events, router, commands, plugins, rate limits and the CLI.

Nothing in this package may import a platform SDK (discord, telegram) or torch/diffusers;
adapters under ``bot.adapters`` translate platform objects into ``core.events``.
"""
