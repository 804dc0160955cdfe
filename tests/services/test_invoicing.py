"""Invoicing through the real services and database: dates at creation, customer classes,
drafts and their approval, requests, create and claim, billing cycles, the daily recurring
invoices, the dashboard and the bulk suspension of flagged subscribers."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from core.db.models import (
    AuditLog,
    CustomerClass,
    Invoice,
    LedgerPosting,
    OutboxMessage,
    Payment,
    Plan,
    Subscriber,
)
from core.domain import ledger
from core.domain.status import (
    BillingMode,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    RequestStatus,
    Role,
    SubscriberStatus,
)
from core.errors import Conflict, InvalidAmount, InvalidInput, NotFound, PermissionDenied
from core.services.billing import (
    create_customer_class,
    create_invoice,
    create_plan,
    next_invoice_number,
    update_customer_class,
)
from core.services.invoicing import (
    approve_drafts,
    change_billing_cycle,
    create_and_claim,
    dashboard,
    execute_request,
    issue_scheduled_invoices,
    list_drafts,
    new_invoice,
    preview_flagged_suspension,
    start_billing_cycle,
    stop_billing_cycle,
    suspend_flagged,
)
from core.services.ledger import account_balance
from tests.factories import make_invoice, make_reseller, make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")

# 10:00 in Dhaka on Tuesday 24 Nov 2026.
NOW = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)


async def _office(**plan):
    """A tenant with an admin and a plan (৳1,500 a month, reminders every 7 days)."""
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    home = await create_plan(
        admin, name="Home", price_minor=150_000, **({"reminder_days": 7} | plan)
    )
    return tenant, admin, home


async def _receivable(tenant, subscriber) -> int:
    return await account_balance(
        tenant_id=tenant.id, account=ledger.RECEIVABLE, subscriber_id=subscriber.id
    )


# --- dates at creation ---------------------------------------------------------------------


async def test_an_invoice_gets_its_first_reminder_and_the_plans_suspension_and_deletion_dates():
    tenant, admin, home = await _office(suspension_days=10, deletion_days=40)
    sub = await make_subscriber(tenant, plan=home)

    invoice = await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=150_000, issue_date=date(2026, 11, 1)
    )

    assert (invoice.due_date, invoice.reminder_days) == (date(2026, 12, 1), 7)
    assert invoice.next_reminder_on == date(2026, 11, 8)
    assert (invoice.suspension_on, invoice.deletion_on) == (date(2026, 12, 11), date(2027, 1, 10))
    assert (invoice.request_cancellation_on, invoice.request_status) == (None, None)
    assert invoice.system_generated is False


async def test_a_plan_without_offsets_sets_no_suspension_or_deletion_date():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)

    invoice = await create_invoice(admin, subscriber_id=sub.id, amount_minor=1, issue_date=TODAY)

    assert (invoice.suspension_on, invoice.deletion_on) == (None, None)


async def test_dates_given_when_creating_win_over_the_plans():
    tenant, admin, home = await _office(suspension_days=10, deletion_days=40)
    sub = await make_subscriber(tenant, plan=home)

    invoice = await create_invoice(
        admin,
        subscriber_id=sub.id,
        amount_minor=1,
        issue_date=TODAY,
        reminder_days=3,
        suspension_on=date(2026, 12, 1),
        deletion_on=date(2026, 12, 20),
    )

    assert invoice.next_reminder_on == date(2026, 11, 27)
    assert (invoice.suspension_on, invoice.deletion_on) == (date(2026, 12, 1), date(2026, 12, 20))


async def test_a_system_invoice_with_a_pending_request_gets_the_plans_cancellation_date():
    tenant, admin, home = await _office(request_cancellation_days=4)
    sub = await make_subscriber(tenant, plan=home)

    pending = await create_invoice(
        admin,
        subscriber_id=sub.id,
        amount_minor=1,
        issue_date=TODAY,
        system_generated=True,
        request_status="pending",
    )
    typed = await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=1, issue_date=TODAY, request_status="pending"
    )

    assert pending.request_cancellation_on == date(2026, 11, 28)
    assert pending.request_status == RequestStatus.PENDING
    assert typed.request_cancellation_on is None


@pytest.mark.parametrize("days", [0, -3])
async def test_reminder_days_that_are_zero_or_negative_are_refused_and_nothing_is_written(days):
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)

    with pytest.raises(InvalidInput) as refused:
        await create_invoice(
            admin, subscriber_id=sub.id, amount_minor=1, issue_date=TODAY, reminder_days=days
        )

    assert refused.value.code == "days_not_positive"
    assert str(refused.value) == f"Reminder days must be at least 1 day, not {days}."
    assert await Invoice.all().count() == 0
    assert await LedgerPosting.all().count() == 0


async def test_a_deletion_date_before_the_suspension_date_is_refused_and_nothing_is_written():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)

    with pytest.raises(InvalidInput) as refused:
        await create_invoice(
            admin,
            subscriber_id=sub.id,
            amount_minor=1,
            issue_date=TODAY,
            suspension_on=date(2026, 12, 20),
            deletion_on=date(2026, 12, 10),
        )

    assert refused.value.code == "deletion_before_suspension"
    assert await Invoice.all().count() == 0
    assert await AuditLog.filter(action="invoice.create").count() == 0


async def test_a_plan_deleting_before_it_suspends_is_refused():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)

    with pytest.raises(InvalidInput) as refused:
        await create_plan(admin, name="Bad", price_minor=1, suspension_days=30, deletion_days=10)
    with pytest.raises(InvalidInput, match="at least 1 day"):
        await create_plan(admin, name="Bad", price_minor=1, reminder_days=0)

    assert refused.value.code == "termination_before_suspension"
    assert await Plan.all().count() == 0


async def test_a_suspension_date_before_the_issue_date_is_refused():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)

    with pytest.raises(InvalidInput) as refused:
        await create_invoice(
            admin,
            subscriber_id=sub.id,
            amount_minor=1,
            issue_date=TODAY,
            suspension_on=date(2026, 11, 1),
        )

    assert refused.value.code == "date_before_issue"


async def test_invoice_numbers_keep_counting_past_9999():
    tenant = await make_tenant()
    sub = await make_subscriber(tenant)
    await make_invoice(sub, number="INV-2026-9999")
    await make_invoice(sub, number="INV-2026-10000")
    await make_invoice(sub, number="INV-2026-10001x")
    for n in range(25):  # late-fee notes: longer numbers, not in the sequence
        await make_invoice(sub, number=f"INV-2026-{n:04d}-LF")

    assert await next_invoice_number(tenant.id, TODAY) == "INV-2026-10001"
    assert await next_invoice_number(tenant.id, date(2027, 1, 1)) == "INV-2027-0001"


# --- customer classes ----------------------------------------------------------------------


async def test_a_customer_class_keeps_its_terms_and_policy():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)

    carrier = await create_customer_class(
        admin,
        name=" Carrier ",
        net_days=30,
        out_of_turn_net_days=6,
        pre_due_notice_days=3,
        reminder_days=5,
        late_fee_bp=200,
        collection_threshold_minor=10_000,
        suspend_after_days=15,
        terminate_after_days=60,
    )

    stored = await CustomerClass.get(id=carrier.id)
    assert (stored.name, stored.net_days, stored.out_of_turn_net_days) == ("Carrier", 30, 6)
    assert (stored.late_fee_bp, stored.suspend_after_days, stored.warning_days) == (200, 15, 3)
    assert await AuditLog.filter(action="customer_class.create").count() == 1


@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [
        ("net_days", 0, "days_not_positive"),
        ("out_of_turn_net_days", -1, "days_not_positive"),
        ("reminder_days", 0, "days_not_positive"),
        ("pre_due_notice_days", 0, "days_not_positive"),
        ("warning_days", -2, "days_not_positive"),
        ("late_fee_flat_minor", -1, "late_fee_invalid"),
        ("late_fee_bp", 10_001, "late_fee_invalid"),
        ("collection_threshold_minor", -5, "threshold_negative"),
    ],
)
async def test_a_customer_class_with_an_impossible_setting_is_refused_and_not_stored(
    setting, value, code
):
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)

    with pytest.raises(InvalidInput) as refused:
        await create_customer_class(admin, name="Carrier", **{setting: value})

    assert refused.value.code == code
    assert await CustomerClass.all().count() == 0


async def test_changing_a_customer_class_badly_changes_nothing():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    cls = await create_customer_class(
        admin, name="Home", suspend_after_days=10, terminate_after_days=30
    )

    with pytest.raises(InvalidInput) as negative:
        await update_customer_class(admin, class_id=cls.id, net_days=-30, reminder_days=4)
    with pytest.raises(InvalidInput) as early:
        await update_customer_class(admin, class_id=cls.id, terminate_after_days=5)
    with pytest.raises(InvalidInput) as emptied:
        await update_customer_class(admin, class_id=cls.id, net_days=None)
    with pytest.raises(InvalidInput) as unknown:
        await update_customer_class(admin, class_id=cls.id, late_fee_percent=5)

    assert negative.value.code == "days_not_positive"
    assert early.value.code == "termination_before_suspension"
    assert emptied.value.code == "class_setting_required"
    assert unknown.value.code == "class_setting_unknown"
    stored = await CustomerClass.get(id=cls.id)
    assert (stored.net_days, stored.reminder_days, stored.terminate_after_days) == (30, None, 30)
    assert await AuditLog.filter(action="customer_class.update").count() == 0


async def test_a_customer_class_can_be_changed_and_an_optional_setting_cleared():
    tenant = await make_tenant()
    admin = await make_staff(tenant, Role.ADMIN)
    cls = await create_customer_class(admin, name="Home", pre_due_notice_days=3)

    await update_customer_class(
        admin, class_id=cls.id, net_days=15, pre_due_notice_days=None, late_fee_flat_minor=5_000
    )

    stored = await CustomerClass.get(id=cls.id)
    assert (stored.net_days, stored.pre_due_notice_days, stored.late_fee_flat_minor) == (
        15,
        None,
        5_000,
    )
    audit = await AuditLog.get(action="customer_class.update")
    assert audit.details["before"] == {
        "net_days": 30,
        "pre_due_notice_days": 3,
        "late_fee_flat_minor": 0,
    }


async def test_only_an_admin_sets_up_customer_classes():
    tenant = await make_tenant()
    reseller = await make_staff(tenant, Role.RESELLER)

    with pytest.raises(PermissionDenied):
        await create_customer_class(reseller, name="Home")


# --- issuing at the desk -------------------------------------------------------------------


async def test_an_invoice_issued_by_username_is_dated_today_in_the_tenants_calendar():
    tenant, admin, home = await _office(suspension_days=5)
    await make_subscriber(tenant, username="rahim", name="Rahim Uddin", plan=home)

    issued = await new_invoice(admin, username="Rahim", amount_minor=80_000, now=NOW)

    assert (issued.number, issued.subscriber_name, issued.amount_minor) == (
        "INV-2026-0001",
        "Rahim Uddin",
        80_000,
    )
    assert (issued.issue_date, issued.due_date, issued.next_reminder_on) == (
        TODAY,
        date(2026, 12, 24),
        date(2026, 12, 1),
    )
    assert issued.suspension_on == date(2026, 12, 29)


async def test_an_unknown_username_is_not_found_and_only_an_admin_issues_invoices():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="rahim")
    await make_subscriber(await make_tenant(), username="karim")

    with pytest.raises(NotFound) as unknown:
        await new_invoice(admin, username="nobody", amount_minor=1, now=NOW)
    with pytest.raises(NotFound):
        await new_invoice(admin, username="karim", amount_minor=1, now=NOW)
    staff = await make_staff(tenant, Role.RESELLER, reseller=await make_reseller(tenant))
    with pytest.raises(PermissionDenied):
        await new_invoice(staff, username="rahim", amount_minor=1, now=NOW)

    assert unknown.value.code == "subscriber_not_found"


# --- drafts --------------------------------------------------------------------------------


async def _draft(admin, sub, amount_minor=150_000, issue_date=date(2026, 11, 1)):
    return await create_invoice(
        admin, subscriber_id=sub.id, amount_minor=amount_minor, issue_date=issue_date, draft=True
    )


async def test_a_draft_counts_only_after_approval_in_the_ledger_and_on_the_dashboard():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)
    draft = await _draft(admin, sub)

    before = await dashboard(admin, now=NOW)
    assert (before.drafts, before.approved, before.outstanding_minor) == (1, 0, 0)
    assert before.drafts_minor == 150_000
    assert await _receivable(tenant, sub) == 0
    assert draft.next_reminder_on is None

    approved = await approve_drafts(admin, numbers=[draft.number], now=NOW)

    after = await dashboard(admin, now=NOW)
    assert approved.numbers == (draft.number,)
    assert (after.drafts, after.approved, after.unpaid, after.outstanding_minor) == (
        0,
        1,
        1,
        150_000,
    )
    assert await _receivable(tenant, sub) == 150_000
    stored = await Invoice.get(id=draft.id)
    # Reminded one interval after approval (24 Nov), not after its issue date (1 Nov).
    assert (stored.status, stored.next_reminder_on) == (InvoiceStatus.UNPAID, date(2026, 12, 1))
    assert await AuditLog.filter(action="invoice.approve", object_id=draft.id).count() == 1
    assert await unbalanced_postings() == []


async def test_approving_an_already_approved_draft_is_refused_and_changes_nothing():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)
    first, second = await _draft(admin, sub), await _draft(admin, sub, 90_000)
    await approve_drafts(admin, numbers=[first.number], now=NOW)
    postings = await LedgerPosting.all().count()

    with pytest.raises(Conflict) as refused:
        await approve_drafts(admin, numbers=[second.number, first.number], now=NOW)

    assert refused.value.code == "not_a_draft"
    assert str(refused.value) == (
        f"{first.number} is not a draft (it is unpaid); there is nothing to approve."
    )
    assert (await Invoice.get(id=second.id)).status == InvoiceStatus.DRAFT
    assert await LedgerPosting.all().count() == postings
    assert await AuditLog.filter(action="invoice.approve").count() == 1


async def test_approving_an_unknown_or_foreign_invoice_is_not_found():
    tenant, admin, home = await _office()
    elsewhere = await make_tenant()
    foreign = await _draft(
        await make_staff(elsewhere, Role.ADMIN), await make_subscriber(elsewhere)
    )

    with pytest.raises(NotFound):
        await approve_drafts(admin, numbers=["INV-2026-0404"], now=NOW)
    with pytest.raises(NotFound):
        await approve_drafts(admin, ids=[foreign.id], now=NOW)
    with pytest.raises(InvalidInput):
        await approve_drafts(admin, numbers=[" "], now=NOW)


async def test_approving_all_approves_every_draft_of_the_tenant_and_only_drafts():
    tenant, admin, home = await _office()
    sub = await make_subscriber(tenant, plan=home)
    drafts = [await _draft(admin, sub, amount) for amount in (100_000, 20_000, 3_000)]
    typed = await create_invoice(admin, subscriber_id=sub.id, amount_minor=7, issue_date=TODAY)
    other_tenant = await make_tenant()
    await _draft(await make_staff(other_tenant, Role.ADMIN), await make_subscriber(other_tenant))

    listed = await list_drafts(admin)
    approved = await approve_drafts(admin, now=NOW)

    assert (listed.count, listed.amount_minor) == (3, 123_000)
    assert [d.number for d in listed.shown] == [d.number for d in drafts]
    assert (approved.numbers, approved.amount_minor) == (tuple(d.number for d in drafts), 123_000)
    assert await _receivable(tenant, sub) == 123_007
    assert (await Invoice.get(id=typed.id)).status == InvoiceStatus.UNPAID
    assert (await approve_drafts(admin, now=NOW)).numbers == ()
    assert (await list_drafts(admin)).count == 0


async def test_only_an_admin_approves_drafts():
    tenant, admin, home = await _office()
    draft = await _draft(admin, await make_subscriber(tenant, plan=home))
    reseller = await make_staff(tenant, Role.RESELLER)

    with pytest.raises(PermissionDenied):
        await approve_drafts(reseller, numbers=[draft.number], now=NOW)


# --- requests ------------------------------------------------------------------------------


async def test_executing_a_pending_request_removes_its_cancellation_date_once():
    tenant, admin, home = await _office(request_cancellation_days=3)
    sub = await make_subscriber(tenant, plan=home, name="Rahim")
    invoice = await create_invoice(
        admin,
        subscriber_id=sub.id,
        amount_minor=1,
        issue_date=TODAY,
        system_generated=True,
        request_status=RequestStatus.PENDING,
    )

    done = await execute_request(admin, number=invoice.number.lower())

    assert (done.number, done.subscriber_name) == (invoice.number, "Rahim")
    stored = await Invoice.get(id=invoice.id)
    assert (stored.request_status, stored.request_cancellation_on) == ("executed", None)
    with pytest.raises(Conflict) as again:
        await execute_request(admin, number=invoice.number)
    assert (again.value.code, again.value.params["status"]) == ("request_not_pending", "executed")
    assert await AuditLog.filter(action="invoice.execute_request").count() == 1


# --- create and claim ----------------------------------------------------------------------


async def test_create_and_claim_issues_a_paid_invoice_into_the_company_accounts_for_bkash():
    tenant, admin, home = await _office(suspension_days=10)
    sub = await make_subscriber(tenant, username="rahim", plan=home, expiry_date=TODAY)

    claimed = await create_and_claim(
        admin,
        subscriber="rahim",
        amount_minor=150_000,
        method="bkash",
        reference="TX-9",
        note="paid at the desk",
        idempotency_key="claim-1",
        now=NOW,
    )

    invoice = await Invoice.get(number=claimed.invoice_number)
    assert (invoice.status, invoice.paid_minor, invoice.amount_minor) == (
        InvoiceStatus.PAID,
        150_000,
        150_000,
    )
    assert (invoice.suspension_on, invoice.next_reminder_on) == (None, None)
    payment = await Payment.get(id=claimed.payment_id)
    assert (payment.method, payment.collector_id, payment.operator_id) == ("bkash", None, admin.id)
    assert (payment.reference, payment.note) == ("TX-9", "paid at the desk")
    # bKash money is in the company's wallet, not in the drawer.
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_ACCOUNTS) == 150_000
    assert await account_balance(tenant_id=tenant.id, account=ledger.OFFICE_CASH) == 0
    assert await _receivable(tenant, sub) == 0
    assert await unbalanced_postings() == []
    # A renewal paid in full extends the service, as at the door.
    assert claimed.new_expiry == date(2026, 12, 24)
    assert (await Subscriber.get(id=sub.id)).expiry_date == date(2026, 12, 24)
    assert claimed.receipt_queued
    assert await OutboxMessage.filter(kind="receipt", payment_id=payment.id).count() == 1
    assert await AuditLog.filter(action="invoice.claim", object_id=invoice.id).count() == 1


async def test_create_and_claim_twice_with_one_key_posts_once():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="rahim", plan=home)

    first = await create_and_claim(
        admin, subscriber="rahim", amount_minor=500, idempotency_key="k", now=NOW
    )
    again = await create_and_claim(
        admin, subscriber="rahim", amount_minor=500, idempotency_key="k", now=NOW
    )

    assert (again.replayed, again.invoice_number, again.payment_id) == (
        True,
        first.invoice_number,
        first.payment_id,
    )
    assert await Invoice.all().count() == 1
    assert await Payment.all().count() == 1


async def test_claiming_a_renewal_reactivates_a_suspended_subscriber_and_a_charge_does_not_renew():
    tenant, admin, home = await _office()
    sub = await make_subscriber(
        tenant, username="rahim", plan=home, status=SubscriberStatus.SUSPENDED
    )

    charge = await create_and_claim(
        admin,
        subscriber="rahim",
        amount_minor=500,
        purpose=InvoicePurpose.MANUAL,
        idempotency_key="charge",
        now=NOW,
    )
    assert charge.new_expiry is None
    assert (await Subscriber.get(id=sub.id)).status == SubscriberStatus.SUSPENDED

    await create_and_claim(
        admin, subscriber="rahim", amount_minor=150_000, idempotency_key="renewal", now=NOW
    )

    assert (await Subscriber.get(id=sub.id)).status == SubscriberStatus.ACTIVE


async def test_create_and_claim_refuses_a_zero_amount_or_an_unknown_method_and_writes_nothing():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="rahim", plan=home)

    with pytest.raises(InvalidAmount):
        await create_and_claim(
            admin, subscriber="rahim", amount_minor=0, idempotency_key="a", now=NOW
        )
    with pytest.raises(InvalidInput) as method:
        await create_and_claim(
            admin,
            subscriber="rahim",
            amount_minor=1,
            method="cheque",
            idempotency_key="b",
            now=NOW,
        )

    assert method.value.code == "method_unknown"
    assert await Invoice.all().count() == 0
    assert await Payment.all().count() == 0


# --- billing cycles ------------------------------------------------------------------------


async def test_a_billing_cycle_starts_changes_and_stops():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="corp", plan=home, billing_mode=BillingMode.POSTPAID)

    started = await start_billing_cycle(admin, username="corp", months=1, now=NOW)
    assert (started.months, started.next_billing_on) == (1, date(2026, 12, 24))

    changed = await change_billing_cycle(admin, username="corp", months=3)
    # The cycle under way keeps its start (24 Nov) and now ends three months on.
    assert (changed.months, changed.next_billing_on) == (3, date(2027, 2, 24))

    stopped = await stop_billing_cycle(admin, username="corp")
    assert (stopped.months, stopped.next_billing_on) == (3, None)
    actions = (
        await AuditLog.filter(object_type="subscriber")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert list(actions) == [
        "subscriber.cycle_start",
        "subscriber.cycle_change",
        "subscriber.cycle_stop",
    ]


async def test_billing_cycles_refuse_what_cannot_work_and_change_nothing():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="home", plan=home)
    corp = await make_subscriber(
        tenant, username="corp", plan=home, billing_mode=BillingMode.POSTPAID
    )
    await make_subscriber(tenant, username="bare", billing_mode=BillingMode.POSTPAID)

    cases = [
        (start_billing_cycle(admin, username="home", now=NOW), "not_postpaid"),
        (start_billing_cycle(admin, username="corp", months=0, now=NOW), "cycle_months_invalid"),
        (start_billing_cycle(admin, username="corp", months=13, now=NOW), "cycle_months_invalid"),
        (
            start_billing_cycle(admin, username="corp", first_on=date(2026, 11, 1), now=NOW),
            "billing_date_past",
        ),
        (start_billing_cycle(admin, username="bare", now=NOW), "no_plan"),
        (stop_billing_cycle(admin, username="corp"), "cycle_not_running"),
        (change_billing_cycle(admin, username="corp", months=2), "cycle_not_running"),
    ]
    for call, code in cases:
        with pytest.raises((InvalidInput, Conflict)) as refused:
            await call
        assert refused.value.code == code

    await start_billing_cycle(admin, username="corp", first_on=TODAY, now=NOW)
    with pytest.raises(Conflict) as running:
        await start_billing_cycle(admin, username="corp", now=NOW)
    assert running.value.code == "cycle_running"
    stored = await Subscriber.get(id=corp.id)
    assert (stored.billing_cycle_months, stored.next_billing_on) == (1, TODAY)


# --- the daily run -------------------------------------------------------------------------


async def _postpaid(tenant, home, *, next_on=TODAY, months=1, **overrides):
    return await make_subscriber(
        tenant,
        plan=home,
        billing_mode=BillingMode.POSTPAID,
        next_billing_on=next_on,
        billing_cycle_months=months,
        **overrides,
    )


async def test_a_postpaid_subscriber_gets_a_draft_for_the_cycle_that_ended():
    tenant, admin, home = await _office(suspension_days=10)
    corp = await _postpaid(tenant, home, months=3)

    issued = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert (issued.drafts, issued.drafts_minor, issued.renewals) == (1, 450_000, 0)
    draft = await Invoice.get(subscriber_id=corp.id)
    assert (draft.status, draft.amount_minor, draft.issue_date) == (
        InvoiceStatus.DRAFT,
        450_000,
        TODAY,
    )
    assert (draft.system_generated, draft.request_status, draft.next_reminder_on) == (
        True,
        None,
        None,
    )
    assert draft.suspension_on == date(2027, 1, 3)
    assert (await Subscriber.get(id=corp.id)).next_billing_on == date(2027, 2, 24)
    assert await LedgerPosting.all().count() == 0  # a draft counts for nothing yet


async def test_running_the_day_twice_issues_nothing_new():
    tenant, admin, home = await _office()
    await _postpaid(tenant, home)
    await make_subscriber(tenant, plan=home, expiry_date=TODAY + timedelta(days=3))

    first = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)
    second = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert (first.drafts, first.renewals) == (1, 1)
    assert (second.drafts, second.renewals) == (0, 0)
    assert await Invoice.all().count() == 2


async def test_a_paused_run_catches_up_every_ended_cycle_once():
    tenant, admin, home = await _office()
    corp = await _postpaid(tenant, home, next_on=date(2026, 9, 24))

    issued = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert issued.drafts == 3
    dates = (
        await Invoice.filter(subscriber_id=corp.id)
        .order_by("issue_date")
        .values_list("issue_date", flat=True)
    )
    assert list(dates) == [date(2026, 9, 24), date(2026, 10, 24), date(2026, 11, 24)]
    assert (await Subscriber.get(id=corp.id)).next_billing_on == date(2026, 12, 24)


async def test_stopped_terminated_planless_and_future_cycles_are_not_billed():
    tenant, admin, home = await _office()
    await _postpaid(tenant, home, next_on=None)
    await _postpaid(tenant, home, status=SubscriberStatus.TERMINATED)
    await _postpaid(tenant, None)
    await _postpaid(tenant, home, next_on=TODAY + timedelta(days=1))

    issued = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert (issued.drafts, issued.without_plan) == (0, 1)
    assert await Invoice.all().count() == 0


async def test_a_prepaid_subscriber_gets_a_pending_renewal_ahead_of_expiry():
    tenant, admin, home = await _office(request_cancellation_days=7)
    rahim = await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 29))
    await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 30))  # 6 days ahead
    await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 23))  # lapsed

    issued = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert (issued.renewals, issued.renewals_minor) == (1, 150_000)
    renewal = await Invoice.get(subscriber_id=rahim.id)
    assert (renewal.status, renewal.purpose, renewal.amount_minor) == (
        InvoiceStatus.UNPAID,
        InvoicePurpose.RENEWAL,
        150_000,
    )
    assert (renewal.system_generated, renewal.request_status) == (True, "pending")
    assert renewal.request_cancellation_on == date(2026, 12, 1)
    assert renewal.next_reminder_on == date(2026, 12, 1)
    assert await _receivable(tenant, rahim) == 150_000
    audit = await AuditLog.get(action="invoice.create", object_id=renewal.id)
    assert (audit.actor_kind, audit.actor_staff_id) == ("system", None)


async def test_no_renewal_while_one_is_open_nor_again_after_the_clock_cancelled_it():
    tenant, admin, home = await _office()
    open_one = await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 26))
    await make_invoice(open_one, purpose=InvoicePurpose.RENEWAL, status=InvoiceStatus.PARTIAL)
    lapsed = await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 26))
    await make_invoice(
        lapsed,
        purpose=InvoicePurpose.RENEWAL,
        status=InvoiceStatus.CANCELLED,
        system_generated=True,
        request_status="cancelled",
        issue_date=date(2026, 11, 21),
    )
    paid_last_month = await make_subscriber(tenant, plan=home, expiry_date=date(2026, 11, 26))
    await make_invoice(
        paid_last_month,
        purpose=InvoicePurpose.RENEWAL,
        status=InvoiceStatus.PAID,
        paid_minor=150_000,
        system_generated=True,
        issue_date=date(2026, 10, 21),
    )

    issued = await issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY)

    assert issued.renewals == 1
    assert await Invoice.filter(subscriber_id=paid_last_month.id).count() == 2


# --- the dashboard -------------------------------------------------------------------------


async def test_the_dashboard_counts_in_the_tenants_calendar_and_a_reseller_sees_their_own():
    tenant, admin, home = await _office()
    ours = await make_reseller(tenant)
    mine = await make_subscriber(tenant, reseller=ours)
    theirs = await make_subscriber(tenant)
    await make_invoice(mine, 100_000, due_date=date(2026, 11, 23))  # overdue
    await make_invoice(
        mine, 50_000, paid_minor=20_000, status=InvoiceStatus.PARTIAL, due_date=TODAY
    )  # due today: not overdue yet
    await make_invoice(mine, 30_000, paid_minor=30_000, status=InvoiceStatus.PAID)
    await make_invoice(mine, 9_000, status=InvoiceStatus.DRAFT)
    await make_invoice(mine, 5_000, status=InvoiceStatus.CANCELLED)
    await make_invoice(theirs, 70_000, due_date=date(2026, 11, 1))
    reseller = await make_staff(tenant, Role.RESELLER, reseller=ours)

    everything = await dashboard(admin, now=NOW)
    own = await dashboard(reseller, now=NOW)

    assert (everything.total, everything.approved, everything.drafts) == (5, 4, 1)
    assert (everything.paid, everything.unsettled, everything.overdue) == (1, 3, 2)
    assert (everything.outstanding_minor, everything.overdue_minor) == (200_000, 170_000)
    assert everything.received_minor == 50_000
    assert (own.total, own.unpaid, own.partial, own.overdue) == (4, 1, 1, 1)
    assert (own.outstanding_minor, own.overdue_minor, own.drafts_minor) == (
        130_000,
        100_000,
        9_000,
    )
    with pytest.raises(PermissionDenied):
        await dashboard(await make_staff(tenant, Role.COLLECTOR), now=NOW)


async def test_the_dashboard_of_an_empty_tenant_is_all_zero():
    tenant = await make_tenant()
    figures = await dashboard(await make_staff(tenant, Role.ADMIN), now=NOW)
    assert (figures.total, figures.outstanding_minor, figures.today) == (0, 0, TODAY)


# --- bulk suspension of flagged subscribers ------------------------------------------------


async def _flagged(tenant, name, *, status=SubscriberStatus.ACTIVE, invoice_status=None):
    sub = await make_subscriber(tenant, name=name, username=name.lower(), status=status)
    await make_invoice(
        sub,
        100_000,
        status=invoice_status or InvoiceStatus.UNPAID,
        failed_visits=3,
        flagged_at=NOW,
    )
    return sub


async def test_flagged_subscribers_are_previewed_then_suspended_each_with_an_audit_row():
    tenant, admin, home = await _office()
    rahim = await _flagged(tenant, "Rahim")
    salma = await _flagged(tenant, "Salma")
    gone = await _flagged(tenant, "Gone", status=SubscriberStatus.TERMINATED)
    paid = await _flagged(tenant, "Paid", invoice_status=InvoiceStatus.PAID)
    await make_invoice(await make_subscriber(tenant), 1)  # not flagged

    preview = await preview_flagged_suspension(admin)
    done = await suspend_flagged(admin)

    assert (preview.count, preview.due_minor) == (2, 200_000)
    assert [s.username for s in preview.shown] == ["rahim", "salma"]
    assert (preview.shown[0].failed_visits, preview.shown[0].invoices) == (3, 1)
    assert sorted(done.usernames) == ["rahim", "salma"]
    statuses = {
        s.id: s.status
        for s in await Subscriber.filter(id__in=[rahim.id, salma.id, gone.id, paid.id])
    }
    assert statuses == {
        rahim.id: SubscriberStatus.SUSPENDED,
        salma.id: SubscriberStatus.SUSPENDED,
        gone.id: SubscriberStatus.TERMINATED,
        paid.id: SubscriberStatus.ACTIVE,
    }
    assert await AuditLog.filter(action="subscriber.suspend").count() == 2
    assert (await preview_flagged_suspension(admin)).count == 0
    assert (await suspend_flagged(admin)).usernames == ()


async def test_suspending_what_a_preview_showed_leaves_out_subscribers_flagged_since():
    tenant, admin, home = await _office()
    rahim = await _flagged(tenant, "Rahim")
    preview = await preview_flagged_suspension(admin)
    salma = await _flagged(tenant, "Salma")

    done = await suspend_flagged(admin, subscriber_ids=[s.subscriber_id for s in preview.shown])

    assert done.usernames == ("rahim",)
    assert (await Subscriber.get(id=rahim.id)).status == SubscriberStatus.SUSPENDED
    assert (await Subscriber.get(id=salma.id)).status == SubscriberStatus.ACTIVE


async def test_only_an_admin_suspends_flagged_subscribers():
    tenant = await make_tenant()
    with pytest.raises(PermissionDenied):
        await suspend_flagged(await make_staff(tenant, Role.RESELLER))


async def test_invoice_kinds_and_purposes_pass_through_a_desk_invoice():
    tenant, admin, home = await _office()
    await make_subscriber(tenant, username="rahim", plan=home)

    note = await new_invoice(
        admin,
        username="rahim",
        amount_minor=5_000,
        kind=InvoiceKind.DEBIT_NOTE,
        purpose=InvoicePurpose.MANUAL,
        now=NOW,
    )

    assert (note.kind, note.purpose, note.reminder_days) == (
        InvoiceKind.DEBIT_NOTE,
        InvoicePurpose.MANUAL,
        5,
    )
    assert note.next_reminder_on == date(2026, 11, 29)


# --- races (PostgreSQL: requests really run at once on separate connections) --------------


@pytest.mark.postgres_only
async def test_two_admins_approving_one_draft_at_once_post_it_once():
    tenant, admin, home = await _office()
    other_admin = await make_staff(tenant, Role.ADMIN)
    sub = await make_subscriber(tenant, plan=home)
    draft = await _draft(admin, sub)

    results = await asyncio.gather(
        *(
            approve_drafts(who, numbers=[draft.number], now=NOW)
            for who in [admin, other_admin] * 5
        ),
        return_exceptions=True,
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert (len(won), len(lost)) == (1, 9)
    assert all(r.code == "not_a_draft" for r in lost)
    assert await LedgerPosting.filter(invoice_id=draft.id).count() == 1
    assert await _receivable(tenant, sub) == 150_000
    assert await AuditLog.filter(action="invoice.approve").count() == 1
    assert await unbalanced_postings() == []


@pytest.mark.postgres_only
async def test_two_schedulers_issuing_the_same_day_at_once_issue_each_invoice_once():
    tenant, admin, home = await _office()
    for _ in range(5):
        await _postpaid(tenant, home)
        await make_subscriber(tenant, plan=home, expiry_date=TODAY + timedelta(days=2))

    runs = await asyncio.gather(
        *(issue_scheduled_invoices(tenant_id=tenant.id, day=TODAY) for _ in range(4))
    )

    assert sum(r.drafts for r in runs) == 5
    assert sum(r.renewals for r in runs) == 5
    assert await Invoice.filter(status=InvoiceStatus.DRAFT).count() == 5
    assert await Invoice.filter(status=InvoiceStatus.UNPAID).count() == 5
    assert await LedgerPosting.all().count() == 5
    assert await unbalanced_postings() == []
