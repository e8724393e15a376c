"""What the user sees when something fails on the bot's side: a short line with an error id.

Raw exception text (hosts, paths, SQL) never reaches a user or the model: they get the
id, the operator finds the id in the log.
"""

from __future__ import annotations

import logging

from core.errors import PluginError, new_error_id

log = logging.getLogger("bot.router")


def internal_error(exc: BaseException, where: str) -> str:
    """Log ``exc`` under a fresh error id; the short text to show instead of its details.

    Raw exception text (hosts, paths, SQL) never reaches a user or the model: they get
    the id, the operator finds the id in the log.
    """
    error_id = new_error_id()
    if isinstance(exc, PluginError):
        log.error("[%s] %s: %s", error_id, where, exc, exc_info=exc.__cause__ or exc)
        return f"The {exc.plugin} plugin failed (error id {error_id}); the problem was logged."
    log.error("[%s] %s failed", error_id, where, exc_info=exc)
    return f"Something went wrong on my side (error id {error_id}); the problem was logged."
