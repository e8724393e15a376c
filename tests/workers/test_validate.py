"""The trust boundary in both directions, without Redis: requests a worker must refuse,
results a back end must refuse, and pub/sub payloads the bot must survive."""

from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from workers.api import GeneratedImage, ImageRequest, Started, Step
from workers.celery_app import batches
from workers.config import ImagineSettings
from workers.validate import RequestRejected, ResultRejected, check_images, validate_request
from workers.wire import (
    MAX_EVENT_BYTES,
    Admission,
    ResultReady,
    admit,
    decode_result,
    parse_event,
    request_to_dict,
)

LIMITS = ImagineSettings(max_width=512, max_height=512, max_pixels=512 * 512, max_steps=50)


def png(width: int, height: int) -> bytes:
    """A real RGB PNG of that size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def request(**fields: object) -> ImageRequest:
    values: dict[str, object] = {"job_id": "job-1", "prompt": "a red fox", "width": 64}
    values.update({"height": 64, "steps": 4, "seed": 7, **fields})
    return ImageRequest(**values)  # type: ignore[arg-type]


# -- requests: what a worker refuses ------------------------------------------------------


def test_a_request_within_the_limits_passes() -> None:
    validate_request(LIMITS, request())
    validate_request(LIMITS, request(init_png=png(64, 64), strength=0.5, upscale=2.0))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"steps": 51}, "steps: 51 is out of range (allowed 1 to 50)"),
        ({"steps": 0}, "steps: 0 is out of range"),
        ({"count": 5}, "count: 5 is out of range (allowed 1 to 4)"),
        ({"width": 1024}, "width: 1024 is out of range (allowed 8 to 512)"),
        ({"height": 100}, "height: 100 is not a multiple of 8"),
        ({"width": "64"}, "width: '64' is not an integer"),
        ({"steps": True}, "steps: True is not an integer"),
        ({"cfg": float("nan")}, "cfg: nan is out of range (allowed 0 to 20)"),
        ({"cfg": 21.0}, "cfg: 21.0 is out of range"),
        ({"seed": -1}, "seed: -1 is out of range"),
        ({"seed": 2**40}, "seed: 1099511627776 is out of range"),
        ({"scheduler": "karras9000"}, "scheduler: 'karras9000' is not one of: euler,"),
        ({"prompt": "x" * 1001}, "prompt: 1001 characters; at most 1000"),
        ({"negative": "x" * 1001}, "negative: 1001 characters; at most 1000"),
        ({"job_id": ""}, "job_id: must not be empty"),
        ({"upscale": 0.5}, "upscale: 0.5 is out of range (allowed 1 to 8)"),
        ({"strength": 2.0}, "strength: 2.0 is out of range (allowed 0 to 1)"),
    ],
)
def test_a_request_beyond_a_limit_is_refused_naming_the_field(
    fields: dict[str, object], reason: str
) -> None:
    values = {"job_id": "job-1", "prompt": "a red fox", "width": 64, "height": 64, **fields}
    with pytest.raises(RequestRejected) as refused:
        validate_request(LIMITS, ImageRequest(**values))  # type: ignore[arg-type]
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"width": 512, "height": 512, "upscale": 2.0}, "upscaled width: 1024 is out of range"),
        ({"init_png": b"GIF89a..."}, "init image: not a PNG"),
        ({"init_png": png(64, 64)[:60]}, "not a valid PNG"),
        ({"init_png": png(1024, 8)}, "init image width: 1024 is out of range"),
        ({"init_png": png(64, 64), "strength": 0.0}, "strength: must be above 0 for img2img"),
    ],
)
def test_an_img2img_request_is_checked_for_its_output_and_init_image(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(RequestRejected) as refused:
        validate_request(LIMITS, request(**{"init_png": png(64, 64), **fields}))
    assert reason in str(refused.value)


def test_a_huge_init_png_is_refused_by_its_byte_count_before_decoding() -> None:
    huge = png(8, 8) + b"\0" * (512 * 512 * 4 + (1 << 20))
    with pytest.raises(RequestRejected, match=r"init image: \d+ bytes; at most"):
        validate_request(LIMITS, request(init_png=huge))


def test_admit_refuses_forged_entries_one_by_one() -> None:
    good = request_to_dict(request())
    payload = [
        good,
        {**good, "job_id": "steps", "steps": 10_000},
        {**good, "job_id": "extra", "eval": "__import__('os')"},
        {**good, "job_id": "b64", "init_png_b64": "!!not base64!!"},
        {**good, "job_id": "twice"},
        {**good, "job_id": "twice"},
        "not an object",
        {"job_id": 5},
    ]

    admission = admit(LIMITS, payload)

    assert [r.job_id for r in admission.accepted] == ["job-1"]
    assert admission.refused == {
        "steps": "steps: 10000 is out of range (allowed 1 to 50)",
        "extra": "unknown fields: 'eval'",
        "b64": "init_png_b64: not base64",
        "twice": "the job id appears twice in one task",
    }
    assert admission.unanswerable == 2
    assert admit(LIMITS, "not a list") == admit(LIMITS, None) == Admission([], {}, 1)
    assert admit(LIMITS, [good] * 65) == Admission([], {}, 65)


def test_a_round_trip_through_the_wire_keeps_the_init_png() -> None:
    original = request(init_png=png(64, 64), strength=0.4, upscale=2.0)
    [back] = admit(LIMITS, [json.loads(json.dumps(request_to_dict(original)))]).accepted
    assert back == original and back.init_png == original.init_png


def test_a_worker_runs_its_own_batch_size_and_groups_by_batch_key() -> None:
    small = [request(job_id=f"s{i}") for i in range(5)]
    wide = [request(job_id=f"w{i}", width=128) for i in range(2)]
    mixed = [small[0], wide[0], *small[1:], wide[1]]

    chunks = batches(mixed, 2)

    assert [[r.job_id for r in chunk] for chunk in chunks] == [
        ["s0", "s1"],
        ["s2", "s3"],
        ["s4"],
        ["w0", "w1"],
    ]


# -- results: what a back end refuses -----------------------------------------------------


def image(data: bytes, *, seed: int = 7, size: tuple[int, int] = (64, 64)) -> GeneratedImage:
    return GeneratedImage(png=data, seed=seed, width=size[0], height=size[1])


def test_real_pngs_of_the_requested_size_pass() -> None:
    check_images(request(count=2), [image(png(64, 64)), image(png(64, 64), seed=8)])
    upscaled = request(init_png=png(64, 64), upscale=2.0)
    check_images(upscaled, [image(png(128, 128), size=(128, 128))])


def _with_bad_pixels(data: bytes) -> bytes:
    """The same PNG with its IDAT replaced by a valid chunk of broken zlib data."""
    out, pos = data[:8], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            body = zlib.compress(b"\0" * 10)  # far too few scanlines
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        out += struct.pack(">I", len(body)) + kind + body + crc
        pos += 12 + length
    return out


@pytest.mark.parametrize(
    ("images", "reason"),
    [
        ([image(b"not a png")], "image 0: not a PNG"),
        ([image(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)], "image 0: not a valid PNG"),
        ([image(png(32, 32))], "image 0: the PNG is 32×32, not 64×64"),
        ([image(png(64, 64), size=(32, 32))], "image 0 claims 32×32, not 64×64"),
        ([image(_with_bad_pixels(png(64, 64)))], "image 0: the PNG does not decode"),
        ([image(png(64, 64)), image(png(64, 64), seed=8)], "2 images for a request of 1"),
        ([], "0 images for a request of 1"),
        ([image(png(64, 64), seed=99)], "image 0 has seed 99, not 7"),
    ],
)
def test_a_result_that_is_not_the_requested_pngs_is_rejected(
    images: list[GeneratedImage], reason: str
) -> None:
    with pytest.raises(ResultRejected) as rejected:
        check_images(request(), images)
    assert reason in str(rejected.value)


def test_a_stored_result_with_a_broken_shape_is_rejected() -> None:
    for meta in (b"{", b"[]", b'{"status": "ok"}', b'{"status": "ok", "images": [{}]}'):
        with pytest.raises(ResultRejected, match="malformed result"):
            decode_result("j", {b"meta": meta})
    listed = {"status": "ok", "worker": "w", "seconds": 1, "images": [{"seed": 1}]}
    with pytest.raises(ResultRejected, match="png:0"):
        decode_result("j", {b"meta": json.dumps(listed).encode()})


# -- pub/sub: what the bot skips ----------------------------------------------------------


def test_our_own_events_parse() -> None:
    started = json.dumps({"type": "started", "worker": "w1", "batch_size": 2}).encode()
    step = json.dumps({"type": "step", "step": 3, "total": 4, "eta_s": 0.5}).encode()
    assert parse_event("j", started) == Started("j", "w1", 2)
    assert parse_event("j", step) == Step("j", 3, 4, 0.5)
    assert parse_event("j", b'{"type": "done"}') == ResultReady()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json {",
        b"[1, 2, 3]",
        b'{"type": "step"}',
        b'{"type": "step", "step": "3", "total": 4}',
        b'{"type": "step", "step": 5, "total": 4}',
        b'{"type": "step", "step": 1, "total": 4, "eta_s": NaN}',
        b'{"type": "started", "worker": 5, "batch_size": 1}',
        b'{"type": "rm -rf"}',
        b"[" * 10_000,
        b"\xff\xfe\x00",
        b"x" * (MAX_EVENT_BYTES + 1),
        None,
    ],
)
def test_a_malformed_event_is_a_value_error(payload: bytes | None) -> None:
    with pytest.raises(ValueError):
        parse_event("j", payload)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=2048) | _JSON.map(lambda value: json.dumps(value).encode()))
def test_any_payload_parses_or_is_a_value_error(payload: bytes) -> None:
    try:
        event = parse_event("j", payload)
    except ValueError:
        return
    assert isinstance(event, Started | Step | ResultReady)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.sampled_from(["started", "step", "done"]),
    st.dictionaries(
        st.sampled_from(["worker", "batch_size", "step", "total", "eta_s"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    ),
)
def test_event_shaped_junk_parses_only_into_sane_updates(
    kind: str, fields: dict[str, object]
) -> None:
    try:
        parsed = parse_event("j", json.dumps({"type": kind, **fields}).encode())
    except ValueError:
        return
    if isinstance(parsed, Step):
        assert 0 <= parsed.step <= parsed.total
        assert parsed.eta_s is None or parsed.eta_s >= 0
    if isinstance(parsed, Started):
        assert parsed.batch_size >= 1 and 0 < len(parsed.worker) <= 200
