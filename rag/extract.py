"""Turn an uploaded file into clean text sections: the first step of the knowledge base.

``extract(filename, data)`` reads plain text, Markdown, HTML, PDF and DOCX bytes and
returns a :class:`Document`: a title, the kind that was read, and :class:`Section` s of
normalised text, each with the heading path it sits under and, for PDFs, its page.
:mod:`rag.chunking` cuts the sections into chunks.

Every file is hostile input, and so is its name. Anything this module will not read
raises :class:`core.errors.InputRejected` with a short message for the uploader that
names the file by its sanitised base name (``repr``, cut to 80 characters).

This module must never write a file, touch the file system (the name is never used as a
path), reach the network, trust the sizes a zip archive declares without checking them
before anything unpacks it, or import chat code.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal
from xml.etree import ElementTree

import docx
import trafilatura
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PasswordType, PdfReader

from core.errors import InputRejected

Kind = Literal["txt", "md", "html", "pdf", "docx"]

MAX_BYTES = 25 * 1024 * 1024
"""The default cap on an uploaded file's size."""

MAX_UNZIPPED_BYTES = 50 * 1024 * 1024
"""A DOCX whose members declare more than this in all is refused as a likely zip bomb."""

MAX_ZIP_RATIO = 100
"""A DOCX that unpacks to more than this many times its packed size is refused too."""

_RATIO_FLOOR_BYTES = 1024 * 1024
"""Smaller archives (unpacked) skip the ratio test: harmless, and repetitive ones pass 100:1."""

_TEXT_KINDS: dict[str, Kind] = {
    "txt": "txt",
    "text": "txt",
    "md": "md",
    "markdown": "md",
    "html": "html",
    "htm": "html",
}
_SUPPORTED = ".txt, .md, .html, .pdf or .docx"
_MAX_TITLE = 255
_MAX_HEADING = 200
_LABEL_CHARS = 80
_BINARY_SAMPLE = 8192
_BINARY_SHARE = 0.1  # more control characters than this in the sample: not a text file
_BINARY_MIN = 64  # a shorter sample is never called binary: normalising cleans it

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all C0/C1 controls but \t and \n
_BINARY_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f]")  # rare in text, even Windows text
_BLANK_RUNS = re.compile(r"\n{3,}")
_ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_DOCX_HEADING = re.compile(r"Heading ([1-9])")
_HTML_HEADING = re.compile(r"h([1-6])")


@dataclass(frozen=True)
class Section:
    """A run of clean text under one heading path.

    Attributes:
        text: Normalised text: no control characters but newline and tab, ``\\n`` line
            breaks, no trailing spaces, at most one blank line in a row; never blank.
        heading: The headings above the text, outermost first, joined by ``" > "``
            (e.g. ``"Rules > Voice channels"``); empty before the first heading.
        page: The 1-based PDF page the text is on; ``None`` for other kinds.
    """

    text: str
    heading: str = ""
    page: int | None = None


@dataclass(frozen=True)
class Document:
    """The readable text of one uploaded file.

    Attributes:
        title: The file's base name (never a path), cleaned of control characters.
        kind: The format that was read, decided by content first, then by extension.
        sections: The text, in reading order; at least one.
        sha256: Hex digest of the raw bytes, to recognise the same upload again.
    """

    title: str
    kind: Kind
    sections: tuple[Section, ...]
    sha256: str


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


_Block = _Heading | str


def extract(filename: str, data: bytes, *, max_bytes: int = MAX_BYTES) -> Document:
    """Read an uploaded file into clean text sections.

    Args:
        filename: The name the uploader gave; only its base name is kept, as the title.
        data: The file's bytes.
        max_bytes: Larger files are refused before anything parses them.

    Returns:
        The document, with at least one non-blank section.

    Raises:
        InputRejected: The file is empty, too large, of an unsupported type, unreadable
            (corrupt, encrypted, not UTF-8 text), a likely zip bomb, or has no text.
    """
    title = safe_title(filename)
    label = repr(title[:_LABEL_CHARS])
    if not data:
        raise InputRejected(f"The file {label} is empty.")
    if len(data) > max_bytes:
        raise InputRejected(
            f"The file {label} is {_mib(len(data))} MB; the limit is {_mib(max_bytes)} MB."
        )
    kind = _kind(title, data, label)
    sections = _clean(_READERS[kind](data, label))
    if not sections:
        raise InputRejected(f"The file {label} has no text.")
    return Document(title, kind, sections, hashlib.sha256(data).hexdigest())


