"""An invoice's whole story, for the office answering "I paid your guy".

`invoice_story` gathers, in a fixed handful of queries however long the history: the
invoice and its subscriber; its payments (who collected, when, how, the receipt photo);
every visit on a route, in order, with its outcome; the messages sent about it and their
delivery statuses; and the audit trail of the invoice.

Invariants: read-only; scoped to the actor's tenant and, for reseller staff, to their own
reseller's subscribers. A number outside the scope is "not found", exactly like a number
that does not exist, so nothing leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.db.models import (
    Assignment,
    AuditLog,
    NotificationLog,
    OutboxMessage,
    Payment,
    PaymentReversal,
    Staff,
    Tenant,
)
from core.documents.receipt import receipt_number
from core.domain.dates import local_today, utcnow
from core.domain.status import (
    COLLECTIBLE,
    AssignmentStatus,
    FailureReason,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
)
from core.services.access import COLLECTORS_VIEW, invoice_in_scope, require_permission
from core.services.balances import Balance, subscriber_balance


@dataclass(frozen=True)
class InvoiceFacts:
    id: int
    number: str
    kind: InvoiceKind
    purpose: InvoicePurpose
    status: InvoiceStatus
    overdue: bool  # derived: still collectible and past its due date (tenant's calendar)
    amount_minor: int
    paid_minor: int
    issue_date: date
    due_date: date
    failed_visits: int
    flagged_at: datetime | None
    subscriber_name: str
    subscriber_username: str
    subscriber_phone: str | None
    address: str
    area: str

    @property
    def due_now_minor(self) -> int:
        return self.amount_minor - self.paid_minor


@dataclass(frozen=True)
class ReceiptPhoto:
    """Where a receipt photo is: Telegram's file id if known, else `path` under DATA_DIR."""

    stored_file_id: int
    path: str
    content_type: str
    telegram_file_id: str | None


@dataclass(frozen=True)
class PaymentEntry:
    payment_id: int
    amount_minor: int
    method: PaymentMethod
    received_at: datetime
    collector_name: str | None
    collector_phone: str | None
    operator_name: str | None
    reference: str
    note: str
    receipt_file_id: int | None  # the StoredFile id of the receipt photo
    receipt: ReceiptPhoto | None
    # Set when the payment was taken back (it then no longer counts).
    reversed_at: datetime | None = None
    reversal_reason: str | None = None

    @property
    def receipt_number(self) -> str:
        return receipt_number(self.payment_id)


@dataclass(frozen=True)
class VisitEntry:
    """One stop on a route: when it was planned, who went, how it ended (if it has)."""

    assignment_id: int
    scheduled_on: date
    collector_name: str
    status: AssignmentStatus
    assigned_by_name: str | None
    assigned_at: datetime
    closed_at: datetime | None
    closed_on: date | None
    collected_minor: int
    failure_reason: FailureReason | None
    failure_note: str
    notes: str

    @property
    def day(self) -> date:
        """The day of the visit: when it ended, or when it is planned while still open."""
        return self.closed_on or self.scheduled_on


@dataclass(frozen=True)
class DeliveryEvent:
    status: str
    occurred_at: datetime
    error: str | None = None  # the gateway's reason, for a failed delivery


@dataclass(frozen=True)
class MessageEntry:
    """A message about the invoice (a WhatsApp receipt, a reminder) and how it travelled."""

    message_id: int
    channel: str
    kind: str
    recipient: str
    status: str  # ours: pending / sending / sent / failed / refused
    delivery_status: str | None  # the gateway's, forward only: sent / delivered / read / failed
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    events: tuple[DeliveryEvent, ...]


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor_kind: str  # staff / system / webhook / cli
    actor_name: str | None  # None: not a person (the system, a webhook, the command line)
    action: str
    telegram_user_id: int | None
    collector_name: str | None  # for route actions: whose route
    details: dict[str, Any]


@dataclass(frozen=True)
class InvoiceStory:
    invoice: InvoiceFacts
    payments: tuple[PaymentEntry, ...]
    visits: tuple[VisitEntry, ...]
    messages: tuple[MessageEntry, ...]
    audit: tuple[AuditEntry, ...]
    # What the subscriber owes on all their invoices, this one included.
    balance: Balance | None = None


async def invoice_story(actor: Staff, *, number: str, now: datetime | None = None) -> InvoiceStory:
    """Everything that happened to invoice `number`, oldest first in each part.

    Needs `collectors.view` (admins always). Nine queries whatever the history's length.

    Raises:
        NotFound: no such invoice in the actor's tenant and scope (code `invoice_not_found`).
    """
    require_permission(actor, COLLECTORS_VIEW)
    row = await invoice_in_scope(
        actor,
        number,
        "id",
        "number",
        "kind",
        "purpose",
        "status",
        "amount_minor",
        "paid_minor",
        "issue_date",
        "due_date",
        "failed_visits",
        "flagged_at",
        "subscriber__name",
        "subscriber__username",
        "subscriber__phone",
        "subscriber__address",
        "subscriber__area",
        "subscriber_id",
    )
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)
    status = InvoiceStatus(row["status"])
    invoice = InvoiceFacts(
        id=row["id"],
        number=row["number"],
        kind=InvoiceKind(row["kind"]),
        purpose=InvoicePurpose(row["purpose"]),
        status=status,
        overdue=status in COLLECTIBLE and row["due_date"] < today,
        amount_minor=row["amount_minor"],
        paid_minor=row["paid_minor"],
        issue_date=row["issue_date"],
        due_date=row["due_date"],
        failed_visits=row["failed_visits"],
        flagged_at=row["flagged_at"],
        subscriber_name=row["subscriber__name"],
        subscriber_username=row["subscriber__username"],
        subscriber_phone=row["subscriber__phone"],
        address=row["subscriber__address"],
        area=row["subscriber__area"],
    )
    visits = await _visits(invoice.id)
    collectors_by_stop = {v.assignment_id: v.collector_name for v in visits}
    return InvoiceStory(
        invoice=invoice,
        payments=await _payments(invoice.id),
        visits=visits,
        messages=await _messages(invoice.id),
        audit=await _audit(actor.tenant_id, invoice.id, collectors_by_stop),
        balance=await subscriber_balance(actor.tenant_id, row["subscriber_id"], today=today),
    )


