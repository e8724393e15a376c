"""Built-in ``knowledge`` plugin: a per-server knowledge base the agent searches and cites.

``/kb add`` (a file sent with the command; in the console a path under
``allowed_paths``), ``/kb list``, ``/kb remove SOURCE``, ``/kb search QUERY`` and
``/kb clear`` (admins); the agent's ``search_knowledge`` tool is offered only where the
server has documents, and its answers list their sources under the text. The engine is
``rag/`` (extraction, chunking, chromadb, BM25, fusion) over this plugin's own tables;
the embedding model runs in a worker process (``workers.embedding``), never in the bot.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import InputRejected, PermissionDenied, PluginError
from core.plugin import CommandContext, Option, Plugin, PluginContext, ToolContext, ToolResult
from plugins.knowledge import render, tables
from plugins.knowledge.config import KnowledgeSettings
from plugins.knowledge.extractor import Extractor
from plugins.knowledge.library import Library
from plugins.knowledge.service import KnowledgeBase
from rag.store import VectorStore
from rag.tokens import TokenCounter
from workers.embedding import EmbeddingConfig, EmbeddingWorker, bundled_embedding_model

log = logging.getLogger(__name__)

plugin = Plugin(
    "knowledge",
    "Knowledge base: answers from this server's documents, with sources (/kb)",
    version="1.0.0",
    config_model=KnowledgeSettings,
    # Set-up loads the embedding model; an upload is read, embedded and stored in one call.
    call_timeout_s=lambda config: max(120.0, config.extract_timeout_s * 3),
    uses=("database",),
    migrations="migrations",
    tables=tables.metadata,
)

REPAIR_EVERY_S = 600.0
MAX_FILES_PER_COMMAND = 10


@dataclass(slots=True)
class _State:
    """This load's running knowledge base (the module is re-imported on every load)."""

    base: KnowledgeBase | None = None
    worker: EmbeddingWorker | None = None


_state = _State()


def _base() -> KnowledgeBase:
    if _state.base is None:
        raise PluginError("knowledge", "not set up")
    return _state.base


# ---- lifecycle ---------------------------------------------------------------------


@plugin.on_setup
async def _setup(ctx: PluginContext) -> None:
    """Start the embedding worker, open the vector store, repair a crashed ingestion."""
    settings = _settings(ctx.config)
    model = Path(settings.embedding_model) if settings.embedding_model else None
    model = model or bundled_embedding_model()
    reranker = Path(settings.reranker_model) if settings.reranker_model else None
    worker = EmbeddingWorker(
        EmbeddingConfig(model, reranker, device=settings.device, threads=settings.threads)
    )
    extractor = Extractor(settings.extract_timeout_s)
    store = (
        VectorStore.remote(settings.chroma_url)
        if settings.chroma_url
        else VectorStore.persistent(ctx.data_dir / "knowledge" / "chroma")
    )
    try:
        # The tokenizer is read now, so a wrong model folder stops start-up naming it;
        # the worker process starts on the first embedding (most servers never need it).
        count = TokenCounter.from_model_dir(model)
        base = KnowledgeBase(
            settings,
            Library(ctx.require("database", AsyncEngine)),
            store,
            worker,
            count=count,
            extractor=extractor,
            reranker=worker if reranker else None,
        )
    except BaseException:
        await worker.aclose()
        extractor.close()
        await store.close()
        raise
    _state.base, _state.worker = base, worker


@plugin.task
async def _repair(ctx: PluginContext) -> None:
    """Repair what a crashed ingestion (of any bot process) left: at start-up, then
    every few minutes (a bot without documents skips it and never opens the store)."""
    while True:
        base = _base()
        try:
            if await base.library.servers():
                await base.repair()
        except Exception:
            log.exception("knowledge repair failed")
        await asyncio.sleep(REPAIR_EVERY_S)


@plugin.on_teardown
async def _teardown(ctx: PluginContext) -> None:
    """Stop the embedding worker and the reader; close the vector store."""
    base, worker = _state.base, _state.worker
    _state.base = _state.worker = None
    try:
        if worker is not None:
            await worker.aclose()
    finally:
        if base is not None:
            base.extractor.close()
            await base.store.close()


def _settings(config: object) -> KnowledgeSettings:
    if not isinstance(config, KnowledgeSettings):
        raise PluginError("knowledge", "started without its config")
    return config


# ---- /kb ---------------------------------------------------------------------------

plugin.group("kb", "This server's knowledge base")


