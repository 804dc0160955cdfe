"""The office's bulk reminder: a preview of who it reaches, then one reminder per invoice."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.db.models import AuditLog, Invoice, OutboxMessage, Staff, Tenant
from core.documents.notices import NOTICE_KINDS
from core.domain.status import InvoiceStatus, Role
from core.errors import InvalidInput, PermissionDenied
from core.services.access import Origin
from core.services.receipts import message_template_sources
from core.services.reminders import preview_bulk_reminder, send_bulk_reminder
from tests.factories import (
    make_invoice,
    make_reseller,
    make_staff,
    make_subscriber,
    make_tenant,
)

pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 10:00 in Dhaka, 3 Dec 2026
TODAY = date(2026, 12, 3)
OVERDUE = date(2026, 11, 30)
NOT_YET = date(2026, 12, 20)


async def _office() -> tuple[Tenant, Staff, dict[str, Invoice]]:
    """One invoice per situation the bulk reminder tells apart."""
    tenant = await make_tenant(name="Dhaka Fiber Net")
    admin = await make_staff(tenant, Role.ADMIN)

    async def invoice(amount: int = 150_000, *, area: str = "Dhanmondi", **overrides):
        phone = overrides.pop("phone", "+8801811000001")
        subscriber = await make_subscriber(
            tenant, area=area, phone=phone, reseller=overrides.pop("reseller", None)
        )
        return await make_invoice(subscriber, amount, **overrides)

    invoices = {
        "overdue": await invoice(due_date=OVERDUE, reminder_days=3, next_reminder_on=TODAY),
        "partial": await invoice(
            paid_minor=50_000, status=InvoiceStatus.PARTIAL, due_date=NOT_YET
        ),
        "gulshan": await invoice(area="Gulshan", due_date=OVERDUE),
        "landline": await invoice(phone="+88029660001", due_date=OVERDUE),
        "no_phone": await invoice(phone=None, due_date=OVERDUE),
        "pending": await invoice(request_status="pending", due_date=OVERDUE),
        "paid": await invoice(paid_minor=150_000, status=InvoiceStatus.PAID),
    }
    return tenant, admin, invoices


async def test_the_preview_counts_who_would_be_reminded_and_why_the_others_would_not():
    _, admin, _ = await _office()

    preview = await preview_bulk_reminder(admin, now=NOW)

    assert (preview.count, preview.due_minor) == (4, 150_000 * 3 + 100_000)
    assert (preview.pending_request, preview.no_phone, preview.reminded_today) == (1, 1, 0)
    assert preview.skipped == 2


async def test_filters_narrow_the_preview_by_status_area_and_overdue():
    _, admin, _ = await _office()

    partial = await preview_bulk_reminder(admin, status="partial", now=NOW)
    gulshan = await preview_bulk_reminder(admin, area="gulshan", now=NOW)
    overdue = await preview_bulk_reminder(admin, overdue_only=True, now=NOW)

    assert (partial.count, partial.due_minor) == (1, 100_000)
    assert (gulshan.count, gulshan.due_minor) == (1, 150_000)
    assert (overdue.count, overdue.skipped) == (3, 2)


async def test_sending_queues_one_reminder_per_invoice_and_says_what_was_refused_and_skipped():
    tenant, admin, invoices = await _office()
    origin = Origin(channel="telegram", telegram_user_id=admin.telegram_user_id)

    result = await send_bulk_reminder(admin, origin=origin, now=NOW)

    assert (result.queued, result.refused, result.skipped) == (3, 1, 2)
    messages = {
        m.invoice_id: m for m in await OutboxMessage.filter(tenant_id=tenant.id, kind="reminder")
    }
    assert set(messages) == {invoices[k].id for k in ("overdue", "partial", "gulshan", "landline")}
    assert messages[invoices["landline"].id].status == "refused"
    overdue = messages[invoices["overdue"].id]
    assert overdue.dedupe_key == f"reminder:{invoices['overdue'].id}:2026-12-03"
    assert overdue.payload["text"].startswith(
        f"Dear {(await invoices['overdue'].subscriber).name}, ৳1,500 is still due on invoice"
        f" {invoices['overdue'].number}, which was due on 30 November 2026."
    )
    # The reminder restarts the invoice's interval, as a scheduled one does.
    assert (await Invoice.get(id=invoices["overdue"].id)).next_reminder_on == date(2026, 12, 6)
    audit = await AuditLog.filter(action="invoice.remind").order_by("id")
    assert len(audit) == 4
    assert {(a.actor_staff_id, a.telegram_user_id) for a in audit} == {
        (admin.id, admin.telegram_user_id)
    }


async def test_a_second_bulk_reminder_the_same_day_sends_nothing_again():
    _, admin, _ = await _office()
    await send_bulk_reminder(admin, now=NOW)

    preview = await preview_bulk_reminder(admin, now=NOW)
    again = await send_bulk_reminder(admin, now=NOW)

    assert (preview.count, preview.reminded_today) == (0, 4)
    assert (again.queued, again.refused, again.skipped) == (0, 0, 6)
    assert await OutboxMessage.filter(kind="reminder").count() == 4


async def test_reseller_staff_remind_only_their_own_subscribers():
    tenant, admin, _ = await _office()
    reseller = await make_reseller(tenant)
    staff = await make_staff(tenant, Role.RESELLER, reseller=reseller)
    own = await make_invoice(await make_subscriber(tenant, reseller=reseller))

    preview = await preview_bulk_reminder(staff, now=NOW)
    result = await send_bulk_reminder(staff, now=NOW)

    assert (preview.count, result.queued) == (1, 1)
    assert await OutboxMessage.filter(kind="reminder").values_list("invoice_id", flat=True) == [
        own.id
    ]


async def test_a_collector_cannot_send_reminders_and_a_bad_status_is_refused():
    tenant, admin, _ = await _office()
    collector = await make_staff(tenant, Role.COLLECTOR)

    with pytest.raises(PermissionDenied) as denied:
        await send_bulk_reminder(collector, now=NOW)
    with pytest.raises(InvalidInput) as bad:
        await preview_bulk_reminder(admin, status="paid", now=NOW)

    assert denied.value.code == "reminders_office_only"
    assert bad.value.code == "reminders_bad_status"
    assert await OutboxMessage.all().count() == 0


async def test_another_companys_invoices_are_never_reminded():
    _, admin, _ = await _office()
    stranger = await make_invoice(await make_subscriber(await make_tenant()))

    await send_bulk_reminder(admin, now=NOW)

    assert await OutboxMessage.filter(invoice_id=stranger.id).count() == 0


def test_the_office_can_read_every_dunning_text_template():
    kinds = {(t.kind, t.language) for t in message_template_sources()}

    assert {(k, lang) for k in NOTICE_KINDS for lang in ("en", "bn", "ar")} <= kinds
