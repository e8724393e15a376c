"""Turn plugin tool functions into LangChain tools with the caller's context injected.

The schema the LLM sees comes from the function's signature and Google-style docstring,
minus every parameter annotated ``ToolContext``: the core fills that one, so the model can
never forge who is calling or from where. Tools are built once when a plugin loads; each
turn's contexts travel in the run config (``tool_config``), not in the LLM's arguments.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.tools.base import create_schema_from_function
from pydantic import BaseModel

from core.errors import PermissionDenied, PluginError, PluginTimeout
from core.plugin import Requirements, SourcedTool, ToolContext

ToolFunc = Callable[..., Awaitable[Any]]
_CONTEXTS_KEY = "atelier_tool_contexts"
# What every LLM API accepts as a function name.
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A plugin tool with its schema computed once."""

    plugin: str
    name: str
    description: str
    schema: type[BaseModel]
    func: ToolFunc
    context_params: tuple[str, ...]
    hint: re.Pattern[str] | None = None  # offered only for messages where this is found
    needs: Requirements = field(default_factory=Requirements)

    def offered_for(self, text: str) -> bool:
        """Whether the tool is offered for a message reading ``text`` (see its hint)."""
        return self.hint is None or self.hint.search(text) is not None


def make_spec(
    plugin: str, func: ToolFunc, hint: str | None = None, needs: Requirements | None = None
) -> ToolSpec:
    """Build the LLM-facing schema of ``func`` (context parameters removed)."""
    if not inspect.iscoroutinefunction(func):
        raise PluginError(plugin, f"tool {func.__name__} must be an async function")
    try:
        pattern = re.compile(hint, re.IGNORECASE) if hint is not None else None
    except re.error as exc:
        raise PluginError(plugin, f"tool {func.__name__}: bad hint {hint!r}: {exc}") from exc
    hints = typing.get_type_hints(func)
    context = tuple(name for name, hint in hints.items() if hint is ToolContext)
    schema = create_schema_from_function(
        func.__name__,
        func,
        filter_args=[*context, "return"],
        parse_docstring=True,
        error_on_invalid_docstring=False,
    )
    if not issubclass(schema, BaseModel):
        raise PluginError(plugin, f"tool {func.__name__}: unsupported (pydantic v1) schema")
    doc = inspect.getdoc(func) or ""
    description = doc.split("\n\n", 1)[0].strip() or func.__name__
    return ToolSpec(
        plugin, func.__name__, description, schema, func, context, pattern, needs or Requirements()
    )


def tool_config(contexts: Mapping[str, ToolContext]) -> RunnableConfig:
    """The run config that carries one turn's contexts (plugin name → ToolContext)."""
    return {"configurable": {_CONTEXTS_KEY: contexts}}


def build(spec: ToolSpec, timeout: Callable[[], float]) -> BaseTool:
    """A LangChain tool calling ``spec.func`` with the turn's context, within ``timeout()``."""

    async def call(config: RunnableConfig, **kwargs: Any) -> Any:
        contexts = config.get("configurable", {}).get(_CONTEXTS_KEY, {})
        ctx = contexts.get(spec.plugin)
        if ctx is None:
            raise PluginError(spec.plugin, f"tool {spec.name} called without a context")
        refused = spec.needs.unmet(ctx.caller)
        if refused is not None:  # never offered to this caller; a forged call still stops
            raise PermissionDenied(f"You may not use {spec.name}: {refused}.")
        for name in spec.context_params:
            kwargs[name] = ctx
        limit = timeout()
        try:
            return await asyncio.wait_for(spec.func(**kwargs), limit)
        except TimeoutError as exc:
            raise PluginTimeout(spec.plugin, f"tool {spec.name} timed out after {limit}s") from exc

    return StructuredTool(
        name=spec.name,
        description=spec.description,
        args_schema=spec.schema,
        coroutine=call,
        metadata={"plugin": spec.plugin},
    )


def build_sourced(plugin: str, tool: SourcedTool, timeout: Callable[[], float]) -> BaseTool:
    """A LangChain tool for a tool a plugin's source gave at run time (its schema as
    given), calling ``tool.call`` with the turn's context, within ``timeout()``.

    Raises:
        PluginError: The name is not one an LLM API accepts, or the schema is not an
            object schema.
    """
    if not TOOL_NAME.fullmatch(tool.name):
        raise PluginError(plugin, f"tool name {tool.name[:80]!r} is not [A-Za-z0-9_-]{{1,64}}")
    schema = dict(tool.parameters)
    if schema.get("type", "object") != "object":
        raise PluginError(plugin, f"tool {tool.name}: arguments must be a JSON object schema")
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})

    async def call(config: RunnableConfig, **kwargs: Any) -> Any:
        contexts = config.get("configurable", {}).get(_CONTEXTS_KEY, {})
        ctx = contexts.get(plugin)
        if ctx is None:
            raise PluginError(plugin, f"tool {tool.name} called without a context")
        limit = timeout()
        try:
            return await asyncio.wait_for(tool.call(kwargs, ctx), limit)
        except TimeoutError as exc:
            raise PluginTimeout(plugin, f"tool {tool.name} timed out after {limit}s") from exc

    return StructuredTool(
        name=tool.name,
        description=tool.description[:1024],
        args_schema=schema,
        coroutine=call,
        metadata={"plugin": plugin},
    )
