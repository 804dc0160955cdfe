"""The audit trail of one collector, subscriber or invoice over a period, newest first.

`audit_trail` answers "every action the collector took, with when and through which
channel" (and the same for a subscriber or an invoice) from the append-only audit log.
Which rows belong to a subject:

- a collector: rows they acted in (`actor_staff_id`), and rows about them
  (`object_type = 'staff'`: invited, edited, reset, removed, paid commission);
- a subscriber: rows about them, and rows about any of their invoices (one subquery);
- an invoice: rows about it.

Invariants: read-only; scoped to the actor's tenant and, for reseller staff, to their own
reseller's collectors and subscribers. A subject outside the scope is "not found", worded
exactly like one that does not exist, so nothing leaks. The period is the tenant's
calendar days, both ends included. Pages are keyset-paged on the row id (`before_id`), so
a row written while someone pages shifts nothing. A page costs the subject's lookup (which
also reads the tenant's time zone; a collector's takes a second statement for it) and one
statement for the rows, whose names come from joins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.db.models import Staff, Tenant
from core.db.sql import fetch
from core.domain.dates import local_day_bounds, local_today, utcnow
from core.errors import InvalidInput
from core.services.access import (
    COLLECTORS_VIEW,
    invoice_in_scope,
    require_permission,
    subscriber_in_scope,
)
from core.services.collectors import resolve_collector
from core.services.reports import MAX_PERIOD_DAYS

DEFAULT_DAYS = 30  # the period when none is given: the last 30 days, today included
DEFAULT_LIMIT = 30
MAX_LIMIT = 100
MAX_ROW_ID = 2**31 - 1  # ids are 32-bit: a larger `before_id` means "from the newest"
SUMMARY_LENGTH = 80  # characters of `TrailEntry.summary`, an ellipsis included

# Detail keys a summary leaves out: ids mean nothing to a reader, the number is the entry's
# label already, and the amount has its own field (shown as money).
_UNSUMMARISED = frozenset({"id", "number", "amount_minor"})


class TrailSubject(StrEnum):
    COLLECTOR = "collector"
    SUBSCRIBER = "subscriber"
    INVOICE = "invoice"


@dataclass(frozen=True)
class TrailEntry:
    """One audit row, with the names a reader needs joined in."""

    id: int
    at: datetime
    actor_kind: str  # staff / system / webhook / cli
    actor_name: str | None  # None: not a person (the system, a webhook, the command line)
    action: str  # "assignment.collect", "staff.edit", ...
    object_type: str  # "invoice", "subscriber", "staff", ...
    object_id: int | None
    object_label: str  # the invoice number, the subscriber's username, the staff name; or ""
    telegram_user_id: int | None
    remote_addr: str
    amount_minor: int | None  # the money the action moved, if it says
    summary: str  # the rest of the details, short and language-neutral ("method: cash")
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditTrail:
    subject: TrailSubject
    subject_id: int
    subject_ref: str  # what finds the subject again: "#12", the username, the number
    subject_name: str  # the collector's name; the subscriber's name (the invoice's, too)
    start: date
    end: date
    entries: tuple[TrailEntry, ...]  # newest first
    more: bool  # older entries of the period exist: ask again with `before_id`

    @property
    def next_before_id(self) -> int | None:
        """The `before_id` of the next (older) page; None when this is the last."""
        return self.entries[-1].id if self.more and self.entries else None


@dataclass(frozen=True)
class _Subject:
    kind: TrailSubject
    id: int
    ref: str
    name: str
    timezone: str


_TRAIL_SQL = """
SELECT a.id, a.at, a.actor_kind, a.action, a.object_type, a.object_id, a.telegram_user_id,
       a.remote_addr, a.details, act.name AS actor_name, inv.number AS invoice_number,
       sub.username AS subscriber_username, obj.name AS staff_name
