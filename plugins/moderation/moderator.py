"""The layers, cheapest first: block/allow lists, the classifier, the LLM judge.

Each layer is switched per server. A list hit is a confident verdict and ends the check;
a classifier score at or over ``CONFIDENT`` too. Otherwise the judge (where the operator
configured one and the server uses it) has the last word: "unsafe" gives its category,
"safe" clears the text, and no valid answer keeps the classifier's verdict. This module
decides nothing about actions (``policy``) and does no platform I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from plugins.moderation.classifier import Classifier
from plugins.moderation.config import ModerationSettings
from plugins.moderation.judge import Judge
from plugins.moderation.lists import Term, TermLists, default_terms
from plugins.moderation.normalize import fold, for_classifier
from plugins.moderation.policy import BLOCKED, PROFANITY
from plugins.moderation.store import ServerRules

CONFIDENT = 0.9  # a classifier score from which the judge is not asked
MAX_COMPILED = 1024  # servers whose compiled lists are kept


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a layer found: its category and a score in [0, 1]."""

    layer: str  # "list", "builtin", "classifier", "judge"
    category: str
    score: float
    detail: str = ""  # the list entry that matched


class Moderator:
    """Runs the layers a server switched on over one text."""

    def __init__(self, classifier: Classifier | None, judge: Judge | None) -> None:
        self.classifier = classifier
        self.judge = judge
        self._builtin = default_terms()
        self._builtin_allow = default_terms("allow_en.txt")
        self._compiled: OrderedDict[tuple[int, int], tuple[TermLists, TermLists]] = OrderedDict()

    async def check(
        self,
        text: str,
        rules: ServerRules,
        settings: ModerationSettings,
        *,
        server_pk: int,
        role: str = "User",
        may_judge: bool = True,
    ) -> Verdict | None:
        """The verdict on ``text`` (None: nothing found)."""
        if not text.strip():
            return None
        if settings.use_lists:
            found = self._listed(text, rules, settings, server_pk)
            if found is not None:
                return found
        earlier: Verdict | None = None
        if settings.use_classifier and self.classifier is not None:
            own, builtin = self._lists(rules, server_pk)
            score = await self._score(text, builtin if settings.builtin_list else own)
            earlier = Verdict("classifier", PROFANITY, round(score, 3))
            if score >= CONFIDENT:
                return earlier
        if may_judge and settings.use_judge and self.judge is not None:
            judgement = await self.judge.judge(text, role)
            if judgement is not None:
                if not judgement.unsafe:
                    return None
                return Verdict(
                    "judge", judgement.categories[0], 1.0, ",".join(judgement.categories)
                )
        return earlier

    def _listed(
        self, text: str, rules: ServerRules, settings: ModerationSettings, server_pk: int
    ) -> Verdict | None:
        own, builtin = self._lists(rules, server_pk)
        hit = own.match(text)
        if hit is not None:
            return Verdict("list", BLOCKED, 1.0, hit.term.pattern)
        if settings.builtin_list:
            hit = builtin.match(text)
            if hit is not None:
                return Verdict("builtin", PROFANITY, 1.0, hit.term.pattern)
        return None

    def _lists(self, rules: ServerRules, server_pk: int) -> tuple[TermLists, TermLists]:
        """The server's compiled lists (compiled again when its rows change)."""
        key = (server_pk, hash((rules.block, rules.allow)))
        found = self._compiled.get(key)
        if found is None:
            for stale in [k for k in self._compiled if k[0] == server_pk]:
                del self._compiled[stale]
            allow: tuple[Term, ...] = rules.allow
            found = (
                TermLists(rules.block, allow),
                TermLists(self._builtin, allow + self._builtin_allow),
            )
            self._compiled[key] = found
            while len(self._compiled) > MAX_COMPILED:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return found

    async def _score(self, text: str, lists: TermLists) -> float:
        """The classifier's score of the text as written and as normalised (the higher),
        allow-listed phrases taken out."""
        assert self.classifier is not None
        forms = [lists.without_allowed(form) for form in (fold(text), for_classifier(text))]
        return max(await self.classifier.score_many(list(dict.fromkeys(forms))))
