"""Block and allow lists: what admins may add, how entries match, and a catastrophic
pattern that costs a warning, never a stalled bot."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputRejected
from plugins.moderation.lists import MAX_TERM_CHARS, Term, TermLists, check_term


@pytest.mark.parametrize(
    ("pattern", "is_regex", "why"),
    [
        ("   ", False, "Give a word"),
        ("x" * (MAX_TERM_CHARS + 1), False, "at most"),
        ("!!! ???", False, "no letters"),
        ("(unclosed", True, "not a valid regular expression"),
        ("a*", True, "matches empty text"),
        ("x|", True, "matches empty text"),
        ("\\b", True, "matches empty text"),
        ("(?=a)", True, "matches empty text"),
    ],
)
def test_bad_entries_are_refused_with_the_reason(pattern: str, is_regex: bool, why: str) -> None:
    with pytest.raises(InputRejected, match=why):
        check_term(pattern, is_regex)


@given(st.text(max_size=300), st.booleans())
def test_checking_any_entry_gives_a_term_or_a_clear_refusal(pattern: str, is_regex: bool) -> None:
    try:
        term = check_term(pattern, is_regex)
    except InputRejected as exc:
        assert exc.user_message
    else:
        assert term.is_regex == is_regex and 0 < len(term.pattern) <= MAX_TERM_CHARS


def test_words_are_folded_on_the_way_in() -> None:
    assert check_term("  PineApple  Pizza ", False) == Term("pineapple pizza")


def test_phrases_match_with_any_spacing_and_endings() -> None:
    lists = TermLists([Term("pineapple pizza"), Term("troll")], [])
    assert lists.match("I love PINEAPPLE   pizza") is not None
    assert lists.match("stop trolling") is not None
    assert lists.match("pineapple on its own") is None
    assert lists.match("a patrolling guard") is None


def test_an_allowed_phrase_is_taken_out_before_blocking() -> None:
    lists = TermLists([Term("damn")], [Term("damn fine")])
    assert lists.match("damn fine coffee") is None
    hit = lists.match("damn you")
    assert hit is not None and hit.term == Term("damn")
    assert lists.without_allowed("a damn fine day") == "a   day"


def test_admins_patterns_match_the_normalised_text_whatever_their_case() -> None:
    lists = TermLists([check_term(r"\bBan+ana\b", True)], [])
    assert lists.match("BANNNANA!") is not None
    assert lists.match("bandana") is None


def test_a_catastrophic_pattern_is_cut_off_within_the_budget() -> None:
    lists = TermLists([check_term("(a|aa)+$", True), Term("zebra")], [])
    started = time.monotonic()
    assert lists.match("a" * 60 + "!") is None
    assert time.monotonic() - started < 0.5
    assert lists.timeouts >= 1
    assert lists.match("a zebra") is not None  # words still work


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=2000))
def test_matching_any_text_is_bounded(text: str) -> None:
    lists = TermLists([check_term("(a|aa)+$", True), Term("zebra")], [Term("okay")])
    started = time.monotonic()
    lists.match(text)
    assert time.monotonic() - started < 1.0
