"""Built-in ``moderation`` plugin: local, layered moderation with a per-server policy.

Nothing leaves the machine. Inbound messages and command text (``/imagine`` prompts
included) pass the layers the server switched on — block/allow lists after
normalisation, the local classifier in micro-batches, and an LLM judge where the
operator configured one — and the server's rule for the verdict's category decides:
allow, warn, alert the moderators, block, delete, time out. Replies are held by a
buffered outbound hook and withheld when they cross the line; uploads other plugins keep
(``/kb add``) pass its content screen. Every decision is logged in its own table;
admins steer it with ``/mod`` (audit-logged by the core). It is off unless enabled
(``[plugins.enabled] moderation = true`` or ``/plugins enable moderation``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from core.adapter import DELETE, TIMEOUT
from core.errors import InputRejected, PermissionDenied, PluginError
from core.events import CommandEvent, Error, Event, MessageEvent, Origin, ReplyPart, Text
from core.plugin import CommandContext, HookContext, Option, Plugin, PluginContext
from plugins.moderation import render, tables
from plugins.moderation.classifier import Classifier, load_predictor
from plugins.moderation.config import ModerationSettings
from plugins.moderation.enforce import ALLOWED, Outcome, enforce
from plugins.moderation.judge import Judge
from plugins.moderation.lists import check_term
from plugins.moderation.moderator import Moderator, Verdict
from plugins.moderation.normalize import fold
from plugins.moderation.policy import ACTIONS, Rule, applies, label, parse_rule
from plugins.moderation.store import ModerationStore

log = logging.getLogger(__name__)

plugin = Plugin(
    "moderation",
    "Local moderation: word lists, a classifier and an optional LLM judge (/mod)",
    version="1.0.0",
    config_model=ModerationSettings,
    enabled_by_default=False,
    # Set-up may load a judge model; an upload's passages are checked in one call.
    call_timeout_s=lambda config: max(60.0, config.judge_timeout_s * 3),
    uses=("database", "llm"),
    migrations="migrations",
    tables=tables.metadata,
)

PRUNE_EVERY_S = 3600.0
OWN_COMMANDS = frozenset({"mod", "plugins"})  # never moderated: the way out stays open


@dataclass(slots=True)
class _State:
    """This load's moderation engine (the module is re-imported on every load)."""

    store: ModerationStore | None = None
    moderator: Moderator | None = None
    judge_model: Any = None  # a separate judge GGUF, closed on unload


_state = _State()


def _store() -> ModerationStore:
    if _state.store is None:
        raise PluginError("moderation", "not set up")
    return _state.store


def _moderator() -> Moderator:
    if _state.moderator is None:
        raise PluginError("moderation", "not set up")
    return _state.moderator


def _settings(config: object) -> ModerationSettings:
    if not isinstance(config, ModerationSettings):
        raise PluginError("moderation", "started without its config")
    return config


# ---- lifecycle ---------------------------------------------------------------------


@plugin.on_setup
async def _setup(ctx: PluginContext) -> None:
    """Load the classifier (and a judge, where configured)."""
    settings = _settings(ctx.config)
    predict = await asyncio.to_thread(load_predictor)
    classifier = Classifier(
        predict, window_s=settings.batch_window_ms / 1000, max_batch=settings.max_batch
    )
    judge = await _judge(ctx, settings)
    _state.store = ModerationStore(ctx.require("database", AsyncEngine))
    _state.moderator = Moderator(classifier, judge)


