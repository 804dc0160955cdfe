"""Recording delivery statuses and inbound messages, through the real service and database."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from core.db.models import AuditLog, NotificationLog, OutboxMessage, Subscriber
from core.domain.delivery import DeliveryStatus
from core.services.delivery import (
    DeliveryRecorder,
    InboundMessage,
    RecordedEvents,
    RecordedInbound,
    StatusEvent,
    message_id_from_reference,
    record_delivery_events,
    record_inbound_messages,
    reference_for,
)
from tests.factories import make_subscriber, make_tenant
from tests.webhooks.conftest import sent_message

pytestmark = pytest.mark.usefixtures("db")

T0 = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
ORIGIN = {"remote_addr": "203.0.113.7", "user_agent": "gateway/1"}


def event(
    message_id: str,
    status: DeliveryStatus,
    *,
    provider: str = "meta",
    at: datetime = T0,
    reference: str = "",
    error: str = "",
) -> StatusEvent:
    return StatusEvent(
        provider=provider,
        provider_message_id=message_id,
        status=status,
        occurred_at=at,
        raw={"id": message_id, "status": status.value},
        reference=reference,
        error=error,
    )


async def statuses_logged(message: OutboxMessage) -> list[str]:
    return sorted(log.status for log in await NotificationLog.filter(message_id=message.id))


async def delivery_status(message: OutboxMessage) -> str | None:
    return (await OutboxMessage.get(id=message.id)).delivery_status


def test_our_references_name_outbox_messages_and_nothing_else():
    assert reference_for(42) == "collectbot-42"
    assert message_id_from_reference("collectbot-42") == 42
    for other in ("collectbot-", "collectbot-0", "collectbot-042", "collectbot-4x",
                  "xcollectbot-4", "collectbot-99999999999", "collectbot--1", ""):  # fmt: skip
        assert message_id_from_reference(other) is None, other


async def test_an_event_is_stored_once_with_its_origin_and_moves_the_message():
    message = await sent_message("meta", "wamid.1", delivery_status="sent")

    first = await record_delivery_events([event("wamid.1", DeliveryStatus.DELIVERED)], **ORIGIN)
    again = await record_delivery_events([event("wamid.1", DeliveryStatus.DELIVERED)], **ORIGIN)

    assert (first, again) == (
        RecordedEvents(stored=1, status_moved=1),
        RecordedEvents(duplicates=1),
    )
    log = await NotificationLog.get(message_id=message.id)
    assert (log.remote_addr, log.user_agent, log.occurred_at) == ("203.0.113.7", "gateway/1", T0)
    assert (log.tenant_id, log.invoice_id) == (message.tenant_id, message.invoice_id)
    assert await delivery_status(message) == "delivered"


async def test_statuses_only_move_forward_whatever_order_they_arrive_in():
    message = await sent_message("meta", "wamid.2")
    order = [DeliveryStatus.READ, DeliveryStatus.SENT, DeliveryStatus.DELIVERED]

    moved = [
        (await record_delivery_events([event("wamid.2", s)], **ORIGIN)).status_moved for s in order
    ]

    assert moved == [1, 0, 0]
    assert await delivery_status(message) == "read"
    assert await statuses_logged(message) == ["delivered", "read", "sent"]


async def test_failed_replaces_sent_but_not_delivered():
    sent = await sent_message("meta", "wamid.3", delivery_status="sent")
    delivered = await sent_message("meta", "wamid.4", delivery_status="delivered")

    await record_delivery_events(
        [event("wamid.3", DeliveryStatus.FAILED), event("wamid.4", DeliveryStatus.FAILED)],
        **ORIGIN,
    )

    assert [await delivery_status(sent), await delivery_status(delivered)] == [
        "failed",
        "delivered",
    ]


async def test_a_stored_failure_is_audited_once_on_the_invoice_with_the_gateways_error():
    message = await sent_message("meta", "wamid.5", delivery_status="sent")
    failure = event("wamid.5", DeliveryStatus.FAILED, error="131026 Message undeliverable")

    await record_delivery_events([failure], **ORIGIN)
    await record_delivery_events([failure], **ORIGIN)

    audits = await AuditLog.filter(action="whatsapp.delivery_failed")
    assert [(a.actor_kind, a.object_type, a.object_id) for a in audits] == [
        ("webhook", "invoice", message.invoice_id)
    ]
    assert audits[0].details["error"] == "131026 Message undeliverable"
    assert audits[0].remote_addr == "203.0.113.7"


async def test_events_in_one_batch_land_together_and_the_highest_wins():
    message = await sent_message("ultramsg", "77")

    result = await record_delivery_events(
        [
            event("77", DeliveryStatus.READ, provider="ultramsg"),
            event("77", DeliveryStatus.DELIVERED, provider="ultramsg"),
            event("78", DeliveryStatus.READ, provider="ultramsg"),
        ],
        **ORIGIN,
    )

    assert result == RecordedEvents(stored=2, unknown=1, status_moved=1, unknown_ids=("78",))
    assert await delivery_status(message) == "read"


async def test_a_message_is_found_by_reference_only_within_its_own_gateway():
    ultramsg = await sent_message("ultramsg", "100")
    meta = await sent_message("meta", "wamid.100")

    result = await record_delivery_events(
        [
            event("", DeliveryStatus.READ, provider="ultramsg", reference=reference_for(meta.id)),
            event("", DeliveryStatus.READ, provider="meta", reference=reference_for(ultramsg.id)),
            event("", DeliveryStatus.READ, provider="ultramsg", reference="collectbot-0"),
        ],
        **ORIGIN,
    )

    assert (result.stored, result.unknown) == (0, 3)


async def test_empty_ids_match_no_message_without_an_id():
    await sent_message("ultramsg", None)
    await sent_message("ultramsg", "")

    result = await record_delivery_events(
        [event("", DeliveryStatus.READ, provider="ultramsg")], **ORIGIN
    )

    assert (result.stored, result.unknown) == (0, 1)


async def test_a_large_batch_is_stored_in_chunks_within_one_call():
    messages = [await sent_message("meta", f"wamid.big.{n}") for n in range(250)]

    result = await record_delivery_events(
        [event(f"wamid.big.{n}", DeliveryStatus.DELIVERED) for n in range(250)], **ORIGIN
    )

    assert (result.stored, result.status_moved) == (250, 250)
    assert {await delivery_status(m) for m in messages} == {"delivered"}


async def test_concurrent_requests_through_the_recorder_share_one_transaction(caplog):
    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    messages = [await sent_message("meta", f"wamid.gc.{n}") for n in range(20)]
    recorder = DeliveryRecorder()

    results = await asyncio.gather(
        *(
            recorder.record([event(f"wamid.gc.{n}", DeliveryStatus.READ)], **ORIGIN)
            for n in range(20)
        ),
        recorder.record([event("wamid.gc.0", DeliveryStatus.READ)], **ORIGIN),  # a replay
        recorder.record([event("wamid.nobody", DeliveryStatus.READ)], **ORIGIN),
    )
    await recorder.close()

    assert results == [RecordedEvents(stored=1, status_moved=1)] * 20 + [
        RecordedEvents(duplicates=1),
        RecordedEvents(unknown=1, unknown_ids=("wamid.nobody",)),
    ]
    inserts = [r for r in caplog.records if "INSERT INTO notification_log" in str(r.args)]
    assert len(inserts) == 1
    assert {await delivery_status(m) for m in messages} == {"read"}


async def test_a_request_that_cannot_be_stored_fails_alone():
    good = await sent_message("meta", "wamid.ok")
    await sent_message("meta", "wamid.bad")
    recorder = DeliveryRecorder()
    unstorable = StatusEvent(
        provider="meta",
        provider_message_id="wamid.bad",
        status=DeliveryStatus.READ,
        occurred_at=T0,
        raw={"not json": object()},
    )

    results = await asyncio.gather(
        recorder.record([event("wamid.ok", DeliveryStatus.READ)], **ORIGIN),
        recorder.record([unstorable], **ORIGIN),
        return_exceptions=True,
    )

    assert results[0] == RecordedEvents(stored=1, status_moved=1)
    assert isinstance(results[1], TypeError)
    assert await delivery_status(good) == "read"
    assert await NotificationLog.all().count() == 1


async def test_inbound_messages_keep_the_latest_time_per_phone():
    tenant = await make_tenant()
    early = await make_subscriber(tenant, phone="+8801711000010", whatsapp_inbound_at=T0)
    fresh = await make_subscriber(tenant, phone="+8801711000011")

    result = await record_inbound_messages(
        [
            InboundMessage("+8801711000010", T0 - timedelta(hours=1)),
            InboundMessage("+8801711000011", T0 + timedelta(minutes=5)),
            InboundMessage("+8801711000011", T0 + timedelta(minutes=1)),
            InboundMessage("+8801711000099", T0),
        ]
    )

    assert result == RecordedInbound(messages=4, subscribers=1)
    assert (await Subscriber.get(id=early.id)).whatsapp_inbound_at == T0
    assert (await Subscriber.get(id=fresh.id)).whatsapp_inbound_at == T0 + timedelta(minutes=5)


@pytest.mark.postgres_only
async def test_delivered_and_read_racing_always_end_at_read_with_one_row_each():
    rounds = 40
    messages = [await sent_message("meta", f"wamid.race.{n}", delivery_status="sent")
                for n in range(rounds)]  # fmt: skip

    async def report(n: int, status: DeliveryStatus) -> RecordedEvents:
        return await record_delivery_events([event(f"wamid.race.{n}", status)], **ORIGIN)

    for n in range(rounds):
        # Each status twice (a gateway retrying), in both orders, all at once.
        racers = [DeliveryStatus.DELIVERED, DeliveryStatus.READ] * 2
        if n % 2:
            racers.reverse()
        await asyncio.gather(*(report(n, s) for s in racers))

    assert {await delivery_status(m) for m in messages} == {"read"}
    for message in messages:
        assert await statuses_logged(message) == ["delivered", "read"]
