"""The engine's queueing policy and context fitting, without a model."""

from __future__ import annotations

from agents.requests import ChatRequest, FairQueue, fit_to_context


def _words(text: str) -> list[int]:
    return [len(word) for word in text.split()]


def _unwords(tokens: list[int]) -> str:
    return " ".join("x" * n for n in tokens)


def test_waiting_requests_are_served_round_robin_across_servers() -> None:
    queue: FairQueue[str] = FairQueue()
    for key, item in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1")]:
        queue.push(key, item)
    queue.push("c", "c2")

    order = [_item(queue.pop()) for _ in range(len(queue))]

    assert order == ["a1", "b1", "c1", "a2", "c2", "a3"]
    assert queue.pop() is None


def test_a_server_arriving_late_is_served_before_the_busy_servers_backlog() -> None:
    queue: FairQueue[str] = FairQueue()
    for item in ["a1", "a2", "a3"]:
        queue.push("a", item)
    assert _item(queue.pop()) == "a1"

    queue.push("b", "b1")

    assert [_item(queue.pop()) for _ in range(3)] == ["a2", "b1", "a3"]


def test_the_server_with_least_in_flight_goes_first_even_if_it_came_last() -> None:
    queue: FairQueue[str] = FairQueue()
    running = {"a": 2, "b": 1, "c": 0}
    for key, item in [("a", "a1"), ("b", "b1"), ("c", "c1"), ("a", "a2")]:
        queue.push(key, item)

    first = queue.pop(running.__getitem__)
    running["c"] += 1

    assert first == ("c", "c1")
    assert queue.pop(running.__getitem__) == ("b", "b1")


def _item(popped: tuple[str, str] | None) -> str | None:
    return None if popped is None else popped[1]


def test_a_prompt_that_fits_is_left_alone_and_max_tokens_clamped() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi there"}], max_tokens=500)

    fitted = fit_to_context(request, 100, _words, _unwords)

    assert fitted.messages == request.messages
    assert 1 <= fitted.max_tokens < 100 - 2


def test_old_turns_are_dropped_but_system_and_latest_turns_kept() -> None:
    old = [{"role": "user", "content": "word " * 30} for _ in range(5)]
    system = {"role": "system", "content": "be brief"}
    latest = {"role": "user", "content": "the question"}
    request = ChatRequest(messages=[system, *old, latest], max_tokens=20)

    fitted = fit_to_context(request, 100, _words, _unwords)

    assert fitted.messages[0] == system
    assert fitted.messages[-1] == latest
    assert len(fitted.messages) < len(request.messages)


def test_one_huge_message_loses_its_middle_and_keeps_both_ends() -> None:
    text = "start " + "middle " * 5000 + "end"
    request = ChatRequest(messages=[{"role": "user", "content": text}], max_tokens=20)

    fitted = fit_to_context(request, 200, _words, _unwords)

    content = fitted.messages[0]["content"]
    assert content.startswith("xxxxx") and content.endswith("xxx")
    assert "[...]" in content
    assert len(_words(content)) + 8 + fitted.max_tokens <= 200