def safe_title(filename: str) -> str:
    """The base name of an uploaded file's name, safe to store and show.

    Directories (``/`` or ``\\``) and a drive letter are dropped, control characters
    removed; an empty result, ``.`` or ``..`` becomes ``"untitled"``.

    Args:
        filename: The name as the uploader's client sent it.

    Returns:
        At most 255 characters, never a path.
    """
    base = re.split(r"[\\/]", filename)[-1]
    base = _one_line(re.sub(r"^[A-Za-z]:", "", base), _MAX_TITLE)
    return base if base not in ("", ".", "..") else "untitled"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


def _kind(title: str, data: bytes, label: str) -> Kind:
    """Content wins over the extension: a ``.txt`` that is really a PDF is read as one."""
    extension = title.rpartition(".")[2].lower() if "." in title else ""
    head = data[:1024]  # the PDF header may follow a little junk; only trust that for .pdf
    if head.lstrip().startswith(b"%PDF-") or (extension == "pdf" and b"%PDF-" in head):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx"  # any zip; _read_docx refuses one that is not a Word document
    if extension in ("pdf", "docx"):
        raise InputRejected(f"The file {label} is not a readable {extension.upper()} file.")
    if extension not in _TEXT_KINDS:
        raise InputRejected(f"The file {label} is not a supported type; send {_SUPPORTED}.")
    return _TEXT_KINDS[extension]


def _decode(data: bytes) -> str:
    """UTF-8, or UTF-8/UTF-16 with a byte order mark; ``UnicodeDecodeError`` otherwise."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    return data.decode(encoding)


def _text(data: bytes, label: str) -> str:
    try:
        text = _decode(data)
    except UnicodeDecodeError as exc:
        raise InputRejected(f"The file {label} is not UTF-8 text.") from exc
    sample = text[:_BINARY_SAMPLE]
    controls = len(_BINARY_CONTROLS.findall(sample))
    if len(sample) >= _BINARY_MIN and controls > _BINARY_SHARE * len(sample):
        raise InputRejected(f"The file {label} looks like a binary file, not text.")
    return text


def normalise(text: str) -> str:
    """Clean extracted text for storage and chunking.

    Line breaks become ``\\n``; other control characters but tab go; trailing whitespace
    on each line goes; runs of blank lines become one; leading and trailing blank lines
    go. Format characters (zero-width joiners, direction marks) stay: they carry meaning.

    Args:
        text: Any text.

    Returns:
        The cleaned text; empty or whitespace-only when there was nothing to read.
    """
    text = _CONTROLS.sub("", _LINE_BREAKS.sub("\n", text))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def _clean(sections: Iterable[Section]) -> tuple[Section, ...]:
    cleaned = (Section(normalise(s.text), s.heading, s.page) for s in sections)
    return tuple(s for s in cleaned if s.text.strip())


def _one_line(text: str, limit: int = _MAX_HEADING) -> str:
    return " ".join(_CONTROLS.sub("", text).split())[:limit]


def _sectioned(blocks: Iterable[_Block], joiner: str) -> list[Section]:
    """Group text blocks under the headings before them; a heading closes the section."""
    sections: list[Section] = []
    trail: list[_Heading] = []
    body: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            body.append(block)
            continue
        if not _one_line(block.text):
            continue  # an empty heading line (common in Word) starts nothing
        sections.append(Section(joiner.join(body), _path(trail)))
        body = []
        trail = [*(h for h in trail if h.level < block.level), block]
    sections.append(Section(joiner.join(body), _path(trail)))
    return sections


def _path(trail: list[_Heading]) -> str:
    return " > ".join(text for h in trail if (text := _one_line(h.text)))


def _read_txt(data: bytes, label: str) -> list[Section]:
    return [Section(_text(data, label))]


def _read_md(data: bytes, label: str) -> list[Section]:
    return _sectioned(_markdown_blocks(normalise(_text(data, label))), "\n")


def _markdown_blocks(text: str) -> Iterator[_Block]:
    """ATX headings (``## Title``) outside fenced code; every other line is text."""
    fence = ""
    for line in text.split("\n"):
        marker = _FENCE.match(line)
        if marker and not fence:
            fence = marker.group(1)
        elif marker and _closes(line, fence):
            fence = ""
        elif not fence and (heading := _ATX_HEADING.fullmatch(line)):
            yield _Heading(len(heading.group(1)), _without_closing_hashes(heading.group(2)))
            continue
        yield line


def _closes(line: str, fence: str) -> bool:
    mark = line.strip()
    return len(mark) >= len(fence) and set(mark) == {fence[0]}


def _without_closing_hashes(text: str | None) -> str:
    text = (text or "").strip()
    bare = text.rstrip("#")
    if not bare or bare[-1] in " \t":
        return bare.strip()
    return text


def _read_html(data: bytes, label: str) -> list[Section]:
    try:
        source: str | bytes = _decode(data)
    except UnicodeDecodeError:
        source = data  # a legacy charset: trafilatura reads <meta charset> and guesses
    try:
        xml = trafilatura.extract(
            source,
            output_format="xml",
            favor_recall=True,
            include_comments=False,
            include_tables=True,
            with_metadata=False,
            deduplicate=False,
        )
        main = ElementTree.fromstring(xml).find("main") if xml else None
    except Exception as exc:  # a parser of hostile bytes may fail in any way
        raise InputRejected(f"The file {label} is not readable HTML.") from exc
    return [] if main is None else _sectioned(_html_blocks(main), "\n\n")


def _html_blocks(main: ElementTree.Element) -> Iterator[_Block]:
    """Blocks of trafilatura's XML: ``head`` (with ``rend="hN"``), ``p``, ``list``, ..."""
    for line_break in main.iter("lb"):
        line_break.tail = "\n" + (line_break.tail or "")
    for element in main:
        if element.tag == "head":
            level = _HTML_HEADING.fullmatch(element.get("rend", ""))
            yield _Heading(int(level.group(1)) if level else 1, "".join(element.itertext()))
        elif element.tag == "list":
            yield "\n".join("- " + "".join(item.itertext()) for item in element.findall("item"))
        elif element.tag == "table":
            yield "\n".join(_row(row.iter("cell")) for row in element.iter("row"))
        else:
            yield "".join(element.itertext())


def _row(cells: Iterable[ElementTree.Element]) -> str:
    return " | ".join(" ".join("".join(cell.itertext()).split()) for cell in cells)


def _read_pdf(data: bytes, label: str) -> list[Section]:
    reader = _open_pdf(data, label)
    try:
        return [Section(p.extract_text(), page=n) for n, p in enumerate(reader.pages, 1)]
    except Exception as exc:  # pypdf on a damaged page may fail in any way
        raise InputRejected(f"The file {label} is not a readable PDF file.") from exc


def _open_pdf(data: bytes, label: str) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as exc:
        raise InputRejected(f"The file {label} is not a readable PDF file.") from exc
    if not encrypted:
        return reader
    try:
        opened = reader.decrypt("")  # many PDFs have only an owner password
    except Exception as exc:  # e.g. AES without the ``cryptography`` package
        raise InputRejected(f"The file {label} is encrypted; send an unprotected copy.") from exc
    if opened == PasswordType.NOT_DECRYPTED:
        raise InputRejected(f"The file {label} is password-protected; send an unprotected copy.")
    return reader


def _read_docx(data: bytes, label: str) -> list[Section]:
    _check_archive(data, label)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(document.iter_inner_content()))
    except Exception as exc:  # python-docx on a damaged package may fail in any way
        raise InputRejected(f"The file {label} is not a readable DOCX file.") from exc
    return _sectioned(blocks, "\n\n")


