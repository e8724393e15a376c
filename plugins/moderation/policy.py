"""What a server does about each kind of content: categories, thresholds and actions.

A verdict names a category and a score in [0, 1]; the server's rule for that category
says from which score it applies and what happens. Actions are ordered by severity, and
the strongest applicable one wins. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import InputRejected

ACTIONS = ("allow", "warn", "alert", "block", "delete", "timeout")
"""In order of severity. ``block`` and stronger stop the message (it is not processed)."""
STOPS = frozenset({"block", "delete", "timeout"})

PROFANITY = "profanity"  # the classifier and the built-in list
BLOCKED = "blocked"  # the server's own block list
# The LLM judge's categories, after the Llama Guard 3 hazard taxonomy.
HAZARDS: Mapping[str, str] = {
    "S1": "violent crimes",
    "S2": "non-violent crimes",
    "S3": "sex-related crimes",
    "S4": "child sexual exploitation",
    "S5": "defamation",
    "S6": "specialized advice",
    "S7": "privacy",
    "S8": "intellectual property",
    "S9": "indiscriminate weapons",
    "S10": "hate",
    "S11": "suicide and self-harm",
    "S12": "sexual content",
    "S13": "elections",
    "S14": "code interpreter abuse",
}
CATEGORIES = (PROFANITY, BLOCKED, *HAZARDS)


@dataclass(frozen=True, slots=True)
class Rule:
    """From ``threshold`` on, content of a category gets ``action``."""

    threshold: float
    action: str


# The classifier's threshold was chosen on the labelled set (tests/data/moderation): at
# 0.85 it flags 1 of its 164 fine messages with the lists (0.8: 3); lists and the judge
# score 1.0.
DEFAULT_RULES: Mapping[str, Rule] = {
    PROFANITY: Rule(0.85, "block"),
    BLOCKED: Rule(0.5, "block"),
    **{code: Rule(0.5, "block") for code in HAZARDS},
    "S6": Rule(0.5, "allow"),  # advice and IP questions are a chat bot's daily work
    "S8": Rule(0.5, "allow"),
    "S13": Rule(0.5, "warn"),
}


def label(category: str) -> str:
    """A category as people read it: ``S10`` → ``hate (S10)``."""
    hazard = HAZARDS.get(category)
    return f"{hazard} ({category})" if hazard else category


def rule_for(rules: Mapping[str, Rule], category: str) -> Rule:
    """The server's rule for ``category`` (its own row, else the default)."""
    return rules.get(category) or DEFAULT_RULES.get(category) or Rule(0.5, "block")


def applies(rules: Mapping[str, Rule], category: str, score: float) -> str:
    """The action for a verdict (``allow`` below the threshold)."""
    rule = rule_for(rules, category)
    return rule.action if score >= rule.threshold else "allow"


def stronger(first: str, second: str) -> str:
    """The more severe of two actions."""
    return first if ACTIONS.index(first) >= ACTIONS.index(second) else second


def parse_rule(
    rules: Mapping[str, Rule], category: str, threshold: float | None, action: str | None
) -> tuple[str, Rule]:
    """Validate what an admin typed in ``/mod policy``; what they left out stays as the
    server's current rule (``rules``) has it.

    Raises:
        InputRejected: An unknown category or action, or a threshold outside [0, 1].
    """
    key = category.strip()
    key = key.upper() if key[:1].lower() == "s" and key[1:].isdigit() else key.lower()
    if key not in CATEGORIES:
        known = ", ".join(CATEGORIES)
        raise InputRejected(f"Unknown category {category[:40]!r}; categories: {known}.")
    current = rule_for(rules, key)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputRejected("The threshold is a score between 0 and 1.")
    chosen = (action or current.action).strip().lower()
    if chosen not in ACTIONS:
        raise InputRejected(f"Unknown action {chosen[:40]!r}; actions: {', '.join(ACTIONS)}.")
    return key, Rule(current.threshold if threshold is None else threshold, chosen)
