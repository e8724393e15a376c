"""The one exception tree of Atelier.

::

    AtelierError                      root; never shown to users as-is
    ├── ConfigError                   bad config.toml / environment (start-up stops)
    ├── ModelError                    a model file is missing or cannot be loaded
    ├── StorageError                  the database failed in a way the core cannot hide
    ├── PluginError                   a plugin failed to load / unload / run
    │   └── PluginTimeout             a plugin call ran past its time limit
    ├── ResultRejected                an image worker's result is not what was asked
    │                                 (workers.validate)
    ├── PlatformError                 a platform refused an action (delete, time out,
    │                                 post: missing permissions, unknown message)
    └── UserError                     carries text meant for the user (``user_message``)
        ├── CommandError              unknown command, bad option, missing argument
        ├── PermissionDenied          an admin-only action by a non-admin
        ├── RateLimited               a rate limit or quota was hit
        ├── InputRejected             empty / overlong / otherwise unacceptable input
        │   └── RequestRejected       an image request over a worker's own limits
        │                             (workers.validate)
        └── SandboxUnavailable        code cannot run: no bubblewrap, no namespaces or
                                      no cgroups here (never run unsandboxed)

Replies never carry raw exception text (hosts, paths, SQL): the router logs unexpected
errors under a short error id and shows the user only that id.

Only ``UserError`` subclasses carry text shown to users; every other error is logged and
the user gets a short generic message. SDK errors are translated at the adapter boundary
(``raise X(...) from exc``).
"""

from __future__ import annotations

import uuid


def new_error_id() -> str:
    """A short id that ties a reply ("error id 1a2b3c4d") to its log record."""
    return uuid.uuid4().hex[:8]


class AtelierError(Exception):
    """Root of every error Atelier raises on purpose."""


class PlatformError(AtelierError):
    """A chat platform refused or failed an action a plugin asked for (``Actions``)."""


class ConfigError(AtelierError):
    """The configuration is invalid; the message names the offending key."""


class ModelError(AtelierError):
    """A model file is missing or unusable; the message names the path."""


class StorageError(AtelierError):
    """The storage layer failed."""


class PluginError(AtelierError):
    """A plugin failed to load, unload or run."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


class PluginTimeout(PluginError):
    """A plugin call ran past its configured time limit."""


class UserError(AtelierError):
    """An error whose message is meant for the user who caused it."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class CommandError(UserError):
    """Unknown command, bad option value or missing argument."""


class PermissionDenied(UserError):
    """The user is not allowed to do this here."""


class RateLimited(UserError):
    """A rate limit or quota was hit; ``retry_after`` is in seconds."""

    def __init__(self, user_message: str, retry_after: float) -> None:
        super().__init__(user_message)
        self.retry_after = retry_after


class InputRejected(UserError):
    """The input is empty, too long or otherwise unacceptable."""


class SandboxUnavailable(UserError):
    """Code cannot run here: the sandbox cannot be made (the message says why)."""


class ToolFailed(UserError):
    """A tool could not do its work: the service behind it is down, slow, or answered
    something unusable. The message (one line) is what the model is told."""
