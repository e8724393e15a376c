"""What crosses Redis between the bot and the Celery workers, and how each side reads it.

Redis is a trust boundary: anyone who can reach it can put a task on the queue, publish
on a job's channel or write a result hash. So each side parses what it reads from there
strictly and never lets a malformed message raise past its reader:

* the worker turns a task's payload into requests with ``admit`` (unknown fields, wrong
  types, broken base64 and requests beyond its own limits are refused one by one);
* the bot turns pub/sub messages into updates with ``parse_event`` and stored results
  with ``decode_result`` (a ValueError / ResultRejected says what was wrong).

The Redis names both sides share are ``Keys`` (see ``workers.celery_app``). Torch-free.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from workers.api import Failed, Finished, GeneratedImage, ImageRequest, Started, Step
from workers.config import ImagineSettings
from workers.validate import (
    MAX_JOB_ID_CHARS,
    RequestRejected,
    ResultRejected,
    validate_request,
)

DEFAULT_NAMESPACE = "atelier"
MAX_EVENT_BYTES = 16 * 1024
"""A progress event is ~100 bytes; anything much bigger is not one of ours."""
MAX_RESULT_META_BYTES = 64 * 1024
MAX_TASK_REQUESTS = 64
"""The most one task may carry (``imagine.max_batch`` is at most 64)."""
_MAX_NAME_CHARS = 200
_MAX_DEPTH = 4
"""Ours nest two deep; "[[[[…" is refused before json recurses into the recursion limit."""
_FIELDS = {f.name for f in dataclasses.fields(ImageRequest)} - {"init_png"}
_WIRE_FIELDS = _FIELDS | {"init_png_b64"}


@dataclasses.dataclass(frozen=True, slots=True)
class Keys:
    """The Redis names both sides agree on, under one namespace."""

    namespace: str = DEFAULT_NAMESPACE

    def channel(self, job_id: str) -> str:
        """Pub/sub channel with the job's events."""
        return f"{self.namespace}:job:{job_id}"

    def cancel(self, job_id: str) -> str:
        """Flag key: nobody waits for the job any more."""
        return f"{self.namespace}:cancel:{job_id}"

    def result(self, job_id: str) -> str:
        """Hash with the job's outcome (``meta``) and images (``png:N``)."""
        return f"{self.namespace}:result:{job_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class ResultReady:
    """The worker says the job's result hash is written (the ``done`` event)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Admission:
    """A task's payload as a worker reads it: requests to run, and refusals by job id."""

    accepted: list[ImageRequest]
    refused: dict[str, str]
    unanswerable: int = 0
    """Entries without a usable job id: nobody can be told, so they are only logged."""


def request_to_dict(request: ImageRequest) -> dict[str, Any]:
    """JSON-safe form of a request (an init PNG travels as base64)."""
    data = {name: getattr(request, name) for name in _FIELDS}
    png = request.init_png
    data["init_png_b64"] = base64.b64encode(png).decode("ascii") if png is not None else None
    return data


def request_from_dict(data: object) -> ImageRequest:
    """Inverse of ``request_to_dict``; RequestRejected for anything it did not write.

    Only the shape is checked here (fields, base64); ``validate_request`` checks values.
    """
    if not isinstance(data, dict):
        raise RequestRejected(f"a request must be an object, not {type(data).__name__}")
    unknown = sorted(repr(k)[:40] for k in data if k not in _WIRE_FIELDS)
    if unknown:
        raise RequestRejected(f"unknown fields: {', '.join(unknown[:5])}")
    if "job_id" not in data or "prompt" not in data:
        raise RequestRejected("job_id and prompt are required")
    fields = {k: v for k, v in data.items() if k in _FIELDS}
    b64 = data.get("init_png_b64")
    if b64 is not None and not isinstance(b64, str):
        raise RequestRejected("init_png_b64: not text")
    try:
        init_png = base64.b64decode(b64, validate=True) if b64 else None
    except (binascii.Error, ValueError):
        raise RequestRejected("init_png_b64: not base64") from None
    return ImageRequest(**fields, init_png=init_png)


