"""The payments log: every payment (at the door, at the office, by gateway), filtered,
searched, paged and exported.

One SQL statement per page, built from fixed fragments for exactly the filters given (so
PostgreSQL plans each shape for its real predicates, and no user text ever becomes SQL).
Pages are keyset pages on (received_at, id), newest first: the next page starts after the
last row shown, the previous one before the first, so a page costs the same on the first
and on the thousandth page, and rows posted meanwhile never shift what "next" means.

An export walks the same query in keyset batches, so its memory does not grow with the
number of rows; the file is written by `core/documents/exports.py` in a worker thread.

Reversed payments stay in the log, marked with when they were reversed; totals leave them
out. Reseller staff see the payments of their own subscribers only.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.db.models import Staff, Tenant
from core.db.sql import fetch
from core.documents.exports import FORMATS, XLSX_MAX_ROWS, ExportFile, write_export
from core.documents.receipt import receipt_number
from core.domain.dates import local_day_bounds, local_today, utcnow
from core.domain.status import PaymentMethod, Role
from core.errors import InvalidInput, NotFound
from core.services.access import require_office

PAGE_SIZE = 10
EXPORT_BATCH = 5_000
MAX_SEARCH = 60
MAX_PERIOD_DAYS = 3_660  # ten years: an export of "everything" still names its bounds
DEFAULT_DAYS = 30

_SELECT = """
SELECT p.id, p.received_at, p.amount_minor, p.method, p.reference, p.note,
       s.name AS customer, s.username, i.number AS invoice,
       o.name AS operator, c.name AS collector,
       r.reversed_at, r.reason AS reversal_reason,
       CASE WHEN p.receipt_file_id IS NULL THEN 0 ELSE 1 END AS photo
FROM payment p
JOIN subscriber s ON s.id = p.subscriber_id
JOIN invoice i ON i.id = p.invoice_id
LEFT JOIN staff o ON o.id = p.operator_id
LEFT JOIN staff c ON c.id = p.collector_id
LEFT JOIN payment_reversal r ON r.payment_id = p.id
"""

_TOTALS = """
SELECT COUNT(*) AS n,
       COALESCE(SUM(CASE WHEN r.id IS NULL THEN p.amount_minor ELSE 0 END), 0) AS total,
       COALESCE(SUM(CASE WHEN r.id IS NULL THEN 0 ELSE 1 END), 0) AS reversed
FROM payment p
JOIN subscriber s ON s.id = p.subscriber_id
LEFT JOIN payment_reversal r ON r.payment_id = p.id
"""


@dataclass(frozen=True)
class PaymentFilter:
    """What the log shows. Days are the tenant's local days, inclusive."""

    start: date | None = None
    end: date | None = None
    operator_id: int | None = None  # who took it: the collector at the door, or the office
    method: PaymentMethod | None = None
    search: str | None = None  # customer name, username or transaction reference
    # Set on the filters a page returns: its period resolved (both days) in the company's
    # time zone. The pages after the first reuse it, so "older" keeps the period the list
    # was opened with (past midnight too), and the company is not read again per page.
    timezone: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "s": self.start.isoformat() if self.start else None,
            "e": self.end.isoformat() if self.end else None,
            "o": self.operator_id,
            "m": self.method.value if self.method else None,
            "q": self.search,
            "z": self.timezone,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PaymentFilter:
        return cls(
            start=date.fromisoformat(data["s"]) if data.get("s") else None,
            end=date.fromisoformat(data["e"]) if data.get("e") else None,
            operator_id=data.get("o"),
            method=PaymentMethod(data["m"]) if data.get("m") else None,
            search=data.get("q"),
            timezone=data.get("z"),
        )

    @property
    def resolved(self) -> bool:
        return self.start is not None and self.end is not None and self.timezone is not None


@dataclass(frozen=True)
class LoggedPayment:
    id: int
    received_at: datetime
    amount_minor: int
    method: PaymentMethod
    customer: str
    username: str
    invoice: str
    taken_by: str | None  # the operator (or collector) name; None: a gateway
    collector: str | None
    reference: str
    note: str
    photo: bool
    reversed_at: datetime | None
    reversal_reason: str | None

    @property
    def receipt_number(self) -> str:
        return receipt_number(self.id)


