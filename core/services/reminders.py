"""Texts to subscribers who owe: composing them, queueing them, and the office's bulk reminder.

The daily run (`core.services.dunning`) and the office's `/remind` both end here:
`compose` fills a template of `core.documents.notices` in the subscriber's language, and
`queue_notices` writes the messages to the outbox in one statement per batch. The outbox
worker sends them as WhatsApp texts (`payload["text"]`).

Invariants:
- One message per invoice, kind and day: the dedupe key is `<kind>:<invoice id>:<day>`
  (UNIQUE per tenant), so a day run twice, two processes running it at once, or a bulk
  reminder on a day the scheduler already reminded, queue nothing new.
- A number that cannot have WhatsApp (a landline) is stored as `refused` with the reason,
  as `outbox.queue_message` does, so the office sees why nothing went out.
- Reminders are never sent for an invoice whose service request is still pending, nor to
  a subscriber without a number; a reminder moves the invoice's next scheduled reminder to
  one interval after it, as the daily run does.
- The bulk reminder is for admins, and reseller staff within their reseller; it reads and
  writes in batches of `BATCH` invoices (bounded memory), each batch one transaction, and
  writes an audit row per reminded invoice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from core.db.bulk import as_date, in_ids, insert_rows
from core.db.models import AuditLog, OutboxMessage, Staff, Tenant
from core.db.sql import fetch
from core.documents.notices import REMINDER, NoticeFacts, notice_text
from core.documents.words import caption_language
from core.domain.dates import local_today, utcnow
from core.domain.delivery import whatsapp_refusal
from core.domain.dunning import next_reminder_on
from core.domain.status import InvoiceStatus, RequestStatus, Role, SubscriberStatus
from core.errors import InvalidInput, PermissionDenied
from core.services.access import SYSTEM, Origin, require_active
from core.services.outbox import PENDING, REFUSED, WHATSAPP

BATCH = 1000
BULK_STATUSES = (InvoiceStatus.UNPAID.value, InvoiceStatus.PARTIAL.value)

# --- composing and queueing ---------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """The tenant's side of every text: its name, money and default language."""

    tenant_id: int
    isp_name: str
    currency: str
    country: str
    locale: str

    @classmethod
    def of(cls, tenant: Tenant) -> Sender:
        return cls(tenant.id, tenant.name, tenant.currency, tenant.country, tenant.locale)


@dataclass(frozen=True)
class Notice:
    """One text to queue for one invoice."""

    kind: str
    invoice_id: int
    recipient: str
    text: str


@lru_cache(maxsize=64)
def _language(preferred: str | None, locale: str, kind: str) -> str:
    return caption_language(preferred, locale, kind=kind)


def compose(
    kind: str,
    sender: Sender,
    *,
    today: date,
    invoice_id: int,
    number: str,
    due_minor: int,
    due_date: date,
    name: str,
    phone: str,
    language: str | None,
    suspension_on: date | None = None,
    deletion_on: date | None = None,
) -> Notice:
    """The `kind` text for one invoice, in the subscriber's language (else the tenant's)."""
    facts = NoticeFacts(
        isp_name=sender.isp_name,
        subscriber_name=name,
        invoice_number=number,
        due_minor=due_minor,
        currency=sender.currency,
        country=sender.country,
        due_date=due_date,
        today=today,
        language=_language(language, sender.locale, kind),
        suspension_on=suspension_on,
        deletion_on=deletion_on,
    )
    return Notice(kind, invoice_id, phone, notice_text(kind, facts))


def dedupe_key(kind: str, invoice_id: int, day: date) -> str:
    """One message of a kind per invoice per day."""
    return f"{kind}:{invoice_id}:{day.isoformat()}"


@lru_cache(maxsize=16_384)
def _refusal(phone: str) -> str | None:
    # libphonenumber costs ~25 µs a number; a reminded subscriber is reminded again in days.
    return whatsapp_refusal(phone)


@dataclass(frozen=True)
class Queued:
    """A message written by `queue_notices` (a duplicate of the day is not)."""

    invoice_id: int
    kind: str
    refused: bool


