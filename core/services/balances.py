"""What subscribers owe: one subscriber's balance and story, and the largest balances.

A subscriber's outstanding balance is the sum of `amount_minor - paid_minor` over their
invoices that are `unpaid` or `partial`. Drafts owe nothing until an admin approves them;
cancelled and paid invoices owe nothing. `paid_minor` is kept net of payments (a reversal
lowers it again and reopens the invoice), so the balance needs no look at the payments.
*Overdue* is derived, as everywhere: the part of the balance on invoices whose due date is
before today in the tenant's calendar.

Invariants: read-only; every query is bounded by the actor's tenant and, for reseller
staff, by their own reseller's subscribers (a subscriber outside the scope is "not found",
exactly like one that does not exist). The figures are sums in the database, never a
Python loop over invoices: a balance is one statement, the largest balances one statement
(their totals over *every* matching subscriber come from window functions of the same
statement), and a subscriber's story a fixed handful however long their history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from core.db.models import Invoice, Payment, PaymentReversal, Staff, Subscriber, Tenant
from core.db.sql import fetch
from core.documents.receipt import receipt_number
from core.domain.dates import local_today, utcnow
from core.domain.status import (
    COLLECTIBLE,
    BillingMode,
    InvoiceKind,
    InvoicePurpose,
    InvoiceStatus,
    PaymentMethod,
    Role,
    SubscriberStatus,
)
from core.errors import InvalidInput
from core.services.access import require_office, subscriber_in_scope
from core.services.collectors import resolve_reseller

# The lookup by username (exact, else the one case-insensitive match) with the reseller
# scope, shared with invoicing so that every command finds a subscriber the same way.

OPEN_SHOWN = 20  # a story's open invoices, oldest due first (its balance counts them all)
PAYMENTS_SHOWN = 10  # a story's payments, newest first
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

_OPEN = "('unpaid', 'partial')"


def _as_date(value: Any) -> date | None:
    """A date column read by raw SQL: a `date` on PostgreSQL, ISO text on SQLite."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _required_date(value: Any) -> date:
    day = _as_date(value)
    assert day is not None  # MIN over a non-empty group of a NOT NULL column
    return day


# --- one subscriber's balance --------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """What one subscriber owes on `today` (the tenant's calendar day)."""

    owed_minor: int
    overdue_minor: int
    open_invoices: int
    oldest_due: date | None  # the earliest due date among the open invoices

    @property
    def owes(self) -> bool:
        return self.owed_minor > 0


_BALANCE_SQL = f"""
SELECT COALESCE(SUM(amount_minor - paid_minor), 0) AS owed,
       COALESCE(SUM(CASE WHEN due_date < ? THEN amount_minor - paid_minor ELSE 0 END), 0)
         AS overdue,
       COUNT(*) AS open_invoices,
       MIN(due_date) AS oldest_due
FROM invoice
WHERE tenant_id = ? AND subscriber_id = ? AND status IN {_OPEN}
"""


async def subscriber_balance(
    tenant_id: int,
    subscriber_id: int,
    *,
    today: date,
    conn: BaseDBAsyncClient | None = None,
) -> Balance:
    """The subscriber's outstanding balance in one statement (no permission check: the
    caller has already found the subscriber within the actor's scope).

    Args:
        tenant_id: the subscriber's tenant (the query never crosses it).
        subscriber_id: whose invoices.
        today: the tenant-local day; invoices due before it are overdue.
        conn: a connection or transaction to read in (default: the default connection).
    """
    row = (await fetch(_BALANCE_SQL, [today, tenant_id, subscriber_id], conn))[0]
    return Balance(
        owed_minor=int(row["owed"] or 0),
        overdue_minor=int(row["overdue"] or 0),
        open_invoices=int(row["open_invoices"] or 0),
        oldest_due=_as_date(row["oldest_due"]),
    )


# --- one subscriber's story ----------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberFacts:
    id: int
    username: str
    name: str
    phone: str | None
    area: str
    street: str
    address: str
    status: SubscriberStatus
    expiry_date: date | None
    billing_mode: BillingMode
    reseller_name: str | None
    plan_name: str | None


@dataclass(frozen=True)
class OpenInvoice:
    number: str
    kind: InvoiceKind
    purpose: InvoicePurpose
    status: InvoiceStatus  # unpaid or partial
    amount_minor: int
    paid_minor: int
    due_date: date
    overdue: bool

    @property
    def due_minor(self) -> int:
        return self.amount_minor - self.paid_minor


@dataclass(frozen=True)
class PaymentLine:
    received_at: datetime
    amount_minor: int
    method: PaymentMethod
    invoice_number: str
    collector_name: str | None
    operator_name: str | None
    reference: str
    payment_id: int = 0
    reversed: bool = False  # taken back (a chargeback, a mistake): it no longer counts

    @property
    def receipt_number(self) -> str:
        return receipt_number(self.payment_id)

    @property
    def taken_by(self) -> str | None:
        """Who took the money: the collector at the door, else the office operator."""
        return self.collector_name or self.operator_name


