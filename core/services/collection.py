"""At the door: a stop marked collected (payment, ledger, receipt) or failed (reschedule).

Invariants:
- A payment posts once per idempotency key (UNIQUE in the database). A replayed request
  (Telegram delivering an update twice, a button pressed twice) gets the first result back
  with `replayed=True` and changes nothing.
- The stop closes with a conditional UPDATE (`WHERE status = 'assigned'`) and the invoice's
  paid amount rises with a conditional UPDATE on the value read, so of two racing requests
  exactly one wins, on SQLite and PostgreSQL, whatever the isolation level.
- Paid never exceeds the amount (also a CHECK in the database); status follows paid.
- Each collection is one balanced posting: collector cash up, receivable down, commission
  accrued to the collector at their rate (rounded half up, exact).
- The WhatsApp receipt is queued in the same transaction and sent later (best effort).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.db.models import (
    Assignment,
    Invoice,
    OutboxMessage,
    Payment,
    Staff,
    StoredFile,
    Subscriber,
    Tenant,
)
from core.db.sql import fetch
from core.domain import ledger
from core.domain.dates import extend_expiry, local_today, utcnow
from core.domain.money import commission_on, format_money
from core.domain.status import (
    COLLECTIBLE,
    AssignmentStatus,
    FailureReason,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
    SubscriberStatus,
    status_after_payment,
    transition_assignment,
)
from core.domain.visits import check_failure_note, decide_after_failed_visit
from core.errors import (
    AmountAboveBalance,
    Conflict,
    InvalidAmount,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from core.services.access import SYSTEM, Origin, require_active
from core.services.assignments import close_stop
from core.services.audit import write_audit
from core.services.cash import require_cash_room
from core.services.ledger import post
from core.services.outbox import REFUSED, queue_receipt

MAX_KEY_LENGTH = 80


@dataclass(frozen=True)
class CollectionResult:
    """What the collector is told after a stop is collected."""

    payment_id: int
    assignment_id: int
    invoice_number: str
    subscriber_name: str
    amount_minor: int
    method: PaymentMethod
    invoice_status: InvoiceStatus
    remaining_minor: int
    commission_minor: int
    new_expiry: date | None
    receipt_queued: bool
    # Why no receipt can go out although the subscriber has a number (e.g. a landline).
    receipt_refusal: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class FailureResult:
    """What the collector is told after a door did not open."""

    assignment_id: int
    invoice_number: str
    subscriber_name: str
    reason: FailureReason
    failed_visits: int
    flagged: bool
    return_on: date | None
    next_assignment_id: int | None


async def load_stop(actor: Staff, assignment_id: int) -> Assignment:
    """The stop, if `actor` may act on it (raises stop_missing / not_your_stop)."""
    require_active(actor)
    stop = await Assignment.get_or_none(id=assignment_id, tenant_id=actor.tenant_id)
    _check_stop_for(actor, stop)
    assert stop is not None
    return stop


async def mark_collected(
    actor: Staff,
    *,
    assignment_id: int,
    idempotency_key: str,
    amount_minor: int | None = None,
    method: PaymentMethod = PaymentMethod.CASH,
    receipt_file_id: int | None = None,
    reference: str = "",
    note: str = "",
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> CollectionResult:
    """Post the money taken at a stop. `amount_minor=None` means the full balance.

    The hot path is one transaction of about ten statements: one joined read, then the
    writes. A replay is only looked for when the request loses (stop already closed, or
    the idempotency key already used), which is where a replay always ends up.
    """
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise InvalidInput("This request has no valid idempotency key.")
    require_active(actor)
    try:
        return await _collect(
            actor,
            assignment_id=assignment_id,
            key=idempotency_key,
            amount_minor=amount_minor,
            method=PaymentMethod(method),
            receipt_file_id=receipt_file_id,
            reference=reference.strip()[:120],
            note=note.strip()[:500],
            origin=origin,
            now=now or utcnow(),
        )
    except (IntegrityError, Conflict):
        # Lost: the stop was closed, or this key already posted. If the winner was this
        # same request (a duplicated update, a second tap), answer as it did.
        replay = await _replay(actor, idempotency_key)
        if replay:
            return replay
        raise


async def _collect(
    actor: Staff,
    *,
    assignment_id: int,
    key: str,
    amount_minor: int | None,
    method: PaymentMethod,
    receipt_file_id: int | None,
    reference: str,
    note: str,
    origin: Origin,
    now: datetime,
) -> CollectionResult:
    async with in_transaction() as conn:
        stop = await _read_stop(conn, actor.tenant_id, assignment_id)
        _check_stop_for(actor, stop)
        assert stop is not None
        transition_assignment(AssignmentStatus(stop.status), AssignmentStatus.COLLECTED)
        today = local_today(now, stop.timezone)
        if stop.invoice_status not in COLLECTIBLE:
            raise Conflict(
                f"{stop.number} is {stop.invoice_status.value}; nothing to collect.",
                code="invoice_not_collectible",
                number=stop.number,
                status=stop.invoice_status.value,
            )
        balance = stop.amount_minor - stop.paid_minor
        amount = balance if amount_minor is None else amount_minor
        if amount <= 0:
            raise InvalidAmount("The amount must be more than zero.", code="amount_not_positive")
        if amount > balance:
            raise AmountAboveBalance(
                f"At most {format_money(balance, stop.currency, stop.locale)} is due "
                f"on {stop.number}.",
                code="amount_above_balance",
                balance_minor=balance,
                number=stop.number,
            )
        if (
            receipt_file_id is not None
            and not await StoredFile.filter(id=receipt_file_id, tenant_id=actor.tenant_id)
            .using_db(conn)
            .exists()
        ):
            raise NotFound("That receipt photo was not found; send it again.")
        if method == PaymentMethod.CASH:
            await require_cash_room(actor.tenant_id, stop.collector_id, stop.cash_cap_minor, conn)
        commission = commission_on(amount, stop.commission_bp)

        # The key's UNIQUE index is the first referee: a second post of it fails here.
        payment = await Payment.create(
            tenant_id=actor.tenant_id,
            invoice_id=stop.invoice_id,
            subscriber_id=stop.subscriber_id,
            amount_minor=amount,
            method=method,
            received_at=now,
            operator_id=actor.id,
            collector_id=stop.collector_id,
            reference=reference,
            note=note,
            receipt_file_id=receipt_file_id,
            idempotency_key=key,
            using_db=conn,
        )
        await close_stop(
            conn,
            stop.id,
            AssignmentStatus.COLLECTED,
            now=now,
            today=today,
            collected_minor=amount,
            commission_minor=commission,
            payment_id=payment.id,
        )
        new_status = await raise_paid(
            conn,
            invoice_id=stop.invoice_id,
            number=stop.number,
            amount_minor=stop.amount_minor,
            paid_minor=stop.paid_minor,
            by_minor=amount,
        )
        await post(
            conn,
            tenant_id=actor.tenant_id,
            kind="collection",
            legs=ledger.cash_collected(
                subscriber_id=stop.subscriber_id,
                collector_id=stop.collector_id,
                amount_minor=amount,
                commission_minor=commission,
                method=method.value,
            ),
            payment_id=payment.id,
            invoice_id=stop.invoice_id,
            created_by_id=actor.id,
            memo=stop.number,
        )
        new_expiry = None
        if new_status == InvoiceStatus.PAID:
            new_expiry = await settle_in_full(
                conn,
                invoice_id=stop.invoice_id,
                purpose=InvoicePurpose(stop.purpose),
                suspension_on=stop.suspension_on,
                subscriber_id=stop.subscriber_id,
                expiry_date=stop.expiry_date,
                subscriber_status=stop.subscriber_status,
                period_months=stop.period_months,
                today=today,
            )
        receipt_refusal = None
        if stop.phone:
            receipt_refusal = await queue_receipt(
                conn,
                tenant_id=actor.tenant_id,
                payment_id=payment.id,
                invoice_id=stop.invoice_id,
                phone=stop.phone,
            )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="assignment.collect",
            object_type="invoice",
            object_id=stop.invoice_id,
            origin=origin,
            details={
                "assignment_id": stop.id,
                "payment_id": payment.id,
                "amount_minor": amount,
                "method": method.value,
            },
            using_db=conn,
        )
    return CollectionResult(
        payment_id=payment.id,
        assignment_id=stop.id,
        invoice_number=stop.number,
        subscriber_name=stop.subscriber_name,
        amount_minor=amount,
        method=method,
        invoice_status=new_status,
        remaining_minor=balance - amount,
        commission_minor=commission,
        new_expiry=new_expiry,
        receipt_queued=bool(stop.phone) and receipt_refusal is None,
        receipt_refusal=receipt_refusal,
    )


async def raise_paid(
    conn: BaseDBAsyncClient,
    *,
    invoice_id: int,
    number: str,
    amount_minor: int,
    paid_minor: int,
    by_minor: int,
) -> InvoiceStatus:
    """Raise an invoice's paid amount by `by_minor` from the `paid_minor` just read, however
    the money came (door, office): one conditional UPDATE, so of two payments racing on the
    same value one wins and the other raises Conflict. Returns the new status.

    Dunning dates (core/domain/dunning.py): any payment removes the request cancellation
    date; only full payment removes the suspension and deletion dates and the reminders.
    """
    new_status = status_after_payment(amount_minor, paid_minor + by_minor)
    cleared: dict[str, None] = {"request_cancellation_on": None}
    if new_status == InvoiceStatus.PAID:
        cleared |= {"suspension_on": None, "deletion_on": None, "next_reminder_on": None}
    raised = (
        await Invoice.filter(id=invoice_id, paid_minor=paid_minor)
        .using_db(conn)
        .update(paid_minor=F("paid_minor") + by_minor, status=new_status, **cleared)
    )
    if raised != 1:
        raise Conflict(
            f"{number} changed meanwhile; try again.", code="invoice_changed", number=number
        )
    return new_status


def _check_stop_for(actor: Staff, stop: Assignment | _StopRow | None) -> None:
    """`actor` may act on the stop: its own collector, or an admin of the tenant.

    Button data is never trusted: a forged id for another collector's stop is refused,
    another tenant's stop does not exist.
    """
    if stop is None:
        raise NotFound("This stop does not exist.", code="stop_missing")
    if actor.role != Role.ADMIN and stop.collector_id != actor.id:
        raise PermissionDenied("This stop is not on your route.", code="not_your_stop")


async def settle_in_full(
    conn: BaseDBAsyncClient,
    *,
    invoice_id: int,
    purpose: InvoicePurpose,
    suspension_on: date | None,
    subscriber_id: int,
    expiry_date: date | None,
    subscriber_status: SubscriberStatus,
    period_months: int,
    today: date,
) -> date | None:
    """What an invoice paid in full does to its subscriber, however it was paid (at the
    door, at the office). A renewal extends the service (the new expiry is returned). Any
    other invoice that carried a suspension date restores a suspended service, unless
    another unpaid invoice's suspension date has come too; paying an invoice that could not
    suspend (a charge without dates) leaves a suspension for another reason (the office's,
    for failed visits) in place. Termination always stays.
    """
    if purpose == InvoicePurpose.RENEWAL:
        return await _renew_subscription(
            conn,
            subscriber_id=subscriber_id,
            expiry_date=expiry_date,
            subscriber_status=subscriber_status,
            period_months=period_months,
            today=today,
        )
    if (
        subscriber_status == SubscriberStatus.SUSPENDED
        and suspension_on is not None
        and not await Invoice.filter(
            subscriber_id=subscriber_id, status__in=COLLECTIBLE, suspension_on__lte=today
        )
        .exclude(id=invoice_id)
        .using_db(conn)
        .exists()
    ):
        await (
            Subscriber.filter(id=subscriber_id, status=SubscriberStatus.SUSPENDED)
            .using_db(conn)
            .update(status=SubscriberStatus.ACTIVE)
        )
    return None


async def _renew_subscription(
    conn: BaseDBAsyncClient,
    *,
    subscriber_id: int,
    expiry_date: date | None,
    subscriber_status: SubscriberStatus,
    period_months: int,
    today: date,
) -> date:
    """A renewal paid in full: extend expiry by the plan period, reactivate, reset usage.

    Reached through `settle_in_full` whichever way the renewal was paid. A terminated
    subscriber stays terminated (nothing undoes termination); their expiry still moves,
    so the payment is not lost if the office re-creates the account.
    """
    new_expiry = extend_expiry(expiry_date, today, period_months)
    status = (
        SubscriberStatus.ACTIVE
        if subscriber_status == SubscriberStatus.SUSPENDED
        else subscriber_status
    )
    await (
        Subscriber.filter(id=subscriber_id)
        .using_db(conn)
        .update(expiry_date=new_expiry, status=status, usage_bytes=0)
    )
    return new_expiry


@dataclass(frozen=True)
class _StopRow:
    """What collecting a stop needs to know, read in one statement."""

    id: int
    status: str
    collector_id: int
    commission_bp: int
    cash_cap_minor: int | None
    invoice_id: int
    number: str
    purpose: str
    amount_minor: int
    paid_minor: int
    invoice_status: InvoiceStatus
    suspension_on: date | None
    subscriber_id: int
    subscriber_name: str
    phone: str | None
    expiry_date: date | None
    subscriber_status: SubscriberStatus
    period_months: int
    timezone: str
    currency: str
    locale: str


# Hand-written: Tortoise's select_related over four relations costs ~5x this in Python.
STOP_FOR_COLLECTION_SQL = """
SELECT a.id, a.status, a.collector_id, c.commission_bp, c.cash_cap_minor,
       i.id AS invoice_id, i.number, i.purpose, i.amount_minor, i.paid_minor,
       i.status AS invoice_status, i.suspension_on,
       s.id AS subscriber_id, s.name AS subscriber_name, s.phone, s.expiry_date,
       s.status AS subscriber_status, COALESCE(p.period_months, 1) AS period_months,
       t.timezone, t.currency, t.locale
