"""Where the one-pass tool note goes in the system prompt, over hostile names and prompts."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agents.onepass import CONTEXT, with_note

pytestmark = pytest.mark.timeout(60)

NOTE = "You can use these tools:\n- calculate(expression): Evaluate arithmetic."


def _system(base: str, user: str) -> str:
    # As the agent writes it: the server's prompt, then the per-conversation line.
    return f"{base}\n{CONTEXT} platform console, server s, channel c, user {user}."


def _noted(content: str) -> str:
    return str(with_note([{"role": "system", "content": content}], NOTE)[0]["content"])


@given(base=st.text(min_size=1), user=st.text())
def test_the_note_goes_before_the_conversation_line_and_nothing_else_moves(
    base: str, user: str
) -> None:
    assume(NOTE not in base)
    content = _system(base, user)

    noted = _noted(content)

    at = noted.index(f"\n\n{NOTE}")
    head, rest = noted[:at], noted[at + len(NOTE) + 2 :]
    assert head + rest == content  # only the note was added
    assert len(head) <= len(base)  # never inside the line with the user's name
    if CONTEXT not in base:
        assert head == base  # every conversation of the server shares base + tools


@given(user_a=st.text(), user_b=st.text())
def test_two_users_share_everything_up_to_the_end_of_the_note(user_a: str, user_b: str) -> None:
    base = "You are Atelier, a helpful assistant."
    a, b = _noted(_system(base, user_a)), _noted(_system(base, user_b))

    shared = f"{base}\n\n{NOTE}\n{CONTEXT}"
    assert a.startswith(shared) and b.startswith(shared)


def test_a_prompt_without_the_conversation_line_gets_the_note_at_its_end() -> None:
    assert _noted("Be brief.") == f"Be brief.\n\n{NOTE}"
    assert with_note([], NOTE) == [{"role": "system", "content": NOTE}]
    user_first = with_note([{"role": "user", "content": "hi"}], NOTE)
    assert user_first == [{"role": "user", "content": f"{NOTE}\n\nhi"}]
