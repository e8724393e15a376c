"""What a plugin is: metadata plus the tools, commands, hooks and tasks it contributes.

A plugin is one package (under ``plugins/`` or registered in the ``atelier.plugins``
entry-point group) whose module exposes ``plugin = Plugin(...)``; decorators on that
object declare its contributions. Nothing here loads or runs plugins: that is
``bot.plugins.PluginManager``'s job.

    plugin = Plugin("calculator", "Safe arithmetic")

    @plugin.tool
    async def calculate(expression: str, ctx: ToolContext) -> str:
        '''Evaluate an arithmetic expression.

        Args:
            expression: The expression, e.g. ``(2 + 3) * 4``.
        '''

Tool parameters annotated ``ToolContext`` are injected by the core and never shown to
(or produced by) the LLM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import BaseModel

from bot.events import Event, Origin, ReplyPart

if TYPE_CHECKING:
    from bot.services import Services

OptionType = Literal["string", "integer", "number", "boolean"]


@dataclass(frozen=True, slots=True)
class Option:
    """One typed command option; platform menus are generated from these."""

    name: str
    type: OptionType = "string"
    description: str = ""
    required: bool = True
    choices: tuple[str | int | float, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None
    default: Any = None
    rest: bool = False  # a string option that takes the rest of a text command line


@dataclass(slots=True)
class ToolContext:
    """Injected into tools: where the call comes from. Never produced by the LLM."""

    origin: Origin
    server_pk: int
    user_pk: int
    channel_pk: int
    config: BaseModel | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool may return instead of a string: text for the LLM, parts for the user.

    The agent sends ``text`` back to the model and passes ``parts`` (images, files,
    buttons) straight into the reply, so a tool can show the user what it made.
    """

    text: str
    parts: tuple[ReplyPart, ...] = ()


@dataclass(slots=True)
class CommandContext:
    """Given to command handlers."""

    origin: Origin
    server_pk: int
    user_pk: int
    channel_pk: int
    conversation_pk: int
    services: Services
    config: BaseModel | None = None


@dataclass(slots=True)
class HookContext:
    """Given to inbound/outbound hooks."""

    origin: Origin
    server_pk: int
    config: BaseModel | None = None


@dataclass(slots=True)
class PluginContext:
    """Given to ``setup``, ``teardown`` and background tasks."""

    services: Services
    config: BaseModel | None = None


CommandResult = str | ReplyPart | Sequence[ReplyPart] | None
CommandHandler = Callable[..., Awaitable[CommandResult] | AsyncIterator[ReplyPart]]
InboundHook = Callable[[HookContext, Event], Awaitable[Event | None]]
OutboundHook = Callable[[HookContext, ReplyPart], Awaitable[ReplyPart | None]]
ButtonHandler = Callable[..., Awaitable[CommandResult] | AsyncIterator[ReplyPart]]
Task = Callable[[PluginContext], Awaitable[None]]
ToolFunc = Callable[..., Awaitable[Any]]
Lifecycle = Callable[[PluginContext], Awaitable[None]]


@dataclass(slots=True)
class Command:
    """A command, or (with ``subcommands``) a group of them such as ``/plugins``."""

    name: str
    description: str
    handler: CommandHandler | None = None
    options: tuple[Option, ...] = ()
    subcommands: dict[str, Command] = field(default_factory=dict)
    admin_only: bool = False
    plugin: str = ""
    ordered: bool = True  # False: runs beside the conversation's other turns (long jobs)


