"""Command lines and typed options: parse, bind and validate against a ``Command`` spec.

Text platforms send ``/name sub positional --option value``; structured platforms send
typed options. Both end up in ``bind`` and are validated the same way, so a bad value gets
the same clear message everywhere: a string over its option's ``max_length`` is refused
here whatever the platform's menus promised, and an error quotes at most the first
``_SHOWN`` characters of a bad value, never a huge input back. Nothing here runs a handler
or touches storage.
"""

from __future__ import annotations

import shlex
from typing import Any

from core.errors import CommandError
from core.events import CommandEvent
from core.plugin import Command, Option

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_SHOWN = 40  # characters of a bad value quoted in an error


def resolve(root: Command, event: CommandEvent) -> tuple[Command, str, list[str]]:
    """Find the (sub)command an event invokes; returns it, its path and leftover tokens."""
    if not root.subcommands and _verbatim(root):
        return root, root.name, [event.text] if event.text.strip() else []
    tokens = tokenize(event.text)
    if not root.subcommands:
        return root, root.name, tokens
    sub_name = event.subcommand
    if sub_name is None:
        if not tokens:
            raise CommandError(f"/{root.name} needs a subcommand: {_subs(root)}")
        sub_name, tokens = tokens[0], tokens[1:]
    sub = root.subcommands.get(sub_name.lower())
    if sub is None:
        raise CommandError(f"/{root.name} has no subcommand {_shown(sub_name)}; try {_subs(root)}")
    return sub, f"{root.name} {sub.name}", tokens


def bind(cmd: Command, path: str, tokens: list[str], given: dict[str, Any]) -> dict[str, Any]:
    """Validate typed ``given`` options plus text ``tokens`` against ``cmd``'s options."""
    raw: dict[str, Any] = dict(given)
    positional = tokens if _verbatim(cmd) else _take_named(cmd, path, tokens, raw)
    _fill_positional(cmd, path, positional, raw)
    values: dict[str, Any] = {}
    for opt in cmd.options:
        if opt.name in raw:
            values[opt.name] = _coerce(opt, raw.pop(opt.name))
        elif opt.required:
            raise CommandError(
                f"/{path}: missing {opt.name} ({opt.description}). {usage(cmd, path)}"
            )
        else:
            values[opt.name] = opt.default
    if raw:
        unknown = ", ".join(_clip(name) for name in sorted(raw))
        raise CommandError(f"/{path}: unknown option {unknown}. {usage(cmd, path)}")
    return values


def _verbatim(cmd: Command) -> bool:
    """Whether ``cmd`` takes its text exactly as typed (one ``verbatim`` option)."""
    return len(cmd.options) == 1 and cmd.options[0].verbatim


def tokenize(text: str) -> list[str]:
    """Split a command line like a shell does (quotes group words)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise CommandError(f"could not read the command line: {exc}") from exc


def usage(cmd: Command, path: str) -> str:
    """One-line usage such as ``Usage: /plugins enable NAME``."""
    parts = [f"/{path}"]
    for opt in cmd.options:
        shown = opt.name.upper() if opt.required else f"[--{opt.name} {opt.type.upper()}]"
        parts.append(shown)
    return "Usage: " + " ".join(parts)


def _subs(root: Command) -> str:
    return ", ".join(sorted(root.subcommands))


def _take_named(cmd: Command, path: str, tokens: list[str], raw: dict[str, Any]) -> list[str]:
    """Move ``--name value`` pairs into ``raw``; return the positional tokens in order."""
    by_name = {opt.name: opt for opt in cmd.options}
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) == 2:
            positional.append(tok)
            i += 1
            continue
        name, eq, value = tok[2:].partition("=")
        opt = by_name.get(name.replace("-", "_")) or by_name.get(name)
        if opt is None:
            raise CommandError(f"/{path}: unknown option --{_clip(name)}. {usage(cmd, path)}")
        if not eq:
            if opt.type == "boolean" and (i + 1 >= len(tokens) or tokens[i + 1].startswith("--")):
                value = "true"
            elif i + 1 < len(tokens):
                i += 1
                value = tokens[i]
            else:
                raise CommandError(f"/{path}: option --{opt.name} needs a value")
        raw[opt.name] = value
        i += 1
    return positional


def _fill_positional(cmd: Command, path: str, positional: list[str], raw: dict[str, Any]) -> None:
    free = [opt for opt in cmd.options if opt.name not in raw]
    for opt in free:
        if not positional:
            return
        if opt.rest:
            raw[opt.name] = " ".join(positional)
            positional.clear()
            return
        raw[opt.name] = positional.pop(0)
    if positional:
        extra = _shown(" ".join(positional))
        raise CommandError(f"/{path}: unexpected argument {extra}. {usage(cmd, path)}")


def _coerce(opt: Option, value: Any) -> Any:
    """Convert and range-check one option value; errors name the option and the rule."""
    converted = _convert(opt, value)
    if opt.choices is not None and converted not in opt.choices:
        allowed = ", ".join(str(c) for c in opt.choices)
        raise CommandError(f"option {opt.name}: {_shown(value)} is not one of: {allowed}")
    if isinstance(converted, int | float) and not isinstance(converted, bool):
        low, high = opt.min_value, opt.max_value
        if (low is not None and converted < low) or (high is not None and converted > high):
            raise CommandError(
                f"option {opt.name}: {converted} is out of range ({_range(low, high)})"
            )
    if isinstance(converted, str):
        if opt.max_length is not None and len(converted) > opt.max_length:
            raise CommandError(
                f"option {opt.name}: {len(converted)} characters; at most {opt.max_length}"
            )
        if opt.required and not converted.strip():
            raise CommandError(f"option {opt.name}: must not be empty")
    return converted


def _convert(opt: Option, value: Any) -> Any:
    if opt.type == "string":
        return str(value)
    text = str(value).strip().lower()
    try:
        if opt.type == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if isinstance(value, int | float) else int(text, 10)
        if opt.type == "number":
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
    except ValueError:
        kind = "a whole number" if opt.type == "integer" else "a number"
        raise CommandError(f"option {opt.name}: must be {kind}, got {_shown(value)}") from None
    if isinstance(value, bool):
        return value
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CommandError(f"option {opt.name}: must be true or false, got {_shown(value)}")


def _shown(value: Any) -> str:
    """``repr(value)``, cut to ``_SHOWN`` characters of the value."""
    text = str(value)
    return repr(value) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}…"


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…"


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"allowed {_num(low)} to {_num(high)}"
    if low is not None:
        return f"at least {_num(low)}"
    return f"at most {_num(high)}"


def _num(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)
