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
