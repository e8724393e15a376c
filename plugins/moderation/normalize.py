"""Hostile text to canonical views that word lists and a classifier can match.

People dodge filters with case, look-alike letters from other scripts (Cyrillic "а",
Greek "μ", fullwidth "ｆ", mathematical letters), zero-width and other invisible
characters, accents and combining marks ("fück", zalgo), leetspeak ("sh1t"), masked
letters ("f*ck"), spaced letters ("f u c k", "f.u.c.k"), repeated letters ("fuuuck")
and base64. ``views`` undoes each of them; matching any view is a match.

Only the first ``MAX_SCAN_CHARS`` characters are read. Nothing here raises on any
``str`` (lone surrogates, NULs, huge input) and nothing here decides anything: it only
rewrites text. Measured on this machine: ``views`` of a 200-character message ~25 µs.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

import regex

MAX_SCAN_CHARS = 8000
WILDCARD = "\ue000"  # a masked letter ("f*ck"): the lists treat it as any one letter
MAX_VIEWS = 6
_MAX_DECODED = 4  # base64 tokens decoded per text

_SYMBOL_ALPHABETS = (0x1F150, 0x1F170, 0x1F1E6)  # negative circled, squared, regional
# Look-alikes NFKC leaves alone, after casefolding: Cyrillic, Greek, Armenian, IPA and
# a few Latin letters people swap in.
_CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("аɑα", "a"),
        **dict.fromkeys("вβЬьƅ", "b"),
        **dict.fromkeys("сϲⅽ", "c"),
        **dict.fromkeys("ԁđɗ", "d"),
        **dict.fromkeys("еєεҽ", "e"),
        **dict.fromkeys("ғƒ", "f"),
        **dict.fromkeys("ɡց", "g"),
        **dict.fromkeys("һнħ", "h"),
        **dict.fromkeys("іїιıɩ", "i"),
        **dict.fromkeys("јϳ", "j"),
        **dict.fromkeys("кκ", "k"),
        **dict.fromkeys("ӏłℓ", "l"),
        **dict.fromkeys("мϻ", "m"),
        **dict.fromkeys("пոηŋ", "n"),
        **dict.fromkeys("оοօσøɵ", "o"),
        **dict.fromkeys("рρþ", "p"),
        **dict.fromkeys("ԛ", "q"),
        **dict.fromkeys("гґ", "r"),
        **dict.fromkeys("ѕʂ", "s"),
        **dict.fromkeys("тτ", "t"),
        **dict.fromkeys("υսμцʋ", "u"),
        **dict.fromkeys("νѵ", "v"),
        **dict.fromkeys("ωԝш", "w"),
        **dict.fromkeys("хχ", "x"),
        **dict.fromkeys("уүγ", "y"),
        **dict.fromkeys("ʐƶ", "z"),
        # Letters drawn as symbols (🅐, 🅰, 🇦) that NFKC leaves as they are.
        **{chr(base + i): chr(ord("a") + i) for base in _SYMBOL_ALPHABETS for i in range(26)},
    }
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "€": "e", "£": "l", "+": "t"}
)  # fmt: skip
_SURROGATES = re.compile("[\ud800-\udfff]")
_INVISIBLE = regex.compile(r"[\p{M}\p{Cf}\p{Cc}--[\t\n\r ]]+", regex.V1)
_SPACES = re.compile(r"\s+")
_TOKEN = re.compile(r"\S+")
_HAS_LETTER = re.compile(r"[a-z]")
_BANG = re.compile(r"(?<=[a-z])[!|](?=[a-z])")  # "sh!t", "f|ck"; not "fine!"
_MASK = re.compile(r"(?<=[a-z])[*#%?]+(?=[a-z])")
_SPACED = re.compile(r"(?<![a-z0-9])[a-z](?:[^a-z0-9\n]{1,3}[a-z](?![a-z0-9])){2,}")
_NOT_LETTER = re.compile(r"[^a-z]")
_REPEATS = re.compile(r"([a-z])\1{2,}")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{8,}={0,2}")


def fold(text: str) -> str:
    """Case, look-alikes, invisible characters, marks and spacing undone (idempotent)."""
    folded = _fold_once(_SURROGATES.sub("", text[:MAX_SCAN_CHARS]))
    for _ in range(4):  # a few scripts need a second pass; ASCII never does
        if folded.isascii():
            break
        again = _fold_once(folded)
        if again == folded:
            break
        folded = again
    return folded


def views(text: str) -> tuple[str, ...]:
    """The distinct views of ``text``: folded; leetspeak, masks and spaced letters undone
    with repeats cut to one and to two letters; decoded base64 (at most ``MAX_VIEWS``)."""
    folded = fold(text)
    found = [folded]
    if folded:
        undone = _undone(folded)
        found += [_REPEATS.sub(r"\1", undone), _REPEATS.sub(r"\1\1", undone)]
    found += [fold(decoded) for decoded in _decoded(text)]
    unique = list(dict.fromkeys(view for view in found if view))
    return tuple(unique[:MAX_VIEWS]) or ("",)


def spaced_runs(text: str) -> tuple[str, ...]:
    """The letters of each spaced-out run in ``text`` ("you're a d.i.c.k" → "adick"):
    a run's word boundaries are lost, so the lists search these for words anywhere."""
    undone = _TOKEN.sub(_unleet, fold(text))
    runs = (_NOT_LETTER.sub("", m.group()) for m in _SPACED.finditer(undone))
    return tuple(dict.fromkeys(_REPEATS.sub(r"\1", run) for run in runs))


def for_classifier(text: str) -> str:
    """The one view a statistical classifier reads best: folded, leetspeak and spaced
    letters undone, repeats cut to one; masked letters are dropped ("f*ck" → "fck")."""
    folded = fold(text)
    return _REPEATS.sub(r"\1", _undone(folded)).replace(WILDCARD, "")


def _fold_once(text: str) -> str:
    # casefold() turns lowercase Cherokee into uppercase; lower() turns it back.
    text = unicodedata.normalize("NFKC", text).casefold().lower()
    text = _INVISIBLE.sub("", unicodedata.normalize("NFD", text))
    text = unicodedata.normalize("NFC", text).translate(_CONFUSABLES)
    # NFKC may lengthen text (one ligature is 18 letters): the scan limit holds after it.
    return _SPACES.sub(" ", text).strip()[:MAX_SCAN_CHARS]


def _undone(folded: str) -> str:
    """Leetspeak (in tokens with a letter), masks and spaced letters undone."""
    text = _TOKEN.sub(_unleet, folded)
    text = _BANG.sub("i", text)
    text = _MASK.sub(lambda m: WILDCARD * len(m.group()), text)
    return _SPACED.sub(lambda m: _NOT_LETTER.sub("", m.group()), text)


def _unleet(match: re.Match[str]) -> str:
    token = match.group()
    return token.translate(_LEET) if _HAS_LETTER.search(token) else token


def _decoded(text: str) -> list[str]:
    """Base64 tokens of ``text`` that decode to readable text."""
    found = []
    for match in _BASE64.finditer(text[:MAX_SCAN_CHARS]):
        token = match.group()
        if token.lower() == token or token.upper() == token:
            continue  # a long word or number, not base64 (which mixes cases)
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(ch.isprintable() for ch in decoded) >= 0.9 * len(decoded):
            found.append(decoded)
            if len(found) >= _MAX_DECODED:
                break
    return found
