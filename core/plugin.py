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

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from pydantic import BaseModel

from core.caller import Caller
from core.errors import InputRejected, PluginError
from core.events import Attachment, Event, Origin, ReplyPart

if TYPE_CHECKING:
    from core.adapter import Actions
    from core.admin import Administration

OptionType = Literal["string", "integer", "number", "boolean"]
_T = TypeVar("_T")


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
    # The whole text after the command name, exactly as typed: quotes, backslashes and
    # newlines kept (code). Only as the sole option of a command without subcommands.
    verbatim: bool = False


class _CallerView:
    """The caller's fields, read through a context (``ctx.server_pk``, ``ctx.origin``)."""

    __slots__ = ()
    caller: Caller

    @property
    def origin(self) -> Origin:
        """The event's origin (platform ids and names)."""
        return self.caller.origin

    @property
    def server_pk(self) -> int:
        """The server's key in storage."""
        return self.caller.server_pk

    @property
    def user_pk(self) -> int:
        """The user's key in storage."""
        return self.caller.user_pk

    @property
    def channel_pk(self) -> int:
        """The channel's key in storage."""
        return self.caller.channel_pk

    @property
    def conversation_pk(self) -> int:
        """The conversation's key in storage (0 where there is none)."""
        return self.caller.conversation_pk

    @property
    def actions(self) -> Actions | None:
        """What the caller's platform lets a plugin do (see ``core.adapter.Actions``)."""
        return self.caller.actions


@dataclass(slots=True)
class PluginContext:
    """Given to ``setup``, ``teardown`` and background tasks: the plugin's own port.

    It carries only what this plugin may use: its validated config (``config.toml``'s
    ``[plugins.config.<name>]``), the bot's data directory (a plugin writes under a folder
    named after itself, e.g. ``images/``), the back ends the app
    injects that the plugin declared in ``Plugin.uses``, its call time limit and, for
    required core plugins only, the administration port. Never the app's settings,
    secrets, storage or plugin manager.
    """

    name: str
    config: BaseModel | None
    data_dir: Path
    backends: Mapping[str, object] = field(default_factory=dict)
    call_timeout_s: float = 30.0
    admin: Administration | None = None

    def backend(self, name: str) -> object | None:
        """The back end injected under ``name`` (see ``Plugin.uses``), or None."""
        return self.backends.get(name)

    def require(self, name: str, kind: type[_T]) -> _T:
        """The back end injected under ``name``, which must be a ``kind``.

        Raises:
            PluginError: The app injected none (the plugin did not declare it in
                ``Plugin.uses``) or something else.
        """
        found = self.backends.get(name)
        if not isinstance(found, kind):
            raise PluginError(self.name, f"started without its {name} back end")
        return found


