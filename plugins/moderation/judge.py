"""The LLM judge: a guard prompt in the Llama Guard 3 style, answered as constrained JSON.

The model (the chat model, or a separate GGUF from config) must answer with exactly
``{"verdict": "safe"|"unsafe", "categories": ["S1", ...]}``: a JSON-schema grammar
forces that shape. Anything else — an empty answer, invalid JSON, "unsafe" with no
category, a time-out, a failure — is ``None``: the caller falls back to the previous
layer's verdict, never to "allow everything".
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from plugins.moderation.policy import HAZARDS

log = logging.getLogger(__name__)

MAX_JUDGED_CHARS = 2000  # the judge reads the start of a long text (its context is small)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["safe", "unsafe"]},
        "categories": {
            "type": "array",
            "items": {"type": "string", "enum": list(HAZARDS)},
            "maxItems": 3,
        },
    },
    "required": ["verdict", "categories"],
}

# Sends OpenAI-style messages with a JSON schema; returns the model's text.
Complete = Callable[[list[dict[str, Any]], dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Judgement:
    """The judge's answer: unsafe with its categories, or safe (no categories)."""

    unsafe: bool
    categories: tuple[str, ...] = ()


def guard_prompt(text: str, role: str) -> str:
    """The guard task for ``text`` written by ``role`` ("User" or "Agent")."""
    listed = "\n".join(f"{code}: {name.capitalize()}." for code, name in HAZARDS.items())
    quoted = text[:MAX_JUDGED_CHARS].replace("<END CONVERSATION>", "")
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations "
        "according to our safety policy with the below categories.\n\n"
        f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{listed}\n<END UNSAFE CONTENT CATEGORIES>\n\n"
        f"<BEGIN CONVERSATION>\n\n{role}: {quoted}\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {role} message as JSON: "
        '"verdict" is "safe" or "unsafe"; if unsafe, "categories" lists the violated '
        "categories."
    )


def parse(answer: str) -> Judgement | None:
    """The judgement in ``answer``, or None when it is not a valid one."""
    try:
        data = json.loads(answer)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("verdict") not in ("safe", "unsafe"):
        return None
    raw = data.get("categories")
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        return None
    categories = tuple(dict.fromkeys(c for c in raw if c in HAZARDS))
    if data["verdict"] == "safe":
        return Judgement(False)
    return Judgement(True, categories) if categories else None


class Judge:
    """Asks the model; ``None`` whenever it does not give a valid judgement in time."""

    def __init__(self, complete: Complete, *, timeout_s: float = 20.0) -> None:
        self._complete = complete
        self._timeout_s = timeout_s
        self.calls = 0  # questions asked
        self.invalid = 0  # answers that were not valid judgements (fell back)

    async def judge(self, text: str, role: str = "User") -> Judgement | None:
        """The judgement of ``text``, or None (the caller keeps the previous verdict)."""
        messages = [{"role": "user", "content": guard_prompt(text, role)}]
        self.calls += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._complete(messages, SCHEMA)
        except Exception:
            log.warning("the moderation judge failed", exc_info=True)
            self.invalid += 1
            return None
        judgement = parse(answer)
        if judgement is None:
            self.invalid += 1
            log.warning("the moderation judge gave no valid verdict: %r", answer[:200])
        return judgement
