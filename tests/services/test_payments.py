"""Payments recorded at the office, and payments reversed (chargebacks, mistakes)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from core.db.models import AuditLog, Invoice, OutboxMessage, Payment, PaymentReversal
from core.documents.receipt import receipt_number
from core.domain import ledger
from core.domain.status import InvoicePurpose, InvoiceStatus, Role
from core.errors import AmountAboveBalance, Conflict, InvalidInput, NotFound, PermissionDenied
from core.services.assignments import assign_invoices
from core.services.cash import cash_on_hand, record_handover
from core.services.collection import mark_collected
from core.services.commission import commission_balance
from core.services.ledger import account_balance
from core.services.payments import plan_payment, record_payment, reverse_payment
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")


async def _rahim_owes_two():
    """Rahim owes INV-A (1,500, due first) and INV-B (1,500, due later)."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    rahim = await make_subscriber(tenant, username="rahim01", name="Rahim Uddin")
    first = await make_invoice(rahim, 150_000, number="INV-A", due_date=date(2026, 11, 10))
    second = await make_invoice(rahim, 150_000, number="INV-B", due_date=date(2026, 11, 30))
    return tenant, admin, rahim, first, second


async def _receivable(tenant, subscriber) -> int:
    return await account_balance(
        tenant_id=tenant.id, account=ledger.RECEIVABLE, subscriber_id=subscriber.id
    )


async def test_a_payment_for_a_customer_settles_the_oldest_invoice_first():
    tenant, admin, rahim, first, second = await _rahim_owes_two()

    plan = await plan_payment(admin, target="rahim01", amount_minor=200_000, method="bkash")
    assert [(a.number, a.amount_minor, a.due_minor) for a in plan.allocations] == [
        ("INV-A", 150_000, 150_000),
        ("INV-B", 50_000, 150_000),
    ]

    done = await record_payment(
        admin,
        target="rahim01",
        amount_minor=200_000,
        method="bkash",
        reference="8N7A6D5",
        note="sent by his son",
        idempotency_key="k1",
    )

    a, b = await Invoice.get(id=first.id), await Invoice.get(id=second.id)
    assert (a.status, a.paid_minor) == (InvoiceStatus.PAID, 150_000)
    assert (b.status, b.paid_minor) == (InvoiceStatus.PARTIAL, 50_000)
    payments = await Payment.filter(id__in=done.payment_ids).order_by("id")
    assert [
        (p.amount_minor, p.method, p.reference, p.operator_id, p.collector_id) for p in payments
    ] == [
        (150_000, "bkash", "8N7A6D5", admin.id, None),
        (50_000, "bkash", "8N7A6D5", admin.id, None),
    ]
    # bKash money is in the company's accounts, not the drawer; the receivable went down.
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_ACCOUNTS) == 200_000
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_CASH) == 0
    assert await _receivable(tenant, rahim) == -200_000  # the factories post no invoices
    assert await OutboxMessage.filter(kind="receipt").count() == 2
    assert await AuditLog.filter(action="payment.record").count() == 2
    assert await unbalanced_postings() == []


async def test_a_repeated_request_records_the_payment_once():
    _, admin, _, first, _ = await _rahim_owes_two()

    one = await record_payment(admin, target="INV-A", amount_minor=100_000, idempotency_key="k")
    two = await record_payment(admin, target="INV-A", amount_minor=100_000, idempotency_key="k")

    assert two.replayed and two.payment_ids == one.payment_ids
    assert (await Invoice.get(id=first.id)).paid_minor == 100_000


async def test_a_payment_named_by_invoice_goes_to_that_invoice_only():
    _, admin, _, first, second = await _rahim_owes_two()

    await record_payment(admin, target="inv-b", amount_minor=150_000, idempotency_key="k")

    assert (await Invoice.get(id=first.id)).paid_minor == 0
    assert (await Invoice.get(id=second.id)).status == InvoiceStatus.PAID


async def test_a_paid_in_full_renewal_recorded_at_the_office_extends_the_service():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    sub = await make_subscriber(tenant, username="keya", expiry_date=date(2026, 11, 30))
    await make_invoice(sub, 80_000, purpose=InvoicePurpose.RENEWAL)

    done = await record_payment(admin, target="keya", amount_minor=80_000, idempotency_key="k")

    assert done.new_expiry == date(2026, 12, 30)


async def test_bad_payments_are_refused_with_a_sentence_and_write_nothing():
    tenant, admin, _, _, _ = await _rahim_owes_two()
    collector = await make_staff(tenant, Role.COLLECTOR)
    await record_payment(
        admin, target="INV-A", amount_minor=150_000, method="nagad", reference="TX1",
        idempotency_key="first",
    )  # fmt: skip
    before = await Payment.all().count()

    with pytest.raises(AmountAboveBalance) as above:
        await plan_payment(admin, target="rahim01", amount_minor=150_001)
    assert above.value.code == "payment_above_owed"
    with pytest.raises(InvalidInput) as nothing_due:
        await plan_payment(admin, target="INV-A", amount_minor=100)
    assert nothing_due.value.code == "nothing_owed"
    with pytest.raises(InvalidInput) as same_ref:
        await plan_payment(
            admin, target="rahim01", amount_minor=100, method="nagad", reference="TX1"
        )
    assert same_ref.value.code == "reference_taken"
    with pytest.raises(InvalidInput) as method:
        await plan_payment(admin, target="rahim01", amount_minor=100, method="cheque")
    assert method.value.code == "method_unknown"
    with pytest.raises(InvalidInput):
        await plan_payment(admin, target="rahim01", amount_minor=0)
    with pytest.raises(NotFound):
        await plan_payment(admin, target="nobody", amount_minor=100)
    with pytest.raises(PermissionDenied):
        await plan_payment(collector, target="rahim01", amount_minor=100)
    assert await Payment.all().count() == before