@dataclass(frozen=True)
class PaymentsPage:
    start: date
    end: date
    rows: tuple[LoggedPayment, ...]
    has_newer: bool
    has_older: bool
    # Over the whole filtered set, on the first page only (None on later pages).
    count: int | None = None
    total_minor: int | None = None
    reversed_count: int | None = None
    filters: PaymentFilter = field(default_factory=PaymentFilter)


@dataclass(frozen=True)
class _Query:
    where: str
    params: list[Any]


def _bounds(tenant: Tenant, filters: PaymentFilter, now: datetime | None) -> tuple[date, date]:
    today = local_today(now or utcnow(), tenant.timezone)
    end = filters.end or today
    start = filters.start or (end - timedelta(days=DEFAULT_DAYS - 1))
    if start > end:
        raise InvalidInput(
            "The period starts after it ends; swap the dates.", code="period_reversed"
        )
    if (end - start).days >= MAX_PERIOD_DAYS:
        raise InvalidInput("Ask for at most ten years at a time.", code="log_period_too_long")
    return start, end


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query(actor: Staff, filters: PaymentFilter, start: date, end: date, timezone: str) -> _Query:
    start_at, _ = local_day_bounds(start, timezone)
    _, end_at = local_day_bounds(end, timezone)
    clauses = ["p.tenant_id = ?", "p.received_at >= ?", "p.received_at < ?"]
    params: list[Any] = [actor.tenant_id, start_at, end_at]
    if actor.role == Role.RESELLER:
        clauses.append("s.reseller_id = ?")
        params.append(actor.reseller_id)
    if filters.operator_id is not None:
        clauses.append("(p.operator_id = ? OR p.collector_id = ?)")
        params += [filters.operator_id, filters.operator_id]
    if filters.method is not None:
        clauses.append("p.method = ?")
        params.append(filters.method.value)
    if filters.search:
        like = f"%{_escape_like(filters.search.lower())}%"
        clauses.append(
            "(LOWER(s.name) LIKE ? ESCAPE '\\' OR LOWER(s.username) LIKE ? ESCAPE '\\'"
            " OR LOWER(p.reference) LIKE ? ESCAPE '\\')"
        )
        params += [like, like, like]
    return _Query(" AND ".join(clauses), params)


