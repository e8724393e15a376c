"""The HTTP side of the fake: routes, parameter decoding, injected faults, the call log.

``ApiServer`` serves ``/bot<token>/<method>`` (any HTTP verb, as Telegram does) and
``GET /file/bot<token>/<file_path>``. Parameters may come in the query string, a urlencoded
or multipart form (PTB: non-string values JSON-encoded, files as parts, sometimes referenced
as ``attach://<name>``) or a JSON body; they reach ``BotMethods`` decoded, files as
``Upload``. Every call is logged with its status, faulted ones included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .methods import BotMethods
from .objects import ApiError, Upload
from .state import World

# Parameters Telegram takes as strings: never JSON-decoded, even when they look like numbers.
STRING_PARAMS = frozenset(
    "text caption parse_mode callback_query_id file_id inline_message_id url secret_token"
    " language_code action photo document audio video voice animation sticker video_note"
    " thumbnail description short_description name title question emoji"
    " business_connection_id message_effect_id ip_address query custom_title".split()
)
UPLOAD_BODY_LIMIT = 60 * 1024 * 1024


@dataclass
class Fault:
    """An injected failure for the next ``times`` calls of ``method`` (``"*"``: any)."""

    method: str
    status: int
    retry_after: int | None
    times: int
    description: str

    def error(self) -> ApiError:
        """The ``ApiError`` Telegram would answer."""
        if self.status == 429:
            default = f"Too Many Requests: retry after {self.retry_after}"
            parameters = None if self.retry_after is None else {"retry_after": self.retry_after}
            return ApiError(429, self.description or default, parameters)
        if self.status == 403:
            return ApiError(403, self.description or "Forbidden: bot was blocked by the user")
        if self.status == 400:
            return ApiError(400, self.description or "Bad Request: injected fault")
        return ApiError(self.status, self.description or HTTPStatus(self.status).phrase)


class ApiServer:
    """The aiohttp server on 127.0.0.1 in front of ``BotMethods``."""

    def __init__(self, world: World, methods: BotMethods) -> None:
        self.world = world
        self.methods = methods
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.statuses: list[int] = []
        self.faults: list[Fault] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application(client_max_size=UPLOAD_BODY_LIMIT)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=2.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """End pending long polls, then stop listening."""
        self.world.closing = True
        await self.world.notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def take_fault(self, method: str) -> ApiError | None:
        """The error of the first fault matching ``method``, counting it down."""
        fault = next((f for f in self.faults if f.method in (method.lower(), "*")), None)
        if fault is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            self.faults.remove(fault)
        return fault.error()

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.world.token:
            return web.json_response(ApiError(401, "Unauthorized").payload(), status=401)
        method = request.match_info["method"]
        params = await decode(request)
        try:
            if (fault := self.take_fault(method)) is not None:
                raise fault
            result = await self.methods.call(method, params)
        except ApiError as error:
            status, body = error.status, error.payload()
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            # Malformed parameters: Telegram answers 400 rather than failing.
            status, body = 400, ApiError(400, f"Bad Request: {error!r}").payload()
        else:
            status, body = 200, {"ok": True, "result": result}
        summary = {k: v.summary() if isinstance(v, Upload) else v for k, v in params.items()}
        self.calls.append((method, summary))
        self.statuses.append(status)
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        stored = self.world.file_by_path(request.match_info["path"])
        if request.match_info["token"] != self.world.token or stored is None:
            return web.json_response(ApiError(404, "Not Found").payload(), status=404)
        return web.Response(body=stored.data, content_type="application/octet-stream")


async def decode(request: web.Request) -> dict[str, Any]:
    """Query string, form, multipart or JSON body -> parameters; files become ``Upload``."""
    params: dict[str, Any] = {k: _value(k, v) for k, v in request.query.items()}
    files: dict[str, Upload] = {}
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.can_read_body:
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = Upload(value.filename, value.file.read(), value.content_type)
            else:
                text = value.decode() if isinstance(value, bytes | bytearray) else value
                params[name] = _value(name, text)
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
            params[name] = files.pop(value[9:])
    params.update(files)
    return params


def _value(name: str, raw: str) -> Any:
    """A form value: JSON-decoded unless Telegram takes that parameter as a string."""
    if name in STRING_PARAMS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
