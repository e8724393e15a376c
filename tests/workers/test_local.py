"""The local back end end to end: a real child process on the tiny model.

Stories: a job streams progress and finishes with PNGs; compatible jobs share a batch;
cancelling works queued and running; a killed worker is restarted and its job retried
once; a job that kills the worker every time fails and the next job still works; a
request beyond the limits is refused, and a result that is no PNG is never handed on.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from workers.api import Failed, Finished, ImageRequest, JobUpdate, Queued, Started, Step
from workers.config import ImagineSettings
from workers.local import LocalImageBackend
from workers.pngmeta import read_parameters

CRASH = "<<crash the worker>>"
CORRUPT = "<<send back garbage>>"

# One worker for the whole module: starting a child (spawn + torch import) costs seconds.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _request(job_id: str, **overrides: object) -> ImageRequest:
    fields: dict[str, object] = {"width": 64, "height": 64, "steps": 4, "seed": 7}
    fields.update(overrides)
    return ImageRequest(job_id, "a red cat", **fields)  # type: ignore[arg-type]


async def _collect(backend: LocalImageBackend, request: ImageRequest) -> list[JobUpdate]:
    return [update async for update in backend.submit(request)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(tiny_model: Path) -> AsyncIterator[LocalImageBackend]:
    settings = ImagineSettings(batch_window_ms=300, max_batch=4, job_timeout_s=60, max_steps=400)
    worker = LocalImageBackend(
        settings, tiny_model, _crash_on_prompt=CRASH, _corrupt_on_prompt=CORRUPT
    )
    await worker.start(preload=True)
    yield worker
    await worker.close()


async def test_a_job_streams_progress_and_finishes_with_a_png(
    backend: LocalImageBackend,
) -> None:
    updates = await _collect(backend, _request("j1"))
    assert isinstance(updates[0], Queued)
    assert any(isinstance(u, Started) for u in updates)
    steps = [u for u in updates if isinstance(u, Step)]
    assert [(s.step, s.total) for s in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert steps[-1].eta_s == 0
    finished = updates[-1]
    assert isinstance(finished, Finished)
    [image] = finished.images
    assert "Seed: 7" in (read_parameters(image.png) or "")
    health = await backend.health()
    assert health["alive"] and health["device"] == "cpu" and health["queued"] == 0
    assert health["model"] == "tiny random-weights demo model (it draws noise)"


async def test_compatible_jobs_submitted_together_share_one_batch(
    backend: LocalImageBackend,
) -> None:
    results = await asyncio.gather(
        *(_collect(backend, _request(f"b{i}", seed=i)) for i in range(3))
    )
    for updates in results:
        started = next(u for u in updates if isinstance(u, Started))
        assert started.batch_size == 3
        assert isinstance(updates[-1], Finished)


async def test_cancelling_a_queued_job_removes_it(backend: LocalImageBackend) -> None:
    long = asyncio.create_task(_collect(backend, _request("long", steps=150)))
    waiting = backend.submit(_request("waiting", width=128))
    assert isinstance(await anext(waiting), Queued)
    assert await backend.cancel("waiting")
    rest = [u async for u in waiting]
    assert isinstance(rest[-1], Failed) and rest[-1].cancelled
    assert await backend.cancel("long")
    assert isinstance((await long)[-1], Failed)
    assert not await backend.cancel("long")


async def test_cancelling_a_running_job_stops_it_between_steps(
    backend: LocalImageBackend,
) -> None:
    updates: list[JobUpdate] = []
    async for update in backend.submit(_request("run", steps=400)):
        updates.append(update)
        if isinstance(update, Step) and update.step == 2:
            assert await backend.cancel("run")
    last = updates[-1]
    assert isinstance(last, Failed) and last.cancelled
    assert max(u.step for u in updates if isinstance(u, Step)) < 400


async def test_a_cancelled_job_in_a_shared_batch_is_dropped_the_others_finish(
    backend: LocalImageBackend,
) -> None:
    async def cancel_after_first_step() -> list[JobUpdate]:
        updates = []
        async for update in backend.submit(_request("drop", steps=20)):
            updates.append(update)
            if isinstance(update, Step) and update.step == 1:
                await backend.cancel("drop")
        return updates

    dropped, kept = await asyncio.gather(
        cancel_after_first_step(), _collect(backend, _request("keep", steps=20))
    )
    assert isinstance(dropped[-1], Failed) and dropped[-1].cancelled
    assert isinstance(kept[-1], Finished)


async def test_a_killed_worker_is_restarted_and_the_job_retried(
    backend: LocalImageBackend,
) -> None:
    restarts = (await backend.health())["restarts"]
    updates: list[JobUpdate] = []
    killed = False
    async for update in backend.submit(_request("survivor", steps=100)):
        updates.append(update)
        if isinstance(update, Step) and not killed:
            os.kill((await backend.health())["pid"], signal.SIGKILL)
            killed = True
    assert isinstance(updates[-1], Finished)
    assert sum(isinstance(u, Started) for u in updates) == 2
    health = await backend.health()
    assert health["restarts"] == restarts + 1 and health["alive"]


async def test_a_job_that_always_crashes_fails_and_the_next_one_works(
    backend: LocalImageBackend,
) -> None:
    restarts = (await backend.health())["restarts"]
    updates = await _collect(backend, ImageRequest("bad", CRASH, width=64, height=64, steps=4))
    last = updates[-1]
    assert isinstance(last, Failed)
    assert last.message == "the image worker crashed twice on this job"
    assert (await backend.health())["restarts"] == restarts + 2
    assert isinstance((await _collect(backend, _request("next")))[-1], Finished)


async def test_a_request_beyond_the_limits_is_refused_before_the_worker_sees_it(
    backend: LocalImageBackend,
) -> None:
    updates = await _collect(backend, _request("too-many-steps", steps=401))

    assert len(updates) == 1 and isinstance(updates[0], Failed)
    assert updates[0].message == (
        "the image worker refused this request: steps: 401 is out of range (allowed 1 to 400)"
    )


async def test_a_result_that_is_not_a_png_fails_the_job_and_is_not_handed_on(
    backend: LocalImageBackend,
) -> None:
    garbage = ImageRequest("garbage", CORRUPT, width=64, height=64, steps=4)
    updates = await _collect(backend, garbage)

    assert not any(isinstance(u, Finished) for u in updates)
    last = updates[-1]
    assert isinstance(last, Failed) and not last.cancelled
    assert last.message == "the image worker sent back an unusable result: image 0: not a PNG"
    assert isinstance((await _collect(backend, _request("after-garbage")))[-1], Finished)


async def test_a_missing_model_fails_preload_with_a_model_error(tmp_path: Path) -> None:
    from core.errors import ModelError

    worker = LocalImageBackend(ImagineSettings(), tmp_path / "missing")
    with pytest.raises(ModelError, match="missing"):
        await worker.start(preload=True)
    updates = await _collect(worker, _request("x"))
    assert isinstance(updates[-1], Failed)
    await worker.close()
