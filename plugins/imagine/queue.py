"""The fair queue of image jobs waiting for the back end.

Round-robin across servers, and across users within a server: a server that queues many
jobs delays the others by at most one job per turn, and one user cannot crowd out the rest
of their server. Within one user, jobs keep their order.

Pure data structure: it never awaits, never touches storage and never talks to a back end.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Server(Generic[T]):
    """One server's waiting jobs, per user, users in turn order."""

    users: OrderedDict[int, deque[tuple[str, T]]] = field(default_factory=OrderedDict)


class FairQueue(Generic[T]):
    """Jobs (id → item) keyed by server and user, taken in round-robin order."""

    def __init__(self) -> None:
        self._servers: OrderedDict[int, _Server[T]] = OrderedDict()
        self._where: dict[str, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def push(self, job_id: str, server_pk: int, user_pk: int, item: T) -> None:
        """Add a job at the end of its user's line (new servers and users go last)."""
        if job_id in self._where:
            raise ValueError(f"job {job_id} is already queued")
        server = self._servers.setdefault(server_pk, _Server())
        server.users.setdefault(user_pk, deque()).append((job_id, item))
        self._where[job_id] = (server_pk, user_pk)

    def pop(self) -> tuple[str, T] | None:
        """Take the next job in fair order, or None when empty."""
        if not self._servers:
            return None
        server_pk, server = next(iter(self._servers.items()))
        user_pk, line = next(iter(server.users.items()))
        job_id, item = line.popleft()
        del self._where[job_id]
        self._rotate(server_pk, server, user_pk, line)
        return job_id, item

    def remove(self, job_id: str) -> T | None:
        """Take a job out of the queue wherever it is; None if it is not queued."""
        where = self._where.pop(job_id, None)
        if where is None:
            return None
        server_pk, user_pk = where
        server = self._servers[server_pk]
        line = server.users[user_pk]
        found = next(pair for pair in line if pair[0] == job_id)
        line.remove(found)
        if not line:
            del server.users[user_pk]
            if not server.users:
                del self._servers[server_pk]
        return found[1]

    def order(self) -> Iterator[str]:
        """Job ids in the order ``pop`` would return them (the queue is unchanged)."""
        lines = OrderedDict(
            (pk, OrderedDict((u, deque(j for j, _ in line)) for u, line in s.users.items()))
            for pk, s in self._servers.items()
        )
        while lines:
            server_pk, users = next(iter(lines.items()))
            user_pk, line = next(iter(users.items()))
            yield line.popleft()
            users.move_to_end(user_pk)
            if not line:
                del users[user_pk]
            lines.move_to_end(server_pk)
            if not users:
                del lines[server_pk]

    def _rotate(
        self, server_pk: int, server: _Server[T], user_pk: int, line: deque[tuple[str, T]]
    ) -> None:
        """After a pop: that user and that server go to the back of their turn orders."""
        server.users.move_to_end(user_pk)
        if not line:
            del server.users[user_pk]
        self._servers.move_to_end(server_pk)
        if not server.users:
            del self._servers[server_pk]
