"""The outbox worker against fake Ultramsg and Cloud API servers on loopback.

The real worker, the real gateway clients over real HTTP, the real database; only the far
side of the wire is a fake. A clock the test moves stands in for waiting out backoffs.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import pytest_asyncio
from pypdf import PdfReader

from collectbot.fakes.whatsapp import FakeMetaCloud, FakeUltramsg
from collectbot.whatsapp.meta import MetaGateway
from collectbot.whatsapp.ultramsg import UltramsgGateway
from collectbot.whatsapp.worker import OutboxWorker
from core.db.models import AuditLog, OutboxMessage, Subscriber
from core.domain.status import Role
from core.errors import Conflict, NotFound
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from core.services.delivery import reference_for
from core.services.outbox import (
    RetryPolicy,
    claim_due_messages,
    list_undelivered_messages,
    retry_message,
)
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_seconds=30, cap_seconds=600, lease_seconds=60)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def ultramsg() -> AsyncIterator[FakeUltramsg]:
    async with FakeUltramsg() as fake:
        yield fake


@pytest_asyncio.fixture
async def meta() -> AsyncIterator[FakeMetaCloud]:
    async with FakeMetaCloud() as fake:
        yield fake


def ultramsg_worker(
    fake: FakeUltramsg, http: aiohttp.ClientSession, clock: Clock, **kwargs
) -> OutboxWorker:
    gateway = UltramsgGateway(
        http,
        api_url=fake.url,
        instance_id=fake.instance_id,
        token=fake.token,
        timeout_seconds=kwargs.pop("timeout_seconds", 5.0),
    )
    return OutboxWorker(gateway, policy=POLICY, clock=clock, **kwargs)


def meta_worker(
    fake: FakeMetaCloud, http: aiohttp.ClientSession, clock: Clock, template: str | None
) -> OutboxWorker:
    gateway = MetaGateway(
        http,
        graph_url=fake.url,
        phone_number_id=fake.phone_number_id,
        access_token=fake.access_token,
        receipt_template=template,
    )
    return OutboxWorker(gateway, policy=POLICY, clock=clock)


async def collect_a_stop(phone: str = "+8801711000001", **subscriber):
    """A collector takes 1,500 taka for INV-…; returns (admin, payment id, invoice)."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=500, name="Karim")
    customer = await make_subscriber(tenant, phone=phone, **subscriber)
    invoice = await make_invoice(customer, 150_000)
    assigned = await assign_invoices(
        admin, collector_id=collector.id, numbers=[invoice.number], now=NOW
    )
    result = await mark_collected(
        collector,
        assignment_id=assigned.assigned[0].assignment_id,
        idempotency_key=f"k-{invoice.number}",
        now=NOW,
    )
    return admin, result, invoice


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def test_a_receipt_goes_out_through_ultramsg_as_a_pdf_with_its_caption(ultramsg, http):
    _, result, invoice = await collect_a_stop()
    worker = ultramsg_worker(ultramsg, http, Clock())

    assert await worker.send_due_messages() == 1

    [sent] = ultramsg.sent
    message = await OutboxMessage.get(payment_id=result.payment_id)
    assert (sent.to, sent.kind, sent.reference) == (
        "+8801711000001",
        "document",
        reference_for(message.id),
    )
    assert sent.filename.endswith(".pdf")
    assert invoice.number in pdf_text(sent.document)
    assert invoice.number in sent.caption
    assert (message.status, message.provider, message.provider_message_id) == (
        "sent",
        "ultramsg",
        sent.id,
    )
    assert (message.attempts, message.delivery_status, message.sent_at) == (1, "sent", NOW)
    audit = await AuditLog.get(action="whatsapp.send")
    assert (audit.object_id, audit.details["result"], audit.details["attempt"]) == (
        invoice.id,
        "sent",
        1,
    )


async def test_a_gateway_error_500_is_retried_after_a_backoff(ultramsg, http):
    await collect_a_stop()
    clock = Clock()
    worker = ultramsg_worker(ultramsg, http, clock)
    ultramsg.fail_next("http500")

    await worker.send_due_messages()

    message = await OutboxMessage.get()
    assert (message.status, message.attempts) == ("pending", 1)
    assert message.next_attempt_at == NOW + timedelta(seconds=30)
    assert message.last_error == "Ultramsg answered HTTP 500"
    assert ultramsg.sent == []
    # Not due yet: nothing happens; due: it goes.
    clock.advance(seconds=29)
    assert await worker.send_due_messages() == 0
    clock.advance(seconds=1)
    assert await worker.send_due_messages() == 1
    await message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    results = await AuditLog.filter(action="whatsapp.send").order_by("id").all()
    assert [a.details["result"] for a in results] == ["retry", "sent"]


async def test_a_gateway_that_does_not_answer_in_time_is_retried(ultramsg, http):
    await collect_a_stop()
    worker = ultramsg_worker(ultramsg, http, Clock(), timeout_seconds=0.3)
    ultramsg.fail_next("timeout")

    await worker.send_due_messages()

    message = await OutboxMessage.get()
    assert (message.status, message.last_error) == ("pending", "Ultramsg did not answer in time")