def _check_archive(data: bytes, label: str) -> None:
    """Refuse a zip bomb from the central directory alone, before anything unpacks.

    The declared sizes can lie, but :mod:`zipfile` never yields more than a member's
    declared size, so capping the declared total caps what python-docx can unpack.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:
        raise InputRejected(f"The file {label} is not a readable DOCX file.") from exc
    if "word/document.xml" not in {m.filename for m in members}:
        raise InputRejected(f"The file {label} is not a supported type; send {_SUPPORTED}.")
    unpacked = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if unpacked > MAX_UNZIPPED_BYTES or (
        unpacked > _RATIO_FLOOR_BYTES and unpacked > MAX_ZIP_RATIO * packed
    ):
        raise InputRejected(
            f"The file {label} unpacks to {_mib(unpacked)} MB, too much for a document."
        )


def _docx_blocks(content: Iterable[Paragraph | Table]) -> Iterator[_Block]:
    for item in content:
        if isinstance(item, Table):
            yield "\n".join(" | ".join(cell.text for cell in row.cells) for row in item.rows)
            continue
        style = item.style.name if item.style is not None else None
        level = _DOCX_HEADING.fullmatch(style or "")
        yield _Heading(int(level.group(1)), item.text) if level else item.text


_READERS = {
    "txt": _read_txt,
    "md": _read_md,
    "html": _read_html,
    "pdf": _read_pdf,
    "docx": _read_docx,
}
