"""``ChatLlamaCpp``: a LangChain chat model over the in-process ``LlamaEngine``.

Tool calling, message conversion and streaming are shared with the OpenAI backend
(``agents.toolcall``); this module only turns a request into an engine ``ChatRequest``
(JSON-schema constraints become ``LlamaGrammar`` objects). It must never call llama
itself: every model call goes through the engine's queue.

Per-call fairness: ``await model.ainvoke(msgs, fairness_key=server_id)`` (or
``model.bind(fairness_key=server_id)``, or ``config={"metadata": {"fairness_key": ...}}``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

import llama_cpp
from pydantic import ConfigDict

from agents.engine import LlamaEngine
from agents.requests import ChatRequest
from agents.toolcall import GrammarToolChatModel

log = logging.getLogger(__name__)


class ChatLlamaCpp(GrammarToolChatModel):
    """Chat with a GGUF model loaded in this process.

    Build it as ``ChatLlamaCpp(engine=LlamaEngine.load(...), chat_format="gemma",
    max_tokens=..., temperature=..., top_p=..., seed=None, tool_calling="auto")``.
    ``context_window`` and ``count_tokens`` let the agent budget its prompt.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: LlamaEngine

    @property
    def _llm_type(self) -> str:
        return "llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"chat_format": self.chat_format, "n_ctx": self.context_window}

    @property
    def context_window(self) -> int:
        """The model's context window in tokens (``n_ctx``)."""
        return self.engine.n_ctx

    @property
    def lazy_grammars(self) -> bool:
        """The engine's scheduler takes lazy grammars: tools cost one pass."""
        return True

    def close(self) -> None:
        """Stop the engine's worker and free the model (the bot calls this at shutdown)."""
        self.engine.close()

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with this model's tokenizer."""
        return self.engine.count_tokens(text)

    def get_num_tokens(self, text: str) -> int:
        """LangChain's token count, from the real tokenizer."""
        return self.count_tokens(text)

    async def _send_stream(
        self, params: dict[str, Any], fairness_key: str
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self.engine.stream_chat(_to_request(params, fairness_key)):
            yield chunk

    async def _send(self, params: dict[str, Any], fairness_key: str) -> dict[str, Any]:
        return await self.engine.complete_chat(_to_request(params, fairness_key))


def _to_request(params: dict[str, Any], fairness_key: str) -> ChatRequest:
    response_format = params.get("response_format")
    grammar, starts = None, None
    if response_format and "schema" in response_format:
        grammar = _grammar(json.dumps(response_format["schema"], sort_keys=True))
        response_format = None
    if lazy := params.get("lazy_grammar"):
        grammar = _grammar(json.dumps(lazy["schema"]))  # key order is the output's order
        starts = str(lazy["starts"])
    return ChatRequest(
        messages=params["messages"],
        max_tokens=params["max_tokens"],
        temperature=params["temperature"],
        top_p=params["top_p"],
        seed=params.get("seed"),
        stop=params.get("stop"),
        grammar=grammar,
        grammar_starts=starts,
        response_format=response_format,
        tools=params.get("tools"),
        tool_choice=params.get("tool_choice"),
        fairness_key=fairness_key,
    )


ANY_OBJECT = json.dumps({"type": "object"})


@lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    """The grammar of a JSON schema; a schema llama-cpp-python cannot convert (a tool's
    from an MCP server: an unresolvable ``$ref``, an unknown type) constrains to any JSON
    object instead of failing the turn (the tool itself then checks its arguments)."""
    # A LlamaGrammar is only its GBNF text; llama builds a fresh sampler per call.
    try:
        return llama_cpp.LlamaGrammar.from_json_schema(schema_json, verbose=False)
    except Exception:
        if schema_json == ANY_OBJECT:
            raise
        log.warning("no grammar for the schema %.200s; any JSON object instead", schema_json)
        return _grammar(ANY_OBJECT)
