"""Several llama.cpp servers behind one chat model: the least loaded answers, a dead one
is left out. The pool's rules on a fake clock, then two real ``llama_cpp.server``
processes on loopback, one killed mid-test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.chat_openai import ChatOpenAICompatible
from agents.config import LLMSettings
from agents.servers import ServerPool, split_urls
from tests.agents.test_chat_openai import _free_port, _wait_until_up

pytestmark = pytest.mark.timeout(300)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_go_to_the_server_with_the_fewest_in_flight() -> None:
    pool = ServerPool(["http://a", "http://b", "http://c"], clock=Clock())

    picks = []
    for _ in range(6):
        url = pool.pick()
        assert url is not None
        pool.begin(url)
        picks.append(url)

    assert sorted(picks) == ["http://a", "http://a", "http://b", "http://b", "http://c", "http://c"]
    pool.end("http://b")
    assert pool.pick() == "http://b"


def test_a_failing_server_is_left_out_for_a_doubling_while_then_tried_again() -> None:
    clock = Clock()
    pool = ServerPool(["http://a", "http://b"], backoff_s=1.0, max_backoff_s=4.0, clock=clock)

    pool.failed("http://a", "refused")
    assert [pool.pick() for _ in range(3)] == ["http://b"] * 3
    clock.now += 1.01
    assert pool.pick(exclude=["http://b"]) == "http://a"  # its time is up: tried again
    pool.failed("http://a", "refused")  # second failure in a row: two seconds out
    clock.now += 1.5
    assert pool.pick() == "http://b"
    clock.now += 1.0
    pool.succeeded("http://a")
    assert pool.pick(exclude=["http://b"]) == "http://a"
    assert [s.failures for s in pool.states()] == [0, 0]


def test_when_every_server_is_down_the_first_to_come_back_is_tried() -> None:
    clock = Clock()
    pool = ServerPool(["http://a", "http://b"], clock=clock)
    pool.failed("http://a", "x")
    pool.failed("http://a", "x")
    pool.failed("http://b", "x")

    assert pool.pick() == "http://b"
    assert pool.pick(exclude=["http://a", "http://b"]) is None


def test_base_url_lists_servers_and_refuses_what_is_not_a_url() -> None:
    llm = LLMSettings(base_url="http://a:8080/v1, http://b:8080/v1")

    assert split_urls(llm.base_url) == ["http://a:8080/v1", "http://b:8080/v1"]
    with pytest.raises(ValidationError, match="not an http"):
        LLMSettings(base_url="http://a:8080/v1, ftp://b")
    with pytest.raises(ValidationError, match="at least one"):
        LLMSettings(base_url=" , ")


def _start(model_path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path)]
    args += ["--chat_format", "gemma", "--n_ctx", "512", "--n_threads", "1"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def two_servers(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    logs = tmp_path_factory.mktemp("two_servers")
    servers = [_start(model_path, logs / f"{i}.log") for i in range(2)]
    try:
        for (proc, url), i in zip(servers, range(2), strict=True):
            _wait_until_up(url, proc, logs / f"{i}.log")
        yield servers
    finally:
        for proc, _ in servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.mark.model
async def test_two_servers_share_the_load_and_a_killed_one_moves_requests_over(
    two_servers: list[tuple[subprocess.Popen[bytes], str]],
) -> None:
    (first, first_url), (_, second_url) = two_servers
    client = ChatOpenAICompatible(
        base_url=f"{first_url}, {second_url}", max_tokens=4, temperature=0.0, timeout_s=60
    )

    together = await asyncio.gather(*(client.ainvoke(f"Say {n}.") for n in range(4)))
    served = {s.url: s.served for s in client.servers.states()}
    first.kill()
    first.wait()
    after = [await client.ainvoke(f"Say {n} again.") for n in range(3)]

    assert all(isinstance(reply.content, str) for reply in [*together, *after])
    assert served == {first_url: 2, second_url: 2}  # least loaded: two each
    states = {s.url: s for s in client.servers.states()}
    assert states[second_url].served == 2 + 3
    assert states[first_url].failures >= 1 and states[first_url].last_error
