"""Uploaded files become clean text sections, and hostile files a short message.

Each story builds a real file in memory (PDFs with pypdf, DOCX with python-docx, zips
with :mod:`zipfile` or by hand) and hands its bytes to ``extract``, as the knowledge
plugin will with an attachment. Nothing here touches the disk.
"""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import pytest
from docx.document import Document as DocxDocument
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ContentStream, DictionaryObject, NameObject

from core.errors import InputRejected
from rag.extract import Document, Section, extract, normalise, safe_title

pytestmark = pytest.mark.timeout(30)

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]

RULES_MD = """Welcome to the server.

# Rules

Be kind.\r\n\r\n\r\n\r\n\r\nNo spam.\x00\x07

### Voice channels ###

Mute when you are not speaking.

```
# a comment in code, not a heading
```

## Text channels

#hashtags are not headings.

# FAQ
#
Who runs this?
"""

RULES_HTML = b"""<!doctype html><html><head><meta charset="utf-8">
<title>House rules - Example</title></head><body>
<div id="cookie-banner">We use cookies. <a href="/cookies">Cookie settings</a></div>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li>
<li><a href="/login">Log in</a></li></ul></nav>
<main><article>
<h1>House rules</h1>
<p>Be kind to other members. Harassment of any kind is not tolerated and leads to a ban.</p>
<h2>Voice channels</h2>
<p>Do not play music in the general voice channel. Use the music channel for that.</p>
<p>Keep your microphone muted when you are not speaking, so others hear each other.</p>
<h3>Streaming</h3>
<p>Streaming games is allowed in the gaming voice channels only, never in study rooms.</p>
<ul><li>Ask a moderator first.</li><li>Keep it friendly.</li></ul>
</article></main>
<footer><p>Copyright 2025 Example Corp. All rights reserved.</p>
<a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def make_pdf(pages: list[list[str]], *, user_password: str | None = None) -> bytes:
    """A PDF whose page ``n`` shows the lines ``pages[n]`` in Helvetica."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        fonts = DictionaryObject({NameObject("/F1"): font})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        shown = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
        stream = ContentStream(None, writer)
        stream.set_data(f"BT /F1 12 Tf 72 720 Td {shown} ET".encode())
        page.replace_contents(stream)
    if user_password is not None:
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(build: Callable[[DocxDocument], object] | None = None) -> bytes:
    """A DOCX written by python-docx; ``build`` adds its content."""
    document = docx.Document()
    if build is not None:
        build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def with_member(archive: bytes, name: str, size: int) -> bytes:
    """``archive`` plus a member of ``size`` zero bytes, deflated (about 1000:1)."""
    buffer = io.BytesIO(archive)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr(name, bytes(size))
    return buffer.getvalue()


def forged_zip(declared: int) -> bytes:
    """A Word-looking zip whose ``word/document.xml`` claims ``declared`` bytes unpacked.

    Its 64 "compressed" bytes are junk: anything that tried to inflate it would fail with
    a different message than the zip bomb one.
    """
    name, junk = b"word/document.xml", b"\xff" * 64
    local = struct.pack(
        "<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(junk), declared, len(name), 0
    )
    central = struct.pack(
        "<4s6H3I5H2I",
        *(b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, len(junk), declared, len(name)),
        *(0, 0, 0, 0, 0, 0),
    )
    body = local + name + junk
    directory = central + name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


def texts(document: Document) -> list[tuple[str, str]]:
    return [(s.heading, s.text) for s in document.sections]


def test_markdown_becomes_sections_under_their_heading_paths() -> None:
    document = extract("rules.md", RULES_MD.encode())

    assert document.kind == "md" and document.title == "rules.md"
    assert texts(document) == [
        ("", "Welcome to the server."),
        ("Rules", "Be kind.\n\nNo spam."),  # CRLF, blank runs and control characters gone
        ("Rules > Voice channels", "Mute when you are not speaking.\n\n```\n"
         "# a comment in code, not a heading\n```"),
        ("Rules > Text channels", "#hashtags are not headings."),
        ("FAQ", "Who runs this?"),  # an empty "#" line starts no section
    ]  # fmt: skip


