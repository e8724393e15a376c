"""Block and allow lists: words, phrases and admins' regular expressions, matched against
every view of a text (``normalize.views``) within a time budget.

Words and phrases match whole words only ("Scunthorpe" never matches a four-letter word
inside it, "assassin" never "ass"), with common endings ("-s", "-ing", "-er"...), any
spacing between a phrase's words, and masked inner letters ("f*ck"). Allow-listed spans
are taken out of a view before the block list looks at it. Admins' regular expressions
run on the ``regex`` engine with a time limit: all of them together get
``REGEX_BUDGET_S`` per text, so a catastrophic pattern costs one warning, never a stalled
bot. Nothing here does I/O or decides an action.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import regex

from core.errors import InputRejected
from plugins.moderation.normalize import WILDCARD, fold, spaced_runs, views

log = logging.getLogger(__name__)

MAX_TERM_CHARS = 200
MAX_TERMS = 500  # per list and server
REGEX_BUDGET_S = 0.05
# Endings a listed word may take ("fucking", "bitches", "fuckin"); not "-y", which
# turns "spic" into "spicy" (words such as "shitty" are listed themselves).
_ENDINGS = "(?:s|es|ed|er|ers|ing|ings|in)?"
_PROBES = ("a", "a b", "hello world", "0")  # a pattern must not match nothing in these
_EDGE = "a-z0-9" + WILDCARD


@dataclass(frozen=True, slots=True)
class Term:
    """One list entry: a word or phrase, or (``is_regex``) a regular expression."""

    pattern: str
    is_regex: bool = False


@dataclass(frozen=True, slots=True)
class ListMatch:
    """A block-list hit: which entry, in which view, on what text."""

    term: Term
    view: str
    span_text: str


def check_term(pattern: str, is_regex: bool) -> Term:
    """What an admin typed, checked and made canonical.

    Raises:
        InputRejected: Empty, too long, no letters, or a regular expression that does not
            compile or matches the empty text.
    """
    text = pattern.strip()
    if not text:
        raise InputRejected("Give a word, a phrase or re:PATTERN.")
    if len(text) > MAX_TERM_CHARS:
        raise InputRejected(f"An entry is at most {MAX_TERM_CHARS} characters.")
    if not is_regex:
        folded = fold(text)
        if not any(ch.isalnum() for ch in folded):
            raise InputRejected(f"{text[:80]!r} has no letters or digits to match.")
        return Term(folded)
    try:
        compiled = _compiled(text)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise InputRejected(f"{text[:80]!r} is not a valid regular expression: {exc}.") from exc
    if _matches_nothing(compiled):
        raise InputRejected(f"{text[:80]!r} matches empty text, so it would match everything.")
    return Term(text, True)


class TermLists:
    """A block list and an allow list, compiled once."""

    def __init__(self, block: Sequence[Term], allow: Sequence[Term]) -> None:
        self._terms = len(block) + len(allow)
        self._block_words = _words([t for t in block if not t.is_regex])
        self._allow_words = _words([t for t in allow if not t.is_regex])
        self._block_regexes = _regexes([t for t in block if t.is_regex])
        self._allow_regexes = _regexes([t for t in allow if t.is_regex])
        self._by_form = {_form(t.pattern): t for t in block if not t.is_regex}
        self._anywhere = _anywhere([t for t in block if not t.is_regex])
        self.timeouts = 0  # texts whose regular expressions ran out of time

    def __len__(self) -> int:
        return self._terms

    def match(self, text: str) -> ListMatch | None:
        """The first block-list hit in any view of ``text`` (after the allow list)."""
        if not (self._block_words or self._block_regexes):
            return None
        deadline = time.monotonic() + REGEX_BUDGET_S
        for view in views(text):
            view = self._allowed_out(view, deadline)
            if self._block_words is not None:
                hit = self._block_words.search(view)
                if hit is not None:
                    term = self._by_form.get(_form(hit.group("w"))) or Term(hit.group("w"))
                    return ListMatch(term, view, hit.group()[:80])
            for term, compiled in self._block_regexes:
                found = self._search(compiled, term, view, deadline)
                if found is not None:
                    return ListMatch(term, view, found[:80])
        return self._in_runs(text)

    def _in_runs(self, text: str) -> ListMatch | None:
        """A listed word anywhere inside a spaced-out run ("s t u p i d c u n t")."""
        if self._anywhere is None:
            return None
        for run in spaced_runs(text):
            hit = self._anywhere.search(run)
            if hit is not None:
                return ListMatch(self._by_form.get(hit.group(), Term(hit.group())), run, run[:80])
        return None

    def without_allowed(self, text: str) -> str:
        """``text`` with the allow list's spans taken out (what a classifier should read)."""
        return self._allowed_out(text, time.monotonic() + REGEX_BUDGET_S)

    def _allowed_out(self, view: str, deadline: float) -> str:
        if self._allow_words is not None:
            view = self._allow_words.sub(" ", view)
        for term, compiled in self._allow_regexes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                view = compiled.sub(" ", view, timeout=remaining)
            except TimeoutError:
                self._timed_out(term)
        return view

    def _search(
        self, compiled: regex.Pattern[str], term: Term, view: str, deadline: float
    ) -> str | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            found = compiled.search(view, timeout=remaining)
        except TimeoutError:
            self._timed_out(term)
            return None
        return found.group() if found is not None else None

    def _timed_out(self, term: Term) -> None:
        self.timeouts += 1
        log.warning("moderation pattern %r ran out of time; skipped", term.pattern[:80])


