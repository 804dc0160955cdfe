"""`POST /webhooks/whatsapp/ultramsg/{token}` on the real aiohttp app and database."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.db.models import NotificationLog, OutboxMessage
from core.services.delivery import reference_for
from tests.webhooks.conftest import ULTRAMSG_TOKEN, client_for, sent_message, whatsapp_settings
from webhooks.app import create_runner, create_web_app

pytestmark = pytest.mark.usefixtures("db")

URL = f"/webhooks/whatsapp/ultramsg/{ULTRAMSG_TOKEN}"
UA = "UltraMsg-Webhook/1.0"
ACK_TIME = 1_790_000_000  # 2026-09-21 14:13:20 UTC


def ack(
    ack: str,
    *,
    send_id: str = "",
    reference: str = "",
    wa_id: str = "true_8801711000001@c.us_3EB0A1B2C3D4",
    at: int = ACK_TIME,
    event_type: str = "message_ack",
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "instanceId": "123",
        "id": send_id,
        "referenceId": reference,
        "hash": "a1b2c3",
        "data": {
            "id": wa_id,
            "from": "8801700000000@c.us",
            "to": "8801711000001@c.us",
            "ack": ack,
            "type": "document",
            "body": "",
            "fromMe": True,
            "time": at,
        },
    }


async def post(whatsapp, body: dict[str, Any], url: str = URL):
    return await whatsapp.post(url, json=body, headers={"User-Agent": UA})


async def test_an_ack_is_stored_with_address_and_user_agent_and_moves_the_delivery_status(
    whatsapp,
):
    message = await sent_message("ultramsg", "4711")

    response = await post(whatsapp, ack("read", send_id="4711"))

    assert (response.status, await response.json()) == (
        200,
        {"ok": True, "stored": 1, "duplicates": 0, "unknown": 0},
    )
    log = await NotificationLog.get(message_id=message.id)
    assert (log.status, log.tenant_id, log.invoice_id) == (
        "read",
        message.tenant_id,
        message.invoice_id,
    )
    assert (log.remote_addr, log.user_agent) == ("127.0.0.1", UA)
    assert log.occurred_at == datetime.fromtimestamp(ACK_TIME, UTC)
    assert log.event["data"]["ack"] == "read"
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"


async def test_device_ack_means_delivered(whatsapp):
    message = await sent_message("ultramsg", "4712", delivery_status="sent")

    await post(whatsapp, ack("device", send_id="4712"))

    assert [log.status for log in await NotificationLog.filter(message_id=message.id)] == [
        "delivered"
    ]
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"


async def test_a_pending_ack_stores_nothing(whatsapp):
    message = await sent_message("ultramsg", "4713")

    response = await post(whatsapp, ack("pending", send_id="4713"))

    assert response.status == 200
    assert await NotificationLog.all().count() == 0
    assert (await OutboxMessage.get(id=message.id)).delivery_status is None


async def test_our_reference_finds_the_message_before_the_gateways_ids(whatsapp):
    ours = await sent_message("ultramsg", "5000")
    # Another message holds the id the event carries; the reference still wins.
    other = await sent_message("ultramsg", "5001")

    await post(whatsapp, ack("device", send_id="5001", reference=reference_for(ours.id)))

    assert await NotificationLog.filter(message_id=ours.id).count() == 1
    assert await NotificationLog.filter(message_id=other.id).count() == 0


async def test_an_ack_that_beats_the_workers_commit_finds_the_message_by_reference(whatsapp):
    # The gateway answered the send, but the worker has not recorded it yet.
    message = await sent_message(None, None)

    await post(whatsapp, ack("server", send_id="6000", reference=reference_for(message.id)))

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "sent"
    assert await NotificationLog.filter(message_id=message.id).count() == 1


async def test_whatsapps_own_message_id_finds_the_message_when_there_is_no_send_id(whatsapp):
    message = await sent_message("ultramsg", "true_8801711000001@c.us_3EB0FFFF")

    await post(whatsapp, ack("device", wa_id="true_8801711000001@c.us_3EB0FFFF"))

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"


async def test_a_meta_message_with_the_same_id_is_not_an_ultramsg_message(whatsapp):
    meta = await sent_message("meta", "4714")

    response = await post(whatsapp, ack("read", send_id="4714", reference=reference_for(meta.id)))

    assert (await response.json())["unknown"] == 1
    assert await NotificationLog.all().count() == 0


async def test_an_event_for_an_unknown_message_is_acknowledged_and_not_stored(whatsapp, caplog):
    caplog.set_level(logging.INFO, logger="collectbot.whatsapp")
    await sent_message("ultramsg", "4715")

    response = await post(whatsapp, ack("read", send_id="999999", reference="collectbot-424242"))

    assert (response.status, (await response.json())["unknown"]) == (200, 1)
    assert await NotificationLog.all().count() == 0
    assert "collectbot-424242" in caplog.text


async def test_an_id_too_long_to_be_ours_names_no_message(whatsapp):
    response = await post(whatsapp, ack("read", send_id="x" * 121, wa_id="y" * 500))

    assert (response.status, (await response.json())["unknown"]) == (200, 1)


async def test_other_event_types_are_acknowledged_and_ignored(whatsapp):
    message = await sent_message("ultramsg", "4716")

    for event_type in ("message_received", "message_create", "something_new"):
        response = await post(whatsapp, ack("read", send_id="4716", event_type=event_type))
        assert response.status == 200

    assert await NotificationLog.all().count() == 0
    assert (await OutboxMessage.get(id=message.id)).delivery_status is None


async def test_a_wrong_or_missing_path_token_is_refused_before_the_body_is_read(whatsapp):
    message = await sent_message("ultramsg", "4717")
    base = "/webhooks/whatsapp/ultramsg/"
    for url in (base + "wrong", base + ULTRAMSG_TOKEN + "x", base + ULTRAMSG_TOKEN[:-1]):
        response = await post(whatsapp, ack("read", send_id="4717"), url)
        assert response.status == 401, url
        # Not even read: garbage gets the same answer as a well-formed event.
        garbage = await whatsapp.post(url, data=b"{not json")
        assert garbage.status == 401
    missing = await post(whatsapp, ack("read", send_id="4717"), base)
    assert missing.status in (404, 405)
    assert await NotificationLog.all().count() == 0
    assert (await OutboxMessage.get(id=message.id)).delivery_status is None


async def test_no_token_is_accepted_while_none_is_configured(db, tmp_path: Path):
    client = await client_for(whatsapp_settings(db, tmp_path, ultramsg_webhook_token=None))
    try:
        for token in ("None", "null", "x", ULTRAMSG_TOKEN):
            response = await client.post(f"/webhooks/whatsapp/ultramsg/{token}", json=ack("read"))
            assert response.status == 401
    finally:
        await client.close()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'"message_ack"',
        b"{}",
        b'{"event_type": 5}',
        b'{"event_type": "message_ack"}',
        b'{"event_type": "message_ack", "data": []}',
        b'{"event_type": "message_ack", "data": {"ack": 3}}',
        json.dumps(ack("read") | {"id": {"a": 1}}).encode(),
        json.dumps(ack("read", at=-1)).encode(),
        json.dumps(ack("read") | {"data": ack("read")["data"] | {"time": "soon"}}).encode(),
        json.dumps(ack("read", at=10**30)).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda b: b[:40].decode("latin-1"),
)
async def test_malformed_bodies_get_400_and_the_server_keeps_serving(whatsapp, body):
    response = await whatsapp.post(URL, data=body)

    assert response.status == 400
    assert set(await response.json()) == {"error"}
    health = await whatsapp.get("/healthz")
    assert health.status == 200


async def test_a_body_over_256_kb_is_refused(whatsapp):
    big = json.dumps(ack("read") | {"padding": "x" * (256 * 1024)}).encode()

    declared = await whatsapp.post(URL, data=big)
    streamed = await whatsapp.post(URL, data=io.BytesIO(big))

    async def chunks():
        for n in range(0, len(big), 8192):
            yield big[n : n + 8192]

    chunked = await whatsapp.post(URL, data=chunks())
    assert [declared.status, streamed.status, chunked.status] == [413, 413, 413]
    assert await NotificationLog.all().count() == 0


async def test_the_same_event_twice_is_stored_once(whatsapp):
    message = await sent_message("ultramsg", "4718")

    first = await post(whatsapp, ack("device", send_id="4718"))
    second = await post(whatsapp, ack("device", send_id="4718"))

    assert [(await first.json())["stored"], (await second.json())["duplicates"]] == [1, 1]
    assert await NotificationLog.filter(message_id=message.id).count() == 1


async def test_read_then_delivered_keeps_read_but_logs_both(whatsapp):
    message = await sent_message("ultramsg", "4719")

    await post(whatsapp, ack("read", send_id="4719", at=ACK_TIME + 5))
    await post(whatsapp, ack("device", send_id="4719", at=ACK_TIME))

    logs = await NotificationLog.filter(message_id=message.id).order_by("occurred_at")
    assert [log.status for log in logs] == ["delivered", "read"]
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"


async def test_the_access_log_never_shows_the_ultramsg_token(caplog, db, tmp_path):
    app = create_web_app(whatsapp_settings(db, tmp_path), None)
    runner = create_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/webhooks/whatsapp/ultramsg/{ULTRAMSG_TOKEN}"
                async with session.post(url, json={"event_type": "message_create"}) as answer:
                    assert answer.status == 200
    finally:
        await runner.cleanup()

    [line] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert '"POST /webhooks/whatsapp/ultramsg/***" 200' in line
    assert ULTRAMSG_TOKEN not in line
