"""Stories of keyword retrieval: rare words win, any text is safe, servers stay bounded.

The per-server indexes are loaded through a loader the test owns (a dict of texts per
server and a count of loads), so a story can change a server's texts and see when an
index is rebuilt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.keyword import KeywordIndex, KeywordIndexes, tokenize

pytestmark = pytest.mark.timeout(120)

RULES = [
    ("voice", "Voice channels are open to members; be kind when you speak in voice."),
    ("roles", "Members get roles from the moderators; ask a moderator for a role."),
    ("ban", "A member who posts spam is banned; the ban lasts until a moderator lifts it."),
    ("bot", "The bot answers questions about the rules and the roles of this server."),
]


class Library:
    """The texts of each chat server, and how often the indexes loaded them."""

    def __init__(self, texts: dict[int, list[tuple[str, str]]] | None = None) -> None:
        self.texts = texts or {}
        self.loads = 0
        self.gate: asyncio.Event | None = None  # when given, loads wait for it
        self.loading = asyncio.Event()  # set by the first load

    async def load(self, server: int) -> Sequence[tuple[str, str]]:
        self.loads += 1
        self.loading.set()
        snapshot = list(self.texts.get(server, []))
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


def test_the_chunk_with_the_rare_query_words_comes_first() -> None:
    index = KeywordIndex.build(RULES)

    results = index.search("how long does a spam ban last?", k=10)

    assert results[0][0] == "ban"
    assert {chunk_id for chunk_id, _ in results} <= {chunk_id for chunk_id, _ in RULES}
    assert all(score > 0 for _, score in results)
    assert [score for _, score in results] == sorted((s for _, s in results), reverse=True)
    assert len(index) == 4
    assert index.search("ROLES", k=1)[0][0] == "roles", "case and plurals do not matter"
    assert index.search("the of and", k=5) == [], "stop words alone match nothing"
    assert index.search("", k=5) == [] and index.search("voice", k=0) == []


def test_words_are_cut_on_any_script_and_mark() -> None:
    assert tokenize("Max_tokens=200, queries!") == ["max", "token", "200", "query"]
    assert tokenize("zero\u200bwidth ＦＵＬＬ") == ["zero", "width", "full"]
    assert tokenize("日本語の文章") == ["日", "本", "語", "の", "文", "章"]
    assert tokenize("שלום עולם 🙂 e\u0301te") == ["שלום", "עולם", "éte"]
    assert tokenize("") == [] and tokenize("\u200d\u202e 🙂 ...") == []


def test_an_empty_index_finds_nothing() -> None:
    assert KeywordIndex.build([]).search("anything", 5) == []
    assert KeywordIndex.build([("a", "the of"), ("b", "🙂")]).search("the", 5) == []


HOSTILE = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["\u200b" * 30, "\u202eevil\u202c", "מדריך למשתמש", "👩\u200d💻" * 10]),
    st.sampled_from(["日本語の文章です", "e\u0301", "\x00", "_" * 40, "the and of"]),
    st.integers(1, 1_000_000).map(lambda n: "word" * (n // 4)),  # up to 1 MB of one "word"
    st.integers(1, 500).map(lambda n: "ban spam " * n),
)


@settings(max_examples=150, deadline=None)
@given(
    documents=st.lists(HOSTILE, max_size=8),
    query=HOSTILE,
    k=st.integers(-2, 12),
)
def test_any_text_and_any_query_give_a_well_formed_ranking(
    documents: list[str], query: str, k: int
) -> None:
    items = [(f"d{i}", text) for i, text in enumerate(documents)]
    results = KeywordIndex.build(items).search(query, k)
    ids = [chunk_id for chunk_id, _ in results]
    scores = [score for _, score in results]
    assert set(ids) <= {chunk_id for chunk_id, _ in items}
    assert len(ids) == len(set(ids)) <= max(k, 0)
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


async def test_a_server_searches_its_own_texts_built_once() -> None:
    library = Library({1: RULES, 2: [("other", "spam recipes and ban hammers")]})
    indexes = KeywordIndexes(library.load)

    first, other = await asyncio.gather(
        indexes.search(1, "spam ban", 3), indexes.search(2, "spam ban", 3)
    )
    again = await indexes.search(1, "moderator", 3)

    assert first[0][0] == "ban" and [i for i, _ in other] == ["other"]
    assert {chunk_id for chunk_id, _ in again} == {"roles", "ban"}
    assert library.loads == 2, "each server's index is built once and kept"


async def test_after_an_upload_is_invalidated_the_new_text_is_found() -> None:
    library = Library({1: list(RULES)})
    indexes = KeywordIndexes(library.load)
    assert await indexes.search(1, "raid", 3) == []

    library.texts[1].append(("raids", "During a raid the moderators lock every channel."))
    assert await indexes.search(1, "raid", 3) == [], "the cached index is used until told"
    indexes.invalidate(1)

    assert [chunk_id for chunk_id, _ in await indexes.search(1, "raid", 3)] == ["raids"]


async def test_concurrent_searches_share_one_build() -> None:
    library = Library({1: RULES})
    library.gate = asyncio.Event()
    indexes = KeywordIndexes(library.load)

    searches = [asyncio.create_task(indexes.search(1, "voice", 2)) for _ in range(20)]
    await library.loading.wait()
    await asyncio.sleep(0.01)  # every search has found the build under way
    library.gate.set()
    results = await asyncio.gather(*searches)

    assert library.loads == 1
    assert all(result[0][0] == "voice" for result in results)


async def test_a_build_started_before_an_invalidation_does_not_overwrite_the_newer() -> None:
    library = Library({1: [("old", "the old rules about voice")]})
    library.gate = asyncio.Event()
    indexes = KeywordIndexes(library.load)
    stale = asyncio.create_task(indexes.search(1, "voice", 5))
    await library.loading.wait()  # the stale build has read its snapshot and waits

    library.texts[1] = [("new", "the new rules about voice")]
    indexes.invalidate(1)
    library.gate.set()
    fresh = await indexes.search(1, "voice", 5)

    assert [chunk_id for chunk_id, _ in await stale] == ["old"], "its own waiters get it"
    assert [chunk_id for chunk_id, _ in fresh] == ["new"]
    assert [chunk_id for chunk_id, _ in await indexes.search(1, "voice", 5)] == ["new"]
    assert library.loads == 2


async def test_a_failed_load_fails_its_searches_and_the_next_search_retries() -> None:
    calls = 0

    async def flaky(server: int) -> Sequence[tuple[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database went away")
        return RULES

    indexes = KeywordIndexes(flaky)
    with pytest.raises(OSError, match="went away"):
        await indexes.search(1, "voice", 1)
    assert [chunk_id for chunk_id, _ in await indexes.search(1, "voice", 1)] == ["voice"]


async def test_ten_thousand_servers_keep_at_most_the_cap_in_memory() -> None:
    library = Library()
    indexes = KeywordIndexes(library.load, max_servers=64)

    for server in range(10_000):
        library.texts[server] = [(f"s{server}", f"server {server} rules")]
        await indexes.search(server, "rules", 1)
        library.texts.pop(server)
        assert len(indexes) <= 64

    assert len(indexes) == 64
    assert library.loads == 10_000
    assert [chunk_id for chunk_id, _ in await indexes.search(9_999, "rules", 1)] == ["s9999"]
    assert library.loads == 10_000, "the most recent server is still cached"


def test_equal_scores_are_cut_in_indexing_order() -> None:
    index = KeywordIndex.build([(f"twin{i}", "identical twin text") for i in range(50)])
    assert [chunk_id for chunk_id, _ in index.search("twin", 3)] == ["twin0", "twin1", "twin2"]
