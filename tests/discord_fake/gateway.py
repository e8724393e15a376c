"""The fake Discord gateway: an aiohttp websocket speaking gateway v10 in JSON text frames.

It implements what discord.py needs to connect, stay connected and resume: HELLO,
IDENTIFY -> READY + one GUILD_CREATE per guild of the shard, HEARTBEAT -> HEARTBEAT_ACK,
RESUME -> replay of the missed dispatches + RESUMED, REQUEST_GUILD_MEMBERS ->
GUILD_MEMBERS_CHUNK. Dispatches are numbered per session and kept, so a resumed session
gets exactly what it missed. Compression is never used: discord.py asks for
``compress=zstd-stream`` (or zlib-stream) but it decodes plain text frames just as well,
so the query parameter is recorded and ignored. It never blocks on a client: a send to a
closed socket is dropped and kept for the next RESUME.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from collections.abc import Callable

    from .models import World

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
_CONTENT_KEYS = ("content", "embeds", "attachments", "components", "poll")


@dataclass
class GatewaySession:
    """One identified session: its shard, its intents and every dispatch it was sent."""

    session_id: str
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def covers(self, guild_id: int | None) -> bool:
        """Whether this session's shard receives events of ``guild_id`` (DMs: shard 0)."""
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % count == shard_id

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The ``d`` of every dispatch sent, optionally only those named ``name``."""
        return [p["d"] for p in self.sent if name is None or p["t"] == name]


class Gateway:
    """The websocket endpoint plus its sessions; ``FakeDiscord`` owns one."""

    def __init__(
        self,
        world: World,
        *,
        token: str,
        heartbeat_interval_ms: int,
        resume_url: Callable[[], str],
    ) -> None:
        self._world = world
        self._token = token
        self._heartbeat_ms = heartbeat_interval_ms
        self._resume_url = resume_url
        self.sessions: list[GatewaySession] = []
        self.received: list[dict[str, Any]] = []
        self.connections: list[dict[str, str]] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()

    # --- what tests ask -------------------------------------------------------------

    def ops(self, op: int) -> list[dict[str, Any]]:
        """Every payload a client sent with opcode ``op`` (e.g. ``IDENTIFY``, ``RESUME``)."""
        return [p for p in self.received if p.get("op") == op]

    async def wait_for_op(self, op: int, count: int = 1, within: float = 5.0) -> None:
        """Wait until clients have sent ``count`` payloads with opcode ``op`` in total."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.ops(op)) >= count)

    # --- sending ------------------------------------------------------------------------

    async def dispatch(
        self, event: str, data: dict[str, Any], *, guild_id: int | None, mentions_bot: bool = False
    ) -> int:
        """Send a DISPATCH to every session whose shard covers ``guild_id``.

        Message events honour GUILD_MESSAGES / DIRECT_MESSAGES and, loosely,
        MESSAGE_CONTENT (content is kept for DMs, mentions of the bot and the bot's own
        messages). Returns how many sessions got it.
        """
        delivered = 0
        for session in [s for s in self.sessions if s.covers(guild_id)]:
            shaped = _shape_for_intents(event, data, session.intents, guild_id, mentions_bot)
            if shaped is not None:
                await self._send_dispatch(session, event, shaped)
                delivered += 1
        return delivered

    async def disconnect(self, code: int = 4000, *, reconnect_op: bool = False) -> None:
        """Close every live socket with ``code`` (or first send RECONNECT); sessions stay."""
        for session in self.sessions:
            ws, session.ws = session.ws, None
            if ws is None or ws.closed:
                continue
            if reconnect_op:
                await _send_quietly(ws, {"op": RECONNECT, "d": None})
            await ws.close(code=code)

    async def invalidate(self) -> None:
        """Forget every session: the next RESUME gets INVALID_SESSION (d=false)."""
        self.sessions.clear()

    async def close(self) -> None:
        """Close every socket (server shutdown)."""
        for ws in list(self._sockets):
            await ws.close(code=1001)

    async def _send_dispatch(
        self, session: GatewaySession, event: str, data: dict[str, Any]
    ) -> None:
        async with session.lock:
            session.seq += 1
            payload = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
            session.sent.append(payload)
            if session.ws is not None:
                await _send_quietly(session.ws, payload)

    # --- the websocket endpoint -----------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """aiohttp handler for ``GET /gateway``."""
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connections.append(dict(request.query))
        try:
            await ws.send_str(
                json.dumps(
                    {
                        "op": HELLO,
                        "d": {"heartbeat_interval": self._heartbeat_ms, "_trace": ["fake-gateway"]},
                    }
                )
            )
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_payload(ws, json.loads(msg.data))
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Decode error: binary frames unsupported")
        finally:
            self._sockets.discard(ws)
            for session in self.sessions:
                if session.ws is ws:
                    session.ws = None
        return ws

    async def _on_payload(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        async with self._changed:
            self.received.append(payload)
            self._changed.notify_all()
        op, data = payload.get("op"), payload.get("d") or {}
        if op == HEARTBEAT:
            await _send_quietly(ws, {"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            await self._identify(ws, data)
        elif op == RESUME:
            await self._resume(ws, data)
        elif op == REQUEST_MEMBERS:
            await self._send_members(ws, data)
        elif op not in (PRESENCE_UPDATE, VOICE_STATE):
            await ws.close(code=4001, message=b"Unknown opcode")

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self._token:
            await ws.close(code=4004, message=b"Authentication failed")
            return
        shard_id, count = data.get("shard") or (0, 1)
        if not 0 <= shard_id < count:
            await ws.close(code=4010, message=b"Invalid shard")
            return
        session = GatewaySession(uuid.uuid4().hex, int(data.get("intents", 0)), (shard_id, count))
        session.ws = ws
        self.sessions.append(session)
        guilds = [g for g in self._world.guilds if session.covers(g.id)]
        await self._send_dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": self._world.bot.to_payload(),
                "session_id": session.session_id,
                "resume_gateway_url": self._resume_url(),
                "shard": [shard_id, count],
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "application": {"id": str(self._world.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "user_settings": {},
                "_trace": ["fake-gateway"],
            },
        )
        for guild in guilds:
            await self._send_dispatch(session, "GUILD_CREATE", guild.to_payload())

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if session is None or data.get("token") != self._token:
            await _send_quietly(ws, {"op": INVALID_SESSION, "d": False})
            return
        async with session.lock:
            session.ws = ws
            missed = [p for p in session.sent if p["s"] > (data.get("seq") or 0)]
            for payload in missed:
                await _send_quietly(ws, payload)
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-gateway"]})

    async def _send_members(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        guild = next((g for g in self._world.guilds if str(g.id) == str(data["guild_id"])), None)
        session = next((s for s in self.sessions if s.ws is ws), None)
        if guild is None or session is None:
            return
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.to_payload() for m in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)


def _shape_for_intents(
    event: str, data: dict[str, Any], intents: int, guild_id: int | None, mentions_bot: bool
) -> dict[str, Any] | None:
    if not event.startswith("MESSAGE_"):
        return data
    needed = GUILD_MESSAGES if guild_id is not None else DIRECT_MESSAGES
    if not intents & needed:
        return None
    from_bot = data.get("author", {}).get("bot", False)
    if intents & MESSAGE_CONTENT or guild_id is None or mentions_bot or from_bot:
        return data
    return {k: ("" if k == "content" else []) if k in _CONTENT_KEYS else v for k, v in data.items()}


async def _send_quietly(ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(json.dumps(payload))
