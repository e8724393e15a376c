"""Stories of moderation in a server: abusive and obfuscated messages get the server's
action and a log entry, tricky-but-fine ones pass, admins steer it with /mod, and a
server that disables the plugin sees none of it."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.app import App
from core.events import ButtonEvent, Buttons, CommandEvent
from tests.core.conftest import origin
from tests.moderation.conftest import Recorder, admin, send, shown

pytestmark = pytest.mark.asyncio(loop_scope="module")

BLOCKED = "error: Your message was not processed: it was flagged for profanity"


async def test_an_abusive_message_is_not_processed_and_is_logged(app: App) -> None:
    reply = shown(await send(app, "you are a fucking idiot", server="plain"))
    assert reply.startswith(BLOCKED), reply
    log = await admin(app, "/mod log", server="plain")
    assert "'member' message builtin profanity 1.00 → block" in log, log
    assert "'you are a fucking idiot'" in log, log


async def test_obfuscated_abuse_is_caught_too(app: App) -> None:
    for text in ("f u c k you", "ｆｕｃｋ you", "f\u200buck off", "fμck you", "sh1t head"):
        reply = shown(await send(app, text, server="obfuscated"))
        assert reply.startswith(BLOCKED), (text, reply)
    log = await admin(app, "/mod log", server="obfuscated")
    assert log.count("→ block") == 5, log


async def test_tricky_but_fine_messages_pass(app: App) -> None:
    for text in ("kill the process", "Scunthorpe United won 2-1", "this pic is sick"):
        assert shown(await send(app, text, server="tricky")) == "ok", text
    assert await admin(app, "/mod log", server="tricky") == "The moderation log is empty."


async def test_delete_and_timeout_go_through_the_platform_and_alert_the_moderators(
    app: App,
) -> None:
    done = await admin(app, "/mod policy profanity 0.8 timeout", server="strict")
    assert done == "profanity: from score 0.8 → timeout.", done
    setting = await admin(app, "/plugins config moderation alert_channel mods", server="strict")
    assert "alert_channel is now 'mods'" in setting, setting
    actions = Recorder()
    reply = shown(
        await send(app, "go fuck yourself", server="strict", actions=actions, message_id="77")
    )
    assert reply.startswith("error: Your message was removed for profanity"), reply
    assert "timed out for 10 minutes" in reply, reply
    assert actions.calls[:2] == [("delete", "c1", "77"), ("timeout", "member", 600)]
    kind, channel, alert = actions.calls[2]
    assert (kind, channel) == ("post", "mods") and "'go fuck yourself'" in alert, alert
    [buttons] = [p for p in actions.posted if isinstance(p, Buttons)]
    assert [b.label for b in buttons.buttons] == ["Dismiss"]  # both already done


async def test_a_moderator_acts_on_an_alert_with_its_buttons(app: App) -> None:
    await admin(app, "/mod policy profanity 0.8 alert", server="alerts")
    await admin(app, "/plugins config moderation alert_channel mods", server="alerts")
    actions = Recorder()
    reply = shown(await send(app, "shut up bitch", server="alerts", actions=actions))
    assert reply == "ok", reply  # alert: the message goes on, the moderators decide
    [buttons] = [p for p in actions.posted if isinstance(p, Buttons)]
    labels = {b.label: b.custom_id for b in buttons.buttons}
    assert list(labels) == ["Time out", "Delete message", "Dismiss"], labels
    boss = origin(server="alerts", user="boss", admin=True, channel="mods")
    pressed = ButtonEvent(boss, labels["Time out"])
    parts = [p async for p in app.router.handle(pressed, actions=actions)]
    assert shown(parts) == "Timed out for 10 minutes.", parts
    assert actions.calls[-1] == ("timeout", "member", 600)
    member = ButtonEvent(origin(server="alerts", user="member"), labels["Delete message"])
    refused = shown([p async for p in app.router.handle(member, actions=actions)])
    assert refused == "error: Only server admins may act on moderation alerts.", refused


async def test_command_text_and_imagine_prompts_are_checked(app: App) -> None:
    who = origin(server="commands", user="member")
    event = CommandEvent(who, "imagine", options={"prompt": "a cat", "negative_prompt": "cunt"})
    reply = shown([p async for p in app.router.handle(event)])
    assert reply.startswith("error: Your command was not processed"), reply
    fine = shown(await send(app, "/kb search how do I kill the process", server="commands"))
    assert "not processed" not in fine, fine


async def test_disabling_the_plugin_stops_all_of_it_there_and_nowhere_else(app: App) -> None:
    disabled = await admin(app, "/plugins disable moderation", server="off")
    assert disabled == "Plugin moderation is now disabled in this server.", disabled
    assert shown(await send(app, "fuck you", server="off")) == "ok"
    assert shown(await send(app, "fuck you", server="on")).startswith(BLOCKED)
    assert shown(await send(app, "/mod log", server="off", admin=True)).startswith(
        "error: /mod belongs to the moderation plugin, which is disabled"
    )


async def test_a_server_block_list_with_words_and_patterns(app: App) -> None:
    added = await admin(app, "/mod block add pineapple pizza", server="lists")
    assert added == "Added 'pineapple pizza' to the block list.", added
    # Text commands read a line like a shell: quotes keep a pattern's backslashes.
    pattern = await admin(app, "/mod block add 're:\\bban+ana\\b'", server="lists")
    assert pattern == "Added '\\\\bban+ana\\\\b' to the block list.", pattern
    blocked = shown(await send(app, "I love PINEAPPLE   pizza", server="lists"))
    assert blocked.startswith("error: Your message was not processed: it was flagged for blocked")
    assert shown(await send(app, "bannnana", server="lists")).startswith("error: Your message")
    listing = await admin(app, "/mod block list", server="lists")
    assert listing == "Block list (2): 'pineapple pizza', re:'\\\\bban+ana\\\\b'", listing
    assert shown(await send(app, "pineapple on its own", server="lists")) == "ok"
    await admin(app, "/mod allow add pineapple pizza", server="lists")
    assert shown(await send(app, "pineapple pizza", server="lists")) == "ok"
    removed = await admin(app, "/mod block remove PineApple  PIZZA", server="lists")
    assert removed == "Removed 'PineApple PIZZA' from the block list.", removed
    bad = await admin(app, "/mod block add re:(unclosed", server="lists")
    assert bad.startswith("error: "), bad


async def test_a_catastrophic_admin_pattern_cannot_stall_the_bot(app: App) -> None:
    await admin(app, "/mod block add re:(a|aa)+$", server="redos")
    started = time.monotonic()
    reply = shown(await send(app, "a" * 60 + "!", server="redos"))
    assert time.monotonic() - started < 2.0
    assert reply == "ok", reply


async def test_exempt_users_pass_but_are_still_logged_and_audited(app: App) -> None:
    await admin(app, "/plugins config moderation exempt_users boss,carol", server="exempt")
    reply = await admin(app, "fuck this", server="exempt")
    assert reply == "ok", reply
    log = await admin(app, "/mod log", server="exempt")
    assert "→ exempt" in log, log
    pk = (await app.services.storage.identify(origin(server="exempt"))).server_pk
    actions = [entry.action for entry in await app.services.storage.audit_entries(pk)]
    assert "/mod log" in actions and "/plugins config" in actions, actions


async def test_mod_check_says_what_would_happen_without_acting(app: App) -> None:
    said = await admin(app, "/mod check f.u.c.k off", server="check")
    assert said.startswith("Verdict: profanity, score 1.00, from the builtin layer"), said
    assert said.endswith("Action here: block."), said
    fine = await admin(app, "/mod check lovely weather", server="check")
    assert fine.startswith("Verdict: profanity, score 0.0"), fine
    assert fine.endswith("from the classifier layer. Action here: allow."), fine
    assert await admin(app, "/mod log", server="check") == "The moderation log is empty."
    member = shown(await send(app, "/mod check hi", server="check"))
    assert member == "error: Only server admins may use /mod check.", member


async def test_the_policy_is_shown_and_bad_settings_are_refused(app: App) -> None:
    shown_policy = await admin(app, "/mod policy", server="policy")
    assert "profanity: 0.85 → block" in shown_policy and "hate (S10): 0.5 → block" in shown_policy
    assert await admin(app, "/mod policy S10 0.7", server="policy") == (
        "hate (S10): from score 0.7 → block."
    )
    wrong = await admin(app, "/mod policy gossip 0.5 block", server="policy")
    assert wrong.startswith("error: Unknown category 'gossip'"), wrong
    too_high = await admin(app, "/mod policy profanity 7 block", server="policy")
    assert too_high.startswith("error: "), too_high


async def test_the_log_pages_through_older_entries(app: App) -> None:
    for n in range(12):
        await send(app, f"fuck off number {n}", server="pages", message_id=str(n))
    first = await admin(app, "/mod log", server="pages")
    assert first.count("→ block") == 10 and "number 11" in first, first
    older = first.splitlines()[-1]
    assert older.startswith("Older: /mod log "), older
    second = await admin(app, older[len("Older: ") :], server="pages")
    assert second.count("→ block") == 2 and "number 0" in second, second


async def test_many_messages_at_once_share_classifier_batches(app: App) -> None:
    from plugins.moderation import _state

    assert _state.moderator is not None and _state.moderator.classifier is not None
    classifier = _state.moderator.classifier
    before = classifier.calls
    texts = [f"a perfectly normal message number {n} about gardening" for n in range(40)]
    replies = await asyncio.gather(
        *(send(app, t, server="batch", user=f"u{n}") for n, t in enumerate(texts))
    )
    assert all(shown(r) == "ok" for r in replies)
    # 40 messages and their 40 replies are 80 checks: far fewer model calls than that.
    assert classifier.calls - before < len(texts)


async def test_an_abusive_upload_is_refused_and_logged(app: App) -> None:
    from tests.knowledge.conftest import attachment

    rules = attachment(
        "rules.md", b"# Rules\n\nBe kind.\n\nAnyone who disagrees is a fucking moron.\n"
    )
    event = CommandEvent(
        origin(server="uploads", user="boss", admin=True), "kb", "add", attachments=(rules,)
    )
    reply = shown([p async for p in app.router.handle(event)])
    assert reply == "The document was refused: it was flagged for profanity: a listed word.", reply
    log = await admin(app, "/mod log", server="uploads")
    assert " upload builtin profanity 1.00 → block" in log, log
    listing = await admin(app, "/kb list", server="uploads")
    assert "rules.md" not in listing, listing
