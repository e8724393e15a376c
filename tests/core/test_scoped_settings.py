"""Scoped settings: one driver stores what servers, channels and users set; each plugin
field has one scope, and the operator's own fields cannot be changed from a chat."""

from __future__ import annotations

from bot.app import App
from tests.core.conftest import origin, say


async def test_a_channel_setting_applies_in_that_channel_only(echo_app: App) -> None:
    answer = await say(echo_app, "/plugins config echo topic cats", admin=True, channel="c1")

    assert answer == "echo.topic is now 'cats' in this channel. [echo]"
    assert await say(echo_app, "/cfg", channel="c1") == "topic='cats' tone='plain' [echo]"
    assert await say(echo_app, "/cfg", channel="c2") == "topic='' tone='plain' [echo]"


async def test_each_user_sets_their_own_preferences(echo_app: App) -> None:
    answer = await say(echo_app, "/prefs echo tone loud", user="ada")  # no admin needed

    assert answer == "echo.tone is now 'loud' for you. [echo]"
    assert await say(echo_app, "/cfg", user="ada") == "topic='' tone='loud' [echo]"
    assert await say(echo_app, "/cfg", user="bob") == "topic='' tone='plain' [echo]"
    assert await say(echo_app, "/cfg", user="ada", server="s2") == "topic='' tone='loud' [echo]"


async def test_each_setting_is_changed_only_at_its_own_scope(echo_app: App) -> None:
    by_admin = await say(echo_app, "/plugins config echo tone loud", admin=True)
    by_user = await say(echo_app, "/prefs echo suffix !", user="ada")

    assert by_admin == (
        "error: plugin echo has no setting 'tone' that a server can change; settings: suffix, topic"
    )
    assert by_user == (
        "error: plugin echo has no setting 'suffix' that you can set for yourself; settings: tone"
    )


async def test_the_operators_settings_cannot_be_changed_from_a_chat(app: App) -> None:
    answer = await say(
        app, "/plugins config imagine broker_url redis://attacker:6379/0", admin=True
    )

    assert answer == (
        "error: plugin imagine has no setting 'broker_url' that a server can change; "
        "settings: max_pending_per_user"
    )


async def test_the_system_prompt_and_chat_channels_go_through_the_same_driver(
    app: App,
) -> None:
    await say(app, "/prompt set Answer like a pirate.", admin=True)
    await say(app, "/channel chat on", admin=True)

    identity = await app.services.storage.identify(origin())
    server = await app.plugins.scoped.values("server", identity.server_pk)
    here = await app.plugins.scoped.values("channel", identity.channel_pk)
    assert server[("core", "system_prompt")] == "Answer like a pirate."
    assert here == {("core", "chat"): True}
