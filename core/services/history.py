"""A collector's recent closed stops: what happened at each door, newest first, in one query.

A collector sees only their own stops: the query is bound to the actor's id and tenant,
whatever else is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from core.db.models import Staff
from core.db.sql import fetch
from core.domain.status import AssignmentStatus, FailureReason, PaymentMethod
from core.services.access import require_active

MAX_LIMIT = 100


@dataclass(frozen=True)
class HistoryEntry:
    """One closed stop: collected (amount, method), failed (reason, note) or removed."""

    assignment_id: int
    day: date
    subscriber_name: str
    invoice_number: str
    outcome: AssignmentStatus
    amount_minor: int
    method: PaymentMethod | None
    failure_reason: FailureReason | None
    failure_note: str


# Closed stops only; the payment is joined for its method (failed and removed have none).
HISTORY_SQL = """
SELECT a.id, a.status, a.closed_on, a.collected_minor, a.failure_reason, a.failure_note,
       i.number, s.name, p.method
FROM assignment a
JOIN invoice i ON i.id = a.invoice_id
JOIN subscriber s ON s.id = i.subscriber_id
LEFT JOIN payment p ON p.id = a.payment_id
WHERE a.tenant_id = ? AND a.collector_id = ? AND a.status <> 'assigned'
ORDER BY a.closed_at DESC, a.id DESC
LIMIT ?
"""


async def collector_history(actor: Staff, *, limit: int = 10) -> tuple[HistoryEntry, ...]:
    """The last `limit` stops `actor` closed (or had closed for them), newest first."""
    require_active(actor)
    limit = max(1, min(limit, MAX_LIMIT))
    rows = await fetch(HISTORY_SQL, [actor.tenant_id, actor.id, limit])
    return tuple(
        HistoryEntry(
            assignment_id=r["id"],
            day=_as_date(r["closed_on"]),
            subscriber_name=r["name"],
            invoice_number=r["number"],
            outcome=AssignmentStatus(r["status"]),
            amount_minor=int(r["collected_minor"]),
            method=PaymentMethod(r["method"]) if r["method"] else None,
            failure_reason=FailureReason(r["failure_reason"]) if r["failure_reason"] else None,
            failure_note=r["failure_note"] or "",
        )
        for r in rows
    )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
