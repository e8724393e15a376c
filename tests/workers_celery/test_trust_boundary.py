"""Redis is a trust boundary: stories of what others can put there, and what happens.

Garbage published on a job's progress channel is skipped while the job (and the job
batched with it) completes; a request forged straight onto the broker, past every check
of the bot, is refused by the worker with the reason, and the worker keeps serving; a
result hash that holds no PNG of the requested size fails the job instead of reaching
the bot's storage.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from PIL import Image

from tests.workers_celery.conftest import (
    STATE_DB,
    WorkerHost,
    imagine_settings,
    job_id,
    stored_result,
)
from workers.api import Failed, Finished, ImageRequest, JobUpdate, Queued, Started, Step
from workers.celery_backend import CeleryImageBackend
from workers.wire import MAX_EVENT_BYTES, request_to_dict

# Celery + Redis; the first test of a run also waits for the worker to start (20-40 s).
pytestmark = [pytest.mark.celery, pytest.mark.timeout(120)]

GARBAGE = [
    b"not json {",
    b"[1, 2, 3]",
    b'{"type": "step"}',
    b'{"type": "step", "step": "3", "total": 4}',
    b'{"type": "step", "step": 1, "total": 4, "eta_s": NaN}',
    b'{"type": "started", "worker": 5, "batch_size": 1}',
    b'{"type": "rm -rf /"}',
    b"[" * 10_000,
    b"\xff\xfe\x00",
    b"x" * (1 << 20),
]


def tiny_request(namespace: str, **fields: object) -> ImageRequest:
    """A fast 64×64 job."""
    values: dict[str, object] = {"width": 64, "height": 64, "steps": 4}
    values.update(fields)
    return ImageRequest(job_id(namespace), "a red fox", **values)  # type: ignore[arg-type]


async def collect(backend: CeleryImageBackend, request: ImageRequest) -> list[JobUpdate]:
    """Every update of one job, in order."""
    return [update async for update in backend.submit(request)]


@pytest.fixture
async def state() -> AsyncIterator[aioredis.Redis]:
    """The progress/results Redis, as anyone who can reach it sees it."""
    client = aioredis.Redis(db=STATE_DB)
    try:
        yield client
    finally:
        await client.aclose()


async def test_garbage_on_a_jobs_channel_is_skipped_and_the_jobs_complete(
    worker: WorkerHost,
    backend: CeleryImageBackend,
    state: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="workers.celery_backend")
    target = tiny_request(worker.namespace, steps=12, seed=1)
    neighbour = asyncio.create_task(collect(backend, tiny_request(worker.namespace, steps=12)))
    seen: list[JobUpdate] = []
    garbage_at = -1
    async with asyncio.timeout(45):
        async for update in backend.submit(target):
            seen.append(update)
            if garbage_at < 0:  # Queued, or Started when the worker was quicker
                for payload in GARBAGE:
                    await state.publish(f"{worker.namespace}:job:{target.job_id}", payload)
                garbage_at = len(seen)
        other = await neighbour

    assert len(GARBAGE[-1]) > MAX_EVENT_BYTES
    after = seen[garbage_at:]
    assert any(isinstance(u, Step) for u in after), "progress stopped after the garbage"
    assert any(isinstance(u, Started) for u in seen)
    finished = seen[-1]
    assert isinstance(finished, Finished), finished
    assert [image.seed for image in finished.images] == [1]
    assert isinstance(other[-1], Finished)
    skipped = [r for r in caplog.records if "skipped a malformed message" in r.getMessage()]
    assert len(skipped) == len(GARBAGE)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_forged_request_on_the_broker_is_refused_by_the_worker(
    worker: WorkerHost, backend: CeleryImageBackend
) -> None:
    ns = worker.namespace
    good = request_to_dict(tiny_request(ns, seed=3))
    forged: dict[str, tuple[dict[str, Any], str]] = {
        "steps": ({"steps": 5000}, "steps: 5000 is out of range (allowed 1 to 1000)"),
        "count": ({"count": 64}, "count: 64 is out of range (allowed 1 to 4)"),
        "width": ({"width": 8192}, "width: 8192 is out of range (allowed 8 to 1024)"),
        "grid": ({"height": 100}, "height: 100 is not a multiple of 8"),
        "sched": (
            {"scheduler": "../../x"},
            "scheduler: '../../x' is not one of: euler, euler_a, ddim, dpmpp_2m, pndm, lms",
        ),
        "prompt": ({"prompt": "x" * 5000}, "prompt: 5000 characters; at most 1000"),
        "cfg": ({"cfg": "7"}, "cfg: '7' is not a number"),
        "field": ({"__class__": "os.system"}, "unknown fields: '__class__'"),
        "bomb": (
            {"init_png_b64": base64.b64encode(_png(4096, 4096)).decode()},
            "init image width: 4096 is out of range (allowed 8 to 1024)",
        ),
    }
    ids = {name: job_id(ns) for name in forged}
    payload = [good] + [{**good, "job_id": ids[n], **f} for n, (f, _) in forged.items()]

    worker.send_raw(payload)  # straight onto the queue: the bot never saw these
    results = {n: await asyncio.to_thread(stored_result, ns, ids[n], 20) for n in forged}
    done = await asyncio.to_thread(stored_result, ns, good["job_id"], 20)

    for name, (_, reason) in forged.items():
        meta = json.loads(results[name].get(b"meta", b"{}"))
        assert meta.get("status") == "failed", (name, meta)
        assert meta["message"] == f"the image worker refused this request: {reason}", name
    assert json.loads(done[b"meta"])["status"] == "ok"
    assert "refused job" in worker.log_text()
    # Neither the forgeries nor a payload that is not even a list stopped the worker.
    worker.send_raw("not a list of requests")
    follow_up = await asyncio.wait_for(collect(backend, tiny_request(ns)), 30)
    assert isinstance(follow_up[-1], Finished)


@pytest.fixture
async def unserved(namespace: str) -> AsyncIterator[CeleryImageBackend]:
    """A back end whose queue no worker consumes: the test plays the worker."""
    backend = CeleryImageBackend(
        imagine_settings(batch_window_ms=0), namespace=f"{namespace}-forged"
    )
    try:
        yield backend
    finally:
        await backend.close()


@pytest.mark.parametrize(
    ("pngs", "claimed", "reason"),
    [
        ([b"<html>not a png</html>"], (64, 64), "image 0: not a PNG"),
        ([_png(32, 32)], (64, 64), "image 0: the PNG is 32×32, not 64×64"),
        ([_png(64, 64)[:-12]], (64, 64), "image 0: not a valid PNG"),  # no IEND
        ([_png(64, 64), _png(64, 64)], (64, 64), "2 images for a request of 1"),
    ],
)
async def test_a_stored_result_that_is_not_the_requested_png_fails_the_job(
    namespace: str,
    unserved: CeleryImageBackend,
    state: aioredis.Redis,
    pngs: list[bytes],
    claimed: tuple[int, int],
    reason: str,
) -> None:
    request = tiny_request(namespace, seed=5)
    updates = unserved.submit(request)
    assert isinstance(await anext(updates), Queued)
    width, height = claimed
    meta = {
        "status": "ok",
        "worker": "forger",
        "seconds": 0.1,
        "images": [{"seed": 5 + n, "width": width, "height": height} for n in range(len(pngs))],
    }
    key = f"{namespace}-forged:result:{request.job_id}"
    await state.hset(key, mapping={"meta": json.dumps(meta)})
    await state.hset(key, mapping={f"png:{n}": png for n, png in enumerate(pngs)})
    await state.publish(f"{namespace}-forged:job:{request.job_id}", b'{"type": "done"}')

    rest = [update async for update in updates]

    assert len(rest) == 1 and isinstance(rest[0], Failed)
    assert rest[0].message.startswith(f"the image worker sent back an unusable result: {reason}")