def test_a_web_page_keeps_its_article_and_loses_nav_footer_and_banners() -> None:
    document = extract("rules.html", RULES_HTML)

    assert document.kind == "html"
    assert [s.heading for s in document.sections] == [
        "House rules",
        "House rules > Voice channels",
        "House rules > Voice channels > Streaming",
    ]
    text = "\n".join(s.text for s in document.sections)
    assert "Harassment of any kind is not tolerated" in text
    assert "- Ask a moderator first.\n- Keep it friendly." in text
    for boilerplate in ("Cookie settings", "About us", "Log in", "Copyright", "Privacy"):
        assert boilerplate not in text


def test_a_page_in_a_legacy_charset_is_read_by_its_meta_charset() -> None:
    page = (
        b"<html><head><meta charset='iso-8859-1'></head><body><article><h1>Desserts</h1>"
        b"<p>Cr\xe8me br\xfbl\xe9e is a dessert that many people enjoy, in Paris and"
        b" elsewhere, after a long dinner with friends.</p></article></body></html>"
    )

    (section,) = extract("desserts.htm", page).sections

    assert section.text.startswith("Crème brûlée is a dessert")


def test_a_pdf_keeps_its_page_numbers() -> None:
    pdf = make_pdf([["Rules of the house.", "Be kind."], ["Voice channels."], ["The end."]])

    document = extract("handbook.pdf", pdf)

    assert document.kind == "pdf"
    assert [(s.page, s.text) for s in document.sections] == [
        (1, "Rules of the house.\nBe kind."),
        (2, "Voice channels."),
        (3, "The end."),
    ]


def test_a_pdf_is_read_as_a_pdf_whatever_its_name_says() -> None:
    document = extract("notes.txt", make_pdf([["Hidden PDF."]]))

    assert document.kind == "pdf" and texts(document) == [("", "Hidden PDF.")]


def test_a_pdf_with_only_an_owner_password_opens() -> None:
    document = extract("locked-for-editing.pdf", make_pdf([["Readable."]], user_password=""))

    assert texts(document) == [("", "Readable.")]


def test_a_docx_becomes_sections_under_its_heading_styles() -> None:
    def build(document: DocxDocument) -> None:
        document.add_paragraph("Read this first.")
        document.add_heading("Rules", level=1)
        document.add_paragraph("Be kind.")
        document.add_paragraph("No spam.")
        document.add_heading("Voice channels", level=2)
        document.add_paragraph("Mute when you are not speaking.")
        table = document.add_table(rows=2, cols=2)
        for (row, col), value in {(0, 0): "Channel", (0, 1): "Use", (1, 0): "#general",
                                  (1, 1): "talk"}.items():  # fmt: skip
            table.cell(row, col).text = value
        document.add_heading("FAQ", level=1)
        document.add_paragraph("Ask a moderator.")

    document = extract("rules.docx", make_docx(build))

    assert document.kind == "docx"
    assert texts(document) == [
        ("", "Read this first."),
        ("Rules", "Be kind.\n\nNo spam."),
        ("Rules > Voice channels", "Mute when you are not speaking.\n\n"
         "Channel | Use\n#general | talk"),
        ("FAQ", "Ask a moderator."),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Zoë's notes\r\nline two\rline three".encode(), "Zoë's notes\nline two\nline three"),
        ("\ufeffWith a UTF-8 BOM".encode(), "With a UTF-8 BOM"),
        ("With a UTF-16 BOM ✓".encode("utf-16"), "With a UTF-16 BOM ✓"),
        (
            b"tab\tkept,\x1b[31m escape\x00 gone  \n\n\n\n\nend\n",
            "tab\tkept,[31m escape gone\n\nend",
        ),
        ("zero\u200bwidth and \u202eRTL stay".encode(), "zero\u200bwidth and \u202eRTL stay"),
    ],
)
def test_plain_text_is_decoded_and_normalised(data: bytes, expected: str) -> None:
    assert texts(extract("notes.txt", data)) == [("", expected)]


@pytest.mark.parametrize(
    ("filename", "title"),
    [
        ("../../x.md", "x.md"),
        ("a/b.txt", "b.txt"),
        ("C:\\Users\\me\\x.txt", "x.txt"),
        ("C:x.txt", "x.txt"),
        ("evil.pdf\x00.txt", "evil.pdf.txt"),
        ("line\nbreak.txt", "line break.txt"),
        ("..", "untitled"),
        ("", "untitled"),
    ],
)
def test_only_the_base_name_of_a_path_is_kept_as_the_title(filename: str, title: str) -> None:
    assert safe_title(filename) == title
    if title.endswith((".txt", ".md")):
        assert extract(filename, b"some text").title == title


