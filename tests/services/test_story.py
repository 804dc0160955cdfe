"""An invoice's whole story: payments, visits, messages and the audit trail, in order."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.db.models import Invoice, NotificationLog, OutboxMessage, StoredFile
from core.domain.status import (
    AssignmentStatus,
    FailureReason,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
)
from core.errors import NotFound, PermissionDenied
from core.services.access import COLLECTORS_ASSIGN, COLLECTORS_VIEW, Origin
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.story import DeliveryEvent, ReceiptPhoto, invoice_story
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant

pytestmark = pytest.mark.usefixtures("db")

ASSIGNED_AT = datetime(2026, 11, 22, 3, 10, tzinfo=UTC)  # 09:10 in Dhaka
FAILED_AT = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
COLLECTED_AT = datetime(2026, 11, 24, 4, 42, tzinfo=UTC)  # 10:42 in Dhaka
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def _telegram(user_id: int) -> Origin:
    return Origin(channel="telegram", telegram_user_id=user_id, telegram_chat_id=user_id)


async def _paid_after_a_closed_door():
    """Nadia assigns INV to Karim on the 22nd; nobody is home; Karim comes back on the 24th
    and collects ৳1,500 cash with a receipt photo; the WhatsApp receipt is delivered."""
    tenant = await make_tenant()
    nadia = await make_staff(tenant, Role.ADMIN, name="Nadia", telegram_user_id=5551000)
    karim = await make_staff(
        tenant,
        Role.COLLECTOR,
        name="Karim",
        phone="+8801811000002",
        telegram_user_id=5551234,
        commission_bp=500,
    )
    rahim = await make_subscriber(tenant, name="Rahim Uddin", username="rahim")
    invoice = await make_invoice(rahim, 150_000, purpose=InvoicePurpose.RENEWAL)
    first = await assign_invoices(
        nadia,
        collector_id=karim.id,
        numbers=[invoice.number],
        origin=_telegram(5551000),
        now=ASSIGNED_AT,
    )
    failed = await mark_failed(
        karim,
        assignment_id=first.outcomes[0].assignment_id,
        reason=FailureReason.NOT_HOME,
        origin=_telegram(5551234),
        now=FAILED_AT,
    )
    photo = await StoredFile.create(
        tenant=tenant,
        sha256="ab" * 32,
        path="photos/ab.jpg",
        content_type="image/jpeg",
        size_bytes=10,
        telegram_file_id="AgACphoto",
    )
    collected = await mark_collected(
        karim,
        assignment_id=failed.next_assignment_id,
        idempotency_key="tg:1",
        receipt_file_id=photo.id,
        reference="R-7",
        origin=_telegram(5551234),
        now=COLLECTED_AT,
    )
    receipt = await OutboxMessage.get(payment_id=collected.payment_id)
    await OutboxMessage.filter(id=receipt.id).update(status="sent", sent_at=COLLECTED_AT)
    for status, minute in (("sent", 42), ("delivered", 43)):
        await NotificationLog.create(
            tenant=tenant,
            message_id=receipt.id,
            invoice_id=invoice.id,
            status=status,
            occurred_at=datetime(2026, 11, 24, 4, minute, tzinfo=UTC),
        )
    return tenant, nadia, karim, invoice, photo, collected, failed


async def test_the_story_of_a_paid_invoice_tells_who_collected_it_when_and_how():
    tenant, nadia, karim, invoice, photo, collected, _ = await _paid_after_a_closed_door()

    story = await invoice_story(nadia, number=invoice.number.lower(), now=NOW)

    facts = story.invoice
    assert (facts.number, facts.subscriber_name, facts.purpose, facts.status) == (
        invoice.number,
        "Rahim Uddin",
        InvoicePurpose.RENEWAL,
        InvoiceStatus.PAID,
    )
    assert (facts.amount_minor, facts.paid_minor, facts.due_now_minor, facts.overdue) == (
        150_000,
        150_000,
        0,
        False,
    )
    assert [
        (
            p.amount_minor,
            p.method,
            p.received_at,
            p.collector_name,
            p.collector_phone,
            p.reference,
            p.receipt_file_id,
            p.receipt,
        )
        for p in story.payments
    ] == [
        (
            150_000,
            PaymentMethod.CASH,
            COLLECTED_AT,
            "Karim",
            "+8801811000002",
            "R-7",
            photo.id,
            ReceiptPhoto(photo.id, "photos/ab.jpg", "image/jpeg", "AgACphoto"),
        )
    ]


async def test_the_story_lists_every_visit_in_order_with_its_outcome():
    tenant, nadia, karim, invoice, _, _, failed = await _paid_after_a_closed_door()

    story = await invoice_story(nadia, number=invoice.number, now=NOW)

    assert [
        (
            v.day,
            v.collector_name,
            v.status,
            v.failure_reason,
            v.collected_minor,
            v.assigned_by_name,
        )
        for v in story.visits
    ] == [
        (date(2026, 11, 22), "Karim", AssignmentStatus.FAILED, FailureReason.NOT_HOME, 0, "Nadia"),
        (date(2026, 11, 24), "Karim", AssignmentStatus.COLLECTED, None, 150_000, "Nadia"),
    ]
    assert story.visits[1].assignment_id == failed.next_assignment_id


async def test_the_story_keeps_the_audit_trail_with_who_did_it_and_from_which_telegram_account():
    tenant, nadia, karim, invoice, *_ = await _paid_after_a_closed_door()

    story = await invoice_story(nadia, number=invoice.number, now=NOW)

    # Audit rows are stamped by the database clock, in the order the actions happened.
    assert [
        (a.actor_kind, a.actor_name, a.action, a.telegram_user_id, a.collector_name)
        for a in story.audit
    ] == [
        ("staff", "Nadia", "assignment.create", 5551000, "Karim"),
        ("staff", "Karim", "assignment.fail", 5551234, "Karim"),
        ("staff", "Karim", "assignment.collect", 5551234, "Karim"),
    ]
    assert [a.at for a in story.audit] == sorted(a.at for a in story.audit)


async def test_the_story_shows_the_receipt_message_and_its_delivery_statuses():
    tenant, nadia, karim, invoice, *_ = await _paid_after_a_closed_door()

    story = await invoice_story(nadia, number=invoice.number, now=NOW)

    assert [(m.channel, m.kind, m.status, m.events) for m in story.messages] == [
        (
            "whatsapp",
            "receipt",
            "sent",
            (
                DeliveryEvent("sent", datetime(2026, 11, 24, 4, 42, tzinfo=UTC)),
                DeliveryEvent("delivered", datetime(2026, 11, 24, 4, 43, tzinfo=UTC)),
            ),
        )
    ]


async def test_an_untouched_invoice_has_an_empty_story_and_is_overdue_after_its_due_date():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    invoice = await make_invoice(await make_subscriber(tenant), due_date=date(2026, 11, 20))

    story = await invoice_story(admin, number=invoice.number, now=NOW)

    assert (story.invoice.status, story.invoice.overdue) == (InvoiceStatus.UNPAID, True)
    assert (story.payments, story.visits, story.messages, story.audit) == ((), (), (), ())


async def test_a_payment_without_a_photo_or_collector_is_still_in_the_story():
    tenant, nadia, karim, invoice, *_ = await _paid_after_a_closed_door()
    other = await make_invoice(await make_subscriber(tenant), 50_000)
    result = await assign_invoices(nadia, collector_id=karim.id, numbers=[other.number])
    await mark_collected(
        karim, assignment_id=result.outcomes[0].assignment_id, idempotency_key="tg:2"
    )

    story = await invoice_story(nadia, number=other.number)

    assert [(p.amount_minor, p.receipt_file_id, p.receipt) for p in story.payments] == [
        (50_000, None, None)
    ]


async def test_another_companys_invoice_is_not_found_like_a_missing_one():
    tenant, nadia, karim, invoice, *_ = await _paid_after_a_closed_door()
    elsewhere = await make_staff(await make_tenant(), Role.ADMIN)

    for actor, number in ((elsewhere, invoice.number), (nadia, "INV-0000-0000")):
        with pytest.raises(NotFound) as missing:
            await invoice_story(actor, number=number)
        assert missing.value.code == "invoice_not_found"


async def test_reseller_staff_read_only_their_own_subscribers_invoices_with_the_view_right():
    tenant, nadia, karim, invoice, *_ = await _paid_after_a_closed_door()
    reseller = await make_reseller(tenant)
    theirs = await make_invoice(await make_subscriber(tenant, reseller=reseller))
    clerk = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_VIEW]
    )
    no_view = await make_staff(
        tenant, Role.RESELLER, reseller=reseller, permissions=[COLLECTORS_ASSIGN]
    )

    assert (await invoice_story(clerk, number=theirs.number)).invoice.id == theirs.id
    with pytest.raises(NotFound):
        await invoice_story(clerk, number=invoice.number)
    with pytest.raises(PermissionDenied):
        await invoice_story(no_view, number=theirs.number)
    with pytest.raises(PermissionDenied):
        await invoice_story(karim, number=invoice.number)
    assert await Invoice.filter(id=invoice.id).count() == 1
