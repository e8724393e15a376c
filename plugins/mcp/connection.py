"""One live connection to one configured MCP server, shared by every chat server.

The session (a stdio child process or a streamable-HTTP session) is opened through
``langchain_mcp_adapters`` over the official ``mcp`` SDK, on first use, by a task of its
own (the SDK's sessions must be entered and left in one task). That task keeps it open,
pings it now and then, re-reads the tool list when the server announces a change, and
when the session breaks (the process died, the HTTP server went away, a ping failed, a
call failed at the transport) opens a new one after a backoff (1 s doubling to 60 s).
``close`` ends it (the child process with it).

Calls go to the current session's tool by name, so a reconnect never leaves a stale
session behind a tool; a call that finds no session waits a little for one, then fails
with a ``ToolFailed`` naming the last error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import Connection as AdapterConnection
from langchain_mcp_adapters.sessions import StdioConnection, create_session
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession, types

from core.errors import ConfigError, ToolFailed
from plugins.mcp.config import McpServer

log = logging.getLogger(__name__)

PING_S = 15.0  # how often an idle session is pinged
PING_TIMEOUT_S = 10.0
FRESH_S = 1.0  # a session that answered this recently is not pinged before a call
BACKOFF_S = (1.0, 60.0)  # first and longest wait before reconnecting
ERROR_CHARS = 200

State = Literal["idle", "connecting", "up", "down"]


@dataclass(frozen=True, slots=True)
class RemoteTool:
    """A tool as the MCP server describes it."""

    name: str
    description: str
    parameters: dict[str, Any]


def one_line(exc: BaseException) -> str:
    """An error as one short line (the first real error inside exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:ERROR_CHARS]


