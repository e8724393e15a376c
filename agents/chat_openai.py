"""``ChatOpenAICompatible``: a LangChain chat model over an OpenAI-compatible HTTP server.

Meant for llama.cpp servers (``llama-server``, ``python -m llama_cpp.server``), one or
several (``base_url`` lists them; each request goes to the least-loaded healthy one, see
``agents.servers``): streamed
``/chat/completions`` over SSE, tool calling native or grammar-constrained through the
server's ``response_format`` ``{"type": "json_object", "schema": ...}`` (the flow lives in
``agents.toolcall``). Transport failures become ``core.errors.ModelError``; this module
must never leak an ``httpx`` exception or log the API key.

``fairness_key`` is accepted like the in-process backend's but only the server orders
requests here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import PrivateAttr, SecretStr

from agents.config import LLMSettings
from agents.servers import ServerPool, split_urls
from agents.toolcall import GrammarToolChatModel
from core.errors import ModelError


class ChatOpenAICompatible(GrammarToolChatModel):
    """Chat through ``{base_url}/chat/completions``.

    Build it with ``ChatOpenAICompatible.from_settings(settings.llm)`` or
    ``ChatOpenAICompatible(base_url=..., model=..., api_key=None, timeout_s=300.0,
    chat_format="gemma", tool_calling="auto", max_tokens=..., temperature=...)``.
    ``chat_format`` is the server's template; it only decides what ``auto`` means.
    """

    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    api_key: SecretStr | None = None
    timeout_s: float = 300.0
    _pool: ServerPool = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """One pool per model: ``base_url`` may list several servers."""
        super().model_post_init(context)
        self._pool = ServerPool(split_urls(self.base_url))

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> ChatOpenAICompatible:
        """The client described by the ``[llm]`` settings."""
        return cls(
            base_url=llm.base_url,
            model=llm.model,
            api_key=llm.api_key,
            timeout_s=llm.request_timeout_s,
            **cls.sampling_from(llm),
        )

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model}

    async def _send_stream(
        self, params: dict[str, Any], fairness_key: str
    ) -> AsyncIterator[dict[str, Any]]:
        async with self._post({**params, "stream": True}) as response:
            try:
                async for line in response.aiter_lines():
                    data = _sse_data(line)
                    if data == "[DONE]":
                        return
                    if data:
                        yield json.loads(data)
            except httpx.HTTPError as exc:
                raise ModelError(f"LLM server failed mid-stream: {exc}") from exc

    async def _send(self, params: dict[str, Any], fairness_key: str) -> dict[str, Any]:
        async with self._post({**params, "stream": False}) as response:
            try:
                body = await response.aread()
            except httpx.HTTPError as exc:
                raise ModelError(f"LLM server failed: {exc}") from exc
        try:
            return dict(json.loads(body))
        except ValueError as exc:
            raise ModelError("LLM server sent invalid JSON") from exc

    @asynccontextmanager
    async def _post(self, params: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST a chat completion to the least-loaded healthy server; yields the response
        once its status is known good. A server that cannot be reached or answers 5xx is
        marked down and the next one is tried, before anything reached the caller."""
        payload = {"model": self.model, **{k: v for k, v in params.items() if v is not None}}
        # One client per request: an AsyncClient is bound to the loop that first used it.
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers()) as client:
            url, response = await self._open(client, payload)
            try:
                yield response
            finally:
                await response.aclose()
                self._pool.end(url)

    async def _open(
        self, client: httpx.AsyncClient, payload: dict[str, Any]
    ) -> tuple[str, httpx.Response]:
        tried: list[str] = []
        while (base := self._pool.pick(tried)) is not None:
            tried.append(base)
            url = base.rstrip("/") + "/chat/completions"
            self._pool.begin(base)
            try:
                request = client.build_request("POST", url, json=payload)
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                self._pool.end(base)
                self._pool.failed(base, repr(exc))
                continue
            if response.status_code < 400:
                self._pool.succeeded(base)
                return base, response
            detail = (await response.aread()).decode(errors="replace")[:300]
            await response.aclose()
            self._pool.end(base)
            if response.status_code < 500:  # the request is wrong: another server agrees
                raise ModelError(f"LLM server {url} answered HTTP {response.status_code}: {detail}")
            self._pool.failed(base, f"HTTP {response.status_code}: {detail}")
        errors = "; ".join(f"{s.url}: {s.last_error}" for s in self._pool.states() if s.last_error)
        raise ModelError(f"cannot reach LLM server {', '.join(tried)} ({errors})")

    @property
    def servers(self) -> ServerPool:
        """The servers this model spreads requests over, with their health."""
        return self._pool

    def _headers(self) -> dict[str, str]:
        if self.api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}


def _sse_data(line: str) -> str:
    """The payload of an SSE ``data:`` line ("" for comments, events and blank lines)."""
    if not line.startswith("data:"):
        return ""
    return line[5:].strip()
