"""Telegram as an operator runs it: ``atelier run`` with the token in the environment
(polling, both Telegram and Discord when both tokens are set), and webhook mode through
PTB's real webhook server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.adapters.telegram import TelegramAdapter
from bot.app import App
from bot.config import Settings
from tests.adapters_telegram.conftest import start_adapter
from tests.discord_fake import FakeDiscord
from tests.fakes import PacedChatModel
from tests.telegram_fake import FakeBotAPI

REPO = Path(__file__).resolve().parents[2]
START_S = 120.0
ANSWER_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_mode_receives_updates_through_the_real_webhook_server(
    settings: Settings, model: PacedChatModel
) -> None:
    port = _free_port()
    settings.telegram.mode = "webhook"
    settings.telegram.webhook_url = "https://bot.example.invalid/telegram"
    settings.telegram.listen, settings.telegram.port = "127.0.0.1", port
    settings.telegram.webhook_secret = SecretStr("s3cret-token")
    async with FakeBotAPI() as fake:
        fake.set_webhook_target(f"http://127.0.0.1:{port}/telegram", "s3cret-token")
        async with await App.start(settings, chat_model=model) as app:
            adapter: TelegramAdapter = await start_adapter(fake, settings, app)
            try:
                ada = fake.user("Ada")
                chat = fake.private_chat(ada)
                await fake.send_text(chat, ada, "hello over the webhook")
                await fake.until(lambda: fake.bot_messages(chat))
                assert fake.bot_messages(chat)[0]["text"] == "Hello from Telegram."
                (hook,) = fake.calls_of("setWebhook")
                assert hook["url"] == "https://bot.example.invalid/telegram"
                assert hook["secret_token"] == "s3cret-token"
                assert not fake.calls_of("getUpdates")
            finally:
                await adapter.stop()


async def test_a_blocked_chat_is_logged_and_the_bot_goes_on(
    settings: Settings, model: PacedChatModel, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeBotAPI() as fake:
        async with await App.start(settings, chat_model=model) as app:
            adapter = await start_adapter(fake, settings, app)
            try:
                ada, bob = fake.user("Ada"), fake.user("Bob")
                blocked, fine = fake.private_chat(ada), fake.private_chat(bob)
                fake.block(blocked)
                await fake.send_text(blocked, ada, "hi")
                await fake.send_text(fine, bob, "hi")
                await fake.until(lambda: fake.bot_messages(fine))
                await fake.until(lambda: "blocked" in caplog.text)
                sends = [c for c in fake.calls_of("sendMessage") if c["chat_id"] == blocked.id]
                assert len(sends) == 1  # refused once, not retried
            finally:
                await adapter.stop()


async def test_edited_messages_and_channel_posts_are_ignored(
    settings: Settings, model: PacedChatModel
) -> None:
    async with FakeBotAPI() as fake:
        async with await App.start(settings, chat_model=model) as app:
            adapter = await start_adapter(fake, settings, app)
            try:
                ada = fake.user("Ada")
                chat = fake.private_chat(ada)
                news = fake.channel("News")
                sent = await fake.send_text(chat, ada, "/help")
                await fake.until(lambda: fake.bot_messages(chat))
                await fake.edit_text(chat, ada, sent["message_id"], "@atelier_bot hello")
                await fake.channel_post(news, "@atelier_bot hello")
                await fake.send_text(chat, ada, "/help")
                await fake.until(lambda: len(fake.bot_messages(chat)) == 2)
                assert model.seen == []  # neither the edit nor the post reached the agent
            finally:
                await adapter.stop()


def _environment(telegram: FakeBotAPI, discord: FakeDiscord) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ATELIER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(
        ATELIER_TELEGRAM__TOKEN=telegram.token,
        ATELIER_TELEGRAM__BASE_URL=telegram.base_url,
        ATELIER_TELEGRAM__BASE_FILE_URL=telegram.base_file_url,
        ATELIER_TELEGRAM__POLL_TIMEOUT_S="1",
        ATELIER_DISCORD__TOKEN=discord.token,
        ATELIER_DISCORD__API_BASE=discord.api_base,
        ATELIER_DISCORD__GATEWAY_URL=discord.gateway_url,
        ATELIER_PLUGINS__DISABLE_ENTRY_POINTS="true",
        ATELIER_LLM__MAX_TOKENS="24",
        ATELIER_LLM__TEMPERATURE="0",
        ATELIER_LLM__SEED="1",
    )
    return env


@pytest.mark.model
async def test_atelier_run_serves_telegram_and_discord_together(tmp_path: Path) -> None:
    async with FakeBotAPI() as telegram, FakeDiscord() as discord:
        discord.add_guild("Atelier Lab").add_channel("general")
        log = (tmp_path / "atelier.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path / "data"), "run"),
            cwd=tmp_path,
            env=_environment(telegram, discord),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            await telegram.until(lambda: telegram.polling, within=START_S)
            ada = telegram.user("Ada")
            chat = telegram.private_chat(ada)
            await telegram.send_text(chat, ada, "Say hello.")
            await telegram.until(lambda: telegram.bot_messages(chat), within=ANSWER_S)
            await telegram.until(
                lambda: telegram.bot_messages(chat)[0].get("text", "") != "…", within=ANSWER_S
            )
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        output = (tmp_path / "atelier.log").read_text(errors="replace")
        assert code == 0, output[-3000:]
        assert "serving: discord, telegram" in output, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        assert discord.gateway.connections, "the Discord side connected too"