class McpConnection:
    """The bot's one session with the MCP server ``name`` (see the module text)."""

    def __init__(
        self,
        name: str,
        server: McpServer,
        *,
        connect_timeout_s: float,
        max_tools: int,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.server = server
        self.connect_timeout_s = connect_timeout_s
        self.max_tools = max_tools
        self._environ = os.environ if environ is None else environ
        self.state: State = "idle"
        self.error = ""  # the last failure, for /mcp list
        self.retry_at = 0.0  # monotonic time of the next attempt while down
        self.tools: dict[str, RemoteTool] = {}  # by the server's own tool name
        self._callable: dict[str, BaseTool] = {}  # the current session's tools
        self._session: ClientSession | None = None
        self._answered = 0.0  # monotonic time the session last answered
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._broken = asyncio.Event()
        self._refresh = asyncio.Event()
        self._closing = False
        self._wake = asyncio.Event()  # ends a backoff early (an admin turned it on again)

    # -- use ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the session in the background unless it is open or opening."""
        if self._closing:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"mcp-{self.name}"
            )

    async def ready(self, wait_s: float) -> bool:
        """Start if needed and wait up to ``wait_s`` seconds for the session."""
        self.start()
        if self.state == "down":
            self._wake.set()  # asked for now: try again without waiting out the backoff
        try:
            await asyncio.wait_for(self._up.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    def status(self, *, reason: bool = True) -> str:
        """One line on the connection: up, connecting, or down (with the reason, which may
        name hosts and variables: for admins)."""
        if self.state == "up":
            return "connected"
        if self.state == "connecting":
            return "connecting"
        if self.state == "idle":
            return "not started"
        wait = max(0.0, self.retry_at - time.monotonic())
        why = f" ({self.error or 'unknown error'})" if reason else ""
        return f"unreachable{why}; next try in {wait:.0f} s"

    async def call(self, tool: str, arguments: dict[str, Any]) -> ToolMessage:
        """Call ``tool`` with ``arguments`` within the server's ``timeout_s``.

        Raises:
            ToolFailed: No session (with the reason), the tool is gone, it took too long,
                or the session broke during the call (a reconnect is under way).
        """
        timeout = self.server.timeout_s
        wait = min(timeout, self.connect_timeout_s)
        if not self._up.is_set() or not await self._alive():
            if not await self.ready(wait):
                raise ToolFailed(f"the MCP server {self.name} is not reachable: {self.status()}")
        target = self._callable.get(tool)
        if target is None:
            raise ToolFailed(f"the MCP server {self.name} no longer offers {tool}")
        call = {"type": "tool_call", "id": uuid.uuid4().hex, "name": target.name, "args": arguments}
        lost = self._lost  # resolved when this session ends (the SDK may leave calls hanging)
        running = asyncio.ensure_future(target.ainvoke(call))
        try:
            await asyncio.wait((running, lost), timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            if not running.done():
                running.cancel()
        if not running.done() or running.cancelled():
            if lost.done():
                raise ToolFailed(f"the MCP server {self.name} went away during the call")
            raise ToolFailed(f"{tool} on {self.name} took longer than {timeout:g} s")
        try:
            result = running.result()
        except Exception as exc:
            log.warning("mcp %s: call of %s failed", self.name, tool, exc_info=True)
            self._up.clear()  # the next call waits for the new session
            self._broken.set()
            raise ToolFailed(
                f"the MCP server {self.name} failed during the call ({one_line(exc)})"
            ) from exc
        self._answered = time.monotonic()
        if not isinstance(result, ToolMessage):
            raise ToolFailed(f"{tool} on {self.name} answered something unreadable")
        return result

    async def _alive(self) -> bool:
        """Whether the session still answers (a ping); if not, a new one is being opened.

        A stdio server that died or an HTTP server that restarted since the last call is
        found here, so the call goes to the new session instead of failing. A session
        that answered within ``FRESH_S`` is taken as alive (busy servers skip the ping).
        """
        session = self._session
        if session is None:
            return False
        if time.monotonic() - self._answered < FRESH_S:
            return True
        try:
            await asyncio.wait_for(session.send_ping(), min(PING_TIMEOUT_S, self.server.timeout_s))
        except Exception as exc:
            log.info("mcp %s: no answer to a ping (%s); reconnecting", self.name, one_line(exc))
            self._up.clear()
            self._broken.set()
            return False
        self._answered = time.monotonic()
        return True

    async def close(self) -> None:
        """End the session (and the child process) for good."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._up.clear()
        self.state = "idle"

    # -- the session's task --------------------------------------------------------------

    async def _run(self) -> None:
        delay = BACKOFF_S[0]
        while not self._closing:
            self.state = "connecting"
            reached = False
            try:
                reached = await self._one_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = one_line(exc)
                log.warning("mcp %s: %s", self.name, self.error)
            finally:
                self._up.clear()
                self._callable, self._session = {}, None
                if not self._lost.done():
                    self._lost.set_result(None)  # calls still waiting on it fail now
            if reached:
                delay = 0.0  # it was working: try again at once, then back off
            self.state, self.retry_at = "down", time.monotonic() + delay
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            delay = min(max(delay * 2, BACKOFF_S[0]), BACKOFF_S[1])

    async def _one_session(self) -> bool:
        """One session, from opening to breaking; True when it was up at some point."""
        reached = False
        self._broken.clear()
        if self._lost.done():
            self._lost = asyncio.get_running_loop().create_future()
        kwargs = {"message_handler": self._on_message}
        async with create_session(self._connection(kwargs)) as session:
            await asyncio.wait_for(session.initialize(), self.connect_timeout_s)
            await asyncio.wait_for(self._load(session), self.connect_timeout_s)
            self.state, self.error, reached = "up", "", True
            self._session = session
            self._up.set()
            log.info("mcp %s: connected, %d tools", self.name, len(self.tools))
            while not self._broken.is_set():
                if await _first(self._broken, self._refresh, wait_s=PING_S) is None:
                    await asyncio.wait_for(session.send_ping(), PING_TIMEOUT_S)
                elif self._refresh.is_set():
                    self._refresh.clear()
                    await asyncio.wait_for(self._load(session), self.connect_timeout_s)
                    log.info("mcp %s: tool list changed, %d tools", self.name, len(self.tools))
            self.error = "the connection broke"
        return reached

    async def _load(self, session: ClientSession) -> None:
        tools = await load_mcp_tools(session, server_name=self.name)
        tools = tools[: self.max_tools]
        fresh: dict[str, RemoteTool] = {}
        for tool in tools:
            schema = tool.args_schema if isinstance(tool.args_schema, dict) else {}
            seen = RemoteTool(tool.name, tool.description or "", dict(schema))
            old = self.tools.get(tool.name)
            fresh[tool.name] = old if old == seen else seen  # unchanged: the same object
        self.tools = fresh
        self._callable = {tool.name: tool for tool in tools}

    async def _on_message(self, message: Any) -> None:
        """The SDK's handler of what the server sends unasked."""
        if isinstance(message, Exception):  # a line that was not MCP: garbage
            log.warning("mcp %s: unreadable message: %s", self.name, one_line(message))
        elif isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            self._refresh.set()

    def _connection(self, session_kwargs: dict[str, Any]) -> AdapterConnection:
        """The adapters' connection settings; secrets are read from the environment now."""
        server = self.server
        if server.transport == "stdio":
            env = dict(server.env)
            for key, variable in server.env_from.items():
                env[key] = self._variable(variable)
            stdio: StdioConnection = {
                "transport": "stdio",
                "command": server.command,
                "args": list(server.args),
                "env": env,
                "cwd": server.cwd or None,
                "session_kwargs": session_kwargs,
            }
            return stdio
        headers = {h: self._variable(v) for h, v in server.headers_from_env.items()}
        return {
            "transport": "streamable_http",
            "url": server.url,
            "headers": headers,
            "timeout": self.connect_timeout_s,
            "session_kwargs": session_kwargs,
        }

    def _variable(self, name: str) -> str:
        value = self._environ.get(name)
        if value is None:
            raise ConfigError(f"the environment variable {name} is not set")
        return value


async def _first(*events: asyncio.Event, wait_s: float) -> asyncio.Event | None:
    """The first of ``events`` to be set within ``wait_s`` seconds, or None."""
    for event in events:
        if event.is_set():
            return event
    waiters = {asyncio.ensure_future(event.wait()): event for event in events}
    try:
        done, _ = await asyncio.wait(waiters, timeout=wait_s, return_when="FIRST_COMPLETED")
    finally:
        for waiter in waiters:
            waiter.cancel()
    return waiters[next(iter(done))] if done else None