def admit(settings: ImagineSettings, payload: object) -> Admission:
    """Read a task's payload on the worker: parse and validate each request.

    A request with a repeated job id is refused (its result hash would be shared). The
    rest are checked against ``settings``, the worker's own limits. A payload that is not
    a list of at most ``MAX_TASK_REQUESTS`` is not the bot's: it is only counted.
    """
    if not isinstance(payload, list) or len(payload) > MAX_TASK_REQUESTS:
        # Not the bot's (it sends at most max_batch): nobody to answer, only to log.
        return Admission([], {}, unanswerable=len(payload) if isinstance(payload, list) else 1)
    accepted: list[ImageRequest] = []
    refused: dict[str, str] = {}
    seen: set[str] = set()
    twice: set[str] = set()
    unanswerable = 0
    for data in payload:
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID_CHARS:
            unanswerable += 1
            continue
        if job_id in seen:
            twice.add(job_id)
            continue
        seen.add(job_id)
        try:
            request = request_from_dict(data)
            validate_request(settings, request)
        except RequestRejected as exc:
            refused[job_id] = str(exc)
            continue
        accepted.append(request)
    refused.update(dict.fromkeys(twice, "the job id appears twice in one task"))
    accepted = [r for r in accepted if r.job_id not in twice]
    return Admission(accepted, refused, unanswerable)


def parse_event(job_id: str, data: object) -> Started | Step | ResultReady:
    """One pub/sub message of a job's channel; ValueError saying what is wrong with it."""
    if not isinstance(data, bytes | str):
        raise ValueError(f"a {type(data).__name__} payload")
    if len(data) > MAX_EVENT_BYTES:
        raise ValueError(f"{len(data)} bytes; at most {MAX_EVENT_BYTES}")
    raw = data.encode(errors="replace") if isinstance(data, str) else data
    if _depth(raw) > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(event, dict):
        raise ValueError(f"JSON {type(event).__name__}, not an object")
    kind = event.get("type")
    if kind == "started":
        worker = _text(event, "worker")
        return Started(job_id, worker, _int(event, "batch_size", 1, 10_000))
    if kind == "step":
        total = _int(event, "total", 1, 1_000_000)
        step = _int(event, "step", 0, total)
        eta = event.get("eta_s")
        if eta is not None:
            eta = _number(event, "eta_s")
        return Step(job_id, step, total, eta)
    if kind == "done":
        return ResultReady()
    raise ValueError(f"unknown event type {str(kind)[:40]!r}")


def decode_result(job_id: str, stored: Mapping[bytes, bytes]) -> Finished | Failed:
    """A job's result hash as the bot read it; ResultRejected when it is malformed.

    The PNGs themselves are checked afterwards (``workers.validate.check_images``).
    """
    raw = stored.get(b"meta", b"")
    if len(raw) > MAX_RESULT_META_BYTES:
        raise ResultRejected(f"result metadata of {len(raw)} bytes")
    if _depth(raw) > _MAX_DEPTH:
        raise ResultRejected("result metadata nested too deeply")
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        status = meta.get("status")
        if status == "ok":
            return _finished(job_id, meta, stored)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultRejected(f"malformed result ({type(exc).__name__}: {exc})") from None
    if status == "cancelled":
        return Failed(job_id, "cancelled", cancelled=True)
    message = meta.get("message")
    if not isinstance(message, str) or not message:
        message = "image generation failed"
    return Failed(job_id, message[:500])


def _finished(job_id: str, meta: dict[str, Any], stored: Mapping[bytes, bytes]) -> Finished:
    listed = meta["images"]
    if not isinstance(listed, list):
        raise TypeError("images: not a list")
    images = []
    for n, image in enumerate(listed):
        if not isinstance(image, dict):
            raise TypeError(f"images[{n}]: not an object")
        png = stored.get(f"png:{n}".encode())
        if png is None:
            raise KeyError(f"png:{n}")
        size = (_int(image, "width", 1, 1 << 16), _int(image, "height", 1, 1 << 16))
        images.append(GeneratedImage(png, _int(image, "seed", 0, 1 << 64), *size))
    seconds = _number(meta, "seconds")
    return Finished(job_id, tuple(images), _text(meta, "worker"), seconds)


def _depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def _text(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME_CHARS:
        raise ValueError(f"{name}: not a short text")
    return value


def _int(event: dict[str, Any], name: str, low: int, high: int) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name}: not an integer from {low} to {high}")
    return value


def _number(event: dict[str, Any], name: str) -> float:
    value = event.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name}: not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: {value} is not a finite number >= 0")
    return float(value)