@plugin.command(
    "kb add",
    "Add the attached files (console: a file path) to the knowledge base",
    Option(
        "path",
        description="Console only: a file under allowed_paths",
        required=False,
        max_length=1000,
        rest=True,
    ),
    files=MAX_FILES_PER_COMMAND,
)
async def kb_add(ctx: CommandContext, path: str | None = None) -> str:
    """Read, chunk and index each attached file (or the console's path); one line each."""
    settings = _settings(ctx.config)
    _may_add(ctx, settings)
    files = list(ctx.attachments[:MAX_FILES_PER_COMMAND])
    lines: list[str] = []
    if path:
        lines.append(await _add_path(ctx, settings, path))
    elif not files:
        raise InputRejected("Attach a file to /kb add (txt, md, html, pdf or docx).")
    for attachment in files:
        lines.append(await _add_one(ctx, attachment.filename, attachment.read))
    if len(ctx.attachments) > MAX_FILES_PER_COMMAND:
        lines.append(f"Only the first {MAX_FILES_PER_COMMAND} files were read.")
    return "\n".join(lines)


async def _add_path(ctx: CommandContext, settings: KnowledgeSettings, path: str) -> str:
    if ctx.origin.platform != "console":
        raise InputRejected("Adding a file by path works only in the console; attach the file.")
    target = render.allowed_file(path, settings.allowed_paths)

    async def read() -> bytes:
        size = target.stat().st_size
        limit = settings.max_upload_mb * 1024 * 1024
        if size > limit:
            raise InputRejected(
                f"{target.name} is {size / 1048576:.1f} MB; the limit is "
                f"{settings.max_upload_mb:g} MB."
            )
        return await asyncio.to_thread(target.read_bytes)

    return await _add_one(ctx, target.name, read)


async def _add_one(ctx: CommandContext, filename: str, read: render.Reader) -> str:
    """Add one file; a refusal becomes that file's line (the others still go in)."""
    try:
        data = await read()
        added = await _base().add(
            ctx.server_pk,
            filename,
            data,
            added_by=ctx.user_pk,
            added_by_name=ctx.origin.user_name or ctx.origin.user_id,
            screen=partial(ctx.screen, what="upload"),
        )
    except InputRejected as exc:
        return exc.user_message
    return render.added(added)


@plugin.command("kb list", "The documents in this server's knowledge base")
async def kb_list(ctx: CommandContext) -> str:
    """One line per document: name, passages, who added it and when."""
    return render.listing(await _base().library.documents(ctx.server_pk))


@plugin.command(
    "kb remove",
    "Remove a document from the knowledge base",
    Option("source", description="The document's name (see /kb list)", max_length=200, rest=True),
)
async def kb_remove(ctx: CommandContext, source: str) -> str:
    """Remove the named document (admins, or whoever may add documents here)."""
    _may_add(ctx, _settings(ctx.config))
    removed = await _base().remove(ctx.server_pk, source)
    if not removed:
        raise InputRejected(f"No document named {render.quoted(source)}; see /kb list.")
    return f"Removed {render.quoted(source)} from the knowledge base."


@plugin.command(
    "kb search",
    "Search the knowledge base and show the best passages",
    Option("query", description="What to look for", max_length=1000, rest=True),
)
async def kb_search(ctx: CommandContext, query: str) -> str:
    """The best passages with their sources."""
    base = _base()
    if not await base.has_documents(ctx.server_pk):
        return render.EMPTY
    settings = _settings(ctx.config)
    return render.search_results(await base.search(ctx.server_pk, query, settings.results))


@plugin.command("kb clear", "Remove every document from the knowledge base", admin_only=True)
async def kb_clear(ctx: CommandContext) -> str:
    """Empty the server's knowledge base (admins; audit-logged by the core)."""
    removed = await _base().clear(ctx.server_pk)
    return f"Removed {removed} document{'s' if removed != 1 else ''} from the knowledge base."


def _may_add(ctx: CommandContext, settings: KnowledgeSettings) -> None:
    if settings.who_may_add == "admins" and not ctx.origin.is_admin:
        raise PermissionDenied("Only server admins may change the knowledge base here.")


# ---- the agent's tool --------------------------------------------------------------


async def _has_documents(ctx: ToolContext) -> bool:
    return _state.base is not None and await _state.base.has_documents(ctx.server_pk)


@plugin.tool(available=_has_documents)
async def search_knowledge(query: str, ctx: ToolContext) -> ToolResult:
    """Search this server's knowledge base (its rules, FAQs and documents) for passages
    that answer a question. Cite the passages you use by their numbers, like [1].

    Args:
        query: The question or keywords to look for.
    """
    base = _base()
    settings = _settings(ctx.config)
    hits = await base.search(ctx.server_pk, query, settings.results)
    return render.tool_result(hits)
