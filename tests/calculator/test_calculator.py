"""The calculator never fails on user input: every expression is a number or a user error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App
from bot.config import Settings
from plugins.calculator import CalcError, evaluate, format_number
from tests.core.conftest import say
from tests.fakes import ScriptedChatModel

ATOMS = ["1", "9", "0", "2.5", "1e308", "1e309", "-", "+", "*", "**", "/", "//", "%", "^"]
ATOMS += ["(", ")", ",", "sqrt", "log", "round", "abs", "floor", "pi", "e", " ", "x", "1j"]
ATOMS += ["__import__", "'a'", "[1]", "\x00", "\u200b", "٣", "∞", "9" * 50, "((((((((("]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ATOMS), max_size=40).map("".join) | st.text(max_size=300))
def test_any_text_is_a_number_or_a_calc_error(text: str) -> None:
    try:
        value = evaluate(text, max_length=10_000)
        shown = format_number(value)
    except CalcError as exc:
        assert exc.user_message and len(exc.user_message) < 200
    else:
        assert isinstance(shown, str) and len(shown) <= 4000


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**5000", "That number is too large to show (about 4772 digits)."),
        ("sqrt()", "sqrt takes 1 argument, got 0."),
        ("sqrt(1, 2)", "sqrt takes 1 argument, got 2."),
        ("round(1.5, 2.5)", "round's second argument (the number of digits) must be a whole"),
        ("round(1, 10**9)", "round's second argument must be between -1000 and 1000."),
        ("log()", "log takes 1 or 2 arguments, got 0."),
        ("(-8) ** (1/3)", "The result is not a real number."),
        ("(10**9000) * (10**9000) * (10**9000) * (10**9000)", "too large to compute"),
        ("-" * 5000 + "1", "nested too deeply"),
        ("(" * 300 + "1" + ")" * 300, "not an arithmetic expression"),
        ("1e308 * 10", "That number is too large to show."),
        ("sqrt(-1)", "outside the domain"),
        ("2 ** 0.5 ** -2000", "too large"),
    ],
)
def test_hostile_expressions_get_a_plain_user_error(expression: str, message: str) -> None:
    with pytest.raises(CalcError) as caught:
        format_number(evaluate(expression, max_length=10_000))
    assert message in caught.value.user_message


def test_ordinary_arithmetic_still_works() -> None:
    assert format_number(evaluate("12 * 7")) == "84"
    assert format_number(evaluate("round(2.675, 2)")) == "2.67"
    assert format_number(evaluate("log(8, 2)")) == "3"
    assert format_number(evaluate("2 ^ 10")) == "1024"


async def test_calc_answers_hostile_input_as_a_user_error(tmp_path: Path) -> None:
    config = Settings(data_dir=tmp_path / "data", limits={"user_burst": 1000})
    model = ScriptedChatModel(messages=iter([]))
    async with await App.start(config, chat_model=model) as app:
        for line, answer in [
            ("/calc 9**5000", "error: That number is too large to show (about 4772 digits)."),
            ("/calc sqrt()", "error: sqrt takes 1 argument, got 0."),
            ("/calc 6*7", "6*7 = 42"),
        ]:
            assert await say(app, line) == answer
