"""The dunning clock over a simulated 90 days: `run_dunning_day` once a day, payments taken
at the door through a route (`mark_collected`) before the day's run, real database.

The customer class is net 30 with a notice 3 days before the due date, a flat 50 taka
late fee and warnings 3 days ahead; the plan reminds every 7 days. Invoices are issued by
`create_invoice` on 1 Nov 2026 (due 1 Dec), so each has its receivable posting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.db.models import (
    Assignment,
    AuditLog,
    CustomerClass,
    Invoice,
    JobRun,
    LedgerLeg,
    LedgerPosting,
    OutboxMessage,
    Plan,
    Staff,
    Subscriber,
    Tenant,
)
from core.domain.ledger import RECEIVABLE
from core.domain.status import (
    AssignmentStatus,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    Role,
    SubscriberStatus,
)
from core.services.assignments import assign_invoices
from core.services.billing import create_invoice
from core.services.collection import mark_collected
from core.services.dunning import daily_summary, due_dunning_days, run_dunning_day
from core.services.ledger import account_balance
from tests.factories import make_staff, make_subscriber, make_tenant
from tests.ledger_checks import unbalanced_postings

pytestmark = pytest.mark.usefixtures("db")

ISSUED = date(2026, 11, 1)
DUE = date(2026, 12, 1)


def at(day: date, hour: int = 9) -> datetime:
    """`hour` o'clock in Dhaka (UTC+6) on `day`."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=6)


class Office:
    """One ISP with a class, a plan, an admin and a collector, and its subscribers."""

    def __init__(self, tenant: Tenant, admin: Staff, collector: Staff, cls: CustomerClass):
        self.tenant, self.admin, self.collector, self.cls = tenant, admin, collector, cls
        self.plan: Plan | None = None

    @classmethod
    async def open(cls, **class_overrides: Any) -> Office:
        tenant = await make_tenant(name="Dhaka Fiber Net")
        admin = await make_staff(tenant, Role.ADMIN)
        collector = await make_staff(tenant, Role.COLLECTOR, commission_bp=0)
        values = {
            "net_days": 30,
            "pre_due_notice_days": 3,
            "late_fee_flat_minor": 5_000,
            "warning_days": 3,
            "out_of_turn_net_days": 6,
        }
        klass = await CustomerClass.create(
            tenant=tenant, name="Home", **(values | class_overrides)
        )
        office = cls(tenant, admin, collector, klass)
        office.plan = await Plan.create(
            tenant=tenant, name="10 Mbps", price_minor=150_000, reminder_days=7
        )
        return office

    async def invoice(
        self, amount_minor: int = 150_000, subscriber: Subscriber | None = None, **dates: Any
    ) -> Invoice:
        """A renewal issued on 1 Nov through billing (receivable posted); `dates` set the
        dunning columns the invoicing side would (suspension_on, request status, ...)."""
        if subscriber is None:
            subscriber = await make_subscriber(
                self.tenant, name="Rahim Uddin", customer_class=self.cls, plan=self.plan
            )
        invoice = await create_invoice(
            self.admin, subscriber_id=subscriber.id, amount_minor=amount_minor, issue_date=ISSUED
        )
        if dates:
            await Invoice.filter(id=invoice.id).update(**dates)
        await invoice.refresh_from_db()
        return invoice

    async def pay(self, invoice: Invoice, amount_minor: int | None, day: date) -> None:
        """The collector takes cash at the door at 8:00, before the day's run."""
        assigned = await assign_invoices(
            self.admin, collector_id=self.collector.id, numbers=[invoice.number], now=at(day, 8)
        )
        stop = assigned.assigned[0].assignment_id
        assert stop is not None
        await mark_collected(
            self.collector,
            assignment_id=stop,
            idempotency_key=f"pay-{invoice.id}-{day}",
            amount_minor=amount_minor,
            now=at(day, 8),
        )

    async def run(self, day: date, worker: str = "w1") -> Any:
        return await run_dunning_day(tenant_id=self.tenant.id, day=day, worker=worker, now=at(day))

    async def walk(
        self,
        days: int = 90,
        *,
        start: date = ISSUED,
        before: dict[date, Callable[[], Awaitable[None]]] | None = None,
        down: set[date] | None = None,
    ) -> None:
        """Run each day from `start`; `before[day]` happens that morning; `down` days the
        process was not running."""
        for n in range(days):
            day = start + timedelta(days=n)
            if before and day in before:
                await before[day]()
            if down and day in down:
                continue
            await self.run(day)