async def _payments(invoice_id: int) -> tuple[PaymentEntry, ...]:
    rows = (
        await Payment.filter(invoice_id=invoice_id)
        .order_by("received_at", "id")
        .values(
            "id",
            "amount_minor",
            "method",
            "received_at",
            "reference",
            "note",
            "receipt_file_id",
            "collector__name",
            "collector__phone",
            "operator__name",
            "receipt_file__path",
            "receipt_file__content_type",
            "receipt_file__telegram_file_id",
        )
    )
    reversals = {
        r["payment_id"]: r
        for r in await PaymentReversal.filter(payment_id__in=[r["id"] for r in rows]).values(
            "payment_id", "reversed_at", "reason"
        )
    }
    return tuple(
        PaymentEntry(
            payment_id=r["id"],
            amount_minor=r["amount_minor"],
            method=PaymentMethod(r["method"]),
            received_at=r["received_at"],
            collector_name=r["collector__name"],
            collector_phone=r["collector__phone"],
            operator_name=r["operator__name"],
            reference=r["reference"],
            note=r["note"],
            receipt_file_id=r["receipt_file_id"],
            receipt=(
                ReceiptPhoto(
                    stored_file_id=r["receipt_file_id"],
                    path=r["receipt_file__path"],
                    content_type=r["receipt_file__content_type"],
                    telegram_file_id=r["receipt_file__telegram_file_id"],
                )
                if r["receipt_file_id"] is not None
                else None
            ),
            reversed_at=reversals[r["id"]]["reversed_at"] if r["id"] in reversals else None,
            reversal_reason=reversals[r["id"]]["reason"] if r["id"] in reversals else None,
        )
        for r in rows
    )


async def _visits(invoice_id: int) -> tuple[VisitEntry, ...]:
    rows = (
        await Assignment.filter(invoice_id=invoice_id)
        .order_by("id")  # creation order: a stop that comes back follows the failed one
        .values(
            "id",
            "scheduled_on",
            "status",
            "assigned_at",
            "closed_at",
            "closed_on",
            "collected_minor",
            "failure_reason",
            "failure_note",
            "notes",
            "collector__name",
            "assigned_by__name",
        )
    )
    return tuple(
        VisitEntry(
            assignment_id=r["id"],
            scheduled_on=r["scheduled_on"],
            collector_name=r["collector__name"],
            status=AssignmentStatus(r["status"]),
            assigned_by_name=r["assigned_by__name"],
            assigned_at=r["assigned_at"],
            closed_at=r["closed_at"],
            closed_on=r["closed_on"],
            collected_minor=r["collected_minor"],
            failure_reason=FailureReason(r["failure_reason"]) if r["failure_reason"] else None,
            failure_note=r["failure_note"],
            notes=r["notes"],
        )
        for r in rows
    )


async def _messages(invoice_id: int) -> tuple[MessageEntry, ...]:
    messages = (
        await OutboxMessage.filter(invoice_id=invoice_id)
        .order_by("created_at", "id")
        .values(
            "id",
            "channel",
            "kind",
            "recipient",
            "status",
            "delivery_status",
            "attempts",
            "next_attempt_at",
            "created_at",
            "sent_at",
            "last_error",
        )
    )
    events: dict[int, list[DeliveryEvent]] = {}
    for e in (
        await NotificationLog.filter(invoice_id=invoice_id)
        .order_by("occurred_at", "id")
        .values("message_id", "status", "occurred_at", "event")
    ):
        detail = e["event"] if isinstance(e["event"], dict) else {}
        error = detail.get("error")
        events.setdefault(e["message_id"], []).append(
            DeliveryEvent(
                status=e["status"],
                occurred_at=e["occurred_at"],
                error=str(error) if error else None,
            )
        )
    return tuple(
        MessageEntry(
            message_id=m["id"],
            channel=m["channel"],
            kind=m["kind"],
            recipient=m["recipient"],
            status=m["status"],
            delivery_status=m["delivery_status"],
            attempts=m["attempts"],
            next_attempt_at=m["next_attempt_at"],
            created_at=m["created_at"],
            sent_at=m["sent_at"],
            last_error=m["last_error"],
            events=tuple(events.get(m["id"], ())),
        )
        for m in messages
    )


async def _audit(
    tenant_id: int, invoice_id: int, collectors_by_stop: dict[int, str]
) -> tuple[AuditEntry, ...]:
    rows = (
        await AuditLog.filter(tenant_id=tenant_id, object_type="invoice", object_id=invoice_id)
        .order_by("at", "id")
        .values("at", "actor_kind", "action", "telegram_user_id", "details", "actor_staff__name")
    )
    entries = []
    for r in rows:
        details = r["details"] if isinstance(r["details"], dict) else {}
        stop_id = details.get("assignment_id")
        entries.append(
            AuditEntry(
                at=r["at"],
                actor_kind=r["actor_kind"],
                actor_name=r["actor_staff__name"],
                action=r["action"],
                telegram_user_id=r["telegram_user_id"],
                collector_name=collectors_by_stop.get(stop_id) if stop_id else None,
                details=details,
            )
        )
    return tuple(entries)
