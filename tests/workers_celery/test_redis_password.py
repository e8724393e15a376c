"""A Redis reachable from other machines wants a password: the Celery path works with one
(``redis://:PASSWORD@host:port/db``), and a wrong or missing one fails the job with a
message that says so, never with the password in it.

The server is a throw-away ``redis-server --requirepass`` of this module, with its own
worker process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers_celery.conftest import SecuredRedis, WorkerHost, imagine_settings
from workers.api import Failed, Finished, ImageRequest, JobUpdate, Started
from workers.celery_backend import CeleryImageBackend

pytestmark = pytest.mark.celery


@pytest.fixture(scope="module")
def secured_worker(
    secured_redis: SecuredRedis, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHost]:
    """A worker whose broker and result backend are the password-protected server."""
    settings = imagine_settings(
        broker_url=secured_redis.url(0), result_backend=secured_redis.url(1)
    )
    namespace = f"atelier-secured-{uuid.uuid4().hex[:8]}"
    host = WorkerHost(settings, namespace, tiny_model, tmp_path_factory.mktemp("secured-logs"))
    try:
        yield host
    finally:
        host.close()


async def collect(backend: CeleryImageBackend, request: ImageRequest) -> list[JobUpdate]:
    """Every update of one job, in order."""
    return [update async for update in backend.submit(request)]


def tiny_request(namespace: str) -> ImageRequest:
    """A fast 64×64 job."""
    job = f"{namespace}-{uuid.uuid4().hex[:8]}"
    return ImageRequest(job, "a red fox", width=64, height=64, steps=4, seed=11)


@pytest.mark.timeout(150)  # starts its own worker process (torch import, model load)
async def test_the_celery_path_runs_against_a_redis_that_wants_a_password(
    secured_worker: WorkerHost, secured_redis: SecuredRedis
) -> None:
    await asyncio.to_thread(secured_worker.ensure)
    backend = CeleryImageBackend(secured_worker.settings, namespace=secured_worker.namespace)
    try:
        request = tiny_request(secured_worker.namespace)
        updates = await asyncio.wait_for(collect(backend, request), 60)
        health = await backend.health()
    finally:
        await backend.close()

    assert [u.worker for u in updates if isinstance(u, Started)] == [secured_worker.hostname]
    finished = updates[-1]
    assert isinstance(finished, Finished), finished
    assert [image.seed for image in finished.images] == [11]
    assert health["broker"] == "ok" and secured_worker.hostname in health["workers"]
    assert secured_redis.password not in secured_worker.log_text()


@pytest.mark.parametrize(
    ("password", "where"),
    [("not-the-password", "both"), ("", "both"), ("not-the-password", "broker")],
)
async def test_a_wrong_or_missing_password_fails_the_job_with_a_clear_message(
    secured_redis: SecuredRedis, password: str, where: str
) -> None:
    url = secured_redis.url(0, password=password).replace("redis://:@", "redis://")
    state = url if where == "both" else secured_redis.url(1)
    settings = imagine_settings(broker_url=url, result_backend=state)
    backend = CeleryImageBackend(settings, namespace="atelier-wrong-password")
    try:
        updates = await asyncio.wait_for(collect(backend, tiny_request("wrong")), 10)
        health = await backend.health()
    finally:
        await backend.close()

    assert len(updates) == 1 and isinstance(updates[0], Failed)
    message = updates[0].message
    assert message.startswith("the image queue (Redis) refused the password"), message
    assert "ATELIER_IMAGINE__RESULT_BACKEND" in message
    assert secured_redis.password not in message and "not-the-password" not in message
    assert health["broker"].startswith("unreachable")
