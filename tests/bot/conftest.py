"""The real Application and the real database against a fake Bot API on loopback.

`chat` gives a test the running bot and the fake Telegram it talks to. Updates are fed
through `Application.process_update`, the same entry the polling loop and the webhook use,
and awaited, so a test reads the chat right after a tap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from collectbot.fakes.telegram import FakeTelegram, FakeUser
from core.config import Settings

TOKEN = "123456:TEST-token"


@dataclass
class Chat:
    app: Application  # type: ignore[type-arg]
    tg: FakeTelegram
    settings: Settings

    async def feed(self, update: dict[str, Any]) -> None:
        await self.app.process_update(Update.de_json(update, self.app.bot))

    async def say(self, user: FakeUser, text: str) -> None:
        await self.feed(self.tg.message(user, text))

    async def tap(self, user: FakeUser, label: str) -> None:
        await self.feed(self.tg.press(user, label))

    def last_text(self, user: FakeUser) -> str:
        return self.tg.chat_log(user.id)[-1].text or ""

    def texts(self, user: FakeUser) -> list[str]:
        return [e.text or "" for e in self.tg.chat_log(user.id) if e.from_bot]


def settings_for(tg: FakeTelegram, data_dir: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=TOKEN,
        bot_username=tg.bot_user["username"],
        telegram_api_url=tg.base_url,
        telegram_file_url=tg.base_file_url,
        data_dir=data_dir,
        database_url=database_url,
    )


@pytest_asyncio.fixture
async def chat(db: str, tmp_path: Path) -> AsyncIterator[Chat]:
    async with FakeTelegram(token=TOKEN, bot_username="dhaka_fiber_bot") as tg:
        settings = settings_for(tg, tmp_path / "data", db)
        app = build_application(settings)
        await app.initialize()
        try:
            yield Chat(app, tg, settings)
        finally:
            await app.shutdown()
