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

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from core.db.models import (
    Assignment,
    Invoice,
    Payment,
    Plan,
    Staff,
    StoredFile,
    Subscriber,
    Tenant,
)
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
from core.services.ledger import post
from core.services.outbox import WHATSAPP, queue_message

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


async def _load_stop(actor: Staff, assignment_id: int) -> Assignment:
    """The stop, if `actor` may act on it: its own collector, or an admin of the tenant.

    Button data is never trusted: a forged id for another collector's stop is refused.
    """
    require_active(actor)
    stop = await Assignment.get_or_none(id=assignment_id, tenant_id=actor.tenant_id)
    if stop is None:
        raise NotFound("This stop does not exist.", code="stop_missing")
    if actor.role != Role.ADMIN and stop.collector_id != actor.id:
        raise PermissionDenied("This stop is not on your route.", code="not_your_stop")
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
    """Post the money taken at a stop. `amount_minor=None` means the full balance."""
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise InvalidInput("This request has no valid idempotency key.")
    replay = await _replay(actor, idempotency_key)
    if replay:
        return replay
    stop = await _load_stop(actor, assignment_id)
    transition_assignment(AssignmentStatus(stop.status), AssignmentStatus.COLLECTED)
    method = PaymentMethod(method)
    if receipt_file_id is not None and not await StoredFile.exists(
        id=receipt_file_id, tenant_id=actor.tenant_id
    ):
        raise NotFound("That receipt photo was not found; send it again.")
    now = now or utcnow()
    try:
        return await _collect(
            actor,
            stop,
            idempotency_key,
            amount_minor,
            method,
            receipt_file_id,
            reference.strip()[:120],
            note.strip()[:500],
            origin,
            now,
        )
    except (IntegrityError, Conflict):
        # Lost a race. If the winner was this same request (same key), answer as it did.
        replay = await _replay(actor, idempotency_key)
        if replay:
            return replay
        raise


async def _collect(
    actor: Staff,
    stop: Assignment,
    key: str,
    amount_minor: int | None,
    method: PaymentMethod,
    receipt_file_id: int | None,
    reference: str,
    note: str,
    origin: Origin,
    now: datetime,
) -> CollectionResult:
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now, tenant.timezone)
    async with in_transaction() as conn:
        invoice = await Invoice.get(id=stop.invoice_id, using_db=conn)
        if invoice.status not in COLLECTIBLE:
            raise Conflict(
                f"{invoice.number} is {invoice.status.value}; nothing to collect.",
                code="invoice_not_collectible",
                number=invoice.number,
                status=invoice.status.value,
            )
        balance = invoice.amount_minor - invoice.paid_minor
        amount = balance if amount_minor is None else amount_minor
        if amount <= 0:
            raise InvalidAmount("The amount must be more than zero.", code="amount_not_positive")
        if amount > balance:
            raise AmountAboveBalance(
                f"At most {format_money(balance, tenant.currency, tenant.locale)} is due "
                f"on {invoice.number}.",
                code="amount_above_balance",
                balance_minor=balance,
                number=invoice.number,
            )
        collector = await Staff.get(id=stop.collector_id, using_db=conn)
        commission = commission_on(amount, collector.commission_bp)

        await close_stop(
            conn,
            stop.id,
            AssignmentStatus.COLLECTED,
            now=now,
            today=today,
            collected_minor=amount,
            commission_minor=commission,
        )
        new_status = status_after_payment(invoice.amount_minor, invoice.paid_minor + amount)
        raised = (
            await Invoice.filter(id=invoice.id, paid_minor=invoice.paid_minor)
            .using_db(conn)
            .update(paid_minor=F("paid_minor") + amount, status=new_status)
        )
        if raised != 1:
            raise Conflict(f"{invoice.number} changed meanwhile; open the stop again.")

        payment = await Payment.create(
            tenant_id=actor.tenant_id,
            invoice_id=invoice.id,
            subscriber_id=invoice.subscriber_id,
            amount_minor=amount,
            method=method,
            received_at=now,
            operator_id=actor.id,
            collector_id=collector.id,
            reference=reference,
            note=note,
            receipt_file_id=receipt_file_id,
            idempotency_key=key,
            using_db=conn,
        )
        await Assignment.filter(id=stop.id).using_db(conn).update(payment_id=payment.id)
        await post(
            conn,
            tenant_id=actor.tenant_id,
            kind="collection",
            legs=ledger.cash_collected(
                subscriber_id=invoice.subscriber_id,
                collector_id=collector.id,
                amount_minor=amount,
                commission_minor=commission,
            ),
            payment_id=payment.id,
            invoice_id=invoice.id,
            created_by_id=actor.id,
            memo=invoice.number,
        )
        subscriber = await Subscriber.get(id=invoice.subscriber_id, using_db=conn)
        new_expiry = None
        if new_status == InvoiceStatus.PAID and invoice.purpose == InvoicePurpose.RENEWAL:
            new_expiry = await _renew(conn, subscriber, today)
        receipt_queued = False
        if subscriber.phone:
            await queue_message(
                conn,
                tenant_id=actor.tenant_id,
                channel=WHATSAPP,
                kind="receipt",
                recipient=subscriber.phone,
                dedupe_key=f"receipt:{payment.id}",
                payload={"payment_id": payment.id},
                invoice_id=invoice.id,
                payment_id=payment.id,
            )
            receipt_queued = True
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="assignment.collect",
            object_type="invoice",
            object_id=invoice.id,
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
        invoice_number=invoice.number,
        subscriber_name=subscriber.name,
        amount_minor=amount,
        method=method,
        invoice_status=new_status,
        remaining_minor=balance - amount,
        commission_minor=commission,
        new_expiry=new_expiry,
        receipt_queued=receipt_queued,
    )


async def _renew(conn, subscriber: Subscriber, today: date) -> date:
    """A renewal paid in full: extend expiry by the plan period, reactivate, reset usage.

    A terminated subscriber stays terminated (nothing undoes termination); their expiry
    still moves, so the payment is not lost if the office re-creates the account.
    """
    period = 1
    if subscriber.plan_id:
        period = (await Plan.get(id=subscriber.plan_id, using_db=conn)).period_months
    new_expiry = extend_expiry(subscriber.expiry_date, today, period)
    status = (
        SubscriberStatus.ACTIVE
        if subscriber.status == SubscriberStatus.SUSPENDED
        else subscriber.status
    )
    await (
        Subscriber.filter(id=subscriber.id)
        .using_db(conn)
        .update(expiry_date=new_expiry, status=status, usage_bytes=0)
    )
    return new_expiry


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
        receipt_queued=bool(subscriber.phone),
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
    stop = await _load_stop(actor, assignment_id)
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
