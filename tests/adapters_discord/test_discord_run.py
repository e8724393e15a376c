"""``atelier run`` as an operator starts it: the real CLI, the bundled model, a fake Discord.

The bot runs as a child process (``python -m bot.cli run``) configured only through the
environment, as in production; the fake Discord serves it from this test's event loop.
A member mentions the bot and gets a reply; SIGTERM (and SIGINT) end it with exit code 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.discord_fake import FakeDiscord

REPO = Path(__file__).resolve().parents[2]
START_S = 120.0  # loading the bundled model and connecting
ANSWER_S = 120.0  # a CPU answer of the bundled model, with room for a slow machine


def _environment(fake: FakeDiscord) -> dict[str, str]:
    """The parent's environment without ATELIER_* settings, pointed at ``fake``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ATELIER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(
        ATELIER_DISCORD__TOKEN=fake.token,
        ATELIER_DISCORD__API_BASE=fake.api_base,
        ATELIER_DISCORD__GATEWAY_URL=fake.gateway_url,
        ATELIER_DISCORD__SYNC_DEBOUNCE_S="0.05",
        ATELIER_PLUGINS__DISABLE_ENTRY_POINTS="true",
        ATELIER_LLM__MAX_TOKENS="24",  # any answer will do; keep it short
        ATELIER_LLM__TEMPERATURE="0",
        ATELIER_LLM__SEED="1",
    )
    return env


@pytest.mark.model
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_atelier_run_answers_a_mention_and_stops_cleanly_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Atelier Lab")
        general = guild.add_channel("general")
        member = guild.add_member("bob")
        log = (tmp_path / "atelier.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path / "data"), "run"),
            cwd=tmp_path,
            env=_environment(fake),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            await fake.wait_for_call(
                "PUT", f"/applications/*/guilds/{guild.id}/commands", within=START_S
            )
            await fake.send_message(general, member, "Say hello.", mentions_bot=True)
            await fake.wait_for_call("POST", f"/channels/{general.id}/messages", within=ANSWER_S)
            reply = fake.bot_messages_in(general)[0]
            assert reply["content"].strip() or reply["attachments"]

            proc.send_signal(signum)
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        output = (tmp_path / "atelier.log").read_text(errors="replace")
        assert code == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert fake.gateway.connections, "the bot connected to the fake gateway"
