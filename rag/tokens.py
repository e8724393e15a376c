"""Count tokens the way the embedding model does, to cut chunks that fit it.

:class:`TokenCounter` reads a model folder's ``tokenizer.json`` with the ``tokenizers``
library (Rust, no torch) and is meant to be the ``count`` of :func:`rag.chunking.chunk`.
It counts content tokens only: no ``[CLS]``/``[SEP]``, no padding, no truncation (the
file's own truncation to 128 tokens is switched off, or every long text would count 128).

Two rules make the count safe for cutting hostile text:

* An unknown-token piece (``[UNK]``) counts one token per character it covers, not one.
  WordPiece turns any word over 100 characters, or with one character it does not know,
  into a single ``[UNK]``; counted as one, a megabyte "word" would fit any budget.
* Only the first :data:`EXACT_CHARS` characters are tokenized; every character after
  them counts one token. This keeps a count under ~10 ms whatever the text's size (the
  chunker counts whole sections before it cuts them), keeps prefixes longer than
  :data:`EXACT_CHARS` strictly monotonic, and over-counts English (~4 characters a
  token) beyond that point, so a chunk budget over ~5,000 tokens gives chunks somewhat
  shorter than the budget. Hangul, whose syllables split into up to three jamo pieces,
  is the one script counted low past that point.

Monotonicity, precisely: the count is additive at ASCII spaces (the tokenizer never
joins words across one), so a prefix counts no more than the whole plus the count of the
prefix's last, cut word: greedy WordPiece makes ``"playin"`` two pieces where
``"playing"`` is one. Over the bundled model's vocabulary the slack is at most 5 tokens
(``"distributio"`` is 6 pieces, ``"distribution"`` 1), which the chunker tolerates.

This module must never import torch or load a model; it never raises on any ``str``
(lone surrogates are counted as ``"?"``).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from core.errors import ModelError

EXACT_CHARS = 20_000
"""Characters tokenized exactly; each one after them counts one token."""


class TokenCounter:
    """A callable ``str -> int`` that counts an embedding model's content tokens."""

    def __init__(self, tokenizer: Tokenizer, *, name: str = "tokenizer") -> None:
        """Wrap a loaded tokenizer; prefer :meth:`from_model_dir`.

        Args:
            tokenizer: A ``tokenizers.Tokenizer``; its truncation and padding are
                switched off in place.
            name: What error messages and ``repr`` call it (the model folder).
        """
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._unk_id = _unk_id(tokenizer)
        self.name = name

    @classmethod
    def from_model_dir(cls, path: Path | str) -> TokenCounter:
        """The counter of the model in ``path`` (a folder holding ``tokenizer.json``).

        Raises:
            ModelError: The file is missing or is not a tokenizer; the message names it.
        """
        file = Path(path) / "tokenizer.json"
        if not file.is_file():
            raise ModelError(f"no tokenizer.json in the model folder {Path(path)}")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # the Rust side raises a bare Exception
            raise ModelError(f"cannot read the tokenizer {file}: {exc}") from exc
        return cls(tokenizer, name=str(path))

    def __call__(self, text: str) -> int:
        """How many tokens ``text`` counts (see the module docstring for the rules).

        Args:
            text: Any text, of any size.

        Returns:
            0 for the empty text, else at least 0.
        """
        if not text:
            return 0
        head, tail = text[:EXACT_CHARS], len(text) - EXACT_CHARS
        return self._exact(head) + max(0, tail)

    def __repr__(self) -> str:
        return f"TokenCounter({self.name!r})"

    def _exact(self, text: str) -> int:
        try:
            encoding = self._tokenizer.encode(text, add_special_tokens=False)
        except TypeError:  # lone surrogates cannot cross into Rust as UTF-8
            safe = text.encode("utf-8", "replace").decode("utf-8")
            encoding = self._tokenizer.encode(safe, add_special_tokens=False)
        ids = encoding.ids
        if self._unk_id is None or self._unk_id not in ids:
            return len(ids)
        return sum(
            max(1, end - start) if token == self._unk_id else 1
            for token, (start, end) in zip(ids, encoding.offsets, strict=True)
        )


def _unk_id(tokenizer: Tokenizer) -> int | None:
    unk = getattr(tokenizer.model, "unk_token", None)
    return tokenizer.token_to_id(unk) if isinstance(unk, str) else None
