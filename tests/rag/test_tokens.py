"""Counting the bundled model's tokens over hostile text: it ends, fits, and is near-monotonic.

``TokenCounter`` is the ``count`` the chunker cuts uploads with, so it sees whatever text
people upload: it is tested by properties over hostile text (megabyte "words", zero-width
and right-to-left marks, CJK, Hangul, lone surrogates, control characters), and by a few
examples against the tokenizer's own count.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from core.errors import ModelError
from rag.chunking import chunk
from rag.extract import Document, Section
from rag.tokens import EXACT_CHARS, TokenCounter
from workers.embedding import bundled_embedding_model

pytestmark = pytest.mark.timeout(120)

_SEGMENTS = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Mn", "Zs", "So"]), max_size=20),
    st.sampled_from([" ", "  ", "\n", "\n\n", "\t", "\r\n", "\u3000", "\xa0", "\x1c"]),
    st.integers(1, 400).map(lambda n: "x" * n),  # a "word" past WordPiece's 100 characters
    st.integers(1, 80).map(lambda n: "playing fields " * n),
    st.sampled_from(["\u200b", "\u200d", "\u202e", "\u2067", "\ufeff", "👩\u200d💻", "e\u0301"]),
    st.sampled_from(
        ["مرحبا بالعالم", "שלום עולם", "日本語の文章です", "한국어 텍스트", "İstanbul"]
    ),
    st.sampled_from(["unaffable", "playin", "playing", "antidisestablishmentarianism"]),
)
HOSTILE = st.lists(_SEGMENTS, max_size=30).map("".join)

_SETTINGS = settings(
    max_examples=150,
    deadline=None,  # the time limit is the test's; shared CPUs make a per-example one flaky
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def count() -> TokenCounter:
    """The bundled embedding model's counter, read once."""
    return TokenCounter.from_model_dir(bundled_embedding_model())


def _last_word(text: str) -> str:
    """What follows the last ASCII space: the only word a cut can split."""
    return text[text.rfind(" ") + 1 :]


@_SETTINGS
@given(text=HOSTILE, cut=st.floats(0, 1))
def test_any_text_counts_and_no_prefix_counts_more_than_the_whole_and_its_cut_word(
    count: TokenCounter, text: str, cut: float
) -> None:
    total = count(text)
    assert isinstance(total, int) and total >= 0
    prefix = text[: int(len(text) * cut)]
    assert count(prefix) <= total + count(_last_word(prefix))


@_SETTINGS
@given(first=HOSTILE, second=HOSTILE)
def test_an_ascii_space_adds_nothing_and_joins_nothing(
    count: TokenCounter, first: str, second: str
) -> None:
    """The basis of the prefix bound above: counts add up across an ASCII space."""
    assume(len(first) + 1 + len(second) <= EXACT_CHARS)
    assert count(first + " " + second) == count(first) + count(second)


def test_empty_text_counts_zero_and_blank_text_too(count: TokenCounter) -> None:
    assert count("") == 0
    assert count("   \n\t ") == 0


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog.",
        "Voice channels: be kind, no spam; admins may mute anyone who shouts.",
        "日本語の文章です and some English, with numbers 3.14159 and e-mail a@b.io",
        "A long paragraph that the tokenizer file would cut at 128 tokens. " * 20,
    ],
)
def test_known_text_counts_what_the_tokenizer_itself_counts(count: TokenCounter, text: str) -> None:
    tokenizer = Tokenizer.from_file(str(bundled_embedding_model() / "tokenizer.json"))
    tokenizer.no_truncation()  # the file truncates and pads to 128 tokens
    tokenizer.no_padding()
    assert count(text) == len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_the_fox_is_ten_tokens(count: TokenCounter) -> None:
    assert count("The quick brown fox jumps over the lazy dog.") == 10


def test_a_word_too_long_for_wordpiece_counts_a_token_per_character(
    count: TokenCounter,
) -> None:
    """WordPiece makes it one [UNK]; counted as one, it would fit any chunk budget."""
    assert count("x" * 5000) == 5000
    assert count("see " + "x" * 101 + " now") == 1 + 101 + 1


def test_huge_text_is_counted_fast_and_past_the_exact_part_by_characters(
    count: TokenCounter,
) -> None:
    huge = "Plain English prose, sentence after sentence. " * 250_000  # 11.5 MB
    started = time.perf_counter()
    total = count(huge)
    assert time.perf_counter() - started < 2.0  # tokenizing all of it takes ~6 s
    assert total == count(huge[:EXACT_CHARS]) + len(huge) - EXACT_CHARS
    assert count(huge[: EXACT_CHARS + 1]) < count(huge[: EXACT_CHARS + 2]) < total


@_SETTINGS
@given(text=HOSTILE, budget=st.integers(16, 120))
def test_chunks_cut_with_the_counter_fit_their_budget(
    count: TokenCounter, text: str, budget: int
) -> None:
    if not text.strip():
        return
    document = Document("t.txt", "txt", (Section(text),), "0" * 64)
    for piece in chunk(document, max_tokens=budget, overlap_tokens=budget // 4, count=count):
        assert piece.tokens == count(piece.text) <= budget


def test_a_folder_without_a_tokenizer_is_a_model_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=str(tmp_path)):
        TokenCounter.from_model_dir(tmp_path)


def test_a_corrupt_tokenizer_is_a_model_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match=str(tmp_path)):
        TokenCounter.from_model_dir(tmp_path)
