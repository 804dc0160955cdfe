"""Invoicing at the office and on the clock: issuing and claiming invoices, approving drafts,
executing requests, postpaid billing cycles, the daily recurring invoices, the dashboard,
and suspending subscribers flagged for failed visits.

Invariants:
- A draft counts for nothing until an admin approves it: no receivable, no reminder, not
  in the dashboard's approved figures. Approval is a conditional UPDATE (`WHERE status =
  'draft'`), so of two admins approving one draft at once exactly one posts it; approving
  named invoices is all or nothing.
- Create and claim is one transaction: the invoice, its payment (UNIQUE idempotency key,
  so a repeated request posts once and gets the first answer back), and two balanced
  postings (the receivable issued, then paid into office cash).
- The daily run (`issue_scheduled_invoices`) is idempotent for a day, held by the
  database: a postpaid draft is written in the transaction whose conditional UPDATE moves
  `next_billing_on` on (`WHERE next_billing_on = <the day read>`), and a prepaid renewal
  only after its subscriber's row is claimed (a conditional UPDATE, which also locks it on
  PostgreSQL) and the renewals on file are read again. It reads subscribers in batches,
  so its memory does not grow with the tenant.
- Reads are scoped: a tenant sees only its rows, reseller staff only their subscribers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.db.models import (
    CustomerClass,
    Invoice,
    OutboxMessage,
    Payment,
    Plan,
    Staff,
    Subscriber,
    Tenant,
)
from core.db.sql import fetch
from core.domain import ledger
from core.domain.dates import add_months, local_today, utcnow
from core.domain.dunning import first_reminder_on
from core.domain.recurring import (
    RenewalOnFile,
    changed_next_billing_on,
    check_cycle_months,
    cycle_amount_minor,
    first_billing_on,
    needs_renewal,
    renewal_window,
)
from core.domain.status import (
    BillingMode,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    RequestStatus,
    Role,
    SubscriberStatus,
    parse_method,
)
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.services.access import (
    SYSTEM,
    Origin,
    in_reseller_scope,
    invoice_in_scope,
    require_admin,
    require_office,
    subscriber_in_scope,
)
from core.services.audit import write_audit
from core.services.billing import (
    BillingContext,
    billing_context,
    create_invoice,
    invoice_values,
    next_invoice_number,
    write_invoice,
)
from core.services.collection import MAX_KEY_LENGTH, settle_in_full
from core.services.ledger import post
from core.services.outbox import REFUSED, queue_receipt

log = logging.getLogger("collectbot.invoicing")

BATCH = 500  # subscribers or invoices per read (and per transaction when approving all)
MAX_NAMED = 1_000  # invoices approved by number in one request
NUMBER_ATTEMPTS = 5  # a number taken meanwhile (by an admin, another run) is retried
_COLLECTIBLE_SQL = "('unpaid', 'partial')"


# --- shared lookups ------------------------------------------------------------------------


async def _tenant_today(tenant_id: int, now: datetime | None) -> tuple[Tenant, date]:
    tenant = await Tenant.get(id=tenant_id)
    return tenant, local_today(now or utcnow(), tenant.timezone)


async def _invoice(actor: Staff, number: str) -> Invoice:
    row = await invoice_in_scope(actor, number, "id")
    return await Invoice.get(id=row["id"])


class _Numbers:
    """Invoice numbers for a batch: the year's highest read once, then counted up locally.

    A number taken meanwhile fails the insert on the UNIQUE (tenant, number) index; the
    caller then calls `forget` and the next number is read from the database again.
    """

    def __init__(self, tenant_id: int) -> None:
        self._tenant_id = tenant_id
        self._next: dict[int, int] = {}

    async def take(self, issue_date: date) -> str:
        year = issue_date.year
        if year not in self._next:
            first = await next_invoice_number(self._tenant_id, issue_date)
            self._next[year] = int(first.rsplit("-", 1)[1])
        seq = self._next[year]
        self._next[year] = seq + 1
        return f"INV-{year}-{seq:04d}"

    def forget(self, issue_date: date) -> None:
        self._next.pop(issue_date.year, None)


# --- issuing one invoice at the desk -------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvoice:
    """What the office is told about an invoice it just issued."""

    number: str
    subscriber_name: str
    subscriber_username: str
    kind: InvoiceKind
    purpose: InvoicePurpose
    amount_minor: int
    issue_date: date
    due_date: date
    reminder_days: int | None
    next_reminder_on: date | None
    suspension_on: date | None
    deletion_on: date | None


async def new_invoice(
    actor: Staff,
    *,
    username: str,
    amount_minor: int,
    purpose: InvoicePurpose = InvoicePurpose.RENEWAL,
    kind: InvoiceKind = InvoiceKind.INVOICE,
    due_date: date | None = None,
    reminder_days: int | None = None,
    suspension_on: date | None = None,
    deletion_on: date | None = None,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> IssuedInvoice:
    """Issue an invoice to a subscriber named by username, dated today (tenant's calendar).

    The defaults are `billing.create_invoice`'s.

    Raises:
        NotFound: no such subscriber in the actor's scope (`subscriber_not_found`).
        InvalidInput: see `billing.invoice_values`; nothing is written.
    """
    require_admin(actor, "create invoices")
    subscriber = await subscriber_in_scope(actor, username)
    _, today = await _tenant_today(actor.tenant_id, now)
    invoice = await create_invoice(
        actor,
        subscriber_id=subscriber.id,
        amount_minor=amount_minor,
        issue_date=today,
        purpose=purpose,
        kind=kind,
        due_date=due_date,
        reminder_days=reminder_days,
        suspension_on=suspension_on,
        deletion_on=deletion_on,
        origin=origin,
    )
    return IssuedInvoice(
        number=invoice.number,
        subscriber_name=subscriber.name,
        subscriber_username=subscriber.username,
        kind=InvoiceKind(invoice.kind),
        purpose=InvoicePurpose(invoice.purpose),
        amount_minor=invoice.amount_minor,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        reminder_days=invoice.reminder_days,
        next_reminder_on=invoice.next_reminder_on,
        suspension_on=invoice.suspension_on,
        deletion_on=invoice.deletion_on,
    )


# --- create and claim ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """An invoice issued and paid at the office in one go."""

    invoice_number: str
    subscriber_name: str
    amount_minor: int
    method: PaymentMethod
    payment_id: int
    new_expiry: date | None
    receipt_queued: bool
    receipt_refusal: str | None = None
    replayed: bool = False


async def create_and_claim(
    actor: Staff,
    *,
    subscriber: str,
    amount_minor: int,
    idempotency_key: str,
    method: PaymentMethod | str = PaymentMethod.CASH,
    reference: str = "",
    note: str = "",
    purpose: InvoicePurpose = InvoicePurpose.RENEWAL,
    kind: InvoiceKind = InvoiceKind.INVOICE,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> ClaimResult:
    """Issue an invoice to `subscriber` (a username) and record its payment at the office.

    The money goes to office cash (no collector holds it). A renewal paid this way extends
    the subscriber's expiry exactly as one paid at the door. The receipt is queued for
    WhatsApp like any other. The same `idempotency_key` again returns the first result
    with `replayed=True` and writes nothing.

    Raises:
        InvalidInput: no valid key, an unknown method, or see `billing.invoice_values`.
        NotFound: no such subscriber in the actor's scope.
    """
    key = idempotency_key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput("This request has no valid idempotency key.")
    require_admin(actor, "take payments at the office")
    paid_with = parse_method(method)
    replay = await _claim_replay(actor, key)
    if replay is not None:
        return replay
    found = await subscriber_in_scope(actor, subscriber)
    _, today = await _tenant_today(actor.tenant_id, now)
    ctx = await billing_context(found)
    values = invoice_values(
        ctx,
        subscriber_id=found.id,
        number="",
        amount_minor=amount_minor,
        issue_date=today,
        purpose=purpose,
        kind=kind,
    )
    # Paid in full as it is issued: nothing left for the dunning clock.
    values |= {
        "status": InvoiceStatus.PAID,
        "paid_minor": amount_minor,
        "next_reminder_on": None,
        "request_cancellation_on": None,
        "suspension_on": None,
        "deletion_on": None,
    }
    numbers = _Numbers(actor.tenant_id)
    for attempt in range(NUMBER_ATTEMPTS):
        values["number"] = await numbers.take(today)
        try:
            return await _claim(
                actor,
                found,
                ctx,
                values,
                key=key,
                method=paid_with,
                reference=reference.strip()[:120],
                note=note.strip()[:500],
                today=today,
                now=now or utcnow(),
                origin=origin,
            )
        except IntegrityError:
            # The key (a repeated request that won meanwhile) or the number was taken.
            replay = await _claim_replay(actor, key)
            if replay is not None:
                return replay
            numbers.forget(today)
            if attempt == NUMBER_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _claim(
    actor: Staff,
    subscriber: Subscriber,
    ctx: BillingContext,
    values: dict[str, Any],
    *,
    key: str,
    method: PaymentMethod,
    reference: str,
    note: str,
    today: date,
    now: datetime,
    origin: Origin,
) -> ClaimResult:
    amount = values["amount_minor"]
    async with in_transaction() as conn:
        invoice = await write_invoice(
            conn, tenant_id=actor.tenant_id, values=values, actor=actor, origin=origin
        )
        payment = await Payment.create(
            tenant_id=actor.tenant_id,
            invoice_id=invoice.id,
            subscriber_id=subscriber.id,
            amount_minor=amount,
            method=method,
            received_at=now,
            operator_id=actor.id,
            collector_id=None,
            reference=reference,
            note=note,
            idempotency_key=key,
            using_db=conn,
        )
        await post(
            conn,
            tenant_id=actor.tenant_id,
            kind="office_payment",
            legs=ledger.office_payment(
                subscriber_id=subscriber.id, amount_minor=amount, method=method.value
            ),
            payment_id=payment.id,
            invoice_id=invoice.id,
            created_by_id=actor.id,
            memo=invoice.number,
        )
        new_expiry = await settle_in_full(
            conn,
            invoice_id=invoice.id,
            purpose=InvoicePurpose(invoice.purpose),
            suspension_on=invoice.suspension_on,
            subscriber_id=subscriber.id,
            expiry_date=subscriber.expiry_date,
            subscriber_status=SubscriberStatus(subscriber.status),
            period_months=ctx.plan.period_months if ctx.plan else 1,
            today=today,
        )
        refusal = None
        if subscriber.phone:
            refusal = await queue_receipt(
                conn,
                tenant_id=actor.tenant_id,
                payment_id=payment.id,
                invoice_id=invoice.id,
                phone=subscriber.phone,
            )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="invoice.claim",
            object_type="invoice",
            object_id=invoice.id,
            origin=origin,
            details={
                "payment_id": payment.id,
                "amount_minor": amount,
                "method": method.value,
                "reference": reference,
            },
            using_db=conn,
        )
    return ClaimResult(
        invoice_number=invoice.number,
        subscriber_name=subscriber.name,
        amount_minor=amount,
        method=method,
        payment_id=payment.id,
        new_expiry=new_expiry,
        receipt_queued=bool(subscriber.phone) and refusal is None,
        receipt_refusal=refusal,
    )


async def _claim_replay(actor: Staff, key: str) -> ClaimResult | None:
    payment = await Payment.get_or_none(tenant_id=actor.tenant_id, idempotency_key=key)
    if payment is None:
        return None
    if payment.collector_id is not None:
        raise Conflict("This request was already used.")
    invoice = await Invoice.get(id=payment.invoice_id)
    subscriber = await Subscriber.get(id=payment.subscriber_id)
    receipt = await OutboxMessage.get_or_none(
        tenant_id=actor.tenant_id, dedupe_key=f"receipt:{payment.id}"
    )
    refusal = receipt.last_error if receipt and receipt.status == REFUSED else None
    return ClaimResult(
        invoice_number=invoice.number,
        subscriber_name=subscriber.name,
        amount_minor=payment.amount_minor,
        method=PaymentMethod(payment.method),
        payment_id=payment.id,
        new_expiry=subscriber.expiry_date if invoice.purpose == InvoicePurpose.RENEWAL else None,
        receipt_queued=receipt is not None and refusal is None,
        receipt_refusal=refusal,
        replayed=True,
    )


# --- drafts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftLine:
    invoice_id: int
    number: str
    subscriber_name: str
    subscriber_username: str
    amount_minor: int
    issue_date: date
    due_date: date


@dataclass(frozen=True)
class DraftList:
    """Drafts waiting for approval: all of them counted, the oldest `shown`."""

    count: int
    amount_minor: int
    shown: tuple[DraftLine, ...]


async def list_drafts(actor: Staff, *, limit: int = 20) -> DraftList:
    """The drafts waiting for an admin, oldest first. Two queries however many there are."""
    require_admin(actor, "approve invoices")
    drafts = Invoice.filter(tenant_id=actor.tenant_id, status=InvoiceStatus.DRAFT)
    totals = await fetch(
        "SELECT COUNT(*) AS n, COALESCE(SUM(amount_minor), 0) AS amount FROM invoice"
        " WHERE tenant_id = ? AND status = 'draft'",
        [actor.tenant_id],
    )
    rows = (
        await drafts.order_by("issue_date", "id")
        .limit(max(limit, 1))
        .values(
            "id",
            "number",
            "amount_minor",
            "issue_date",
            "due_date",
            "subscriber__name",
            "subscriber__username",
        )
    )
    return DraftList(
        count=int(totals[0]["n"]),
        amount_minor=int(totals[0]["amount"]),
        shown=tuple(
            DraftLine(
                invoice_id=r["id"],
                number=r["number"],
                subscriber_name=r["subscriber__name"],
                subscriber_username=r["subscriber__username"],
                amount_minor=r["amount_minor"],
                issue_date=r["issue_date"],
                due_date=r["due_date"],
            )
            for r in rows[: max(limit, 0)]
        ),
    )


@dataclass(frozen=True)
class ApprovedDrafts:
    """Drafts that now count: their numbers, their total, and how many were left out
    (approving all: drafts that another admin approved a moment earlier)."""

    numbers: tuple[str, ...]
    amount_minor: int
    skipped: int = 0


_DRAFT_FIELDS = (
    "id",
    "number",
    "status",
    "amount_minor",
    "subscriber_id",
    "issue_date",
    "reminder_days",
)


async def approve_drafts(
    actor: Staff,
    *,
    numbers: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> ApprovedDrafts:
    """Approve drafts: each becomes unpaid, posts its receivable and gets its first reminder
    (one interval after approval, or after its issue date if that is later).

    Named drafts (`numbers`, or `ids` from a button) are approved all or none: one that is
    not a draft (already approved, say) refuses the whole request and nothing changes.
    With neither, every draft of the tenant is approved, a batch per transaction, and
    drafts approved meanwhile by someone else are counted in `skipped`.

    Raises:
        NotFound: a named invoice that is not in the actor's tenant (`invoice_not_found`).
        Conflict: a named invoice that is not a draft (`not_a_draft`).
    """
    require_admin(actor, "approve invoices")
    _, today = await _tenant_today(actor.tenant_id, now)
    if numbers is None and ids is None:
        return await _approve_all(actor, today, origin)
    rows = await _named_drafts(actor, numbers or [], ids or [])
    async with in_transaction() as conn:
        for row in rows:
            if not await _approve(conn, actor, row, today, origin):
                # Approved by someone else since it was read: roll everything back.
                raise _not_a_draft(row["number"], InvoiceStatus.UNPAID)
    return ApprovedDrafts(
        numbers=tuple(r["number"] for r in rows),
        amount_minor=sum(r["amount_minor"] for r in rows),
    )


async def _named_drafts(
    actor: Staff, numbers: Sequence[str], ids: Sequence[int]
) -> list[dict[str, Any]]:
    wanted = list(dict.fromkeys(n.strip().upper() for n in numbers if n.strip()))
    wanted_ids = list(dict.fromkeys(ids))
    if not wanted and not wanted_ids:
        raise InvalidInput(
            "Give at least one invoice number, like INV-2026-0042.", code="numbers_required"
        )
    if len(wanted) + len(wanted_ids) > MAX_NAMED:
        raise InvalidInput(
            f"Approve at most {MAX_NAMED:,} invoices at a time.",
            code="too_many_to_approve",
            limit=MAX_NAMED,
        )
    query = Invoice.filter(tenant_id=actor.tenant_id).filter(
        Q(number__in=wanted) | Q(id__in=wanted_ids)
    )
    rows = await query.order_by("id").values(*_DRAFT_FIELDS, "subscriber__reseller_id")
    rows = [r for r in rows if in_reseller_scope(actor, r["subscriber__reseller_id"])]
    found = {str(r["number"]).upper() for r in rows} | {f"#{r['id']}" for r in rows}
    missing = [n for n in [*wanted, *(f"#{i}" for i in wanted_ids)] if n not in found]
    if missing:
        number = missing[0]
        raise NotFound(
            f"There is no invoice {number} in your company.",
            code="invoice_not_found",
            number=number,
        )
    for row in rows:
        if row["status"] != InvoiceStatus.DRAFT:
            raise _not_a_draft(row["number"], InvoiceStatus(row["status"]))
    return rows


def _not_a_draft(number: str, status: InvoiceStatus) -> Conflict:
    return Conflict(
        f"{number} is not a draft (it is {status.value}); there is nothing to approve.",
        code="not_a_draft",
        number=number,
        status=status.value,
    )


async def _approve_all(actor: Staff, today: date, origin: Origin) -> ApprovedDrafts:
    approved: list[str] = []
    amount = skipped = 0
    last_id = 0
    while True:
        rows = (
            await Invoice.filter(
                tenant_id=actor.tenant_id, status=InvoiceStatus.DRAFT, id__gt=last_id
            )
            .order_by("id")
            .limit(BATCH)
            .values(*_DRAFT_FIELDS)
        )
        if not rows:
            break
        async with in_transaction() as conn:
            for row in rows:
                if await _approve(conn, actor, row, today, origin):
                    approved.append(row["number"])
                    amount += row["amount_minor"]
                else:
                    skipped += 1
        last_id = rows[-1]["id"]
    return ApprovedDrafts(numbers=tuple(approved), amount_minor=amount, skipped=skipped)


async def _approve(
    conn: BaseDBAsyncClient, actor: Staff, row: dict[str, Any], today: date, origin: Origin
) -> bool:
    """Approve one draft if it still is one (the conditional UPDATE is the referee)."""
    first = first_reminder_on(max(row["issue_date"], today), row["reminder_days"])
    changed = (
        await Invoice.filter(id=row["id"], status=InvoiceStatus.DRAFT)
        .using_db(conn)
        .update(status=InvoiceStatus.UNPAID, next_reminder_on=first)
    )
    if changed != 1:
        return False
    await post(
        conn,
        tenant_id=actor.tenant_id,
        kind="invoice_issued",
        legs=ledger.invoice_issued(
            subscriber_id=row["subscriber_id"], amount_minor=row["amount_minor"]
        ),
        invoice_id=row["id"],
        created_by_id=actor.id,
        memo=row["number"],
    )
    await write_audit(
        tenant_id=actor.tenant_id,
        actor=actor,
        action="invoice.approve",
        object_type="invoice",
        object_id=row["id"],
        origin=origin,
        details={"number": row["number"], "amount_minor": row["amount_minor"]},
        using_db=conn,
    )
    return True


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutedRequest:
    number: str
    subscriber_name: str


async def execute_request(
    actor: Staff, *, number: str, origin: Origin = SYSTEM
) -> ExecutedRequest:
    """Mark an invoice's pending request executed: the service was given, paid or not.

    The request cancellation date goes (the clock will not cancel it), and reminders
    resume, since they wait only while a request is pending.

    Raises:
        NotFound: no such invoice in the actor's scope.
        Conflict: its request is not pending (`request_not_pending`).
    """
    require_admin(actor, "execute requests")
    invoice = await _invoice(actor, number)
    async with in_transaction() as conn:
        changed = (
            await Invoice.filter(id=invoice.id, request_status=RequestStatus.PENDING)
            .using_db(conn)
            .update(request_status=RequestStatus.EXECUTED, request_cancellation_on=None)
        )
        if changed != 1:
            current = await Invoice.get(id=invoice.id, using_db=conn)
            raise Conflict(
                f"{invoice.number} has no pending request ({current.request_status or 'none'}).",
                code="request_not_pending",
                number=invoice.number,
                status=current.request_status or "none",
            )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action="invoice.execute_request",
            object_type="invoice",
            object_id=invoice.id,
            origin=origin,
            details={"number": invoice.number},
            using_db=conn,
        )
    subscriber = await Subscriber.get(id=invoice.subscriber_id)
    return ExecutedRequest(number=invoice.number, subscriber_name=subscriber.name)


# --- postpaid billing cycles ---------------------------------------------------------------


@dataclass(frozen=True)
class BillingCycle:
    """A postpaid subscriber's cycle: `next_billing_on` None means it is stopped."""

    username: str
    subscriber_name: str
    months: int
    next_billing_on: date | None


async def _postpaid(actor: Staff, username: str, *, what: str) -> Subscriber:
    require_admin(actor, f"{what} billing cycles")
    subscriber = await subscriber_in_scope(actor, username)
    if subscriber.billing_mode != BillingMode.POSTPAID:
        raise InvalidInput(
            f"{subscriber.username} pays in advance (prepaid): they are billed by renewal,"
            " not by a billing cycle.",
            code="not_postpaid",
            username=subscriber.username,
        )
    return subscriber


def _cycle(subscriber: Subscriber, months: int, next_on: date | None) -> BillingCycle:
    return BillingCycle(subscriber.username, subscriber.name, months, next_on)


async def _save_cycle(
    actor: Staff,
    subscriber: Subscriber,
    *,
    action: str,
    origin: Origin,
    months: int,
    next_on: date | None,
) -> BillingCycle:
    async with in_transaction() as conn:
        # Conditional on what was read: the scheduler may be moving the date right now.
        changed = (
            await Subscriber.filter(
                id=subscriber.id,
                billing_cycle_months=subscriber.billing_cycle_months,
                next_billing_on=subscriber.next_billing_on,
            )
            .using_db(conn)
            .update(billing_cycle_months=months, next_billing_on=next_on)
        )
        if changed != 1:
            raise Conflict(
                f"{subscriber.username}'s billing changed meanwhile; try again.",
                code="cycle_changed",
                username=subscriber.username,
            )
        await write_audit(
            tenant_id=actor.tenant_id,
            actor=actor,
            action=action,
            object_type="subscriber",
            object_id=subscriber.id,
            origin=origin,
            details={
                "months": months,
                "next_billing_on": next_on.isoformat() if next_on else None,
                "before": {
                    "months": subscriber.billing_cycle_months,
                    "next_billing_on": subscriber.next_billing_on.isoformat()
                    if subscriber.next_billing_on
                    else None,
                },
            },
            using_db=conn,
        )
    return _cycle(subscriber, months, next_on)


async def start_billing_cycle(
    actor: Staff,
    *,
    username: str,
    months: int = 1,
    first_on: date | None = None,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> BillingCycle:
    """Start billing a postpaid subscriber every `months`: first on `first_on`, or one cycle
    from today.

    Raises:
        InvalidInput: not postpaid (`not_postpaid`), months outside 1-12, a first day in the
            past, no plan to price the cycle (`no_plan`).
        Conflict: a cycle is already running (`cycle_running`), or they are terminated.
    """
    check_cycle_months(months)
    subscriber = await _postpaid(actor, username, what="start")
    if subscriber.status == SubscriberStatus.TERMINATED:
        raise Conflict(
            f"{subscriber.username} is terminated; nothing is billed any more.",
            code="subscriber_terminated",
            username=subscriber.username,
        )
    if subscriber.plan_id is None:
        raise InvalidInput(
            f"{subscriber.username} has no plan, so a cycle has no price; give them a plan.",
            code="no_plan",
            username=subscriber.username,
        )
    if subscriber.next_billing_on is not None:
        raise Conflict(
            f"{subscriber.username}'s cycle is already running; next bill"
            f" {subscriber.next_billing_on.isoformat()}.",
            code="cycle_running",
            username=subscriber.username,
            day=subscriber.next_billing_on,
        )
    _, today = await _tenant_today(actor.tenant_id, now)
    next_on = first_billing_on(today, months, first_on)
    return await _save_cycle(
        actor,
        subscriber,
        action="subscriber.cycle_start",
        origin=origin,
        months=months,
        next_on=next_on,
    )


async def stop_billing_cycle(
    actor: Staff, *, username: str, origin: Origin = SYSTEM
) -> BillingCycle:
    """Stop a postpaid subscriber's cycle: no more recurring drafts until it is started.

    Raises:
        Conflict: the cycle is not running (`cycle_not_running`).
    """
    subscriber = await _postpaid(actor, username, what="stop")
    _require_running(subscriber)
    return await _save_cycle(
        actor,
        subscriber,
        action="subscriber.cycle_stop",
        origin=origin,
        months=subscriber.billing_cycle_months,
        next_on=None,
    )


async def change_billing_cycle(
    actor: Staff, *, username: str, months: int, origin: Origin = SYSTEM
) -> BillingCycle:
    """Give a running cycle a new length; the cycle under way keeps its start.

    Raises:
        InvalidInput: months outside 1-12, not postpaid.
        Conflict: the cycle is not running (`cycle_not_running`).
    """
    check_cycle_months(months)
    subscriber = await _postpaid(actor, username, what="change")
    running = _require_running(subscriber)
    next_on = changed_next_billing_on(running, subscriber.billing_cycle_months, months)
    return await _save_cycle(
        actor,
        subscriber,
        action="subscriber.cycle_change",
        origin=origin,
        months=months,
        next_on=next_on,
    )


def _require_running(subscriber: Subscriber) -> date:
    if subscriber.next_billing_on is None:
        raise Conflict(
            f"{subscriber.username} has no billing cycle running; start one first.",
            code="cycle_not_running",
            username=subscriber.username,
        )
    return subscriber.next_billing_on


# --- the daily run -------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvoices:
    """What one day's run issued for a tenant."""

    drafts: int = 0
    drafts_minor: int = 0
    renewals: int = 0
    renewals_minor: int = 0
    # Subscribers due a bill who have no plan to price it (the office should give one).
    without_plan: int = 0
    # Subscribers whose invoice could not be made (logged with the reason).
    failed: int = 0


@dataclass
class _Tally:
    drafts: int = 0
    drafts_minor: int = 0
    renewals: int = 0
    renewals_minor: int = 0
    without_plan: int = 0
    failed: int = 0


async def issue_scheduled_invoices(*, tenant_id: int, day: date) -> IssuedInvoices:
    """The day's recurring invoices for one tenant (the scheduler calls it daily).

    - Postpaid subscribers whose `next_billing_on` is on or before `day` get a **draft**
      for each cycle that ended (the plan's price scaled to the cycle), dated the cycle's
      last day, and `next_billing_on` moves on. Terminated subscribers are not billed.
    - Prepaid subscribers whose expiry is within the tenant's `renewal_lead_days` get a
      system-generated **unpaid** renewal (one plan period) with a pending request, unless
      a renewal is open or was already issued for this expiry.

    Running it again for the same day issues nothing new.
    """
    tenant = await Tenant.get(id=tenant_id)
    plans = {p.id: p for p in await Plan.filter(tenant_id=tenant_id)}
    terms = {
        class_id: (net, out_of_turn)
        for class_id, net, out_of_turn in await CustomerClass.filter(
            tenant_id=tenant_id
        ).values_list("id", "net_days", "out_of_turn_net_days")
    }
    numbers = _Numbers(tenant_id)
    tally = _Tally()
    await _issue_drafts(tenant, day, plans, terms, numbers, tally)
    await _issue_renewals(tenant, day, plans, terms, numbers, tally)
    log.info("tenant %s %s: scheduled invoices %s", tenant_id, day, tally)
    return IssuedInvoices(**vars(tally))


_SUBSCRIBER_FIELDS = (
    "id",
    "username",
    "status",
    "plan_id",
    "customer_class_id",
    "expiry_date",
    "billing_cycle_months",
    "next_billing_on",
)


async def _issue_drafts(
    tenant: Tenant,
    day: date,
    plans: dict[int, Plan],
    terms: dict[int, tuple[int, int]],
    numbers: _Numbers,
    tally: _Tally,
) -> None:
    last_id = 0
    while True:
        rows = (
            await Subscriber.filter(
                tenant_id=tenant.id,
                billing_mode=BillingMode.POSTPAID,
                next_billing_on__lte=day,
                id__gt=last_id,
            )
            .exclude(status=SubscriberStatus.TERMINATED)
            .order_by("id")
            .limit(BATCH)
            .values(*_SUBSCRIBER_FIELDS)
        )
        if not rows:
            return
        for row in rows:
            plan = plans.get(row["plan_id"]) if row["plan_id"] else None
            if plan is None:
                tally.without_plan += 1
                continue
            ctx = BillingContext(terms=terms.get(row["customer_class_id"] or 0), plan=plan)
            await _bill_ended_cycles(tenant, row, ctx, day, numbers, tally)
        last_id = rows[-1]["id"]


async def _bill_ended_cycles(
    tenant: Tenant,
    row: dict[str, Any],
    ctx: BillingContext,
    day: date,
    numbers: _Numbers,
    tally: _Tally,
) -> None:
    """One draft per cycle that ended on or before `day` (more than one after a pause)."""
    assert ctx.plan is not None
    months = row["billing_cycle_months"]
    amount = cycle_amount_minor(ctx.plan.price_minor, ctx.plan.period_months, months)
    cycle_end: date = row["next_billing_on"]
    while cycle_end <= day:
        write = functools.partial(
            _write_draft, tenant_id=tenant.id, row=row, ctx=ctx, end=cycle_end, amount=amount
        )
        if not await _with_number(write, cycle_end, numbers, row, tally):
            return
        tally.drafts += 1
        tally.drafts_minor += amount
        cycle_end = add_months(cycle_end, months)


async def _write_draft(
    conn: BaseDBAsyncClient,
    number: str,
    *,
    tenant_id: int,
    row: dict[str, Any],
    ctx: BillingContext,
    end: date,
    amount: int,
) -> bool:
    """The draft for the cycle ending `end`, if this run is the one that moves the date."""
    months = row["billing_cycle_months"]
    moved = (
        await Subscriber.filter(id=row["id"], next_billing_on=end, billing_cycle_months=months)
        .using_db(conn)
        .update(next_billing_on=add_months(end, months))
    )
    if moved != 1:
        return False  # billed meanwhile, or the cycle was stopped or changed
    values = invoice_values(
        ctx,
        subscriber_id=row["id"],
        number=number,
        amount_minor=amount,
        issue_date=end,
        purpose=InvoicePurpose.RENEWAL,
        draft=True,
        system_generated=True,
    )
    await write_invoice(
        conn,
        tenant_id=tenant_id,
        values=values,
        actor=None,
        origin=SYSTEM,
        details={"cycle_months": months, "cycle_end": end.isoformat()},
    )
    return True


async def _issue_renewals(
    tenant: Tenant,
    day: date,
    plans: dict[int, Plan],
    terms: dict[int, tuple[int, int]],
    numbers: _Numbers,
    tally: _Tally,
) -> None:
    first, last = renewal_window(day, tenant.renewal_lead_days)
    last_id = 0
    while True:
        rows = (
            await Subscriber.filter(
                tenant_id=tenant.id,
                billing_mode=BillingMode.PREPAID,
                expiry_date__gte=first,
                expiry_date__lte=last,
                id__gt=last_id,
            )
            .exclude(status=SubscriberStatus.TERMINATED)
            .order_by("id")
            .limit(BATCH)
            .values(*_SUBSCRIBER_FIELDS)
        )
        if not rows:
            return
        on_file = await _renewals_on_file(
            [r["id"] for r in rows], _issued_since(tenant, day), None
        )
        for row in rows:
            if not needs_renewal(
                row["expiry_date"], tenant.renewal_lead_days, on_file.get(row["id"], [])
            ):
                continue
            plan = plans.get(row["plan_id"]) if row["plan_id"] else None
            if plan is None:
                tally.without_plan += 1
                continue
            ctx = BillingContext(terms=terms.get(row["customer_class_id"] or 0), plan=plan)
            write = functools.partial(_write_renewal, tenant=tenant, row=row, ctx=ctx, day=day)
            if await _with_number(write, day, numbers, row, tally):
                tally.renewals += 1
                tally.renewals_minor += plan.price_minor
        last_id = rows[-1]["id"]


async def _write_renewal(
    conn: BaseDBAsyncClient,
    number: str,
    *,
    tenant: Tenant,
    row: dict[str, Any],
    ctx: BillingContext,
    day: date,
) -> bool:
    """The renewal for the subscriber's current expiry, unless another run wrote it first."""
    # Claim the row (a row lock on PostgreSQL, the write lock on SQLite), then read the
    # renewals again: of two runs at once, the second sees the first's invoice.
    claimed = (
        await Subscriber.filter(id=row["id"], expiry_date=row["expiry_date"])
        .exclude(status=SubscriberStatus.TERMINATED)
        .using_db(conn)
        .update(expiry_date=row["expiry_date"])
    )
    if claimed != 1:
        return False
    again = await _renewals_on_file([row["id"]], _issued_since(tenant, day), conn)
    if not needs_renewal(row["expiry_date"], tenant.renewal_lead_days, again.get(row["id"], [])):
        return False
    assert ctx.plan is not None
    values = invoice_values(
        ctx,
        subscriber_id=row["id"],
        number=number,
        amount_minor=ctx.plan.price_minor,
        issue_date=day,
        purpose=InvoicePurpose.RENEWAL,
        system_generated=True,
        request_status=RequestStatus.PENDING,
    )
    await write_invoice(
        conn,
        tenant_id=tenant.id,
        values=values,
        actor=None,
        origin=SYSTEM,
        details={"expiry_date": row["expiry_date"].isoformat()},
    )
    return True


def _issued_since(tenant: Tenant, day: date) -> date:
    first, _ = renewal_window(day, tenant.renewal_lead_days)
    return first - timedelta(days=max(tenant.renewal_lead_days, 0))


async def _renewals_on_file(
    subscriber_ids: list[int], since: date, conn: BaseDBAsyncClient | None
) -> dict[int, list[RenewalOnFile]]:
    """The renewals that can stop a new one: open ones, and the clock's issued since `since`
    (the earliest day a renewal for an expiry in the window can have been issued)."""
    query = Invoice.filter(subscriber_id__in=subscriber_ids, purpose=InvoicePurpose.RENEWAL)
    query = query.filter(
        Q(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.UNPAID, InvoiceStatus.PARTIAL])
        | Q(system_generated=True, issue_date__gte=since)
    )
    if conn is not None:
        query = query.using_db(conn)
    found: dict[int, list[RenewalOnFile]] = {}
    for subscriber_id, status, system, issued in await query.values_list(
        "subscriber_id", "status", "system_generated", "issue_date"
    ):
        found.setdefault(subscriber_id, []).append(
            RenewalOnFile(InvoiceStatus(status), bool(system), issued)
        )
    return found


_Write = Callable[[BaseDBAsyncClient, str], Awaitable[bool]]


async def _with_number(
    write: _Write, issue_date: date, numbers: _Numbers, row: dict[str, Any], tally: _Tally
) -> bool:
    """Run `write(conn, number)` in its own transaction; retry with a fresh number if the
    number was taken meanwhile. A refusal is logged and counted, never fatal to the run."""
    for _ in range(NUMBER_ATTEMPTS):
        number = await numbers.take(issue_date)
        try:
            async with in_transaction() as conn:
                return bool(await write(conn, number))
        except IntegrityError:
            numbers.forget(issue_date)
        except DomainError as exc:
            log.warning("subscriber %s (%s): no invoice: %s", row["id"], row["username"], exc)
            tally.failed += 1
            return False
    log.warning("subscriber %s (%s): no free invoice number", row["id"], row["username"])
    tally.failed += 1
    return False


# --- the dashboard -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    """Invoices (and debit notes) of the actor's scope, as of `today` (tenant's calendar)."""

    today: date
    approved: int
    drafts: int
    drafts_minor: int
    paid: int
    unpaid: int
    partial: int
    overdue: int
    outstanding_minor: int
    overdue_minor: int
    received_minor: int

    @property
    def total(self) -> int:
        return self.approved + self.drafts

    @property
    def unsettled(self) -> int:
        return self.unpaid + self.partial


_DASHBOARD_SQL = f"""
SELECT
  SUM(CASE WHEN i.status IN ('unpaid', 'partial', 'paid') THEN 1 ELSE 0 END) AS approved,
  SUM(CASE WHEN i.status = 'draft' THEN 1 ELSE 0 END) AS drafts,
  SUM(CASE WHEN i.status = 'draft' THEN i.amount_minor ELSE 0 END) AS drafts_minor,
  SUM(CASE WHEN i.status = 'paid' THEN 1 ELSE 0 END) AS paid,
  SUM(CASE WHEN i.status = 'unpaid' THEN 1 ELSE 0 END) AS unpaid,
  SUM(CASE WHEN i.status = 'partial' THEN 1 ELSE 0 END) AS partial,
  SUM(CASE WHEN i.status IN {_COLLECTIBLE_SQL} AND i.due_date < ? THEN 1 ELSE 0 END)
    AS overdue,
  SUM(CASE WHEN i.status IN {_COLLECTIBLE_SQL} THEN i.amount_minor - i.paid_minor ELSE 0 END)
    AS outstanding_minor,
  SUM(CASE WHEN i.status IN {_COLLECTIBLE_SQL} AND i.due_date < ?
      THEN i.amount_minor - i.paid_minor ELSE 0 END) AS overdue_minor,
  SUM(CASE WHEN i.status IN ('unpaid', 'partial', 'paid') THEN i.paid_minor ELSE 0 END)
    AS received_minor
FROM invoice i
"""


async def dashboard(actor: Staff, *, now: datetime | None = None) -> Dashboard:
    """The office's figures in one statement: admins see the tenant, reseller staff their
    own subscribers' invoices.

    Overdue: unpaid or partly paid, and the due date before today in the tenant's calendar.
    """
    require_office(actor)
    _, today = await _tenant_today(actor.tenant_id, now)
    sql = _DASHBOARD_SQL
    params: list[Any] = [today, today]  # the two `due_date < ?`
    if actor.role == Role.ADMIN:
        sql += "WHERE i.tenant_id = ?"
        params.append(actor.tenant_id)
    else:
        sql += "JOIN subscriber s ON s.id = i.subscriber_id WHERE i.tenant_id = ?"
        sql += " AND s.reseller_id = ?"
        params += [actor.tenant_id, actor.reseller_id or 0]
    row = (await fetch(sql, params))[0]
    figures = {key: int(value or 0) for key, value in row.items()}
    return Dashboard(today=today, **figures)


# --- subscribers flagged for failed visits -------------------------------------------------


@dataclass(frozen=True)
class FlaggedSubscriber:
    subscriber_id: int
    username: str
    name: str
    area: str
    invoices: int
    due_minor: int
    failed_visits: int


@dataclass(frozen=True)
class FlaggedPreview:
    """Active subscribers with a flagged invoice still unpaid: counted, the first `shown`."""

    count: int
    due_minor: int
    shown: tuple[FlaggedSubscriber, ...]


# Active subscribers with an unpaid or partly paid invoice flagged for failed visits.
_FLAGGED_FROM = f"""
FROM subscriber s
JOIN invoice i ON i.subscriber_id = s.id
WHERE s.tenant_id = ? AND s.status = 'active' AND i.tenant_id = ?
  AND i.flagged_at IS NOT NULL AND i.status IN {_COLLECTIBLE_SQL}
"""
_FLAGGED_GROUPS = f"""
SELECT s.id AS subscriber_id, s.username, s.name, s.area, COUNT(i.id) AS invoices,
       SUM(i.amount_minor - i.paid_minor) AS due_minor, MAX(i.failed_visits) AS failed_visits
{_FLAGGED_FROM}
"""
_FLAGGED_TOTALS_SQL = f"""
SELECT COUNT(*) AS n, COALESCE(SUM(due_minor), 0) AS due_minor
FROM ({_FLAGGED_GROUPS} GROUP BY s.id, s.username, s.name, s.area) flagged
"""
_FLAGGED_SHOWN_SQL = f"""
{_FLAGGED_GROUPS}
GROUP BY s.id, s.username, s.name, s.area
ORDER BY s.area, s.username
LIMIT ?
"""
_FLAGGED_BATCH_SQL = f"""
{_FLAGGED_GROUPS} AND s.id > ?
GROUP BY s.id, s.username, s.name, s.area
ORDER BY s.id
LIMIT ?
"""


def _flagged(row: dict[str, Any]) -> FlaggedSubscriber:
    return FlaggedSubscriber(
        subscriber_id=row["subscriber_id"],
        username=row["username"],
        name=row["name"],
        area=row["area"],
        invoices=int(row["invoices"]),
        due_minor=int(row["due_minor"]),
        failed_visits=int(row["failed_visits"]),
    )


async def preview_flagged_suspension(actor: Staff, *, limit: int = 20) -> FlaggedPreview:
    """Who `suspend_flagged` would suspend now (the seed's "bulk disconnect"). Two queries."""
    require_admin(actor, "suspend subscribers")
    tenant_ids = [actor.tenant_id, actor.tenant_id]
    totals = (await fetch(_FLAGGED_TOTALS_SQL, tenant_ids))[0]
    rows = await fetch(_FLAGGED_SHOWN_SQL, [*tenant_ids, limit])
    return FlaggedPreview(
        count=int(totals["n"]),
        due_minor=int(totals["due_minor"] or 0),
        shown=tuple(_flagged(r) for r in rows),
    )


@dataclass(frozen=True)
class SuspendedFlagged:
    """Who was suspended (usernames), and how many of those asked for no longer qualified
    (paid meanwhile, already suspended, terminated)."""

    usernames: tuple[str, ...]
    skipped: int = 0


async def suspend_flagged(
    actor: Staff,
    *,
    subscriber_ids: Sequence[int] | None = None,
    origin: Origin = SYSTEM,
) -> SuspendedFlagged:
    """Suspend every active subscriber with an unpaid invoice flagged for failed visits
    (or only those of `subscriber_ids`, the ones a preview showed, that still qualify).

    Each suspension is a conditional UPDATE from `active` and its own audit row; suspended
    and terminated subscribers are left as they are. Full payment reactivates, as ever.
    """
    require_admin(actor, "suspend subscribers")
    wanted = set(subscriber_ids) if subscriber_ids is not None else None
    suspended: list[str] = []
    last_id = 0
    while True:
        rows = await fetch(_FLAGGED_BATCH_SQL, [actor.tenant_id, actor.tenant_id, last_id, BATCH])
        if not rows:
            break
        async with in_transaction() as conn:
            for row in map(_flagged, rows):
                if wanted is not None and row.subscriber_id not in wanted:
                    continue
                changed = (
                    await Subscriber.filter(id=row.subscriber_id, status=SubscriberStatus.ACTIVE)
                    .using_db(conn)
                    .update(status=SubscriberStatus.SUSPENDED)
                )
                if changed != 1:
                    continue
                await write_audit(
                    tenant_id=actor.tenant_id,
                    actor=actor,
                    action="subscriber.suspend",
                    object_type="subscriber",
                    object_id=row.subscriber_id,
                    origin=origin,
                    details={
                        "reason": "failed_visits",
                        "flagged_invoices": row.invoices,
                        "due_minor": row.due_minor,
                    },
                    using_db=conn,
                )
                suspended.append(row.username)
        last_id = rows[-1]["subscriber_id"]
    skipped = len(wanted) - len(suspended) if wanted is not None else 0
    return SuspendedFlagged(usernames=tuple(suspended), skipped=skipped)
