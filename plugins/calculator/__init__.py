"""Built-in ``calculator`` plugin: safe arithmetic as an agent tool and a /calc command.

The expression is parsed with ``ast`` and only numbers, arithmetic operators, parentheses
and a fixed set of math functions are evaluated; names, attributes, calls to anything
else and huge powers are refused. It never uses ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

from core.config import Section, server
from core.errors import UserError
from core.plugin import CommandContext, Option, Plugin, ToolContext


class CalculatorConfig(Section):
    """Settings of the calculator (a server's admins may change both)."""

    max_length: int = server(200, ge=1, le=10_000, description="Longest expression accepted")
    decimals: int = server(10, ge=0, le=15, description="Significant digits in results")


plugin = Plugin(
    "calculator",
    "Safe arithmetic: + - * / // % **, parentheses, sqrt, sin, cos, log ...",
    version="1.0.0",
    config_model=CalculatorConfig,
)

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    name: getattr(math, name)
    for name in ("sqrt", "sin", "cos", "tan", "log", "log10", "log2", "exp", "floor", "ceil")
} | {"abs": abs, "round": round}
# How many arguments each function takes (fewest, most); the rest take exactly one.
_ARITY: dict[str, tuple[int, int]] = {"log": (1, 2), "round": (1, 2)}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_MAX_EXPONENT = 10_000
_MAX_RESULT_BITS = 100_000
_MAX_DIGITS_SHOWN = 4000  # Python refuses to print integers past 4,300 digits anyway


class CalcError(UserError):
    """The expression cannot be evaluated; the message says why."""


def evaluate(expression: str, *, max_length: int = 200) -> float | int:
    """Evaluate an arithmetic expression safely, or raise ``CalcError``."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise CalcError("The expression is empty.")
    if len(text) > max_length:
        raise CalcError(f"The expression is {len(text)} characters; the limit is {max_length}.")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: a NUL byte
        raise CalcError(f"{_shown(expression)} is not an arithmetic expression.") from None
    except (RecursionError, MemoryError):
        raise CalcError("The expression is nested too deeply.") from None
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise CalcError("Division by zero.") from None
    except (RecursionError, MemoryError):
        raise CalcError("The expression is nested too deeply.") from None
    except OverflowError:
        raise CalcError("That number is too large to compute.") from None
    except ValueError:
        raise CalcError("That is outside the domain of the function (e.g. sqrt(-1)).") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise CalcError("That number is too large to show.")
    return value


def format_number(value: float | int, decimals: int = 10) -> str:
    """Integers as they are; floats with ``decimals`` significant digits.

    Raises ``CalcError`` for an integer too long to show in a chat message.
    """
    if isinstance(value, int):
        if value.bit_length() > _MAX_DIGITS_SHOWN * 3.32:
            digits = int(value.bit_length() * math.log10(2)) + 1
            raise CalcError(f"That number is too large to show (about {digits} digits).")
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{decimals}g}"


def _shown(expression: str, limit: int = 60) -> str:
    """The expression quoted for a reply, shortened: replies echo user text."""
    text = expression.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _call(node.func.id, [_eval(arg) for arg in node.args])
    raise CalcError(f"Not allowed in an expression: {_shown(ast.unparse(node))}.")


def _call(name: str, args: list[Any]) -> Any:
    """Call a math function after checking how many arguments it got, and of what type."""
    fewest, most = _ARITY.get(name, (1, 1))
    if not fewest <= len(args) <= most:
        wanted = str(fewest) if fewest == most else f"{fewest} or {most}"
        noun = "argument" if wanted == "1" else "arguments"
        raise CalcError(f"{name} takes {wanted} {noun}, got {len(args)}.")
    if name == "round" and len(args) == 2 and not isinstance(args[1], int):
        raise CalcError("round's second argument (the number of digits) must be a whole number.")
    if name == "round" and len(args) == 2 and abs(args[1]) > 1000:
        raise CalcError("round's second argument must be between -1000 and 1000.")
    return _checked(_FUNCTIONS[name](*args))


def _checked(value: Any) -> Any:
    """Refuse results that are not real numbers, or integers too large to keep computing."""
    if isinstance(value, complex):
        raise CalcError("The result is not a real number.")
    if isinstance(value, int) and value.bit_length() > _MAX_RESULT_BITS:
        raise CalcError("That number is too large to compute.")
    return value


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse powers whose result would be absurdly large (time and memory)."""
    if isinstance(base, complex) or isinstance(exponent, complex):
        raise CalcError("The result is not a real number.")
    too_big = abs(exponent) > _MAX_EXPONENT
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        too_big = too_big or base.bit_length() * abs(exponent) > _MAX_RESULT_BITS
    if too_big:
        raise CalcError("That power is too large to compute.")


def _config(config: BaseModel | None) -> CalculatorConfig:
    return config if isinstance(config, CalculatorConfig) else CalculatorConfig()


# Offered only for messages with a number or an arithmetic word: a tiny model offered a
# calculator calls it for "What is the capital of France?" (bench/tool_selection.py).
ARITHMETIC_HINT = (
    r"\d|\b(plus|minus|times|divided|multipl\w*|percent|sum|product|square|root|sqrt"
    r"|power|calculat\w*|comput\w*|how much|how many)\b"
)


# What an expression may contain. Grammar-constrained tool calls follow the schema's
# pattern, so even a tiny model writes "12*7", not "12 times 7" (bench/tool_selection.py).
# At most 80 pieces: the grammar then has to close the string, where an open-ended one
# let a looping model run out of tokens mid-JSON (an unusable call).
EXPRESSION_PATTERN = (
    r"^([0-9.,+*/%^() -]|sqrt|sin|cos|tan|log|exp|floor|ceil|abs|round|pi|tau|e){1,80}$"
)
Expression = Annotated[str, Field(pattern=EXPRESSION_PATTERN)]


@plugin.tool(hint=ARITHMETIC_HINT)
async def calculate(expression: Expression, ctx: ToolContext) -> str:
    """Evaluate an arithmetic expression exactly and return the result.

    Args:
        expression: The arithmetic, e.g. "(12.5 + 3) * 4" or "sqrt(2) ** 2". Supports
            + - * / // % ** parentheses, sqrt sin cos tan log exp abs round, pi and e.
    """
    cfg = _config(ctx.config)
    value = evaluate(expression, max_length=cfg.max_length)
    return f"{expression.strip()} = {format_number(value, cfg.decimals)}"


@plugin.command(
    "calc",
    "Evaluate an arithmetic expression",
    Option("expression", description="For example (2 + 3) * 4", rest=True, max_length=10_000),
)
async def calc(ctx: CommandContext, expression: str) -> str:
    """The /calc command: same evaluator as the tool."""
    cfg = _config(ctx.config)
    value = evaluate(expression, max_length=cfg.max_length)
    return f"{expression.strip()} = {format_number(value, cfg.decimals)}"
