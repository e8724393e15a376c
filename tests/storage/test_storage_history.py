"""Stories: a conversation's messages are appended (group commit), read back and cleared."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection

from core.errors import StorageError
from core.events import Origin
from storage import Identity, Storage
from tests.storage.conftest import run_on


@pytest.fixture
async def ada(storage: Storage, make_origin: Callable[..., Origin]) -> Identity:
    """Ada's conversation in guild-1 #general."""
    return await storage.identify(make_origin())


async def _contents(storage: Storage, conversation_pk: int, limit: int = 1000) -> list[str]:
    return [m.content for m in await storage.history(conversation_pk, limit)]


async def test_history_gives_the_last_messages_oldest_first(
    storage: Storage, ada: Identity
) -> None:
    assert await storage.history(ada.conversation_pk, 10) == []
    await storage.append_messages(
        ada.conversation_pk, [("user", "one", 1), ("assistant", "two", None)]
    )
    await storage.append_messages(ada.conversation_pk, [("user", "three", 3)])

    history = await storage.history(ada.conversation_pk, 10)
    assert [(m.role, m.content, m.token_count) for m in history] == [
        ("user", "one", 1),
        ("assistant", "two", None),
        ("user", "three", 3),
    ]
    assert all(m.created_at.tzinfo is not None for m in history)
    assert await _contents(storage, ada.conversation_pk, 2) == ["two", "three"]
    assert await storage.history(ada.conversation_pk, 0) == []


async def test_many_concurrent_callers_are_committed_before_they_return(
    storage: Storage, database_url: str, make_origin: Callable[..., Origin]
) -> None:
    people = [await storage.identify(make_origin(user=f"user{i}")) for i in range(40)]
    observer = await Storage.open(database_url, migrate=False, cache_history=False)

    async def chat(who: Identity, turn: int) -> None:
        text = f"{who.user_pk}:{turn}"
        await storage.append_messages(
            who.conversation_pk, [("user", text, 1), ("assistant", "ok", 1)]
        )
        # Returned means committed: another connection (another process) sees it at once.
        assert text in await _contents(observer, who.conversation_pk)

    try:
        await asyncio.gather(*(chat(who, turn) for turn in range(5) for who in people))
        for who in people:
            expected = [x for turn in range(5) for x in (f"{who.user_pk}:{turn}", "ok")]
            assert await _contents(observer, who.conversation_pk) == expected
    finally:
        await observer.close()


async def test_a_bad_caller_in_a_batch_fails_alone(storage: Storage, ada: Identity) -> None:
    good = [
        storage.append_messages(ada.conversation_pk, [("user", f"m{i}", None)]) for i in range(10)
    ]
    bad = storage.append_messages(987_654, [("user", "to nowhere", None)])
    results = await asyncio.gather(*good, bad, return_exceptions=True)

    assert results[:10] == [None] * 10
    assert isinstance(results[10], StorageError)
    assert sorted(await _contents(storage, ada.conversation_pk)) == sorted(
        f"m{i}" for i in range(10)
    )


_BOOBY_TRAP = {
    # An insert of 'boom' fails in the database for a reason other than the rows' keys
    # (not an IntegrityError): the writer must go on with a connection in a known state.
    "sqlite": [
        "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.content = 'boom' "
        "BEGIN SELECT json('{the disk is on fire'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.content = 'boom' THEN RAISE EXCEPTION 'the disk is on fire'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom()",
    ],
}


async def test_a_failed_write_does_not_stop_the_next_ones(
    storage: Storage, database_url: str, ada: Identity
) -> None:
    def trap(conn: Connection) -> None:
        for statement in _BOOBY_TRAP[conn.dialect.name]:
            conn.exec_driver_sql(statement)

    await run_on(database_url, trap)
    with pytest.raises(StorageError, match="could not store"):
        await storage.append_messages(ada.conversation_pk, [("user", "boom", None)])
    await storage.append_messages(ada.conversation_pk, [("user", "still here", None)])
    await asyncio.gather(
        *(storage.append_messages(ada.conversation_pk, [("user", f"m{i}", None)]) for i in range(5))
    )

    fresh = await Storage.open(database_url, migrate=False, cache_history=False)
    try:
        assert await _contents(fresh, ada.conversation_pk) == [
            "still here",
            *(f"m{i}" for i in range(5)),
        ]
    finally:
        await fresh.close()