def check_search(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_SEARCH:
        raise InvalidInput(
            f"Search for at most {MAX_SEARCH} characters.", code="search_too_long", max=MAX_SEARCH
        )
    return text


async def payments_page(
    actor: Staff,
    filters: PaymentFilter,
    *,
    older_than: int | None = None,
    newer_than: int | None = None,
    size: int = PAGE_SIZE,
    now: datetime | None = None,
) -> PaymentsPage:
    """A page of the filtered log, newest first.

    `older_than` / `newer_than` is a payment id shown on the current page (its last or
    first row): the page after or before it. Neither: the first page, with totals. Pass
    the returned `page.filters` (the period resolved) for the pages after the first.
    """
    require_office(actor)
    if not filters.resolved:
        tenant = await Tenant.get(id=actor.tenant_id)
        start, end = _bounds(tenant, filters, now)
        filters = replace(filters, start=start, end=end, timezone=tenant.timezone)
    assert filters.start and filters.end and filters.timezone
    start, end = filters.start, filters.end
    query = _query(actor, filters, start, end, filters.timezone)
    where, params = query.where, list(query.params)
    anchor = older_than if older_than is not None else newer_than
    if anchor is not None:
        op = "<" if older_than is not None else ">"
        where += (
            f" AND (p.received_at, p.id) {op}"
            " (SELECT a.received_at, a.id FROM payment a WHERE a.id = ? AND a.tenant_id = ?)"
        )
        params += [anchor, actor.tenant_id]
    order = "ASC" if newer_than is not None else "DESC"
    sql = f"{_SELECT} WHERE {where} ORDER BY p.received_at {order}, p.id {order} LIMIT ?"
    rows = await fetch(sql, [*params, size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if newer_than is not None:
        rows.reverse()
    totals: dict[str, Any] | None = None
    if anchor is None:
        totals = (await fetch(f"{_TOTALS} WHERE {query.where}", query.params))[0]
    return PaymentsPage(
        start=start,
        end=end,
        rows=tuple(_logged(r) for r in rows),
        has_newer=more if newer_than is not None else older_than is not None,
        has_older=True if newer_than is not None else more,
        count=int(totals["n"]) if totals else None,
        total_minor=int(totals["total"]) if totals else None,
        reversed_count=int(totals["reversed"]) if totals else None,
        filters=filters,
    )


def _batches(query: _Query, size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """The filtered set as fetched rows, newest first, in keyset batches: memory holds one
    batch, however many rows match."""

    async def batches() -> AsyncIterator[list[dict[str, Any]]]:
        last: tuple[Any, int] | None = None
        while True:
            where, params = query.where, list(query.params)
            if last is not None:
                where += " AND (p.received_at, p.id) < (?, ?)"
                params += [last[0], last[1]]
            rows = await fetch(
                f"{_SELECT} WHERE {where} ORDER BY p.received_at DESC, p.id DESC LIMIT ?",
                [*params, size],
            )
            if not rows:
                return
            last = (rows[-1]["received_at"], rows[-1]["id"])
            yield rows
            if len(rows) < size:
                return

    return batches()


async def resolve_operator(actor: Staff, ref: str) -> Staff:
    """Whoever took payments, by name (any case) or id: a collector or office staff,
    removed ones included (their payments stay in the log)."""
    ref = ref.strip()
    query = Staff.filter(tenant_id=actor.tenant_id)
    found = await (
        query.filter(id=int(ref)) if ref.isdigit() else query.filter(name__iexact=ref)
    ).order_by("deleted_at", "id")
    if actor.role == Role.RESELLER:
        found = [s for s in found if s.reseller_id == actor.reseller_id]
    if not found:
        raise NotFound(
            f"Nobody called {ref!r} takes payments here.", code="operator_unknown", ref=ref
        )
    return found[0]


async def export_payments(
    actor: Staff,
    filters: PaymentFilter,
    *,
    fmt: str,
    folder: Path,
    method_word: Callable[[str], str] = str,
    batch: int = EXPORT_BATCH,
    now: datetime | None = None,
) -> ExportFile:
    """The filtered log as a CSV or XLSX file under `folder`, streamed batch by batch.

    Raises InvalidInput when there is nothing to export, or more rows than the spreadsheet
    export takes (CSV has no such limit).
    """
    require_office(actor)
    if fmt not in FORMATS:
        raise InvalidInput("Export as csv or xlsx.", code="export_format")
    tenant = await Tenant.get(id=actor.tenant_id)
    start, end = _bounds(tenant, filters, now)
    query = _query(actor, filters, start, end, tenant.timezone)
    count = int((await fetch(f"{_TOTALS} WHERE {query.where}", query.params))[0]["n"])
    if not count:
        raise InvalidInput("No payments match; nothing to export.", code="export_empty")
    if fmt == "xlsx" and count > XLSX_MAX_ROWS:
        raise InvalidInput(
            f"{count} payments are too many for a spreadsheet here; export them as CSV.",
            code="export_too_many_rows",
            count=count,
            max=XLSX_MAX_ROWS,
        )
    name = f"payments-{start.isoformat()}-{end.isoformat()}-{secrets.token_hex(3)}.{fmt}"
    return await write_export(
        _batches(query, batch),
        path=folder / name,
        fmt=fmt,
        currency=tenant.currency,
        timezone=tenant.timezone,
        convert=_logged,
        method_word=method_word,
    )


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _logged(r: dict[str, Any]) -> LoggedPayment:
    return LoggedPayment(
        id=r["id"],
        received_at=_as_datetime(r["received_at"]),
        amount_minor=int(r["amount_minor"]),
        method=PaymentMethod(r["method"]),
        customer=r["customer"],
        username=r["username"],
        invoice=r["invoice"],
        taken_by=r["operator"] or r["collector"],
        collector=r["collector"],
        reference=r["reference"] or "",
        note=r["note"] or "",
        photo=bool(r["photo"]),
        reversed_at=_as_datetime(r["reversed_at"]) if r["reversed_at"] is not None else None,
        reversal_reason=r["reversal_reason"],
    )
