"""Helpers for every repository of Atelier's database, the core's and plugins' own.

``translated`` turns driver errors into ``StorageError``; ``as_utc`` makes times read
back from SQLite timezone-aware again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError

_P = ParamSpec("_P")
_T = TypeVar("_T")


def translated(fn: Callable[_P, Awaitable[_T]]) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Re-raise SQLAlchemy/driver errors as ``StorageError``, naming the operation."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await fn(*args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:  # OSError: the server is unreachable
            reason = getattr(exc, "orig", None) or exc
            raise StorageError(f"{fn.__name__} failed: {reason}") from exc

    return wrapper


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