@dataclass(frozen=True)
class SubscriberStory:
    today: date
    subscriber: SubscriberFacts
    balance: Balance
    open_invoices: tuple[OpenInvoice, ...]  # oldest due first, at most OPEN_SHOWN
    payments: tuple[PaymentLine, ...]  # newest first, at most PAYMENTS_SHOWN

    @property
    def open_not_shown(self) -> int:
        return max(0, self.balance.open_invoices - len(self.open_invoices))

    @property
    def expired(self) -> bool:
        expiry = self.subscriber.expiry_date
        return expiry is not None and expiry < self.today


async def subscriber_story(
    actor: Staff, *, username: str, now: datetime | None = None
) -> SubscriberStory:
    """Who the subscriber is, what they owe, their open invoices and their last payments.

    Admins see the tenant's subscribers, reseller staff their own reseller's (no reseller
    permission is needed, as for the dashboard). At most seven queries, whatever the
    history's length: the lookup (two when the username only matches in another case),
    the tenant's calendar, the reseller and plan names, the balance, the open invoices and
    the payments.

    Raises:
        PermissionDenied: a collector (code `balances_office_only`), or a removed account.
        InvalidInput: no username given (code `username_required`).
        NotFound: no such subscriber in the actor's tenant and scope
            (code `subscriber_not_found`).
    """
    require_office(
        actor, "Only the office can see what subscribers owe.", code="balances_office_only"
    )
    subscriber = await subscriber_in_scope(actor, username)
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)
    names: dict[str, Any] = {"reseller__name": None, "plan__name": None}
    if subscriber.reseller_id is not None or subscriber.plan_id is not None:
        rows = await Subscriber.filter(id=subscriber.id).values("reseller__name", "plan__name")
        names = rows[0] if rows else names
    facts = SubscriberFacts(
        id=subscriber.id,
        username=subscriber.username,
        name=subscriber.name,
        phone=subscriber.phone,
        area=subscriber.area,
        street=subscriber.street,
        address=subscriber.address,
        status=SubscriberStatus(subscriber.status),
        expiry_date=subscriber.expiry_date,
        billing_mode=BillingMode(subscriber.billing_mode),
        reseller_name=names["reseller__name"],
        plan_name=names["plan__name"],
    )
    return SubscriberStory(
        today=today,
        subscriber=facts,
        balance=await subscriber_balance(actor.tenant_id, subscriber.id, today=today),
        open_invoices=await _open_invoices(actor.tenant_id, subscriber.id, today),
        payments=await _last_payments(actor.tenant_id, subscriber.id),
    )


async def _open_invoices(
    tenant_id: int, subscriber_id: int, today: date
) -> tuple[OpenInvoice, ...]:
    rows = (
        await Invoice.filter(
            tenant_id=tenant_id, subscriber_id=subscriber_id, status__in=list(COLLECTIBLE)
        )
        .order_by("due_date", "id")
        .limit(OPEN_SHOWN)
        .values("number", "kind", "purpose", "status", "amount_minor", "paid_minor", "due_date")
    )
    return tuple(
        OpenInvoice(
            number=r["number"],
            kind=InvoiceKind(r["kind"]),
            purpose=InvoicePurpose(r["purpose"]),
            status=InvoiceStatus(r["status"]),
            amount_minor=r["amount_minor"],
            paid_minor=r["paid_minor"],
            due_date=r["due_date"],
            overdue=r["due_date"] < today,
        )
        for r in rows
    )


async def _last_payments(tenant_id: int, subscriber_id: int) -> tuple[PaymentLine, ...]:
    rows = (
        await Payment.filter(tenant_id=tenant_id, subscriber_id=subscriber_id)
        .order_by("-received_at", "-id")
        .limit(PAYMENTS_SHOWN)
        .values(
            "id",
            "received_at",
            "amount_minor",
            "method",
            "reference",
            "invoice__number",
            "collector__name",
            "operator__name",
        )
    )
    reversed_ids = set(
        await PaymentReversal.filter(payment_id__in=[r["id"] for r in rows]).values_list(
            "payment_id", flat=True
        )
    )
    return tuple(
        PaymentLine(
            received_at=r["received_at"],
            amount_minor=r["amount_minor"],
            method=PaymentMethod(r["method"]),
            invoice_number=r["invoice__number"],
            collector_name=r["collector__name"],
            operator_name=r["operator__name"],
            reference=r["reference"],
            payment_id=r["id"],
            reversed=r["id"] in reversed_ids,
        )
        for r in rows
    )


# --- the largest balances ------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceRow:
    subscriber_id: int
    username: str
    name: str
    area: str
    phone: str | None
    owed_minor: int
    overdue_minor: int
    open_invoices: int
    oldest_due: date


