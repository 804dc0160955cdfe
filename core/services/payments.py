"""Money the office records by hand, and money taken back.

- `record_payment`: an admin records a payment a customer made (cash at the counter, a
  bKash transfer, a bank deposit...). It posts like any other payment: one `Payment` per
  invoice it settles (oldest due first), the invoice's paid amount raised by a conditional
  UPDATE, a balanced posting (receivable down; office cash for cash, the company's accounts
  for anything else), the receipt queued for WhatsApp, an audit row.
- `reverse_payment`: a chargeback, or a payment recorded by mistake. Nothing is deleted:
  a `PaymentReversal` row (UNIQUE per payment, so a payment is reversed once, whoever
  presses first) and a posting that mirrors the payment's: the receivable comes back, the
  commission earned on it is taken back, and the money leaves the account where it is
  now (a collector's pocket, or the drawer once they handed it in). The invoice reopens.

Both are idempotent per request key and scoped to the actor's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.db.models import (
    CashHandover,
    Invoice,
    LedgerLeg,
    LedgerPosting,
    Payment,
    PaymentReversal,
    Plan,
    Staff,
    Subscriber,
    Tenant,
)
from core.documents.receipt import receipt_number
from core.domain import ledger
from core.domain.dates import local_today, utcnow
from core.domain.money import format_money
from core.domain.status import (
    COLLECTIBLE,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    SubscriberStatus,
    parse_method,
    status_after_payment,
)
from core.errors import AmountAboveBalance, Conflict, InvalidAmount, InvalidInput, NotFound
from core.services.access import (
    SYSTEM,
    Origin,
    in_reseller_scope,
    invoice_in_scope,
    require_admin,
    subscriber_in_scope,
)
from core.services.audit import write_audit
from core.services.collection import MAX_KEY_LENGTH, raise_paid, settle_in_full
from core.services.ledger import post
from core.services.outbox import queue_receipt

MAX_REASON = 500
MAX_REFERENCE = 120
MAX_NOTE = 500
# Methods whose reference is a transaction id the gateway gives once: the same id twice is
# a payment entered twice.
_UNIQUE_REFERENCE_METHODS = frozenset(PaymentMethod) - {PaymentMethod.CASH, PaymentMethod.OTHER}


# --- recording a payment -------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    invoice_id: int
    number: str
    due_minor: int  # what was still due before this payment
    amount_minor: int  # what this payment puts on it


@dataclass(frozen=True)
class PaymentPlan:
    """Where a payment would go, shown to the admin before they confirm."""

    username: str
    customer: str
    amount_minor: int
    method: PaymentMethod
    reference: str
    note: str
    owed_minor: int
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True)
class RecordedPayment:
    plan: PaymentPlan
    payment_ids: tuple[int, ...]
    receipts_queued: int
    new_expiry: date | None
    replayed: bool = False

    @property
    def receipt_numbers(self) -> tuple[str, ...]:
        return tuple(receipt_number(i) for i in self.payment_ids)


async def _target(actor: Staff, target: str) -> tuple[Subscriber, str | None]:
    """The customer named by a username, or owing the invoice named by its number (then
    also the number: the payment goes to that invoice only)."""
    wanted = target.strip()
    if not wanted:
        raise InvalidInput(
            "Name the customer (username) or an invoice number.", code="payment_target"
        )
    try:
        row = await invoice_in_scope(actor, wanted, "number", "subscriber_id")
        return await Subscriber.get(id=row["subscriber_id"]), row["number"]
    except NotFound:
        pass
    try:
        return await subscriber_in_scope(actor, wanted), None
    except NotFound:
        raise NotFound(
            f"There is no customer or invoice {wanted!r} in your company.",
            code="payment_target_unknown",
            ref=wanted,
        ) from None


async def _open_invoices(
    subscriber_id: int, number: str | None, conn: BaseDBAsyncClient | None
) -> list[Invoice]:
    """Still owed, oldest due first; with a number, that invoice only (if still owed)."""
    query = Invoice.filter(subscriber_id=subscriber_id, status__in=list(COLLECTIBLE))
    if number is not None:
        query = query.filter(number=number)
    return await query.using_db(conn).order_by("due_date", "id")


def _allocate(invoices: list[Invoice], amount: int) -> tuple[Allocation, ...]:
    """Oldest due first, each invoice up to what is still due on it."""
    left = amount
    allocations = []
    for invoice in invoices:
        if left <= 0:
            break
        due = invoice.amount_minor - invoice.paid_minor
        share = min(due, left)
        allocations.append(Allocation(invoice.id, invoice.number, due, share))
        left -= share
    return tuple(allocations)


async def plan_payment(
    actor: Staff,
    *,
    target: str,
    amount_minor: int,
    method: PaymentMethod | str = PaymentMethod.CASH,
    reference: str = "",
    note: str = "",
    conn: BaseDBAsyncClient | None = None,
) -> PaymentPlan:
    """Check a payment and say where it would go; writes nothing.

    Raises:
        InvalidInput: an unknown method, an amount that is not positive or above what the
            customer owes, a reference already recorded for the same method.
        NotFound: no such customer or invoice in the actor's scope.
    """
    require_admin(actor, "record payments")
    paid_with = parse_method(method)
    if amount_minor <= 0:
        raise InvalidAmount("The amount must be more than zero.", code="amount_not_positive")
    reference = reference.strip()[:MAX_REFERENCE]
    if paid_with in _UNIQUE_REFERENCE_METHODS and reference:
        earlier = await Payment.get_or_none(
            tenant_id=actor.tenant_id, method=paid_with, reference=reference, using_db=conn
        )
        if earlier is not None:
            raise InvalidInput(
                f"Reference {reference} was already recorded on {receipt_number(earlier.id)}.",
                code="reference_taken",
                reference=reference,
                receipt=receipt_number(earlier.id),
            )
    subscriber, named = await _target(actor, target)
    invoices = await _open_invoices(subscriber.id, named, conn)
    owed = sum(i.amount_minor - i.paid_minor for i in invoices)
    tenant = await Tenant.get(id=actor.tenant_id, using_db=conn)
    if owed <= 0:
        raise InvalidInput(
            f"{named or subscriber.username} owes nothing; there is nothing to pay.",
            code="nothing_owed",
            ref=named or subscriber.username,
        )
    if amount_minor > owed:
        raise AmountAboveBalance(
            f"At most {format_money(owed, tenant.currency, tenant.locale)} is owed"
            f" by {named or subscriber.username}.",
            code="payment_above_owed",
            owed_minor=owed,
            ref=named or subscriber.username,
        )
    return PaymentPlan(
        username=subscriber.username,
        customer=subscriber.name,
        amount_minor=amount_minor,
        method=paid_with,
        reference=reference,
        note=note.strip()[:MAX_NOTE],
        owed_minor=owed,
        allocations=_allocate(invoices, amount_minor),
    )


async def record_payment(
    actor: Staff,
    *,
    target: str,
    amount_minor: int,
    idempotency_key: str,
    method: PaymentMethod | str = PaymentMethod.CASH,
    reference: str = "",
    note: str = "",
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> RecordedPayment:
    """Record a payment a customer made to the office, as `plan_payment` laid it out.

    The plan is made again inside the transaction, so a payment that came in meanwhile
    (at the door) is not paid twice: the amount must still fit. The same key again returns
    the first result with `replayed=True`.
    """
    key = idempotency_key.strip()
    if not key or len(key) > MAX_KEY_LENGTH - 4:
        raise InvalidInput("This request has no valid idempotency key.")
    require_admin(actor, "record payments")
    replay = await _recorded_replay(actor, key)
    if replay is not None:
        return replay
    now = now or utcnow()
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now, tenant.timezone)
    try:
        async with in_transaction() as conn:
            plan = await plan_payment(
                actor,
                target=target,
                amount_minor=amount_minor,
                method=method,
                reference=reference,
                note=note,
                conn=conn,
            )
            subscriber = await Subscriber.get(
                tenant_id=actor.tenant_id, username=plan.username, using_db=conn
            )
            ids, queued, expiry = await _post_allocations(
                conn, actor, subscriber, plan, key=key, now=now, today=today, origin=origin
            )
    except IntegrityError:
        replay = await _recorded_replay(actor, key)
        if replay is not None:
            return replay
        raise
    return RecordedPayment(plan, ids, queued, expiry)


async def _post_allocations(
    conn: BaseDBAsyncClient,
    actor: Staff,
    subscriber: Subscriber,
    plan: PaymentPlan,
    *,
    key: str,
    now: datetime,
    today: date,
    origin: Origin,
) -> tuple[tuple[int, ...], int, date | None]:
    ids: list[int] = []
    queued = 0
    new_expiry: date | None = None
    period = 1
    if subscriber.plan_id is not None:
        plan_row = await Plan.get_or_none(id=subscriber.plan_id, using_db=conn)
        period = plan_row.period_months if plan_row else 1
    expiry, status = subscriber.expiry_date, SubscriberStatus(subscriber.status)
    for n, share in enumerate(plan.allocations, start=1):
        invoice = await Invoice.get(id=share.invoice_id, using_db=conn)
        payment = await Payment.create(
            tenant_id=actor.tenant_id,
            invoice_id=invoice.id,
            subscriber_id=subscriber.id,
            amount_minor=share.amount_minor,
            method=plan.method,
            received_at=now,
            operator_id=actor.id,
            collector_id=None,
            reference=plan.reference,
            note=plan.note,
            # The first payment carries the request's key; the others derive from it.
            idempotency_key=key if n == 1 else f"{key}:{n}",
            using_db=conn,
        )
        new_status = await raise_paid(
            conn,
            invoice_id=invoice.id,
            number=invoice.number,
            amount_minor=invoice.amount_minor,
            paid_minor=invoice.paid_minor,
            by_minor=share.amount_minor,
        )
        await post(
            conn,
            tenant_id=actor.tenant_id,
            kind="office_payment",
            legs=ledger.office_payment(
                subscriber_id=subscriber.id, amount_minor=share.amount_minor, method=plan.method
            ),
            payment_id=payment.id,
            invoice_id=invoice.id,
            created_by_id=actor.id,
            memo=invoice.number,
        )
        if new_status == InvoiceStatus.PAID:
            extended = await settle_in_full(
                conn,
                invoice_id=invoice.id,
                purpose=InvoicePurpose(invoice.purpose),
                suspension_on=invoice.suspension_on,
                subscriber_id=subscriber.id,
                expiry_date=expiry,
                subscriber_status=status,
                period_months=period,
                today=today,
            )
            if extended is not None:
                new_expiry = expiry = extended
                status = (
                    SubscriberStatus.ACTIVE if status == SubscriberStatus.SUSPENDED else status
                )
        if subscriber.phone:
            refusal = await queue_receipt(
                conn,
                tenant_id=actor.tenant_id,
                payment_id=payment.id,
                invoice_id=invoice.id,
                phone=subscriber.phone,
            )
            queued += refusal is None
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="payment.record",
            object_type="invoice",
            object_id=invoice.id,
            origin=origin,
            details={
                "payment_id": payment.id,
                "amount_minor": share.amount_minor,
                "method": plan.method.value,
                "reference": plan.reference,
            },
            using_db=conn,
        )
        ids.append(payment.id)
    return tuple(ids), queued, new_expiry


async def _recorded_replay(actor: Staff, key: str) -> RecordedPayment | None:
    first = await Payment.get_or_none(tenant_id=actor.tenant_id, idempotency_key=key)
    if first is None:
        return None
    if first.collector_id is not None or first.operator_id != actor.id:
        raise Conflict("This request was already used.")
    payments = [
        first,
        *await Payment.filter(
            tenant_id=actor.tenant_id, idempotency_key__startswith=f"{key}:"
        ).order_by("id"),
    ]
    subscriber = await Subscriber.get(id=first.subscriber_id)
    numbers = dict(
        await Invoice.filter(id__in=[p.invoice_id for p in payments]).values_list("id", "number")
    )
    total = sum(p.amount_minor for p in payments)
    plan = PaymentPlan(
        username=subscriber.username,
        customer=subscriber.name,
        amount_minor=total,
        method=PaymentMethod(first.method),
        reference=first.reference,
        note=first.note,
        owed_minor=total,
        allocations=tuple(
            Allocation(p.invoice_id, numbers[p.invoice_id], p.amount_minor, p.amount_minor)
            for p in payments
        ),
    )
    return RecordedPayment(plan, tuple(p.id for p in payments), 0, None, replayed=True)


# --- reversing a payment -------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentFacts:
    """A payment as the office sees it before reversing it."""

    id: int
    receipt: str
    invoice_number: str
    customer: str
    username: str
    amount_minor: int
    method: PaymentMethod
    received_at: datetime
    collector: str | None
    reversed_at: datetime | None
    reversal_reason: str | None


@dataclass(frozen=True)
class ReversedPayment:
    payment: PaymentFacts
    reason: str
    commission_reversed_minor: int
    refunded_from: str  # the ledger account the money left: collector_cash, office_cash...
    invoice_status: InvoiceStatus
    still_due_minor: int
    replayed: bool = False


def parse_payment_ref(text: str) -> int:
    """`R-00000123`, `r123` or `123`: the payment id."""
    raw = text.strip().upper().removeprefix("R-").removeprefix("R")
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(
            f"{text!r} is not a receipt number; they look like R-00000123.",
            code="receipt_ref_invalid",
            ref=text,
        )
    return int(raw)


async def find_payment(actor: Staff, ref: str) -> PaymentFacts:
    """A payment of the actor's company (and reseller scope) by its receipt number."""
    payment_id = parse_payment_ref(ref)
    rows = await Payment.filter(id=payment_id, tenant_id=actor.tenant_id).values(
        "id",
        "amount_minor",
        "method",
        "received_at",
        "invoice__number",
        "subscriber__name",
        "subscriber__username",
        "subscriber__reseller_id",
        "collector__name",
    )
    if not rows or not in_reseller_scope(actor, rows[0]["subscriber__reseller_id"]):
        raise NotFound(
            f"There is no payment {receipt_number(payment_id)} in your company.",
            code="payment_not_found",
            receipt=receipt_number(payment_id),
        )
    row = rows[0]
    reversal = await PaymentReversal.get_or_none(payment_id=payment_id)
    return PaymentFacts(
        id=row["id"],
        receipt=receipt_number(row["id"]),
        invoice_number=row["invoice__number"],
        customer=row["subscriber__name"],
        username=row["subscriber__username"],
        amount_minor=row["amount_minor"],
        method=PaymentMethod(row["method"]),
        received_at=row["received_at"],
        collector=row["collector__name"],
        reversed_at=reversal.reversed_at if reversal else None,
        reversal_reason=reversal.reason if reversal else None,
    )