async def test_an_unknown_role_is_refused_before_anything_is_stored(
    storage: Storage, ada: Identity
) -> None:
    with pytest.raises(ValueError, match="role"):
        await storage.append_messages(ada.conversation_pk, [("user", "ok", 1), ("wizard", "no", 1)])
    assert await storage.history(ada.conversation_pk, 10) == []


async def test_close_commits_writes_already_waiting(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    storage = await Storage.open(database_url)
    ada = await storage.identify(make_origin())
    writes = [
        asyncio.create_task(storage.append_messages(ada.conversation_pk, [("user", f"m{i}", None)]))
        for i in range(20)
    ]
    await asyncio.sleep(0)  # every write is now queued
    await storage.close()
    await asyncio.gather(*writes)
    with pytest.raises(StorageError, match="closed"):
        await storage.append_messages(ada.conversation_pk, [("user", "too late", None)])

    reopened = await Storage.open(database_url)
    try:
        assert len(await reopened.history(ada.conversation_pk, 100)) == 20
    finally:
        await reopened.close()


async def test_close_leaves_no_writer_thread_behind(
    database_url: str, make_origin: Callable[..., Origin]
) -> None:
    def writers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("storage-writer")]

    before = set(writers())
    storage = await Storage.open(database_url)
    ada = await storage.identify(make_origin())
    await storage.append_messages(ada.conversation_pk, [("user", "hello", None)])
    await storage.close()

    for _ in range(100):  # the thread ends on its own once its last job is done
        if set(writers()) <= before:
            break
        await asyncio.sleep(0.01)
    assert set(writers()) <= before


async def test_clearing_a_conversation_forgets_only_its_messages(
    storage: Storage, ada: Identity, make_origin: Callable[..., Origin]
) -> None:
    bob = await storage.identify(make_origin(user="bob"))
    await storage.append_messages(
        ada.conversation_pk, [("user", "a1", None), ("assistant", "a2", None)]
    )
    await storage.append_messages(bob.conversation_pk, [("user", "b1", None)])
    assert await _contents(storage, ada.conversation_pk) == ["a1", "a2"]

    assert await storage.clear_conversation(ada.conversation_pk) == 2
    assert await storage.history(ada.conversation_pk, 10) == []
    assert await storage.clear_conversation(ada.conversation_pk) == 0
    assert await _contents(storage, bob.conversation_pk) == ["b1"]

    await storage.append_messages(ada.conversation_pk, [("user", "fresh start", None)])
    assert await _contents(storage, ada.conversation_pk) == ["fresh start"]


async def test_history_always_matches_the_database(
    storage: Storage, database_url: str, ada: Identity
) -> None:
    """Random appends, clears and reads of any length: this process's answers (which may
    come from its cache) equal what a fresh reader finds in the database."""
    rng = random.Random(1234)
    truth = await Storage.open(database_url, migrate=False, cache_history=False)
    try:
        for step in range(120):
            action = rng.random()
            if action < 0.6:
                batch = [("user", f"s{step}m{i}", i) for i in range(rng.randint(1, 9))]
                await storage.append_messages(ada.conversation_pk, batch)
            elif action < 0.65:
                await storage.clear_conversation(ada.conversation_pk)
            limit = rng.choice([1, 5, 40, 63, 64, 65, 100, 500])
            assert await storage.history(ada.conversation_pk, limit) == await truth.history(
                ada.conversation_pk, limit
            )
    finally:
        await truth.close()