async def queue_notices(
    conn: BaseDBAsyncClient,
    *,
    tenant_id: int,
    day: date,
    notices: Sequence[Notice],
    now: datetime,
) -> list[Queued]:
    """Write `notices` to the outbox in the caller's transaction; the day's duplicates are
    skipped. Returns the messages written (refused ones included)."""
    rows = []
    for n in notices:
        refusal = _refusal(n.recipient)
        rows.append(
            {
                "tenant_id": tenant_id,
                "channel": WHATSAPP,
                "kind": n.kind,
                "recipient": n.recipient,
                "invoice_id": n.invoice_id,
                "payload": {"text": n.text},
                "dedupe_key": dedupe_key(n.kind, n.invoice_id, day),
                "status": REFUSED if refusal else PENDING,
                "last_error": refusal,
                "created_at": now,
            }
        )
    written = await insert_rows(
        conn, OutboxMessage, rows, returning=("invoice_id", "kind", "status")
    )
    return [Queued(r["invoice_id"], r["kind"], r["status"] == REFUSED) for r in written]


async def move_next_reminders(
    conn: BaseDBAsyncClient, today: date, reminded: Sequence[tuple[int, int]]
) -> list[int]:
    """Move each (invoice id, reminder days) reminded today to its next reminder day.

    One conditional UPDATE per interval: only an invoice still collectible whose reminder
    was due (or never scheduled) moves, so a second run of the day moves nothing. Returns
    the ids moved.
    """
    by_interval: dict[int, list[int]] = {}
    for invoice_id, days in reminded:
        by_interval.setdefault(days, []).append(invoice_id)
    moved: list[int] = []
    for days, ids in sorted(by_interval.items()):
        condition, params = in_ids(conn, "id", ids)
        rows = await fetch(
            f"UPDATE invoice SET next_reminder_on = ? WHERE {condition}"
            " AND status IN ('unpaid', 'partial')"
            " AND (next_reminder_on IS NULL OR next_reminder_on <= ?) RETURNING id",
            [next_reminder_on(today, days), *params, today],
            conn,
        )
        moved.extend(r["id"] for r in rows)
    return moved


def audit_row(
    tenant_id: int,
    *,
    actor: Staff | None,
    action: str,
    object_type: str,
    object_id: int,
    origin: Origin,
    at: datetime,
    details: dict[str, Any],
) -> dict[str, Any]:
    """An audit-log row, as `audit.write_audit` would write it, for `write_audit_rows`."""
    return {
        "tenant_id": tenant_id,
        "actor_kind": "staff" if actor is not None else origin.channel,
        "actor_staff_id": actor.id if actor is not None else None,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "at": at,
        "telegram_user_id": origin.telegram_user_id,
        "telegram_chat_id": origin.telegram_chat_id,
        "telegram_update_id": origin.telegram_update_id,
        "remote_addr": origin.remote_addr,
        "user_agent": origin.user_agent[:255],
        "details": details,
    }


async def write_audit_rows(conn: BaseDBAsyncClient, rows: Sequence[dict[str, Any]]) -> None:
    """Append audit rows in one statement (the caller's transaction)."""
    await insert_rows(conn, AuditLog, rows)


# --- the office's bulk reminder -------------------------------------------------------------


@dataclass(frozen=True)
class BulkFilter:
    """Which open invoices a bulk reminder is for (all unpaid and partly paid by default)."""

    status: str | None = None
    area: str | None = None
    overdue_only: bool = False


@dataclass(frozen=True)
class BulkReminderPreview:
    """What `send_bulk_reminder` would do now: `count` reminders for `due_minor` in all,
    and the invoices it would leave out, by reason."""

    filters: BulkFilter
    count: int
    due_minor: int
    pending_request: int
    no_phone: int
    reminded_today: int

    @property
    def skipped(self) -> int:
        return self.pending_request + self.no_phone + self.reminded_today


@dataclass(frozen=True)
class BulkReminderResult:
    """What a bulk reminder did: reminders queued, refused (a number that cannot have
    WhatsApp) and invoices skipped (a pending request, no number, reminded earlier today)."""

    queued: int
    refused: int
    skipped: int