def rejection(filename: str, data: bytes, **kwargs: int) -> str:
    with pytest.raises(InputRejected) as caught:
        extract(filename, data, **kwargs)
    return caught.value.user_message


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("empty.txt", b"", "is empty"),
        ("blank.txt", b" \n\t\r\n \x00 ", "has no text"),
        ("headings.md", b"# One\n\n## Two\n", "has no text"),
        ("nav.html", b"<html><body></body></html>", "has no text"),
        ("blank.pdf", make_pdf([[], []]), "has no text"),
        ("blank.docx", make_docx(), "has no text"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "not a supported type"),
        ("program.exe", b"MZ\x90\x00", "not a supported type"),
        ("README", b"plain words", "not a supported type"),
        ("archive.txt", with_member(b"", "data.csv", 10), "not a supported type"),
        ("latin1.txt", "café".encode("latin-1"), "not UTF-8 text"),
        ("binary.md", b"\x00\x01\x02\x03 some text" * 8, "looks like a binary"),
        ("fake.pdf", b"just text", "not a readable PDF"),
        ("garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4, "not a readable PDF"),
        ("cut.pdf", make_pdf([["Half a file."]])[:300], "not a readable PDF"),
        ("locked.pdf", make_pdf([["Secret."]], user_password="hunter2"), "password-protected"),
        ("fake.docx", b"just text", "not a readable DOCX"),
        ("broken.docx", b"PK\x03\x04" + bytes(200), "not a readable DOCX"),
        ("broken-inside.docx", forged_zip(100), "not a readable DOCX"),
    ],
)
def test_unreadable_files_are_refused_with_a_message_naming_them(
    filename: str, data: bytes, reason: str
) -> None:
    message = rejection(filename, data)

    assert f"The file {filename!r}" in message and reason in message


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    message = rejection("big.pdf", b"%PDF-" + bytes(2 * MIB), max_bytes=MIB)

    assert message == "The file 'big.pdf' is 2 MB; the limit is 1 MB."


def test_a_refusal_names_the_sanitised_file_only() -> None:
    message = rejection("../../../etc/" + "\x1b[2J" + "y" * 500 + ".exe", b"MZ")

    assert "../" not in message and "\x1b" not in message and "etc" not in message
    assert f"{'[2J' + 'y' * 77!r}" in message  # repr of the base name, cut to 80


@pytest.mark.parametrize(
    ("build", "unpacked"),
    [
        (lambda: with_member(make_docx(), "word/media/zeros.bin", 60 * MIB), "60.8 MB"),
        (lambda: with_member(make_docx(), "word/media/zeros.bin", 10 * MIB), "10.8 MB"),
        (lambda: forged_zip(4_000_000_000), "3814.7 MB"),
    ],
    ids=["over 50 MB", "over 100 to 1", "forged sizes"],
)
def test_a_zip_bomb_docx_is_refused_from_its_directory_without_unpacking(
    build: Callable[[], bytes], unpacked: str
) -> None:
    archive = build()  # here, not at collection: 60 MiB of zeros take a moment to pack

    started = time.perf_counter()
    message = rejection("bomb.docx", archive)

    assert message == f"The file 'bomb.docx' unpacks to {unpacked}, too much for a document."
    assert time.perf_counter() - started < 2  # unpacking it could not be this quick


def test_the_same_bytes_give_the_same_digest_whatever_the_name() -> None:
    pdf = make_pdf([["Same."]])

    first, again = extract("a.pdf", pdf), extract("b.txt", pdf)
    other = extract("a.pdf", make_pdf([["Other."]]))

    assert first.sha256 == again.sha256 != other.sha256
    assert len(first.sha256) == 64 and first.sections == again.sections


def test_sections_are_frozen_values() -> None:
    section = Section("text", "A > B", 3)

    with pytest.raises(AttributeError):
        section.text = "changed"  # type: ignore[misc]
    assert section == Section("text", "A > B", 3)


