"""What the moderation plugin says: notices, alerts, the log's pages, the policy.

Users' text (excerpts, names, list entries) is shown as data: ``repr`` of a cut-short
copy, so quotes, markup, mentions and control characters reach no renderer as syntax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plugins.moderation.config import ModerationSettings
from plugins.moderation.lists import Term
from plugins.moderation.moderator import Verdict
from plugins.moderation.policy import CATEGORIES, Rule, label, rule_for
from plugins.moderation.store import LogEntry

PAGE = 10


def shown(text: str, limit: int = 80) -> str:
    """User text as data: quoted, escaped, cut to ``limit`` characters."""
    cut = text[:limit]
    return repr(cut) + ("…" if len(text) > limit else "")


def why(verdict: Verdict) -> str:
    """``profanity (score 0.97)`` / ``hate (S10)``."""
    if verdict.layer in ("list", "builtin"):
        return f"{label(verdict.category)}: a listed word"
    if verdict.layer == "judge":
        return label(verdict.category)
    return f"{label(verdict.category)} (score {verdict.score:.2f})"


def warning(verdict: Verdict) -> str:
    """The one line a warned user sees."""
    return f"⚠ Please keep it civil: your message was flagged for {why(verdict)}."


def stopped(verdict: Verdict, done: str, place: str, minutes: int) -> str:
    """The one line a user sees when their message, command, upload or reply is stopped."""
    reason = why(verdict)
    if place == "reply":
        return f"The answer was withheld: it was flagged for {reason}."
    if place == "upload":
        return f"The document was refused: it was flagged for {reason}."
    what = "command" if place == "command" else "message"
    if done == "timeout":
        return f"Your {what} was removed for {reason}, and you are timed out for {minutes} minutes."
    if done == "delete":
        return f"Your {what} was removed: it was flagged for {reason}."
    return f"Your {what} was not processed: it was flagged for {reason}."


def alert(entry: LogEntry, done: str) -> str:
    """The moderators' alert: who, where, what, the verdict and what was done."""
    return (
        f"Moderation: {shown(entry.user_name or entry.user_id, 40)} (id {entry.user_id}) "
        f"in channel {entry.channel_id}, {entry.place}: {shown(entry.excerpt, 200)}\n"
        f"Verdict: {label(entry.category)}, score {entry.score:.2f} ({entry.layer}). "
        f"Action: {done}."
    )


def log_page(entries: Sequence[LogEntry]) -> str:
    """One page of ``/mod log``, newest first, with how to see older entries."""
    if not entries:
        return "The moderation log is empty."
    lines = []
    for entry in entries:
        when = entry.created_at.strftime("%Y-%m-%d %H:%M") if entry.created_at else "?"
        lines.append(
            f"#{entry.id} {when} {shown(entry.user_name or entry.user_id, 30)} "
            f"{entry.place} {entry.layer} {label(entry.category)} {entry.score:.2f} "
            f"→ {entry.action}: {shown(entry.excerpt, 60)}"
        )
    if len(entries) == PAGE:
        lines.append(f"Older: /mod log {entries[-1].id}")
    return "\n".join(lines)


def policy(rules: Mapping[str, Rule], settings: ModerationSettings, judge_on: bool) -> str:
    """The server's rules per category and its layer switches."""
    on = {True: "on", False: "off"}
    judge = on[settings.use_judge] if judge_on else "not configured by the operator"
    lines = [
        f"Layers: lists {on[settings.use_lists]} (built-in list {on[settings.builtin_list]}), "
        f"classifier {on[settings.use_classifier]}, judge {judge}; replies checked "
        f"{on[settings.check_outbound]}, uploads checked {on[settings.check_uploads]}.",
        "Per category (from score → action):",
    ]
    for category in CATEGORIES:
        rule = rule_for(rules, category)
        mark = " (set here)" if category in rules else ""
        lines.append(f"  {label(category)}: {rule.threshold:g} → {rule.action}{mark}")
    lines.append(
        "Change: /mod policy CATEGORY THRESHOLD ACTION; layers: /plugins config moderation"
    )
    return "\n".join(lines)


def terms(which: str, entries: Sequence[Term]) -> str:
    """A server's block or allow list."""
    if not entries:
        return f"The {which} list is empty."
    shown_terms = ", ".join(("re:" if t.is_regex else "") + shown(t.pattern, 60) for t in entries)
    return f"{which.capitalize()} list ({len(entries)}): {shown_terms}"


def checked(verdict: Verdict | None, action: str) -> str:
    """``/mod check``'s answer: the verdict and what the server's policy would do."""
    if verdict is None:
        return "Nothing found: the message would pass."
    found = f" (matched {shown(verdict.detail, 40)})" if verdict.detail else ""
    return (
        f"Verdict: {label(verdict.category)}, score {verdict.score:.2f}, from the "
        f"{verdict.layer} layer{found}. Action here: {action}."
    )
