"""Stories of /kb: an admin adds documents, members search them, bad files are refused
with one clear line and leave nothing behind, and one server never sees another's."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from bot.app import App
from core.events import CommandEvent, Origin
from tests.core.conftest import collect
from tests.knowledge.conftest import DOCS, attachment, base, doc, kb, text_of

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.model]

QUESTIONS = json.loads((DOCS.parent / "questions.json").read_text())


async def totals(app: App, server: str) -> tuple[int, int, int]:
    """Documents and chunks in SQL, and vectors in the store, of a console server."""
    pk = await server_pk(app, server)
    docs, chunks = await base(app).library.totals(pk)
    return docs, chunks, await base(app).store.count(pk)


async def server_pk(app: App, server: str) -> int:
    """The storage key of a console server (created on first use)."""
    from tests.core.conftest import origin

    identity = await app.services.storage.identify(origin(server=server))
    return identity.server_pk


async def test_an_admin_adds_a_document_and_a_member_finds_the_answer_with_its_source(
    app: App,
) -> None:
    reply = text_of(await kb(app, "add", doc("faq.md"), server="faq"))
    assert reply.startswith("Added “faq.md”: ") and "passages" in reply, reply

    listing = text_of(await kb(app, "list", server="faq", admin=False))
    assert "“faq.md”" in listing and "by “admin”" in listing, listing

    question = next(q for q in QUESTIONS if q["source"] == "faq.md")
    found = text_of(await kb(app, f"search {question['question']}", server="faq", admin=False))
    assert found.startswith("[1] “faq.md"), found
    assert " ".join(question["answer"].split()) in " ".join(found.split()), found
    docs, chunks, vectors = await totals(app, "faq")
    assert docs == 1 and chunks == vectors > 0


async def test_the_same_file_twice_is_refused_and_a_new_version_replaces_the_old(
    app: App,
) -> None:
    assert text_of(await kb(app, "add", doc("rules.md"), server="dup")).startswith("Added")
    again = text_of(await kb(app, "add", doc("rules.md"), server="dup"))
    assert again == "“rules.md” is already in the knowledge base as “rules.md”.", again
    newer = (DOCS / "rules.md").read_bytes() + b"\n\n## Parrots\n\nParrots are welcome.\n"
    replaced = text_of(await kb(app, "add", attachment("rules.md", newer), server="dup"))
    assert replaced.endswith("It replaces the earlier version."), replaced
    assert (await totals(app, "dup"))[0] == 1
    found = text_of(await kb(app, "search parrots welcome", server="dup"))
    assert "Parrots are welcome." in found, found


async def test_members_may_not_add_or_remove_unless_the_server_allows_it(app: App) -> None:
    refused = text_of(await kb(app, "add", doc("faq.md"), server="perm", admin=False))
    assert refused == "Only server admins may change the knowledge base here."
    assert (await totals(app, "perm"))[0] == 0
    await kb(app, "add", doc("faq.md"), server="perm")
    refused = text_of(await kb(app, "remove faq.md", server="perm", admin=False))
    assert refused == "Only server admins may change the knowledge base here."
    cleared = text_of(await kb(app, "clear", server="perm", admin=False))
    assert "admins" in cleared, cleared
    assert (await totals(app, "perm"))[0] == 1


async def test_one_server_never_retrieves_another_servers_knowledge(app: App) -> None:
    await kb(app, "add", doc("laser-cutter.md"), server="iso-a")
    question = next(q for q in QUESTIONS if q["source"] == "laser-cutter.md")
    other = text_of(await kb(app, f"search {question['question']}", server="iso-b"))
    assert other == "This server's knowledge base is empty: add documents with /kb add."
    await kb(app, "add", doc("events.txt"), server="iso-b")
    found = text_of(await kb(app, f"search {question['question']}", server="iso-b"))
    assert "laser-cutter.md" not in found and "“events.txt" in found, found


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document>" + "A" * 50_000_000)
    return buffer.getvalue()


BAD_FILES = [
    ("empty.txt", b"", "The file 'empty.txt' is empty."),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj <<", "broken.pdf"),
    ("song.mp3", b"ID3\x03\x00\x00\x00" + bytes(200), "song.mp3"),
    ("bomb.docx", _zip_bomb(), "bomb.docx"),
    ("huge.txt", b"word " * 300_000, "is 1.4 MB; the limit is 1 MB."),
]


@pytest.mark.parametrize(("name", "data", "expected"), BAD_FILES)
async def test_a_bad_file_gets_one_clear_line_and_leaves_nothing_behind(
    app: App, name: str, data: bytes, expected: str
) -> None:
    reply = text_of(await kb(app, "add", attachment(name, data), server="bad"))
    assert expected in reply and not reply.startswith("Added"), reply
    assert await totals(app, "bad") == (0, 0, 0)


async def test_a_file_name_with_path_components_is_stored_by_its_base_name(app: App) -> None:
    data = b"The secret handshake is two taps and a wave."
    reply = text_of(await kb(app, "add", attachment("../../etc/x.txt", data), server="path"))
    assert reply.startswith("Added “x.txt”"), reply
    docs = await base(app).library.documents(await server_pk(app, "path"))
    assert [d.source for d in docs] == ["x.txt"]


async def test_remove_and_clear_leave_sql_and_vectors_empty(app: App) -> None:
    await kb(app, "add", doc("faq.md"), doc("rules.md"), server="rm")
    missing = text_of(await kb(app, "remove nothing.md", server="rm"))
    assert missing == "No document named “nothing.md”; see /kb list."
    assert text_of(await kb(app, "remove FAQ.md", server="rm")) == (
        "Removed “FAQ.md” from the knowledge base."
    )
    docs, chunks, vectors = await totals(app, "rm")
    assert docs == 1 and chunks == vectors
    assert text_of(await kb(app, "clear", server="rm")) == (
        "Removed 1 document from the knowledge base."
    )
    assert await totals(app, "rm") == (0, 0, 0)


async def test_the_console_adds_a_path_only_inside_the_allowed_folders(
    app: App, allowed: Path, tmp_path: Path
) -> None:
    inside = allowed / "notes.md"
    inside.write_text("# Notes\n\nThe boiler is serviced every March.\n")
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nNot for the bot.\n")
    (allowed / "link.md").symlink_to(outside)

    assert text_of(await kb(app, f"add {inside}", server="cons")).startswith("Added “notes.md”")
    for path in (outside, allowed / "link.md", allowed / ".." / outside.name):
        refused = text_of(await kb(app, f"add {path}", server="cons"))
        assert "outside the folders open to /kb add" in refused or "no file" in refused, refused
    assert text_of(await kb(app, "add /etc/shadow", server="cons")).endswith(
        "is outside the folders open to /kb add."
    )
    elsewhere = Origin("discord", "cons", "c1", "admin", user_name="admin", is_admin=True)
    on_discord = text_of(await collect(app, CommandEvent(elsewhere, "kb", f"add {inside}")))
    assert on_discord == "Adding a file by path works only in the console; attach the file."
    assert (await totals(app, "cons"))[0] == 1


async def test_a_search_in_a_server_without_documents_says_so(app: App) -> None:
    reply = text_of(await kb(app, "search opening hours", server="none"))
    assert reply == "This server's knowledge base is empty: add documents with /kb add."