def _already_reversed(facts: PaymentFacts) -> Conflict:
    return Conflict(
        f"{facts.receipt} was already reversed ({facts.reversal_reason}).",
        code="payment_already_reversed",
        receipt=facts.receipt,
        reason=facts.reversal_reason or "",
    )


async def reverse_payment(
    actor: Staff,
    *,
    ref: str,
    reason: str,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> ReversedPayment:
    """Take a payment back: the invoice reopens, the commission on it is reversed, and the
    ledger records the mirror posting. Admins only; a reason is required.

    Raises:
        InvalidInput: no reason, or a receipt number that is not one.
        NotFound: no such payment in the actor's scope.
        Conflict: the payment was already reversed (also when two admins race: the UNIQUE
            index on the reversal's payment lets one of them through).
    """
    require_admin(actor, "reverse payments")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Say why the payment is reversed.", code="reversal_reason_required")
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            f"Keep the reason under {MAX_REASON} characters.",
            code="reason_too_long",
            max=MAX_REASON,
        )
    facts = await find_payment(actor, ref)
    if facts.reversed_at is not None:
        raise _already_reversed(facts)
    now = now or utcnow()
    try:
        async with in_transaction() as conn:
            result = await _reverse(conn, actor, facts, reason, now, origin)
    except IntegrityError:
        raise _already_reversed(await find_payment(actor, ref)) from None
    return result


