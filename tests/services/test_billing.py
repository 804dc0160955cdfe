"""Creating tenants, plans, subscribers and invoices."""

from __future__ import annotations

from datetime import date

import pytest

from core.db.models import AuditLog, CustomerClass, Invoice, LedgerPosting, Subscriber
from core.domain import ledger
from core.domain.status import InvoiceKind, InvoicePurpose, InvoiceStatus, Role
from core.errors import Conflict, InvalidAmount, InvalidInput, NotFound, PermissionDenied
from core.services.billing import (
    SubscriberInput,
    create_invoice,
    create_plan,
    create_subscriber,
    create_tenant,
)
from core.services.ledger import account_balance
from tests.factories import make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")

ISSUED = date(2026, 11, 1)


async def test_a_tenant_needs_a_real_currency_and_time_zone():
    tenant = await create_tenant(name="Manama Net", currency="bhd", timezone="Asia/Bahrain")
    assert tenant.currency == "BHD"
    with pytest.raises(InvalidInput, match="ISO 4217"):
        await create_tenant(name="X", currency="TAKA")
    with pytest.raises(InvalidInput, match="time zone"):
        await create_tenant(name="X", timezone="Dhaka")


async def test_a_subscribers_phone_is_stored_as_e164_and_the_username_is_unique():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)

    sub = await create_subscriber(
        admin, SubscriberInput(username="rahim", name="Rahim Uddin", phone="01711-000001")
    )

    assert (sub.phone, sub.tenant_id) == ("+8801711000001", tenant.id)
    with pytest.raises(Conflict, match="rahim"):
        await create_subscriber(admin, SubscriberInput(username="rahim", name="Other"))
    with pytest.raises(InvalidInput, match="not a valid phone"):
        await create_subscriber(admin, SubscriberInput(username="x", name="X", phone="12345"))
    with pytest.raises(InvalidInput, match="latitude and longitude"):
        await create_subscriber(admin, SubscriberInput(username="y", name="Y", latitude=23.7))
    assert await Subscriber.all().count() == 1


async def test_another_tenants_plan_cannot_be_given_to_a_subscriber():
    other_admin = await make_staff(await make_tenant(), Role.ADMIN)
    foreign_plan = await create_plan(other_admin, name="Home", price_minor=150_000)
    admin = await make_staff(await make_tenant(), Role.ADMIN)
    with pytest.raises(NotFound):
        await create_subscriber(
            admin, SubscriberInput(username="z", name="Z", plan_id=foreign_plan.id)
        )


async def test_an_invoice_posts_a_receivable_and_gets_the_next_number():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    sub = await make_subscriber(tenant)

    first = await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=150_000, issue_date=ISSUED
    )
    second = await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=20_000, issue_date=ISSUED
    )

    assert (first.number, second.number) == ("INV-2026-0001", "INV-2026-0002")
    assert (first.status, first.due_date) == (InvoiceStatus.UNPAID, date(2026, 12, 1))
    receivable = await account_balance(
        tenant_id=tenant.id, account=ledger.RECEIVABLE, subscriber_id=sub.id
    )
    assert receivable == 170_000
    assert await unbalanced_postings() == []
    assert await AuditLog.filter(action="invoice.create").count() == 2


async def test_due_dates_follow_the_customer_class_terms_and_debit_notes_remind_every_5_days():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    carrier = await CustomerClass.create(
        tenant=tenant, name="Carrier", net_days=30, out_of_turn_net_days=6
    )
    sub = await make_subscriber(tenant, customer_class=carrier)

    regular = await create_invoice(admin, subscriber_id=sub.id, amount_minor=1, issue_date=ISSUED)
    urgent = await create_invoice(
        admin,
        subscriber_id=sub.id,
        amount_minor=1,
        issue_date=ISSUED,
        purpose=InvoicePurpose.OUT_OF_TURN,
        kind=InvoiceKind.DEBIT_NOTE,
    )

    assert (regular.due_date, urgent.due_date) == (date(2026, 12, 1), date(2026, 11, 7))
    assert (regular.reminder_days, urgent.reminder_days) == (None, 5)


async def test_a_draft_invoice_posts_nothing_until_approved():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    sub = await make_subscriber(tenant)
    draft = await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=150_000, issue_date=ISSUED, draft=True
    )
    assert draft.status == InvoiceStatus.DRAFT
    assert await LedgerPosting.all().count() == 0


async def test_bad_invoices_are_refused_and_nothing_is_written():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR)
    sub = await make_subscriber(tenant)
    await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=1, issue_date=ISSUED, number="INV-7"
    )
    with pytest.raises(InvalidAmount):
        await create_invoice(admin, subscriber_id=sub.id, amount_minor=0, issue_date=ISSUED)
    with pytest.raises(Conflict, match="INV-7"):
        await create_invoice(
            admin, subscriber_id=sub.id, amount_minor=1, issue_date=ISSUED, number="INV-7"
        )
    with pytest.raises(InvalidInput, match="before the issue date"):
        await create_invoice(
            admin,
            subscriber_id=sub.id,
            amount_minor=1,
            issue_date=ISSUED,
            due_date=date(2026, 10, 1),
        )
    with pytest.raises(PermissionDenied):
        await create_invoice(collector, subscriber_id=sub.id, amount_minor=1, issue_date=ISSUED)
    foreign = await make_subscriber(await make_tenant())
    with pytest.raises(NotFound):
        await create_invoice(admin, subscriber_id=foreign.id, amount_minor=1, issue_date=ISSUED)
    assert await Invoice.all().count() == 1
    assert await LedgerPosting.all().count() == 1