def default_terms(name: str = "en.txt") -> tuple[Term, ...]:
    """A built-in list: ``en.txt`` (common profanity and insults, to block) or
    ``allow_en.txt`` (innocent phrases mistaken for them, to allow)."""
    text = resources.files("plugins.moderation").joinpath(f"terms/{name}").read_text("utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(Term(fold(line)) for line in lines if line)


def _form(word: str) -> str:
    """A phrase as the word pattern matched it: words joined by single spaces."""
    return " ".join(word.replace(WILDCARD, "?").split())


def _word_pattern(word: str) -> str:
    """Whole words; inner letters may be masked; any spacing between a phrase's words."""
    parts = []
    for piece in word.split():
        letters = [regex.escape(ch) for ch in piece]
        inner = [f"(?:{ch}|{WILDCARD})" if ch.isalpha() else ch for ch in letters[1:-1]]
        parts.append(
            "".join([letters[0], *inner, *letters[1:][-1:]]) if len(piece) > 1 else letters[0]
        )
    return r"[\W_]*".join(parts)  # "kill yourself", "kill   yourself", "killyourself"


def _words(terms: Sequence[Term]) -> regex.Pattern[str] | None:
    if not terms:
        return None
    alternatives = "|".join(
        _word_pattern(t.pattern) for t in sorted(terms, key=lambda t: -len(t.pattern))
    )
    return regex.compile(f"(?<![{_EDGE}])(?P<w>{alternatives}){_ENDINGS}(?![{_EDGE}])")


def _compiled(pattern: str) -> regex.Pattern[str]:
    # Views are lowercase: a pattern written with capitals must still match them.
    return regex.compile(pattern, regex.V0 | regex.IGNORECASE)


def _matches_nothing(compiled: regex.Pattern[str]) -> bool:
    """Whether a pattern matches empty text anywhere (``a*``, ``\\b``): it would flag
    every message."""
    for probe in ("", *_PROBES):
        try:
            found = compiled.search(probe, timeout=REGEX_BUDGET_S)
        except TimeoutError:
            return True
        if found is not None and found.end() == found.start():
            return True
    return False


def _anywhere(terms: Sequence[Term]) -> regex.Pattern[str] | None:
    """Single words of at least four letters, found anywhere (short ones hide in names)."""
    words = sorted({t.pattern for t in terms if " " not in t.pattern and len(t.pattern) >= 4})
    if not words:
        return None
    return regex.compile("|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True)))


def _regexes(terms: Sequence[Term]) -> list[tuple[Term, regex.Pattern[str]]]:
    compiled = []
    for term in terms:
        try:
            compiled.append((term, _compiled(term.pattern)))
        except (regex.error, OverflowError, RecursionError):
            log.warning("moderation pattern %r no longer compiles; skipped", term.pattern[:80])
    return compiled
