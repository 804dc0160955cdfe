"""Collectors' cash: handovers, shortages as debt deducted from a payout, the cash cap and
the daily reconciliation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.db.models import AuditLog, CashHandover, Payment, StoredFile
from core.domain import ledger
from core.domain.dates import local_today, utcnow
from core.domain.status import PaymentMethod, Role
from core.errors import Conflict, InvalidAmount, InvalidInput, PermissionDenied
from core.services.assignments import assign_invoices
from core.services.cash import (
    cash_on_hand,
    collector_debt,
    preview_handover,
    reconcile_day,
    record_handover,
)
from core.services.collection import mark_collected
from core.services.commission import commission_balance, pay_commission
from core.services.ledger import account_balance
from core.services.payments import reverse_payment
from core.services.reports import collector_report
from core.services.staff import edit_staff
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")


async def _karim_day(amounts=(150_000, 100_000), methods=None):
    """Karim (5 %) collects each amount at a door today (cash unless `methods` says)."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN, name="Nadia")
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim", commission_bp=500)
    invoices = [
        await make_invoice(await make_subscriber(tenant, name=f"Sub {n}"), amount)
        for n, amount in enumerate(amounts)
    ]
    assigned = await assign_invoices(
        admin, collector_id=karim.id, numbers=[i.number for i in invoices]
    )
    payments = []
    for n, outcome in enumerate(assigned.outcomes):
        method = (methods or {}).get(n, PaymentMethod.CASH)
        done = await mark_collected(
            karim, assignment_id=outcome.assignment_id, idempotency_key=f"k{n}", method=method
        )
        payments.append(done.payment_id)
    return tenant, admin, karim, payments


async def test_a_collector_holds_only_the_cash_they_collected():
    tenant, _, karim, _ = await _karim_day((150_000, 100_000), methods={1: PaymentMethod.BKASH})

    assert await cash_on_hand(tenant.id, karim.id) == 150_000
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_ACCOUNTS) == 100_000


async def test_a_short_handover_becomes_the_collectors_debt():
    tenant, admin, karim, _ = await _karim_day()

    preview = await preview_handover(admin, collector_id=karim.id, counted_minor=240_000)
    assert (preview.expected_minor, preview.difference_minor, preview.collections) == (
        250_000,
        -10_000,
        2,
    )
    done = await record_handover(
        admin,
        collector_id=karim.id,
        counted_minor=240_000,
        expected_minor=250_000,
        idempotency_key="h1",
    )

    assert (done.expected_minor, done.counted_minor, done.difference_minor, done.debt_minor) == (
        250_000,
        240_000,
        -10_000,
        10_000,
    )
    assert await cash_on_hand(tenant.id, karim.id) == 0
    assert await collector_debt(tenant.id, karim.id) == 10_000
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_CASH) == 240_000
    assert await AuditLog.filter(action="cash.handover", object_id=karim.id).exists()
    report = await collector_report(admin, collector_id=karim.id)
    assert (report.rows[0].cash_on_hand_minor, report.rows[0].debt_minor) == (0, 10_000)
    assert await unbalanced_postings() == []


async def test_an_excess_is_recorded_as_cash_over_and_owes_nothing():
    tenant, admin, karim, _ = await _karim_day((100_000,))

    done = await record_handover(
        admin, collector_id=karim.id, counted_minor=100_500, expected_minor=100_000,
        idempotency_key="h1",
    )  # fmt: skip

    assert (done.difference_minor, done.debt_minor) == (500, 0)
    assert await account_balance(tenant_id=tenant.id, account=ledger.CASH_OVER) == -500
    assert await unbalanced_postings() == []


async def test_the_next_payout_deducts_the_debt_only_when_the_admin_chooses_it():
    tenant, admin, karim, _ = await _karim_day()  # commission 12,500
    await record_handover(
        admin, collector_id=karim.id, counted_minor=245_000, expected_minor=250_000,
        idempotency_key="h1",
    )  # fmt: skip

    paid = await pay_commission(
        admin, collector_id=karim.id, amount_minor=2_000, deduct_debt=False
    )
    assert (paid.cash_paid_minor, paid.debt_deducted_minor, paid.debt_after_minor) == (
        2_000,
        0,
        5_000,
    )

    paid = await pay_commission(admin, collector_id=karim.id, deduct_debt=True)
    assert (paid.paid_minor, paid.cash_paid_minor, paid.debt_deducted_minor) == (
        10_500,
        5_500,
        5_000,
    )
    assert paid.debt_after_minor == 0
    assert await collector_debt(tenant.id, karim.id) == 0
    assert await commission_balance(tenant.id, karim.id) == 0
    # The drawer paid out only the cash part: 245,000 in, 2,000 and 5,500 out.
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_CASH) == 237_500
    assert await unbalanced_postings() == []


async def test_a_handover_against_a_stale_balance_records_nothing():
    tenant, admin, karim, _ = await _karim_day((100_000,))

    with pytest.raises(Conflict) as stale:
        await record_handover(
            admin, collector_id=karim.id, counted_minor=90_000, expected_minor=80_000,
            idempotency_key="h1",
        )  # fmt: skip

    assert stale.value.code == "handover_changed"
    assert await CashHandover.all().count() == 0
    assert await cash_on_hand(tenant.id, karim.id) == 100_000


