"""Quality of the layers over a labelled set: precision, recall, false-positive rate.

A labelled set is JSON lines ``{"text", "group", "abusive"}`` with groups ``fine``,
``tricky_fine``, ``abusive`` and ``obfuscated`` (``tests/data/moderation``). A message
counts as flagged when the default policy would stop it. Used by the tests (the targets)
and by ``bench/moderation.py`` (the numbers in the notes); nothing here writes anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from plugins.moderation.config import ModerationSettings
from plugins.moderation.moderator import Moderator
from plugins.moderation.policy import DEFAULT_RULES, STOPS, applies
from plugins.moderation.store import ServerRules

LAYERS = {
    "lists": {"use_lists": True, "use_classifier": False, "use_judge": False},
    "classifier": {"use_lists": False, "use_classifier": True, "use_judge": False},
    "combined": {"use_lists": True, "use_classifier": True, "use_judge": False},
}


@dataclass(frozen=True, slots=True)
class Labelled:
    """One message of the set."""

    text: str
    group: str
    abusive: bool


def load(path: Path) -> list[Labelled]:
    """The labelled set in ``path`` (JSON lines)."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            data = json.loads(line)
            items.append(Labelled(str(data["text"]), str(data["group"]), bool(data["abusive"])))
    return items


async def flags(
    moderator: Moderator, items: Sequence[Labelled], settings: ModerationSettings
) -> list[bool]:
    """Whether the default policy stops each message, with ``settings``' layers."""

    async def one(item: Labelled) -> bool:
        verdict = await moderator.check(item.text, ServerRules(), settings, server_pk=0)
        return verdict is not None and (
            applies(DEFAULT_RULES, verdict.category, verdict.score) in STOPS
        )

    return list(await asyncio.gather(*(one(item) for item in items)))


def metrics(items: Sequence[Labelled], flagged: Sequence[bool]) -> dict[str, float]:
    """Precision, recall (all abuse and obfuscated abuse) and false-positive rates."""
    pairs = list(zip(items, flagged, strict=True))
    true_pos = sum(1 for item, hit in pairs if hit and item.abusive)
    false_pos = sum(1 for item, hit in pairs if hit and not item.abusive)
    abusive = sum(1 for item in items if item.abusive)
    fine = sum(1 for item in items if not item.abusive)

    def rate(group: str) -> float:
        members = [hit for item, hit in pairs if item.group == group]
        return round(sum(members) / len(members), 4) if members else 0.0

    return {
        "precision": round(true_pos / (true_pos + false_pos), 4) if true_pos + false_pos else 1.0,
        "recall": round(true_pos / abusive, 4) if abusive else 0.0,
        "recall_obfuscated": rate("obfuscated"),
        "recall_plain": rate("abusive"),
        "fpr": round(false_pos / fine, 4) if fine else 0.0,
        "fpr_tricky": rate("tricky_fine"),
    }


async def evaluate(
    moderator: Moderator, items: Sequence[Labelled], base: ModerationSettings
) -> dict[str, dict[str, float]]:
    """The metrics of each layer alone and of the layers together."""
    results = {}
    for name, switches in LAYERS.items():
        settings = base.model_copy(update=switches)
        results[name] = metrics(items, await flags(moderator, items, settings))
    return results
