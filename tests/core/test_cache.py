"""The TTL cache loads once for many concurrent readers and honours invalidation."""

from __future__ import annotations

import asyncio

import pytest

from core.cache import TTLCache


async def test_concurrent_readers_share_one_load_until_it_expires() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(2.0, clock=lambda: now[0])
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return loads

    assert await asyncio.gather(*(cache.get("s1", load) for _ in range(50))) == [1] * 50
    assert loads == 1
    now[0] = 1.9
    assert await cache.get("s1", load) == 1
    now[0] = 2.1
    assert await cache.get("s1", load) == 2
    cache.invalidate("s1")
    assert await cache.get("s1", load) == 3


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TTLCache[str, int] = TTLCache(10.0)
    calls = 0

    async def broken() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(cache.get("k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results) and calls == 1

    async def ok() -> int:
        return 5

    assert await cache.get("k", ok) == 5
    with pytest.raises(RuntimeError):
        await TTLCache[str, int](1.0).get("x", broken)


async def test_a_steadily_read_value_is_refreshed_without_making_a_reader_wait() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(2.0, refresh_after=1.0, clock=lambda: now[0])
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        if loads > 1:
            await release.wait()  # the database is slow to answer the refresh
        return loads

    assert await cache.get("s1", load) == 1
    now[0] = 1.5  # old enough to refresh, still fresh: served at once
    assert await asyncio.wait_for(cache.get("s1", load), 0.1) == 1
    assert await asyncio.wait_for(cache.get("s1", load), 0.1) == 1
    assert loads == 2  # one refresh, however many readers
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("s1", load) == 2
    now[0] = 2.4  # the refreshed value counts its age from its own load
    assert await cache.get("s1", load) == 2


async def test_a_refresh_never_serves_a_value_past_its_ttl() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(2.0, refresh_after=1.0, clock=lambda: now[0])
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return loads

    assert await cache.get("s1", load) == 1
    now[0] = 5.0  # nobody read it for a while: expired, so the reader waits for a load
    assert await cache.get("s1", load) == 2
    assert loads == 2


async def test_a_change_during_a_refresh_wins_over_the_refreshed_value() -> None:
    now = [0.0]
    cache: TTLCache[str, str] = TTLCache(2.0, refresh_after=1.0, clock=lambda: now[0])
    stored = ["old"]
    reading = asyncio.Event()
    answer = asyncio.Event()

    async def load() -> str:
        seen = stored[0]
        reading.set()
        await answer.wait()
        return seen

    answer.set()
    assert await cache.get("s1", load) == "old"
    answer.clear()
    now[0] = 1.5
    assert await cache.get("s1", load) == "old"  # starts a refresh that reads "old"
    await reading.wait()
    stored[0] = "new"  # this process changes it: ScopedSettings.set invalidates
    cache.invalidate("s1")
    answer.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("s1", load) == "new"


async def test_a_failed_refresh_is_logged_and_the_value_expires_as_usual(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(2.0, refresh_after=1.0, clock=lambda: now[0])
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("db down")
        return calls

    assert await cache.get("k", flaky) == 1
    now[0] = 1.5
    assert await cache.get("k", flaky) == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "background refresh failed" in caplog.text
    now[0] = 2.5
    assert await cache.get("k", flaky) == 3


def test_refresh_after_must_come_before_the_ttl() -> None:
    with pytest.raises(ValueError, match="refresh_after"):
        TTLCache[str, int](2.0, refresh_after=2.0)
