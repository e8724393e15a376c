"""Taking the code out of a Markdown code block, by properties over any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from plugins.code import unfenced


@given(st.text(max_size=300))
def test_unfencing_never_invents_code(text: str) -> None:
    code = unfenced(text)
    assert code in text


def test_fences_are_taken_off() -> None:
    assert unfenced("```python\nprint(1)\n```") == "print(1)"
    assert unfenced("```\nprint(1)```") == "print(1)"
    assert unfenced("print('```')") == "print('```')"
