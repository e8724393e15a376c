"""Cutting hostile sections into chunks: it ends, fits, keeps order, and loses nothing.

``chunk`` sees whatever text people upload, so it is tested by properties over hostile
sections: lines longer than any budget, "words" of thousands of characters, runs of
blank lines, zero-width and right-to-left marks, CJK without spaces, random headings and
pages; under three counters (the default estimate, one token per character, one per
UTF-8 byte).

What "loses nothing" means, precisely: each chunk is a verbatim piece of its section's
text, and the chunks can be laid on the text in order, each starting after the one
before and no later than just past its end (a chunk may overlap the one before it), so
that only whitespace is left uncovered. Every word of the section is then in a chunk,
in order.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.chunking import Chunk, chunk, estimate_tokens
from rag.extract import Document, Section

pytestmark = pytest.mark.timeout(120)

Count = Callable[[str], int]


def utf8_bytes(text: str) -> int:
    """A harsh counter: one token per UTF-8 byte, so one character may count 4."""
    return len(text.encode())


COUNTS: dict[str, Count] = {"estimate": estimate_tokens, "chars": len, "bytes": utf8_bytes}

_SEGMENTS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["\n", "\n\n", "\n\n\n\n\n\n", "\r\n", "\t", " ", "    ", "\u3000", "\xa0"]),
    st.sampled_from([". ", "! ", "? ", "…", "。", "！", "Mr. Smith. ", "e.g. "]),
    st.integers(1, 1500).map(lambda n: "x" * n),  # a "word" longer than any budget
    st.integers(1, 300).map(lambda n: "word " * n),
    st.integers(1, 80).map(lambda n: "A short sentence here. " * n),
    st.integers(1, 200).map(lambda n: "\u200b" * n),  # zero-width spaces, not whitespace
    st.sampled_from(["\u200d", "\u202e", "\u2067", "\ufeff", "👩\u200d💻", "e\u0301"]),
    st.sampled_from(["مرحبا بالعالم", "שלום עולם", "日本語の文章です", "🙂" * 30]),
    st.sampled_from(["# Heading\n", "## Sub\n", "```\ncode\n```\n", "- item\n"]),
)
SECTION_TEXT = st.lists(_SEGMENTS, max_size=30).map(lambda parts: "".join(parts)[:4000])
SECTIONS = st.lists(
    st.builds(
        Section,
        text=SECTION_TEXT,
        heading=st.one_of(st.just(""), st.text(max_size=40)),
        page=st.one_of(st.none(), st.integers(1, 9999)),
    ),
    max_size=4,
)
BUDGETS = st.integers(4, 120).flatmap(
    lambda most: st.tuples(st.just(most), st.integers(0, most - 1))
)

_SETTINGS = settings(
    max_examples=120,
    deadline=None,  # the time limit is the test's; shared CPUs make a per-example one flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def document(*sections: Section) -> Document:
    return Document("t.txt", "txt", tuple(sections), "0" * 64)


def tiles(text: str, pieces: list[str]) -> bool:
    """Whether ``pieces`` can be laid on ``text`` as the module docstring says.

    Each step keeps every start the piece could have (repetitive text leaves many); a
    piece may start at ``p`` after a start ``s`` of the one before when ``s < p`` and
    ``text[s + len(before):p]`` is blank or ``p`` falls inside it. ``reach(s)`` (the
    first non-blank index at or after the end) grows with ``s``, so only the latest
    start before ``p`` needs checking.
    """
    if not pieces:
        return text.strip() == ""
    solid = [i for i, char in enumerate(text) if not char.isspace()]
    if not solid:
        return False

    def reach(end: int) -> int:
        index = bisect.bisect_left(solid, end)
        return solid[index] if index < len(solid) else len(text)

    starts = [p for p in occurrences(text, pieces[0]) if p <= solid[0]]
    for before, piece in itertools.pairwise(pieces):
        if not starts:
            return False
        last = reach(starts[-1] + len(before))
        candidates = occurrences(text, piece, starts[0] + 1, last + len(piece))
        # Every candidate p > starts[0], so the latest start before it exists.
        starts = [
            p
            for p in candidates
            if p <= reach(starts[bisect.bisect_left(starts, p) - 1] + len(before))
        ]
    return any(start + len(pieces[-1]) > solid[-1] for start in starts)


@pytest.mark.parametrize(
    ("text", "pieces", "expected"),
    [
        ("a b c", ["a b", "c"], True),
        ("a b c", ["a b", "b c"], True),  # overlap
        ("a  \n b", ["a", "b"], True),  # only whitespace between
        ("a b c", ["a", "c"], False),  # "b" lost
        ("a b c", ["b", "a", "c"], False),  # out of order
        ("a b c", ["a b"], False),  # the end lost
        ("a b c", ["b c"], False),  # the start lost
        ("xxxxxxxxx", ["xxxx", "xxxx", "x"], True),  # repetitive text, many placements
        ("xxxxxxxxx", ["xxxx", "xxxx"], False),
        (" \n", [], True),
        ("a", [], False),
    ],
)
def test_the_tiling_check_itself(text: str, pieces: list[str], expected: bool) -> None:
    """Guards the helper: the property test is only as strict as ``tiles``."""
    assert tiles(text, pieces) is expected


def occurrences(text: str, piece: str, start: int = 0, end: int | None = None) -> list[int]:
    """Every index where ``piece`` starts in ``text[start:end]``, overlaps included."""
    found, index = [], text.find(piece, start, end)
    while index != -1:
        found.append(index)
        index = text.find(piece, index + 1, end)
    return found


def check_section(section: Section, chunks: list[Chunk], count: Count, most: int) -> None:
    for piece in chunks:
        assert piece.text and piece.text == piece.text.strip()
        assert piece.tokens == count(piece.text) <= most
        assert (piece.heading, piece.page) == (section.heading, section.page)
        assert piece.text in section.text
    assert tiles(section.text, [piece.text for piece in chunks])


@_SETTINGS
@given(SECTIONS, BUDGETS, st.sampled_from(sorted(COUNTS)))
def test_hostile_sections_are_cut_into_fitting_verbatim_chunks(
    sections: list[Section], budget: tuple[int, int], counter: str
) -> None:
    most, overlap = budget
    count = COUNTS[counter]

    chunks = chunk(document(*sections), max_tokens=most, overlap_tokens=overlap, count=count)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    alone = [
        chunk(document(s), max_tokens=most, overlap_tokens=overlap, count=count) for s in sections
    ]
    # Never across sections: the document's chunks are each section's chunks in turn.
    flat = [(c.text, c.heading, c.page, c.tokens) for part in alone for c in part]
    assert [(c.text, c.heading, c.page, c.tokens) for c in chunks] == flat
    for section, own in zip(sections, alone, strict=True):
        check_section(section, own, count, most)


def test_leading_white_space_does_not_make_a_chunk_that_the_next_one_repeats() -> None:
    # Found by the property test: "\r" counted as a byte closed a chunk "0" whose only
    # word then opened the next chunk as overlap, "0 000000": the same text twice.
    section = Section("\r0 000000", "", None)

    chunks = chunk(document(section), max_tokens=8, overlap_tokens=2, count=COUNTS["bytes"])

    assert [c.text for c in chunks] == ["0 000000"]
    check_section(section, chunks, COUNTS["bytes"], 8)


@_SETTINGS
@given(st.integers(1, 200_000), st.sampled_from(sorted(COUNTS)), st.integers(4, 64))
def test_one_giant_word_is_hard_cut_in_order(length: int, counter: str, most: int) -> None:
    text = "".join(chr(0x61 + i % 26) for i in range(length))  # not periodic in a chunk
    count = COUNTS[counter]

    chunks = chunk(document(Section(text)), max_tokens=most, overlap_tokens=0, count=count)

    assert "".join(c.text for c in chunks) == text
    assert all(c.tokens == count(c.text) <= most for c in chunks)


def test_neighbours_in_a_long_section_share_text() -> None:
    sentences = [f"Sentence number {n} says something." for n in range(40)]
    section = Section(" ".join(sentences), "Rules", 2)

    chunks = chunk(document(section), max_tokens=30, overlap_tokens=10)

    assert len(chunks) > 3
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.text[: after.text.index(".") + 1]
        assert before.text.endswith(first_sentence)  # one whole sentence repeats
        assert after.text != first_sentence  # and new text follows it
    assert all((c.heading, c.page) == ("Rules", 2) for c in chunks)


def test_a_short_section_is_one_chunk_and_a_blank_one_none() -> None:
    doc = document(Section("Be kind.\n\nNo spam.", "Rules"), Section(" \n\t "), Section("Hi"))

    chunks = chunk(doc)

    assert [(c.text, c.heading, c.position, c.tokens) for c in chunks] == [
        ("Be kind.\n\nNo spam.", "Rules", 0, 6),
        ("Hi", "", 1, 1),
    ]


def test_cuts_fall_between_words_when_the_words_fit() -> None:
    text = "alpha beta gamma delta epsilon"

    chunks = chunk(document(Section(text)), max_tokens=12, overlap_tokens=0, count=len)

    assert [c.text for c in chunks] == ["alpha beta", "gamma delta", "epsilon"]


@pytest.mark.parametrize(("most", "overlap"), [(0, 0), (-1, 0), (10, 10), (10, 11), (10, -1)])
def test_an_impossible_budget_is_a_programming_error(most: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        chunk(document(Section("text")), max_tokens=most, overlap_tokens=overlap)


def test_a_character_that_alone_exceeds_the_budget_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="one character"):
        chunk(document(Section("🙂" * 3)), max_tokens=3, overlap_tokens=0, count=utf8_bytes)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 1), ("   ", 1), ("word", 1), ("Hello, world!", 4), ("x" * 80, 10), ("日本語", 1)],
)
def test_the_default_count_is_a_word_piece_estimate(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens
