"""Properties of the prompt options: whatever text arrives, the limits hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import UserError
from plugins.imagine.options import build_options, make_params
from workers.config import ImagineSettings

LIMITS = ImagineSettings(max_prompt_chars=50)
HOSTILE = st.text(
    st.characters(exclude_categories=["Cs"])
    | st.sampled_from(["\u200b", "\u202e", "`", "\n", " ", "\x00"]),
    max_size=200,
)


def test_every_free_text_option_has_a_max_length() -> None:
    options = {option.name: option for option in build_options(LIMITS)}
    free_text = [o for o in options.values() if o.type == "string" and o.choices is None]
    assert {o.name for o in free_text} == {"prompt", "negative"}
    assert all(o.max_length == LIMITS.max_prompt_chars for o in free_text)


@given(prompt=HOSTILE, negative=HOSTILE)
@settings(max_examples=200, deadline=None)
def test_params_are_refused_or_within_the_limits(prompt: str, negative: str) -> None:
    try:
        params = make_params(LIMITS, prompt, negative=negative)
    except UserError as exc:
        assert exc.user_message.startswith(("option prompt:", "option negative:"))
        return
    assert 0 < len(params.prompt) <= LIMITS.max_prompt_chars
    assert len(params.negative) <= LIMITS.max_prompt_chars