async def days_of(kind: str, invoice: Invoice) -> list[date]:
    """The days a text of `kind` was queued for `invoice` (from its dedupe key)."""
    keys = await (
        OutboxMessage.filter(kind=kind, invoice_id=invoice.id)
        .order_by("id")
        .values_list("dedupe_key", flat=True)
    )
    return [date.fromisoformat(str(k).rsplit(":", 1)[1]) for k in keys]


def weekly(first: date, last: date) -> list[date]:
    return [first + timedelta(days=7 * n) for n in range((last - first).days // 7 + 1)]


async def snapshot() -> dict[str, Any]:
    """Everything the run may change, to compare before and after."""
    return {
        "outbox": await OutboxMessage.all().order_by("id").values_list("id", "dedupe_key"),
        "invoices": await Invoice.all()
        .order_by("id")
        .values_list("id", "status", "next_reminder_on", "request_status"),
        "subscribers": await Subscriber.all().order_by("id").values_list("id", "status"),
        "legs": await LedgerLeg.all().count(),
        "audit": await AuditLog.all().count(),
    }


# --- reminders ------------------------------------------------------------------------------


async def test_reminders_go_out_every_seven_days_until_paid_in_full_and_never_after():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice()

    await office.walk(
        before={date(2026, 11, 30): lambda: office.pay(invoice, None, date(2026, 11, 30))}
    )

    assert await days_of("reminder", invoice) == weekly(date(2026, 11, 8), date(2026, 11, 29))
    texts = await OutboxMessage.filter(invoice_id=invoice.id).exclude(kind="receipt")
    assert max(date.fromisoformat(m.dedupe_key.rsplit(":", 1)[1]) for m in texts) == date(
        2026, 11, 29
    )  # nothing at all after the payment


async def test_a_partial_payment_keeps_the_reminders_going_until_the_rest_is_paid():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice()

    await office.walk(
        days=60,
        before={
            date(2026, 11, 10): lambda: office.pay(invoice, 50_000, date(2026, 11, 10)),
            date(2026, 12, 14): lambda: office.pay(invoice, None, date(2026, 12, 14)),
        },
    )

    assert await days_of("reminder", invoice) == weekly(date(2026, 11, 8), date(2026, 12, 13))


async def test_a_reminder_names_what_is_due_the_invoice_its_due_date_and_the_dates_ahead():
    office = await Office.open()
    invoice = await office.invoice(suspension_on=date(2026, 12, 20), deletion_on=date(2027, 1, 20))
    await office.pay(invoice, 40_000, date(2026, 11, 5))

    await office.run(date(2026, 11, 8))

    message = await OutboxMessage.get(kind="reminder", invoice_id=invoice.id)
    subscriber = await Subscriber.get(id=invoice.subscriber_id)
    assert (message.recipient, message.status, message.channel) == (
        subscriber.phone,
        "pending",
        "whatsapp",
    )
    assert message.dedupe_key == f"reminder:{invoice.id}:2026-11-08"
    assert message.payload["text"] == (
        f"Dear Rahim Uddin, ৳1,100 is still due on invoice {invoice.number},"
        " due on 1 December 2026.\n"
        "Unless it is paid in full, your service will be suspended on 20 December 2026.\n"
        "Unless it is paid in full, your account will be closed on 20 January 2027.\n"
        "Already paid? Please ignore this message.\n"
        "\n"
        "Dhaka Fiber Net"
    )


async def test_an_overdue_reminder_says_when_it_was_due_and_no_date_already_passed():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice(
        suspension_on=date(2026, 12, 5), next_reminder_on=date(2026, 12, 8)
    )
    await office.walk(days=3, start=date(2026, 12, 6))

    message = await OutboxMessage.get(kind="reminder", invoice_id=invoice.id)
    assert message.payload["text"].startswith(
        f"Dear Rahim Uddin, ৳1,500 is still due on invoice {invoice.number},"
        " which was due on 1 December 2026.\nAlready paid?"
    )


async def test_a_bengali_subscriber_is_reminded_in_bengali():
    office = await Office.open()
    subscriber = await make_subscriber(
        office.tenant, name="রহিম", language="bn", customer_class=office.cls, plan=office.plan
    )
    invoice = await office.invoice(subscriber=subscriber)

    await office.run(date(2026, 11, 8))

    message = await OutboxMessage.get(kind="reminder", invoice_id=invoice.id)
    assert message.payload["text"] == (
        f"প্রিয় রহিম, ইনভয়েস {invoice.number}-এ এখনও ৳1,500 বাকি আছে;"
        " পরিশোধের শেষ তারিখ 1 ডিসেম্বর 2026।\n"
        "ইতিমধ্যে পরিশোধ করে থাকলে এই বার্তাটি উপেক্ষা করুন।\n\nDhaka Fiber Net"
    )


async def test_no_reminder_goes_out_while_the_invoices_request_is_pending():
    office = await Office.open()
    invoice = await office.invoice(request_status="pending")

    await office.walk(days=40)

    assert await days_of("reminder", invoice) == []


async def test_an_invoice_without_a_next_reminder_day_is_first_reminded_one_interval_on():
    office = await Office.open()
    invoice = await office.invoice(next_reminder_on=None)  # e.g. imported before the clock

    await office.walk(days=16)

    assert await days_of("reminder", invoice) == [date(2026, 11, 8), date(2026, 11, 15)]
    assert (await Invoice.get(id=invoice.id)).next_reminder_on == date(2026, 11, 22)


async def test_a_landline_is_stored_refused_and_a_subscriber_without_a_number_gets_nothing():
    office = await Office.open()
    landline = await make_subscriber(
        office.tenant, phone="+88029660001", customer_class=office.cls, plan=office.plan
    )
    silent = await make_subscriber(
        office.tenant, phone=None, customer_class=office.cls, plan=office.plan
    )
    refused = await office.invoice(subscriber=landline)
    unreachable = await office.invoice(subscriber=silent)

    result = await office.run(date(2026, 11, 8))

    message = await OutboxMessage.get(invoice_id=refused.id)
    assert (message.status, message.last_error) == (
        "refused",
        "+88029660001 is a landline, which cannot receive WhatsApp",
    )
    assert await OutboxMessage.filter(invoice_id=unreachable.id).count() == 0
    assert (await Invoice.get(id=unreachable.id)).next_reminder_on == date(2026, 11, 15)
    assert (result.stats.reminders, result.stats.refused, result.stats.no_phone) == (1, 1, 1)


# --- the pre-due notice and the late fee ------------------------------------------------------


async def test_the_pre_due_notice_goes_out_once_three_days_before_the_due_date():
    office = await Office.open()
    invoice = await office.invoice()

    await office.walk()

    assert await days_of("pre_due_notice", invoice) == [date(2026, 11, 28)]
    message = await OutboxMessage.get(kind="pre_due_notice", invoice_id=invoice.id)
    assert message.payload["text"] == (
        f"Dear Rahim Uddin, invoice {invoice.number} for ৳1,500 is due on 1 December 2026."
        " Please pay by then to keep your service running.\n\nDhaka Fiber Net"
    )


async def test_the_late_fee_is_charged_once_as_a_debit_note_with_a_balanced_posting():
    office = await Office.open(late_fee_flat_minor=5_000, late_fee_bp=200)
    invoice = await office.invoice()
    await office.pay(invoice, 50_000, date(2026, 11, 20))

    await office.walk(start=date(2026, 11, 20))

    [fee] = await Invoice.filter(late_fee_for_id=invoice.id)
    assert (fee.number, fee.kind, fee.purpose, fee.amount_minor) == (
        f"{invoice.number}-LF",
        InvoiceKind.DEBIT_NOTE,
        InvoicePurpose.LATE_FEE,
        5_000 + 2_000,  # flat, plus 2% of the 1,000 taka still due
    )
    assert (fee.issue_date, fee.due_date, fee.reminder_days, fee.system_generated) == (
        date(2026, 12, 2),  # the day after the due date
        date(2026, 12, 8),  # out-of-turn terms: 6 days
        5,
        True,
    )
    assert await Invoice.filter(kind=InvoiceKind.DEBIT_NOTE).count() == 1
    assert await unbalanced_postings() == []
    receivable = await account_balance(
        tenant_id=office.tenant.id, account=RECEIVABLE, subscriber_id=invoice.subscriber_id
    )
    assert receivable == 150_000 - 50_000 + 7_000
    posting = await LedgerPosting.get(invoice_id=fee.id)
    assert (posting.kind, posting.memo) == ("invoice_issued", fee.number)
    # The fee is chased like any debit note: every 5 days, and never charged a fee itself.
    assert (await days_of("reminder", fee))[:3] == [
        date(2026, 12, 7),
        date(2026, 12, 12),
        date(2026, 12, 17),
    ]
    audit = await AuditLog.get(action="invoice.late_fee")
    assert (audit.actor_kind, audit.object_id, audit.details["amount_minor"]) == (
        "system",
        invoice.id,
        7_000,
    )


async def test_no_late_fee_or_suspension_when_what_is_due_is_at_or_under_the_threshold():
    office = await Office.open(collection_threshold_minor=10_000)
    invoice = await office.invoice(suspension_on=date(2026, 12, 15))
    await office.pay(invoice, 140_000, date(2026, 11, 20))

    await office.walk(start=date(2026, 11, 20), days=60)

    assert await Invoice.filter(late_fee_for_id=invoice.id).count() == 0
    assert (await Subscriber.get(id=invoice.subscriber_id)).status == SubscriberStatus.ACTIVE
    assert await days_of("suspension_warning", invoice) == []
    assert await days_of("reminder", invoice)  # the 100 taka are still owed


# --- suspension and deletion ------------------------------------------------------------------


async def test_warned_then_suspended_a_partial_payment_does_not_reactivate_but_full_payment_does():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice(suspension_on=date(2026, 12, 10))
    subscriber_id = invoice.subscriber_id

    async def status() -> SubscriberStatus:
        return (await Subscriber.get(id=subscriber_id)).status

    await office.walk(days=39)  # to 9 Dec
    assert await days_of("suspension_warning", invoice) == [date(2026, 12, 7)]
    assert await status() == SubscriberStatus.ACTIVE

    await office.walk(days=2, start=date(2026, 12, 10))
    assert await status() == SubscriberStatus.SUSPENDED
    audit = await AuditLog.get(action="subscriber.suspend")
    assert (audit.actor_kind, audit.object_id, audit.details["number"]) == (
        "system",
        subscriber_id,
        invoice.number,
    )

    await office.pay(invoice, 100_000, date(2026, 12, 12))
    await office.walk(days=3, start=date(2026, 12, 12))
    assert await status() == SubscriberStatus.SUSPENDED

    await office.pay(invoice, None, date(2026, 12, 15))
    await office.walk(days=30, start=date(2026, 12, 15))
    assert await status() == SubscriberStatus.ACTIVE
    assert await AuditLog.filter(action="subscriber.suspend").count() == 1
    assert [d for d in await days_of("reminder", invoice) if d >= date(2026, 12, 15)] == []


async def test_deletion_is_warned_then_terminates_the_subscriber_and_paying_does_not_undo_it():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice(suspension_on=date(2026, 12, 10), deletion_on=date(2027, 1, 10))

    await office.walk(days=75)  # to 14 Jan
    await office.pay(invoice, None, date(2027, 1, 15))
    await office.walk(days=15, start=date(2027, 1, 15))

    assert await days_of("deletion_warning", invoice) == [date(2027, 1, 7)]
    assert (await Subscriber.get(id=invoice.subscriber_id)).status == SubscriberStatus.TERMINATED
    actions = (
        await AuditLog.filter(object_type="subscriber")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["subscriber.suspend", "subscriber.terminate"]
    warning = await OutboxMessage.get(kind="deletion_warning", invoice_id=invoice.id)
    assert warning.payload["text"] == (
        f"Dear Rahim Uddin, ৳1,500 is still due on invoice {invoice.number}. Your account"
        " will be closed for good on 10 January 2027 unless the invoice is paid in full"
        " before then. A closed account cannot be restored.\n\nDhaka Fiber Net"
    )


# --- request cancellation -----------------------------------------------------------------------

PENDING_REQUEST = {
    "system_generated": True,
    "request_status": "pending",
    "request_cancellation_on": date(2026, 11, 20),
}


async def test_an_unpaid_system_invoice_with_a_pending_request_is_cancelled_on_its_date():
    office = await Office.open()
    invoice = await office.invoice(**PENDING_REQUEST)
    await assign_invoices(office.admin, collector_id=office.collector.id, numbers=[invoice.number])

    await office.walk()

    after = await Invoice.get(id=invoice.id)
    assert (after.status, after.request_status, after.request_cancellation_on) == (
        InvoiceStatus.CANCELLED,
        "cancelled",
        None,
    )
    assert await unbalanced_postings() == []
    receivable = await account_balance(
        tenant_id=office.tenant.id, account=RECEIVABLE, subscriber_id=invoice.subscriber_id
    )
    assert receivable == 0
    audit = await AuditLog.get(action="invoice.cancel_request")
    assert (audit.actor_kind, audit.object_id, audit.details["day"]) == (
        "system",
        invoice.id,
        "2026-11-20",
    )
    stop = await Assignment.get(invoice_id=invoice.id)
    assert (stop.status, stop.open_invoice_id) == (AssignmentStatus.REMOVED, None)
    assert await OutboxMessage.filter(invoice_id=invoice.id).count() == 0
    assert await Invoice.filter(kind=InvoiceKind.DEBIT_NOTE).count() == 0


async def test_a_partial_payment_removes_the_cancellation_date_and_the_invoice_stays():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice(**PENDING_REQUEST)

    await office.walk(
        before={date(2026, 11, 5): lambda: office.pay(invoice, 100, date(2026, 11, 5))}
    )

    after = await Invoice.get(id=invoice.id)
    assert (after.status, after.request_status, after.request_cancellation_on) == (
        InvoiceStatus.PARTIAL,
        "pending",
        None,
    )
    assert await AuditLog.filter(action="invoice.cancel_request").count() == 0


# --- the run itself ------------------------------------------------------------------------------


async def test_a_day_run_twice_changes_nothing_even_when_its_claim_is_gone():
    office = await Office.open(late_fee_bp=100)
    invoices = [
        await office.invoice(suspension_on=date(2026, 12, 2), deletion_on=date(2026, 12, 5)),
        await office.invoice(**PENDING_REQUEST | {"request_cancellation_on": date(2026, 12, 2)}),
        await office.invoice(next_reminder_on=date(2026, 12, 2)),
    ]
    await office.walk(days=31)  # to 1 Dec
    day = date(2026, 12, 2)
    first = await office.run(day)
    assert first is not None
    done = await snapshot()
    assert first.stats.late_fees == 2 and first.stats.suspensions == 1
    assert first.stats.cancellations == 1

    assert await office.run(day, worker="w2") is None
    assert await snapshot() == done

    # Even a run that finds no claim (taken over after a crash) does nothing twice.
    await JobRun.filter(day=day).delete()
    again = await office.run(day, worker="w3")
    assert again is not None and await snapshot() == done
    assert len(invoices) == 3


async def test_a_process_down_for_five_days_catches_up_once():
    office = await Office.open(late_fee_flat_minor=0)
    invoice = await office.invoice(suspension_on=date(2026, 11, 10))
    down = {date(2026, 11, 7) + timedelta(days=n) for n in range(5)}  # 7-11 Nov

    await office.walk(days=20, down=down)

    assert (await days_of("reminder", invoice))[:2] == [date(2026, 11, 12), date(2026, 11, 19)]
    assert await AuditLog.filter(action="subscriber.suspend").count() == 1
    assert (await Subscriber.get(id=invoice.subscriber_id)).status == SubscriberStatus.SUSPENDED
    assert await JobRun.filter(day__in=sorted(down)).count() == 0


async def test_the_run_records_what_it_did_in_its_job_run():
    office = await Office.open()
    await office.invoice()
    await office.invoice(next_reminder_on=date(2026, 11, 20))

    result = await office.run(date(2026, 11, 8))

    job = await JobRun.get(tenant_id=office.tenant.id, day=date(2026, 11, 8))
    assert (job.job, job.claimed_by) == ("dunning", "w1")
    assert job.finished_at is not None
    assert job.stats == asdict(result.stats)
    assert (job.stats["checked"], job.stats["reminders"], job.stats["batches"]) == (1, 1, 1)


async def test_a_claim_left_unfinished_by_a_dead_process_is_taken_over_after_an_hour():
    office = await Office.open()
    await office.invoice()
    day = date(2026, 11, 8)
    await JobRun.create(
        job="dunning", tenant_id=office.tenant.id, day=day, claimed_by="dead", started_at=at(day)
    )

    assert (
        await run_dunning_day(
            tenant_id=office.tenant.id, day=day, worker="w2", now=at(day) + timedelta(minutes=30)
        )
        is None
    )
    taken = await run_dunning_day(
        tenant_id=office.tenant.id, day=day, worker="w2", now=at(day) + timedelta(hours=2)
    )

    assert taken is not None and taken.stats.reminders == 1
    assert (await JobRun.get(day=day)).claimed_by == "w2"


async def test_only_the_tenants_own_invoices_are_touched():
    office = await Office.open()
    other = await Office.open()
    mine = await office.invoice()
    theirs = await other.invoice()

    await office.run(date(2026, 11, 8))

    assert await days_of("reminder", mine) == [date(2026, 11, 8)]
    assert await days_of("reminder", theirs) == []


async def test_a_tenant_is_due_its_run_once_its_local_hour_has_come_and_until_it_ran():
    office = await Office.open()
    await Tenant.filter(id=office.tenant.id).update(dunning_hour=9)
    day = date(2026, 11, 8)

    assert (office.tenant.id, day) not in await due_dunning_days(at(day, 8))
    assert (office.tenant.id, day) in await due_dunning_days(at(day, 9))
    await office.run(day)
    assert (office.tenant.id, day) not in await due_dunning_days(at(day, 10))


# --- the admins' daily summary ------------------------------------------------------------------


async def test_the_daily_summary_counts_what_is_pending_and_what_the_run_did():
    office = await Office.open(late_fee_flat_minor=0)
    paid_part = await office.invoice()
    await office.invoice(suspension_on=date(2026, 12, 3))
    await office.invoice(amount_minor=80_000)
    await office.pay(paid_part, 50_000, date(2026, 11, 20))
    await office.walk(days=33)  # to 3 Dec
    await make_staff(office.tenant, Role.ADMIN, telegram_user_id=None)
    await make_staff(office.tenant, Role.COLLECTOR)

    summary = await daily_summary(tenant_id=office.tenant.id, day=date(2026, 12, 3))

    assert (summary.unpaid, summary.unpaid_minor) == (2, 230_000)
    assert (summary.partial, summary.partial_minor) == (1, 100_000)
    assert (summary.overdue, summary.overdue_minor) == (3, 330_000)
    assert summary.drafts == 0
    assert summary.run is not None and summary.run.suspensions == 1
    assert summary.run.reminders == 0  # reminded on 29 Nov; next on 6 Dec
    assert [r.telegram_user_id for r in summary.recipients] == [office.admin.telegram_user_id]
