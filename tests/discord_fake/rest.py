"""The fake Discord REST API (aiohttp), under ``/api/v10``.

Every request is parsed (JSON or multipart ``payload_json`` + ``files[n]``), recorded as
a ``Call`` (with its audit-log reason) and may be answered by an injected fault before
reaching its handler. Moderation is checked as Discord checks it: deleting someone
else's message needs Manage Messages (and is impossible in DMs), a timeout needs Moderate
Members, never reaches an administrator and ends at most 28 days ahead. Bot
routes need ``Authorization: Bot <token>``; webhook and interaction-callback routes do
not, as on Discord. Unknown routes answer 404 and are still recorded, so a test can see
what an adapter tried. Interaction and webhook routes live in ``webhooks.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from . import messages as msgs
from .messages import ApiError
from .models import ADMINISTRATOR, MANAGE_MESSAGES, MODERATE_MEMBERS, Channel, Member, World
from .records import Call, Interaction, UploadedFile

CALL_KEY = web.RequestKey("call", Call)

if TYPE_CHECKING:
    from .gateway import Gateway

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OK_HEADERS = {
    "X-RateLimit-Limit": "50",
    "X-RateLimit-Remaining": "49",
    "X-RateLimit-Reset-After": "1.0",
    "X-RateLimit-Scope": "user",
}
LONGEST_TIMEOUT = dt.timedelta(days=28)


@dataclass
class Fault:
    """An injected failure: answer ``status`` to the next ``times`` matching requests."""

    method: str
    pattern: str
    status: int
    retry_after: float
    times: int
    is_global: bool = False

    def matches(self, method: str, path: str) -> bool:
        """``pattern`` is a glob over the path after ``/api/v10`` (``*`` spans ``/``)."""
        return (
            self.times > 0
            and self.method in (method, "*")
            and fnmatch.fnmatchcase(path, self.pattern)
        )

    def response(self) -> web.Response:
        """The error response, with the headers discord.py reads for a 429."""
        headers = {"Via": "1.1 google", "X-RateLimit-Bucket": f"fake-{self.pattern}"}
        if self.status == 429:
            body: dict[str, Any] = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
            }
            headers.update(
                {
                    "Retry-After": str(max(1, round(self.retry_after))),
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
                    "X-RateLimit-Scope": "global" if self.is_global else "user",
                }
            )
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
        else:
            body = {"code": 0, "message": f"{self.status}: fake failure"}
        return msgs.json_response(body, status=self.status, headers=headers)


class RestApi:
    """Routes, recording and faults; ``FakeDiscord`` owns one and exposes its records."""

    def __init__(
        self,
        world: World,
        gateway: Gateway,
        *,
        token: str,
        shards: int,
        base_url: Callable[[], str],
    ) -> None:
        self.world = world
        self.gateway = gateway
        self.token = token
        self.shards = shards
        self.base_url = base_url
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.forbidden: set[int] = set()
        self.cdn: dict[int, bytes] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.ack_timeout: float | None = None
        self.changed = asyncio.Condition()

    def add_routes(self, app: web.Application) -> None:
        """Register every route and the recording middleware on ``app``."""
        from .webhooks import add_webhook_routes

        app.middlewares.append(self._middleware)
        add = app.router.add_route
        add("GET", API_PREFIX + "/users/@me", self._me)
        add("POST", API_PREFIX + "/users/@me/channels", self._create_dm)
        add("GET", API_PREFIX + "/gateway", self._gateway)
        add("GET", API_PREFIX + "/gateway/bot", self._gateway)
        add("GET", API_PREFIX + "/oauth2/applications/@me", self._application)
        add("GET", API_PREFIX + "/applications/@me", self._application)
        add("GET", API_PREFIX + "/channels/{cid}", self._get_channel)
        add("POST", API_PREFIX + "/channels/{cid}/typing", self._typing)
        add("GET", API_PREFIX + "/channels/{cid}/messages", self._list_messages)
        add("POST", API_PREFIX + "/channels/{cid}/messages", self._create_message)
        add("GET", API_PREFIX + "/channels/{cid}/messages/{mid}", self._get_message)
        add("PATCH", API_PREFIX + "/channels/{cid}/messages/{mid}", self._edit_message)
        add("DELETE", API_PREFIX + "/channels/{cid}/messages/{mid}", self._delete_message)
        add("GET", API_PREFIX + "/guilds/{gid}/members/{uid}", self._get_member)
        add("PATCH", API_PREFIX + "/guilds/{gid}/members/{uid}", self._edit_member)
        for path in ("/applications/{app}/commands", "/applications/{app}/guilds/{gid}/commands"):
            add("GET", API_PREFIX + path, self._get_commands)
            add("PUT", API_PREFIX + path, self._put_commands)
        add_webhook_routes(self, app)
        add("GET", "/attachments/{cid}/{aid}/{name}", self._cdn)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    # --- middleware: parse, record, authorize, inject faults --------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        path = request.path.removeprefix(API_PREFIX)
        body, files = await _parse_body(request)
        call = Call(request.method, path, dict(request.query), body, files)
        if (reason := request.headers.get("X-Audit-Log-Reason")) is not None:
            call.reason = urllib.parse.unquote(reason)
        request[CALL_KEY] = call
        try:
            response = await self._answer(request, handler, call)
        except ApiError as exc:
            response = msgs.json_response(exc.body, status=exc.status)
        async with self.changed:
            call.status = response.status
            self.calls.append(call)
            self.changed.notify_all()
        return response

    async def _answer(
        self, request: web.Request, handler: Handler, call: Call
    ) -> web.StreamResponse:
        for fault in self.faults:
            if fault.matches(call.method, call.path):
                fault.times -= 1
                return fault.response()
        public = call.path.startswith(("/webhooks/", "/interactions/", "/attachments/"))
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            raise ApiError(401, 0, "401: Unauthorized")
        response = await handler(request)
        if response.status < 300:
            response.headers.update(_OK_HEADERS)
        return response

    # --- small helpers the handlers share ----------------------------------------------

    def channel(self, request: web.Request) -> Channel:
        """The ``{cid}`` channel or 404 Unknown Channel (10003)."""
        channel = self.world.channels.get(int(request.match_info["cid"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def uploads_to_attachments(self, channel: Channel, call: Call) -> list[dict[str, Any]]:
        """Turn the call's uploaded files into stored attachment objects."""
        described = {
            str(a.get("id")): a.get("description")
            for a in (call.json or {}).get("attachments") or []
        }
        return [
            msgs.attachment_payload(
                self.world, self.base_url(), channel.id, f, self.cdn, described.get(f.field[6:-1])
            )
            for f in call.files
        ]

    async def dispatch_message(self, event: str, message: dict[str, Any]) -> None:
        """Dispatch a message event to the sessions of its guild."""
        guild_id = int(message["guild_id"]) if "guild_id" in message else None
        mentions_bot = any(u["id"] == str(self.world.bot.id) for u in message["mentions"])
        await self.gateway.dispatch(event, message, guild_id=guild_id, mentions_bot=mentions_bot)

    # --- bot user, gateway, application ------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        return msgs.json_response(
            {**self.world.bot.to_payload(), "verified": True, "mfa_enabled": False, "flags": 0}
        )

    async def _gateway(self, request: web.Request) -> web.Response:
        url = self.base_url().replace("http://", "ws://", 1) + "/gateway"
        return msgs.json_response(
            {
                "url": url,
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _application(self, request: web.Request) -> web.Response:
        return msgs.json_response(
            {
                "id": str(self.world.application_id),
                "name": self.world.bot.name,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.world.bot.to_payload(),
                "verify_key": "0" * 64,
                "flags": 0,
                "team": None,
                "summary": "",
                "bot": self.world.bot.to_payload(),
                "approximate_guild_count": len(self.world.guilds),
            }
        )

    async def _create_dm(self, request: web.Request) -> web.Response:
        user = self.world.users.get(int(request[CALL_KEY].json["recipient_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return msgs.json_response(self.world.dm_channel(user).to_payload())

    # --- channels and messages ---------------------------------------------------------

    async def _get_channel(self, request: web.Request) -> web.Response:
        return msgs.json_response(self.channel(request).to_payload())

    async def _typing(self, request: web.Request) -> web.Response:
        self._check_allowed(self.channel(request))
        return web.Response(status=204)

    async def _list_messages(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        limit = int(request.query.get("limit", 50))
        newest_first = list(self.world.messages_in(channel.id))[::-1]
        return msgs.json_response(newest_first[:limit])

    async def _create_message(self, request: web.Request) -> web.Response:
        channel = self.channel(request)
        call: Call = request[CALL_KEY]
        self._check_allowed(channel)
        body = call.json or {}
        msgs.validate(body, call.files, creating=True)
        message = msgs.bot_message(
            self.world, channel, body, self.uploads_to_attachments(channel, call)
        )
        await self.dispatch_message("MESSAGE_CREATE", message)
        return msgs.json_response(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        return msgs.json_response(self._message(request))

    async def _edit_message(self, request: web.Request) -> web.Response:
        message, call = self._message(request), request[CALL_KEY]
        if message["author"]["id"] != str(self.world.bot.id):
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        msgs.validate(call.json or {}, call.files, creating=False)
        channel = self.channel(request)
        msgs.apply_edit(message, call.json or {}, self.uploads_to_attachments(channel, call))
        await self.dispatch_message("MESSAGE_UPDATE", message)
        return msgs.json_response(message)

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message["author"]["id"] != str(self.world.bot.id):
            self._check_may_delete(self.channel(request))
        del self.world.messages[int(message["id"])]
        data = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
        await self.gateway.dispatch(
            "MESSAGE_DELETE", data, guild_id=int(data.get("guild_id", 0)) or None
        )
        return web.Response(status=204)

    def _message(self, request: web.Request) -> dict[str, Any]:
        channel = self.channel(request)
        message = self.world.messages.get(int(request.match_info["mid"]))
        if message is None or message["channel_id"] != str(channel.id):
            raise msgs.unknown_message()
        return message

    def _check_allowed(self, channel: Channel) -> None:
        if channel.id in self.forbidden:
            raise ApiError(403, 50013, "Missing Permissions")

    def _check_may_delete(self, channel: Channel) -> None:
        """Someone else's message: only in a guild, and only with Manage Messages."""
        if channel.guild is None:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        if not channel.guild.bot_member.permissions & MANAGE_MESSAGES:
            raise ApiError(403, 50013, "Missing Permissions")

    # --- guild members (timeouts) -----------------------------------------------------

    async def _get_member(self, request: web.Request) -> web.Response:
        return msgs.json_response(self._member(request).to_payload())

    async def _edit_member(self, request: web.Request) -> web.Response:
        """Only timeouts (``communication_disabled_until``; null lifts one) are kept."""
        member, body = self._member(request), request[CALL_KEY].json or {}
        if "communication_disabled_until" in body:
            guild = member.guild
            refused = member is guild.bot_member or member.permissions & ADMINISTRATOR
            if refused or not guild.bot_member.permissions & MODERATE_MEMBERS:
                raise ApiError(403, 50013, "Missing Permissions")
            until = body["communication_disabled_until"]
            member.communication_disabled_until = _timeout_end(until)
        return msgs.json_response(member.to_payload())

    def _member(self, request: web.Request) -> Member:
        """The ``{uid}`` member of the ``{gid}`` guild, or 404 Unknown Guild / Member."""
        guild_id = int(request.match_info["gid"])
        guild = next((g for g in self.world.guilds if g.id == guild_id), None)
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        member = guild.member(int(request.match_info["uid"]))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return member

    # --- application commands ---------------------------------------------------------

    async def _get_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        return msgs.json_response(self.commands.get(_guild_key(request), []))

    async def _put_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        key = _guild_key(request)
        old = {c["name"]: c["id"] for c in self.commands.get(key, [])}
        stored = []
        for spec in request[CALL_KEY].json or []:
            command = {
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,
                "integration_types": [0],
                **spec,
            }
            command.update(
                id=old.get(spec["name"]) or str(self.world.ids.next()),
                application_id=str(self.world.application_id),
                version=str(self.world.ids.next()),
            )
            if key is not None:
                command["guild_id"] = str(key)
            stored.append(command)
        self.commands[key] = stored
        return msgs.json_response(stored)

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app"] != str(self.world.application_id):
            raise ApiError(403, 50001, "Missing Access")

    # --- CDN and fallback --------------------------------------------------------------

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self.cdn.get(int(request.match_info["aid"]))
        if data is None:
            raise ApiError(404, 0, "404: Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _not_found(self, request: web.Request) -> web.Response:
        raise ApiError(404, 0, "404: Not Found")


def _timeout_end(value: Any) -> str | None:
    """A timeout's end as Discord takes it: an aware ISO timestamp at most 28 days ahead."""
    if value is None:
        return None
    try:
        until = dt.datetime.fromisoformat(str(value))
    except ValueError:
        until = None
    if until is None or until.tzinfo is None:
        raise _bad_timeout("BASE_TYPE_BAD_TIME", "Could not parse the time.")
    if until > dt.datetime.now(dt.UTC) + LONGEST_TIMEOUT:
        raise _bad_timeout("BASE_TYPE_BAD_TIME", "Timeouts may last no more than 28 days from now.")
    return until.isoformat()


def _bad_timeout(code: str, message: str) -> ApiError:
    field = {"communication_disabled_until": {"_errors": [{"code": code, "message": message}]}}
    return ApiError(400, 50035, "Invalid Form Body", field)


def _guild_key(request: web.Request) -> int | None:
    gid = request.match_info.get("gid")
    return int(gid) if gid else None


async def _parse_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read()
            if part.name == "payload_json":
                payload = json.loads(data)
            elif part.filename is not None:
                files.append(
                    UploadedFile(
                        part.name or "",
                        part.filename,
                        part.headers.get("Content-Type", ""),
                        bytes(data),
                    )
                )
        return payload, files
    if request.can_read_body:
        text = await request.text()
        return (json.loads(text) if text else None), []
    return None, []
