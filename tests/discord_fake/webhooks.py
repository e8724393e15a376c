"""Interaction callbacks and the interaction webhook (``@original`` and follow-ups).

Callback types: 4 sends a message, 5 posts a "thinking" message (flag LOADING) that the
first follow-up or ``@original`` edit replaces, as Discord does; 6 acknowledges a
component silently; 7 edits the component's message; 8, 9, 10… are only recorded.
A second callback is 400 (40060 already acknowledged); with ``ack_timeout`` set, a late
one is 404 (10062 Unknown interaction). Ephemeral messages (flag 64) are stored but not
dispatched to the gateway. No authorization header is needed, as on Discord.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import messages as msgs
from .messages import EPHEMERAL, LOADING, ApiError
from .rest import CALL_KEY

if TYPE_CHECKING:
    from .records import Call, Interaction
    from .rest import RestApi

CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
APPLICATION_COMMAND = 2


def add_webhook_routes(api: RestApi, app: web.Application) -> None:
    """Register the interaction callback and webhook routes of ``api`` on ``app``."""
    routes = _WebhookRoutes(api)
    add = app.router.add_route
    base = "/api/v10/webhooks/{app}/{token}"
    add("POST", "/api/v10/interactions/{iid}/{token}/callback", routes.callback)
    add("GET", base + "/messages/@original", routes.get_message)
    add("PATCH", base + "/messages/@original", routes.edit_message)
    add("DELETE", base + "/messages/@original", routes.delete_message)
    add("POST", base, routes.followup)
    add("GET", base + "/messages/{mid}", routes.get_message)
    add("PATCH", base + "/messages/{mid}", routes.edit_message)
    add("DELETE", base + "/messages/{mid}", routes.delete_message)


class _WebhookRoutes:
    def __init__(self, api: RestApi) -> None:
        self.api = api

    async def callback(self, request: web.Request) -> web.Response:
        call: Call = request[CALL_KEY]
        interaction = self.api.interactions.get(int(request.match_info["iid"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        interaction.responses.append(call)
        timeout = self.api.ack_timeout
        if timeout is not None and time.monotonic() - interaction.at > timeout:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = call.json or {}
        kind, data = int(body["type"]), body.get("data") or {}
        if kind in (CHANNEL_MESSAGE, UPDATE_MESSAGE):
            msgs.validate(data, call.files, creating=kind == CHANNEL_MESSAGE)
        interaction.callback_type = kind
        message = await self._respond(interaction, kind, data, call)
        if "with_response" not in call.query:
            return web.Response(status=204)
        return msgs.json_response(_callback_response(interaction, kind, message))

    async def _respond(
        self, interaction: Interaction, kind: int, data: dict[str, Any], call: Call
    ) -> dict[str, Any] | None:
        if kind == CHANNEL_MESSAGE:
            interaction.original = await self._post(interaction, data, call)
        elif kind == DEFERRED_MESSAGE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            interaction.original = await self._post(interaction, {"flags": flags}, call)
        elif kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and interaction.message is not None:
            interaction.original = interaction.message
            if kind == UPDATE_MESSAGE:
                await self._edit(interaction.message, data, call)
        return interaction.original

    async def followup(self, request: web.Request) -> web.Response:
        interaction, call = self._interaction(request), request[CALL_KEY]
        if not interaction.acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")
        body = call.json or {}
        msgs.validate(body, call.files, creating=True)
        original = interaction.original
        if original is not None and int(original.get("flags") or 0) & LOADING:
            message = await self._edit(original, body, call)
        else:
            message = await self._post(interaction, body, call)
        interaction.followups.append(message)
        if request.query.get("wait", "").lower() in ("true", "1"):
            return msgs.json_response(message)
        return web.Response(status=204)

    async def get_message(self, request: web.Request) -> web.Response:
        return msgs.json_response(self._target(request))

    async def edit_message(self, request: web.Request) -> web.Response:
        message, call = self._target(request), request[CALL_KEY]
        msgs.validate(call.json or {}, call.files, creating=False)
        return msgs.json_response(await self._edit(message, call.json or {}, call))

    async def delete_message(self, request: web.Request) -> web.Response:
        message = self._target(request)
        del self.api.world.messages[int(message["id"])]
        interaction = self._interaction(request, record=False)
        if interaction.original is message:
            # As on Discord: the next follow-up is a new message, not the deleted one.
            interaction.original = None
        keys = ("id", "channel_id", "guild_id")
        data: dict[str, Any] = {k: message[k] for k in keys if k in message}
        if not int(message.get("flags") or 0) & EPHEMERAL:
            guild_id = int(data["guild_id"]) if "guild_id" in data else None
            await self.api.gateway.dispatch("MESSAGE_DELETE", data, guild_id=guild_id)
        return web.Response(status=204)

    # --- helpers ----------------------------------------------------------------------

    def _interaction(self, request: web.Request, *, record: bool = True) -> Interaction:
        token = request.match_info["token"]
        found = next((i for i in self.api.interactions.values() if i.token == token), None)
        if found is None or request.match_info["app"] != str(self.api.world.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        if record:
            found.responses.append(request[CALL_KEY])
        return found

    def _target(self, request: web.Request) -> dict[str, Any]:
        interaction = self._interaction(request)
        mid = request.match_info.get("mid")
        if mid is None:
            message = interaction.original
        else:
            message = self.api.world.messages.get(int(mid))
            ours = [m["id"] for m in [interaction.original, *interaction.followups] if m]
            message = message if message is not None and message["id"] in ours else None
        if message is None or int(message["id"]) not in self.api.world.messages:
            raise msgs.unknown_message()
        return message

    async def _post(
        self, interaction: Interaction, body: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        world = self.api.world
        extra = {
            "webhook_id": str(world.application_id),
            "application_id": str(world.application_id),
            "type": msgs.CHAT_INPUT_COMMAND if interaction.type == APPLICATION_COMMAND else 0,
            "interaction_metadata": {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.to_payload(),
                "authorizing_integration_owners": {},
            },
        }
        attachments = self.api.uploads_to_attachments(interaction.channel, call)
        message = msgs.bot_message(world, interaction.channel, body, attachments, extra)
        message.pop("member", None)
        if not int(message.get("flags") or 0) & EPHEMERAL:
            await self.api.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def _edit(
        self, message: dict[str, Any], body: dict[str, Any], call: Call
    ) -> dict[str, Any]:
        channel = self.api.world.channels[int(message["channel_id"])]
        attachments = self.api.uploads_to_attachments(channel, call)
        msgs.apply_edit(message, body, attachments)
        if not int(message.get("flags") or 0) & EPHEMERAL:
            await self.api.dispatch_message("MESSAGE_UPDATE", message)
        return message


def _callback_response(
    interaction: Interaction, kind: int, message: dict[str, Any] | None
) -> dict[str, Any]:
    flags = int(message.get("flags") or 0) if message else 0
    resource: dict[str, Any] = {"type": kind}
    if message is not None and kind in (CHANNEL_MESSAGE, UPDATE_MESSAGE):
        resource["message"] = message
    return {
        "interaction": {
            "id": str(interaction.id),
            "type": interaction.type,
            "response_message_id": message["id"] if message else None,
            "response_message_loading": kind == DEFERRED_MESSAGE,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        },
        "resource": resource,
    }
