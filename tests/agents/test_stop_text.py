"""Stop strings over token pieces: properties over hostile text split anywhere, even
inside a UTF-8 sequence (a token may end mid-character)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.sampling import StopText

pytestmark = pytest.mark.timeout(60)

HOSTILE = st.text(
    alphabet=st.sampled_from(
        ["a", "b", "<", "|", ">", "\n", "`", "\u200b", "\u202e", "é", "😀", "e", "\x00"]
    ),
    max_size=80,
)
STOPS = st.lists(
    st.text(st.sampled_from(["a", "b", "<", "|", ">", "😀", "\n"]), min_size=1, max_size=4),
    max_size=3,
)


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[i:j] for i, j in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(text=HOSTILE, stops=STOPS, cuts=st.lists(st.integers(0, 400), max_size=30))
def test_shown_text_runs_up_to_a_stop_string_and_never_contains_one(
    text: str, stops: list[str], cuts: list[int]
) -> None:
    stream = StopText(stops)
    shown = ""
    stopped = False
    for piece in _pieces(text.encode("utf-8"), cuts):
        emitted, stopped = stream.feed(piece)
        shown += emitted
        assert not any(stop in shown for stop in stops)
        if stopped:
            break
    if not stopped:
        shown += stream.flush()

    # Stopped: what was shown runs up to a stop string in the text; otherwise all of it.
    assert text.startswith(shown)
    if stopped:
        assert any(text[len(shown) :].startswith(stop) for stop in stops)
    else:
        assert shown == text
        assert not any(stop in text for stop in stops)


def test_a_partial_stop_string_is_held_back_until_it_resolves() -> None:
    stream = StopText(["<|im_end|>"])

    assert stream.feed(b"Hello <|im") == ("Hello ", False)
    assert stream.feed(b"age") == ("<|image", False)
    assert stream.feed(b" <|im_e") == (" ", False)
    assert stream.feed(b"nd|> tail") == ("", True)