async def test_an_ultramsg_200_that_says_not_sent_is_a_failure(ultramsg, http):
    await collect_a_stop()
    worker = ultramsg_worker(ultramsg, http, Clock())
    ultramsg.fail_next("not_sent")

    await worker.send_due_messages()

    message = await OutboxMessage.get()
    assert message.status == "pending"
    assert message.last_error == (
        "Ultramsg did not send it: instance is not authenticated (QR not scanned)"
    )
    assert ultramsg.sent == []


async def test_after_the_last_attempt_the_message_fails_with_the_reason(ultramsg, http):
    await collect_a_stop()
    clock = Clock()
    worker = ultramsg_worker(ultramsg, http, clock)
    ultramsg.fail_next("http500", "http500", "http500")

    for _ in range(3):
        await worker.send_due_messages()
        clock.advance(hours=1)

    message = await OutboxMessage.get()
    assert (message.status, message.attempts, message.next_attempt_at) == ("failed", 3, None)
    assert message.last_error == "Ultramsg answered HTTP 500"
    assert await worker.send_due_messages() == 0
    last = await AuditLog.filter(action="whatsapp.send").order_by("-id").first()
    assert last is not None and last.details["result"] == "failed"


async def test_a_restart_while_a_message_waits_for_its_retry_loses_nothing(ultramsg, http):
    await collect_a_stop()
    clock = Clock()
    ultramsg.fail_next("http500")
    await ultramsg_worker(ultramsg, http, clock).send_due_messages()

    # The process stops; a new one (new worker id, new HTTP session) starts later.
    clock.advance(minutes=5)
    async with aiohttp.ClientSession() as fresh:
        assert await ultramsg_worker(ultramsg, fresh, clock).send_due_messages() == 1

    assert len(ultramsg.sent) == 1
    assert (await OutboxMessage.get()).status == "sent"


async def test_a_worker_that_dies_holding_a_claim_loses_it_when_its_lease_ends(ultramsg, http):
    await collect_a_stop()
    clock = Clock()
    claimed = await claim_due_messages(worker="dead", now=clock(), limit=10, policy=POLICY)
    assert len(claimed) == 1
    worker = ultramsg_worker(ultramsg, http, clock)

    assert await worker.send_due_messages() == 0  # still leased to "dead"
    clock.advance(seconds=61)
    assert await worker.send_due_messages() == 1

    message = await OutboxMessage.get()
    assert (message.status, message.attempts) == ("sent", 2)


async def test_two_workers_racing_send_each_message_exactly_once(ultramsg, http):
    for _ in range(6):
        await collect_a_stop()
    clock = Clock()
    first = ultramsg_worker(ultramsg, http, clock, batch_size=2)
    second = ultramsg_worker(ultramsg, http, clock, batch_size=2)

    counts = await asyncio.gather(first.send_due_messages(), second.send_due_messages())

    assert sum(counts) == 6
    assert sorted(m.reference for m in ultramsg.sent) == sorted(
        reference_for(m.id) for m in await OutboxMessage.all()
    )
    assert len({m.reference for m in ultramsg.sent}) == 6
    assert await AuditLog.filter(action="whatsapp.send").count() == 6


async def test_a_landline_is_refused_when_the_receipt_is_queued_and_never_sent(ultramsg, http):
    _, result, _ = await collect_a_stop(phone="+88029660001")

    assert (result.receipt_queued, result.receipt_refusal) == (
        False,
        "+88029660001 is a landline, which cannot receive WhatsApp",
    )
    message = await OutboxMessage.get()
    assert (message.status, message.last_error) == ("refused", result.receipt_refusal)
    assert await ultramsg_worker(ultramsg, http, Clock()).send_due_messages() == 0


async def test_the_office_lists_undelivered_receipts_and_retries_one(ultramsg, http):
    admin, _, invoice = await collect_a_stop()
    clock = Clock()
    worker = ultramsg_worker(ultramsg, http, clock)
    ultramsg.fail_next("http500", "http500", "http500")
    for _ in range(3):
        await worker.send_due_messages()
        clock.advance(hours=1)

    [failed] = await list_undelivered_messages(admin)
    assert (failed.invoice_number, failed.status, failed.attempts) == (invoice.number, "failed", 3)
    assert failed.last_error == "Ultramsg answered HTTP 500"

    retried = await retry_message(admin, message_id=failed.message_id)
    assert retried.invoice_number == invoice.number
    assert await worker.send_due_messages() == 1
    assert await list_undelivered_messages(admin) == []
    audit = await AuditLog.get(action="whatsapp.retry")
    assert (audit.actor_staff_id, audit.details["previous_status"]) == (admin.id, "failed")