FROM {rows}
LEFT JOIN staff act ON act.id = a.actor_staff_id
LEFT JOIN invoice inv ON a.object_type = 'invoice' AND inv.id = a.object_id
LEFT JOIN subscriber sub ON a.object_type = 'subscriber' AND sub.id = a.object_id
LEFT JOIN staff obj ON a.object_type = 'staff' AND obj.id = a.object_id
WHERE a.tenant_id = ? AND a.at >= ? AND a.at < ?
  AND (CAST(? AS INTEGER) IS NULL OR a.id < ?)
  AND {subject}
ORDER BY a.id DESC
LIMIT ?
"""

# Each subject's rows: `rows` is the FROM clause (its parameters come first), `subject` the
# condition (its parameters follow the period's and the page's).
_SUBJECT_SQL = {
    # What they did, and what was done to them.
    TrailSubject.COLLECTOR: _TRAIL_SQL.format(
        rows="audit_log a",
        subject="(a.actor_staff_id = ? OR (a.object_type = 'staff' AND a.object_id = ?))",
    ),
    # Them and each of their invoices, as a list of objects joined to the log: every object
    # is an index lookup, where `OR object_id IN (...)` would read the whole log.
    TrailSubject.SUBSCRIBER: _TRAIL_SQL.format(
        rows="""(
    SELECT 'subscriber' AS kind, CAST(? AS INTEGER) AS ref
    UNION ALL
    SELECT 'invoice', i.id FROM invoice i WHERE i.tenant_id = ? AND i.subscriber_id = ?
) o
JOIN audit_log a ON a.object_type = o.kind AND a.object_id = o.ref""",
        subject="1 = 1",
    ),
    TrailSubject.INVOICE: _TRAIL_SQL.format(
        rows="audit_log a", subject="a.object_type = 'invoice' AND a.object_id = ?"
    ),
}


async def audit_trail(
    actor: Staff,
    *,
    collector: str | None = None,
    subscriber: str | None = None,
    invoice: str | None = None,
    start: date | None = None,
    end: date | None = None,
    before_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> AuditTrail:
    """The audit rows of one subject in a period of the tenant's days, newest first.

    Needs `collectors.view` (admins always); collectors are refused.

    Args:
        collector: a collector's id (`12`, `#12`) or name, as `resolve_collector` takes it.
        subscriber: a subscriber's username (exact, else in any case if only one matches).
        invoice: an invoice number, in any case.
        start, end: the first and last day (tenant's calendar, both included). Without
            both: the 30 days up to `end`, or from `start` up to today.
        before_id: only rows older than this one (the previous page's `next_before_id`).
        limit: rows per page, 1 to 100.

    Raises:
        InvalidInput: not exactly one subject (`audit_one_subject`); a period that starts
            after it ends (`period_reversed`) or is longer than 366 days (`period_too_long`).
        PermissionDenied: the actor may not see collectors.
        NotFound: the subject is not in the actor's tenant and scope
            (`collector_not_found`, `subscriber_not_found`, `invoice_not_found`).
    """
    require_permission(actor, COLLECTORS_VIEW)
    given = [
        (kind, ref)
        for kind, ref in (
            (TrailSubject.COLLECTOR, collector),
            (TrailSubject.SUBSCRIBER, subscriber),
            (TrailSubject.INVOICE, invoice),
        )
        if ref is not None
    ]
    if len(given) != 1:
        raise InvalidInput("Name one collector, subscriber or invoice.", code="audit_one_subject")
    found = await _resolve(actor, *given[0])
    start, end = _period(start, end, local_today(now or utcnow(), found.timezone))
    start_at, _ = local_day_bounds(start, found.timezone)
    _, end_at = local_day_bounds(end, found.timezone)
    limit = max(1, min(limit, MAX_LIMIT))
    if before_id is not None:
        before_id = min(before_id, MAX_ROW_ID)  # button data is typed by anyone
    rows_params, subject_params = {
        TrailSubject.COLLECTOR: ([], [found.id, found.id]),
        TrailSubject.SUBSCRIBER: ([found.id, actor.tenant_id, found.id], []),
        TrailSubject.INVOICE: ([], [found.id]),
    }[found.kind]
    page = [actor.tenant_id, start_at, end_at, before_id, before_id]
    rows = await fetch(_SUBJECT_SQL[found.kind], [*rows_params, *page, *subject_params, limit + 1])
    return AuditTrail(
        subject=found.kind,
        subject_id=found.id,
        subject_ref=found.ref,
        subject_name=found.name,
        start=start,
        end=end,
        entries=tuple(_entry(r) for r in rows[:limit]),
        more=len(rows) > limit,
    )


def _period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    if end is None:
        # From a day still to come: that day alone (empty), rather than a reversed period.
        end = today if start is None else max(start, today)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput(
            "The period starts after it ends; swap the dates.", code="period_reversed"
        )
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidInput("Ask for at most a year at a time.", code="period_too_long")
    return start, end


async def _resolve(actor: Staff, kind: TrailSubject, ref: str) -> _Subject:
    if kind == TrailSubject.COLLECTOR:
        person = await resolve_collector(actor, ref, permission=COLLECTORS_VIEW)
        tenant = await Tenant.get(id=actor.tenant_id)
        return _Subject(kind, person.id, f"#{person.id}", person.name, tenant.timezone)
    if kind == TrailSubject.SUBSCRIBER:
        found = await subscriber_in_scope(actor, ref)
        tenant = await Tenant.get(id=actor.tenant_id)
        return _Subject(kind, found.id, found.username, found.name, tenant.timezone)
    row = await invoice_in_scope(
        actor, ref, "id", "number", "subscriber__name", "tenant__timezone"
    )
    return _Subject(
        kind, row["id"], row["number"], row["subscriber__name"], row["tenant__timezone"]
    )


def _entry(r: dict[str, Any]) -> TrailEntry:
    details = _as_dict(r["details"])
    amount = details.get("amount_minor")
    return TrailEntry(
        id=int(r["id"]),
        at=_as_aware(r["at"]),
        actor_kind=r["actor_kind"],
        actor_name=r["actor_name"],
        action=r["action"],
        object_type=r["object_type"],
        object_id=r["object_id"],
        object_label=r["invoice_number"] or r["subscriber_username"] or r["staff_name"] or "",
        telegram_user_id=r["telegram_user_id"],
        remote_addr=r["remote_addr"] or "",
        amount_minor=amount if type(amount) is int else None,
        summary=summarise_details(details),
        details=details,
    )


def summarise_details(details: dict[str, Any], length: int = SUMMARY_LENGTH) -> str:
    """The details worth reading, in one short line: `key: value`, changes as `old → new`.

    Keys in alphabetical order (the same on both databases); ids, the invoice number, the
    amount and empty values are left out; a summary longer than `length` is cut with an
    ellipsis.
    """
    parts: list[str] = []
    old, new = details.get("old"), details.get("new")
    if isinstance(old, dict) and isinstance(new, dict):
        parts.extend(f"{key}: {_text(old.get(key))} → {_text(new[key])}" for key in sorted(new))
    for key, value in sorted(details.items()):  # PostgreSQL's JSONB keeps no key order
        if key in _UNSUMMARISED or key.endswith("_id") or isinstance(value, dict):
            continue
        if value is None or value is False or value in ("", []):
            continue
        parts.append(key if value is True else f"{key}: {_text(value)}")
    text = ", ".join(parts)
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    return str(value)


def _as_dict(value: Any) -> dict[str, Any]:
    """A JSON column read raw: SQLite (and asyncpg without a codec) give text."""
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    return value if isinstance(value, dict) else {}


def _as_aware(value: Any) -> datetime:
    """A timestamp read raw: SQLite gives ISO text; stored values are UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["AuditTrail", "TrailEntry", "TrailSubject", "audit_trail", "summarise_details"]