async def test_a_reseller_cannot_record_payments_and_another_tenant_is_invisible():
    tenant, _, _, _, _ = await _rahim_owes_two()
    reseller = await make_staff(tenant, Role.RESELLER, reseller=await make_reseller(tenant))
    other_admin = await make_staff(await make_tenant(), Role.ADMIN)

    with pytest.raises(PermissionDenied):
        await plan_payment(reseller, target="rahim01", amount_minor=100)
    with pytest.raises(NotFound):
        await plan_payment(other_admin, target="rahim01", amount_minor=100)


# --- reversals -----------------------------------------------------------------------------


async def _karim_collected():
    """Karim (5 %) collected INV-A (1,500 cash) at Rahim's door."""
    tenant, admin, rahim, first, second = await _rahim_owes_two()
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=500)
    assigned = await assign_invoices(admin, collector_id=karim.id, numbers=["INV-A"])
    collected = await mark_collected(
        karim, assignment_id=assigned.outcomes[0].assignment_id, idempotency_key="door"
    )
    return tenant, admin, karim, rahim, first, collected.payment_id


async def test_reversing_a_door_payment_reopens_the_invoice_and_takes_the_commission_back():
    tenant, admin, karim, rahim, first, payment_id = await _karim_collected()
    assert await commission_balance(tenant.id, karim.id) == 7_500

    done = await reverse_payment(admin, ref=receipt_number(payment_id), reason="wrong house")

    invoice = await Invoice.get(id=first.id)
    assert (invoice.status, invoice.paid_minor) == (InvoiceStatus.UNPAID, 0)
    assert (done.invoice_status, done.still_due_minor) == (InvoiceStatus.UNPAID, 150_000)
    assert done.commission_reversed_minor == 7_500
    assert await commission_balance(tenant.id, karim.id) == 0
    # Not handed in yet: the money comes out of Karim's cash.
    assert done.refunded_from == ledger.COLLECTOR_CASH
    assert await cash_on_hand(tenant.id, karim.id) == 0
    assert await _receivable(tenant, rahim) == 0
    # Nothing deleted: the payment stays, a reversal row says it no longer counts.
    assert await Payment.filter(id=payment_id).exists()
    reversal = await PaymentReversal.get(payment_id=payment_id)
    assert (reversal.reason, reversal.reversed_by_id) == ("wrong house", admin.id)
    assert await AuditLog.filter(action="payment.reverse", object_id=first.id).exists()
    assert await unbalanced_postings() == []


async def test_cash_already_handed_in_is_refunded_from_the_office_drawer():
    tenant, admin, karim, _, _, payment_id = await _karim_collected()
    await record_handover(
        admin, collector_id=karim.id, counted_minor=150_000, expected_minor=150_000,
        idempotency_key="h1",
    )  # fmt: skip

    done = await reverse_payment(admin, ref=str(payment_id), reason="charged back")

    assert done.refunded_from == ledger.OFFICE_CASH
    assert await cash_on_hand(tenant.id, karim.id) == 0
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_CASH) == 0


async def test_a_payment_is_reversed_once():
    _, admin, _, _, _, payment_id = await _karim_collected()
    await reverse_payment(admin, ref=f"R-{payment_id:06d}", reason="mistake")

    with pytest.raises(Conflict) as twice:
        await reverse_payment(admin, ref=f"R-{payment_id:06d}", reason="again")

    assert twice.value.code == "payment_already_reversed"
    assert await PaymentReversal.all().count() == 1


async def test_a_reversal_needs_a_reason_a_real_receipt_and_an_admin():
    tenant, admin, karim, _, _, payment_id = await _karim_collected()
    with pytest.raises(InvalidInput) as no_reason:
        await reverse_payment(admin, ref=str(payment_id), reason="  ")
    assert no_reason.value.code == "reversal_reason_required"
    with pytest.raises(InvalidInput) as bad_ref:
        await reverse_payment(admin, ref="R-12x", reason="x")
    assert bad_ref.value.code == "receipt_ref_invalid"
    with pytest.raises(NotFound):
        await reverse_payment(admin, ref="R-999999", reason="x")
    with pytest.raises(PermissionDenied):
        await reverse_payment(karim, ref=str(payment_id), reason="x")
    other_admin = await make_staff(await make_tenant(), Role.ADMIN)
    with pytest.raises(NotFound):
        await reverse_payment(other_admin, ref=str(payment_id), reason="x")
    assert await PaymentReversal.all().count() == 0


@pytest.mark.postgres_only
async def test_two_admins_reversing_at_once_reverse_once():
    tenant, admin, _, _, first, payment_id = await _karim_collected()
    other = await make_staff(tenant, Role.ADMIN)

    results = await asyncio.gather(
        reverse_payment(admin, ref=str(payment_id), reason="one"),
        reverse_payment(other, ref=str(payment_id), reason="two"),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
    assert await PaymentReversal.all().count() == 1
    assert (await Invoice.get(id=first.id)).paid_minor == 0
    assert await unbalanced_postings() == []
