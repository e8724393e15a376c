"""Continuous batching with the bundled SmolLM2: many chats in one batch, answered right.

Each story runs real requests through ``LlamaEngine`` (chat handler, scheduler, one
``llama_decode`` per step) and compares with what plain llama-cpp-python answers alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from agents.engine import LlamaEngine
from agents.factory import bundled_model_path
from agents.requests import ChatRequest
from tests.agents.conftest import N_CTX, load_engine

pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]

PARALLEL = 4
QUESTIONS = [
    "Write one sentence about the sea.",
    "Name three colours.",
    "What is 2+2?",
    "Say hello in French.",
    "What is the capital of Italy?",
    "Give me a tip for sleeping well.",
    "Describe a cat in five words.",
    "Why is the sky blue?",
]


@pytest.fixture(scope="module")
def smol() -> Path:
    return bundled_model_path()


@pytest.fixture(scope="module")
def engine(smol: Path) -> Iterator[LlamaEngine]:
    loaded = load_engine(smol, parallel=PARALLEL, chat_format="chatml")
    yield loaded
    loaded.close()


def _ask(text: str, *, max_tokens: int = 48, key: str = "s1", **extra: Any) -> ChatRequest:
    messages = extra.pop("messages", None) or [{"role": "user", "content": text}]
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=extra.pop("temperature", 0.0),
        seed=0,
        fairness_key=key,
        **extra,
    )


def _content(response: dict[str, Any]) -> str:
    return str(response["choices"][0]["message"]["content"] or "")


def _alone(model: Path, questions: list[str], max_tokens: int) -> list[str]:
    """What llama-cpp-python answers to each question on its own (greedy)."""
    llama = llama_cpp.Llama(
        str(model), n_ctx=N_CTX, n_threads=2, chat_format="chatml", verbose=False
    )
    try:
        answers = []
        for question in questions:
            llama.reset()
            response = llama.create_chat_completion(
                messages=[{"role": "user", "content": question}],
                max_tokens=max_tokens,
                temperature=0.0,
                seed=0,
            )
            answers.append(_content(response))  # type: ignore[arg-type]
        return answers
    finally:
        llama.close()


def _same_tokens(engine: LlamaEngine, a: str, b: str) -> int:
    ta = engine.llama.tokenize(a.encode(), add_bos=False)
    tb = engine.llama.tokenize(b.encode(), add_bos=False)
    same = (i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y)
    return next(same, min(len(ta), len(tb)))


async def test_eight_chats_at_once_answer_what_each_would_alone(
    engine: LlamaEngine, smol: Path
) -> None:
    alone = await asyncio.to_thread(_alone, smol, QUESTIONS, 48)

    together = await asyncio.gather(*(engine.complete_chat(_ask(q)) for q in QUESTIONS))

    answers = [_content(r) for r in together]
    # Batched matrix kernels add in another order than one-row ones, so a near-tie can
    # flip late in an answer (seen once in 8 at parallel 8, never at 4): bounded here.
    identical = sum(a == b for a, b in zip(alone, answers, strict=True))
    assert identical >= len(QUESTIONS) - 1, list(zip(alone, answers, strict=True))
    for a, b in zip(alone, answers, strict=True):
        assert a == b or _same_tokens(engine, a, b) >= 8, (a, b)
    assert all(r["usage"]["completion_tokens"] > 0 for r in together)


async def test_a_grammar_slot_beside_free_slots_always_yields_valid_json(
    engine: LlamaEngine,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "enum": ["yes", "no"]},
            "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        },
        "required": ["answer", "confidence"],
    }
    free = [_ask(q, temperature=0.9, max_tokens=64) for q in QUESTIONS[:3]]
    constrained = [
        _ask(
            f"Is {thing} a fruit? Reply in JSON.",
            max_tokens=128,
            response_format={"type": "json_object", "schema": schema},
            temperature=0.8,
        )
        for thing in ("an apple", "a chair", "a banana")
    ]

    results = await asyncio.gather(*(engine.complete_chat(r) for r in [*free, *constrained]))

    for response in results[3:]:
        document = json.loads(_content(response))
        assert document["answer"] in ("yes", "no")
        assert document["confidence"] in ("low", "medium", "high")
    assert all(_content(r) for r in results[:3])


async def test_cancelling_one_chat_mid_answer_leaves_the_others_unchanged(
    engine: LlamaEngine,
) -> None:
    others = [_ask(q, max_tokens=40) for q in QUESTIONS[:3]]
    baseline = await asyncio.gather(*(engine.complete_chat(r) for r in others))

    async def abandoned() -> int:
        stream = engine.stream_chat(_ask("Count from one to two hundred.", max_tokens=300))
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.aclose()
        return seen

    *again, seen = await asyncio.gather(*(engine.complete_chat(r) for r in others), abandoned())

    assert seen == 3
    assert [_content(r) for r in again] == [_content(r) for r in baseline]
    assert engine.stats.cancelled >= 1


async def test_a_burst_of_fifty_requests_all_complete_in_fair_order(
    engine: LlamaEngine,
) -> None:
    finished: list[str] = []

    async def ask(key: str, n: int) -> str:
        response = await engine.complete_chat(_ask(f"Say the number {n}.", max_tokens=3, key=key))
        finished.append(key)
        return _content(response)

    busy = [asyncio.create_task(ask("busy", n)) for n in range(40)]
    await asyncio.sleep(0)  # the busy server's backlog is queued first
    quiet = [asyncio.create_task(ask("quiet", n)) for n in range(10)]

    answers = await asyncio.gather(*busy, *quiet)

    assert len(answers) == 50
    assert all(isinstance(a, str) for a in answers)
    # Round-robin: after what was already in flight, the quiet server gets every other
    # turn, so its ten requests are done long before the busy server's forty.
    last_quiet = max(i for i, key in enumerate(finished) if key == "quiet")
    assert last_quiet < 2 * PARALLEL + 2 * 10 + PARALLEL, finished


async def test_the_next_turn_of_a_conversation_reuses_its_cached_prompt(
    engine: LlamaEngine,
) -> None:
    history = [
        {"role": "system", "content": "You are a helpful assistant. " * 40},
        {"role": "user", "content": "Tell me about rivers."},
    ]
    first = await engine.complete_chat(_ask("", messages=history))
    await asyncio.gather(*(engine.complete_chat(_ask(q, max_tokens=8)) for q in QUESTIONS[:3]))
    history += [
        {"role": "assistant", "content": _content(first)},
        {"role": "user", "content": "And lakes?"},
    ]

    second = await engine.complete_chat(_ask("", messages=history))

    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= first["usage"]["prompt_tokens"]
    assert cached < second["usage"]["prompt_tokens"]
    assert _content(second)


async def test_a_new_conversation_copies_the_system_prompt_a_busy_slot_holds(
    engine: LlamaEngine,
) -> None:
    system = {"role": "system", "content": "You are a helpful assistant. " * 40}

    def chat(question: str, max_tokens: int) -> ChatRequest:
        return _ask(
            "", max_tokens=max_tokens, messages=[system, {"role": "user", "content": question}]
        )

    engine.forget_prefixes()
    await engine.complete_chat(chat("Tell me about rivers.", 8))
    copies = engine.scheduler_stats.prefix_copies
    # That slot is busy with a long answer when the new conversation arrives: it lands
    # on an empty slot and takes the system prompt from the busy one.
    busy = engine.stream_chat(chat("Tell me about mountains.", 400))
    await anext(busy)
    try:
        copied = await engine.complete_chat(chat("Name three colours.", 24))
    finally:
        await busy.aclose()
    assert engine.scheduler_stats.prefix_copies == copies + 1

    # The same split point without a copy: the slot that read the system prompt itself.
    engine.forget_prefixes()
    await engine.complete_chat(chat("Tell me about rivers.", 8))
    reused = await engine.complete_chat(chat("Name three colours.", 24))

    cached = copied["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached == reused["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached >= engine.count_tokens(system["content"])
    assert _content(copied) == _content(reused)  # the copied cache holds the right numbers


async def test_forgetting_reaches_a_slot_that_was_busy_at_the_time(engine: LlamaEngine) -> None:
    question = [
        {"role": "system", "content": "You are a helpful assistant. " * 40},
        {"role": "user", "content": "Tell me about mountains."},
    ]
    busy = engine.stream_chat(_ask("", max_tokens=400, messages=question))
    await anext(busy)

    engine.forget_prefixes()
    await busy.aclose()
    again = await engine.complete_chat(_ask("", max_tokens=4, messages=question))

    # Neither its own slot nor a copy of it: the whole prompt is evaluated again.
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_a_prompt_far_beyond_the_window_is_fitted_while_others_answer(
    engine: LlamaEngine,
) -> None:
    huge = _ask("tell me more " * 3000, max_tokens=16)

    results = await asyncio.gather(
        engine.complete_chat(huge), *(engine.complete_chat(_ask(q)) for q in QUESTIONS[:3])
    )

    usage = results[0]["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= N_CTX
    assert all(_content(r) for r in results[1:])


async def test_a_lazy_grammar_binds_only_a_reply_that_starts_as_it_says(
    engine: LlamaEngine,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tool": {"const": "calculate"},
            "arguments": {
                "type": "object",
                "properties": {"expression": {"enum": ["1+1", "2+2"]}},
                "required": ["expression"],
                "additionalProperties": False,
            },
        },
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    question = "Tell me about the moon."
    engine.forget_prefixes()  # each evaluates the whole prompt: same numbers, same answer
    free = _content(await engine.complete_chat(_ask(question)))
    first = free.lstrip()[0]
    other = "{" if first != "{" else "~"

    # One at a time, as the free answer was (batched kernels may flip a late near-tie).
    engine.forget_prefixes()
    untouched = await engine.complete_chat(_ask(question, grammar=grammar, grammar_starts=other))
    bound = await engine.complete_chat(
        _ask(question, max_tokens=96, grammar=grammar, grammar_starts=first)
    )

    # Not its start: the free answer, untouched. Its start: the token is taken back and
    # the reply follows the grammar from there, whatever the model wanted to write.
    assert _content(untouched) == free
    call = json.loads(_content(bound))
    assert call["tool"] == "calculate"
    assert call["arguments"]["expression"] in ("1+1", "2+2")