FROM assignment a
JOIN invoice i ON i.id = a.invoice_id
JOIN subscriber s ON s.id = i.subscriber_id
JOIN staff c ON c.id = a.collector_id
JOIN tenant t ON t.id = a.tenant_id
LEFT JOIN plan p ON p.id = s.plan_id
WHERE a.id = ? AND a.tenant_id = ?
"""


async def _read_stop(
    conn: BaseDBAsyncClient, tenant_id: int, assignment_id: int
) -> _StopRow | None:
    rows = await fetch(STOP_FOR_COLLECTION_SQL, [assignment_id, tenant_id], conn)
    if not rows:
        return None
    r = dict(rows[0])
    expiry = r["expiry_date"]
    r["expiry_date"] = date.fromisoformat(expiry) if isinstance(expiry, str) else expiry
    suspension = r["suspension_on"]
    r["suspension_on"] = (
        date.fromisoformat(suspension) if isinstance(suspension, str) else suspension
    )
    r["invoice_status"] = InvoiceStatus(r["invoice_status"])
    r["subscriber_status"] = SubscriberStatus(r["subscriber_status"])
    return _StopRow(**r)


async def _replay(actor: Staff, key: str) -> CollectionResult | None:
    """The result of an earlier request with the same idempotency key, if there was one."""
    payment = await Payment.get_or_none(tenant_id=actor.tenant_id, idempotency_key=key)
    if payment is None:
        return None
    if actor.role != Role.ADMIN and payment.collector_id != actor.id:
        raise Conflict("This request was already used.")
    invoice = await Invoice.get(id=payment.invoice_id)
    subscriber = await Subscriber.get(id=payment.subscriber_id)
    stop = await Assignment.get_or_none(payment_id=payment.id)
    receipt = await OutboxMessage.get_or_none(
        tenant_id=actor.tenant_id, dedupe_key=f"receipt:{payment.id}"
    )
    refusal = receipt.last_error if receipt and receipt.status == REFUSED else None
    return CollectionResult(
        payment_id=payment.id,
        assignment_id=stop.id if stop else 0,
        invoice_number=invoice.number,
        subscriber_name=subscriber.name,
        amount_minor=payment.amount_minor,
        method=PaymentMethod(payment.method),
        invoice_status=InvoiceStatus(invoice.status),
        remaining_minor=invoice.amount_minor - invoice.paid_minor,
        commission_minor=stop.commission_minor if stop else 0,
        new_expiry=subscriber.expiry_date if invoice.status == InvoiceStatus.PAID else None,
        receipt_queued=receipt is not None and refusal is None,
        receipt_refusal=refusal,
        replayed=True,
    )


async def mark_failed(
    actor: Staff,
    *,
    assignment_id: int,
    reason: FailureReason | str,
    note: str | None = None,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> FailureResult:
    """Record a door that did not open; bring the stop back later or flag it for the office."""
    try:
        reason = FailureReason(reason)
    except ValueError as exc:
        raise InvalidInput(
            "The reason is one of not home, refused, wrong address, disconnected or other."
        ) from exc
    cleaned_note = check_failure_note(reason, note)
    stop = await load_stop(actor, assignment_id)
    transition_assignment(AssignmentStatus(stop.status), AssignmentStatus.FAILED)
    tenant = await Tenant.get(id=actor.tenant_id)
    now = now or utcnow()
    today = local_today(now, tenant.timezone)
    async with in_transaction() as conn:
        await close_stop(
            conn,
            stop.id,
            AssignmentStatus.FAILED,
            now=now,
            today=today,
            failure_reason=reason,
            failure_note=cleaned_note,
        )
        invoice = await Invoice.get(id=stop.invoice_id, using_db=conn)
        decision = decide_after_failed_visit(
            failed_visits_before=invoice.failed_visits,
            today=today,
            reschedule_days=tenant.reschedule_days,
            flag_after=tenant.failed_visits_before_flag,
        )
        await (
            Invoice.filter(id=invoice.id)
            .using_db(conn)
            .update(
                failed_visits=F("failed_visits") + 1,
                flagged_at=now if decision.flag_for_admin else invoice.flagged_at,
            )
        )
        next_id = None
        # Paid meanwhile (office, gateway)? Then there is nothing to come back for.
        if decision.return_on is not None and invoice.status in COLLECTIBLE:
            comeback = await Assignment.create(
                tenant_id=actor.tenant_id,
                invoice_id=invoice.id,
                collector_id=stop.collector_id,
                status=AssignmentStatus.ASSIGNED,
                open_invoice_id=invoice.id,
                scheduled_on=decision.return_on,
                assigned_by_id=stop.assigned_by_id,
                notes=f"rescheduled after {reason.value}",
                using_db=conn,
            )
            next_id = comeback.id
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="assignment.fail",
            object_type="invoice",
            object_id=invoice.id,
            origin=origin,
            details={
                "assignment_id": stop.id,
                "reason": reason.value,
                "note": cleaned_note,
                "flagged": decision.flag_for_admin,
                "next_assignment_id": next_id,
            },
            using_db=conn,
        )
        subscriber = await Subscriber.get(id=invoice.subscriber_id, using_db=conn)
    return FailureResult(
        assignment_id=stop.id,
        invoice_number=invoice.number,
        subscriber_name=subscriber.name,
        reason=reason,
        failed_visits=decision.failed_visits,
        flagged=decision.flag_for_admin,
        return_on=decision.return_on,
        next_assignment_id=next_id,
    )