def _check_office(actor: Staff) -> None:
    require_active(actor)
    if actor.role not in (Role.ADMIN, Role.RESELLER):
        raise PermissionDenied("Only the office can send reminders.", code="reminders_office_only")


def _filter(status: str | None, area: str | None, overdue_only: bool) -> BulkFilter:
    status = (status or "").strip().lower() or None
    if status is not None and status not in BULK_STATUSES:
        raise InvalidInput(
            "Reminders go to unpaid or partly paid invoices: status is unpaid or partial.",
            code="reminders_bad_status",
        )
    return BulkFilter(status, (area or "").strip() or None, overdue_only)


def _where(actor: Staff, filters: BulkFilter, today: date) -> tuple[str, list[Any]]:
    clauses = ["i.tenant_id = ?", "i.status IN ('unpaid', 'partial')"]
    params: list[Any] = [actor.tenant_id]
    if filters.status:
        clauses.append("i.status = ?")
        params.append(filters.status)
    if filters.area:
        clauses.append("UPPER(s.area) = UPPER(?)")
        params.append(filters.area)
    if filters.overdue_only:
        clauses.append("i.due_date < ?")
        params.append(today)
    if actor.role != Role.ADMIN:
        clauses.append("s.reseller_id = ?")
        params.append(actor.reseller_id)
    return " AND ".join(clauses), params


# Why an invoice the filter matches gets no reminder (first reason wins), or 'send'. The
# parameter is ':<today>': 'reminder:<id>:<today>' is the key of a reminder queued today.
_OUTCOME = """
CASE WHEN i.request_status = 'pending' THEN 'pending_request'
     WHEN s.phone IS NULL OR s.phone = '' THEN 'no_phone'
     WHEN EXISTS (SELECT 1 FROM outbox_message o WHERE o.tenant_id = i.tenant_id
                  AND o.dedupe_key = 'reminder:' || i.id || ?) THEN 'reminded_today'
     ELSE 'send' END
"""


async def preview_bulk_reminder(
    actor: Staff,
    *,
    status: str | None = None,
    area: str | None = None,
    overdue_only: bool = False,
    now: datetime | None = None,
) -> BulkReminderPreview:
    """How many open invoices a bulk reminder would reach, in one aggregate query.

    Raises:
        PermissionDenied: a collector (code `reminders_office_only`).
        InvalidInput: a status other than unpaid or partial (code `reminders_bad_status`).
    """
    _check_office(actor)
    filters = _filter(status, area, overdue_only)
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)
    where, params = _where(actor, filters, today)
    rows = await fetch(
        f"SELECT {_OUTCOME} AS outcome, COUNT(*) AS invoices,"
        " SUM(i.amount_minor - i.paid_minor) AS due"
        " FROM invoice i JOIN subscriber s ON s.id = i.subscriber_id"
        f" WHERE {where} GROUP BY 1",
        [f":{today.isoformat()}", *params],
    )
    counts = {r["outcome"]: (int(r["invoices"]), int(r["due"] or 0)) for r in rows}
    send, due = counts.get("send", (0, 0))
    return BulkReminderPreview(
        filters=filters,
        count=send,
        due_minor=due,
        pending_request=counts.get("pending_request", (0, 0))[0],
        no_phone=counts.get("no_phone", (0, 0))[0],
        reminded_today=counts.get("reminded_today", (0, 0))[0],
    )


_BULK_SQL = """
SELECT i.id, i.number, i.amount_minor, i.paid_minor, i.due_date, i.reminder_days,
       i.request_status, i.suspension_on, i.deletion_on,
       s.name, s.phone, s.language, s.status AS subscriber_status,
       COALESCE(c.collection_threshold_minor, 0) AS threshold_minor
FROM invoice i
JOIN subscriber s ON s.id = i.subscriber_id
LEFT JOIN customer_class c ON c.id = s.customer_class_id
WHERE {where} AND i.id > ?
ORDER BY i.id
LIMIT ?
"""


