"""Marking stops collected or failed, through the real services and database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from core.db.models import (
    Assignment,
    AuditLog,
    Invoice,
    LedgerPosting,
    OutboxMessage,
    Payment,
    StoredFile,
    Subscriber,
)
from core.domain.status import (
    AssignmentStatus,
    FailureReason,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
    SubscriberStatus,
)
from core.errors import (
    AmountAboveBalance,
    Conflict,
    InactiveStaff,
    InvalidAmount,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from core.services.assignments import assign_invoices
from core.services.collection import mark_collected, mark_failed
from core.services.route import get_route
from tests.factories import make_invoice, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

# 10:00 in Dhaka on Tuesday 24 Nov 2026.
pytestmark = pytest.mark.usefixtures("db")

NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)


async def _setup(amount_minor: int = 150_000, **subscriber_overrides):
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=500)
    subscriber = await make_subscriber(tenant, **subscriber_overrides)
    invoice = await make_invoice(subscriber, amount_minor)
    result = await assign_invoices(
        admin, collector_id=collector.id, numbers=[invoice.number], now=NOW
    )
    stop_id = result.assigned[0].assignment_id
    assert stop_id is not None
    return tenant, admin, collector, subscriber, invoice, stop_id


async def test_collecting_the_full_balance_pays_the_invoice_and_renews_the_service():
    _, _, collector, subscriber, invoice, stop_id = await _setup(
        expiry_date=date(2026, 11, 20), status=SubscriberStatus.SUSPENDED, usage_bytes=999
    )

    result = await mark_collected(collector, assignment_id=stop_id, idempotency_key="k1", now=NOW)

    assert (result.amount_minor, result.invoice_status, result.remaining_minor) == (
        150_000,
        InvoiceStatus.PAID,
        0,
    )
    assert result.commission_minor == 7_500
    assert result.new_expiry == date(2026, 12, 24)  # from today: the old expiry had lapsed
    await invoice.refresh_from_db()
    await subscriber.refresh_from_db()
    assert (invoice.paid_minor, invoice.status) == (150_000, InvoiceStatus.PAID)
    assert (subscriber.status, subscriber.expiry_date, subscriber.usage_bytes) == (
        SubscriberStatus.ACTIVE,
        date(2026, 12, 24),
        0,
    )
    stop = await Assignment.get(id=stop_id)
    assert (stop.status, stop.open_invoice_id, stop.closed_on) == (
        AssignmentStatus.COLLECTED,
        None,
        TODAY,
    )
    payment = await Payment.get(id=result.payment_id)
    assert (payment.method, payment.collector_id, payment.amount_minor) == (
        PaymentMethod.CASH,
        collector.id,
        150_000,
    )
    receipt = await OutboxMessage.get(payment_id=payment.id)
    assert (receipt.kind, receipt.recipient, receipt.status) == (
        "receipt",
        subscriber.phone,
        "pending",
    )
    assert await unbalanced_postings() == []
    audit = await AuditLog.get(action="assignment.collect")
    assert (audit.actor_staff_id, audit.object_id) == (collector.id, invoice.id)


async def test_paying_a_renewal_early_keeps_the_days_already_bought():
    _, _, collector, subscriber, _, stop_id = await _setup(expiry_date=date(2026, 12, 5))

    result = await mark_collected(collector, assignment_id=stop_id, idempotency_key="k", now=NOW)

    assert result.new_expiry == date(2027, 1, 5)


async def test_a_smaller_amount_makes_the_invoice_partial_and_keeps_the_expiry():
    _, _, collector, subscriber, invoice, stop_id = await _setup(expiry_date=date(2026, 11, 30))

    result = await mark_collected(
        collector, assignment_id=stop_id, idempotency_key="k", amount_minor=100_000, now=NOW
    )

    assert (result.invoice_status, result.remaining_minor, result.new_expiry) == (
        InvoiceStatus.PARTIAL,
        50_000,
        None,
    )
    await subscriber.refresh_from_db()
    assert subscriber.expiry_date == date(2026, 11, 30)


async def test_a_non_renewal_invoice_paid_in_full_does_not_move_the_expiry():
    tenant, admin, collector, subscriber, _, _ = await _setup(expiry_date=date(2026, 11, 30))
    fee = await make_invoice(subscriber, 20_000, purpose=InvoicePurpose.LATE_FEE)
    stop = await assign_invoices(admin, collector_id=collector.id, numbers=[fee.number], now=NOW)
    result = await mark_collected(
        collector, assignment_id=stop.assigned[0].assignment_id, idempotency_key="f", now=NOW
    )
    assert (result.invoice_status, result.new_expiry) == (InvoiceStatus.PAID, None)


async def test_an_amount_above_the_balance_is_refused_and_nothing_is_written():
    _, _, collector, _, invoice, stop_id = await _setup()

    with pytest.raises(AmountAboveBalance, match="At most"):
        await mark_collected(
            collector, assignment_id=stop_id, idempotency_key="k", amount_minor=150_001, now=NOW
        )

    assert await Payment.all().count() == 0
    assert await LedgerPosting.filter(kind="collection").count() == 0
    assert (await Assignment.get(id=stop_id)).status == AssignmentStatus.ASSIGNED
    await invoice.refresh_from_db()
    assert invoice.paid_minor == 0


@pytest.mark.parametrize("amount", [0, -5])
async def test_a_zero_or_negative_amount_is_refused(amount):
    _, _, collector, _, _, stop_id = await _setup()
    with pytest.raises(InvalidAmount):
        await mark_collected(
            collector, assignment_id=stop_id, idempotency_key="k", amount_minor=amount, now=NOW
        )
    assert await Payment.all().count() == 0


async def test_the_same_request_twice_posts_one_payment_and_answers_the_same():
    _, _, collector, _, _, stop_id = await _setup()

    first = await mark_collected(collector, assignment_id=stop_id, idempotency_key="u1", now=NOW)
    again = await mark_collected(collector, assignment_id=stop_id, idempotency_key="u1", now=NOW)

    assert again.replayed and not first.replayed
    assert (again.payment_id, again.amount_minor) == (first.payment_id, first.amount_minor)
    assert await Payment.all().count() == 1
    assert await OutboxMessage.all().count() == 1


async def test_a_second_press_with_a_new_key_on_a_collected_stop_is_refused():
    _, _, collector, _, _, stop_id = await _setup()
    await mark_collected(collector, assignment_id=stop_id, idempotency_key="a", now=NOW)

    with pytest.raises(Conflict, match="already collected"):
        await mark_collected(collector, assignment_id=stop_id, idempotency_key="b", now=NOW)
    assert await Payment.all().count() == 1


async def test_a_forged_button_for_another_collectors_stop_is_refused_and_changes_nothing():
    tenant, _, _, _, _, stop_id = await _setup()
    intruder = await make_staff(tenant, Role.COLLECTOR)

    with pytest.raises(PermissionDenied, match="not on your route"):
        await mark_collected(intruder, assignment_id=stop_id, idempotency_key="x", now=NOW)
    with pytest.raises(PermissionDenied):
        await mark_failed(intruder, assignment_id=stop_id, reason="not_home", now=NOW)

    assert (await Assignment.get(id=stop_id)).status == AssignmentStatus.ASSIGNED
    assert await Payment.all().count() == 0


async def test_a_stop_of_another_tenant_does_not_exist_for_the_actor():
    _, _, _, _, _, stop_id = await _setup()
    other_tenant = await make_tenant()
    stranger = await make_staff(other_tenant, Role.ADMIN)
    with pytest.raises(NotFound):
        await mark_collected(stranger, assignment_id=stop_id, idempotency_key="x", now=NOW)


async def test_a_deleted_collector_can_no_longer_collect():
    _, _, collector, _, _, stop_id = await _setup()
    collector.deleted_at = NOW
    await collector.save()
    with pytest.raises(InactiveStaff):
        await mark_collected(collector, assignment_id=stop_id, idempotency_key="x", now=NOW)


async def test_an_invoice_paid_at_the_office_meanwhile_cannot_be_collected_at_the_door():
    _, _, collector, _, invoice, stop_id = await _setup()
    await Invoice.filter(id=invoice.id).update(paid_minor=150_000, status=InvoiceStatus.PAID)
    with pytest.raises(Conflict, match="paid"):
        await mark_collected(collector, assignment_id=stop_id, idempotency_key="x", now=NOW)


async def test_a_receipt_photo_and_the_method_are_kept_on_the_payment():
    tenant, _, collector, _, _, stop_id = await _setup()
    photo = await StoredFile.create(
        tenant=tenant,
        sha256="ab" * 32,
        path="photos/ab.jpg",
        content_type="image/jpeg",
        size_bytes=10,
    )
    result = await mark_collected(
        collector,
        assignment_id=stop_id,
        idempotency_key="k",
        method=PaymentMethod.BKASH,
        receipt_file_id=photo.id,
        reference="TX9",
        now=NOW,
    )
    payment = await Payment.get(id=result.payment_id)
    assert (payment.method, payment.receipt_file_id, payment.reference) == (
        PaymentMethod.BKASH,
        photo.id,
        "TX9",
    )


async def test_a_subscriber_without_a_phone_gets_no_receipt_queued():
    _, _, collector, _, _, stop_id = await _setup(phone=None)
    result = await mark_collected(collector, assignment_id=stop_id, idempotency_key="k", now=NOW)
    assert result.receipt_queued is False
    assert await OutboxMessage.all().count() == 0


async def test_a_failed_visit_comes_back_on_the_same_route_after_the_reschedule_days():
    _, _, collector, _, invoice, stop_id = await _setup()

    result = await mark_failed(collector, assignment_id=stop_id, reason="not_home", now=NOW)

    assert (result.reason, result.return_on, result.flagged) == (
        FailureReason.NOT_HOME,
        TODAY + timedelta(days=2),
        False,
    )
    failed = await Assignment.get(id=stop_id)
    assert (failed.status, failed.open_invoice_id) == (AssignmentStatus.FAILED, None)
    comeback = await Assignment.get(id=result.next_assignment_id)
    assert (comeback.collector_id, comeback.scheduled_on, comeback.open_invoice_id) == (
        collector.id,
        TODAY + timedelta(days=2),
        invoice.id,
    )
    assert (await get_route(collector, now=NOW)).stops == ()
    later = await get_route(collector, now=NOW + timedelta(days=2))
    assert [s.assignment_id for s in later.stops] == [comeback.id]


async def test_the_third_failed_visit_flags_the_invoice_and_takes_it_off_the_route():
    _, _, collector, _, invoice, stop_id = await _setup()
    day = NOW
    for _ in range(2):
        result = await mark_failed(collector, assignment_id=stop_id, reason="refused", now=day)
        stop_id = result.next_assignment_id
        day += timedelta(days=2)

    third = await mark_failed(collector, assignment_id=stop_id, reason="refused", now=day)

    assert (third.failed_visits, third.flagged, third.return_on) == (3, True, None)
    await invoice.refresh_from_db()
    assert invoice.flagged_at is not None and invoice.failed_visits == 3
    assert await Assignment.filter(status=AssignmentStatus.ASSIGNED).count() == 0


async def test_other_as_a_reason_needs_a_line_of_text():
    _, _, collector, _, _, stop_id = await _setup()
    with pytest.raises(InvalidInput, match="what happened"):
        await mark_failed(collector, assignment_id=stop_id, reason="other", note="  ", now=NOW)
    result = await mark_failed(
        collector, assignment_id=stop_id, reason="other", note="gate locked, dog", now=NOW
    )
    assert (await Assignment.get(id=stop_id)).failure_note == "gate locked, dog"
    assert result.reason == FailureReason.OTHER


async def test_an_unknown_failure_reason_is_refused():
    _, _, collector, _, _, stop_id = await _setup()
    with pytest.raises(InvalidInput, match="not home"):
        await mark_failed(collector, assignment_id=stop_id, reason="asleep", now=NOW)


async def test_a_stop_marked_failed_cannot_then_be_collected():
    _, _, collector, _, _, stop_id = await _setup()
    await mark_failed(collector, assignment_id=stop_id, reason="not_home", now=NOW)
    with pytest.raises(Conflict, match="already marked failed"):
        await mark_collected(collector, assignment_id=stop_id, idempotency_key="k", now=NOW)


async def test_the_route_lists_stops_by_area_then_street_with_todays_totals():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=1000)
    other = await make_staff(tenant, Role.COLLECTOR)
    places = [("Mohammadpur", "Road 2"), ("Dhanmondi", "Road 9"), ("Dhanmondi", "Road 1")]
    invoices = []
    for area, street in places:
        sub = await make_subscriber(tenant, area=area, street=street)
        invoices.append(await make_invoice(sub, 100_000))
    elsewhere = await make_invoice(await make_subscriber(tenant), 5_000)
    await assign_invoices(
        admin, collector_id=collector.id, numbers=[i.number for i in invoices], now=NOW
    )
    await assign_invoices(admin, collector_id=other.id, numbers=[elsewhere.number], now=NOW)
    tomorrow = await make_invoice(await make_subscriber(tenant), 7_000)
    await assign_invoices(
        admin,
        collector_id=collector.id,
        numbers=[tomorrow.number],
        scheduled_on=TODAY + timedelta(days=1),
        now=NOW,
    )

    route = await get_route(collector, now=NOW)
    assert [(s.area, s.street) for s in route.stops] == [
        ("Dhanmondi", "Road 1"),
        ("Dhanmondi", "Road 9"),
        ("Mohammadpur", "Road 2"),
    ]
    assert (route.to_collect_minor, route.collected_today_minor) == (300_000, 0)

    await mark_collected(
        collector, assignment_id=route.stops[0].assignment_id, idempotency_key="r", now=NOW
    )
    after = await get_route(collector, now=NOW)
    assert (len(after.stops), after.to_collect_minor) == (2, 200_000)
    assert (after.collected_today_minor, after.commission_today_minor) == (100_000, 10_000)
    assert after.collected_today_stops == 1


async def test_an_empty_route_still_has_its_totals():
    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR)
    route = await get_route(collector, now=NOW)
    assert (route.stops, route.to_collect_minor, route.collected_today_minor) == ((), 0, 0)


async def test_a_collector_cannot_read_another_collectors_route():
    tenant = await make_tenant()
    collector = await make_staff(tenant, Role.COLLECTOR)
    other = await make_staff(tenant, Role.COLLECTOR)
    with pytest.raises(PermissionDenied):
        await get_route(collector, collector_id=other.id, now=NOW)


async def test_renewal_moves_subscriber_expiry_by_the_plan_period():
    from core.db.models import Plan

    tenant, _, collector, subscriber, _, stop_id = await _setup(expiry_date=date(2026, 11, 30))
    plan = await Plan.create(tenant=tenant, name="Quarter", price_minor=1, period_months=3)
    await Subscriber.filter(id=subscriber.id).update(plan_id=plan.id)
    result = await mark_collected(collector, assignment_id=stop_id, idempotency_key="k", now=NOW)
    assert result.new_expiry == date(2027, 2, 28)


async def test_any_payment_removes_the_request_cancellation_date():
    _, _, collector, _, invoice, stop_id = await _setup()
    await Invoice.filter(id=invoice.id).update(
        request_cancellation_on=date(2026, 11, 30),
        suspension_on=date(2026, 12, 10),
        deletion_on=date(2027, 1, 10),
    )

    await mark_collected(
        collector, assignment_id=stop_id, idempotency_key="p", amount_minor=100, now=NOW
    )

    await invoice.refresh_from_db()
    assert invoice.request_cancellation_on is None
    # Only full payment removes the suspension and deletion dates.
    assert (invoice.suspension_on, invoice.deletion_on) == (date(2026, 12, 10), date(2027, 1, 10))


async def test_full_payment_removes_the_dunning_dates_and_restores_a_suspended_service():
    _, _, collector, subscriber, invoice, stop_id = await _setup(status=SubscriberStatus.SUSPENDED)
    await Invoice.filter(id=invoice.id).update(
        purpose=InvoicePurpose.OUT_OF_TURN,
        suspension_on=date(2026, 11, 20),
        deletion_on=date(2026, 12, 20),
    )

    await mark_collected(collector, assignment_id=stop_id, idempotency_key="f", now=NOW)

    await invoice.refresh_from_db()
    await subscriber.refresh_from_db()
    assert (invoice.suspension_on, invoice.deletion_on) == (None, None)
    assert subscriber.status == SubscriberStatus.ACTIVE


async def test_a_partial_payment_leaves_a_suspended_subscriber_suspended():
    _, _, collector, subscriber, _, stop_id = await _setup(status=SubscriberStatus.SUSPENDED)

    await mark_collected(
        collector, assignment_id=stop_id, idempotency_key="p", amount_minor=50_000, now=NOW
    )

    await subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.SUSPENDED


async def test_paying_a_terminated_subscribers_invoice_does_not_bring_them_back():
    _, _, collector, subscriber, invoice, stop_id = await _setup(
        status=SubscriberStatus.TERMINATED
    )
    await Invoice.filter(id=invoice.id).update(purpose=InvoicePurpose.OUT_OF_TURN)

    await mark_collected(collector, assignment_id=stop_id, idempotency_key="t", now=NOW)

    await subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.TERMINATED


async def test_full_payment_leaves_the_suspension_while_another_invoice_still_suspends():
    tenant, _, collector, subscriber, invoice, stop_id = await _setup(
        status=SubscriberStatus.SUSPENDED
    )
    await Invoice.filter(id=invoice.id).update(
        purpose=InvoicePurpose.OUT_OF_TURN, suspension_on=date(2026, 11, 20)
    )
    await make_invoice(subscriber, 50_000, suspension_on=date(2026, 11, 21))

    await mark_collected(collector, assignment_id=stop_id, idempotency_key="f", now=NOW)

    await subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.SUSPENDED


async def test_paying_a_charge_that_could_not_suspend_leaves_the_offices_suspension():
    _, _, collector, subscriber, invoice, stop_id = await _setup(status=SubscriberStatus.SUSPENDED)
    await Invoice.filter(id=invoice.id).update(purpose=InvoicePurpose.MANUAL)

    await mark_collected(collector, assignment_id=stop_id, idempotency_key="m", now=NOW)

    await subscriber.refresh_from_db()
    assert subscriber.status == SubscriberStatus.SUSPENDED
