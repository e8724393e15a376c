"""Stories of the Celery pool: a real Redis, a real worker process, the tiny model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.workers_celery.conftest import WorkerHost, broker_view, imagine_settings, job_id
from workers.api import Failed, Finished, ImageRequest, JobUpdate, Queued, Started, Step
from workers.celery_backend import CeleryImageBackend

# Celery + Redis; the first test of a run also waits for the worker to start (20-40 s).
pytestmark = [pytest.mark.celery, pytest.mark.timeout(120)]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_request(namespace: str, *, steps: int = 4, seed: int = 0, count: int = 1) -> ImageRequest:
    """A fast 64×64 job."""
    return ImageRequest(
        job_id=job_id(namespace),
        prompt="a red fox",
        width=64,
        height=64,
        steps=steps,
        seed=seed,
        count=count,
    )


async def settled_broker_view(namespace: str, within_s: float = 10.0) -> tuple[int, int]:
    """The broker's view once nothing is left in flight, or its last view after ``within_s``."""
    deadline = time.monotonic() + within_s
    view = broker_view(namespace)
    while view != (0, 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        view = broker_view(namespace)
    return view


async def collect(backend: CeleryImageBackend, request: ImageRequest) -> list[JobUpdate]:
    """Every update of one job, in order."""
    return [update async for update in backend.submit(request)]


async def test_a_job_runs_end_to_end(worker: WorkerHost, backend: CeleryImageBackend) -> None:
    request = tiny_request(worker.namespace, seed=7, count=2)

    updates = await asyncio.wait_for(collect(backend, request), 60)

    assert isinstance(updates[0], Queued)
    started = [u for u in updates if isinstance(u, Started)]
    assert [s.worker for s in started] == [worker.hostname]
    steps = [u for u in updates if isinstance(u, Step)]
    assert steps and steps[-1].step == steps[-1].total == 4
    finished = updates[-1]
    assert isinstance(finished, Finished) and finished.worker == worker.hostname
    assert [image.seed for image in finished.images] == [7, 8]
    assert all(image.png.startswith(PNG_MAGIC) for image in finished.images)
    assert (finished.images[0].width, finished.images[0].height) == (64, 64)


async def test_compatible_jobs_go_to_the_worker_as_one_batch(
    worker: WorkerHost, backend: CeleryImageBackend
) -> None:
    requests = [tiny_request(worker.namespace, seed=seed) for seed in (1, 2, 3)]

    results = await asyncio.wait_for(asyncio.gather(*(collect(backend, r) for r in requests)), 60)

    for request, updates in zip(requests, results, strict=True):
        started = next(u for u in updates if isinstance(u, Started))
        assert started.batch_size == 3
        finished = updates[-1]
        assert isinstance(finished, Finished)
        assert [image.seed for image in finished.images] == [request.seed]


async def test_cancelling_a_running_job_stops_it_between_steps(
    worker: WorkerHost, backend: CeleryImageBackend
) -> None:
    request = tiny_request(worker.namespace, steps=1000)
    updates = backend.submit(request)
    async for update in updates:
        if isinstance(update, Step):
            break

    asked = time.monotonic()
    assert await backend.cancel(request.job_id)
    rest = [update async for update in updates]

    assert rest and isinstance(rest[-1], Failed) and rest[-1].cancelled
    assert time.monotonic() - asked < 1.0
    assert not await backend.cancel(request.job_id)
    # The worker let go of the batch: the next job is not stuck behind 1000 steps.
    follow_up = await asyncio.wait_for(collect(backend, tiny_request(worker.namespace)), 20)
    assert isinstance(follow_up[-1], Finished)


async def test_a_job_survives_kill_9_of_its_worker(
    worker: WorkerHost, backend: CeleryImageBackend
) -> None:
    request = tiny_request(worker.namespace, steps=30, seed=42)
    updates = backend.submit(request)
    seen: list[JobUpdate] = []
    async for update in updates:
        seen.append(update)
        if isinstance(update, Step):
            break
    first_worker = worker.hostname

    worker.kill9()  # mid-job, with no chance to ack or give the message back
    killed = time.monotonic()
    assert broker_view(worker.namespace) == (0, 1)  # not queued: taken, unacked
    worker.start()  # a fresh worker, as a supervisor would start one
    async with asyncio.timeout(60):
        seen += [update async for update in updates]
    recovered_s = time.monotonic() - killed

    started = [u.worker for u in seen if isinstance(u, Started)]
    assert started[0] == first_worker and worker.owns(started[-1])
    finished = seen[-1]
    assert isinstance(finished, Finished), finished
    assert worker.owns(finished.worker)
    assert [image.seed for image in finished.images] == [42]
    # The worker acks after the task returns, a moment after it published Finished.
    assert await settled_broker_view(worker.namespace) == (0, 0)  # redelivered, acked, none lost
    print(f"redelivered and finished {recovered_s:.1f} s after kill -9")


async def test_a_dead_broker_fails_the_job_with_a_clear_message(namespace: str) -> None:
    settings = imagine_settings(broker_url="redis://127.0.0.1:1/0")
    backend = CeleryImageBackend(settings, namespace=namespace)
    try:
        began = time.monotonic()
        updates = await asyncio.wait_for(collect(backend, tiny_request(namespace)), 10)
        health = await backend.health()
    finally:
        await backend.close()

    assert len(updates) == 1 and isinstance(updates[0], Failed)
    assert "image workers are unreachable" in updates[0].message
    assert time.monotonic() - began < 5
    assert health["broker"].startswith("unreachable")


async def test_a_dead_redis_fails_the_job_with_a_clear_message(namespace: str) -> None:
    url = "redis://127.0.0.1:1/0"
    backend = CeleryImageBackend(imagine_settings(broker_url=url, result_backend=url))
    try:
        updates = await asyncio.wait_for(collect(backend, tiny_request(namespace)), 10)
    finally:
        await backend.close()

    assert len(updates) == 1 and isinstance(updates[0], Failed)
    assert "image queue (Redis) is unreachable" in updates[0].message


@pytest.fixture
async def idle_backend(namespace: str) -> AsyncIterator[CeleryImageBackend]:
    """A back end whose queue no worker consumes, with a 1.5 s job timeout."""
    backend = CeleryImageBackend(
        imagine_settings(job_timeout_s=1.5, batch_window_ms=0), namespace=f"{namespace}-idle"
    )
    try:
        yield backend
    finally:
        await backend.close()


async def test_a_job_nobody_takes_times_out(
    namespace: str, idle_backend: CeleryImageBackend
) -> None:
    updates = await asyncio.wait_for(collect(idle_backend, tiny_request(namespace)), 10)

    assert isinstance(updates[0], Queued) and updates[0].position == 0
    assert isinstance(updates[-1], Failed) and "too long" in updates[-1].message


async def test_a_queued_job_can_be_cancelled(
    namespace: str, idle_backend: CeleryImageBackend
) -> None:
    request = tiny_request(namespace)
    updates = idle_backend.submit(request)
    first = await anext(updates)
    assert await idle_backend.cancel(request.job_id)
    rest = [update async for update in updates]

    assert isinstance(first, Queued)
    assert len(rest) == 1 and isinstance(rest[0], Failed) and rest[0].cancelled


async def test_health_lists_the_workers(worker: WorkerHost, backend: CeleryImageBackend) -> None:
    health = await backend.health()

    assert health["broker"] == "ok"
    assert worker.hostname in health["workers"]
    assert health["queue_length"] == 0