async def _reverse(
    conn: BaseDBAsyncClient,
    actor: Staff,
    facts: PaymentFacts,
    reason: str,
    now: datetime,
    origin: Origin,
) -> ReversedPayment:
    payment = await Payment.get(id=facts.id, using_db=conn)
    original = (
        await LedgerPosting.filter(
            payment_id=payment.id, kind__in=("collection", "office_payment")
        )
        .using_db(conn)
        .first()
    )
    if original is None:
        raise Conflict(f"{facts.receipt} has no posting to reverse.", code="payment_unposted")
    legs = [
        ledger.Leg(leg.account, leg.amount_minor, leg.staff_id, leg.subscriber_id)
        for leg in await LedgerLeg.filter(posting_id=original.id).using_db(conn).order_by("id")
    ]
    money_now_in = None
    refunded_from = next(
        (
            leg.account
            for leg in legs
            if leg.amount_minor > 0 and leg.account != ledger.COMMISSION_EXPENSE
        ),
        ledger.OFFICE_CASH,
    )
    if payment.collector_id is not None and refunded_from == ledger.COLLECTOR_CASH:
        # Cash handed in after the payment is in the office drawer, not the collector's pocket.
        handed_in = (
            await CashHandover.filter(
                collector_id=payment.collector_id, recorded_at__gt=payment.received_at
            )
            .using_db(conn)
            .exists()
        )
        if handed_in:
            money_now_in = ledger.Leg(ledger.OFFICE_CASH, 0)
            refunded_from = ledger.OFFICE_CASH
    reversal_legs = ledger.payment_reversed(legs, money_now_in=money_now_in)
    commission = sum(
        leg.amount_minor for leg in reversal_legs if leg.account == ledger.COMMISSION_PAYABLE
    )
    posting = await post(
        conn,
        tenant_id=actor.tenant_id,
        kind="payment_reversal",
        legs=reversal_legs,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
        created_by_id=actor.id,
        memo=f"reversal {facts.receipt}: {reason}"[:255],
    )
    # UNIQUE (payment): of two admins reversing at once, the second fails here.
    await PaymentReversal.create(
        tenant_id=actor.tenant_id,
        payment_id=payment.id,
        reason=reason,
        reversed_by_id=actor.id,
        reversed_at=now,
        commission_reversed_minor=commission,
        refunded_from=refunded_from,
        posting_id=posting.id,
        using_db=conn,
    )
    invoice = await Invoice.get(id=payment.invoice_id, using_db=conn)
    paid = invoice.paid_minor - payment.amount_minor
    changes: dict[str, object] = {"paid_minor": paid}
    status = InvoiceStatus(invoice.status)
    if status in (InvoiceStatus.PAID, InvoiceStatus.PARTIAL):
        status = status_after_payment(invoice.amount_minor, paid)
        changes["status"] = status
        if invoice.reminder_days:
            # Reopened: the dunning clock chases it again from today.
            tenant = await Tenant.get(id=actor.tenant_id, using_db=conn)
            changes["next_reminder_on"] = local_today(now, tenant.timezone)
    lowered = (
        await Invoice.filter(id=invoice.id, paid_minor=invoice.paid_minor)
        .using_db(conn)
        .update(**changes)
    )
    if lowered != 1:
        raise Conflict(
            f"{invoice.number} changed meanwhile; try again.",
            code="invoice_changed",
            number=invoice.number,
        )
    await write_audit(
        tenant_id=actor.tenant_id,
        actor=actor,
        action="payment.reverse",
        object_type="invoice",
        object_id=invoice.id,
        origin=origin,
        details={
            "payment_id": payment.id,
            "amount_minor": payment.amount_minor,
            "reason": reason,
            "commission_reversed_minor": commission,
            "refunded_from": refunded_from,
        },
        using_db=conn,
    )
    return ReversedPayment(
        payment=facts,
        reason=reason,
        commission_reversed_minor=commission,
        refunded_from=refunded_from,
        invoice_status=status,
        still_due_minor=invoice.amount_minor - paid,
    )