async def test_retrying_a_refused_receipt_needs_a_corrected_number(ultramsg, http):
    admin, _, invoice = await collect_a_stop(phone="+88029660001")
    [refused] = await list_undelivered_messages(admin)

    with pytest.raises(Conflict) as refusal:
        await retry_message(admin, message_id=refused.message_id)
    assert refusal.value.code == "message_refused"
    assert (await OutboxMessage.get()).status == "refused"

    await Subscriber.filter(id=invoice.subscriber_id).update(phone="+8801711000009")
    retried = await retry_message(admin, message_id=refused.message_id)
    assert retried.recipient == "+8801711000009"
    assert await ultramsg_worker(ultramsg, http, Clock()).send_due_messages() == 1
    assert ultramsg.sent[0].to == "+8801711000009"


async def test_retrying_a_message_that_was_sent_is_refused(ultramsg, http):
    admin, _, _ = await collect_a_stop()
    await ultramsg_worker(ultramsg, http, Clock()).send_due_messages()
    message = await OutboxMessage.get()

    with pytest.raises(Conflict) as refusal:
        await retry_message(admin, message_id=message.id)

    assert refusal.value.code == "message_not_undelivered"


async def test_another_companys_admin_cannot_see_or_retry_our_messages(ultramsg, http):
    _, _, _ = await collect_a_stop(phone="+88029660001")
    stranger = await make_staff(await make_tenant(), Role.ADMIN)
    message = await OutboxMessage.get()

    assert await list_undelivered_messages(stranger) == []
    with pytest.raises(NotFound) as missing:
        await retry_message(stranger, message_id=message.id)
    assert missing.value.code == "message_not_found"


async def test_the_cloud_api_gets_the_pdf_as_media_then_a_document_inside_the_window(meta, http):
    _, result, invoice = await collect_a_stop()
    await Subscriber.filter(phone="+8801711000001").update(
        whatsapp_inbound_at=NOW - timedelta(hours=2)
    )

    await meta_worker(meta, http, Clock(), template=None).send_due_messages()

    [sent] = meta.sent
    assert (sent.kind, sent.to) == ("document", "+8801711000001")
    assert invoice.number in pdf_text(sent.document) and invoice.number in sent.caption
    message = await OutboxMessage.get()
    assert (message.status, message.provider, message.provider_message_id) == (
        "sent",
        "meta",
        sent.id,
    )


async def test_outside_the_24_hour_window_the_cloud_api_gets_the_approved_template(meta, http):
    await collect_a_stop()

    await meta_worker(meta, http, Clock(), template="payment_receipt").send_due_messages()

    [sent] = meta.sent
    assert sent.kind == "template"
    assert sent.template["name"] == "payment_receipt"
    assert sent.document.startswith(b"%PDF")
    body = sent.template["components"][1]["parameters"]
    assert all(p["type"] == "text" and p["text"] for p in body)


async def test_outside_the_window_without_a_template_the_receipt_fails_saying_what_to_set(
    meta, http
):
    await collect_a_stop()

    await meta_worker(meta, http, Clock(), template=None).send_due_messages()

    message = await OutboxMessage.get()
    assert message.status == "failed"
    assert "META_RECEIPT_TEMPLATE is not set" in (message.last_error or "")
    assert meta.sent == []


async def test_a_number_whatsapp_cannot_deliver_to_fails_at_once_and_a_busy_api_is_retried(
    meta, http
):
    await collect_a_stop()
    clock = Clock()
    worker = meta_worker(meta, http, clock, template="payment_receipt")
    meta.fail_next("graph_error")

    await worker.send_due_messages()
    message = await OutboxMessage.get()
    assert (message.status, message.last_error) == (
        "pending",
        "the Cloud API refused it: Service unavailable [code 131016]",
    )

    meta.fail_next("bad_number")
    clock.advance(minutes=1)
    await worker.send_due_messages()
    await message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 2)
    assert message.last_error == "the Cloud API refused it: Message undeliverable [code 131026]"


async def test_wrong_cloud_api_credentials_fail_without_retrying(meta, http):
    await collect_a_stop()
    gateway = MetaGateway(
        http,
        graph_url=meta.url,
        phone_number_id=meta.phone_number_id,
        access_token="expired",
        receipt_template="payment_receipt",
    )

    await OutboxWorker(gateway, policy=POLICY, clock=Clock()).send_due_messages()

    message = await OutboxMessage.get()
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error == "the Cloud API refused it: Invalid OAuth access token [code 190]"


async def test_two_workers_claiming_the_same_message_at_once_get_it_once():
    await collect_a_stop()

    first, second = await asyncio.gather(
        claim_due_messages(worker="a", now=NOW, limit=10, policy=POLICY),
        claim_due_messages(worker="b", now=NOW, limit=10, policy=POLICY),
    )

    assert sorted([len(first), len(second)]) == [0, 1]
    message = await OutboxMessage.get()
    assert (message.status, message.attempts) == ("sending", 1)
    assert message.claimed_by == ("a" if first else "b")