async def _judge(ctx: PluginContext, settings: ModerationSettings) -> Judge | None:
    """The judge on the chat model, on a GGUF of its own, or none."""
    from agents.toolcall import GrammarToolChatModel

    if not settings.judge:
        return None
    if settings.judge == "main":
        main = ctx.backend("llm")
        if not isinstance(main, GrammarToolChatModel):
            raise PluginError("moderation", "the chat model cannot judge (judge = main)")
        model = main
    else:
        from agents.config import LLMSettings
        from agents.factory import build_chat_model

        llm = LLMSettings(
            model_path=settings.judge, chat_format=settings.judge_chat_format, n_ctx=2048
        )
        built = await asyncio.to_thread(build_chat_model, llm)
        if not isinstance(built, GrammarToolChatModel):
            raise PluginError("moderation", "the judge model cannot give constrained answers")
        model = _state.judge_model = built

    async def complete(messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
        return await model.complete_json(messages, schema, max_tokens=48, fairness_key="moderation")

    return Judge(complete, timeout_s=settings.judge_timeout_s)


@plugin.task
async def _prune(ctx: PluginContext) -> None:
    """Keep the log within its retention and size, hourly."""
    settings = _settings(ctx.config)
    while True:
        try:
            await _store().prune(
                older_than_days=settings.log_retention_days,
                keep_per_server=settings.max_log_rows,
            )
        except Exception:
            log.exception("pruning the moderation log failed")
        await asyncio.sleep(PRUNE_EVERY_S)


@plugin.on_teardown
async def _teardown(ctx: PluginContext) -> None:
    """Stop the classifier's batching; close a judge model of its own."""
    moderator, model = _state.moderator, _state.judge_model
    _state.moderator = _state.store = _state.judge_model = None
    if moderator is not None and moderator.classifier is not None:
        await moderator.classifier.aclose()
    if model is not None and hasattr(model, "close"):
        model.close()


# ---- what comes in, what goes out, what is kept ------------------------------------


async def _moderate(
    ctx: HookContext, text: str, place: str, *, message_id: str = "", may_judge: bool = True
) -> Outcome:
    settings = _settings(ctx.config)
    store = _store()
    rules = await store.server_rules(ctx.server_pk)
    role = "Agent" if place == "reply" else "User"
    verdict = await _moderator().check(
        text, rules, settings, server_pk=ctx.server_pk, role=role, may_judge=may_judge
    )
    if verdict is None:
        return ALLOWED
    return await enforce(
        store, ctx.caller, settings, rules, verdict, place=place, text=text, message_id=message_id
    )


@plugin.inbound(unanswered=True)
async def screen_inbound(ctx: HookContext, event: Event) -> Event | None:
    """Messages and command text: a stopped one is not processed (the user is told).
    Messages the bot does not answer are read too; a "block" there only logs (there was
    nothing to process), while deleting and timing out still say why."""
    if isinstance(event, MessageEvent):
        text, place, message_id = event.text, "message", event.message_id
    elif isinstance(event, CommandEvent) and event.name.lower() not in OWN_COMMANDS:
        text, place, message_id = _command_text(event), "command", ""
    else:
        return event
    outcome = await _moderate(ctx, text, place, message_id=message_id)
    if outcome.stops and (ctx.answered or outcome.action != "block"):
        raise InputRejected(outcome.notice)
    return event


@plugin.outbound(priority=10, buffered=True)
async def screen_outbound(ctx: HookContext, part: ReplyPart) -> ReplyPart | None:
    """The bot's answers, as they grow: one that crosses the line is withheld."""
    if not isinstance(part, Text) or not _settings(ctx.config).check_outbound:
        return part
    if isinstance(ctx.event, CommandEvent) and ctx.event.name.lower() in OWN_COMMANDS:
        return part  # /mod log and /mod check quote what they are about
    outcome = await _moderate(ctx, part.text, "reply", may_judge=False)
    return Error(outcome.notice) if outcome.stops else part


@plugin.screen
async def screen_upload(ctx: HookContext, texts: list[str], what: str) -> str | None:
    """Text another plugin is about to keep (an upload's passages)."""
    settings = _settings(ctx.config)
    if not settings.check_uploads:
        return None
    store, moderator = _store(), _moderator()
    rules = await store.server_rules(ctx.server_pk)
    verdicts = await asyncio.gather(
        *(
            moderator.check(t, rules, settings, server_pk=ctx.server_pk, may_judge=False)
            for t in texts
        )
    )
    found = [(v, t) for v, t in zip(verdicts, texts, strict=True) if v is not None]
    found.sort(key=lambda pair: _severity(pair[0], rules.rules or {}), reverse=True)
    if not found:
        return None
    verdict, text = found[0]
    outcome = await enforce(store, ctx.caller, settings, rules, verdict, place="upload", text=text)
    return outcome.notice if outcome.stops else None


def _severity(verdict: Verdict, rules: Mapping[str, Rule]) -> tuple[int, float]:
    return ACTIONS.index(applies(rules, verdict.category, verdict.score)), verdict.score


def _command_text(event: CommandEvent) -> str:
    """A command's text and its string options (an /imagine prompt and negative prompt)."""
    values = [str(v) for v in event.options.values() if isinstance(v, str)]
    return "\n".join(part for part in (event.text, *values) if part)


# ---- /mod --------------------------------------------------------------------------

plugin.group("mod", "Moderation: policy, lists, log and checks", admin_only=True)

_TERM = Option(
    "term",
    description="A word or phrase; re:PATTERN for a regular expression",
    required=False,
    max_length=200,
    rest=True,
)
_CHANGE = Option("change", description="add, remove or list", choices=("add", "remove", "list"))


@plugin.command(
    "mod policy",
    "Show or set what happens per category",
    Option("category", description="profanity, blocked, S1…S14", required=False, max_length=16),
    Option(
        "threshold", "number", "From this score (0–1)", required=False, min_value=0, max_value=1
    ),
    Option(
        "action",
        description="allow, warn, alert, block, delete or timeout",
        required=False,
        choices=("allow", "warn", "alert", "block", "delete", "timeout"),
    ),
)
async def mod_policy(
    ctx: CommandContext,
    category: str | None = None,
    threshold: float | None = None,
    action: str | None = None,
) -> str:
    """The server's policy; with a category, change its rule."""
    store = _store()
    rules = (await store.server_rules(ctx.server_pk)).rules or {}
    if category is None:
        judge_on = _moderator().judge is not None
        return render.policy(rules, _settings(ctx.config), judge_on)
    key, rule = parse_rule(rules, category, threshold, action)
    await store.set_rule(ctx.server_pk, key, rule)
    return f"{label(key)}: from score {rule.threshold:g} → {rule.action}."


async def _list_command(ctx: CommandContext, which: str, change: str, term: str | None) -> str:
    store = _store()
    if change == "list":
        found = await store.server_rules(ctx.server_pk)
        return render.terms(which, found.block if which == "block" else found.allow)
    if not term:
        raise InputRejected(f"Say what to {change}: /mod {which} {change} WORD (or re:PATTERN).")
    is_regex = term.startswith("re:")
    pattern = term[3:] if is_regex else term
    if change == "remove":
        stored = pattern.strip() if is_regex else fold(pattern)  # words are kept folded
        if not await store.remove_term(ctx.server_pk, which, stored):
            raise InputRejected(f"{render.shown(pattern)} is not on the {which} list.")
        return f"Removed {render.shown(pattern)} from the {which} list."
    checked = check_term(pattern, is_regex)
    await store.add_term(ctx.server_pk, which, checked, ctx.origin.user_name or ctx.origin.user_id)
    return f"Added {render.shown(checked.pattern)} to the {which} list."


@plugin.command("mod block", "Change or show the block list", _CHANGE, _TERM)
async def mod_block(ctx: CommandContext, change: str, term: str | None = None) -> str:
    """Words, phrases and patterns that are always flagged (category ``blocked``)."""
    return await _list_command(ctx, "block", change, term)


@plugin.command("mod allow", "Change or show the allow list", _CHANGE, _TERM)
async def mod_allow(ctx: CommandContext, change: str, term: str | None = None) -> str:
    """Words and phrases never flagged by the lists (a town called Scunthorpe)."""
    return await _list_command(ctx, "allow", change, term)


@plugin.command(
    "mod log",
    "The moderation log, newest first",
    Option("before", "integer", "Entries older than this id", required=False, min_value=1),
)
async def mod_log(ctx: CommandContext, before: int | None = None) -> str:
    """One page of the log."""
    entries = await _store().page(ctx.server_pk, before=before, size=render.PAGE)
    return render.log_page(entries)


@plugin.command(
    "mod check",
    "What moderation would do with a text (nothing is done or logged)",
    Option("text", description="The text to check", max_length=2000, rest=True),
)
async def mod_check(ctx: CommandContext, text: str) -> str:
    """The verdict and the action this server's policy would take."""
    settings = _settings(ctx.config)
    rules = await _store().server_rules(ctx.server_pk)
    verdict = await _moderator().check(text, rules, settings, server_pk=ctx.server_pk)
    action = applies(rules.rules or {}, verdict.category, verdict.score) if verdict else "allow"
    return render.checked(verdict, action)


# ---- the moderators' buttons -------------------------------------------------------


async def _flagged(ctx: CommandContext, arg: str) -> tuple[Origin, str]:
    """The flagged message's place and id, from an alert's button."""
    if not ctx.origin.is_admin:
        raise PermissionDenied("Only server admins may act on moderation alerts.")
    entry = await _store().entry(ctx.server_pk, int(arg)) if arg.isdigit() else None
    if entry is None:
        raise InputRejected("That log entry is gone.")
    where = Origin(
        ctx.origin.platform,
        ctx.origin.server_id,
        entry.channel_id,
        entry.user_id,
        user_name=entry.user_name,
    )
    return where, entry.message_id


@plugin.button("delete")
async def delete_flagged(ctx: CommandContext, arg: str) -> str:
    """Delete the flagged message."""
    where, message_id = await _flagged(ctx, arg)
    if ctx.actions is None or DELETE not in ctx.actions.capabilities or not message_id:
        raise InputRejected("This message cannot be deleted from here.")
    await ctx.actions.delete_message(where, message_id)
    return f"Deleted (by {render.shown(ctx.origin.user_name or ctx.origin.user_id, 40)})."


@plugin.button("timeout")
async def timeout_flagged(ctx: CommandContext, arg: str) -> str:
    """Time out the flagged message's author."""
    where, _ = await _flagged(ctx, arg)
    if ctx.actions is None or TIMEOUT not in ctx.actions.capabilities:
        raise InputRejected("This platform cannot time users out.")
    minutes = _settings(ctx.config).timeout_minutes
    await ctx.actions.timeout_user(where, minutes * 60, "moderation alert")
    return f"Timed out for {minutes} minutes."


@plugin.button("dismiss")
async def dismiss_flagged(ctx: CommandContext, arg: str) -> str:
    """Leave the flagged message be."""
    await _flagged(ctx, arg)
    return "Dismissed."