@dataclass(slots=True)
class Plugin:
    """A plugin's metadata and contributions (filled by the decorators below)."""

    name: str
    description: str
    version: str = "0.1.0"
    config_model: type[BaseModel] | None = None
    enabled_by_default: bool = True
    required: bool = False  # cannot be disabled (the admin plugin: no lock-out)
    call_timeout_s: float | None = None  # this plugin's default per-call limit
    tools: list[ToolFunc] = field(default_factory=list)
    tool_hints: dict[str, str] = field(default_factory=dict)  # tool name -> regex (see tool)
    commands: dict[str, Command] = field(default_factory=dict)
    inbound_hooks: list[InboundHook] = field(default_factory=list)
    outbound_hooks: list[OutboundHook] = field(default_factory=list)
    buttons: dict[str, ButtonHandler] = field(default_factory=dict)
    # Button actions that still work where the plugin is disabled (cancelling a job).
    buttons_when_disabled: set[str] = field(default_factory=set)
    tasks: list[Task] = field(default_factory=list)
    setup: Lifecycle | None = None
    teardown: Lifecycle | None = None

    @overload
    def tool(self, func: ToolFunc) -> ToolFunc: ...
    @overload
    def tool(self, func: None = None, *, hint: str) -> Callable[[ToolFunc], ToolFunc]: ...
    def tool(
        self, func: ToolFunc | None = None, *, hint: str | None = None
    ) -> ToolFunc | Callable[[ToolFunc], ToolFunc]:
        """Declare an async function as an agent tool (its docstring is its schema).

        ``@plugin.tool(hint=REGEX)``: the tool is offered to the model only for messages
        in which ``REGEX`` is found (case-insensitive), while ``[agent] tool_hints`` is on.
        Small models call whatever tool they are offered; a hint keeps a calculator out
        of "What is the capital of France?".
        """

        def register(tool_func: ToolFunc) -> ToolFunc:
            self.tools.append(tool_func)
            if hint is not None:
                self.tool_hints[tool_func.__name__] = hint
            return tool_func

        return register(func) if func is not None else register

    def group(self, name: str, description: str, *, admin_only: bool = False) -> None:
        """Declare a command group such as ``/plugins`` whose subcommands follow."""
        self.commands[name] = Command(name, description, admin_only=admin_only, plugin=self.name)

    def command(
        self,
        name: str,
        description: str,
        *options: Option,
        admin_only: bool = False,
        ordered: bool = True,
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Declare a command; ``"group sub"`` declares a subcommand of a declared group.

        The handler is called as ``handler(ctx: CommandContext, **options)`` and returns
        text, reply parts, or is an async generator of reply parts. ``ordered=False`` lets
        a long command (an image job) run beside the user's later turns instead of
        holding up their conversation.
        """

        def register(handler: CommandHandler) -> CommandHandler:
            group, _, sub = name.partition(" ")
            cmd = Command(
                sub or group,
                description,
                handler,
                tuple(options),
                admin_only=admin_only,
                plugin=self.name,
                ordered=ordered,
            )
            if sub:
                self.commands[group].subcommands[sub] = cmd
            else:
                self.commands[group] = cmd
            return handler

        return register

    def inbound(self, hook: InboundHook) -> InboundHook:
        """Declare an inbound hook: return the (maybe changed) event, or None to drop it."""
        self.inbound_hooks.append(hook)
        return hook

    def outbound(self, hook: OutboundHook) -> OutboundHook:
        """Declare an outbound hook: return the (maybe changed) part, or None to drop it."""
        self.outbound_hooks.append(hook)
        return hook

    def button(
        self, action: str, *, when_disabled: bool = False
    ) -> Callable[[ButtonHandler], ButtonHandler]:
        """Declare the handler of buttons whose ``custom_id`` is ``<plugin>:<action>:<arg>``.

        Called as ``handler(ctx: CommandContext, arg: str)``; same results as commands.
        ``when_disabled=True`` keeps the button working in servers where the plugin was
        disabled after the button was sent (e.g. cancelling a job already running); the
        handler must then check who may press it.
        """

        def register(handler: ButtonHandler) -> ButtonHandler:
            self.buttons[action] = handler
            if when_disabled:
                self.buttons_when_disabled.add(action)
            return handler

        return register

    def task(self, func: Task) -> Task:
        """Declare a background task, started on load and cancelled on unload."""
        self.tasks.append(func)
        return func

    def on_setup(self, func: Lifecycle) -> Lifecycle:
        """Declare the async setup run on load (a failure rolls the load back)."""
        self.setup = func
        return func

    def on_teardown(self, func: Lifecycle) -> Lifecycle:
        """Declare the async teardown run on unload (errors are logged)."""
        self.teardown = func
        return func