@dataclass(frozen=True)
class LargestBalances:
    """The subscribers who owe most (largest first), and totals over *all* who match."""

    today: date
    area: str | None
    reseller_name: str | None
    overdue_only: bool
    rows: tuple[BalanceRow, ...]
    subscribers: int  # every matching subscriber, not only the rows shown
    owed_minor: int
    overdue_minor: int

    @property
    def not_shown(self) -> int:
        return self.subscribers - len(self.rows)


# Per subscriber in the filter, then the top `limit`; the window functions run before the
# LIMIT, so the totals cover every subscriber that matched. Names are joined for the rows
# shown only. `{join}` and `{where}` / `{having}` are fixed fragments chosen in code.
_LARGEST_SQL = """
WITH owed AS (
    SELECT i.subscriber_id,
           SUM(i.amount_minor - i.paid_minor) AS owed,
           SUM(CASE WHEN i.due_date < ? THEN i.amount_minor - i.paid_minor ELSE 0 END)
             AS overdue,
           COUNT(*) AS open_invoices,
           MIN(i.due_date) AS oldest_due
    FROM invoice i{join}
    WHERE {where}
    GROUP BY i.subscriber_id{having}
), top AS (
    SELECT o.subscriber_id, o.owed, o.overdue, o.open_invoices, o.oldest_due,
           COUNT(*) OVER () AS total_subscribers,
           SUM(o.owed) OVER () AS total_owed,
           SUM(o.overdue) OVER () AS total_overdue
    FROM owed o
    ORDER BY o.owed DESC, o.subscriber_id
    LIMIT ?
)
SELECT t.*, s.username, s.name, s.area, s.phone
FROM top t
JOIN subscriber s ON s.id = t.subscriber_id
ORDER BY t.owed DESC, t.subscriber_id
"""


async def largest_balances(
    actor: Staff,
    *,
    area: str | None = None,
    reseller: str | None = None,
    overdue_only: bool = False,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> LargestBalances:
    """The subscribers in the actor's scope who owe most, in one statement.

    Args:
        area: only subscribers of this area (any case).
        reseller: only this reseller's subscribers (its id or name; reseller staff can
            name only their own).
        overdue_only: only subscribers with something overdue.
        limit: rows to return, 1 to MAX_LIMIT; the totals count every match.

    Raises:
        PermissionDenied: a collector (code `balances_office_only`).
        InvalidInput: a limit outside 1..MAX_LIMIT (code `balances_bad_limit`).
        NotFound: no such reseller in the actor's scope (code `reseller_not_found`).
    """
    require_office(
        actor, "Only the office can see what subscribers owe.", code="balances_office_only"
    )
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"Show between 1 and {MAX_LIMIT} subscribers.",
            code="balances_bad_limit",
            limit=MAX_LIMIT,
        )
    area = (area or "").strip() or None
    found = await resolve_reseller(actor, reseller) if reseller is not None else None
    tenant = await Tenant.get(id=actor.tenant_id)
    today = local_today(now or utcnow(), tenant.timezone)

    clauses = ["i.tenant_id = ?", f"i.status IN {_OPEN}"]
    params: list[Any] = [today, actor.tenant_id]
    if actor.role != Role.ADMIN:
        clauses.append("s.reseller_id = ?")
        params.append(actor.reseller_id)
    if found is not None:
        clauses.append("s.reseller_id = ?")
        params.append(found.id)
    if area is not None:
        clauses.append("UPPER(s.area) = UPPER(?)")
        params.append(area)
    having = ""
    if overdue_only:
        having = (
            "\n    HAVING SUM(CASE WHEN i.due_date < ?"
            " THEN i.amount_minor - i.paid_minor ELSE 0 END) > 0"
        )
        params.append(today)
    params.append(limit)
    needs_subscriber = len(clauses) > 2
    sql = _LARGEST_SQL.format(
        join="\n    JOIN subscriber s ON s.id = i.subscriber_id" if needs_subscriber else "",
        where=" AND ".join(clauses),
        having=having,
    )
    rows = await fetch(sql, params)
    first = rows[0] if rows else {}
    return LargestBalances(
        today=today,
        area=area,
        reseller_name=found.name if found else None,
        overdue_only=overdue_only,
        rows=tuple(
            BalanceRow(
                subscriber_id=r["subscriber_id"],
                username=r["username"],
                name=r["name"],
                area=r["area"],
                phone=r["phone"],
                owed_minor=int(r["owed"]),
                overdue_minor=int(r["overdue"]),
                open_invoices=int(r["open_invoices"]),
                oldest_due=_required_date(r["oldest_due"]),
            )
            for r in rows
        ),
        subscribers=int(first.get("total_subscribers") or 0),
        owed_minor=int(first.get("total_owed") or 0),
        overdue_minor=int(first.get("total_overdue") or 0),
    )