async def test_a_double_press_records_one_handover():
    _, admin, karim, _ = await _karim_day((100_000,))
    args = dict(collector_id=karim.id, counted_minor=100_000, expected_minor=100_000)

    first = await record_handover(admin, idempotency_key="same", **args)
    second = await record_handover(admin, idempotency_key="same", **args)

    assert second.replayed and second.handover_id == first.handover_id
    assert await CashHandover.all().count() == 1


async def test_bad_handovers_are_refused():
    tenant, admin, karim, _ = await _karim_day((100_000,))
    idle = await make_staff(tenant, Role.COLLECTOR, name="Idle")
    reseller = await make_staff(tenant, Role.RESELLER, reseller=await make_reseller(tenant))

    with pytest.raises(InvalidAmount):
        await preview_handover(admin, collector_id=karim.id, counted_minor=-1)
    with pytest.raises(InvalidInput) as nothing:
        await preview_handover(admin, collector_id=idle.id, counted_minor=0)
    assert nothing.value.code == "handover_nothing"
    with pytest.raises(PermissionDenied):
        await preview_handover(reseller, collector_id=karim.id, counted_minor=100_000)
    assert await CashHandover.all().count() == 0


@pytest.mark.postgres_only
async def test_two_admins_recording_the_same_cash_at_once_record_it_once():
    tenant, admin, karim, _ = await _karim_day((100_000,))
    other = await make_staff(tenant, Role.ADMIN)

    results = await asyncio.gather(
        *(
            record_handover(
                who,
                collector_id=karim.id,
                counted_minor=100_000,
                expected_minor=100_000,
                idempotency_key=key,
            )
            for who, key in ((admin, "a"), (other, "b"))
        ),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert [r.code for r in results if isinstance(r, Conflict)] == ["handover_changed"]
    assert await CashHandover.all().count() == 1
    assert await cash_on_hand(tenant.id, karim.id) == 0


async def test_at_the_cash_cap_a_collector_takes_no_more_cash_but_may_take_bkash():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    karim = await make_staff(tenant, Role.COLLECTOR, name="Karim")
    karim = await edit_staff(admin, staff_id=karim.id, cash_cap_minor=150_000)
    invoices = [await make_invoice(await make_subscriber(tenant), 150_000) for _ in range(3)]
    stops = [
        o.assignment_id
        for o in (
            await assign_invoices(
                admin, collector_id=karim.id, numbers=[i.number for i in invoices]
            )
        ).outcomes
    ]
    await mark_collected(karim, assignment_id=stops[0], idempotency_key="a")

    with pytest.raises(Conflict) as capped:
        await mark_collected(karim, assignment_id=stops[1], idempotency_key="b")
    assert capped.value.code == "cash_cap_reached"
    await mark_collected(
        karim, assignment_id=stops[2], idempotency_key="c", method=PaymentMethod.BKASH
    )
    # Once handed in, cash is taken again; cap=0 removes the cap.
    await record_handover(
        admin, collector_id=karim.id, counted_minor=150_000, expected_minor=150_000,
        idempotency_key="h",
    )  # fmt: skip
    await mark_collected(karim, assignment_id=stops[1], idempotency_key="b2")
    assert (await edit_staff(admin, staff_id=karim.id, cash_cap_minor=0)).cash_cap_minor is None


async def test_the_daily_reconciliation_shows_what_was_expected_handed_in_and_held():
    tenant, admin, karim, payments = await _karim_day((150_000, 100_000, 50_000))
    photo = await StoredFile.create(
        tenant=tenant, sha256="ab" * 32, path="photos/ab.jpg", content_type="image/jpeg",
        size_bytes=10, telegram_file_id="PHOTO-1",
    )  # fmt: skip
    await Payment.filter(id=payments[0]).update(receipt_file_id=photo.id)
    await record_handover(
        admin, collector_id=karim.id, counted_minor=250_000, expected_minor=300_000,
        idempotency_key="h1",
    )  # fmt: skip
    await reverse_payment(admin, ref=str(payments[2]), reason="charged back")

    result = await reconcile_day(admin, collector_id=karim.id)

    assert result.day == local_today(utcnow(), tenant.timezone)
    (row,) = result.rows
    assert (row.opening_minor, row.collected_minor) == (0, 300_000)
    assert (row.expected_minor, row.handed_in_minor, row.difference_minor) == (
        300_000,
        250_000,
        -50_000,
    )
    # The reversal after the handover is refunded from the drawer: Karim holds nothing.
    assert (row.closing_minor, row.debt_minor) == (0, 50_000)
    assert [(s.amount_minor, s.reversed, s.photo_file_id) for s in result.stops] == [
        (150_000, False, "PHOTO-1"),
        (100_000, False, None),
        (50_000, True, None),
    ]
    assert [(h.expected_minor, h.counted_minor, h.recorded_by) for h in result.handovers] == [
        (300_000, 250_000, "Nadia")
    ]
    everyone = await reconcile_day(admin)
    assert [r.name for r in everyone.rows] == ["Karim"]


async def test_a_day_to_come_cannot_be_reconciled():
    _, admin, _, _ = await _karim_day((100_000,))
    tomorrow = local_today(utcnow(), "Asia/Dhaka") + timedelta(days=2)
    with pytest.raises(InvalidInput):
        await reconcile_day(admin, day=tomorrow)
