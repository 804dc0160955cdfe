"""The office and subscribers' WhatsApp messages in the chat: undelivered ones and a retry,
the wording subscribers receive, an invoice as a PDF, and the delivery log in a story.

The real Application over the fake Bot API; receipts go through the real outbox worker to
a fake Ultramsg on loopback.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from pypdf import PdfReader

from collectbot.fakes.whatsapp import FakeUltramsg
from collectbot.whatsapp.ultramsg import UltramsgGateway
from collectbot.whatsapp.worker import OutboxWorker
from core.db.models import OutboxMessage
from core.domain.dates import utcnow
from core.domain.delivery import DeliveryStatus
from core.domain.status import Role
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected
from core.services.delivery import StatusEvent, record_delivery_events, reference_for
from core.services.outbox import RetryPolicy
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant

NADIA = 9001


@pytest_asyncio.fixture
async def ultramsg() -> AsyncIterator[FakeUltramsg]:
    async with FakeUltramsg() as fake:
        yield fake


async def _office(chat, phones=("+8801711000001",)):
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=NADIA)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=500)
    invoices = []
    for n, phone in enumerate(phones):
        subscriber = await make_subscriber(tenant, name=f"Rahim {n}", phone=phone)
        invoice = await make_invoice(subscriber, 150_000)
        assigned = await assign_invoices(admin, collector_id=karim.id, numbers=[invoice.number])
        await mark_collected(
            karim,
            assignment_id=assigned.outcomes[0].assignment_id,
            idempotency_key=f"k{n}",
        )
        invoices.append(invoice)
    return tenant, admin, invoices, chat.tg.user(NADIA, "Nadia")


async def _send_all(fake: FakeUltramsg, *, max_attempts: int = 8) -> None:
    async with aiohttp.ClientSession() as http:
        gateway = UltramsgGateway(
            http, api_url=fake.url, instance_id=fake.instance_id, token=fake.token
        )
        policy = RetryPolicy(max_attempts=max_attempts)
        await OutboxWorker(gateway, policy=policy).send_due_messages()


def _buttons(chat, user) -> list[tuple[str, str]]:
    message = chat.tg.chat_log(user.id)[-1].message
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def test_undelivered_says_so_when_everything_got_through(chat, ultramsg):
    *_, nadia = await _office(chat)
    await _send_all(ultramsg)

    await chat.say(nadia, "/undelivered")

    assert chat.last_text(nadia) == "Every WhatsApp message got through or is still on its way."


async def test_undelivered_lists_failed_and_refused_receipts_each_with_a_retry_button(
    chat, ultramsg
):
    _, _, invoices, nadia = await _office(chat, phones=("+8801711000001", "+88029660001"))
    ultramsg.fail_next("http500")
    await _send_all(ultramsg, max_attempts=1)

    await chat.say(nadia, "/undelivered")

    texts = chat.texts(nadia)
    assert texts[0] == "Undelivered WhatsApp messages (newest 2)"
    assert texts[1] == (
        f"receipt · {invoices[1].number} · Rahim 1 · +88029660001\n"
        "not sent: +88029660001 is a landline, which cannot receive WhatsApp"
    )
    assert texts[2] == (
        f"receipt · {invoices[0].number} · Rahim 0 · +8801711000001\n"
        "gave up after 1 attempts: Ultramsg answered HTTP 500"
    )
    first = await OutboxMessage.get(invoice_id=invoices[0].id)
    assert _buttons(chat, nadia) == [("🔁 Retry", f"off:rt:{first.id}")]


async def test_retry_sends_a_failed_receipt_again(chat, ultramsg):
    _, _, invoices, nadia = await _office(chat)
    ultramsg.fail_next("http500")
    await _send_all(ultramsg, max_attempts=1)
    await chat.say(nadia, "/undelivered")

    await chat.tap(nadia, "🔁 Retry")

    assert chat.last_text(nadia) == (
        f"It will be sent again to +8801711000001 ({invoices[0].number}) within a minute."
    )
    await _send_all(ultramsg)
    assert [m.to for m in ultramsg.sent] == ["+8801711000001"]
    assert (await OutboxMessage.get()).status == "sent"


async def test_a_forged_retry_button_for_another_companys_message_is_not_found(chat, ultramsg):
    *_, nadia = await _office(chat)
    other_tenant = await make_tenant()
    other_admin = await make_staff(other_tenant, Role.ADMIN)
    other_collector = await make_staff(other_tenant, Role.COLLECTOR)
    invoice = await make_invoice(await make_subscriber(other_tenant, phone="+88029660001"))
    assigned = await assign_invoices(
        other_admin, collector_id=other_collector.id, numbers=[invoice.number]
    )
    await mark_collected(
        other_collector, assignment_id=assigned.outcomes[0].assignment_id, idempotency_key="x"
    )
    foreign = await OutboxMessage.get(invoice_id=invoice.id)
    await chat.say(nadia, "/undelivered")
    shown = chat.tg.chat_log(NADIA)[-1].message

    await chat.feed(chat.tg.callback(nadia, f"off:rt:{foreign.id}", shown))

    answer = chat.tg.sent(method="answerCallbackQuery")[-1]
    assert answer.params["text"] == "That message does not exist."
    assert (await OutboxMessage.get(id=foreign.id)).status == "refused"


async def test_templates_shows_the_receipt_wording_subscribers_receive(chat):
    *_, nadia = await _office(chat)

    await chat.say(nadia, "/templates")

    text = "\n".join(chat.texts(nadia))
    assert text.startswith("What subscribers receive on WhatsApp")
    assert "receipt · en · templates/whatsapp/en/receipt.txt" in text
    assert "receipt · bn · templates/whatsapp/bn/receipt.txt" in text


async def test_invoicepdf_sends_the_invoice_with_its_payment_as_a_pdf(chat):
    _, _, invoices, nadia = await _office(chat)

    await chat.say(nadia, f"/invoicepdf {invoices[0].number}")

    [call] = chat.tg.sent(NADIA, "sendDocument")
    upload = next(iter(call.files.values()))
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(upload.data)).pages)
    assert invoices[0].number in text
    assert upload.filename.endswith(".pdf")


async def test_invoicepdf_without_a_number_or_of_another_company_is_one_sentence(chat):
    *_, nadia = await _office(chat)
    foreign = await make_invoice(await make_subscriber(await make_tenant()))

    await chat.say(nadia, "/invoicepdf")
    await chat.say(nadia, f"/invoicepdf {foreign.number}")

    assert chat.texts(nadia) == [
        "Send it like this: /invoicepdf INV-2026-0042",
        f"There is no invoice {foreign.number} in your company.",
    ]
    assert chat.tg.sent(NADIA, "sendDocument") == []


async def _report(message: OutboxMessage, status: DeliveryStatus, error: str = "") -> None:
    """The gateway's webhook, as the receiver records it."""
    event = StatusEvent(
        provider="ultramsg",
        provider_message_id=message.provider_message_id or "",
        status=status,
        occurred_at=utcnow(),
        raw={"ack": status.value},
        reference=reference_for(message.id),
        error=error,
    )
    await record_delivery_events([event], remote_addr="127.0.0.1", user_agent="test")


