"""The classifier layer: the real alt-profanity-check model in micro-batches, never
crashing on hostile text, and failing loudly (to its callers) rather than passing all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.moderation.classifier import Classifier, load_predictor

PREDICT = load_predictor()
HOSTILE = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=3000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(HOSTILE, min_size=1, max_size=8))
def test_any_text_gets_a_score_between_0_and_1(texts: list[str]) -> None:
    async def run() -> list[float]:
        return await Classifier(PREDICT).score_many(texts)

    scores = asyncio.run(run())
    assert len(scores) == len(texts) and all(0.0 <= s <= 1.0 for s in scores)


async def test_huge_empty_and_binary_text_are_scored() -> None:
    classifier = Classifier(PREDICT)
    junk = bytes(range(256)).decode("latin-1") * 50
    scores = await classifier.score_many(["", " \n\t", "\x00" * 10, junk, "x" * 2_000_000])
    assert all(0.0 <= s <= 1.0 for s in scores), scores


async def test_it_tells_abuse_from_chat() -> None:
    classifier = Classifier(PREDICT)
    abusive, fine = await classifier.score_many(
        ["you are a fucking idiot", "what time is the meeting tomorrow?"]
    )
    assert abusive > 0.9 and fine < 0.1, (abusive, fine)


async def test_concurrent_checks_go_to_the_model_together() -> None:
    classifier = Classifier(PREDICT, window_s=0.005)
    texts = [f"message number {n}" for n in range(100)]
    scores = await asyncio.gather(*(classifier.score(t) for t in texts))
    assert len(scores) == 100
    assert classifier.calls <= 2, classifier.calls


async def test_a_failing_model_fails_its_callers_and_the_next_batch_works() -> None:
    outcomes = iter([RuntimeError("broken"), None])

    def predict(texts: list[str]) -> Sequence[float]:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return [0.25] * len(texts)

    classifier = Classifier(predict)
    with pytest.raises(RuntimeError, match="broken"):
        await classifier.score("hello")
    assert await classifier.score("hello again") == 0.25


def test_the_fast_path_gives_the_librarys_own_numbers() -> None:
    from profanity_check import predict_prob

    from plugins.moderation.evaluate import load
    from tests.moderation.test_labelled_set import SET

    texts = [item.text for item in load(SET)]
    assert list(PREDICT(texts)) == pytest.approx(list(predict_prob(texts)), abs=1e-12)
