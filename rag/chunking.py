"""Cut a document's sections into chunks that fit an embedding model's token budget.

Structure first: each :class:`~rag.extract.Section` is cut on its own, so a chunk has one
heading and one page. Inside a section, LangChain's ``RecursiveCharacterTextSplitter``
tries paragraphs, then lines, then sentences, then words, and repeats a little text
between neighbours (``overlap_tokens``) so that a thought cut in two is found from either
side. What still does not fit (a "word" longer than the budget) is hard-cut.

Every chunk is a verbatim piece of its section's text, stripped of surrounding
whitespace; the chunks, laid over the text in order, cover every non-blank character.

This module must never exceed ``max_tokens`` in a chunk, merge text across sections,
do I/O, or load a model: callers pass the embedding model's tokenizer as ``count``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.extract import Document

Count = Callable[[str], int]

_WORD_PIECES = re.compile(r"\w{1,8}|[^\w\s]")
_SEPARATORS = [
    r"\n\n",  # paragraphs
    r"\n",  # lines
    r"(?<=[.!?…])\s+|(?<=[。！？])",  # sentences (CJK ones need no space after them)
    r"\s+",  # words
]


@dataclass(frozen=True)
class Chunk:
    """A piece of one section, small enough to embed.

    Attributes:
        text: Verbatim text of the section, without leading or trailing whitespace.
        heading: The section's heading path (``"Rules > Voice channels"``).
        page: The section's 1-based PDF page, or ``None``.
        position: 0-based order of the chunk in the document.
        tokens: ``count(text)``; never more than the ``max_tokens`` it was cut for.
    """

    text: str
    heading: str
    page: int | None
    position: int
    tokens: int


def estimate_tokens(text: str) -> int:
    """A cheap estimate of a text's token count, for when no tokenizer is given.

    Counts word pieces of up to 8 word characters and each other non-space character:
    near what subword tokenizers give for English prose, low for CJK text. It is only an
    estimate; pass the embedding model's own tokenizer to :func:`chunk` when it matters.

    Args:
        text: Any text.

    Returns:
        At least 1.
    """
    return max(1, len(_WORD_PIECES.findall(text)))


def chunk(
    document: Document,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 30,
    count: Count | None = None,
) -> list[Chunk]:
    """Cut a document into chunks in reading order, never across sections.

    Args:
        document: What :func:`rag.extract.extract` returned.
        max_tokens: The most tokens a chunk may count.
        overlap_tokens: The most tokens of a chunk that repeat at the start of the next
            one in the same section, as the splitter sums its pieces (sentences, words);
            hard cuts of one long "word" do not overlap.
        count: Token counter; defaults to :func:`estimate_tokens`. It should be
            monotonic (a prefix never counts more than the whole).

    Returns:
        The chunks; ``position`` runs 0, 1, 2, ...

    Raises:
        ValueError: ``max_tokens`` is below 1, ``overlap_tokens`` is negative or not
            below ``max_tokens``, or a single character counts more than ``max_tokens``.
    """
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"need 0 <= overlap_tokens ({overlap_tokens}) < max_tokens ({max_tokens})")
    counter = count or estimate_tokens
    splitter = RecursiveCharacterTextSplitter(
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",  # pieces then tile the text, so chunks stay verbatim
        chunk_size=max_tokens,
        chunk_overlap=overlap_tokens,
        # A piece that is only white space (a blank line, a leading "\r") counts 0: the
        # chunk it starts is stripped of it, and counted, it could make the splitter
        # close a chunk whose words all repeat as the next one's overlap (a duplicate).
        length_function=lambda text: counter(text) if text.strip() else 0,
        strip_whitespace=True,
    )
    chunks: list[Chunk] = []
    for section in document.sections:
        for piece in splitter.split_text(section.text):
            for text, tokens in _fit(piece, counter, max_tokens):
                chunks.append(Chunk(text, section.heading, section.page, len(chunks), tokens))
    return chunks


def _fit(text: str, count: Count, max_tokens: int) -> Iterator[tuple[str, int]]:
    """Yield ``text`` with its count, hard-cut into pieces when it counts too many."""
    text = text.strip()  # the splitter strips what it merges, not what it gives up on
    if not text:
        return
    tokens = count(text)
    if tokens <= max_tokens:
        yield text, tokens
        return
    while text:
        end = _longest_prefix(text, count, max_tokens)
        if end == len(text):
            yield text, count(text)
            return
        kept = _cut(text[:end], count, max_tokens)
        yield kept, count(kept)
        text = text[len(kept) :].lstrip()


def _cut(head: str, count: Count, max_tokens: int) -> str:
    """Where to end a hard-cut piece that fits as ``head``: after its last whole word."""
    kept = head.rstrip()
    space = max(kept.rfind(" "), kept.rfind("\n"), kept.rfind("\t"))
    if space > 0 and count(shorter := kept[:space].rstrip()) <= max_tokens:
        return shorter
    if kept and count(kept) <= max_tokens:
        return kept
    return head  # only a counter that is not monotonic gets here


def _longest_prefix(text: str, count: Count, max_tokens: int) -> int:
    """The length of the longest prefix of ``text`` that fits, by galloping then bisecting.

    Galloping keeps the work near the size of the prefix, not of ``text``: hard-cutting a
    megabyte "word" costs a few counts of chunk-sized prefixes per chunk, not counts of
    the whole word.
    """
    if count(text[:1]) > max_tokens:
        raise ValueError(f"max_tokens={max_tokens} is less than one character's count")
    fits, too_long = 1, 2
    while too_long < len(text) and count(text[:too_long]) <= max_tokens:
        fits, too_long = too_long, too_long * 2
    if too_long >= len(text):
        if count(text) <= max_tokens:
            return len(text)
        too_long = len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if count(text[:middle]) <= max_tokens:
            fits = middle
        else:
            too_long = middle
    return fits