_MD_SEGMENTS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["\n", "\n\n\n\n", "\r\n", "\r", "\t", "   ", "\x00", "\x1b[0m", "\x85"]),
    st.sampled_from(["# ", "#", "###### ", "####### ", "   ## ", "    # ", " ##", "# x #"]),
    st.sampled_from(["```", "~~~", "````\n", "```py\n", "\n```\n", "#hashtag"]),
    st.sampled_from(["\u200b", "\u200d", "\u202e", "\u2067", "\ufeff", "👩\u200d💻", "e\u0301"]),
    st.integers(1, 3000).map(lambda n: "y" * n),
    st.integers(1, 300).map(lambda n: "#" * n + " " * n),
)
HOSTILE_MD = st.lists(_MD_SEGMENTS, max_size=60).map("".join)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@settings(max_examples=150, deadline=None, database=None)
@given(HOSTILE_MD, st.sampled_from(["notes.md", "notes.txt"]))
def test_hostile_text_files_come_out_clean_and_whole(text: str, name: str) -> None:
    try:
        document = extract(name, text.encode())
    except InputRejected as refused:
        reasons = ("is empty.", "has no text.", "looks like a binary file, not text.")
        assert refused.user_message.endswith(reasons)
        return

    lines = [line for s in document.sections for line in s.text.split("\n")]
    for section in document.sections:
        assert section.text.strip() and "\n\n\n" not in section.text
        assert not _CONTROL.search(section.text) and not _CONTROL.search(section.heading)
        assert "\n" not in section.heading and "\t" not in section.heading
        assert all(len(part) <= 200 for part in section.heading.split(" > "))
    assert all(line == line.rstrip() for line in lines)
    # Every line that cannot be a heading survives, in order.
    decoded = text.removeprefix("\ufeff")  # a leading BOM is a byte order mark, not text
    kept = [line for line in normalise(decoded).split("\n") if line.strip()]
    if name.endswith(".md"):
        kept = [line for line in kept if not line.lstrip(" ").startswith("#")]
    remaining = iter(lines)
    assert all(line in remaining for line in kept)


_PREFIXES = [b"", b"%PDF-1.4\n", b"PK\x03\x04", b"<html><body><p>", b"\xef\xbb\xbf", b"\xff\xfe"]


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.sampled_from(_PREFIXES),
    st.binary(max_size=2000),
    st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "a.bin"]),
)
def test_random_bytes_are_read_or_refused_never_crash(
    prefix: bytes, tail: bytes, name: str
) -> None:
    try:
        document = extract(name, prefix + tail)
    except InputRejected as refused:
        assert refused.user_message.startswith(f"The file {name!r} ")
    else:
        assert document.sections and all(s.text.strip() for s in document.sections)


def sample_uploads() -> dict[str, bytes]:
    """One upload of each kind, for the test that watches the file system."""
    return {
        "a.md": RULES_MD.encode(),
        "a.html": RULES_HTML,
        "a.pdf": make_pdf([["One."], ["Two."]]),
        "a.docx": make_docx(lambda document: document.add_paragraph("Body.")),
        "../../etc/passwd.txt": b"root",
    }


def test_extracting_never_touches_the_file_system() -> None:
    """In a fresh interpreter, an audit hook sees every file opened or listed."""
    code = (
        "import json, sys\n"
        "from rag.extract import extract\n"
        "from tests.rag.test_extract import sample_uploads\n"
        "uploads, seen = sample_uploads(), []\n"
        "def audit(event, args):\n"
        "    if event == 'open' or event.startswith(('os.', 'shutil.')):\n"
        "        seen.append([event, str(args[0])])\n"
        "sys.addaudithook(audit)\n"
        "for name, data in uploads.items():\n"
        "    extract(name, data)\n"
        "print(json.dumps(seen))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    touched = [
        (event, path)
        for event, path in json.loads(out.stdout)
        if not path.endswith((".py", ".pyc", ".so"))  # lazy imports inside the libraries
    ]

    assert touched == []


def test_pypdf_reads_the_generated_pdf_like_any_other() -> None:
    """Guards the generator: the PDF stories are only as good as their PDFs."""
    reader = PdfReader(io.BytesIO(make_pdf([["x"], ["y"], ["z"]])))

    assert [page.extract_text() for page in reader.pages] == ["x", "y", "z"]