@dataclass(slots=True)
class ToolContext(_CallerView):
    """Injected into tools: who calls and from where, and the config that applies there."""

    caller: Caller
    config: BaseModel | None = None
    plugin: PluginContext | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool may return instead of a string: text for the LLM, parts for the user.

    The agent sends ``text`` back to the model and passes ``parts`` (images, files,
    buttons) straight into the reply, so a tool can show the user what it made;
    ``footer`` is added under the answer's text (a list of sources).
    """

    text: str
    parts: tuple[ReplyPart, ...] = ()
    # Shown under the answer (not to the model): the sources a knowledge search cited.
    footer: str = ""


@dataclass(slots=True)
class CommandContext(_CallerView):
    """Given to command and button handlers."""

    caller: Caller
    plugin: PluginContext
    config: BaseModel | None = None
    attachments: tuple[Attachment, ...] = ()  # files sent with the command (read() is capped)
    # The enabled plugins' content screens for this caller (set by the core).
    screens: Screens | None = field(default=None, repr=False)

    async def screen(self, texts: Sequence[str], what: str) -> None:
        """Pass text a user supplied (an upload's passages) through the content screens of
        the plugins enabled here (moderation) before keeping it.

        Raises:
            InputRejected: A screen refused it; the message says why, in one line.
        """
        if self.screens is None or not texts:
            return
        reason = await self.screens(list(texts), what)
        if reason:
            raise InputRejected(reason)

    @property
    def admin(self) -> Administration:
        """The administration port (required core plugins only)."""
        if self.plugin.admin is None:
            raise PermissionError(f"plugin {self.plugin.name} has no administration port")
        return self.plugin.admin


@dataclass(slots=True)
class HookContext(_CallerView):
    """Given to inbound and outbound hooks (and content screens)."""

    caller: Caller
    config: BaseModel | None = None
    event: Event | None = None  # outbound hooks: the event being answered
    answered: bool = True  # False: a message the bot does not answer (``unanswered``)


CommandResult = str | ReplyPart | Sequence[ReplyPart] | None
CommandHandler = Callable[..., Awaitable[CommandResult] | AsyncIterator[ReplyPart]]
InboundHook = Callable[[HookContext, Event], Awaitable[Event | None]]
OutboundHook = Callable[[HookContext, ReplyPart], Awaitable[ReplyPart | None]]
ButtonHandler = Callable[..., Awaitable[CommandResult] | AsyncIterator[ReplyPart]]
Task = Callable[[PluginContext], Awaitable[None]]
ToolFunc = Callable[..., Awaitable[Any]]
# A content screen: the texts and what they are ("upload") -> a one-line refusal, or None.
ScreenHook = Callable[[HookContext, list[str], str], Awaitable[str | None]]
# What the core gives a command: every enabled plugin's screens, run for this caller.
Screens = Callable[[list[str], str], Awaitable[str | None]]
Lifecycle = Callable[[PluginContext], Awaitable[None]]
# Whether a tool is worth offering to this caller now (a knowledge base with documents).
Availability = Callable[[ToolContext], Awaitable[bool]]


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class SourcedTool:
    """A tool known only at run time (one of an MCP server's), given by a tool source.

    ``parameters`` is the JSON schema of its arguments object; ``call(arguments, ctx)``
    runs it and returns text for the model or a ``ToolResult``. A tool source returns
    the same objects while nothing changed, so the core builds each one once.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    call: Callable[[dict[str, Any], ToolContext], Awaitable[str | ToolResult]]


# The tools a plugin offers this caller now (see ``Plugin.tool_source``).
ToolSource = Callable[[ToolContext], Awaitable[Sequence[SourcedTool]]]


@dataclass(frozen=True, slots=True)
class Requirements:
    """Who may use a tool: admins only, and/or callers whose platform can do something."""

    admin_only: bool = False
    capabilities: frozenset[str] = frozenset()

    def unmet(self, caller: Caller) -> str | None:
        """Why ``caller`` may not use the tool, or None when they may."""
        if self.admin_only and not caller.is_admin:
            return "only server admins may use it"
        have = caller.actions.capabilities if caller.actions is not None else frozenset()
        missing = sorted(self.capabilities - have)
        if missing:
            return f"this platform cannot {', '.join(missing)}"
        return None


@dataclass(frozen=True, slots=True)
class Outbound:
    """A declared outbound hook (see ``Plugin.outbound``)."""

    hook: OutboundHook
    priority: int = 100
    buffered: bool = False


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
    files: int = 0  # files it takes (ctx.attachments); slash menus offer that many fields


@dataclass(slots=True)
class Plugin:
    """A plugin's metadata and contributions (filled by the decorators below)."""

    name: str
    description: str
    version: str = "0.1.0"
    config_model: type[BaseModel] | None = None
    enabled_by_default: bool = True
    required: bool = False  # cannot be disabled (the admin plugin: no lock-out)
    # This plugin's per-call limit: seconds, or computed from its validated config
    # (``lambda config: config.job_timeout_s + 60``); None: ``plugins.call_timeout_s``.
    call_timeout_s: float | Callable[[Any], float] | None = None
    uses: tuple[str, ...] = ()  # back ends the app injects ("image", "llm", "database")
    # Its own tables: a folder of Alembic revisions inside the plugin's package, run at
    # load with a version table of its own (``alembic_version_<name>``), and their
    # SQLAlchemy metadata. The app's "database" back end reaches them.
    migrations: str | None = None
    tables: Any = None  # sqlalchemy.MetaData of those tables
    tools: list[ToolFunc] = field(default_factory=list)
    tool_hints: dict[str, str] = field(default_factory=dict)  # tool name -> regex (see tool)
    tool_needs: dict[str, Requirements] = field(default_factory=dict)  # tool name -> needs
    tool_available: dict[str, Availability] = field(default_factory=dict)  # name -> check
    tool_sources: list[ToolSource] = field(default_factory=list)  # tools known at run time
    commands: dict[str, Command] = field(default_factory=dict)
    inbound_hooks: list[InboundHook] = field(default_factory=list)
    unanswered_hooks: list[InboundHook] = field(default_factory=list)  # see ``inbound``
    outbound_hooks: list[Outbound] = field(default_factory=list)
    screens: list[ScreenHook] = field(default_factory=list)
    buttons: dict[str, ButtonHandler] = field(default_factory=dict)
    # Button actions that still work where the plugin is disabled (cancelling a job).
    buttons_when_disabled: set[str] = field(default_factory=set)
    tasks: list[Task] = field(default_factory=list)
    setup: Lifecycle | None = None
    teardown: Lifecycle | None = None

    @overload
    def tool(self, func: ToolFunc) -> ToolFunc: ...
    @overload
    def tool(
        self,
        func: None = None,
        *,
        hint: str | None = None,
        admin_only: bool = False,
        needs: tuple[str, ...] = (),
        available: Availability | None = None,
    ) -> Callable[[ToolFunc], ToolFunc]: ...
    def tool(
        self,
        func: ToolFunc | None = None,
        *,
        hint: str | None = None,
        admin_only: bool = False,
        needs: tuple[str, ...] = (),
        available: Availability | None = None,
    ) -> ToolFunc | Callable[[ToolFunc], ToolFunc]:
        """Declare an async function as an agent tool (its docstring is its schema).

        ``hint=REGEX``: the tool is offered to the model only for messages in which
        ``REGEX`` is found (case-insensitive), while ``[agent] tool_hints`` is on. Small
        models call whatever tool they are offered; a hint keeps a calculator out of
        "What is the capital of France?".

        ``admin_only`` and ``needs`` (adapter capabilities, ``core.adapter``) are checked
        by the core: a caller who does not meet them is never offered the tool.

        ``available``: an async check the core awaits before offering the tool to a
        caller (``search_knowledge`` only where the server has documents); False or an
        error leaves the tool out of that turn.
        """

        def register(tool_func: ToolFunc) -> ToolFunc:
            self.tools.append(tool_func)
            if hint is not None:
                self.tool_hints[tool_func.__name__] = hint
            if admin_only or needs:
                self.tool_needs[tool_func.__name__] = Requirements(admin_only, frozenset(needs))
            if available is not None:
                self.tool_available[tool_func.__name__] = available
            return tool_func

        return register(func) if func is not None else register

    def tool_source(self, source: ToolSource) -> ToolSource:
        """Declare a source of tools known only at run time (an MCP server's).

        Each chat turn the core awaits ``source(ctx)`` for the caller (within a second or
        two: it should answer from what it already knows) and offers the model the
        ``SourcedTool`` objects it returns, beside the plugin's declared tools; a failing
        or slow source leaves its tools out of that turn. Calls get the plugin's call
        time limit; a ``UserError`` they raise is the one line the model is told.
        """
        self.tool_sources.append(source)
        return source

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
        files: int = 0,
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Declare a command; ``"group sub"`` declares a subcommand of a declared group.

        The handler is called as ``handler(ctx: CommandContext, **options)`` and returns
        text, reply parts, or is an async generator of reply parts. ``ordered=False`` lets
        a long command (an image job) run beside the user's later turns instead of
        holding up their conversation. ``files=N``: it reads up to N files sent with it
        (``ctx.attachments``); platforms with typed menus offer N file fields.
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
                files=files,
            )
            if sub:
                self.commands[group].subcommands[sub] = cmd
            else:
                self.commands[group] = cmd
            return handler

        return register

    @overload
    def inbound(self, hook: InboundHook) -> InboundHook: ...
    @overload
    def inbound(
        self, hook: None = None, *, unanswered: bool = False
    ) -> Callable[[InboundHook], InboundHook]: ...
    def inbound(
        self, hook: InboundHook | None = None, *, unanswered: bool = False
    ) -> InboundHook | Callable[[InboundHook], InboundHook]:
        """Declare an inbound hook: return the (maybe changed) event, or None to drop it.

        ``unanswered=True``: it also sees the messages the bot does not answer (everything
        said in a server's channels, as moderation must); for those, what it returns is
        ignored, and a ``UserError`` it raises is the one line the sender is told.
        """

        def register(func: InboundHook) -> InboundHook:
            self.inbound_hooks.append(func)
            if unanswered:
                self.unanswered_hooks.append(func)
            return func

        return register(hook) if hook is not None else register

    @overload
    def outbound(self, hook: OutboundHook) -> OutboundHook: ...
    @overload
    def outbound(
        self, hook: None = None, *, priority: int = 100, buffered: bool = False
    ) -> Callable[[OutboundHook], OutboundHook]: ...
    def outbound(
        self, hook: OutboundHook | None = None, *, priority: int = 100, buffered: bool = False
    ) -> OutboundHook | Callable[[OutboundHook], OutboundHook]:
        """Declare an outbound hook: return the (maybe changed) part, or None to drop it.

        Hooks of every enabled plugin run in ``priority`` order (lower first, then by
        plugin name). ``buffered=True``: the hook holds a streamed reply and sees its
        text before the user does — as ``Text`` of everything so far, every few hundred
        characters and at the end. Returning that ``Text`` releases it; another ``Text``
        replaces the answer; any other part (an ``Error`` notice) or None stops the reply
        there (the user never sees the held text). Other parts pass it one by one.
        """

        def register(func: OutboundHook) -> OutboundHook:
            self.outbound_hooks.append(Outbound(func, priority, buffered))
            return func

        return register(hook) if hook is not None else register

    def screen(self, hook: ScreenHook) -> ScreenHook:
        """Declare a content screen: text another plugin is about to keep (an upload's
        passages, through ``CommandContext.screen``) passes it first; return a one-line
        reason to refuse it (shown to the user), or None to let it through."""
        self.screens.append(hook)
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
