"""`POST /telegram` and `GET /healthz` on the real aiohttp app with the real Application."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import build_application
from collectbot.fakes.telegram import FakeTelegram
from core.domain.status import Role
from tests.bot.conftest import TOKEN, settings_for
from tests.factories import make_staff, make_tenant
from webhooks.app import SECRET_HEADER, create_web_app

SECRET = "s3cret-token_for-tests"


@dataclass
class Web:
    client: TestClient
    tg: FakeTelegram


@pytest_asyncio.fixture
async def web(db: str, tmp_path: Path) -> AsyncIterator[Web]:
    async with FakeTelegram(token=TOKEN) as tg:
        settings = settings_for(tg, tmp_path, db).model_copy(
            update={"telegram_mode": "webhook", "telegram_webhook_secret": SECRET}
        )
        application = build_application(settings)
        async with application:
            await application.start()
            client = TestClient(TestServer(create_web_app(settings, application)))
            await client.start_server()
            try:
                yield Web(client, tg)
            finally:
                await client.close()
                await application.stop()


async def test_an_update_with_the_right_secret_reaches_the_bot(web):
    tenant = await make_tenant()
    await make_staff(tenant, Role.ADMIN, telegram_user_id=9101)
    nadia = web.tg.user(9101, "Nadia")

    response = await web.client.post(
        "/telegram", json=web.tg.message(nadia, "/help"), headers={SECRET_HEADER: SECRET}
    )

    assert response.status == 200
    calls = await web.tg.wait_for("sendMessage", chat_id=nadia.id)
    assert "/assign" in calls[0].params["text"]


async def test_a_missing_or_wrong_secret_is_refused_before_the_body_is_read(web):
    stranger = web.tg.user(9102, "Mallory")
    update = web.tg.message(stranger, "/start")
    for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}):
        response = await web.client.post("/telegram", json=update, headers=headers)
        assert response.status == 401
    response = await web.client.post("/telegram", data=b"{not json", headers={})
    assert response.status == 401
    assert web.tg.sent(chat_id=stranger.id) == []


async def test_malformed_bodies_get_400_and_the_server_keeps_serving(web):
    headers = {SECRET_HEADER: SECRET}
    for body in (
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"message": {}}',
        b'{"update_id": "x"}',
        json.dumps({"update_id": 5, "message": {"chat": "nope"}}).encode(),
    ):
        response = await web.client.post("/telegram", data=body, headers=headers)
        assert response.status == 400, body
    health = await web.client.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok", "database": "ok"})


async def test_a_body_over_a_megabyte_is_refused(web):
    response = await web.client.post(
        "/telegram", data=io.BytesIO(b"x" * (1024 * 1024 + 1)), headers={SECRET_HEADER: SECRET}
    )
    assert response.status == 413


async def test_the_same_update_delivered_twice_is_handled_once(web):
    tenant = await make_tenant()
    await make_staff(tenant, Role.ADMIN, telegram_user_id=9103)
    nadia = web.tg.user(9103, "Nadia")
    update = web.tg.message(nadia, "/help")
    headers = {SECRET_HEADER: SECRET}

    first = await web.client.post("/telegram", json=update, headers=headers)
    second = await web.client.post("/telegram", json=update, headers=headers)

    assert (await first.json(), await second.json()) == (
        {"ok": True},
        {"ok": True, "duplicate": True},
    )
    await web.tg.wait_for("sendMessage", chat_id=nadia.id)
    assert len(web.tg.sent(chat_id=nadia.id, method="sendMessage")) == 1