async def send_bulk_reminder(
    actor: Staff,
    *,
    status: str | None = None,
    area: str | None = None,
    overdue_only: bool = False,
    origin: Origin = SYSTEM,
    now: datetime | None = None,
) -> BulkReminderResult:
    """Queue a reminder for every open invoice the filter matches, now.

    Each reminded invoice's next scheduled reminder moves to one interval from today (the
    interval restarts, as after a scheduled reminder), and gets an audit row.

    Raises:
        PermissionDenied: a collector (code `reminders_office_only`).
        InvalidInput: a status other than unpaid or partial (code `reminders_bad_status`).
    """
    _check_office(actor)
    filters = _filter(status, area, overdue_only)
    tenant = await Tenant.get(id=actor.tenant_id)
    sender = Sender.of(tenant)
    now = now or utcnow()
    today = local_today(now, tenant.timezone)
    where, params = _where(actor, filters, today)
    sql = _BULK_SQL.format(where=where)
    queued = refused = skipped = 0
    last_id = 0
    while True:
        async with in_transaction() as conn:
            rows = await fetch(sql, [*params, last_id, BATCH], conn)
            if not rows:
                break
            last_id = rows[-1]["id"]
            notices: list[Notice] = []
            intervals: dict[int, int | None] = {}
            for r in rows:
                if r["request_status"] == RequestStatus.PENDING or not r["phone"]:
                    skipped += 1
                    continue
                notices.append(_bulk_notice(sender, today, r))
                intervals[r["id"]] = r["reminder_days"]
            written = await queue_notices(
                conn, tenant_id=tenant.id, day=today, notices=notices, now=now
            )
            skipped += len(notices) - len(written)
            refused += sum(1 for w in written if w.refused)
            queued += sum(1 for w in written if not w.refused)
            reminded = [w.invoice_id for w in written]
            await move_next_reminders(
                conn,
                today,
                [(i, days) for i in reminded if (days := intervals[i])],
            )
            await write_audit_rows(
                conn,
                [
                    audit_row(
                        tenant.id,
                        actor=actor,
                        action="invoice.remind",
                        object_type="invoice",
                        object_id=w.invoice_id,
                        origin=origin,
                        at=now,
                        details={"kind": REMINDER, "bulk": True, "refused": w.refused},
                    )
                    for w in written
                ],
            )
        if len(rows) < BATCH:
            break
    return BulkReminderResult(queued=queued, refused=refused, skipped=skipped)


def _bulk_notice(sender: Sender, today: date, r: dict[str, Any]) -> Notice:
    due_minor = int(r["amount_minor"]) - int(r["paid_minor"])
    suspension_on, deletion_on = dates_ahead(
        today,
        suspension_on=as_date(r["suspension_on"]),
        deletion_on=as_date(r["deletion_on"]),
        subscriber_status=r["subscriber_status"],
        over_threshold=due_minor > int(r["threshold_minor"]),
    )
    due_date = as_date(r["due_date"])
    assert due_date is not None
    return compose(
        REMINDER,
        sender,
        today=today,
        invoice_id=r["id"],
        number=r["number"],
        due_minor=due_minor,
        due_date=due_date,
        name=r["name"],
        phone=r["phone"],
        language=r["language"],
        suspension_on=suspension_on,
        deletion_on=deletion_on,
    )


def dates_ahead(
    today: date,
    *,
    suspension_on: date | None,
    deletion_on: date | None,
    subscriber_status: str,
    over_threshold: bool,
) -> tuple[date | None, date | None]:
    """The suspension and deletion dates a reminder names: those still ahead that the rules
    will act on (no suspension under the collection threshold or of a suspended subscriber,
    nothing for a terminated one)."""
    if subscriber_status == SubscriberStatus.TERMINATED:
        return None, None
    suspension = (
        suspension_on
        if suspension_on is not None
        and suspension_on > today
        and over_threshold
        and subscriber_status == SubscriberStatus.ACTIVE
        else None
    )
    deletion = deletion_on if deletion_on is not None and deletion_on > today else None
    return suspension, deletion
