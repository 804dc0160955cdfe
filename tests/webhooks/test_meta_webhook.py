"""`GET` and `POST /webhooks/whatsapp/meta` on the real aiohttp app and database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.db.models import AuditLog, NotificationLog, OutboxMessage, Subscriber
from core.services.delivery import reference_for
from tests.factories import make_subscriber, make_tenant
from tests.webhooks.conftest import (
    META_APP_SECRET,
    META_VERIFY_TOKEN,
    client_for,
    sent_message,
    whatsapp_settings,
)
from webhooks.whatsapp import META_SIGNATURE_HEADER, meta_signature

pytestmark = pytest.mark.usefixtures("db")

URL = "/webhooks/whatsapp/meta"
UA = "facebookexternalua"
T0 = 1_790_000_000


def status(wamid: str, name: str, at: int = T0, **extra: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": name,
        "timestamp": str(at),
        "recipient_id": "8801711000001",
        **extra,
    }


def inbound(sender: str, at: int = T0, text: str = "hi") -> dict[str, Any]:
    return {"from": sender, "id": f"wamid.in-{sender}-{at}", "timestamp": str(at),
            "type": "text", "text": {"body": text}}  # fmt: skip


def notification(
    statuses: list[dict[str, Any]] = (), messages: list[dict[str, Any]] = ()
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "8801700000000", "phone_number_id": "1234"},
    }
    if statuses:
        value["statuses"] = list(statuses)
    if messages:
        value["messages"] = list(messages)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }


async def post(whatsapp, body: dict[str, Any] | bytes, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"User-Agent": UA, "Content-Type": "application/json"}
    headers[META_SIGNATURE_HEADER] = signature or meta_signature(META_APP_SECRET, raw)
    # aiohttp warns about large `bytes` bodies; a stream is what a real client would send.
    data = io.BytesIO(raw) if len(raw) > 1_000_000 else raw
    return await whatsapp.post(URL, data=data, headers=headers)


# --- the handshake ---------------------------------------------------------------------------


async def test_the_handshake_answers_the_challenge_to_the_right_verify_token(whatsapp):
    query = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN,
             "hub.challenge": "1158201444"}  # fmt: skip

    response = await whatsapp.get(URL, params=query)

    assert (response.status, response.content_type, await response.text()) == (
        200,
        "text/plain",
        "1158201444",
    )


async def test_the_handshake_is_forbidden_with_a_wrong_token_or_mode(whatsapp):
    for query in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {
            "hub.mode": "subscribe",
            "hub.verify_token": f"{META_VERIFY_TOKEN}x",
            "hub.challenge": "1",
        },
        {"hub.mode": "unsubscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ):
        response = await whatsapp.get(URL, params=query)
        assert response.status == 403, query
        assert "1" not in await response.text()


async def test_the_handshake_is_forbidden_while_no_verify_token_is_configured(db, tmp_path: Path):
    client = await client_for(whatsapp_settings(db, tmp_path, meta_verify_token=None))
    try:
        query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        assert (await client.get(URL, params=query)).status == 403
    finally:
        await client.close()


# --- signatures ------------------------------------------------------------------------------


async def test_events_without_a_valid_signature_are_refused_before_parsing(whatsapp):
    message = await sent_message("meta", "wamid.S1")
    body = json.dumps(notification([status("wamid.S1", "read")])).encode()
    other = json.dumps(notification([status("wamid.S1", "delivered")])).encode()
    good = meta_signature(META_APP_SECRET, body)

    refused = [
        await whatsapp.post(URL, data=body),  # no header
        await post(whatsapp, body, "sha256=" + "0" * 64),
        await post(whatsapp, body, meta_signature(META_APP_SECRET, other)),  # another body
        await post(whatsapp, body, meta_signature("another-secret", body)),
        await post(whatsapp, body, good.removeprefix("sha256=")),  # no scheme
        await post(whatsapp, body, "sha1=" + good.removeprefix("sha256=")),
        await post(whatsapp, body, good + "00"),
        await post(whatsapp, body, "sha256=ünïcode"),
        await post(whatsapp, b"{not json", "sha256=" + "0" * 64),  # garbage, unsigned
    ]

    assert [r.status for r in refused] == [401] * len(refused)
    assert await NotificationLog.all().count() == 0
    assert (await OutboxMessage.get(id=message.id)).delivery_status is None


async def test_an_uppercase_hex_signature_is_the_same_signature(whatsapp):
    message = await sent_message("meta", "wamid.S2")
    body = json.dumps(notification([status("wamid.S2", "delivered")])).encode()
    signature = meta_signature(META_APP_SECRET, body)

    response = await post(whatsapp, body, "sha256=" + signature.removeprefix("sha256=").upper())

    assert response.status == 200
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"


async def test_nothing_is_accepted_while_no_app_secret_is_configured(db, tmp_path: Path):
    client = await client_for(whatsapp_settings(db, tmp_path, meta_app_secret=None))
    try:
        body = json.dumps(notification([status("wamid.S3", "read")])).encode()
        for signature in (meta_signature("", body), meta_signature("None", body)):
            response = await client.post(
                URL, data=body, headers={META_SIGNATURE_HEADER: signature}
            )
            assert response.status == 401
    finally:
        await client.close()


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [1]}]}',
        json.dumps(notification([{"status": "read"}])).encode(),
        json.dumps(notification([status("wamid.X", "read", at="yesterday")])).encode(),  # type: ignore[arg-type]
        json.dumps(notification(messages=[{"id": "wamid.Y"}])).encode(),
        json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "messages", "value": []}]}],
            }
        ).encode(),
    ],
    ids=lambda b: b[:40].decode("latin-1"),
)
async def test_malformed_json_after_a_valid_signature_gets_400(whatsapp, body):
    response = await post(whatsapp, body)

    assert response.status == 400
    assert set(await response.json()) == {"error"}


async def test_notifications_of_other_objects_and_fields_are_acknowledged_and_ignored(whatsapp):
    message = await sent_message("meta", "wamid.O1")
    template_update = notification([status("wamid.O1", "read")])
    template_update["entry"][0]["changes"][0]["field"] = "message_template_status_update"
    page = notification([status("wamid.O1", "read")]) | {"object": "page"}

    for body in (template_update, page, notification([status("wamid.O1", "deleted")])):
        assert (await post(whatsapp, body)).status == 200

    assert await NotificationLog.all().count() == 0
    assert (await OutboxMessage.get(id=message.id)).delivery_status is None


async def test_a_body_over_the_3_mb_meta_documents_is_refused(whatsapp):
    big = json.dumps(notification([status("wamid.B", "read")]) | {"pad": "x" * 3_145_728})
    raw = big.encode()
    signature = meta_signature(META_APP_SECRET, raw)

    declared = await post(whatsapp, raw, signature)
    streamed = await whatsapp.post(
        URL, data=io.BytesIO(raw), headers={META_SIGNATURE_HEADER: signature}
    )

    assert [declared.status, streamed.status] == [413, 413]


async def test_a_large_batch_under_the_meta_limit_is_accepted(whatsapp):
    message = await sent_message("meta", "wamid.L1")
    body = notification([status("wamid.L1", "read")]) | {"pad": "x" * 1_500_000}

    response = await post(whatsapp, body)

    assert response.status == 200
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"


# --- statuses --------------------------------------------------------------------------------


async def test_a_status_is_stored_with_address_user_agent_and_time(whatsapp):
    message = await sent_message("meta", "wamid.M1", delivery_status="sent")

    response = await post(whatsapp, notification([status("wamid.M1", "delivered")]))

    assert (response.status, (await response.json())["stored"]) == (200, 1)
    log = await NotificationLog.get(message_id=message.id)
    assert (log.status, log.remote_addr, log.user_agent) == ("delivered", "127.0.0.1", UA)
    assert (log.tenant_id, log.invoice_id) == (message.tenant_id, message.invoice_id)
    assert log.occurred_at == datetime.fromtimestamp(T0, UTC)
    assert log.event == status("wamid.M1", "delivered")
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"


async def test_our_echoed_reference_finds_a_message_the_worker_has_not_recorded_yet(whatsapp):
    message = await sent_message(None, None)
    echoed = status("wamid.R1", "delivered", biz_opaque_callback_data=reference_for(message.id))

    await post(whatsapp, notification([echoed]))

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"


async def test_the_same_event_twice_is_stored_once(whatsapp):
    message = await sent_message("meta", "wamid.M2")
    body = notification([status("wamid.M2", "delivered")])

    await post(whatsapp, body)
    again = await post(whatsapp, body)

    assert (await again.json())["duplicates"] == 1
    assert await NotificationLog.filter(message_id=message.id).count() == 1


async def test_read_then_delivered_keeps_read_but_logs_both(whatsapp):
    message = await sent_message("meta", "wamid.M3")

    await post(whatsapp, notification([status("wamid.M3", "read", T0 + 3)]))
    await post(whatsapp, notification([status("wamid.M3", "delivered", T0)]))

    logs = await NotificationLog.filter(message_id=message.id).order_by("occurred_at")
    assert [log.status for log in logs] == ["delivered", "read"]
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"


async def test_a_read_alone_moves_the_message_to_read(whatsapp):
    message = await sent_message("meta", "wamid.M4", delivery_status="sent")

    await post(whatsapp, notification([status("wamid.M4", "read")]))

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"


async def test_one_body_with_several_statuses_stores_each(whatsapp):
    first = await sent_message("meta", "wamid.M5")
    second = await sent_message("meta", "wamid.M6")
    body = notification(
        [
            status("wamid.M5", "sent"),
            status("wamid.M5", "delivered", T0 + 1),
            status("wamid.M6", "read", T0 + 2),
            status("wamid.M5", "delivered", T0 + 1),  # repeated within the batch
        ]
    )

    response = await post(whatsapp, body)

    assert await response.json() == {
        "ok": True, "stored": 3, "duplicates": 1, "unknown": 0, "inbound": 0,
    }  # fmt: skip
    assert [(await OutboxMessage.get(id=m.id)).delivery_status for m in (first, second)] == [
        "delivered",
        "read",
    ]


async def test_a_failed_status_is_stored_with_the_error_and_audited(whatsapp):
    message = await sent_message("meta", "wamid.F1", delivery_status="sent")
    errors = [
        {
            "code": 131047,
            "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "Message failed to send because more than 24 hours"},
        }
    ]

    await post(whatsapp, notification([status("wamid.F1", "failed", errors=errors)]))

    log = await NotificationLog.get(message_id=message.id)
    assert (log.status, log.event["errors"]) == ("failed", errors)
    assert (await OutboxMessage.get(id=message.id)).delivery_status == "failed"
    audit = await AuditLog.get(action="whatsapp.delivery_failed")
    assert (audit.actor_kind, audit.tenant_id, audit.object_type, audit.object_id) == (
        "webhook",
        message.tenant_id,
        "invoice",
        message.invoice_id,
    )
    assert (audit.remote_addr, audit.user_agent) == ("127.0.0.1", UA)
    assert audit.details["error"] == (
        "131047 Re-engagement message: Message failed to send because more than 24 hours"
    )
    assert audit.details["message_id"] == message.id


async def test_a_failure_after_delivery_is_logged_but_does_not_undo_the_delivery(whatsapp):
    message = await sent_message("meta", "wamid.F2")

    await post(whatsapp, notification([status("wamid.F2", "delivered")]))
    await post(whatsapp, notification([status("wamid.F2", "failed", T0 + 1, errors=[])]))

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "delivered"
    assert await NotificationLog.filter(message_id=message.id).count() == 2


async def test_an_event_for_an_unknown_message_is_acknowledged_and_not_stored(whatsapp):
    await sent_message("meta", "wamid.K1")
    await sent_message("ultramsg", "wamid.K2")  # the id of another gateway's message

    response = await post(
        whatsapp, notification([status("wamid.nope", "read"), status("wamid.K2", "read")])
    )

    assert (response.status, (await response.json())["unknown"]) == (200, 2)
    assert await NotificationLog.all().count() == 0


# --- inbound messages ------------------------------------------------------------------------


async def test_an_inbound_message_sets_when_the_subscriber_last_wrote(whatsapp):
    tenant = await make_tenant()
    subscriber = await make_subscriber(tenant, phone="+8801711000001")
    same_phone_elsewhere = await make_subscriber(await make_tenant(), phone="+8801711000001")
    bystander = await make_subscriber(tenant, phone="+8801711000002")

    response = await post(whatsapp, notification(messages=[inbound("8801711000001", T0)]))

    assert (await response.json())["inbound"] == 1
    at = datetime.fromtimestamp(T0, UTC)
    assert [
        (await Subscriber.get(id=s.id)).whatsapp_inbound_at
        for s in (subscriber, same_phone_elsewhere, bystander)
    ] == [at, at, None]


async def test_an_older_inbound_message_never_moves_the_time_back(whatsapp):
    subscriber = await make_subscriber(await make_tenant(), phone="+8801711000003")

    await post(whatsapp, notification(messages=[inbound("8801711000003", T0 + 60)]))
    await post(
        whatsapp,
        notification(messages=[inbound("8801711000003", T0), inbound("8801711000003", T0 + 30)]),
    )

    after = await Subscriber.get(id=subscriber.id)
    assert after.whatsapp_inbound_at == datetime.fromtimestamp(T0 + 60, UTC)


async def test_statuses_and_messages_in_one_body_are_both_recorded(whatsapp):
    message = await sent_message("meta", "wamid.SM1")
    subscriber = await make_subscriber(await make_tenant(), phone="+8801711000004")

    await post(
        whatsapp,
        notification([status("wamid.SM1", "read")], [inbound("8801711000004", T0 + 9)]),
    )

    assert (await OutboxMessage.get(id=message.id)).delivery_status == "read"
    assert (await Subscriber.get(id=subscriber.id)).whatsapp_inbound_at == datetime.fromtimestamp(
        T0 + 9, UTC
    )