async def test_the_story_shows_a_receipt_sent_then_delivered_then_read(chat, ultramsg):
    _, _, invoices, nadia = await _office(chat)
    await _send_all(ultramsg)
    message = await OutboxMessage.get()
    await _report(message, DeliveryStatus.DELIVERED)
    await _report(message, DeliveryStatus.READ)

    await chat.say(nadia, f"/invoice {invoices[0].number}")

    [line] = [t for t in chat.last_text(nadia).splitlines() if "WhatsApp receipt" in t]
    assert re.fullmatch(
        r"• WhatsApp receipt to \+8801711000001: sent \d\d:\d\d · delivered \d\d:\d\d"
        r" · read \d\d:\d\d",
        line,
    ), line


async def test_a_receipt_whatsapp_could_not_deliver_shows_the_gateways_reason(chat, ultramsg):
    _, _, invoices, nadia = await _office(chat)
    await _send_all(ultramsg)
    message = await OutboxMessage.get()
    await _report(message, DeliveryStatus.FAILED, error="131026 Message undeliverable")

    await chat.say(nadia, f"/invoice {invoices[0].number}")
    story = chat.last_text(nadia)
    await chat.say(nadia, "/undelivered")

    assert re.search(
        r"• WhatsApp receipt to \+8801711000001: sent \d\d:\d\d · failed \d\d:\d\d"
        r" \(131026 Message undeliverable\)",
        story,
    ), story
    assert chat.last_text(nadia) == (
        f"receipt · {invoices[0].number} · Rahim 0 · +8801711000001\n"
        "WhatsApp could not deliver it: 131026 Message undeliverable"
    )
